//! Phrase patterns: sequences of word ids matched against a message's token ids.
//!
//! Syntax of a phrase in the lexicon, slot by slot (slots are separated by spaces):
//! `word`; `a|b` (either word); `(a b|c)` (either word sequence); `[a b|c]` (optional);
//! `*` (at most one word of any kind, but not a negator); `**` (at most three such words);
//! `#` (a number).
//! Alternatives are expanded when the lexicon is compiled, so matching is a plain walk.

use super::lexicon::{Class, FIRST_WORD, NEGATOR};

/// Pattern element meaning "zero or one word".
pub(crate) const GAP: u32 = u32::MAX;
/// Pattern element meaning "zero to three words".
pub(crate) const GAP3: u32 = u32::MAX - 1;
/// Token id of any number.
pub(crate) const NUM: u32 = 1;

/// Most concrete sequences one phrase may expand to; more is almost surely a typo.
const MAX_EXPANSIONS: usize = 2048;

/// One concrete word sequence and what it points at (a rule index, or `IDIOM`).
pub(crate) struct Pattern {
    pub(crate) elems: Box<[u32]>,
    pub(crate) target: u32,
    /// The phrase as written, shared by every expansion of it (for traces).
    pub(crate) source: std::sync::Arc<str>,
}

/// A slot is a list of alternatives; an optional slot holds an empty alternative.
type Slot = Vec<Vec<u32>>;

/// Parses a phrase into slots, turning each alternative's text into ids with `ids_of`.
pub(crate) fn parse_slots(
    phrase: &str,
    mut ids_of: impl FnMut(&str) -> Vec<u32>,
) -> Result<Vec<Slot>, String> {
    let mut slots = Vec::new();
    let mut rest = phrase.trim();
    while !rest.is_empty() {
        let (body, optional, tail) = match rest.as_bytes()[0] {
            open @ (b'[' | b'(') => {
                let close = if open == b'[' { ']' } else { ')' };
                let end = rest
                    .find(close)
                    .ok_or_else(|| format!("missing '{close}'"))?;
                (&rest[1..end], open == b'[', &rest[end + 1..])
            }
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (&rest[..end], false, &rest[end..])
            }
        };
        if body.contains(['[', ']', '(', ')']) {
            return Err("groups cannot be nested".into());
        }
        let mut slot: Slot = Vec::new();
        for alt in body.split('|') {
            let alt = alt.trim();
            if alt.is_empty() {
                return Err("empty alternative".into());
            }
            if !matches!(alt, "*" | "**" | "#") && !alt.contains(char::is_alphanumeric) {
                return Err(format!("{alt:?} is not a word (optional words go in [ ])"));
            }
            slot.push(ids_of(alt));
        }
        if optional {
            slot.push(Vec::new());
        }
        slots.push(slot);
        rest = tail.trim_start();
    }
    if slots.is_empty() {
        return Err("empty phrase".into());
    }
    Ok(slots)
}

/// Every concrete sequence the slots describe.
pub(crate) fn expand(slots: &[Slot]) -> Result<Vec<Vec<u32>>, String> {
    let mut out: Vec<Vec<u32>> = vec![Vec::new()];
    for slot in slots {
        let mut next = Vec::with_capacity(out.len() * slot.len());
        for prefix in &out {
            for alt in slot {
                let mut seq = prefix.clone();
                seq.extend_from_slice(alt);
                next.push(seq);
            }
        }
        next.sort();
        next.dedup();
        if next.len() > MAX_EXPANSIONS {
            return Err(format!("expands to more than {MAX_EXPANSIONS} phrases"));
        }
        out = next;
    }
    out.retain(|seq| !seq.is_empty());
    if out.is_empty() {
        return Err("phrase has no words left after normalisation".into());
    }
    Ok(out)
}

/// If `elems` match `toks` from `pos`, the end of the match (exclusive).
pub(crate) fn match_at(
    elems: &[u32],
    toks: &[u32],
    pos: usize,
    classes: &[Class],
) -> Option<usize> {
    let Some((&first, rest)) = elems.split_first() else {
        return Some(pos);
    };
    if first == GAP || first == GAP3 {
        // Prefer the shorter match; fillers must be words and must not be negators, or
        // "want to not die" would read as "want to die".
        let most = if first == GAP { 1 } else { 3 };
        let mut at = pos;
        for skipped in 0..=most {
            if skipped > 0 {
                let tok = *toks.get(at)?;
                let is_word = tok >= FIRST_WORD || tok == 0 || tok == NUM;
                if !is_word || classes[tok as usize] & NEGATOR != 0 {
                    return None;
                }
                at += 1;
            }
            if let Some(end) = match_at(rest, toks, at, classes) {
                return Some(end);
            }
        }
        return None;
    }
    if *toks.get(pos)? == first {
        match_at(rest, toks, pos + 1, classes)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<u32> {
        text.split(' ').map(|w| w.len() as u32 + 10).collect()
    }

    #[test]
    fn slots_expand_alternatives_groups_and_options() {
        let slots = parse_slots("a|bb (ccc dddd|e) [ffffff]", ids).expect("valid");
        let all = expand(&slots).expect("small");
        assert_eq!(all.len(), 2 * 2 * 2);
        assert!(all.contains(&vec![11, 13, 14]));
        assert!(all.contains(&vec![12, 11, 16]));
    }

    #[test]
    fn bad_phrases_are_reported() {
        assert!(parse_slots("a (b", ids).is_err());
        assert!(parse_slots("a [b (c)]", ids).is_err());
        assert!(parse_slots("a||b", ids).is_err());
        assert!(parse_slots("a (b)? c", ids).is_err());
    }

    #[test]
    fn gap_skips_one_word_but_not_a_negator() {
        let classes: [Class; 8] = [0, 0, 0, 0, 0, 0, NEGATOR, 0];
        let elems = [4, GAP, 5];
        assert_eq!(match_at(&elems, &[4, 5], 0, &classes), Some(2));
        assert_eq!(match_at(&elems, &[4, 7, 5], 0, &classes), Some(3));
        assert_eq!(match_at(&elems, &[4, 6, 5], 0, &classes), None);
        assert_eq!(match_at(&elems, &[4, 7, 7, 5], 0, &classes), None);
        let wide = [4, GAP3, 5];
        assert_eq!(match_at(&wide, &[4, 7, 7, 7, 5], 0, &classes), Some(5));
        assert_eq!(match_at(&wide, &[4, 7, 7, 7, 7, 5], 0, &classes), None);
    }
}
