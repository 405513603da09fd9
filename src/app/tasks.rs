//! Background work has one owner: every task the server runs (key reloads, pruning, usage
//! rows written after an answer, mail sent after a response, outbox delivery) is spawned
//! here, and shutdown cancels them and waits for them (bounded) before the database closes.

use std::{future::Future, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

#[derive(Clone, Default)]
pub struct Tasks {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Runs `task` until it completes or shutdown cancels it (a long-running loop should
    /// `select!` on [`Tasks::cancelled`] and finish its work; a one-off, such as a mail,
    /// runs to completion and shutdown waits for it).
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Runs `tick` every `period` (the first one after `first`) until shutdown.
    pub fn every<F, Fut>(&self, name: &'static str, first: Duration, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + first, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = interval.tick() => tick().await,
                }
            }
            tracing::debug!(task = name, "stopped");
        });
    }

    /// Completes when shutdown has begun.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await;
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Asks every task to stop and waits at most `limit` for all of them; `false` when some
    /// were still running.
    pub async fn shutdown(&self, limit: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(limit, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn shutdown_stops_loops_and_waits_for_one_offs() {
        let tasks = Tasks::new();
        let ticked = Arc::new(tokio::sync::Notify::new());
        let tick = ticked.clone();
        tasks.every(
            "count",
            Duration::ZERO,
            Duration::from_millis(1),
            move || {
                tick.notify_one();
                std::future::ready(())
            },
        );
        ticked.notified().await;
        let finished = Arc::new(AtomicU32::new(0));
        let done = finished.clone();
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            done.store(1, Ordering::SeqCst);
        });
        assert!(tasks.shutdown(Duration::from_secs(5)).await);
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "the one-off ran to its end"
        );
    }
}
