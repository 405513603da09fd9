//! The crisis detector (SPEC section 8): a deterministic, lexicon-driven reading of one
//! English or Indonesian message into `none < low < medium < high`.
//!
//! Text is normalised (NFKC, case, diacritics, repeated letters, misspellings, colloquial
//! Indonesian) into words; phrases from the lexicon match whole word sequences, never
//! substrings. Idioms cancel the risk phrases they overlap ("this traffic is killing me",
//! "mati lampu"); a negator just before a phrase in its clause cancels it unless the phrase
//! is itself a negation ("I don't want to live anymore"); ideation about a third person is
//! `third_party` (medium); reported or educational mentions stay low. On top of the
//! phrases, `[[frame]]` entries mark parts of a clause (a wish or intent, a death or suicide
//! word, a means, an amount, a time, a method question, an acceptance) that `frames.rs`
//! combines by structure; `reassurance` idioms cancel what they overlap down to distress.
//! Under all of these, a safety net (`net.rs`) weighs single risk words by kind (death,
//! suicide slang, self-harm, means, preparatory acts; time, intent, injury as amplifiers)
//! in first-person or subject-less sentences, unless negated, inside an idiom or beside a
//! guard word (games, cooking, sports, study, news, lyrics, films, deadlines, phones):
//! one primary kind is medium, two distinct kinds are high.
//! The lexicon's level is the highest match left. The lexicon lives in TOML files an admin
//! can copy and tune.
//!
//! A learned layer (`model.rs`) generalises beyond the phrase lists: a linear model over
//! hashed words, word pairs and character n-grams of the normalised text plus the
//! lexicon's concepts, trained offline (`examples/crisis_train`) into
//! `config/crisis/model.bin`. Its level joins the lexicon's as the file's combine mode says
//! (shipped: `Support`, the model decides medium and high, with lower thresholds where the
//! lexicon agrees, and the lexicon says none or low below that).

mod assess;
mod category;
mod error;
mod frames;
mod lexicon;
mod model;
mod net;
mod normalize;
mod pattern;
pub mod quality;
mod tokens;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::Path;

pub use crate::domain::CrisisLevel;
pub use error::LexiconError;

use assess::{Verdict, evaluate};
use lexicon::{IDIOMS_FILE, Lexicon, NORMALIZE_FILE, RULE_FILES};
use model::{Features, Model};
use tokens::Scratch;

/// The offline trainer's view of the learned layer (`--features train`); not a stable API.
#[cfg(feature = "crisis-train")]
#[doc(hidden)]
pub mod train {
    pub use super::model::{
        BIGRAMS, CONCEPTS, Combine, FeatureConfig, GROUPS, SIGNALS, SKIPS, Thresholds, WORDS,
        combine, model_level,
    };
}

const BUILTIN_NORMALIZE: &str = include_str!("../../../../config/crisis/normalize.toml");
const BUILTIN_IDIOMS: &str = include_str!("../../../../config/crisis/idioms.toml");
const BUILTIN_RULES: [(&str, &str); 2] = [
    ("en.toml", include_str!("../../../../config/crisis/en.toml")),
    ("id.toml", include_str!("../../../../config/crisis/id.toml")),
];
const BUILTIN_MODEL: &[u8] = include_bytes!("../../../../config/crisis/model.bin");
/// The optional model file in a lexicon directory (the builtin one when absent).
const MODEL_FILE: &str = "model.bin";

/// The lexicon's level and the model features of one message (for the trainer).
#[cfg(feature = "crisis-train")]
#[doc(hidden)]
pub type TrainFeatures = (CrisisLevel, u16, Vec<(u32, f32)>);

/// The categories of a `high` reading that state the writer's own intent (see
/// `model::INTENT`).
const INTENT_CATEGORIES: [&str; 2] = ["active_ideation", "plan"];

/// The lexicon's reading of one message: its level, categories, verdict bits and concept
/// bits.
type Reading = (CrisisLevel, Vec<&'static str>, u16, u64);

/// The detector's reading of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub level: CrisisLevel,
    /// Stable snake_case names of what counted, most severe first (e.g. `"plan"`,
    /// `"passive_ideation"`, `"distress"`); empty when the level is `none`.
    pub categories: Vec<&'static str>,
}

/// A compiled lexicon. Build it once at start and share it; `assess` takes `&self`.
pub struct Detector {
    lexicon: Lexicon,
    model: Model,
}

thread_local! {
    // Token buffers reused across calls on the same thread, so that a typical message
    // costs only the result's allocation.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
    static FEATURES: RefCell<Features> = RefCell::new(Features::default());
}

impl Detector {
    /// The lexicon embedded in the binary.
    pub fn builtin() -> Detector {
        let lexicon = Lexicon::compile(
            Path::new("builtin"),
            BUILTIN_NORMALIZE,
            BUILTIN_IDIOMS,
            &BUILTIN_RULES,
        )
        .expect("the builtin lexicon is checked by the builtin_lexicon_loads test");
        let model = Model::parse(BUILTIN_MODEL)
            .expect("the builtin model is checked by the builtin_lexicon_loads test");
        Detector { lexicon, model }
    }

    /// Loads `normalize.toml`, `idioms.toml`, `en.toml` and `id.toml` from `dir` (an
    /// admin's tuned copy of the builtin files); errors name the file and the problem.
    pub fn from_dir(dir: &Path) -> Result<Detector, LexiconError> {
        let read = |name: &str| {
            let file = dir.join(name);
            std::fs::read_to_string(&file).map_err(|source| LexiconError::Io { file, source })
        };
        let normalize = read(NORMALIZE_FILE)?;
        let idioms = read(IDIOMS_FILE)?;
        let mut rules = Vec::with_capacity(RULE_FILES.len());
        for name in RULE_FILES {
            rules.push((name, read(name)?));
        }
        let rules: Vec<(&str, &str)> = rules.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let lexicon = Lexicon::compile(dir, &normalize, &idioms, &rules)?;
        let file = dir.join(MODEL_FILE);
        let model = if file.exists() {
            let bytes = std::fs::read(&file).map_err(|source| LexiconError::Io {
                file: file.clone(),
                source,
            })?;
            Model::parse(&bytes).map_err(|message| LexiconError::Invalid { file, message })?
        } else {
            Model::parse(BUILTIN_MODEL).map_err(|message| LexiconError::Invalid {
                file: "builtin model.bin".into(),
                message,
            })?
        };
        Ok(Detector { lexicon, model })
    }

    /// Reads one message.
    pub fn assess(&self, text: &str) -> Assessment {
        self.run(text, |_, _| {})
    }

    /// A human-readable account of how `text` was read: its tokens and every phrase that
    /// matched with what became of it. Meant for tuning the lexicon, not for logs (it
    /// repeats the message's words).
    pub fn explain(&self, text: &str) -> String {
        let mut out = String::new();
        let assessment = self.run(text, |source, verdict| {
            let what = match verdict {
                Verdict::Idiom => "idiom".to_string(),
                Verdict::Counted(level, category) => {
                    format!("counted {level:?} {}", category.as_str())
                }
                Verdict::SuppressedByIdiom => "cancelled by an idiom".to_string(),
                Verdict::Negated => "negated".to_string(),
                Verdict::NotFirstPerson => "ignored: the writer is not its subject".to_string(),
                Verdict::Hedged => "hedged (someone else, supposed)".to_string(),
                Verdict::Reported => "reported or educational mention".to_string(),
                Verdict::WithoutContext => "ignored: no ideation beside it".to_string(),
                Verdict::Aside => "set aside: no risk by itself here".to_string(),
            };
            let _ = writeln!(out, "  {source:?}: {what}");
        });
        let tokens = SCRATCH.with_borrow(|s| self.lexicon.describe(&s.tokens));
        let (lexicon, categories, verdicts, concepts) = self.lexicon_reading(text, |_, _| {});
        let signals = (lexicon, categories.as_slice(), verdicts, concepts);
        let (medium, high) = self.probabilities(text, signals);
        let learned = self.model.level((medium, high), lexicon, verdicts);
        format!(
            "{:?} {:?}\n  tokens: {tokens}\n{out}  lexicon {lexicon:?}, model {learned:?} \
             (p(>= medium) {medium:.3}, p(high) {high:.3}), combined by {:?}\n",
            assessment.level, assessment.categories, self.model.combine
        )
    }

    /// The lexicon's level and categories, which kinds of verdict it reached and its
    /// concept bits.
    fn lexicon_reading(&self, text: &str, mut trace: impl FnMut(&str, Verdict)) -> Reading {
        SCRATCH.with_borrow_mut(|scratch| {
            self.lexicon.tokenize(text, scratch);
            let mut verdicts = 0u16;
            let mut concepts = 0u64;
            let (level, categories) =
                evaluate(&self.lexicon, &scratch.tokens, &mut concepts, |s, v| {
                    verdicts |= v.bit();
                    trace(s, v);
                });
            if categories.contains(&"third_party") {
                verdicts |= model::THIRD_PARTY;
            }
            if level == CrisisLevel::High
                && categories.iter().any(|c| INTENT_CATEGORIES.contains(c))
            {
                verdicts |= model::INTENT;
            }
            (level, categories, verdicts, concepts)
        })
    }

    fn probabilities(&self, text: &str, signals: model::Signals) -> (f32, f32) {
        FEATURES.with_borrow_mut(|f| {
            let config = &self.model.config;
            self.lexicon.model_features(text, config, signals, f);
            self.model.probabilities(&f.list)
        })
    }

    fn run(&self, text: &str, trace: impl FnMut(&str, Verdict)) -> Assessment {
        let (lexicon, mut categories, verdicts, concepts) = self.lexicon_reading(text, trace);
        let signals = (lexicon, categories.as_slice(), verdicts, concepts);
        let probabilities = self.probabilities(text, signals);
        let learned = self.model.level(probabilities, lexicon, verdicts);
        let level = model::combine(self.model.combine, lexicon, verdicts, learned);
        if level > lexicon {
            categories.insert(0, "classifier");
        } else if level < lexicon {
            categories.clear();
            if level == CrisisLevel::Low {
                categories.push("distress");
            }
        }
        Assessment { level, categories }
    }

    /// The lexicon's level and the raw `(hash, value)` model features of `text`.
    #[cfg(feature = "crisis-train")]
    #[doc(hidden)]
    pub fn features(&self, text: &str, config: &train::FeatureConfig) -> TrainFeatures {
        let (level, categories, verdicts, concepts) = self.lexicon_reading(text, |_, _| {});
        let mut f = Features::default();
        let signals = (level, categories.as_slice(), verdicts, concepts);
        self.lexicon.model_features(text, config, signals, &mut f);
        (level, verdicts, f.list)
    }
}

#[cfg(test)]
mod tests;
