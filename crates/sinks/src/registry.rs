//! The built-in sinks, by name.

use crate::{blackhole::Blackhole, file::FileSink, stdout::Stdout};
use switchyard_core::SinkRegistry;

/// A registry holding every built-in sink.
pub fn builtin() -> SinkRegistry {
    let mut r = SinkRegistry::new();
    r.register(
        "file",
        "append JSON lines to a file (endpoint = path)",
        FileSink::from_config,
    );
    r.register(
        "stdout",
        "JSON lines on standard output",
        Stdout::from_config,
    );
    r.register(
        "blackhole",
        "accept and discard (benchmarks)",
        Blackhole::from_config,
    );
    r
}
