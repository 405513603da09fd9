//! From token ids to a level. Every phrase match is kept unless an idiom overlaps it or a
//! negator stands shortly before it in its clause (`negation_proof` phrases ignore that);
//! ideation with a third person as its nearest subject counts as `third_party` (medium at
//! most, dropped behind a hedge like "might"); `mention` phrases not about the writer are
//! capped (at none by default) in a message with a reporting or teaching word; `needs_context` phrases count only beside another first-person match at medium
//! or above. The level is the highest remaining match.

use super::frames::{Mark, combine};
use super::lexicon::{
    ANY_NEXT, CESSATION, CLAUSE, CONJUNCTION, CONTEXT, Category, Class, FILLER, FIRST_PERSON,
    GUARD, HEDGE, IDIOM, Lexicon, NEGATOR, POSSESSIVE, REASSURANCE, REFLEXIVE, Rule, SENTENCE,
    THIRD_PERSON,
};
use super::net::{GUARD_WINDOW, NetHit, catch, near};
use super::pattern::match_at;
use crate::domain::CrisisLevel;

/// A match that counts: level, category, position, needs_context.
pub(crate) type Counted = (CrisisLevel, Category, usize, bool);

/// One phrase match: a pattern index and its token span.
#[derive(Clone, Copy)]
struct Hit {
    pattern: u32,
    start: usize,
    end: usize,
}

/// What happened to one match, for `Detector::explain` and the model's signals.
#[derive(Clone, Copy)]
pub(crate) enum Verdict {
    Idiom,
    Counted(CrisisLevel, Category),
    SuppressedByIdiom,
    Negated,
    Hedged,
    NotFirstPerson,
    Reported,
    WithoutContext,
    /// Set aside, and no risk explained away: a negated or reported word that counts only
    /// beside others (a wish, a time, "pills") or a distress phrase ("i don't want
    /// advice"), or a third person's phrase whose subject is the writer ("i want to die").
    /// No veto on the learned layer (`model::VETO`).
    Aside,
}

impl Verdict {
    /// One bit per kind of verdict (a counted match by its category).
    pub(crate) fn bit(self) -> u16 {
        let n = match self {
            Verdict::Idiom => 0,
            Verdict::Counted(..) => 1,
            Verdict::SuppressedByIdiom => 2,
            Verdict::Negated => 3,
            Verdict::Hedged => 4,
            Verdict::NotFirstPerson => 5,
            Verdict::Reported => 6,
            Verdict::WithoutContext => 7,
            Verdict::Aside => 8,
        };
        1 << n
    }
}

/// Concept bits (`evaluate`'s `concepts`, features of the learned layer): net word kinds
/// from bit 0, frame roles from bit 12, categories of other phrases from bit 21, their
/// level from bit 32, then the flags below and the word classes present from bit 40.
const ROLE_BIT: u32 = 12;
const CATEGORY_BIT: u32 = 21;
const LEVEL_BIT: u32 = 32;
const IDIOM_BIT: u64 = 1 << 36;
const REASSURED_BIT: u64 = 1 << 37;
const NEGATED_BIT: u64 = 1 << 38;
const CLASS_BIT: u32 = 40;
/// The word classes whose presence is a concept bit, in bit order from `CLASS_BIT`.
const CONCEPT_CLASSES: [Class; 8] = [
    FIRST_PERSON,
    THIRD_PERSON,
    NEGATOR,
    CONTEXT,
    GUARD,
    HEDGE,
    REFLEXIVE,
    POSSESSIVE,
];

/// Assesses the token ids; `trace` sees every match and its verdict; `concepts` gets the
/// concept bits of the message (what kinds of phrase and word it holds, whatever became
/// of them), for the learned layer.
pub(crate) fn evaluate(
    lex: &Lexicon,
    toks: &[u32],
    concepts: &mut u64,
    mut trace: impl FnMut(&str, Verdict),
) -> (CrisisLevel, Vec<&'static str>) {
    // (start, end, is a reassurance) of every idiom.
    let mut idioms: Vec<(usize, usize, bool)> = Vec::new();
    let mut hits: Vec<Hit> = Vec::new();
    for (start, &tok) in toks.iter().enumerate() {
        let Some(candidates) = lex.by_first.get(tok as usize) else {
            continue;
        };
        let next = toks.get(start + 1).copied();
        for &(p, second) in candidates {
            if second != ANY_NEXT && next != Some(second) {
                // `match_at` would fail on the second token.
                continue;
            }
            let pattern = &lex.patterns[p as usize];
            if let Some(end) = match_at(&pattern.elems, toks, start, &lex.classes) {
                if pattern.target == IDIOM || pattern.target == REASSURANCE {
                    idioms.push((start, end, pattern.target == REASSURANCE));
                    trace(&pattern.source, Verdict::Idiom);
                } else {
                    hits.push(Hit {
                        pattern: p,
                        start,
                        end,
                    });
                }
            }
        }
    }
    let has_context = toks.iter().any(|&t| lex.classes[t as usize] & CONTEXT != 0);
    let mut bits = 0u64;
    for &t in toks {
        let class = lex.classes.get(t as usize).copied().unwrap_or(0);
        for (i, &c) in CONCEPT_CLASSES.iter().enumerate() {
            if class & c != 0 {
                bits |= 1 << (CLASS_BIT + i as u32);
            }
        }
    }
    for &(_, _, reassured) in &idioms {
        bits |= if reassured { REASSURED_BIT } else { IDIOM_BIT };
    }

    let mut counted: Vec<Counted> = Vec::with_capacity(hits.len());
    let mut marks: Vec<Mark> = Vec::new();
    let mut net: Vec<NetHit> = Vec::new();
    for hit in &hits {
        let pattern = &lex.patterns[hit.pattern as usize];
        let rule: Rule = lex.rules[pattern.target as usize];
        let overlapping = idioms
            .iter()
            .find(|&&(s, e, _)| hit.start < e && s < hit.end);
        if let Some(&(_, _, reassured)) = overlapping.filter(|_| !rule.idiom_proof) {
            trace(&pattern.source, Verdict::SuppressedByIdiom);
            if reassured && rule.level >= CrisisLevel::Medium {
                counted.push((CrisisLevel::Low, Category::Distress, hit.start, false));
            }
            continue;
        }
        bits |= if let Some(kind) = rule.net {
            1 << kind as u32
        } else if let Some(role) = rule.role {
            1 << (ROLE_BIT + role as u32)
        } else {
            (1 << (CATEGORY_BIT + rule.category as u32)) | (1 << (LEVEL_BIT + rule.level as u32))
        };
        if preceded_by(lex, toks, hit.start, NEGATOR) {
            bits |= NEGATED_BIT;
        }
        if let Some(kind) = rule.net {
            let source = &pattern.source;
            net.push(NetHit {
                kind,
                start: hit.start,
                end: hit.end,
                source,
            });
            continue;
        }
        if let Some(role) = rule.role {
            marks.push(Mark {
                role,
                start: hit.start,
                end: hit.end,
            });
            continue;
        }
        if !rule.negation_proof && preceded_by(lex, toks, hit.start, NEGATOR) {
            // Someone who says "I don't want to die, I'm just tired" is still talking about
            // it: a negated risk phrase is distress, not nothing.
            trace(&pattern.source, rule.explained_away(Verdict::Negated));
            if rule.level >= CrisisLevel::Medium && !rule.needs_context && !has_context {
                counted.push((CrisisLevel::Low, Category::Distress, hit.start, false));
            }
            continue;
        }
        let mut level = rule.level;
        let mut category = rule.category;
        let subject = subject(lex, toks, hit.start, hit.end);
        if rule.first_person && subject == Subject::Third {
            trace(&pattern.source, Verdict::NotFirstPerson);
            continue;
        }
        // "jump from the bus in fortnite": a game, a recipe or a match beside a phrase
        // with nobody as its subject makes it ordinary talk.
        if subject == Subject::Unknown
            && rule.level >= CrisisLevel::Medium
            && near(lex, toks, hit.start, GUARD_WINDOW, GUARD)
            && !first_person_at(lex, toks, hit.start, hit.end)
        {
            trace(&pattern.source, rule.explained_away(Verdict::Reported));
            continue;
        }
        // "i want to die", "i was suicidal": a third person's phrase with the writer right
        // before it as its subject is the writer's own, which the first-person rules read.
        // ("i think my ex wants to die" stays a third person's: "ex" is no listed person
        // word, but "i" is not right before the phrase.)
        if category == Category::ThirdParty && writer_right_before(lex, toks, hit.start) {
            trace(&pattern.source, Verdict::Aside);
            continue;
        }
        let about_others = subject == Subject::Third || category == Category::ThirdParty;
        if about_others && category != Category::Distress {
            // "a friend who might be suicidal" asks about warning signs; it reports no one.
            if preceded_by(lex, toks, hit.start, HEDGE) {
                trace(&pattern.source, Verdict::Hedged);
                continue;
            }
            level = level.min(CrisisLevel::Medium);
            category = Category::ThirdParty;
        }
        // "I'm writing an essay on suicide" is about an essay: only a first-person word
        // right at the phrase ("I am suicidal", "aku ingin gantung diri") keeps it personal.
        if rule.mention && has_context && !first_person_at(lex, toks, hit.start, hit.end) {
            level = level.min(lex.settings.reported_level);
        }
        if level == CrisisLevel::None {
            trace(&pattern.source, rule.explained_away(Verdict::Reported));
            continue;
        }
        counted.push((level, category, hit.start, rule.needs_context));
        if !rule.needs_context {
            trace(&pattern.source, Verdict::Counted(level, category));
        }
    }

    *concepts = bits;
    combine(lex, toks, &marks, has_context, &mut counted, &mut trace);

    // Means and plan words that are ordinary on their own ("pills", "tali", "bridge")
    // count only when the same message already shows the writer's own ideation.
    let anchored = counted.iter().any(|&(level, category, _, needs)| {
        !needs
            && level >= CrisisLevel::Medium
            && !matches!(category, Category::ThirdParty | Category::Mention)
    });
    for hit in &hits {
        let pattern = &lex.patterns[hit.pattern as usize];
        let rule = lex.rules[pattern.target as usize];
        if rule.needs_context && !anchored {
            trace(&pattern.source, Verdict::WithoutContext);
        }
    }
    counted.retain(|&(_, _, _, needs)| anchored || !needs);
    // The net comes last, so that its medium does not anchor the context-bound words.
    catch(lex, toks, &net, has_context, &mut counted, &mut trace);

    counted.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
    let level = counted.first().map_or(CrisisLevel::None, |c| c.0);
    let mut categories: Vec<&'static str> = Vec::new();
    for &(_, category, _, _) in &counted {
        if !categories.contains(&category.as_str()) {
            categories.push(category.as_str());
        }
    }
    (level, categories)
}

/// The writer's own pronoun right before `start` (fillers aside) as a subject ("i want to
/// die", "aku mau mati"), not as an owner after a noun ("teman aku mau mati").
fn writer_right_before(lex: &Lexicon, toks: &[u32], start: usize) -> bool {
    toks[..start]
        .iter()
        .rposition(|&t| lex.classes[t as usize] & FILLER == 0)
        .is_some_and(|at| {
            lex.classes[toks[at] as usize] & FIRST_PERSON != 0 && !owner_at(lex, toks, at)
        })
}

/// The possessive pronoun at `i` follows a word, so it names an owner, not a subject:
/// Indonesian puts the owner after the noun ("teman aku", "kelas aku").
fn owner_at(lex: &Lexicon, toks: &[u32], i: usize) -> bool {
    lex.classes[toks[i] as usize] & POSSESSIVE != 0
        && i.checked_sub(1).is_some_and(|j| {
            let prev = toks[j];
            prev != CLAUSE
                && prev != SENTENCE
                && lex.classes[prev as usize] & (CONJUNCTION | NEGATOR | FIRST_PERSON) == 0
        })
}

/// A word of class `class` (a negator, a hedge) within `negation_window` words before
/// `start`, in the same clause and not behind a new first-person subject ("I don't know
/// why | I want to die").
pub(crate) fn preceded_by(lex: &Lexicon, toks: &[u32], start: usize, class: Class) -> bool {
    let window = lex.settings.negation_window;
    for &tok in toks[..start].iter().rev().take(window) {
        if tok == CLAUSE || tok == SENTENCE {
            return false;
        }
        let classes = lex.classes[tok as usize];
        if classes & class != 0 {
            return true;
        }
        // "can't stop thinking about it": the negator reaches the stopping only.
        if classes & (CONJUNCTION | FIRST_PERSON) != 0
            || (class == NEGATOR && classes & CESSATION != 0)
        {
            return false;
        }
    }
    false
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    First,
    Third,
    Unknown,
}

/// Who a match is about. A reflexive inside it decides ("kill herself", "hurt myself");
/// otherwise the nearest person word before it in its sentence ("my friend says she wants
/// to die", "temanku mau bunuh diri"). Indonesian puts the owner after the noun ("teman
/// aku", "kelas aku"), so a possessive word right after another word is skipped.
pub(crate) fn subject(lex: &Lexicon, toks: &[u32], start: usize, end: usize) -> Subject {
    for &tok in &toks[start..end] {
        let class = lex.classes[tok as usize];
        if class & REFLEXIVE != 0 {
            return if class & THIRD_PERSON != 0 {
                Subject::Third
            } else {
                Subject::First
            };
        }
    }
    for (i, &tok) in toks[..start].iter().enumerate().rev() {
        if tok == SENTENCE {
            break;
        }
        let class = lex.classes[tok as usize];
        if class & FIRST_PERSON != 0 {
            if owner_at(lex, toks, i) {
                continue;
            }
            return Subject::First;
        }
        if class & THIRD_PERSON != 0 {
            return Subject::Third;
        }
    }
    Subject::Unknown
}

/// A first-person word inside the match, or within `negation_window` words before it with
/// no third person nearer ("a student tells me they are self harming" is about them).
pub(crate) fn first_person_at(lex: &Lexicon, toks: &[u32], start: usize, end: usize) -> bool {
    let from = start.saturating_sub(lex.settings.negation_window);
    let class = |t: &u32| lex.classes[*t as usize];
    toks[start..end]
        .iter()
        .any(|t| class(t) & FIRST_PERSON != 0)
        || toks[from..start]
            .iter()
            .rev()
            .map(class)
            .find(|c| c & (FIRST_PERSON | THIRD_PERSON) != 0)
            .is_some_and(|c| c & FIRST_PERSON != 0)
}
