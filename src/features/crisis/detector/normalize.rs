//! Text → raw words and boundaries: Unicode NFKC, lower case, diacritics stripped; letters
//! and digits make words, everything else separates them. Clause punctuation (`,` `:` dashes)
//! and sentence punctuation (`.` `!` `?` `;` new lines) are reported so that phrases never
//! span them and negation stays inside its clause. Apostrophes join ("don't" → "dont"),
//! hyphens and emoji only separate ("self-harm" → "self harm").

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// One piece of normalised text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Word(&'a str),
    Clause,
    Sentence,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Join,
    Dot,
    Clause,
    Sentence,
    Space,
}

fn classify(c: char) -> Class {
    match c {
        '\'' | '’' | 'ʼ' | '‘' | '`' => Class::Join,
        '.' => Class::Dot,
        ',' | ':' | '—' | '–' | '(' | ')' => Class::Clause,
        '!' | '?' | ';' | '\n' | '\r' | '¡' | '¿' => Class::Sentence,
        c if c.is_alphabetic() => Class::Letter,
        c if c.is_numeric() => Class::Digit,
        _ => Class::Space,
    }
}

/// Splits `text` into pieces, calling `emit` for each. `buf` is scratch space reused across
/// calls so that a message costs no allocation once the buffer has grown.
pub(crate) fn scan(text: &str, buf: &mut String, emit: impl FnMut(Piece<'_>)) {
    // Most chat is ASCII, where NFKC and accent stripping change nothing: skip them.
    if text.is_ascii() {
        scan_folded(text.chars().map(|c| c.to_ascii_lowercase()), buf, emit);
    } else {
        let folded = text.nfkc().flat_map(char::to_lowercase).flat_map(|c| {
            let mut out = ['\0'; 4];
            let mut count = 0;
            decompose_canonical(c, |d| {
                if !is_combining_mark(d) && count < out.len() {
                    out[count] = d;
                    count += 1;
                }
            });
            out.into_iter().take(count)
        });
        scan_folded(folded, buf, emit);
    }
}

fn scan_folded(
    chars: impl Iterator<Item = char>,
    buf: &mut String,
    mut emit: impl FnMut(Piece<'_>),
) {
    buf.clear();
    let mut word_class = Class::Space;
    // A single '.' ends a sentence; "..." is a pause people put inside a thought
    // ("i just... want to die"), so a run of dots only separates words.
    let mut dots = 0usize;
    for d in chars {
        let class = classify(d);
        if class != Class::Dot && dots > 0 {
            flush(buf, &mut emit);
            if dots == 1 {
                emit(Piece::Sentence);
            }
            dots = 0;
        }
        match class {
            Class::Letter | Class::Digit => {
                // "20mg" → "20", "mg": numbers are matched as a class of their own.
                if !buf.is_empty() && word_class != class {
                    flush(buf, &mut emit);
                }
                word_class = class;
                buf.push(d);
            }
            Class::Join => {}
            Class::Dot => dots += 1,
            Class::Clause => {
                flush(buf, &mut emit);
                emit(Piece::Clause);
            }
            Class::Sentence => {
                flush(buf, &mut emit);
                emit(Piece::Sentence);
            }
            Class::Space => flush(buf, &mut emit),
        }
    }
    flush(buf, &mut emit);
    if dots == 1 {
        emit(Piece::Sentence);
    }
}

fn flush(buf: &mut String, emit: &mut impl FnMut(Piece<'_>)) {
    if !buf.is_empty() {
        emit(Piece::Word(buf));
        buf.clear();
    }
}

/// True when `word` has a run of at least `min` identical characters.
pub(crate) fn has_run(word: &str, min: usize) -> bool {
    let mut prev = None;
    let mut run = 0;
    for c in word.chars() {
        run = if Some(c) == prev { run + 1 } else { 1 };
        if run >= min {
            return true;
        }
        prev = Some(c);
    }
    false
}

/// Writes `word` into `out` with every run of `min` or more identical characters shortened
/// to `keep` ("killl" with 3→2 is "kill", with 2→1 "kil").
pub(crate) fn collapse_runs(word: &str, min: usize, keep: usize, out: &mut String) {
    out.clear();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        let mut run = 1;
        while chars.next_if_eq(&c).is_some() {
            run += 1;
        }
        let n = if run >= min { keep } else { run };
        out.extend(std::iter::repeat_n(c, n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<String> {
        let mut buf = String::new();
        let mut out = Vec::new();
        scan(text, &mut buf, |p| {
            out.push(match p {
                Piece::Word(w) => w.to_string(),
                Piece::Clause => ",".to_string(),
                Piece::Sentence => ".".to_string(),
            })
        });
        out
    }

    #[test]
    fn folds_case_width_and_diacritics() {
        assert_eq!(pieces("ＫＩＬＬ Café NAÏVE"), ["kill", "cafe", "naive"]);
    }

    #[test]
    fn apostrophes_join_and_hyphens_separate() {
        assert_eq!(pieces("I don’t self-harm"), ["i", "dont", "self", "harm"]);
    }

    #[test]
    fn punctuation_marks_clauses_and_sentences_but_ellipsis_does_not() {
        assert_eq!(pieces("no, fine. ok!"), ["no", ",", "fine", ".", "ok", "."]);
        assert_eq!(pieces("i just... want"), ["i", "just", "want"]);
    }

    #[test]
    fn digits_split_from_letters_and_emoji_separate() {
        assert_eq!(pieces("20mg😭pills"), ["20", "mg", "pills"]);
    }

    #[test]
    fn runs_collapse_to_the_requested_length() {
        let mut out = String::new();
        collapse_runs("killl", 3, 2, &mut out);
        assert_eq!(out, "kill");
        collapse_runs("pleeease", 3, 1, &mut out);
        assert_eq!(out, "please");
        assert!(has_run("myselfff", 3));
        assert!(!has_run("kill", 3));
    }
}
