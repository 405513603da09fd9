//! Message → token ids. Each raw word is looked up as is, then with repeated letters
//! collapsed (runs of 3+ to 2, then to 1, then doubled letters to 1: "killl" → "kill",
//! "pleeease" → "please", "diee" → "die"), then without an Indonesian suffix ("hidupku" →
//! "hidup"). A word found in the replacement table becomes its replacement ("gak" →
//! "tidak", "dont" → "do not"); filler words vanish; unknown words stay as `UNKNOWN` so
//! that they still keep phrases apart.

use super::lexicon::{CLAUSE, FILLER, Lexicon, SENTENCE, UNKNOWN};
use super::normalize::{Piece, collapse_runs, has_run, scan};
use super::pattern::NUM;

/// Reusable buffers for one assessment.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) tokens: Vec<u32>,
    word: String,
    variant: String,
}

impl Lexicon {
    /// Fills `scratch.tokens` with the ids of `text`; boundaries never repeat or lead.
    pub(crate) fn tokenize(&self, text: &str, scratch: &mut Scratch) {
        let Scratch {
            tokens,
            word,
            variant,
        } = scratch;
        tokens.clear();
        scan(text, word, |piece| match piece {
            Piece::Word(w) => self.push_word(w, variant, tokens),
            Piece::Clause => {
                if tokens.last().is_some_and(|&t| t != CLAUSE && t != SENTENCE) {
                    tokens.push(CLAUSE);
                }
            }
            Piece::Sentence => match tokens.last_mut() {
                Some(last) if *last == CLAUSE => *last = SENTENCE,
                Some(last) if *last != SENTENCE => tokens.push(SENTENCE),
                _ => {}
            },
        });
    }

    fn push_word(&self, word: &str, variant: &mut String, out: &mut Vec<u32>) {
        if self.lookup_or_stem(word, out) {
            return;
        }
        if word.chars().all(char::is_numeric) {
            out.push(NUM);
            return;
        }
        for (min, keep) in [(3, 2), (3, 1), (2, 1)] {
            if has_run(word, min) {
                collapse_runs(word, min, keep, variant);
                if self.lookup_or_stem(variant, out) {
                    return;
                }
            }
        }
        if let Some(id) = self.fuzzy_match(word) {
            out.push(id);
            return;
        }
        out.push(UNKNOWN);
    }

    fn lookup_or_stem(&self, word: &str, out: &mut Vec<u32>) -> bool {
        self.lookup(word, out)
            || self
                .strip_suffix(word)
                .is_some_and(|stem| self.lookup(stem, out))
    }

    /// A key word one edit (insertion, deletion, substitution or swap of neighbours) away
    /// from `word`. Only long words with the same first letter qualify, so that "skill" never
    /// becomes "kill" and "lovely" never "lonely".
    fn fuzzy_match(&self, word: &str) -> Option<u32> {
        let w = word.as_bytes();
        if w.len() < 5 {
            return None;
        }
        self.fuzzy
            .iter()
            .find(|(key, _)| {
                key.len() >= 6 && key.as_bytes()[0] == w[0] && one_edit(key.as_bytes(), w)
            })
            .map(|(_, id)| *id)
    }

    /// Pushes the ids for a known word (its replacement, minus fillers); false if unknown.
    fn lookup(&self, word: &str, out: &mut Vec<u32>) -> bool {
        let keep = |id: &u32| self.classes[*id as usize] & FILLER == 0;
        if let Some(ids) = self.replace.get(word) {
            out.extend(ids.iter().copied().filter(keep));
            true
        } else if let Some(&id) = self.vocab.get(word) {
            if keep(&id) {
                out.push(id);
            }
            true
        } else {
            false
        }
    }
}

/// Optimal-string-alignment distance between `a` and `b` is exactly one.
fn one_edit(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return false;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let prefix = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    match long.len() - short.len() {
        0 => {
            let rest = prefix + 1;
            short[rest..] == long[rest..]
                || (rest < short.len()
                    && short[prefix] == long[rest]
                    && short[rest] == long[prefix]
                    && short[rest + 1..] == long[rest + 1..])
        }
        1 => short[prefix..] == long[prefix + 1..],
        _ => false,
    }
}

impl Lexicon {
    /// The tokens as words (`?` unknown, `#` number, `,` and `.` boundaries), for `explain`.
    pub(crate) fn describe(&self, tokens: &[u32]) -> String {
        let names: Vec<&str> = tokens
            .iter()
            .map(|&t| match t {
                UNKNOWN => "?",
                NUM => "#",
                CLAUSE => ",",
                SENTENCE => ".",
                _ => self
                    .vocab
                    .iter()
                    .find(|(_, id)| **id == t)
                    .map_or("?", |(w, _)| w),
            })
            .collect();
        names.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::one_edit;

    #[test]
    fn one_edit_covers_typos_and_nothing_more() {
        assert!(one_edit(b"suicide", b"sucide"));
        assert!(one_edit(b"myself", b"myslef"));
        assert!(one_edit(b"kesepian", b"ksepian"));
        assert!(one_edit(b"suicide", b"suicode"));
        assert!(!one_edit(b"suicide", b"suicide"));
        assert!(!one_edit(b"suicide", b"sucdie"));
        assert!(!one_edit(b"myself", b"himself"));
    }
}
