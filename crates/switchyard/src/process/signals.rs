//! SIGTERM and SIGINT, the two signals that ask a command to stop.

use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::error;

/// The process's SIGTERM and SIGINT, watched from the moment this is made,
/// so that no signal between the first and the next is missed.
pub struct Signals {
    term: Option<Signal>,
    int: Option<Signal>,
}

impl Signals {
    /// Start watching both signals. One that cannot be watched is logged
    /// and left out: the other still stops the process.
    pub fn new() -> Self {
        let watch = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                error!(error = %e, "cannot watch {name}; the other signal still stops the process");
                None
            }
        };
        Self {
            term: watch(SignalKind::terminate(), "SIGTERM"),
            int: watch(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// The next SIGTERM or SIGINT.
    pub async fn next(&mut self) {
        async fn recv(s: &mut Option<Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.term) => {}
            _ = recv(&mut self.int) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Both signals end the wait; a signal sent after `Signals::new` and
    /// before `next` is not lost.
    #[tokio::test]
    async fn sigterm_and_sigint_each_end_the_wait() {
        for kind in ["-TERM", "-INT"] {
            let mut signals = Signals::new();
            let pid = std::process::id().to_string();
            let sent = std::process::Command::new("kill")
                .args([kind, &pid])
                .status()
                .expect("`kill` runs");
            assert!(sent.success());
            tokio::time::timeout(Duration::from_secs(10), signals.next())
                .await
                .unwrap_or_else(|_| panic!("{kind} was not seen"));
        }
    }
}
