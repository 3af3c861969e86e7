//! The source component: what reads events from the outside world into a
//! pipeline, and the registry that builds one from its type name and typed
//! configuration.
//!
//! A source is built in two steps. Its configuration is read and checked
//! without effects ([`SourceRegistry::build`] → a [`Source`]), so
//! `switchyard validate` can report every mistake with its key before
//! anything starts; then [`Source::start`] binds, opens and spawns, and hands
//! back a [`RunningSource`] that reports its counters and is stopped at the
//! end.
//!
//! # Why here and not in `core`
//! `Sink` and `Transform` live in `switchyard-core` because what they touch
//! (events, batches, errors) is defined there. A source's context is made of
//! the engine's own parts: the intake queue that pushes back
//! ([`IntakeSender`]), the supervision board ([`Health`]) and the metrics'
//! discard readers ([`DiscardsFn`]). Abstracting those behind traits in
//! `core` would put a dynamic call on every chunk a source hands over, the
//! hottest path of all, to save one dependency every source crate already
//! has; so the trait sits beside those parts.
//!
//! # Layout
//! - this module: [`Source`], [`SourceContext`], [`RunningSource`],
//!   [`SourceError`].
//! - [`registry`]: type name → typed configuration → [`Source`].

pub mod registry;

pub use registry::{SourceConfig, SourceRegistry};

use crate::metrics::{ComponentKind, DiscardsFn, Metrics};
use crate::supervise::Health;
use crate::IntakeSender;
use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::watch;

/// Produces a source's counters as JSON, for `/stats`.
pub type StatsFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// What a source is given when it starts.
///
/// The source owns everything else it needs: its positions and checkpoints
/// (file offsets, Docker timestamps, Redis offsets and pending entries) and
/// the acknowledgements it attaches to its events
/// ([`switchyard_core::AckBatch`], [`switchyard_core::IndexedAckBatch`]),
/// whose fates tell it when a position may move.
pub struct SourceContext {
    /// The source's name: its entry on the health board and its `source`
    /// field in logs.
    pub name: String,
    /// Where its events go. `send` waits while the queue is full: that wait
    /// is the backpressure a source passes on (a TCP connection not read, an
    /// HTTP `503`) or, where it cannot, counts as a discard (UDP).
    pub output: IntakeSender,
    /// Turns `true` once the pipeline stops: stop reading, hand back the
    /// output, and finish the acknowledgements still in flight.
    pub shutdown: watch::Receiver<bool>,
    /// The supervision board: a source's task that ends early is reported
    /// down there and restarted (see [`crate::supervise::supervise`]).
    pub health: Arc<Health>,
    /// Every sink this source feeds keeps what it accepts on disk, so a
    /// source that can wait for its events' fates (HTTP ingest) does so by
    /// default and its answer then means "durable".
    pub durable_sinks: bool,
}

/// A configured source, checked and ready to start.
#[async_trait]
pub trait Source: Send + 'static {
    /// Bound of the source's own queue in front of the transforms, events.
    fn queue_size(&self) -> usize;

    /// Start reading into `cx.output`: bind, open, spawn. Fails (naming the
    /// setting at fault) when the source cannot start at all; failures after
    /// that are the source's to retry and report on `cx.health`.
    async fn start(
        self: Box<Self>,
        cx: SourceContext,
    ) -> Result<Box<dyn RunningSource>, SourceError>;
}

/// A started source.
#[async_trait]
pub trait RunningSource: Send + 'static {
    /// Its counters as JSON, for `/stats`; the function outlives the source.
    fn stats(&self) -> StatsFn;

    /// What it loses, by reason, read at scrape time; `None` when it cannot
    /// lose anything.
    fn discards(&self) -> Option<DiscardsFn> {
        None
    }

    /// Put what it loses on `/metrics` as the source called `component`.
    fn report_discards(&self, metrics: &Metrics, component: &str) {
        if let Some(read) = self.discards() {
            metrics.add_discards(component, ComponentKind::Source, read);
        }
    }

    /// Return once the source has stopped reading, let go of its output and
    /// settled what it could: events in flight confirmed (bounded by the
    /// source's own drain timeout), positions written.
    ///
    /// The caller turns the context's `shutdown` to `true` first: that is
    /// what every source's tasks watch (a source with a stop of its own, the
    /// file tail's thread or Docker's followers, is also told here). The
    /// pipeline must keep running meanwhile, since the acknowledgements come
    /// from the sinks: stop sources before or beside
    /// [`crate::topology::Pipeline::finish`], never after it.
    async fn stop(self: Box<Self>);
}

/// Why a source cannot be configured or started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// No source is registered under this type name.
    #[error("`{name}` is not a source type; expected one of {}", known.join(", "))]
    UnknownType {
        /// The type asked for.
        name: String,
        /// Every registered type, in registration order.
        known: Vec<&'static str>,
    },
    /// A setting is wrong.
    #[error("{}{message}", at(key))]
    Config {
        /// Dotted key path inside the source's settings (`multiline.start`),
        /// empty for the settings as a whole.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// The settings are fine but the source could not start (a port taken,
    /// a state directory not writable).
    #[error("{}{message}", at(key))]
    Start {
        /// The setting the failure is about (`address`), or empty.
        key: String,
        /// What failed.
        message: String,
    },
    /// More than one setting is wrong: each is reported on its own.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<SourceError>),
}

fn at(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

impl SourceError {
    /// A wrong setting at `key`.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    /// A start that failed, about the setting `key` (or `""`).
    pub fn start(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Start {
            key: key.into(),
            message: message.into(),
        }
    }

    /// `Ok` when `problems` is empty, the one problem, or all of them.
    pub fn from_problems(mut problems: Vec<SourceError>) -> Result<(), SourceError> {
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(Self::Several(problems)),
        }
    }

    /// Each problem on its own (one, unless [`SourceError::Several`]).
    pub fn problems(&self) -> Vec<&SourceError> {
        match self {
            Self::Several(all) => all.iter().flat_map(SourceError::problems).collect(),
            one => vec![one],
        }
    }

    /// The dotted key path the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Several(_) => None,
            Self::UnknownType { .. } => Some("type"),
            Self::Config { key, .. } | Self::Start { key, .. } => {
                (!key.is_empty()).then_some(key.as_str())
            }
        }
    }

    /// The message without its key.
    pub fn message(&self) -> String {
        match self {
            Self::UnknownType { .. } | Self::Several(_) => self.to_string(),
            Self::Config { message, .. } | Self::Start { message, .. } => message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_their_key() {
        let e = SourceError::config("multiline.start", "pattern `(` is invalid");
        assert_eq!(e.to_string(), "multiline.start: pattern `(` is invalid");
        assert_eq!(e.key(), Some("multiline.start"));
        assert_eq!(e.message(), "pattern `(` is invalid");
        let e = SourceError::start("", "no thread");
        assert_eq!(e.to_string(), "no thread");
        assert_eq!(e.key(), None);
        let both = SourceError::from_problems(vec![
            SourceError::config("a", "x"),
            SourceError::config("b", "y"),
        ])
        .unwrap_err();
        assert_eq!(both.to_string(), "a: x; b: y");
        let keys: Vec<_> = both.problems().iter().map(|p| p.key()).collect();
        assert_eq!(keys, [Some("a"), Some("b")]);
        assert!(SourceError::from_problems(Vec::new()).is_ok());
    }
}
