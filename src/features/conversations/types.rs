//! Shapes of `/conversations`, and the rules for their fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::{
    domain::Timestamp,
    error::{AppResult, Invalid},
};

/// The most messages a conversation holds.
pub const MAX_MESSAGES: usize = 500;
/// The most text all messages together may hold (bytes).
pub const MAX_TEXT: usize = 1024 * 1024;
/// The longest excerpt (characters).
const EXCERPT: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// `user`, `assistant` or `system`.
    pub role: String,
    pub content: String,
}

/// `POST /` and `PUT /{id}`: on create, `title` and `messages` are required; on update the
/// fields given replace the stored ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversationInput {
    pub title: Option<String>,
    pub messages: Option<Vec<Message>>,
    /// A slug of `GET /conversations/categories`; `general` when left out on create.
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    /// `private` (the default) or `public`.
    pub visibility: Option<String>,
}

/// Validated fields; `None` leaves a stored field as it is.
#[derive(Debug, Default)]
pub struct Fields {
    pub title: Option<String>,
    pub messages: Option<Vec<Message>>,
    pub category: Option<String>,
    pub tags: Option<Vec<String>>,
    pub public: Option<bool>,
}

impl ConversationInput {
    /// Every field checked at once; `known` tells a category slug that exists.
    pub fn parse(self, creating: bool, known: impl Fn(&str) -> bool) -> AppResult<Fields> {
        let mut invalid = Invalid::default();
        if creating && self.title.is_none() {
            invalid.add("title", "is required");
        }
        if creating && self.messages.is_none() {
            invalid.add("messages", "is required");
        }
        let title = self
            .title
            .as_deref()
            .and_then(|t| invalid.take("title", parse_title(t)));
        let messages = self
            .messages
            .and_then(|m| invalid.take("messages", parse_messages(m)));
        let category = match self.category {
            Some(slug) if known(&slug) => Some(slug),
            Some(_) => {
                invalid.add(
                    "category",
                    "is not a known category (see /conversations/categories)",
                );
                None
            }
            None if creating => Some("general".to_owned()),
            None => None,
        };
        let tags = self.tags.and_then(|t| invalid.take("tags", parse_tags(t)));
        let public = match self.visibility.as_deref() {
            None => creating.then_some(false),
            Some("private") => Some(false),
            Some("public") => Some(true),
            Some(_) => {
                invalid.add("visibility", "must be private or public");
                None
            }
        };
        invalid.finish()?;
        Ok(Fields {
            title,
            messages,
            category,
            tags: tags.or_else(|| creating.then(Vec::new)),
            public,
        })
    }
}

/// 1 to 200 characters after trimming, no control characters.
pub fn parse_title(input: &str) -> Result<String, String> {
    let title = input.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err("must be 1 to 200 characters".to_owned());
    }
    if title.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(clean(title))
}

/// 1 to 500 messages of a known role, at most 1 MiB of text in all.
pub fn parse_messages(messages: Vec<Message>) -> Result<Vec<Message>, String> {
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return Err(format!("must hold 1 to {MAX_MESSAGES} messages"));
    }
    if let Some(bad) = messages
        .iter()
        .find(|m| !matches!(m.role.as_str(), "user" | "assistant" | "system"))
    {
        return Err(format!(
            "role {:?} is not user, assistant or system",
            bad.role
        ));
    }
    let total: usize = messages.iter().map(|m| m.content.len()).sum();
    if total > MAX_TEXT {
        return Err("must hold at most 1 MiB of text in all".to_owned());
    }
    Ok(messages
        .into_iter()
        .map(|m| Message {
            role: m.role,
            content: clean(&m.content),
        })
        .collect())
}

/// At most 10 tags of 1 to 32 characters of `[a-z0-9-]` (lower-cased), duplicates dropped.
pub fn parse_tags(tags: Vec<String>) -> Result<Vec<String>, String> {
    if tags.len() > 10 {
        return Err("at most 10 tags".to_owned());
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        let ok = (1..=32).contains(&tag.len())
            && tag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(format!(
                "{tag:?} is not 1 to 32 characters of a-z, 0-9 and -"
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// The search index marks its hits with two private-use characters; they never come from
/// users (removed on save), so a snippet's marks are always ours.
pub const MARK_OPEN: char = '\u{E000}';
pub const MARK_CLOSE: char = '\u{E001}';

fn clean(text: &str) -> String {
    if text.contains([MARK_OPEN, MARK_CLOSE]) {
        text.replace([MARK_OPEN, MARK_CLOSE], "")
    } else {
        text.to_owned()
    }
}

/// The first words of the conversation (the first non-system message), for lists.
pub fn excerpt(messages: &[Message]) -> String {
    let first = messages
        .iter()
        .find(|m| m.role != "system")
        .or(messages.first())
        .map(|m| m.content.as_str())
        .unwrap_or("");
    let flat: String = first.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= EXCERPT {
        return flat;
    }
    let cut: String = flat.chars().take(EXCERPT - 1).collect();
    format!("{}…", cut.trim_end())
}

/// A snippet from the index: HTML-escaped, with `<mark>…</mark>` around the hits.
pub fn render_snippet(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        match c {
            MARK_OPEN => out.push_str("<mark>"),
            MARK_CLOSE => out.push_str("</mark>"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    pub id: String,
    pub display_name: Option<String>,
}

/// A conversation without its messages (lists, search).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub id: String,
    pub title: String,
    pub category: String,
    pub tags: Vec<String>,
    /// `private` or `public`.
    pub visibility: String,
    pub is_featured: bool,
    pub message_count: i64,
    pub excerpt: String,
    pub owner: Owner,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A whole conversation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    #[serde(flatten)]
    pub summary: Summary,
    pub messages: Vec<Message>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryList {
    pub items: Vec<Summary>,
    pub next_cursor: Option<String>,
}

/// A search hit: the summary and where the words were found.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hit {
    #[serde(flatten)]
    pub summary: Summary,
    /// HTML: the matches in `<mark>…</mark>`, everything else escaped.
    pub snippet: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HitList {
    pub items: Vec<Hit>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Category {
    pub slug: String,
    pub name: String,
    /// Public conversations in it.
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MineStats {
    pub total: i64,
    pub messages: i64,
    pub public: i64,
    pub private: i64,
    #[schema(value_type = Object)]
    pub by_category: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PublicStats {
    pub total: i64,
    pub messages: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// `null` without a token.
    pub mine: Option<MineStats>,
    pub public: PublicStats,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureRequest {
    pub featured: bool,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `mine` (the default when signed in) or `public`.
    pub scope: Option<String>,
    pub category: Option<String>,
    pub tag: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find; never FTS5 syntax. The last word also matches as a prefix.
    pub q: Option<String>,
    /// `mine`, `public` or `all` (the default: yours and public; public without a token).
    pub scope: Option<String>,
    pub category: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The user's words as an FTS5 query that cannot be FTS5 syntax: every word quoted, the last
/// also as a prefix once it has two characters; `None` when there is no word at all.
pub fn fts_query(q: &str) -> Option<String> {
    let words: Vec<&str> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(32)
        .collect();
    let (last, rest) = words.split_last()?;
    let mut terms: Vec<String> = rest.iter().map(|w| format!("\"{w}\"")).collect();
    if last.chars().count() >= 2 {
        terms.push(format!("\"{last}\"*"));
    } else {
        terms.push(format!("\"{last}\""));
    }
    Some(terms.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_quoted_words_with_a_prefix_last() {
        assert_eq!(
            fts_query("multi-agent"),
            Some("\"multi\" \"agent\"*".into())
        );
        assert_eq!(fts_query("don't"), Some("\"don\" \"t\"".into()));
        assert_eq!(fts_query("a OR b"), Some("\"a\" \"OR\" \"b\"".into()));
        assert_eq!(
            fts_query("title:x NEAR(a b)"),
            Some("\"title\" \"x\" \"NEAR\" \"a\" \"b\"".into())
        );
        assert_eq!(fts_query("\" * ^ -"), None);
        assert_eq!(fts_query("kopi"), Some("\"kopi\"*".into()));
        assert_eq!(fts_query("café"), Some("\"café\"*".into()));
    }

    #[test]
    fn snippets_escape_everything_but_the_marks() {
        let raw = format!("a <script>alert(1)</script> {MARK_OPEN}hit{MARK_CLOSE} & \"x\"");
        assert_eq!(
            render_snippet(&raw),
            "a &lt;script&gt;alert(1)&lt;/script&gt; <mark>hit</mark> &amp; &quot;x&quot;"
        );
    }

    #[test]
    fn tags_and_titles() {
        assert_eq!(
            parse_tags(vec!["Rust".into(), "rust".into()]).unwrap(),
            ["rust"]
        );
        assert!(parse_tags(vec!["no spaces".into()]).is_err());
        assert!(parse_tags((0..11).map(|i| i.to_string()).collect()).is_err());
        assert!(parse_title("").is_err());
        assert!(parse_title(&"x".repeat(201)).is_err());
    }

    #[test]
    fn excerpts_are_short_and_flat() {
        let messages = vec![
            Message {
                role: "system".into(),
                content: "be nice".into(),
            },
            Message {
                role: "user".into(),
                content: "hello\n\nworld ".repeat(100),
            },
        ];
        let e = excerpt(&messages);
        assert!(e.starts_with("hello world"));
        assert!(e.chars().count() <= 200 && e.ends_with('…'));
    }
}
