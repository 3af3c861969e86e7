//! Supervision of source tasks: a source whose task ends before it was told
//! to stop (an error, a panic, or a plain return) is logged, counted and
//! started again after a backoff, and is reported down meanwhile — so a bad
//! input or a lost socket never silently ends a source for the rest of the
//! process's life.
//!
//! [`Health`] is the board the admin server reads (`/ready`, `/metrics`);
//! each supervised task has one [`TaskHealth`] on it.

use crate::metrics::{Series, SeriesKind};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::backoff::Backoff;
use tokio::sync::watch;
use tracing::{error, info};

/// The first restart waits up to this long; each further one doubles it, up
/// to [`switchyard_core::backoff::MAX_RETRY_DELAY`].
pub const FIRST_RESTART_DELAY: Duration = Duration::from_millis(200);

/// A task that ran this long without failing is healthy again: its next
/// failure restarts it after the first delay, not a long one.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// The state of every supervised task of a process.
#[derive(Debug, Default)]
pub struct Health {
    tasks: Mutex<Vec<Arc<TaskHealth>>>,
}

/// One supervised task.
#[derive(Debug)]
pub struct TaskHealth {
    /// The source's name, as in `/stats` and the metrics' `component` label.
    pub name: String,
    /// Times the task ended unexpectedly.
    pub failures: AtomicU64,
    /// Whether the task is down now (ended, waiting to be started again).
    down: AtomicBool,
    /// Why it last ended.
    last_error: Mutex<Option<String>>,
}

impl TaskHealth {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            failures: AtomicU64::new(0),
            down: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    /// Whether the task is down now.
    pub fn is_down(&self) -> bool {
        self.down.load(Relaxed)
    }

    /// Why the task last ended unexpectedly, if it ever did.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    /// The task ended unexpectedly: count it and report it down, with the
    /// reason, until [`TaskHealth::recovered`]. For a source that restarts
    /// itself (on a thread, say) rather than through [`supervise`].
    pub fn failed(&self, reason: String) {
        self.failures.fetch_add(1, Relaxed);
        *lock(&self.last_error) = Some(reason);
        self.down.store(true, Relaxed);
    }

    /// The task runs again.
    pub fn recovered(&self) {
        self.down.store(false, Relaxed);
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

impl Health {
    /// A new, empty board.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Put a task on the board.
    pub fn register(&self, name: &str) -> Arc<TaskHealth> {
        let task = Arc::new(TaskHealth::new(name));
        lock(&self.tasks).push(task.clone());
        task
    }

    /// Every task on the board.
    pub fn tasks(&self) -> Vec<Arc<TaskHealth>> {
        lock(&self.tasks).clone()
    }

    /// Series for `/metrics`: `dispatcher_source_task_failures_total` and
    /// `dispatcher_source_up` per task.
    pub fn series(&self, out: &mut Vec<Series>) {
        for t in lock(&self.tasks).iter() {
            let labels = vec![("component", t.name.clone())];
            out.push(Series {
                name: "source_task_failures",
                help: "Times a source's task ended unexpectedly and was restarted",
                kind: SeriesKind::Counter(t.failures.load(Relaxed)),
                labels: labels.clone(),
            });
            out.push(Series {
                name: "source_up",
                help: "1 while a source's task runs, 0 while it waits to be restarted",
                kind: SeriesKind::Gauge(if t.is_down() { 0.0 } else { 1.0 }),
                labels,
            });
        }
    }
}

/// Run the task `attempt` makes until `stop` turns true, starting it again
/// whenever it ends before that. An attempt that returns an error, panics or
/// returns while not stopped counts as a failure: it is logged with the
/// reason, counted on `health`, and followed by a jittered, doubling delay.
///
/// `attempt` is called again for each start, so it must set the source up
/// anew (bind its socket again, reconnect): the failed attempt's resources
/// were dropped with it. It is dropped as soon as `stop` turns true, while
/// the running attempt finishes: what it holds for restarts (an intake
/// sender) must not keep the pipeline from draining.
pub async fn supervise<F, Fut>(health: Arc<TaskHealth>, mut stop: watch::Receiver<bool>, attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let backoff = Backoff::full_jitter(FIRST_RESTART_DELAY);
    let mut attempt = Some(attempt);
    let mut restarts: u32 = 0;
    loop {
        let Some(make) = attempt.as_mut() else { return };
        let started = Instant::now();
        // Its own task, so that a panic ends the attempt, not the supervisor.
        let mut running = tokio::spawn(make());
        let ended = tokio::select! {
            outcome = &mut running => Some(outcome),
            _ = stop.wait_for(|s| *s) => None,
        };
        let outcome = match ended {
            Some(outcome) => outcome,
            None => {
                attempt = None;
                running.await
            }
        };
        if *stop.borrow() {
            return;
        }
        let reason = match outcome {
            Ok(Ok(())) => "ended without being asked to stop".to_string(),
            Ok(Err(e)) => e,
            Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
            Err(e) => format!("was cancelled: {e}"),
        };
        if started.elapsed() >= STABLE_AFTER {
            restarts = 0;
        }
        let delay = backoff.delay(restarts, None).max(Duration::from_millis(10));
        restarts = restarts.saturating_add(1);
        health.failed(reason.clone());
        error!(
            source = %health.name,
            reason = %reason,
            restart_in_ms = delay.as_millis() as u64,
            failures = health.failures.load(Relaxed),
            "source task failed; restarting it"
        );
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(delay) => {}
        }
        health.recovered();
        info!(source = %health.name, "source task restarted");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere while it was held; the
    // data (counters, a message) is still meaningful.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_restarted_counted_and_reported_down() {
        let health = Health::new();
        let task = health.register("syslog");
        let (stop, stop_rx) = watch::channel(false);
        let starts = Arc::new(AtomicU32::new(0));
        let s = starts.clone();
        let supervisor = tokio::spawn(supervise(task.clone(), stop_rx, move || {
            let n = s.fetch_add(1, Relaxed);
            async move {
                match n {
                    0 => panic!("boom at start {n}"),
                    1 => Err("socket closed".to_string()),
                    _ => {
                        // Runs until the supervisor is dropped with the runtime.
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                }
            }
        }));
        // Let the first two attempts fail and the third start.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(starts.load(Relaxed), 3);
        assert_eq!(task.failures.load(Relaxed), 2);
        assert!(!task.is_down());
        assert_eq!(task.last_error().as_deref(), Some("socket closed"));
        let mut series = Vec::new();
        health.series(&mut series);
        assert!(matches!(series[0].kind, SeriesKind::Counter(2)));
        assert!(matches!(series[1].kind, SeriesKind::Gauge(v) if v == 1.0));
        stop.send(true).unwrap();
        supervisor.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_task_is_reported_until_it_restarts_and_stop_ends_the_wait() {
        let health = Health::new();
        let task = health.register("udp");
        let (stop, stop_rx) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(task.clone(), stop_rx, || async {
            Err::<(), _>("bind failed".to_string())
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(task.is_down());
        assert!(task.failures.load(Relaxed) >= 1);
        stop.send(true).unwrap();
        // The supervisor returns during its backoff wait.
        tokio::time::timeout(Duration::from_secs(60), supervisor)
            .await
            .expect("supervisor ends on stop")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_after_stop_is_not_a_failure() {
        let health = Health::new();
        let task = health.register("tcp");
        let (stop, stop_rx) = watch::channel(false);
        let rx = stop_rx.clone();
        let supervisor = tokio::spawn(supervise(task.clone(), stop_rx, move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
                Ok(())
            }
        }));
        stop.send(true).unwrap();
        supervisor.await.unwrap();
        assert_eq!(task.failures.load(Relaxed), 0);
        assert!(!task.is_down());
    }

    /// The factory holds what restarts need (an intake sender); held until
    /// the attempt ended, it kept the Redis source's drain waiting on a
    /// pipeline that waited for that very sender to go.
    #[tokio::test(start_paused = true)]
    async fn the_factory_is_dropped_at_stop_before_the_attempt_ends() {
        let task = Health::new().register("redis");
        let (stop, stop_rx) = watch::channel(false);
        let held = Arc::new(());
        let in_factory = held.clone();
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let mut finished = Some(finished);
        let supervisor = tokio::spawn(supervise(task, stop_rx, move || {
            let _keep = in_factory.clone();
            let finished = finished.take();
            async move {
                if let Some(f) = finished {
                    let _ = f.await;
                }
                Ok(())
            }
        }));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(Arc::strong_count(&held), 2);
        stop.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(Arc::strong_count(&held), 1, "factory still alive");
        assert!(!supervisor.is_finished(), "the attempt is still running");
        finish.send(()).unwrap();
        supervisor.await.unwrap();
    }
}
