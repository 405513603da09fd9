//! Clause frames: a structural reading on top of the phrase lists. `[[frame]]` phrases in
//! the rule files do not count by themselves; they mark parts of a clause, and this module
//! combines the marks:
//! - a wish or an intent ("want", "going to", "ingin", "akan") followed within a few words
//!   of the same clause by a death or suicide word ("die", "disappear", "end things",
//!   "mati", "bunuh diri") is ideation: medium for a wish to be dead, high for an intent,
//!   a suicide word, or a message that also holds a means, a time, an amount or a method
//!   question;
//! - a suicide word with a means, a time or an amount in the message is a plan (high);
//! - a means with an amount or a body site in its sentence ("pills counted out", "knife to
//!   my wrist", "obat … minum semua"), or a method question beside a means or a death word
//!   ("how much would it take", "berapa butir"), is high;
//! - a negator before the wish lowers the frame to distress; a third person as the subject
//!   makes it `third_party` (medium); in a message with a reporting or teaching word, a frame
//!   with no first-person word near it is a mention and does not count.

use serde::Deserialize;

use super::assess::{Counted, Subject, Verdict, first_person_at, preceded_by, subject};
use super::lexicon::{
    CLAUSE, CONJUNCTION, Category, Class, GUARD, HEDGE, Lexicon, NEGATOR, SENTENCE, THIRD_PERSON,
};
use super::net::near;
use crate::domain::CrisisLevel;

/// Words that keep a wish apart from a death word: a negator ("want to not die"), a new
/// clause ("going to be better if i am gone") or a third person ("want him to die").
const APART: Class = NEGATOR | CONJUNCTION | THIRD_PERSON;

/// What a `[[frame]]` phrase marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    /// "want", "wish", "hope", "ingin", "berharap".
    Desire,
    /// "going to", "plan", "decided", "ready", "akan", "siap", "memutuskan".
    Intent,
    /// "die", "be dead", "disappear", "not wake up", "mati", "hilang".
    Death,
    /// "kill myself", "end my life", "jump", "bunuh diri", "mengakhiri hidup".
    Suicide,
    /// "pills", "knife", "rope", "obat", "tali", "racun".
    Method,
    /// An amount or a body site: "all of them", "counted out", "to my wrist", "semua".
    Amount,
    /// "tonight", "tomorrow", "after work", "malam ini", "besok".
    Time,
    /// "how much would it take", "is it painless", "looking up how", "berapa butir".
    Question,
    /// Welcoming a death in the same sentence: "relieved", "would not mind", "lega".
    Acceptance,
}

/// One frame part found in a message.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    pub(crate) role: Role,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Most words between a wish and its death word ("want to be able to die" = 4).
const WINDOW: usize = 4;

fn sentence_of(toks: &[u32], pos: usize) -> (usize, usize) {
    let start = toks[..pos]
        .iter()
        .rposition(|&t| t == SENTENCE)
        .map_or(0, |i| i + 1);
    let end = toks[pos..]
        .iter()
        .position(|&t| t == SENTENCE)
        .map_or(toks.len(), |i| pos + i);
    (start, end)
}

/// Adds what the frames in `marks` amount to to `counted`.
pub(crate) fn combine(
    lex: &Lexicon,
    toks: &[u32],
    marks: &[Mark],
    has_context: bool,
    counted: &mut Vec<Counted>,
    trace: &mut impl FnMut(&str, Verdict),
) {
    if marks.is_empty() {
        return;
    }
    let has = |roles: &[Role]| marks.iter().any(|m| roles.contains(&m.role));
    // A means or a method question makes even a passive wish high; a time or an amount
    // alone does not ("i wish i wouldn't wake up tomorrow" is a wish).
    let escalated = has(&[Role::Method, Role::Question]);
    let mut push = |level, category, mark: &Mark, what: &str, counted: &mut Vec<Counted>| {
        let who = subject(lex, toks, mark.start, mark.end);
        if level == CrisisLevel::None {
            // A negated wish ("i don't want to die"): distress, as for a negated phrase.
            trace(what, Verdict::Negated);
            if !has_context {
                counted.push((CrisisLevel::Low, Category::Distress, mark.start, false));
            }
            return;
        }
        // A game, a recipe, a match: "jump from the bus in fortnite" is no plan.
        let guarded = near(lex, toks, mark.start, usize::MAX, GUARD);
        if (has_context || guarded) && !first_person_at(lex, toks, mark.start, mark.end) {
            trace(what, Verdict::Reported);
            return;
        }
        if who == Subject::Third {
            if preceded_by(lex, toks, mark.start, HEDGE) {
                trace(what, Verdict::Hedged);
                return;
            }
            trace(
                what,
                Verdict::Counted(CrisisLevel::Medium, Category::ThirdParty),
            );
            counted.push((CrisisLevel::Medium, Category::ThirdParty, mark.start, false));
            return;
        }
        trace(what, Verdict::Counted(level, category));
        counted.push((level, category, mark.start, false));
    };

    for target in marks
        .iter()
        .filter(|m| matches!(m.role, Role::Death | Role::Suicide))
    {
        let wish = marks
            .iter()
            .filter(|d| matches!(d.role, Role::Desire | Role::Intent))
            .filter(|d| d.end <= target.start && target.start - d.end <= WINDOW)
            .filter(|d| {
                toks[d.end..target.start]
                    .iter()
                    .all(|&t| t != CLAUSE && t != SENTENCE && lex.classes[t as usize] & APART == 0)
            })
            .max_by_key(|d| d.start);
        if let Some(wish) = wish {
            let span = Mark {
                role: wish.role,
                start: wish.start,
                end: target.end,
            };
            if preceded_by(lex, toks, wish.start, NEGATOR) {
                push(
                    CrisisLevel::None,
                    Category::Distress,
                    wish,
                    "frame: wish + death",
                    counted,
                );
                continue;
            }
            let high = wish.role == Role::Intent || target.role == Role::Suicide || escalated;
            let (level, category) = match (high, wish.role) {
                (false, _) => (CrisisLevel::Medium, Category::PassiveIdeation),
                (true, Role::Intent) => (CrisisLevel::High, Category::Plan),
                (true, _) => (CrisisLevel::High, Category::ActiveIdeation),
            };
            push(level, category, &span, "frame: wish + death", counted);
        } else if target.role == Role::Suicide
            && has(&[Role::Method, Role::Amount, Role::Time, Role::Intent])
            && !preceded_by(lex, toks, target.start, NEGATOR)
        {
            push(
                CrisisLevel::High,
                Category::Plan,
                target,
                "frame: suicide + plan",
                counted,
            );
        }
    }

    // "if i got a terminal diagnosis i'd feel relieved", "kalo jatuh gak selamat juga gak
    // apa-apa": a death welcomed in the same sentence is a passive wish.
    for welcome in marks.iter().filter(|m| m.role == Role::Acceptance) {
        let (from, to) = sentence_of(toks, welcome.start);
        let death = marks.iter().any(|m| {
            matches!(m.role, Role::Death | Role::Suicide) && m.start >= from && m.end <= to
        });
        if death {
            let what = "frame: death + acceptance";
            push(
                CrisisLevel::Medium,
                Category::PassiveIdeation,
                welcome,
                what,
                counted,
            );
        }
    }

    for means in marks.iter().filter(|m| m.role == Role::Method) {
        let (from, to) = sentence_of(toks, means.start);
        let detail = marks
            .iter()
            .any(|m| m.role == Role::Amount && m.start >= from && m.end <= to);
        let asked = has(&[Role::Question]);
        if (detail || asked) && !preceded_by(lex, toks, means.start, NEGATOR) {
            push(
                CrisisLevel::High,
                Category::Means,
                means,
                "frame: means + detail",
                counted,
            );
        }
    }
    let question = marks.iter().find(|m| m.role == Role::Question);
    if let Some(q) = question.filter(|_| has(&[Role::Death, Role::Suicide])) {
        let what = "frame: method question";
        push(CrisisLevel::High, Category::Means, q, what, counted);
    }
}
