//! Switchyard transforms: synchronous, I/O-free edits of events on their way to
//! a sink.
//!
//! The LLM payload transformer turns the
//! HTTP exchange an LLM proxy captured into the payload observability backends
//! read — request and response as JSON (decompressed, streams merged), model,
//! user, token usage, a deterministic run id and timing.
//!
//! ```
//! use switchyard_core::{Event, HttpExchange, Payload, Transform, Verdict};
//! use switchyard_transforms::llm::{LlmConfig, LlmTransform};
//!
//! let transform = LlmTransform::default_with(LlmConfig::default());
//! let mut event = Event::from(HttpExchange {
//!     request_id: "req-1".into(),
//!     method: "POST".into(),
//!     path: "/v1/chat/completions".into(),
//!     status: 200,
//!     request_body: Some(r#"{"model":"gpt-4o","messages":[]}"#.into()),
//!     ..Default::default()
//! });
//! assert_eq!(transform.apply(&mut event), Verdict::Keep);
//! let Payload::Json(doc) = &event.payload else { unreachable!() };
//! assert!(doc.get().starts_with(r#"{"type":"llm","event":"end","runId":"#));
//! ```
//!
//! The log-record transforms (`filter`, `enrich`, `remap`, `dedupe`,
//! `sample`) are built from configuration through the [`registry`] and pass events that
//! are not log records unchanged.
//!
//! # Layout
//! - [`llm`]: the LLM payload transformer and the payload shape sinks read.
//! - [`path`]: addressing `message`, `level`, `labels.X` and fields (`a.b`).
//! - [`condition`]: the condition language of `filter` and `sample`.
//! - [`filter`], [`enrich`], [`remap`], [`dedupe`], [`sample`]: one transform each.
//! - [`config`]: each type's settings as written in configuration.
//! - [`registry`]: transform types by name (`llm` included), and building a chain.
//! - [`error`]: build and configuration errors.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod condition;
pub mod config;
pub mod dedupe;
pub mod enrich;
pub mod error;
pub mod filter;
pub mod llm;
pub mod path;
pub mod registry;
pub mod remap;
pub mod sample;
pub use config::{LlmTransformConfig, TransformConfig};
pub use error::{ChainError, ConditionError, TransformError};
pub use registry::{build_chain, builtin, TransformRegistry};

use switchyard_core::{Event, Transform, Verdict};

/// Transforms applied in order; the first that filters ends the chain.
pub struct Chain {
    steps: Vec<Box<dyn Transform>>,
}

impl Chain {
    /// A chain of `steps`.
    pub fn new(steps: Vec<Box<dyn Transform>>) -> Self {
        Self { steps }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when there are no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl Transform for Chain {
    fn apply(&self, event: &mut Event) -> Verdict {
        for step in &self.steps {
            if step.apply(event) == Verdict::Filter {
                return Verdict::Filter;
            }
        }
        Verdict::Keep
    }
}
