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
//! The level is the highest match left. The lexicon lives in TOML files an admin can copy and tune.

mod assess;
mod category;
mod error;
mod frames;
mod lexicon;
mod net;
mod normalize;
mod pattern;
mod tokens;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::Path;

pub use crate::domain::CrisisLevel;
pub use error::LexiconError;

use assess::{Verdict, evaluate};
use lexicon::{IDIOMS_FILE, Lexicon, NORMALIZE_FILE, RULE_FILES};
use tokens::Scratch;

const BUILTIN_NORMALIZE: &str = include_str!("../../../../config/crisis/normalize.toml");
const BUILTIN_IDIOMS: &str = include_str!("../../../../config/crisis/idioms.toml");
const BUILTIN_RULES: [(&str, &str); 2] = [
    ("en.toml", include_str!("../../../../config/crisis/en.toml")),
    ("id.toml", include_str!("../../../../config/crisis/id.toml")),
];

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
}

thread_local! {
    // Token buffers reused across calls on the same thread, so that a typical message
    // costs only the result's allocation.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
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
        Detector { lexicon }
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
        Ok(Detector { lexicon })
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
            };
            let _ = writeln!(out, "  {source:?}: {what}");
        });
        let tokens = SCRATCH.with_borrow(|s| self.lexicon.describe(&s.tokens));
        format!(
            "{:?} {:?}\n  tokens: {tokens}\n{out}",
            assessment.level, assessment.categories
        )
    }

    fn run(&self, text: &str, trace: impl FnMut(&str, Verdict)) -> Assessment {
        SCRATCH.with_borrow_mut(|scratch| {
            self.lexicon.tokenize(text, scratch);
            let (level, categories) = evaluate(&self.lexicon, &scratch.tokens, trace);
            Assessment { level, categories }
        })
    }
}

#[cfg(test)]
mod tests;
