//! Where a conversation search spends its time: the search SQL of
//! `src/features/conversations/store.rs`, timed alone (no HTTP) on the cached corpus, beside
//! variants that drop one piece at a time (the ranking, the prefix, the scope filter).
//!
//! `search-sql DATA_DIR CORPUS_JSON` — DATA_DIR is a copy of
//! `target/bench-cache/conversations-1m/vN/data` (it is opened with persona's `Db`, read
//! only), CORPUS_JSON the `corpus.json` beside it.

use std::time::Instant;

use anyhow::{Context, anyhow};
use persona::db::Db;
use serde_json::Value;

/// store::search's SQL, as the server runs it.
const SEARCH: &str = "SELECT c.seq, c.id, c.owner_id, u.display_name, c.title, c.excerpt, c.category, \
     c.tags, c.visibility = 'public', c.is_featured, c.message_count, c.created_at, c.updated_at, f.rank,
        snippet(conversations_fts, 0, char(57344), char(57345), '…', 12),
        snippet(conversations_fts, 1, char(57344), char(57345), '…', 24)
 FROM conversations_fts f
 JOIN conversations c ON c.seq = f.rowid
 JOIN users u ON u.id = c.owner_id
 WHERE conversations_fts MATCH ?1
   AND (f.rank > -1e308 OR (f.rank = -1e308 AND f.rowid > -9223372036854775808))
 ORDER BY f.rank, f.rowid
 LIMIT 21";

/// The ranking alone: the best 21 rowids, nothing joined, no snippets.
const RANK_ONLY: &str = "SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH ?1 \
     ORDER BY rank LIMIT 21";
/// No ranking: the first 21 matches in rowid order.
const UNRANKED: &str =
    "SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH ?1 LIMIT 21";
/// Every match, counted (what the ranking has to score).
const COUNT: &str = "SELECT count(*) FROM conversations_fts WHERE conversations_fts MATCH ?1";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(data), Some(corpus)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: search-sql DATA_DIR CORPUS_JSON");
    };
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&corpus)?)?;
    let mut config = persona::config::Config::default();
    config.storage.data_dir = data.into();
    let (db, _) = Db::open(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let email = info["email"].as_str().context("email")?.to_owned();
    let owner: String = runtime
        .block_on(db.read(move |c| {
            Ok(
                c.query_row("SELECT id FROM users WHERE email = ?1", [email], |r| {
                    r.get(0)
                })?,
            )
        }))
        .map_err(|e| anyhow!("{e:?}"))?;
    let owner = format!("zo{}", owner.replace('-', ""));

    // (median ms of 3 runs, rows) of `sql` with `expr`.
    let time = |sql: &'static str, expr: String| -> anyhow::Result<(f64, i64)> {
        runtime
            .block_on(db.read(move |c| {
                let mut times = Vec::new();
                let mut rows = 0i64;
                for _ in 0..3 {
                    let start = Instant::now();
                    let mut stmt = c.prepare_cached(sql)?;
                    let mut q = stmt.query([&expr])?;
                    rows = 0;
                    while let Some(r) = q.next()? {
                        rows = if sql == COUNT { r.get(0)? } else { rows + 1 };
                    }
                    times.push(start.elapsed().as_secs_f64() * 1000.0);
                }
                times.sort_by(f64::total_cmp);
                Ok((times[1], rows))
            }))
            .map_err(|e| anyhow!("{e:?}"))
    };

    let plan: Vec<String> = runtime
        .block_on(db.read(|c| {
            let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {SEARCH}"))?;
            let rows = stmt.query_map(["x"], |r| r.get::<_, String>(3))?;
            Ok(rows.collect::<Result<_, _>>()?)
        }))
        .map_err(|e| anyhow!("{e:?}"))?;
    println!("EXPLAIN QUERY PLAN of the search SQL:");
    for step in plan {
        println!("  {step}");
    }
    println!();
    println!(
        "| term | scope | matches | full SQL | rank only | unranked LIMIT 21 | count(*) | exact word, full SQL | no scope filter, full SQL |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for class in ["rare", "common", "prefix"] {
        let terms = info["terms"][class].as_array().cloned().unwrap_or_default();
        for t in terms.iter().take(2) {
            let word = t[0].as_str().unwrap_or("");
            for (scope, filter) in [
                ("mine", format!("scope : {owner}")),
                ("public", "scope : zvpublic".to_owned()),
                ("all", format!("scope : (zvpublic OR {owner})")),
            ] {
                let expr = format!("{{title body}} : (\"{word}\"*) AND {filter}");
                let exact = format!("{{title body}} : (\"{word}\") AND {filter}");
                let (full, _) = time(SEARCH, expr.clone())?;
                let (rank, _) = time(RANK_ONLY, expr.clone())?;
                let (unranked, _) = time(UNRANKED, expr.clone())?;
                let (count_ms, matches) = time(COUNT, expr)?;
                let (exact_ms, _) = time(SEARCH, exact)?;
                let no_scope = if scope == "public" {
                    let (ms, _) = time(SEARCH, format!("{{title body}} : (\"{word}\"*)"))?;
                    format!("{ms:.1} ms")
                } else {
                    "".to_owned()
                };
                println!(
                    "| {class} \"{word}\" | {scope} | {matches} | {full:.1} ms | {rank:.1} ms | {unranked:.1} ms | {count_ms:.1} ms | {exact_ms:.1} ms | {no_scope} |"
                );
            }
        }
    }
    Ok(())
}
