//! The single writer, with group commit.
//!
//! Every [`super::Db::write`] (and [`super::Db::write_now`]) becomes a job on one queue,
//! served by one thread that owns the writer connection. The thread takes the job at the
//! head and every job already waiting behind it (at most [`MAX_GROUP`]), runs them in one
//! `IMMEDIATE` transaction, each inside a savepoint of its own, and commits once. A job
//! whose closure fails (or panics) rolls back to its savepoint and gets its error at once:
//! the others in the group are untouched. The rest hear back only after the commit, so an
//! acknowledged write is a committed one, as before; what changes is that one commit (and
//! one WAL append) serves many writes when they arrive together. Alone, a write is one
//! transaction, as before.
//!
//! A job that waited longer than `storage.busy_timeout` for its turn (a wait for a slot in a
//! full queue included) is not run: the caller gets 503 `unavailable`, as it did when it
//! could not take the writer within that time. [`Writer::write_now`] queues without waiting
//! (or gives the write back when the queue is full), so a write is queued even if its
//! caller is then dropped; a failure nobody hears of is logged.

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::anyhow;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::error::{ApiError, AppResult};

/// Most writes committed together: bounds what one failed commit takes down with it.
const MAX_GROUP: usize = 64;
/// Jobs waiting beyond this make [`Writer::write`] wait to enqueue (and time out as busy),
/// and [`Writer::write_now`] give the write back.
pub(super) const QUEUE: usize = 1024;

/// What the writer thread does with a job: run it in the group's transaction, or tell its
/// caller it waited too long.
type Job = Box<dyn FnOnce(Turn<'_, '_>) -> Option<Finish> + Send>;

/// A job and when it was queued.
type Queued = (Instant, Job);

enum Turn<'a, 'c> {
    Run(&'a Transaction<'c>),
    /// It waited longer than the busy timeout: 503.
    Expired,
    /// The group's transaction could not go on (the message says why): 500.
    Failed(&'a str),
}

/// A job that ran: whether its closure succeeded, and how to answer its caller once the
/// commit's outcome is known (`None`: committed; `Some(message)`: the group failed).
struct Finish {
    ok: bool,
    answer: Answer,
}

/// Answers a job's caller, given the group's outcome.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

pub(super) struct Writer {
    queue: Option<mpsc::Sender<Queued>>,
    thread: Option<JoinHandle<()>>,
    wait_timeout: Duration,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(super) fn start(
        conn: Arc<Mutex<Connection>>,
        wait_timeout: Duration,
    ) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("persona-db-writer".into())
            .spawn(move || serve(&conn, jobs, wait_timeout))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            wait_timeout,
        })
    }

    /// Runs `f` in the next group (see the module docs).
    pub(super) async fn write<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&Transaction<'_>) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let Some(queue) = &self.queue else {
            return Err(shutting_down());
        };
        // The busy timeout counts from here: a wait for a slot in the queue is part of it.
        let since = Instant::now();
        let slot = match tokio::time::timeout(self.wait_timeout, queue.reserve()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_closed)) => return Err(shutting_down()),
            Err(_elapsed) => return Err(busy()),
        };
        queue_job(slot, since, f).await
    }

    /// [`Writer::write`], queued before it returns: the write runs whether or not the
    /// returned future is awaited (or dropped). Gives `f` back when the queue is full or
    /// closed, for the caller to wait its turn with [`Writer::write`].
    pub(super) fn write_now<T, F>(
        &self,
        f: F,
    ) -> Result<impl Future<Output = AppResult<T>> + use<T, F>, F>
    where
        F: FnOnce(&Transaction<'_>) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        match self.queue.as_ref().map(mpsc::Sender::try_reserve) {
            Some(Ok(slot)) => Ok(queue_job(slot, Instant::now(), f)),
            _ => Err(f),
        }
    }
}

/// Puts `f` in the queue now (in `slot`; its wait counted from `since`); the future
/// answers once its group is committed.
fn queue_job<T, F>(
    slot: mpsc::Permit<'_, Queued>,
    since: Instant,
    f: F,
) -> impl Future<Output = AppResult<T>> + use<T, F>
where
    F: FnOnce(&Transaction<'_>) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    let (reply, answer) = oneshot::channel::<AppResult<T>>();
    let span = tracing::Span::current();
    let job: Job = Box::new(move |turn| match turn {
        Turn::Expired => {
            answer_caller(reply, Err(busy()));
            None
        }
        Turn::Failed(message) => {
            answer_caller(reply, Err(failed(message)));
            None
        }
        Turn::Run(tx) => {
            let result = span.in_scope(|| f(tx));
            Some(Finish {
                ok: result.is_ok(),
                answer: Box::new(move |failed: Option<&str>| {
                    let result = match (result, failed) {
                        (Ok(_), Some(message)) => Err(self::failed(message)),
                        (result, _) => result,
                    };
                    answer_caller(reply, result);
                }),
            })
        }
    });
    slot.send((since, job));
    async move {
        answer.await.unwrap_or_else(|_| {
            Err(ApiError::internal(anyhow!(
                "database error: the write ended without an answer (it panicked)"
            )))
        })
    }
}

/// Sends a write's outcome to its caller. A caller that has gone (a request dropped, a
/// [`Writer::write_now`] nobody awaits) cannot log its failure, so it is logged here.
fn answer_caller<T>(reply: oneshot::Sender<AppResult<T>>, result: AppResult<T>) {
    if let Err(Err(err)) = reply.send(result) {
        tracing::warn!(error = %err, "a write failed after its caller had gone");
    }
}

impl Drop for Writer {
    /// Closes the queue and waits for the thread, so the connection is closed (and the WAL
    /// checkpointed) by the time the `Db` is gone.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            // A job holding the last `Db` is dropped on the writer thread itself: that
            // thread ends on its own once the queue is closed.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn failed(message: &str) -> ApiError {
    ApiError::internal(anyhow!(
        "database error: the write's transaction failed: {message}"
    ))
}

fn shutting_down() -> ApiError {
    ApiError::unavailable("The database is shutting down.")
}

fn busy() -> ApiError {
    ApiError::unavailable("The database is busy; try again.")
}

fn serve(conn: &Mutex<Connection>, mut jobs: mpsc::Receiver<Queued>, wait_timeout: Duration) {
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let mut group = group
            .into_iter()
            .filter_map(|(queued, job)| {
                if now.duration_since(queued) > wait_timeout {
                    job(Turn::Expired);
                    None
                } else {
                    Some(job)
                }
            })
            .collect::<Vec<_>>()
            .into_iter();
        // Normally one pass; another only when SQLite rolled a transaction back under us.
        while !group.as_slice().is_empty() {
            commit_group(&mut conn, &mut group);
        }
    }
}

/// Runs jobs from `jobs` in one transaction and commits; stops early (leaving the rest in
/// `jobs`) if SQLite ends the transaction itself (an I/O error, a full disk).
fn commit_group(conn: &mut Connection, jobs: &mut std::vec::IntoIter<Job>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(err) => {
            let message = err.to_string();
            for job in jobs {
                job(Turn::Failed(&message));
            }
            return;
        }
    };
    let mut done = Vec::new();
    let mut aborted = None;
    for job in jobs.by_ref() {
        // The savepoint statements are prepared once per connection (cached), not parsed
        // per job.
        if let Err(err) = tx
            .prepare_cached("SAVEPOINT job")
            .and_then(|mut s| s.execute([]))
        {
            let message = err.to_string();
            job(Turn::Failed(&message));
            aborted = Some(message);
            break;
        }
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Turn::Run(&tx)))) {
            Ok(Some(finish)) if finish.ok => {
                let _ = tx
                    .prepare_cached("RELEASE job")
                    .and_then(|mut s| s.execute([]));
                done.push(finish.answer);
            }
            Ok(finish) => {
                // Failed (or expired, which never reaches here): undo its writes, answer now.
                let _ = tx.execute_batch("ROLLBACK TO job; RELEASE job");
                if let Some(finish) = finish {
                    (finish.answer)(None);
                }
            }
            Err(_panic) => {
                // The panic was printed by the hook; its caller hears "no answer" (500).
                let _ = tx.execute_batch("ROLLBACK TO job; RELEASE job");
            }
        }
        if tx.is_autocommit() {
            aborted = Some("SQLite rolled the transaction back".to_owned());
            break;
        }
    }
    let outcome = match aborted {
        Some(message) => Err(message),
        None => tx.commit().map_err(|e| e.to_string()),
    };
    let failed = outcome.as_ref().err().map(String::as_str);
    for answer in done {
        answer(failed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{
        db::{
            Db,
            testing::{fill_queue, temp_db, temp_db_with},
        },
        error::{ApiError, Code},
    };

    async fn setup(db: &Db) {
        db.write(|tx| {
            tx.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")?;
            Ok(())
        })
        .await
        .unwrap();
    }

    async fn rows(db: &Db) -> Vec<i64> {
        db.read(|conn| {
            let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<i64>, _>>()?)
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writes_queued_together_commit_together_and_a_failure_is_its_own() {
        let (_dir, db) = temp_db();
        setup(&db).await;
        // A slow write holds the writer while the others queue behind it: they form groups.
        let slow = tokio::spawn({
            let db = db.clone();
            async move {
                db.write(|tx| {
                    std::thread::sleep(Duration::from_millis(100));
                    tx.execute("INSERT INTO t VALUES (0)", [])?;
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let writes: Vec<_> = (1..=200i64)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |tx| {
                        tx.execute("INSERT INTO t VALUES (?1)", [n])?;
                        match n % 50 {
                            // Wrote, then failed: its row must go, the group's must stay.
                            7 => Err(ApiError::conflict(Code::AlreadyExists, "refused")),
                            // Panicked after writing: the same, and the writer lives on.
                            13 => panic!("a write that panics"),
                            _ => Ok(n),
                        }
                    })
                    .await
                })
            })
            .collect();
        slow.await.unwrap().unwrap();
        let mut refused = 0;
        let mut panicked = 0;
        for (i, write) in writes.into_iter().enumerate() {
            let n = i as i64 + 1;
            match (n % 50, write.await.unwrap()) {
                (7, Err(ApiError::Conflict { .. })) => refused += 1,
                (13, Err(ApiError::Internal(_))) => panicked += 1,
                (_, Ok(v)) => assert_eq!(v, n),
                (_, other) => panic!("write {n}: {other:?}"),
            }
        }
        assert_eq!((refused, panicked), (4, 4));
        let expected: Vec<i64> = (0..=200).filter(|n| !matches!(n % 50, 7 | 13)).collect();
        assert_eq!(rows(&db).await, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_waits_past_the_busy_timeout_is_refused_and_never_runs() {
        let (_dir, db) = db_with_busy_timeout();
        setup(&db).await;
        let slow = tokio::spawn({
            let db = db.clone();
            async move {
                db.write(|_| {
                    std::thread::sleep(Duration::from_millis(400));
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_a_late_write_is_refused(&db).await;
        slow.await.unwrap().unwrap();
        assert_eq!(rows(&db).await, Vec::<i64>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wait_for_a_slot_in_a_full_queue_counts_toward_the_busy_timeout() {
        let (_dir, db) = db_with_busy_timeout();
        setup(&db).await;
        let full = fill_queue(&db);
        assert_a_late_write_is_refused(&db).await;
        // The held write ran; the queued ones waited past the timeout too: never run.
        let writes = full.release().await;
        writes[0].as_ref().unwrap();
        assert_eq!(rows(&db).await, Vec::<i64>::new());
    }

    /// A database whose writes wait at most 100 ms for their turn.
    fn db_with_busy_timeout() -> (tempfile::TempDir, Db) {
        temp_db_with(|config| config.storage.busy_timeout = Duration::from_millis(100))
    }

    /// A write of row 1 now is 503 `unavailable`: it waited too long for its turn.
    async fn assert_a_late_write_is_refused(db: &Db) {
        let late = db
            .write(|tx| {
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                Ok(())
            })
            .await;
        assert!(
            matches!(
                &late,
                Err(ApiError::Service {
                    code: Code::Unavailable,
                    ..
                })
            ),
            "{late:?}"
        );
    }
}
