//! The lexicon files and their compiled form. `normalize.toml` holds word replacements
//! (colloquial Indonesian, English contractions, misspellings) and word classes; each
//! language file holds rules (a level, a category, flags and phrases); `idioms.toml` holds
//! phrases that cancel any risk phrase they overlap. Phrases are written in plain text and
//! normalised exactly like messages, so "don't" and "pengen" in a phrase just work.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::assess::Verdict;
pub(crate) use super::category::Category;
use super::error::LexiconError;
use super::frames::Role;
use super::net::Kind;
use super::normalize::{Piece, scan};
use super::pattern::{GAP, GAP3, NUM, Pattern, expand, parse_slots};
use crate::domain::CrisisLevel;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalizeFile {
    /// Groups of `word = "replacement words"`; the group names are only for readers.
    #[serde(default)]
    replace: BTreeMap<String, BTreeMap<String, String>>,
    words: WordClasses,
    #[serde(default)]
    settings: Settings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WordClasses {
    filler: Vec<String>,
    negators: Vec<String>,
    conjunctions: Vec<String>,
    first_person: Vec<String>,
    third_person: Vec<String>,
    possessive: Vec<String>,
    hedges: Vec<String>,
    reflexive: Vec<String>,
    fuzzy: Vec<String>,
    context: Vec<String>,
    #[serde(default)]
    guard: Vec<String>,
    #[serde(default)]
    cessation: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Settings {
    pub(crate) negation_window: usize,
    pub(crate) strip_suffixes: Vec<String>,
    /// The most a `mention` phrase counts for in a message with a context word.
    pub(crate) reported_level: CrisisLevel,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            negation_window: 4,
            strip_suffixes: Vec::new(),
            reported_level: CrisisLevel::None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rule: Vec<RuleEntry>,
    /// Parts of a clause (a wish, a death word, a means, a time …) combined by `frames.rs`.
    #[serde(default)]
    frame: Vec<PartEntry<Role>>,
    /// Words of the safety net (`net.rs`), by kind.
    #[serde(default)]
    net: Vec<PartEntry<Kind>>,
}

/// A `[[frame]]` part (`role = ...`) or a `[[net]]` word list (`kind = ...`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartEntry<K> {
    #[serde(alias = "kind")]
    role: K,
    phrases: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    level: CrisisLevel,
    category: Category,
    #[serde(default)]
    negation_proof: bool,
    #[serde(default)]
    mention: bool,
    #[serde(default)]
    needs_context: bool,
    #[serde(default)]
    idiom_proof: bool,
    #[serde(default)]
    first_person: bool,
    phrases: Vec<String>,
}

/// How a rule's matches are treated (see the crate docs for the rules themselves).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rule {
    pub(crate) level: CrisisLevel,
    pub(crate) category: Category,
    pub(crate) negation_proof: bool,
    pub(crate) mention: bool,
    pub(crate) needs_context: bool,
    pub(crate) idiom_proof: bool,
    pub(crate) first_person: bool,
    /// Set for a `[[frame]]` part: it marks a span instead of counting.
    pub(crate) role: Option<Role>,
    /// Set for a `[[net]]` word: the safety net weighs it.
    pub(crate) net: Option<Kind>,
}

impl Rule {
    /// `verdict` (negated, reported) for a phrase that is risk by itself or a mention of a
    /// death ("killed himself" in the news); `Aside` for one that counts only beside others
    /// ("pills", "this time") or is only distress: setting those aside explains no risk away.
    pub(crate) fn explained_away(self, verdict: Verdict) -> Verdict {
        if self.mention || (self.level >= CrisisLevel::Medium && !self.needs_context) {
            verdict
        } else {
            Verdict::Aside
        }
    }
}

/// Word-class bits, one `Class` per vocabulary id.
pub(crate) type Class = u16;
pub(crate) const FILLER: Class = 1;
pub(crate) const NEGATOR: Class = 2;
pub(crate) const CONJUNCTION: Class = 4;
pub(crate) const FIRST_PERSON: Class = 8;
pub(crate) const THIRD_PERSON: Class = 16;
pub(crate) const CONTEXT: Class = 32;
pub(crate) const POSSESSIVE: Class = 64;
pub(crate) const HEDGE: Class = 128;
pub(crate) const REFLEXIVE: Class = 256;
pub(crate) const FUZZY: Class = 512;
/// Games, cooking, sports, study, news, lyrics, films, deadlines, phones: no net word
/// counts in a sentence with one of these.
pub(crate) const GUARD: Class = 1024;
/// Stop, quit, berhenti: a negator before one of these negates the stopping, not what
/// follows ("i can't stop thinking about ending it").
pub(crate) const CESSATION: Class = 2048;

/// Token ids below `FIRST_WORD` are not words.
pub(crate) const UNKNOWN: u32 = 0;
pub(crate) const CLAUSE: u32 = 2;
pub(crate) const SENTENCE: u32 = 3;
pub(crate) const FIRST_WORD: u32 = 4;

/// Target of an idiom pattern.
pub(crate) const IDIOM: u32 = u32::MAX;
/// Target of a phrase in the `reassurance` group of `idioms.toml`: it cancels the risk
/// phrases it overlaps like an idiom, but what it cancels still counts as distress.
pub(crate) const REASSURANCE: u32 = u32::MAX - 1;

/// In [`Lexicon::by_first`]: the pattern's second element is not one fixed token (a gap,
/// or the pattern is one word long).
pub(crate) const ANY_NEXT: u32 = u32::MAX;

/// The compiled lexicon: a vocabulary of interned words, replacements to ids, word classes
/// and the phrase patterns indexed by their first token.
pub(crate) struct Lexicon {
    /// Looked up for every word of every message: a fast hash. Built at start and only read
    /// after, so nothing a client sends can fill it with colliding keys.
    pub(crate) vocab: HashMap<Box<str>, u32, crate::FastHash>,
    pub(crate) replace: HashMap<Box<str>, Box<[u32]>, crate::FastHash>,
    /// Each id's word (empty below `FIRST_WORD`), for the model's normalised text.
    pub(crate) names: Vec<Box<str>>,
    pub(crate) classes: Vec<Class>,
    /// Words that misspellings one edit away are read as ("suicde", "ksepian").
    pub(crate) fuzzy: Vec<(Box<str>, u32)>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) patterns: Vec<Pattern>,
    /// Per first token, the patterns that start with it, in pattern order, each with the
    /// token its second element must be ([`ANY_NEXT`] when that is not one fixed token): a
    /// message's common words ("how" starts about 300 patterns) are mostly ruled out by
    /// that one comparison, without reading the pattern.
    pub(crate) by_first: Vec<Vec<(u32, u32)>>,
    pub(crate) settings: Settings,
}

/// The file names a lexicon directory must hold, in load order.
pub(crate) const NORMALIZE_FILE: &str = "normalize.toml";
pub(crate) const IDIOMS_FILE: &str = "idioms.toml";
pub(crate) const RULE_FILES: [&str; 2] = ["en.toml", "id.toml"];

fn parse<T: for<'de> Deserialize<'de>>(name: &str, text: &str) -> Result<T, LexiconError> {
    toml::from_str(text).map_err(|e| LexiconError::Parse {
        file: name.into(),
        message: e.to_string(),
    })
}

fn invalid(name: &str, message: String) -> LexiconError {
    LexiconError::Invalid {
        file: name.into(),
        message,
    }
}

/// Splits a lexicon entry into normalised words, exactly as a message would be split.
pub(crate) fn words_of(text: &str) -> Vec<String> {
    let mut buf = String::new();
    let mut out = Vec::new();
    scan(text, &mut buf, |piece| {
        if let Piece::Word(w) = piece {
            out.push(w.to_string());
        }
    });
    out
}

impl Lexicon {
    /// Compiles the lexicon from `(file name, contents)` pairs: `normalize`, `idioms` and
    /// the rule files. `dir` only prefixes file names in errors.
    pub(crate) fn compile(
        dir: &Path,
        normalize: &str,
        idioms: &str,
        rule_files: &[(&str, &str)],
    ) -> Result<Lexicon, LexiconError> {
        let path = |name: &str| dir.join(name).display().to_string();
        let norm_name = path(NORMALIZE_FILE);
        let norm: NormalizeFile = parse(&norm_name, normalize)?;
        let mut lex = Lexicon {
            vocab: HashMap::default(),
            replace: HashMap::default(),
            names: Vec::new(),
            classes: vec![0; FIRST_WORD as usize],
            rules: Vec::new(),
            patterns: Vec::new(),
            by_first: Vec::new(),
            fuzzy: Vec::new(),
            settings: norm.settings,
        };

        let classes = [
            (&norm.words.filler, FILLER),
            (&norm.words.negators, NEGATOR),
            (&norm.words.conjunctions, CONJUNCTION),
            (&norm.words.first_person, FIRST_PERSON),
            (&norm.words.third_person, THIRD_PERSON),
            (&norm.words.context, CONTEXT),
            (&norm.words.possessive, POSSESSIVE),
            (&norm.words.hedges, HEDGE),
            (&norm.words.reflexive, REFLEXIVE),
            (&norm.words.fuzzy, FUZZY),
            (&norm.words.guard, GUARD),
            (&norm.words.cessation, CESSATION),
        ];
        for (list, bit) in classes {
            for entry in list {
                let words = words_of(entry);
                let [word] = words.as_slice() else {
                    return Err(invalid(&norm_name, format!("{entry:?} is not one word")));
                };
                let id = lex.intern(word);
                lex.classes[id as usize] |= bit;
            }
        }
        for (group, table) in &norm.replace {
            for (from, to) in table {
                let key = words_of(from);
                let [key] = key.as_slice() else {
                    return Err(invalid(
                        &norm_name,
                        format!("replace.{group}: key {from:?} is not one word"),
                    ));
                };
                let ids: Box<[u32]> = words_of(to).iter().map(|w| lex.intern(w)).collect();
                if ids.is_empty() {
                    return Err(invalid(
                        &norm_name,
                        format!("replace.{group}.{from}: empty replacement"),
                    ));
                }
                lex.replace.insert(key.as_str().into(), ids);
            }
        }

        let idiom_name = path(IDIOMS_FILE);
        let idioms: BTreeMap<String, Vec<String>> = parse(&idiom_name, idioms)?;
        for (group, phrases) in &idioms {
            for phrase in phrases {
                let target = if group == "reassurance" {
                    REASSURANCE
                } else {
                    IDIOM
                };
                lex.add_phrase(phrase, target)
                    .map_err(|m| invalid(&idiom_name, format!("{group}: {phrase:?}: {m}")))?;
            }
        }

        for (name, text) in rule_files {
            let name = path(name);
            let file: RulesFile = parse(&name, text)?;
            for (n, entry) in file.rule.iter().enumerate() {
                let index = lex.rules.len() as u32;
                lex.rules.push(Rule {
                    level: entry.level,
                    category: entry.category,
                    negation_proof: entry.negation_proof,
                    mention: entry.mention,
                    needs_context: entry.needs_context,
                    idiom_proof: entry.idiom_proof,
                    first_person: entry.first_person,
                    role: None,
                    net: None,
                });
                lex.add_phrases(&name, "rule", n, &entry.phrases, index)?;
            }
            let parts = file.frame.iter().map(|f| (Some(f.role), None, &f.phrases));
            let nets = file.net.iter().map(|e| (None, Some(e.role), &e.phrases));
            for (n, (role, net, phrases)) in parts.chain(nets).enumerate() {
                let index = lex.rules.len() as u32;
                lex.rules.push(Rule {
                    level: CrisisLevel::None,
                    category: Category::Distress,
                    negation_proof: false,
                    mention: false,
                    needs_context: false,
                    idiom_proof: false,
                    first_person: false,
                    role,
                    net,
                });
                lex.add_phrases(&name, "frame or net", n, phrases, index)?;
            }
        }

        let mut fuzzy: Vec<(Box<str>, u32)> = lex
            .vocab
            .iter()
            .filter(|(_, id)| lex.classes[**id as usize] & FUZZY != 0)
            .map(|(w, id)| (w.clone(), *id))
            .collect();
        fuzzy.sort();
        lex.fuzzy = fuzzy;
        lex.names = vec!["".into(); lex.classes.len()];
        for (word, &id) in &lex.vocab {
            lex.names[id as usize] = word.clone();
        }
        lex.by_first = vec![Vec::new(); lex.classes.len()];
        for (i, p) in lex.patterns.iter().enumerate() {
            let next = match p.elems.get(1) {
                Some(&e) if e != GAP && e != GAP3 => e,
                _ => ANY_NEXT,
            };
            lex.by_first[p.elems[0] as usize].push((i as u32, next));
        }
        // Built once, kept for the life of the server: no spare capacity.
        lex.patterns.shrink_to_fit();
        lex.by_first.iter_mut().for_each(Vec::shrink_to_fit);
        lex.rules.shrink_to_fit();
        Ok(lex)
    }

    fn intern(&mut self, word: &str) -> u32 {
        if let Some(&id) = self.vocab.get(word) {
            return id;
        }
        let id = self.classes.len() as u32;
        self.vocab.insert(word.into(), id);
        self.classes.push(0);
        id
    }

    /// Ids of one pattern alternative: words replaced and suffixes stripped as in messages
    /// (so "hidupku" in a phrase is "hidup", as it is in a message), fillers dropped.
    fn alternative_ids(&mut self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for word in words_of(text) {
            let stem = self.strip_suffix(&word).unwrap_or(&word).to_string();
            let replaced = match (
                self.replace.get(word.as_str()),
                self.replace.get(stem.as_str()),
            ) {
                (Some(r), _) | (None, Some(r)) => r.to_vec(),
                (None, None) => vec![self.intern(&stem)],
            };
            ids.extend(
                replaced
                    .into_iter()
                    .filter(|&id| self.classes[id as usize] & FILLER == 0),
            );
        }
        ids
    }

    /// `word` without its first matching suffix from `settings.strip_suffixes`, if at least
    /// three letters remain.
    pub(crate) fn strip_suffix<'w>(&self, word: &'w str) -> Option<&'w str> {
        self.settings.strip_suffixes.iter().find_map(|suffix| {
            word.strip_suffix(suffix.as_str())
                .filter(|stem| stem.chars().count() >= 3)
        })
    }

    fn add_phrases(
        &mut self,
        file: &str,
        kind: &str,
        n: usize,
        phrases: &[String],
        index: u32,
    ) -> Result<(), LexiconError> {
        if phrases.is_empty() {
            return Err(invalid(file, format!("{kind} #{}: no phrases", n + 1)));
        }
        for phrase in phrases {
            self.add_phrase(phrase, index)
                .map_err(|m| invalid(file, format!("{kind} #{} phrase {phrase:?}: {m}", n + 1)))?;
        }
        Ok(())
    }

    fn add_phrase(&mut self, phrase: &str, target: u32) -> Result<(), String> {
        let slots = parse_slots(phrase, |alt| match alt {
            "*" => vec![GAP],
            "**" => vec![GAP3],
            "#" => vec![NUM],
            text => self.alternative_ids(text),
        })?;
        let source: std::sync::Arc<str> = phrase.into();
        for elems in expand(&slots)? {
            if elems.first().is_none_or(|&e| e == GAP || e == GAP3) {
                return Err("a phrase must start with a word".into());
            }
            self.patterns.push(Pattern {
                elems: elems.into(),
                target,
                source: source.clone(),
            });
        }
        Ok(())
    }
}
