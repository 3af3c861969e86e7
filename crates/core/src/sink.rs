//! The sink plugin interface — the original `BackendPlugin` shape: build from a
//! string map, send a batch, close — and the registry that maps names to
//! factories, so the CLI's `--service` and `switchyard plugins` list one set.
//!
//! ```
//! use switchyard_core::{Event, Sink, SinkConfig, SinkError, SinkRegistry};
//!
//! /// A custom plugin: counts what it is given.
//! struct Counter(std::sync::atomic::AtomicUsize);
//!
//! #[async_trait::async_trait]
//! impl Sink for Counter {
//!     async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
//!         self.0.fetch_add(events.len(), std::sync::atomic::Ordering::Relaxed);
//!         Ok(())
//!     }
//! }
//!
//! let mut registry = SinkRegistry::new();
//! registry.register("counter", "counts events", |_cfg: &SinkConfig| {
//!     Ok(Box::new(Counter(Default::default())))
//! });
//! assert!(registry.build("counter", &SinkConfig::new()).is_ok());
//! assert_eq!(registry.names().collect::<Vec<_>>(), ["counter"]);
//! ```

use crate::Event;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Plugin configuration: the original string map (`endpoint`, `api-key`, ...).
pub type SinkConfig = BTreeMap<String, String>;

/// Builds a sink from its configuration, or says which key is wrong and why.
pub type SinkFactory = fn(&SinkConfig) -> Result<Box<dyn Sink>, String>;

/// A destination for batches of events.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Deliver a batch. Classify failures: the engine retries transient ones.
    async fn send(&self, events: &[Event]) -> Result<(), SinkError>;

    /// Flush and release resources; called once after the last `send`.
    async fn close(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// How the engine should treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// May succeed later: retry with backoff.
    Transient,
    /// Will not succeed: do not retry.
    Permanent,
}

/// A classified sink failure.
#[derive(Debug, Clone)]
pub struct SinkError {
    /// Retry or not.
    pub kind: SinkErrorKind,
    /// What failed, on what.
    pub message: String,
    /// The server asked to wait this long before retrying.
    pub retry_after: Option<Duration>,
}

impl SinkError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: SinkErrorKind::Transient,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure not worth retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: SinkErrorKind::Permanent,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            SinkErrorKind::Transient => "transient",
            SinkErrorKind::Permanent => "permanent",
        };
        write!(f, "{kind} error: {}", self.message)
    }
}

impl std::error::Error for SinkError {}

/// Named sink factories.
#[derive(Default)]
pub struct SinkRegistry {
    entries: BTreeMap<&'static str, (&'static str, SinkFactory)>,
}

impl SinkRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a plugin.
    pub fn register(&mut self, name: &'static str, description: &'static str, f: SinkFactory) {
        self.entries.insert(name, (description, f));
    }

    /// Plugin names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }

    /// `(name, description)` pairs, sorted by name.
    pub fn describe(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.entries.iter().map(|(n, (d, _))| (*n, *d))
    }

    /// Build the named plugin.
    pub fn build(&self, name: &str, cfg: &SinkConfig) -> Result<Box<dyn Sink>, String> {
        match self.entries.get(name) {
            Some((_, f)) => f(cfg),
            None => Err(format!(
                "unknown service `{name}`; available: {}",
                self.names().collect::<Vec<_>>().join(", ")
            )),
        }
    }
}
