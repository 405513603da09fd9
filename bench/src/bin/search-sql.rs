//! Where a conversation search spends its time: the two FTS5 steps of
//! `src/features/conversations/store.rs` (the newest window of matches with their ranks,
//! then the snippets of the best 21), timed alone (no HTTP) on the cached corpus, beside
//! the cost of ranking every match (what V6 did) and the number of matches.
//!
//! `search-sql DATA_DIR CORPUS_JSON` — DATA_DIR is a copy of
//! `target/bench-cache/conversations-1m/vN/data` (it is opened with persona's `Db`, read
//! only), CORPUS_JSON the `corpus.json` beside it.

use std::time::Instant;

use anyhow::{Context, anyhow};
use persona::db::Db;
use rusqlite::Connection;
use serde_json::Value;

/// The default `conversations.search_window`.
const WINDOW: i64 = 2000;

/// store::newest_matches's SQL.
fn newest_sql(table: &str) -> String {
    format!(
        "SELECT rowid, bm25_sampled({table}, (SELECT max(seq) FROM conversations), 10.0, 1.0, 0.0)
         FROM {table} WHERE {table} MATCH ?1 AND rowid BETWEEN ?2 AND ?3
         ORDER BY rowid DESC LIMIT ?4"
    )
}

/// The newest window ranked by FTS5's own bm25 (before `bm25_sampled`), to compare orders.
fn exact_sql(table: &str) -> String {
    format!(
        "SELECT rowid, rank FROM {table} WHERE {table} MATCH ?1 AND rowid BETWEEN ?2 AND ?3
         ORDER BY rowid DESC LIMIT ?4"
    )
}

/// Every match ranked (what V6 did), the best 21 kept.
fn rank_all_sql(table: &str) -> String {
    format!("SELECT rowid FROM {table} WHERE {table} MATCH ?1 ORDER BY rank LIMIT 21")
}

/// store::hits's snippet SQL.
fn hits_sql(table: &str) -> String {
    format!(
        "SELECT rowid,
                snippet({table}, 0, char(57344), char(57345), '…', 12),
                snippet({table}, 1, char(57344), char(57345), '…', 24)
         FROM {table}
         WHERE {table} MATCH ?1 AND rowid BETWEEN ?2 AND ?3
           AND rowid + 0 IN (SELECT value FROM json_each(?4))"
    )
}

/// Median of three runs of `f`, in ms, with its last result.
fn time<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<(f64, T)> {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let start = Instant::now();
        last = Some(f()?);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[1], last.expect("three runs")))
}

/// One part's steps: (window ms, window floor, snippets ms, rank-all ms, matches, exact
/// bm25's window ms, how many of the best 21 exact bm25 puts in the same places).
fn steps(c: &Connection, table: &str, expr: &str) -> rusqlite::Result<[f64; 7]> {
    let newest: i64 = c.query_row("SELECT max(seq) FROM conversations", [], |r| r.get(0))?;
    let (window_ms, mut ranked) = time(|| {
        let mut stmt = c.prepare_cached(&newest_sql(table))?;
        let rows = stmt.query_map(rusqlite::params![expr, 0, newest, WINDOW], |r| {
            Ok((r.get::<_, f64>(1)?, r.get::<_, i64>(0)?))
        })?;
        rows.collect::<Result<Vec<_>, _>>()
    })?;
    let floor = if ranked.len() as i64 == WINDOW {
        ranked.last().map_or(0, |r| r.1)
    } else {
        0
    };
    let best = |mut ranked: Vec<(f64, i64)>| {
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        ranked.truncate(21);
        ranked
    };
    let (exact_ms, exact) = time(|| {
        let mut stmt = c.prepare_cached(&exact_sql(table))?;
        let rows = stmt.query_map(rusqlite::params![expr, 0, newest, WINDOW], |r| {
            Ok((r.get::<_, f64>(1)?, r.get::<_, i64>(0)?))
        })?;
        rows.collect::<Result<Vec<_>, _>>()
    })?;
    ranked = best(ranked);
    let exact = best(exact);
    let same = ranked
        .iter()
        .zip(&exact)
        .filter(|(a, b)| a.1 == b.1)
        .count();
    let seqs: Vec<i64> = ranked.iter().map(|r| r.1).collect();
    let (low, high) = (
        seqs.iter().min().copied().unwrap_or(0),
        seqs.iter().max().copied().unwrap_or(0),
    );
    let list = serde_json::to_string(&seqs).unwrap_or_default();
    let (hits_ms, _) = time(|| {
        let mut stmt = c.prepare_cached(&hits_sql(table))?;
        let rows = stmt.query_map(rusqlite::params![expr, low, high, list], |r| {
            r.get::<_, i64>(0)
        })?;
        rows.collect::<Result<Vec<_>, _>>()
    })?;
    let (all_ms, _) = time(|| {
        let mut stmt = c.prepare_cached(&rank_all_sql(table))?;
        let rows = stmt.query_map([expr], |r| r.get::<_, i64>(0))?;
        rows.collect::<Result<Vec<_>, _>>()
    })?;
    let matches: i64 = c.query_row(
        &format!("SELECT count(*) FROM {table} WHERE {table} MATCH ?1"),
        [expr],
        |r| r.get(0),
    )?;
    Ok([
        window_ms,
        floor as f64,
        hits_ms,
        all_ms,
        matches as f64,
        exact_ms,
        same as f64,
    ])
}

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

    println!(
        "| term | scope | index | matches | window floor | newest window, ranked | snippets of 21 | total | rank every match (V6) | window by FTS5's bm25 | best 21 in bm25's places |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let term = |class: &str, i: usize| info["terms"][class][i][0].as_str().unwrap_or("").to_owned();
    // (class, the words as typed, the FTS5 words: the last also a prefix)
    let mut queries = Vec::new();
    for class in ["rare", "common", "prefix"] {
        for i in 0..2 {
            let word = term(class, i);
            queries.push((class, word.clone(), format!("\"{word}\"*")));
        }
    }
    // Two words, where each phrase's weight (its IDF) decides the order.
    for (a, b) in [
        (term("common", 0), term("prefix", 2)),
        (term("common", 1), term("common", 5)),
        (term("rare", 0), term("common", 2)),
    ] {
        queries.push(("two words", format!("{a} {b}"), format!("\"{a}\" \"{b}\"*")));
    }
    for (class, word, fts) in queries {
        {
            let words = format!("{{title body}} : ({fts})");
            let mine = format!("{words} AND scope : {owner}");
            for (scope, parts) in [
                (
                    "mine",
                    vec![("public_fts", mine.clone()), ("private_fts", mine.clone())],
                ),
                ("public", vec![("public_fts", words.clone())]),
                (
                    "all",
                    vec![("public_fts", words.clone()), ("private_fts", mine.clone())],
                ),
            ] {
                for (table, expr) in parts {
                    let [window_ms, floor, hits_ms, all_ms, matches, exact_ms, same] = runtime
                        .block_on(db.read(move |c| Ok(steps(c, table, &expr)?)))
                        .map_err(|e| anyhow!("{e:?}"))?;
                    println!(
                        "| {class} \"{word}\" | {scope} | {table} | {matches} | {floor} | {window_ms:.1} ms | {hits_ms:.1} ms | {:.1} ms | {all_ms:.1} ms | {exact_ms:.1} ms | {same} |",
                        window_ms + hits_ms
                    );
                }
            }
        }
    }
    Ok(())
}
