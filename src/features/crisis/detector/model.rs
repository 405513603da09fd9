//! The learned layer: two logistic-regression heads (`level >= medium`, `level == high`)
//! over hashed features of the normalised message, trained offline by
//! `examples/crisis_train` and stored in `config/crisis/model.bin`. Features are word
//! unigrams and bigrams, character n-grams of the normalised text (so that a new
//! inflection, typo or euphemism still shares pieces with the training set), each group
//! scaled to unit length; the lexicon's concepts (the kinds of net word, frame part and
//! phrase category the message holds, and its person, negation and guard words), each alone
//! and in pairs, so that "a means word with a time" generalises beyond the words seen; and
//! optionally the lexicon's own reading (level, categories, verdicts). No model call, no
//! floats beyond a few hundred multiply-adds: the same message always gets the same level.
//!
//! `model.bin` (little-endian): `PCM1`, dim_bits, char_min, char_max, flags (1 words,
//! 2 bigrams, 4 lexicon signals, 8 concepts), signal weight, medium and high thresholds
//! (f32), combine mode, the concept weight in hundredths, the medium and high thresholds
//! with the lexicon's support in hundredths (0: none), bias and scale of each head (f32);
//! `PCM2` adds the medium threshold where the lexicon explained its risk words away (f32; a
//! `PCM1` file uses the medium one); then for each of the 2^dim_bits buckets its medium and
//! high weights as i16 (weight = i16 × scale).

use super::lexicon::Lexicon;
use super::normalize::{Piece, collapse_runs, has_run, scan};
use crate::domain::CrisisLevel;

const MAGIC_V1: &[u8; 4] = b"PCM1";
const MAGIC: &[u8; 4] = b"PCM2";
const HEADER_V1: usize = 40;
const HEADER: usize = 44;
pub const WORDS: u8 = 1;
pub const BIGRAMS: u8 = 2;
pub const SIGNALS: u8 = 4;
pub const CONCEPTS: u8 = 8;
/// Word features (unigrams and bigrams) and character n-grams each scaled to unit length on
/// their own, so that the many n-grams of a long message do not drown its words.
pub const GROUPS: u8 = 16;
/// Word pairs with one word between them ("take * pills"), with the word features.
pub const SKIPS: u8 = 32;

/// The lexicon's reading handed to the model: level, categories, verdict bits, concept
/// bits.
pub(crate) type Signals<'a> = (CrisisLevel, &'a [&'a str], u16, u64);

/// Which features to extract; stored in the model file.
#[derive(Clone, Copy, Debug)]
pub struct FeatureConfig {
    pub char_min: u8,
    pub char_max: u8,
    pub flags: u8,
    pub signal_weight: f32,
    /// Value of the concept features (each concept and each pair of concepts present).
    pub concept_weight: f32,
}

/// How the model's level joins the lexicon's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// The higher of the two.
    Max,
    /// The model decides medium and high; the lexicon only says none or low below that.
    Gate,
    /// As `Gate`, but a lexicon `high` always stands.
    GateKeepHigh,
    /// As `GateKeepHigh`, but the model never raises a message in which the lexicon saw
    /// an idiom, a negation, a reported mention or a hedge.
    Guarded,
    /// The higher of the two, with the same veto as `Guarded`.
    MaxGuarded,
    /// As `Gate`, with the lexicon's support lowering the model's thresholds, and a third
    /// person at risk never more than `medium` (unless the lexicon saw the writer at high
    /// risk too).
    Support,
    /// As `Support`, but a negation the lexicon saw ("i'm not going to kill myself") keeps
    /// the model from raising a message the lexicon left at `low` or below.
    SupportVeto,
}

/// Verdict bits (see `Verdict::bit`) that veto a raise by the model: an idiom, a phrase
/// cancelled by one, a negation, a hedge, a reported mention.
pub(crate) const VETO: u16 = 1 | 4 | 8 | 16 | 64;
/// The verdict bit of a negated match.
const NEGATED: u16 = 8;
/// Set beside the verdict bits when the lexicon counted a third person at risk: the model
/// may not make that more than `medium` in the guarded modes (SPEC 8).
pub(crate) const THIRD_PARTY: u16 = 1 << 15;
/// Set beside the verdict bits when the lexicon read the writer's own intent at `high`
/// (active ideation, a plan): in the `Support` modes the model may not lower it where the
/// lexicon saw no idiom, negation, hedge or reported mention — a person who says "i'm going
/// to jump off the bridge" is not left to a probability.
pub(crate) const INTENT: u16 = 1 << 14;

/// Reusable buffers for the model's features.
#[derive(Default)]
pub(crate) struct Features {
    norm: String,
    word: String,
    variant: String,
    pub(crate) list: Vec<(u32, f32)>,
}

/// A loaded model: header values and the bucket weights.
pub(crate) struct Model {
    pub(crate) config: FeatureConfig,
    pub(crate) thresholds: Thresholds,
    pub(crate) combine: Combine,
    bias: [f32; 2],
    scale: [f32; 2],
    mask: u32,
    weights: Vec<[i16; 2]>,
}

/// FNV-1a over `bytes`, continuing from `h`.
fn fnv(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

const SEED: u32 = 0x811c_9dc5;

fn seeded(group: u8) -> u32 {
    fnv(SEED, &[group, b':'])
}

fn f32_at(bytes: &[u8], at: usize) -> f32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    f32::from_le_bytes(b)
}

impl Model {
    /// Parses `model.bin`; `Err` says what is wrong with it.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Model, String> {
        let header = match bytes.get(..4) {
            Some(m) if m == MAGIC => HEADER,
            Some(m) if m == MAGIC_V1 => HEADER_V1,
            _ => return Err("not a crisis model file (bad magic)".into()),
        };
        if bytes.len() < header {
            return Err("not a crisis model file (too short)".into());
        }
        let bits = u32::from(bytes[4]);
        if !(8..=22).contains(&bits) {
            return Err(format!("dim_bits {bits} out of range"));
        }
        let dim = 1usize << bits;
        if bytes.len() != header + dim * 4 {
            return Err(format!("expected {} bytes", header + dim * 4));
        }
        let combine = match bytes[20] {
            0 => Combine::Max,
            1 => Combine::Gate,
            2 => Combine::GateKeepHigh,
            3 => Combine::Guarded,
            4 => Combine::MaxGuarded,
            5 => Combine::Support,
            6 => Combine::SupportVeto,
            other => return Err(format!("unknown combine mode {other}")),
        };
        let weights = bytes[header..]
            .chunks_exact(4)
            .map(|c| {
                [
                    i16::from_le_bytes([c[0], c[1]]),
                    i16::from_le_bytes([c[2], c[3]]),
                ]
            })
            .collect();
        Ok(Model {
            config: FeatureConfig {
                char_min: bytes[5],
                char_max: bytes[6],
                flags: bytes[7],
                signal_weight: f32_at(bytes, 8),
                concept_weight: f32::from(bytes[21]) / 100.0,
            },
            thresholds: {
                let (medium, high) = (f32_at(bytes, 12), f32_at(bytes, 16));
                // Hundredths; 0 (older files) means no lower threshold.
                let support = |b: u8, t: f32| if b == 0 { t } else { f32::from(b) / 100.0 };
                let negated = if header == HEADER {
                    f32_at(bytes, 40)
                } else {
                    medium
                };
                [
                    medium,
                    high,
                    support(bytes[22], medium),
                    support(bytes[23], high),
                    negated,
                ]
            },
            combine,
            bias: [f32_at(bytes, 24), f32_at(bytes, 28)],
            scale: [f32_at(bytes, 32), f32_at(bytes, 36)],
            mask: (dim - 1) as u32,
            weights,
        })
    }

    /// Probabilities of `>= medium` and of `high` for the extracted features.
    pub(crate) fn probabilities(&self, features: &[(u32, f32)]) -> (f32, f32) {
        let mut sum = [0f32; 2];
        for &(h, v) in features {
            let w = self.weights[(h & self.mask) as usize];
            sum[0] += f32::from(w[0]) * v;
            sum[1] += f32::from(w[1]) * v;
        }
        let p = |k: usize| 1.0 / (1.0 + (-(self.bias[k] + self.scale[k] * sum[k])).exp());
        (p(0), p(1))
    }

    /// The model's own level from its probabilities, beside the lexicon's level.
    pub(crate) fn level(
        &self,
        probabilities: (f32, f32),
        lexicon: CrisisLevel,
        verdicts: u16,
    ) -> CrisisLevel {
        model_level(probabilities, self.thresholds, lexicon, verdicts)
    }
}

/// The model's thresholds: `[medium, high, medium with the lexicon's support, high with the
/// lexicon's support, medium where the lexicon explained its risk words away]`.
pub type Thresholds = [f32; 5];

/// The model's level from its probabilities and thresholds: either head alone reaches its
/// level (a message the `high` head is sure of is high even when the `>= medium` head
/// hesitates); where the lexicon itself saw that level the lower threshold applies, and
/// where it explained its risk words away (negated, an idiom, a hedge, a reported or
/// educational mention: "i never hoped to disappear", "for my psych class: how do people
/// decide to end their life") and saw nothing above distress, the `>= medium` head needs
/// the stricter one.
pub fn model_level(
    (medium, high): (f32, f32),
    t: Thresholds,
    lexicon: CrisisLevel,
    verdicts: u16,
) -> CrisisLevel {
    // Where the lexicon explained its risk words away (negated, an idiom, a hedge, a
    // reported or educational mention) and saw nothing above distress ("i never hoped to
    // disappear", "for my psych class: how do people decide to end their life"), the bag
    // of words behind the `>= medium` head cannot tell that apart: the `high` head must
    // lean towards risk too, and the `>= medium` head needs the stricter threshold.
    let explained_away = verdicts & VETO != 0 && lexicon <= CrisisLevel::Low;
    let medium_alone = if explained_away { t[4] } else { t[0] };
    if high >= t[1] || (lexicon == CrisisLevel::High && high >= t[3]) {
        CrisisLevel::High
    } else if explained_away && high < t[3] {
        CrisisLevel::None
    } else if medium >= medium_alone || (lexicon >= CrisisLevel::Medium && medium >= t[2]) {
        CrisisLevel::Medium
    } else {
        CrisisLevel::None
    }
}

/// Joins the lexicon's level (and its verdict bits) with the model's.
pub fn combine(
    mode: Combine,
    lexicon: CrisisLevel,
    verdicts: u16,
    model: CrisisLevel,
) -> CrisisLevel {
    let vetoed = verdicts & VETO != 0;
    if matches!(mode, Combine::Support | Combine::SupportVeto) && verdicts & INTENT != 0 && !vetoed
    {
        return CrisisLevel::High;
    }
    let model = match mode {
        Combine::SupportVeto if verdicts & NEGATED != 0 && lexicon <= CrisisLevel::Low => {
            model.min(lexicon)
        }
        // A third person at risk stays medium, unless the lexicon saw the writer's own
        // risk beside it (its level is then high).
        Combine::Support | Combine::SupportVeto if verdicts & THIRD_PARTY != 0 => {
            model.min(lexicon.max(CrisisLevel::Medium))
        }
        Combine::Guarded | Combine::MaxGuarded if vetoed => model.min(lexicon),
        Combine::Guarded | Combine::MaxGuarded if verdicts & THIRD_PARTY != 0 => {
            model.min(CrisisLevel::Medium)
        }
        _ => model,
    };
    let gated = if model >= CrisisLevel::Medium {
        model
    } else {
        lexicon.min(CrisisLevel::Low)
    };
    match mode {
        Combine::Max | Combine::MaxGuarded => lexicon.max(model),
        Combine::Gate | Combine::Support | Combine::SupportVeto => gated,
        _ if lexicon == CrisisLevel::High => CrisisLevel::High,
        Combine::GateKeepHigh | Combine::Guarded => gated,
    }
}

impl Lexicon {
    /// Fills `f.list` with `(hash, value)` pairs for `text`: text features scaled to unit
    /// length (each 1/sqrt(count)), then the lexicon's signals (`level`, `categories`, the
    /// verdict bits) with the signal weight.
    pub(crate) fn model_features(
        &self,
        text: &str,
        config: &FeatureConfig,
        signals: Signals,
        f: &mut Features,
    ) {
        let Features {
            norm,
            word,
            variant,
            list,
        } = f;
        list.clear();
        norm.clear();
        norm.push(' ');
        scan(text, word, |piece| match piece {
            Piece::Word(w) => self.push_normal(w, variant, norm),
            Piece::Clause | Piece::Sentence => {
                if !norm.ends_with(". ") && norm.len() > 1 {
                    norm.push_str(". ");
                }
            }
        });
        let flags = config.flags;
        if flags & (WORDS | BIGRAMS | SKIPS) != 0 {
            // The two words before this one in its sentence (for bigrams and skip pairs).
            let mut prev: [Option<&str>; 2] = [None, None];
            for w in norm.split(' ').filter(|w| !w.is_empty()) {
                if w == "." {
                    prev = [None, None];
                    continue;
                }
                if flags & WORDS != 0 {
                    list.push((fnv(seeded(b'w'), w.as_bytes()), 1.0));
                }
                if let Some(p) = prev[0].filter(|_| flags & BIGRAMS != 0) {
                    let h = fnv(fnv(seeded(b'b'), p.as_bytes()), b" ");
                    list.push((fnv(h, w.as_bytes()), 1.0));
                }
                if let Some(p) = prev[1].filter(|_| flags & SKIPS != 0) {
                    let h = fnv(fnv(seeded(b'p'), p.as_bytes()), b" ");
                    list.push((fnv(h, w.as_bytes()), 1.0));
                }
                prev = [Some(w), prev[0]];
            }
        }
        let word_features = list.len();
        let bytes = norm.as_bytes();
        let (lo, hi) = (usize::from(config.char_min), usize::from(config.char_max));
        if lo > 0 {
            let base = seeded(b'c');
            for start in 0..bytes.len() {
                let mut h = base;
                for (n, &b) in bytes[start..].iter().take(hi).enumerate() {
                    h = fnv(h, &[b]);
                    if n + 1 >= lo {
                        list.push((h, 1.0));
                    }
                }
            }
        }
        let text_features = list.len();
        if flags & GROUPS != 0 {
            let (words, chars) = list.split_at_mut(word_features);
            for group in [words, chars] {
                let v = 1.0 / (group.len().max(1) as f32).sqrt();
                group.iter_mut().for_each(|f| f.1 = v);
            }
        } else if text_features > 0 {
            let v = 1.0 / (text_features as f32).sqrt();
            list.iter_mut().for_each(|f| f.1 = v);
        }
        let (level, categories, verdicts, concepts) = signals;
        if flags & CONCEPTS != 0 && concepts != 0 {
            let v = config.concept_weight;
            let s = seeded(b'k');
            let mut rest = concepts;
            while rest != 0 {
                let i = rest.trailing_zeros();
                rest &= rest - 1;
                list.push((fnv(s, &[b'1', i as u8]), v));
                let mut others = rest;
                while others != 0 {
                    let j = others.trailing_zeros();
                    others &= others - 1;
                    list.push((fnv(s, &[b'2', i as u8, j as u8]), v));
                }
            }
        }
        if flags & SIGNALS != 0 {
            let v = config.signal_weight;
            let s = seeded(b's');
            list.push((fnv(s, &[b'l', level as u8]), v));
            for at_least in 1..=level as u8 {
                list.push((fnv(s, &[b'g', at_least]), v));
            }
            for c in categories {
                list.push((fnv(fnv(s, b"c"), c.as_bytes()), v));
            }
            for bit in (0..12u8).chain([15]) {
                if verdicts & (1 << bit) != 0 {
                    list.push((fnv(s, &[b'v', bit]), v));
                }
            }
        }
    }

    /// Appends `raw` to `norm` as the detector reads it: runs of three letters cut to two,
    /// colloquial forms and contractions replaced ("gak" → "tidak"), numbers as `#`.
    fn push_normal(&self, raw: &str, variant: &mut String, norm: &mut String) {
        if raw.chars().all(char::is_numeric) {
            norm.push_str("# ");
            return;
        }
        let word = if has_run(raw, 3) {
            collapse_runs(raw, 3, 2, variant);
            variant.as_str()
        } else {
            raw
        };
        match self.replace.get(raw).or_else(|| self.replace.get(word)) {
            Some(ids) => {
                for &id in ids.iter() {
                    norm.push_str(&self.names[id as usize]);
                    norm.push(' ');
                }
            }
            None => {
                norm.push_str(word);
                norm.push(' ');
            }
        }
    }
}
