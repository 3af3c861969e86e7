//! Switchyard transforms: synchronous, I/O-free edits of events on their way to
//! a sink.
//!
//! The one transform here today is the LLM payload transformer: it turns the
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
//! # Layout
//! - [`llm`]: the LLM payload transformer and the payload shape sinks read.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod llm;
