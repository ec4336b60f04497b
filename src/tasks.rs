//! The background tasks of `wizbrand serve`, started in one place (`startup`) and
//! supervised here.
//!
//! Each task is a function that starts it afresh, handed a [`CancellationToken`] that
//! says "stop". A task that ends or panics while nobody asked it to stop is logged
//! and started again after a backoff (200 ms, doubling up to 30 s, back to 200 ms
//! once a start has lived a minute): the tasks keep in-memory state in step with
//! Postgres, refresh sessions and run the sync, and the last state they loaded stays
//! good while one restarts, so a restart serves people better than an exit would
//! (docs/operations.md). At shutdown every task is told to stop, stops at a safe
//! point of its own (the sync between two operations, the session refresh between
//! two sessions), and what has not stopped by the deadline is aborted.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// How long to wait before starting a task again.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    first: Duration,
    max: Duration,
    /// A start that lived this long was healthy: the next restart waits `first` again.
    stable: Duration,
}

const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(200),
    max: Duration::from_secs(30),
    stable: Duration::from_secs(60),
};

/// The supervised tasks of one process.
pub struct Tasks {
    stop: CancellationToken,
    running: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    backoff: Backoff,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks::with_backoff(BACKOFF)
    }
}

impl Tasks {
    fn with_backoff(backoff: Backoff) -> Tasks {
        Tasks {
            stop: CancellationToken::new(),
            running: JoinSet::new(),
            names: HashMap::new(),
            backoff,
        }
    }

    /// Starts `start(stop)` now and again whenever it ends before shutdown.
    pub fn supervise<F, Fut>(&mut self, name: &'static str, start: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = self
            .running
            .spawn(supervise(name, start, self.stop.clone(), self.backoff));
        self.names.insert(handle.id(), name);
    }

    /// Tells every task to stop and waits up to `within` for them; the ones still
    /// running then are aborted (and named in the log). True when all stopped in time.
    pub async fn shutdown(mut self, within: Duration) -> bool {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.running.join_next_with_id()).await {
                Ok(None) => return true,
                Ok(Some(Ok((id, ())))) => {
                    self.names.remove(&id);
                }
                Ok(Some(Err(e))) => {
                    self.names.remove(&e.id());
                }
                Err(_) => break,
            }
        }
        let mut late: Vec<&str> = self.names.values().copied().collect();
        late.sort_unstable();
        tracing::warn!(
            tasks = late.join(", "),
            "background tasks did not stop within the grace period; aborted"
        );
        // Aborting a supervisor drops its attempt, which aborts the task itself.
        self.running.abort_all();
        while self.running.join_next().await.is_some() {}
        false
    }
}

/// Runs `start` until `stop`, restarting it with backoff whenever it ends.
async fn supervise<F, Fut>(
    name: &'static str,
    mut start: F,
    stop: CancellationToken,
    backoff: Backoff,
) where
    F: FnMut(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut wait = backoff.first;
    loop {
        let began = Instant::now();
        // A set of one: dropping it (when the supervisor is aborted) aborts the task,
        // and a panic comes back as an error instead of unwinding through here.
        let mut attempt = JoinSet::new();
        attempt.spawn(start(stop.clone()));
        let outcome = attempt.join_next().await;
        if stop.is_cancelled() {
            return;
        }
        if began.elapsed() >= backoff.stable {
            wait = backoff.first;
        }
        match outcome {
            Some(Err(e)) if e.is_panic() => tracing::error!(
                task = name,
                panic = panic_message(e.into_panic()),
                retry_in_ms = wait.as_millis(),
                "background task panicked; starting it again"
            ),
            _ => tracing::error!(
                task = name,
                retry_in_ms = wait.as_millis(),
                "background task ended unexpectedly; starting it again"
            ),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(backoff.max);
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_owned(), |s| (*s).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    fn quick() -> Tasks {
        Tasks::with_backoff(Backoff {
            first: Duration::from_millis(5),
            max: Duration::from_millis(20),
            stable: Duration::from_secs(60),
        })
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_task_that_ends_or_panics_is_started_again() {
        let mut tasks = quick();
        let ended = Arc::new(AtomicUsize::new(0));
        let panicked = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ended);
        tasks.supervise("ends", move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        let counter = Arc::clone(&panicked);
        tasks.supervise("panics", move |stop| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    panic!("start {n} fails");
                }
                stop.cancelled().await;
            }
        });
        until("the ending task was started three times", || {
            ended.load(Ordering::SeqCst) >= 3
        })
        .await;
        until("the panicking task was started until it lived", || {
            panicked.load(Ordering::SeqCst) == 4
        })
        .await;
        // Once it lives, it is not started again.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(panicked.load(Ordering::SeqCst), 4);
        assert!(tasks.shutdown(Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn shutdown_stops_every_task_and_starts_none_again() {
        let mut tasks = quick();
        let starts = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicUsize::new(0));
        for name in ["one", "two"] {
            let (starts, stopped) = (Arc::clone(&starts), Arc::clone(&stopped));
            tasks.supervise(name, move |stop| {
                starts.fetch_add(1, Ordering::SeqCst);
                let stopped = Arc::clone(&stopped);
                async move {
                    stop.cancelled().await;
                    stopped.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        until("both started", || starts.load(Ordering::SeqCst) == 2).await;
        assert_eq!(stopped.load(Ordering::SeqCst), 0);

        assert!(tasks.shutdown(Duration::from_secs(5)).await);

        assert_eq!(stopped.load(Ordering::SeqCst), 2, "each saw the stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2, "none started again");
    }

    /// Sets its flag when dropped: the task holding it was aborted or ended.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_stop_is_aborted_at_the_deadline() {
        let mut tasks = quick();
        let dropped = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (flag, seen) = (Arc::clone(&dropped), Arc::clone(&started));
        tasks.supervise("stubborn", move |_| {
            let guard = Dropped(Arc::clone(&flag));
            seen.store(true, Ordering::SeqCst);
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }
        });
        until("started", || started.load(Ordering::SeqCst)).await;
        let began = Instant::now();

        assert!(!tasks.shutdown(Duration::from_millis(100)).await);

        assert!(began.elapsed() >= Duration::from_millis(100));
        assert!(began.elapsed() < Duration::from_secs(2));
        until("the task itself was aborted", || {
            dropped.load(Ordering::SeqCst)
        })
        .await;
    }

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_message(Box::new(7)), "(no message)");
    }
}
