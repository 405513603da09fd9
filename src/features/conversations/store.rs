//! SQL of conversations. Lists walk an index newest first by `(updated_at, seq)`. Search
//! keeps everything inside FTS5: one index per visibility, the user's words restricted to
//! title and messages, owner and category as indexed tokens in a third column, so a filter
//! never turns a MATCH into a scan; bm25 ranks a bounded window of the newest matches, and
//! nothing is ever counted.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{domain::Timestamp, error::AppResult};

#[derive(Debug, Clone)]
pub struct Row {
    pub seq: i64,
    pub id: String,
    pub owner_id: String,
    pub owner_name: Option<String>,
    pub title: String,
    pub excerpt: String,
    pub category: String,
    pub tags: String,
    pub public: bool,
    pub featured: bool,
    pub message_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "c.seq, c.id, c.owner_id, u.display_name, c.title, c.excerpt, c.category, \
     c.tags, c.visibility = 'public', c.is_featured, c.message_count, c.created_at, c.updated_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        id: r.get(1)?,
        owner_id: r.get(2)?,
        owner_name: r.get(3)?,
        title: r.get(4)?,
        excerpt: r.get(5)?,
        category: r.get(6)?,
        tags: r.get(7)?,
        public: r.get(8)?,
        featured: r.get(9)?,
        message_count: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
    })
}

/// What a write stores.
pub struct Stored<'a> {
    pub title: &'a str,
    pub messages: &'a str,
    pub excerpt: &'a str,
    pub category: &'a str,
    pub tags: &'a [String],
    pub public: bool,
    pub message_count: i64,
}

pub fn insert(
    conn: &Connection,
    id: &str,
    owner_id: &str,
    c: &Stored<'_>,
    now: Timestamp,
) -> AppResult<i64> {
    let tags = serde_json::to_string(c.tags).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO conversations (id, owner_id, title, messages, excerpt, category, tags,
                                    visibility, message_count, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
    )?
    .execute(params![
        id,
        owner_id,
        c.title,
        c.messages,
        c.excerpt,
        c.category,
        tags,
        visibility(c.public),
        c.message_count,
        now
    ])?;
    let seq = conn.last_insert_rowid();
    write_tags(conn, seq, owner_id, c.tags, c.public, now)?;
    Ok(seq)
}

fn visibility(public: bool) -> &'static str {
    if public { "public" } else { "private" }
}

/// Replaces every stored field; a conversation made private stops being featured.
pub fn update(
    conn: &Connection,
    seq: i64,
    owner_id: &str,
    c: &Stored<'_>,
    now: Timestamp,
) -> AppResult<()> {
    let tags = serde_json::to_string(c.tags).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "UPDATE conversations SET title = ?2, messages = ?3, excerpt = ?4, category = ?5,
                tags = ?6, visibility = ?7, message_count = ?8, updated_at = ?9,
                is_featured = is_featured AND ?7 = 'public'
         WHERE seq = ?1",
    )?
    .execute(params![
        seq,
        c.title,
        c.messages,
        c.excerpt,
        c.category,
        tags,
        visibility(c.public),
        c.message_count,
        now
    ])?;
    conn.prepare_cached("DELETE FROM conversation_tags WHERE seq = ?1")?
        .execute([seq])?;
    write_tags(conn, seq, owner_id, c.tags, c.public, now)
}

fn write_tags(
    conn: &Connection,
    seq: i64,
    owner_id: &str,
    tags: &[String],
    public: bool,
    now: Timestamp,
) -> AppResult<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO conversation_tags (tag, seq, owner_id, visibility, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for tag in tags {
        stmt.execute(params![tag, seq, owner_id, visibility(public), now])?;
    }
    Ok(())
}

pub fn set_featured(conn: &Connection, seq: i64, featured: bool) -> AppResult<()> {
    conn.prepare_cached("UPDATE conversations SET is_featured = ?2 WHERE seq = ?1")?
        .execute(params![seq, featured])?;
    Ok(())
}

pub fn delete(conn: &Connection, seq: i64) -> AppResult<()> {
    conn.prepare_cached("DELETE FROM conversations WHERE seq = ?1")?
        .execute([seq])?;
    Ok(())
}

/// One conversation by id, with its messages (JSON text).
pub fn by_id(conn: &Connection, id: &str) -> AppResult<Option<(Row, String)>> {
    let sql = format!(
        "SELECT {COLUMNS}, c.messages FROM conversations c JOIN users u ON u.id = c.owner_id
         WHERE c.id = ?1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], |r| Ok((from_row(r)?, r.get(13)?)))
        .optional()?)
}

/// Which conversations a list shows.
pub struct ListFilter<'a> {
    /// `Some(owner)`: that user's; `None`: public ones.
    pub owner: Option<&'a str>,
    pub category: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub featured: bool,
}

/// A page, newest first, after the `(updated_at, seq)` position `after`.
pub fn list(
    conn: &Connection,
    f: &ListFilter<'_>,
    after: Option<(i64, i64)>,
    limit: u32,
) -> AppResult<Vec<Row>> {
    let (at, seq) = after.unwrap_or((i64::MAX, i64::MAX));
    let mut sql =
        format!("SELECT {COLUMNS} FROM conversations c JOIN users u ON u.id = c.owner_id");
    let mut wheres = vec!["(c.updated_at < ?1 OR (c.updated_at = ?1 AND c.seq < ?2))".to_owned()];
    let key = f.owner.unwrap_or("");
    if f.tag.is_some() {
        // The tag table carries owner, visibility and order: its index does the walking.
        sql.push_str(" JOIN conversation_tags t ON t.seq = c.seq");
        wheres[0] = "(t.updated_at < ?1 OR (t.updated_at = ?1 AND t.seq < ?2))".to_owned();
        wheres.push("t.tag = ?4".to_owned());
        wheres.push(if f.owner.is_some() {
            "t.owner_id = ?3".to_owned()
        } else {
            "t.visibility = 'public'".to_owned()
        });
    } else if f.owner.is_some() {
        wheres.push("c.owner_id = ?3".to_owned());
    } else {
        wheres.push("c.visibility = 'public'".to_owned());
    }
    if f.category.is_some() {
        wheres.push("c.category = ?5".to_owned());
    }
    if f.featured {
        wheres.push("c.is_featured = 1".to_owned());
    }
    let order = if f.tag.is_some() {
        "t.updated_at DESC, t.seq DESC"
    } else {
        "c.updated_at DESC, c.seq DESC"
    };
    sql.push_str(&format!(
        " WHERE {} ORDER BY {order} LIMIT ?6",
        wheres.join(" AND ")
    ));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            at,
            seq,
            key,
            f.tag.unwrap_or(""),
            f.category.unwrap_or(""),
            limit
        ],
        from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The two search indexes (V9): public conversations, and private ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Public,
    Private,
}

impl Index {
    fn table(self) -> &'static str {
        match self {
            Index::Public => "public_fts",
            Index::Private => "private_fts",
        }
    }
}

/// One index searched with one FTS5 expression.
#[derive(Debug, Clone)]
pub struct Part {
    pub index: Index,
    pub expression: String,
}

/// Conversations `floor..=ceiling` (by `seq`, i.e. by age): the matches ranked together.
/// bm25 scores every row it is given (≈ 2 µs each), so a word found in a tenth of a million
/// conversations cannot be ranked whole in the time a search has; it is ranked a window of
/// newest matches (`conversations.search_window`) at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub floor: i64,
    pub ceiling: i64,
}

/// The newest conversation's `seq` (0 when there is none): the first window's ceiling, so
/// that conversations saved while a client pages do not shift its pages.
pub fn newest(conn: &Connection) -> AppResult<i64> {
    Ok(
        conn.query_row("SELECT coalesce(max(seq), 0) FROM conversations", [], |r| {
            r.get(0)
        })?,
    )
}

/// A match: its conversation, its bm25 rank (lower is better) and the part it matched in.
#[derive(Debug, Clone, Copy)]
pub struct Ranked {
    pub seq: i64,
    pub rank: f64,
    pub part: usize,
}

/// The newest `size` matches of `parts[part]` among conversations `floor..=ceiling`, with
/// their rank. One pass through FTS5: it walks the matches newest first and bm25 scores
/// only the rows it hands out.
pub fn newest_matches(
    conn: &Connection,
    parts: &[Part],
    part: usize,
    (floor, ceiling): (i64, i64),
    size: i64,
) -> AppResult<Vec<Ranked>> {
    let table = parts[part].index.table();
    // The rank: bm25 with the title weighing ten times a message and the scope tokens
    // nothing, its document frequencies sampled (`db::fts`): FTS5's own `bm25()` walks every
    // posting of each phrase once per query to count them, 10–20 ms for a 2-letter prefix
    // at 1 M conversations, however few rows the window then ranks.
    let sql = format!(
        "SELECT rowid, bm25_sampled({table}, (SELECT max(seq) FROM conversations), 10.0, 1.0, 0.0)
         FROM {table} WHERE {table} MATCH ?1 AND rowid BETWEEN ?2 AND ?3
         ORDER BY rowid DESC LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![parts[part].expression, floor, ceiling, size], |r| {
        Ok(Ranked {
            seq: r.get(0)?,
            rank: r.get(1)?,
            part,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The rows and the title and message snippets (matches between U+E000 and U+E001) of the
/// conversations `seqs` found in `part`, by `seq`; a conversation gone meanwhile is left out.
/// One FTS5 pass over the range of `seqs` (a MATCH per hit would expand a prefix per hit).
pub fn hits(
    conn: &Connection,
    part: &Part,
    seqs: &[i64],
) -> AppResult<HashMap<i64, (Row, String, String)>> {
    let (Some(low), Some(high)) = (seqs.iter().min(), seqs.iter().max()) else {
        return Ok(HashMap::new());
    };
    let list = serde_json::to_string(seqs).unwrap_or_else(|_| "[]".into());
    let table = part.index.table();
    // `rowid + 0` keeps the list a filter: as a constraint, FTS5 would run once per value.
    let sql = format!(
        "SELECT rowid,
                snippet({table}, 0, char(57344), char(57345), '…', 12),
                snippet({table}, 1, char(57344), char(57345), '…', 24)
         FROM {table}
         WHERE {table} MATCH ?1 AND rowid BETWEEN ?2 AND ?3
           AND rowid + 0 IN (SELECT value FROM json_each(?4))"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut snippets = stmt
        .query_map(params![part.expression, low, high, list], |r| {
            Ok((r.get::<_, i64>(0)?, (r.get(1)?, r.get(2)?)))
        })?
        .collect::<Result<HashMap<i64, (String, String)>, _>>()?;
    let sql = format!(
        "SELECT {COLUMNS} FROM conversations c JOIN users u ON u.id = c.owner_id
         WHERE c.seq IN (SELECT value FROM json_each(?1))"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut found = HashMap::new();
    for row in stmt.query_map([list], from_row)? {
        let row = row?;
        if let Some((title, body)) = snippets.remove(&row.seq) {
            found.insert(row.seq, (row, title, body));
        }
    }
    Ok(found)
}

/// Public totals: `(conversations, messages)` of `category`, or of all when `""`.
pub fn public_counts(conn: &Connection) -> AppResult<Vec<(String, i64, i64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT category, public, messages FROM conversation_counts")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The user's own counts by category and visibility: `(category, public, count, messages)`.
pub fn owner_counts(conn: &Connection, owner_id: &str) -> AppResult<Vec<(String, bool, i64, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT category, visibility = 'public', count(*), sum(message_count)
         FROM conversations WHERE owner_id = ?1 GROUP BY category, visibility",
    )?;
    let rows = stmt.query_map([owner_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every conversation of a user, oldest first, with messages (for the export).
pub fn all_of(conn: &Connection, owner_id: &str) -> AppResult<Vec<(Row, String)>> {
    let sql = format!(
        "SELECT {COLUMNS}, c.messages FROM conversations c JOIN users u ON u.id = c.owner_id
         WHERE c.owner_id = ?1 ORDER BY c.created_at, c.seq"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([owner_id], |r| Ok((from_row(r)?, r.get(13)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
