//! Conversation rules: who sees what (the owner, or anyone when public; another user's
//! private conversation is 404 everywhere, search included), what admins may do (delete,
//! feature), and the search scope turned into FTS5 indexes and tokens.

use std::{collections::BTreeMap, num::NonZeroU32};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use uuid::Uuid;

use super::{
    categories::Categories,
    store::{self, Index, ListFilter, Part, Row, Stored, Window},
    types::*,
};
use crate::{
    app::App,
    auth::AuthUser,
    domain::Timestamp,
    error::{ApiError, AppResult},
};

/// The feature's state: the categories and the search limiter.
pub struct Conversations {
    pub categories: Categories,
    searches: DefaultKeyedRateLimiter<String>,
}

impl Conversations {
    pub fn new(categories: Categories, per_minute: u32) -> Conversations {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Conversations {
            categories,
            searches: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// 429 when `key` (a user, or a client address) searched too often.
    pub fn admit_search(&self, key: String) -> AppResult<()> {
        self.searches.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            ApiError::rate_limited(
                "Too many searches; slow down.",
                wait.max(std::time::Duration::from_secs(1)),
            )
        })
    }

    /// Forgets idle keys (called now and then).
    pub fn forget_idle(&self) {
        self.searches.retain_recent();
        self.searches.shrink_to_fit();
    }
}

fn summary(row: Row) -> Summary {
    Summary {
        id: row.id,
        title: row.title,
        category: row.category,
        tags: serde_json::from_str(&row.tags).unwrap_or_default(),
        visibility: if row.public { "public" } else { "private" }.to_owned(),
        is_featured: row.featured,
        message_count: row.message_count,
        excerpt: row.excerpt,
        owner: Owner {
            id: row.owner_id,
            display_name: row.owner_name,
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn conversation(row: Row, messages: &str) -> Conversation {
    Conversation {
        messages: serde_json::from_str(messages).unwrap_or_default(),
        summary: summary(row),
    }
}

fn stored<'a>(
    title: &'a str,
    messages_json: &'a str,
    excerpt: &'a str,
    category: &'a str,
    tags: &'a [String],
    public: bool,
    count: usize,
) -> Stored<'a> {
    Stored {
        title,
        messages: messages_json,
        excerpt,
        category,
        tags,
        public,
        message_count: count as i64,
    }
}

pub async fn create(app: &App, user: &AuthUser, fields: Fields) -> AppResult<Conversation> {
    let (Some(title), Some(messages), Some(category), Some(tags), Some(public)) = (
        fields.title,
        fields.messages,
        fields.category,
        fields.tags,
        fields.public,
    ) else {
        return Err(ApiError::invalid_field(
            "body",
            "title and messages are required",
        ));
    };
    let json = serde_json::to_string(&messages).map_err(ApiError::internal)?;
    let excerpt = excerpt(&messages);
    let id = Uuid::new_v4().to_string();
    let owner = user.user_id.clone();
    let (conv_id, count) = (id.clone(), messages.len());
    app.db
        .write(move |tx| {
            let row = stored(&title, &json, &excerpt, &category, &tags, public, count);
            store::insert(tx, &conv_id, &owner, &row, Timestamp::now())?;
            Ok(())
        })
        .await?;
    get(app, Some(user), id).await
}

/// A conversation the caller may see: the owner's, or a public one; anything else is 404.
pub async fn get(app: &App, caller: Option<&AuthUser>, id: String) -> AppResult<Conversation> {
    let found = app.db.read(move |conn| store::by_id(conn, &id)).await?;
    match found {
        Some((row, messages))
            if row.public || caller.is_some_and(|u| *u.user_id == *row.owner_id) =>
        {
            Ok(conversation(row, &messages))
        }
        _ => Err(ApiError::NotFound),
    }
}

/// Replaces the fields given; only the owner may (anyone else: 404).
pub async fn update(
    app: &App,
    user: &AuthUser,
    id: String,
    fields: Fields,
) -> AppResult<Conversation> {
    let owner = user.user_id.clone();
    let conv_id = id.clone();
    app.db
        .write(move |tx| {
            let Some((row, messages_json)) = store::by_id(tx, &conv_id)? else {
                return Err(ApiError::NotFound);
            };
            if *row.owner_id != *owner {
                return Err(ApiError::NotFound);
            }
            let messages: Vec<Message> = match fields.messages {
                Some(m) => m,
                None => serde_json::from_str(&messages_json).map_err(ApiError::internal)?,
            };
            let json = serde_json::to_string(&messages).map_err(ApiError::internal)?;
            let excerpt = excerpt(&messages);
            let title = fields.title.unwrap_or(row.title);
            let category = fields.category.unwrap_or(row.category);
            let tags = match fields.tags {
                Some(tags) => tags,
                None => serde_json::from_str(&row.tags).unwrap_or_default(),
            };
            let public = fields.public.unwrap_or(row.public);
            let new = stored(
                &title,
                &json,
                &excerpt,
                &category,
                &tags,
                public,
                messages.len(),
            );
            store::update(tx, row.seq, &owner, &new, Timestamp::now())
        })
        .await?;
    get(app, Some(user), id).await
}

/// Deletes a conversation: its owner or an admin; anyone else gets 404.
pub async fn delete(app: &App, user: &AuthUser, id: String) -> AppResult<()> {
    let (caller, admin) = (user.user_id.clone(), user.is_admin());
    app.db
        .write(move |tx| match store::by_id(tx, &id)? {
            Some((row, _)) if admin || *row.owner_id == *caller => store::delete(tx, row.seq),
            _ => Err(ApiError::NotFound),
        })
        .await
}

/// Features or unfeatures a public conversation (admins); 422 for a private one.
pub async fn set_featured(app: &App, id: String, featured: bool) -> AppResult<Summary> {
    let conv_id = id.clone();
    app.db
        .write(move |tx| {
            let Some((row, _)) = store::by_id(tx, &conv_id)? else {
                return Err(ApiError::NotFound);
            };
            if featured && !row.public {
                return Err(ApiError::invalid_field(
                    "featured",
                    "only a public conversation can be featured",
                ));
            }
            store::set_featured(tx, row.seq, featured)
        })
        .await?;
    let found = app.db.read(move |conn| store::by_id(conn, &id)).await?;
    found.map(|(row, _)| summary(row)).ok_or(ApiError::NotFound)
}

/// Whose conversations a list or a search covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Mine,
    Public,
    /// Search only: the caller's own plus public ones.
    All,
}

/// The scope a client asked for, checked against who it is: `mine` needs a token; `all`
/// without one is `public`.
pub fn scope(asked: Option<&str>, caller: Option<&AuthUser>, default: Scope) -> AppResult<Scope> {
    let scope = match asked {
        None => default,
        Some("mine") => Scope::Mine,
        Some("public") => Scope::Public,
        Some("all") if default == Scope::All => Scope::All,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "scope",
                if default == Scope::All {
                    "must be mine, public or all"
                } else {
                    "must be mine or public"
                },
            ));
        }
    };
    match (scope, caller) {
        (Scope::Mine, None) => Err(ApiError::unauthorized(
            "Sign in to see your own conversations.",
        )),
        (Scope::All, None) => Ok(Scope::Public),
        (Scope::Mine | Scope::All, Some(_)) | (Scope::Public, _) => Ok(scope),
    }
}

/// What a list asks for.
pub struct ListRequest {
    pub scope: Scope,
    pub category: Option<String>,
    pub tag: Option<String>,
    pub featured: bool,
    pub after: Option<(i64, i64)>,
    pub limit: u32,
}

/// A page of summaries, newest first.
pub async fn list(
    app: &App,
    caller: Option<&AuthUser>,
    request: ListRequest,
) -> AppResult<(Vec<Summary>, Option<(i64, i64)>)> {
    let owner = match request.scope {
        Scope::Mine => caller.map(|u| u.user_id.clone()),
        _ => None,
    };
    let ListRequest {
        category,
        tag,
        featured,
        after,
        limit,
        ..
    } = request;
    let rows = app
        .db
        .read(move |conn| {
            let filter = ListFilter {
                owner: owner.as_deref(),
                category: category.as_deref(),
                tag: tag.as_deref(),
                featured,
            };
            store::list(conn, &filter, after, limit + 1)
        })
        .await?;
    Ok(page(rows, limit, |r| (r.updated_at.unix(), r.seq)))
}

fn page<K>(mut rows: Vec<Row>, limit: u32, key: impl Fn(&Row) -> K) -> (Vec<Summary>, Option<K>) {
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(key)
    } else {
        None
    };
    (rows.into_iter().map(summary).collect(), next)
}

/// What a search reads for `words` in `scope` (and `category`): the words over title and
/// messages in each index the scope covers, restricted by owner and category tokens. Public
/// conversations need no scope phrase, so a public search weighs only the user's words.
pub fn search_parts(
    words: &str,
    scope: Scope,
    caller: Option<&AuthUser>,
    category: Option<&str>,
) -> Vec<Part> {
    let owner = caller.map(|u| format!(" AND scope : zo{}", u.user_id.replace('-', "")));
    let category = category
        .map(|c| format!(" AND scope : zc{}", hex::encode(c.as_bytes())))
        .unwrap_or_default();
    let part = |index, owner: Option<&str>| Part {
        index,
        expression: format!(
            "{{title body}} : ({words}){}{category}",
            owner.unwrap_or_default()
        ),
    };
    match (scope, owner.as_deref()) {
        (Scope::Public, _) | (Scope::All, None) => vec![part(Index::Public, None)],
        (Scope::Mine, owner) => vec![part(Index::Public, owner), part(Index::Private, owner)],
        (Scope::All, owner) => vec![part(Index::Public, None), part(Index::Private, owner)],
    }
}

/// Where a search page ends (the cursor): the window (floor, ceiling), and in it the last
/// hit's `seq` and position. The next page goes on after that hit wherever it now ranks
/// (a conversation saved meanwhile changes every bm25 score a little, so a rank would not
/// find the place again), or at the position when the hit is gone.
pub type SearchKey = (i64, i64, i64, usize);

/// The matches of a window, best first (bm25, the newer first between equals): `window`
/// when the cursor names it, else the newest `size` matches of each part at or below
/// `ceiling`, cut at the highest floor among parts that have `size` of them (their older
/// matches belong to the next window).
fn ranked_window(
    conn: &rusqlite::Connection,
    parts: &[Part],
    window: Option<Window>,
    ceiling: i64,
    size: i64,
) -> AppResult<(Window, Vec<store::Ranked>)> {
    let low = window.map_or(0, |w| w.floor);
    let mut floor = low;
    let mut ranked = Vec::new();
    for i in 0..parts.len() {
        let newest = store::newest_matches(conn, parts, i, (low, ceiling), size)?;
        if window.is_none()
            && newest.len() as i64 == size
            && let Some(oldest) = newest.last()
        {
            floor = floor.max(oldest.seq);
        }
        ranked.extend(newest);
    }
    ranked.retain(|r| r.seq >= floor);
    ranked.sort_by(|a, b| a.rank.total_cmp(&b.rank).then(b.seq.cmp(&a.seq)));
    Ok((Window { floor, ceiling }, ranked))
}

/// Full-text search, best first (bm25, title above messages), with snippets. Matches are
/// ranked a window of the newest `conversations.search_window` at a time: the first pages
/// hold the best of the newest matches, later pages go on to older windows, and
/// conversations saved while a client pages do not shift its pages (the first page fixes
/// the newest one).
pub async fn search(
    app: &App,
    parts: Vec<Part>,
    after: Option<SearchKey>,
    limit: u32,
) -> AppResult<(Vec<Hit>, Option<SearchKey>)> {
    let limit = limit as usize;
    let size = i64::from(app.config.conversations.search_window);
    let found = app
        .db
        .read(move |conn| {
            // One snapshot for the windows, the ranking and the rows.
            let tx = conn.unchecked_transaction()?;
            let (mut window, mut resume) = match after {
                Some((floor, ceiling, seq, position)) => {
                    (Some(Window { floor, ceiling }), Some((seq, position)))
                }
                None => (None, None),
            };
            let mut ceiling = match window {
                Some(w) => w.ceiling,
                None => store::newest(&tx)?,
            };
            // (match, its window, its position in the window), one more than a page.
            let mut kept = Vec::new();
            loop {
                let (this, ranked) = ranked_window(&tx, &parts, window, ceiling, size)?;
                let start = match resume.take() {
                    None => 0,
                    Some((seq, position)) => ranked
                        .iter()
                        .position(|r| r.seq == seq)
                        .map_or(position, |at| at + 1),
                };
                let wanted = limit + 1 - kept.len();
                kept.extend(
                    ranked
                        .into_iter()
                        .enumerate()
                        .skip(start)
                        .take(wanted)
                        .map(|(at, r)| (r, this, at)),
                );
                // A window above the oldest holds `size` matches of one part, so this runs
                // at most twice when `size` > `limit`: the rest of the cursor's window,
                // then one more.
                if kept.len() > limit || this.floor <= 0 {
                    break;
                }
                window = None;
                ceiling = this.floor - 1;
            }
            let more = kept.len() > limit;
            kept.truncate(limit);
            let next = more
                .then(|| kept.last())
                .flatten()
                .map(|(r, w, at)| (w.floor, w.ceiling, r.seq, *at));
            let mut found = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                let seqs: Vec<i64> = kept
                    .iter()
                    .filter(|(r, _, _)| r.part == i)
                    .map(|(r, _, _)| r.seq)
                    .collect();
                found.push(store::hits(&tx, part, &seqs)?);
            }
            let hits = kept
                .iter()
                .filter_map(|(r, _, _)| found[r.part].remove(&r.seq))
                .collect::<Vec<_>>();
            Ok((hits, next))
        })
        .await?;
    let (rows, next) = found;
    let hits = rows
        .into_iter()
        .map(|(row, title_snippet, body_snippet)| {
            let raw = if body_snippet.contains(MARK_OPEN) {
                body_snippet
            } else {
                title_snippet
            };
            Hit {
                snippet: render_snippet(&raw),
                summary: summary(row),
            }
        })
        .collect();
    Ok((hits, next))
}

/// Categories with their public counts, in the configured order.
pub async fn categories(app: &App, state: &Conversations) -> AppResult<Vec<Category>> {
    let counts = app.db.read(store::public_counts).await?;
    let count_of = |slug: &str| {
        counts
            .iter()
            .find(|(c, _, _)| c == slug)
            .map_or(0, |(_, n, _)| *n)
    };
    Ok(state
        .categories
        .all()
        .iter()
        .map(|(slug, name)| Category {
            slug: slug.clone(),
            name: name.clone(),
            count: count_of(slug),
        })
        .collect())
}

pub async fn stats(app: &App, caller: Option<&AuthUser>) -> AppResult<Stats> {
    let owner = caller.map(|u| u.user_id.clone());
    let (public, mine) = app
        .db
        .read(move |conn| {
            let public = store::public_counts(conn)?;
            let mine = owner
                .map(|owner| store::owner_counts(conn, &owner))
                .transpose()?;
            Ok((public, mine))
        })
        .await?;
    let (total, messages) = public
        .iter()
        .find(|(c, _, _)| c.is_empty())
        .map_or((0, 0), |(_, n, m)| (*n, *m));
    let mine = mine.map(|rows| {
        let mut by_category: BTreeMap<String, i64> = BTreeMap::new();
        let mut stats = MineStats {
            total: 0,
            messages: 0,
            public: 0,
            private: 0,
            by_category: Value::Null,
        };
        for (category, public, count, messages) in rows {
            stats.total += count;
            stats.messages += messages;
            if public {
                stats.public += count;
            } else {
                stats.private += count;
            }
            *by_category.entry(category).or_default() += count;
        }
        stats.by_category = serde_json::to_value(by_category).unwrap_or(Value::Null);
        stats
    });
    Ok(Stats {
        mine,
        public: PublicStats { total, messages },
    })
}

/// Every conversation of a user with its messages, oldest first (data portability).
pub async fn export(app: &App, owner_id: String) -> AppResult<Vec<Conversation>> {
    let rows = app
        .db
        .read(move |conn| store::all_of(conn, &owner_id))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(row, messages)| conversation(row, &messages))
        .collect())
}
