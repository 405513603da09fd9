//! Why a lexicon directory could not be loaded: always the file, then the problem.

use std::fmt;
use std::path::PathBuf;

/// A lexicon file that is missing, is not valid TOML, or holds a rule the detector cannot
/// compile. `Display` names the file first so an admin can find the line to fix.
#[derive(Debug)]
pub enum LexiconError {
    /// The file could not be read.
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected shape.
    Parse { file: PathBuf, message: String },
    /// The file parsed but an entry is unusable (an empty phrase, a bad pattern, …).
    Invalid { file: PathBuf, message: String },
}

impl fmt::Display for LexiconError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LexiconError::Io { file, source } => {
                write!(f, "{}: cannot read: {source}", file.display())
            }
            LexiconError::Parse { file, message } => {
                write!(f, "{}: invalid TOML: {message}", file.display())
            }
            LexiconError::Invalid { file, message } => write!(f, "{}: {message}", file.display()),
        }
    }
}

impl std::error::Error for LexiconError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LexiconError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
