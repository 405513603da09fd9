//! `bm25_sampled`: FTS5's bm25 whose document frequencies are sampled, registered on every
//! connection.
//!
//! FTS5's own `bm25()` weighs each phrase of a query by its IDF, and counts the documents a
//! phrase is in by walking the phrase's whole doclist once per query. For a word or prefix in
//! a third of a million conversations that walk alone is 10–20 ms, however few rows the query
//! then ranks (a search ranks a window of the newest 2,000 matches). This function is the
//! same formula (k1 = 1.2, b = 0.75, the same IDF floor, column weights as trailing
//! arguments), except that it stops counting a phrase past [`SAMPLE`] documents and
//! extrapolates: the count walks rowids upwards, so the density of its first `SAMPLE` hits
//! (from the first hit's rowid to the `SAMPLE`th's) is carried on to `span`. Rowids are
//! conversation `seq`s, handed out in time order, so this assumes a word about as frequent in
//! the newer conversations as in the older ones since it first appeared; a phrase in at most
//! `SAMPLE` documents is counted exactly, as bm25 does.
//!
//! `bm25_sampled(table, span, w0, w1, …)` — `span` is the largest rowid the table can hold
//! (for conversations, `max(seq)`), `w0…` the column weights (default 1.0), lower is better
//! as with `bm25()`. Without a `span` above the sampled rowids the counts are exact, as
//! bm25's. Like bm25's, the counts are made on the first row a query ranks: `span` is read
//! there, once per execution.
//!
//! The function is registered through FTS5's C API (`fts5_api.xCreateFunction`), which
//! rusqlite does not wrap: this file is the only place it is called.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::ptr;

use rusqlite::{Connection, ffi};

/// Documents counted per phrase before the count is extrapolated: a few hundred µs of
/// doclist at most, and a density estimate within a few per cent.
pub const SAMPLE: i64 = 4096;

const NAME: &std::ffi::CStr = c"bm25_sampled";

/// Registers `bm25_sampled` on `conn`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    // SAFETY: `handle` is the live connection `conn` borrows; the statement is finalized
    // before returning; `api` is written by FTS5 during the step (the documented way to get
    // the `fts5_api` pointer) and lives as long as the connection.
    unsafe {
        let db = conn.handle();
        let mut api: *mut ffi::fts5_api = ptr::null_mut();
        let mut stmt: *mut ffi::sqlite3_stmt = ptr::null_mut();
        let rc = ffi::sqlite3_prepare_v2(
            db,
            c"SELECT fts5(?1)".as_ptr(),
            -1,
            &mut stmt,
            ptr::null_mut(),
        );
        if rc != ffi::SQLITE_OK {
            return Err(ffi_error(rc, "cannot prepare SELECT fts5(?1)"));
        }
        ffi::sqlite3_bind_pointer(
            stmt,
            1,
            (&raw mut api).cast::<c_void>(),
            c"fts5_api_ptr".as_ptr(),
            None,
        );
        let rc = ffi::sqlite3_step(stmt);
        ffi::sqlite3_finalize(stmt);
        if rc != ffi::SQLITE_ROW {
            let message = std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db))
                .to_string_lossy()
                .into_owned();
            return Err(ffi_error(rc, &format!("SELECT fts5(?1): {message}")));
        }
        let Some(create) = api.as_ref().and_then(|a| a.xCreateFunction) else {
            return Err(ffi_error(ffi::SQLITE_ERROR, "FTS5 is not available"));
        };
        let rc = create(
            api,
            NAME.as_ptr(),
            ptr::null_mut(),
            Some(bm25_sampled),
            None,
        );
        if rc != ffi::SQLITE_OK {
            return Err(ffi_error(rc, "cannot register bm25_sampled"));
        }
    }
    Ok(())
}

fn ffi_error(code: c_int, message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(message.to_owned()))
}

/// What one query computes once: the average row length and each phrase's IDF.
struct QueryData {
    avgdl: f64,
    idf: Vec<f64>,
    freq: Vec<f64>,
}

/// The count of one phrase's documents, stopped one past `SAMPLE` when `span` allows an
/// estimate.
struct Count {
    span: i64,
    hits: i64,
    /// The rowids of the first and the `SAMPLE`th hit.
    first: i64,
    sampled: i64,
}

impl Count {
    /// The phrase's document count: exact when the walk ended, else extrapolated from the
    /// density of its first `SAMPLE` hits (between the first hit and the `SAMPLE`th) over the
    /// rest of the span, so a word that appeared only lately is not thinned by the years
    /// before it.
    fn documents(&self) -> f64 {
        if self.hits <= SAMPLE || self.sampled <= self.first {
            return self.hits as f64;
        }
        let per_rowid = (SAMPLE - 1) as f64 / (self.sampled - self.first) as f64;
        (1.0 + per_rowid * (self.span - self.first) as f64).max(self.hits as f64)
    }
}

unsafe extern "C" fn count_hit(
    api: *const ffi::Fts5ExtensionApi,
    fts: *mut ffi::Fts5Context,
    data: *mut c_void,
) -> c_int {
    // SAFETY: FTS5 passes back the `Count` that `query_data` handed to xQueryPhrase, which
    // outlives the call; `api` and `fts` are valid for the callback.
    unsafe {
        let count = &mut *data.cast::<Count>();
        count.hits += 1;
        let rowid = || (*api).xRowid.map_or(0, |rowid| rowid(fts));
        if count.hits == 1 {
            count.first = rowid();
        } else if count.hits == SAMPLE {
            count.sampled = rowid();
        } else if count.hits > SAMPLE && count.span > count.sampled {
            // More than `SAMPLE`, and a span to extrapolate over: ends xQueryPhrase early
            // with SQLITE_OK. Without a usable span the walk goes on to the exact count.
            return ffi::SQLITE_DONE;
        }
    }
    ffi::SQLITE_OK
}

/// The IDF of a phrase found in `hits` of `rows` documents, with bm25's floor.
fn idf(rows: i64, hits: f64) -> f64 {
    let idf = ((rows as f64 - hits + 0.5) / (hits + 0.5)).ln();
    if idf <= 0.0 { 1e-6 } else { idf }
}

/// The query's `QueryData`, computed on the first row and kept as FTS5 auxiliary data.
///
/// # Safety
///
/// `api` and `fts` as FTS5 passes them to an auxiliary function.
unsafe fn query_data(
    api: &ffi::Fts5ExtensionApi,
    fts: *mut ffi::Fts5Context,
    span: i64,
) -> Result<*mut QueryData, c_int> {
    let (Some(get), Some(set)) = (api.xGetAuxdata, api.xSetAuxdata) else {
        return Err(ffi::SQLITE_ERROR);
    };
    // SAFETY: the auxiliary data slot holds only a `QueryData` this function boxed.
    unsafe {
        let data = get(fts, 0).cast::<QueryData>();
        if !data.is_null() {
            return Ok(data);
        }
        let (Some(phrases), Some(row_count), Some(total_size), Some(query_phrase)) = (
            api.xPhraseCount,
            api.xRowCount,
            api.xColumnTotalSize,
            api.xQueryPhrase,
        ) else {
            return Err(ffi::SQLITE_ERROR);
        };
        let phrases = phrases(fts).max(0);
        let mut rows = 0;
        check(row_count(fts, &mut rows))?;
        let mut tokens = 0;
        check(total_size(fts, -1, &mut tokens))?;
        let rows = rows.max(1);
        let mut idfs = Vec::with_capacity(phrases as usize);
        for phrase in 0..phrases {
            let mut count = Count {
                span,
                hits: 0,
                first: 0,
                sampled: 0,
            };
            check(query_phrase(
                fts,
                phrase,
                (&raw mut count).cast::<c_void>(),
                Some(count_hit),
            ))?;
            idfs.push(idf(rows, count.documents().min(rows as f64)));
        }
        let data = Box::into_raw(Box::new(QueryData {
            avgdl: tokens as f64 / rows as f64,
            freq: vec![0.0; idfs.len()],
            idf: idfs,
        }));
        let rc = set(fts, data.cast::<c_void>(), Some(drop_query_data));
        if rc != ffi::SQLITE_OK {
            // FTS5 calls the destructor itself when it cannot keep the data.
            return Err(rc);
        }
        Ok(data)
    }
}

unsafe extern "C" fn drop_query_data(data: *mut c_void) {
    // SAFETY: called once by FTS5 with the pointer `query_data` boxed.
    unsafe { drop(Box::from_raw(data.cast::<QueryData>())) }
}

fn check(rc: c_int) -> Result<(), c_int> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rc)
    }
}

/// The auxiliary function: bm25 of the current row (see the module documentation).
unsafe extern "C" fn bm25_sampled(
    api: *const ffi::Fts5ExtensionApi,
    fts: *mut ffi::Fts5Context,
    ctx: *mut ffi::sqlite3_context,
    n_val: c_int,
    values: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: FTS5 passes a valid API, context and `n_val` argument values.
    unsafe {
        match score(&*api, fts, n_val, values) {
            Ok(score) => ffi::sqlite3_result_double(ctx, -score),
            Err(rc) => ffi::sqlite3_result_error_code(ctx, rc),
        }
    }
}

/// # Safety
///
/// As for [`bm25_sampled`].
unsafe fn score(
    api: &ffi::Fts5ExtensionApi,
    fts: *mut ffi::Fts5Context,
    n_val: c_int,
    values: *mut *mut ffi::sqlite3_value,
) -> Result<f64, c_int> {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;
    let (Some(inst_count), Some(inst), Some(column_size)) =
        (api.xInstCount, api.xInst, api.xColumnSize)
    else {
        return Err(ffi::SQLITE_ERROR);
    };
    // SAFETY: `values` holds `n_val` valid values; the rest as the caller guarantees.
    unsafe {
        let args: &[*mut ffi::sqlite3_value] = if n_val > 0 && !values.is_null() {
            std::slice::from_raw_parts(values, n_val as usize)
        } else {
            &[]
        };
        let span = args.first().map_or(0, |v| ffi::sqlite3_value_int64(*v));
        let weights = args.get(1..).unwrap_or(&[]);
        let data = &mut *query_data(api, fts, span)?;
        data.freq.iter_mut().for_each(|f| *f = 0.0);
        let mut instances = 0;
        check(inst_count(fts, &mut instances))?;
        for i in 0..instances {
            let (mut phrase, mut column, mut offset) = (0, 0, 0);
            check(inst(fts, i, &mut phrase, &mut column, &mut offset))?;
            let weight = usize::try_from(column)
                .ok()
                .and_then(|c| weights.get(c))
                .map_or(1.0, |v| ffi::sqlite3_value_double(*v));
            if let Some(f) = usize::try_from(phrase)
                .ok()
                .and_then(|p| data.freq.get_mut(p))
            {
                *f += weight;
            }
        }
        let mut length = 0;
        check(column_size(fts, -1, &mut length))?;
        let length = f64::from(length);
        // Grouped as FTS5's C is, so that below the sample the scores are bm25's to the bit.
        let score: f64 = data
            .idf
            .iter()
            .zip(&data.freq)
            .map(|(idf, f)| {
                idf * ((f * (K1 + 1.0)) / (f + K1 * (1.0 - B + B * length / data.avgdl)))
            })
            .sum();
        // SQLite would store NaN as NULL, which the caller cannot read as a number.
        Ok(if score.is_finite() { score } else { 0.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of `n` rows where `common` is in every other row and `rare` in three, ranked
    /// by both functions.
    fn table(n: i64) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.execute_batch("CREATE VIRTUAL TABLE t USING fts5 (title, body);")
            .unwrap();
        let mut insert = conn
            .prepare("INSERT INTO t (rowid, title, body) VALUES (?1, ?2, ?3)")
            .unwrap();
        for i in 1..=n {
            let title = if i % 7 == 0 { "common title" } else { "other" };
            let mut body = format!("filler words number {i}");
            if i % 2 == 0 {
                body.push_str(" common");
            }
            if i % 3 == 0 {
                body.push_str(" common again");
            }
            if i > 30_000 && i % 2 == 0 {
                body.push_str(" late");
            }
            if [5, 500, n - 1].contains(&i) {
                body.push_str(" rare");
            }
            insert.execute(rusqlite::params![i, title, body]).unwrap();
        }
        drop(insert);
        conn
    }

    fn ranks(conn: &Connection, query: &str, function: &str) -> Vec<(i64, f64)> {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT rowid, {function} FROM t WHERE t MATCH ?1 ORDER BY 2, rowid"
            ))
            .unwrap();
        stmt.query_map([query], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn below_the_sample_it_is_bm25() {
        let n = 3000;
        let conn = table(n);
        for query in ["common", "rare", "common rare", "com*", "filler OR rare"] {
            let ours = ranks(&conn, query, &format!("bm25_sampled(t, {n}, 10.0, 1.0)"));
            let theirs = ranks(&conn, query, "bm25(t, 10.0, 1.0)");
            assert_eq!(ours.len(), theirs.len(), "{query}");
            for ((a, x), (b, y)) in ours.iter().zip(&theirs) {
                assert_eq!(a, b, "{query}");
                assert!((x - y).abs() < 1e-9, "{query}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn above_the_sample_the_count_is_extrapolated() {
        // `common` is in 2/3 of 40,000 rows: its sampled count is within a few per cent,
        // so its IDF is floored exactly as bm25 floors it, and `rare` still outweighs it.
        let n = 40_000;
        let conn = table(n);
        let ours = ranks(
            &conn,
            "common rare",
            &format!("bm25_sampled(t, {n}, 10.0, 1.0)"),
        );
        let theirs = ranks(&conn, "common rare", "bm25(t, 10.0, 1.0)");
        assert_eq!(ours.len(), theirs.len());
        for ((a, x), (b, y)) in ours.iter().zip(&theirs) {
            assert_eq!(a, b);
            assert!((x - y).abs() < 1e-6 * x.abs().max(1.0), "{x} vs {y}");
        }
        // A phrase in 1/7 of rows (the title), counted to 4096 and extrapolated.
        let rows = n as f64;
        let exact = idf(n, rows / 7.0);
        let ours = ranks(&conn, "title", &format!("bm25_sampled(t, {n}, 10.0, 1.0)"));
        let theirs = ranks(&conn, "title", "bm25(t, 10.0, 1.0)");
        let ratio = ours[0].1 / theirs[0].1;
        assert!(exact > 1.0 && (ratio - 1.0).abs() < 0.03, "ratio {ratio}");
        // A word only in the newest quarter (5,000 rows from rowid 30,002): its density is
        // taken from where it starts, not from rowid 0.
        let ours = ranks(&conn, "late", &format!("bm25_sampled(t, {n})"));
        let theirs = ranks(&conn, "late", "bm25(t)");
        let ratio = ours[0].1 / theirs[0].1;
        assert!((ratio - 1.0).abs() < 0.03, "ratio {ratio}");
        assert_eq!(
            ours.iter().map(|r| r.0).collect::<Vec<_>>(),
            theirs.iter().map(|r| r.0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn without_a_span_the_counts_are_exact() {
        // Past the sample, a missing, text or negative span counts to the end: bm25 exactly.
        let n = 40_000;
        let conn = table(n);
        let theirs = ranks(&conn, "common rare", "bm25(t)");
        for call in [
            "bm25_sampled(t)",
            "bm25_sampled(t, 'x', 1.0, 1.0)",
            "bm25_sampled(t, -5)",
            "bm25_sampled(t, 0, NULL)",
        ] {
            let ours = ranks(&conn, "common rare", call);
            let ours: Vec<(i64, f64)> = if call.contains("NULL") {
                // A NULL weight is 0 for the title (bm25 does the same).
                let expected = ranks(&conn, "common rare", "bm25(t, NULL)");
                assert_eq!(ours, expected, "{call}");
                continue;
            } else {
                ours
            };
            assert_eq!(ours, theirs, "{call}");
        }
    }

    #[test]
    fn one_statement_counts_again_for_each_query() {
        let conn = table(3000);
        let mut stmt = conn
            .prepare(
                "SELECT rowid, bm25_sampled(t, 3000) FROM t WHERE t MATCH ?1 ORDER BY 2, rowid",
            )
            .unwrap();
        let mut run = |query: &str| -> Vec<(i64, f64)> {
            stmt.query_map([query], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let common = run("common");
        let rare = run("rare");
        assert_eq!(common, ranks(&conn, "common", "bm25(t)"));
        assert_eq!(rare, ranks(&conn, "rare", "bm25(t)"));
    }

    #[test]
    fn bad_arguments_do_not_crash() {
        let conn = table(50);
        // No span, no weights, a text span: plain counts, weights of 1.
        for call in [
            "bm25_sampled(t)",
            "bm25_sampled(t, 'x')",
            "bm25_sampled(t, -5, NULL)",
        ] {
            let got = ranks(&conn, "common", call);
            assert!(!got.is_empty(), "{call}");
            assert!(got.iter().all(|(_, r)| r.is_finite()), "{call}");
        }
    }
}
