//! Sinks by type name: each registered with its typed config, so the CLI's
//! `--service`, a pipeline file's `type:`, `validate` and `switchyard
//! plugins` all read one set, and options are read one way.
//!
//! ```
//! use serde::Deserialize;
//! use switchyard_core::{Event, Sink, SinkConfig, SinkError, SinkRegistry};
//!
//! /// A custom sink: counts what it is given, from `start` on.
//! struct Counter(std::sync::atomic::AtomicUsize);
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct CounterConfig {
//!     #[serde(default)]
//!     start: usize,
//! }
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
//! registry.register("counter", "counts events", |c: CounterConfig| {
//!     Ok(Box::new(Counter(c.start.into())))
//! });
//! let options: SinkConfig = [("start", "5")].into_iter().collect();
//! assert!(registry.build("counter", &options).is_ok());
//! let wrong: SinkConfig = [("colour", "red")].into_iter().collect();
//! let error = registry.build("counter", &wrong).err().unwrap();
//! assert!(error.to_string().starts_with("--sink-option colour: unknown option"));
//! assert_eq!(registry.names().collect::<Vec<_>>(), ["counter"]);
//! ```

use crate::options::{fields_of, BuildError, Options};
use crate::Sink;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// The options a sink is built from (see [`Options`]).
pub type SinkConfig = Options;

/// Builds a sink from its typed config `C`.
pub type SinkFactory<C> = fn(C) -> Result<Box<dyn Sink>, BuildError>;

/// Checks a typed config `C` as its build would, without the build's
/// effects (no file opened, no thread started): `validate` must have none.
pub type SinkCheck<C> = fn(&C) -> Result<(), BuildError>;

type Build = Box<dyn Fn(&Options) -> Result<Box<dyn Sink>, BuildError> + Send + Sync>;
type Check = Box<dyn Fn(&Options) -> Result<(), BuildError> + Send + Sync>;

/// Sinks by type name.
#[derive(Default)]
pub struct SinkRegistry {
    entries: BTreeMap<&'static str, Entry>,
}

struct Entry {
    description: &'static str,
    options: &'static [&'static str],
    build: Build,
    check: Check,
}

impl SinkRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) the sink `name`, built from its config `C`. Its
    /// build must have no effect outside itself (no file, thread or
    /// connection): [`SinkRegistry::check`] builds it and drops it.
    pub fn register<C: DeserializeOwned + 'static>(
        &mut self,
        name: &'static str,
        description: &'static str,
        build: SinkFactory<C>,
    ) {
        let check = move |options: &Options| options.read::<C>().and_then(build).map(drop);
        self.insert::<C>(name, description, build, Box::new(check));
    }

    /// Add (or replace) the sink `name` whose build has effects, with a
    /// check that reads its config without them.
    pub fn register_checked<C: DeserializeOwned + 'static>(
        &mut self,
        name: &'static str,
        description: &'static str,
        build: SinkFactory<C>,
        check: SinkCheck<C>,
    ) {
        let check = move |options: &Options| check(&options.read::<C>()?);
        self.insert::<C>(name, description, build, Box::new(check));
    }

    fn insert<C: DeserializeOwned + 'static>(
        &mut self,
        name: &'static str,
        description: &'static str,
        build: SinkFactory<C>,
        check: Check,
    ) {
        let build = move |options: &Options| build(options.read::<C>()?);
        self.entries.insert(
            name,
            Entry {
                description,
                options: fields_of::<C>().unwrap_or(&[]),
                build: Box::new(build),
                check,
            },
        );
    }

    /// Check the named sink's options as its build would, without the
    /// build's effects and without the network.
    pub fn check(&self, name: &str, options: &SinkConfig) -> Result<(), BuildError> {
        let entry = self.entry(name)?;
        (entry.check)(options).map_err(|e| options.locate(e))
    }

    /// Build the named sink.
    pub fn build(&self, name: &str, options: &SinkConfig) -> Result<Box<dyn Sink>, BuildError> {
        let entry = self.entry(name)?;
        (entry.build)(options).map_err(|e| options.locate(e))
    }

    fn entry(&self, name: &str) -> Result<&Entry, BuildError> {
        self.entries
            .get(name)
            .ok_or_else(|| BuildError::UnknownType {
                kind: "service",
                name: name.to_string(),
                available: self.names().collect::<Vec<_>>().join(", "),
            })
    }

    /// Sink names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.keys().copied()
    }

    /// `(name, description)` pairs, sorted by name.
    pub fn describe(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.entries.iter().map(|(n, e)| (*n, e.description))
    }

    /// The top-level option keys of the named sink's config.
    pub fn options(&self, name: &str) -> Option<&'static [&'static str]> {
        self.entries.get(name).map(|e| e.options)
    }
}
