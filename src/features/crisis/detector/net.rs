//! The safety net: a broad, vocabulary-based reading under the phrase rules and frames, so
//! that a person in danger who words it in a way no phrase foresaw is still caught.
//! `[[net]]` entries in the rule files list single words and short stems by kind: death,
//! suicide and its euphemisms, self-harm, means, preparatory acts (the primary kinds), the
//! words "die" and "dead" (dying: medium beside another kind), and injuries,
//! self-reference ("sendiri"), a time, an intent and a wish (secondary kinds that only add
//! to another). A net word counts when
//! - no idiom overlaps it (checked before, like every phrase),
//! - no negator stands before it in its clause ("i would never hurt myself"),
//! - its sentence holds no guard word (a game, cooking, sports, study, news, lyrics, a
//!   film, a deadline, a phone or battery, hair dye) and, in a message with a reporting or
//!   teaching word, its sentence has the writer in it,
//! - its sentence has a first-person word or no third person at all (Indonesian often
//!   drops the subject; "my friend wants to die" is left to the `third_party` rules).
//!
//! One primary kind (or an injury with self-reference) makes the message medium; two or
//! more distinct kinds, one of them primary, make it high (a means with a goodbye, a death
//! word with a time).

use serde::Deserialize;

use super::assess::{Counted, Subject, Verdict, preceded_by, subject};
use super::category::Category;
use super::lexicon::{CONTEXT, Class, FIRST_PERSON, GUARD, HEDGE, Lexicon, NEGATOR, SENTENCE};
use crate::domain::CrisisLevel;

/// How many words either side of a net word a guard word reaches (within its sentence).
pub(crate) const GUARD_WINDOW: usize = 8;

/// What a `[[net]]` word is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Death,
    Suicide,
    SelfHarm,
    Means,
    Preparatory,
    Dying,
    Injury,
    SelfRef,
    Time,
    Intent,
    Desire,
    Question,
}

impl Kind {
    fn primary(self) -> bool {
        matches!(
            self,
            Kind::Death | Kind::Suicide | Kind::SelfHarm | Kind::Means | Kind::Preparatory
        )
    }

    /// `verdict` (negated, reported) for a death, dying or other primary word; `Aside` for a
    /// secondary one ("i don't want advice", "not this time"): setting that aside explains
    /// no risk away (as [`super::lexicon::Rule::explained_away`] for phrases).
    fn explained_away(self, verdict: Verdict) -> Verdict {
        if self.primary() || self == Kind::Dying {
            verdict
        } else {
            Verdict::Aside
        }
    }

    fn category(self) -> Category {
        match self {
            Kind::Death | Kind::Dying | Kind::Desire => Category::PassiveIdeation,
            Kind::Suicide => Category::ActiveIdeation,
            Kind::SelfHarm | Kind::Injury | Kind::SelfRef => Category::SelfHarm,
            Kind::Means => Category::Means,
            Kind::Preparatory => Category::Preparatory,
            Kind::Time | Kind::Intent => Category::Plan,
            Kind::Question => Category::Means,
        }
    }
}

/// One net word found in a message.
pub(crate) struct NetHit<'l> {
    pub(crate) kind: Kind,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) source: &'l str,
}

/// A word of `class` within `reach` words of `pos`, in its sentence.
pub(crate) fn near(lex: &Lexicon, toks: &[u32], pos: usize, reach: usize, class: Class) -> bool {
    let before = toks[..pos]
        .iter()
        .rev()
        .take(reach)
        .take_while(|&&t| t != SENTENCE);
    let after = toks[pos..]
        .iter()
        .take(reach)
        .take_while(|&&t| t != SENTENCE);
    before
        .chain(after)
        .any(|&t| lex.classes[t as usize] & class != 0)
}

/// Adds what the net words in `hits` amount to to `counted`.
pub(crate) fn catch(
    lex: &Lexicon,
    toks: &[u32],
    hits: &[NetHit],
    has_context: bool,
    counted: &mut Vec<Counted>,
    trace: &mut impl FnMut(&str, Verdict),
) {
    let mut kinds: u16 = 0;
    let mut first: Option<(Kind, usize)> = None;
    for hit in hits {
        if preceded_by(lex, toks, hit.start, NEGATOR) {
            trace(hit.source, hit.kind.explained_away(Verdict::Negated));
            continue;
        }
        let personal = near(lex, toks, hit.start, usize::MAX, FIRST_PERSON);
        if near(lex, toks, hit.start, GUARD_WINDOW, GUARD | CONTEXT) || (has_context && !personal) {
            trace(hit.source, hit.kind.explained_away(Verdict::Reported));
            continue;
        }
        let about_others = subject(lex, toks, hit.start, hit.end) == Subject::Third;
        if about_others && (!personal || preceded_by(lex, toks, hit.start, HEDGE)) {
            trace(hit.source, Verdict::NotFirstPerson);
            continue;
        }
        kinds |= 1 << hit.kind as u16;
        let better =
            |(k, _): (Kind, usize)| !k.primary() && (hit.kind.primary() || hit.kind == Kind::Dying);
        if first.is_none_or(better) {
            first = Some((hit.kind, hit.start));
        }
    }
    let Some((kind, start)) = first else {
        return;
    };
    let bit = |k: Kind| kinds & (1 << k as u16) != 0;
    let distinct = kinds.count_ones();
    // A wish keeps a death word passive ("hoping i never wake up" is medium).
    let escalating = (kinds & !(1 << Kind::Desire as u16)).count_ones();
    let level = if kind.primary() && escalating >= 2 {
        CrisisLevel::High
    } else if kind.primary()
        || (bit(Kind::Injury) && bit(Kind::SelfRef))
        || (bit(Kind::Dying) && distinct >= 2)
    {
        CrisisLevel::Medium
    } else {
        return;
    };
    let category = kind.category();
    for hit in hits {
        if kinds & (1 << hit.kind as u16) != 0 {
            trace(hit.source, Verdict::Counted(level, category));
        }
    }
    counted.push((level, category, start, false));
}
