//! The intake queue between sources and the engine: a blocking
//! [`buffer`](crate::buffer) bounded in events. Kept as its own path because
//! sources name it.

pub use crate::buffer::{intake, IntakeReceiver, IntakeSender, SendError};
