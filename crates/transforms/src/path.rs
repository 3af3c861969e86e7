//! Addressing parts of a log record by name. The path language itself
//! (`message`, `level`, `labels.NAME`, fields with `.` into JSON objects) is
//! core's [`switchyard_core::path`], shared with the sinks' templates.

pub use switchyard_core::path::{Path, PathError};
use switchyard_core::{Event, LogRecord, Payload};

/// The log record inside an event, if it carries one.
pub fn record(event: &mut Event) -> Option<&mut LogRecord> {
    match &mut event.payload {
        Payload::Log(rec) => Some(rec),
        _ => None,
    }
}
