//! The built-in sinks, by name.

use crate::{
    blackhole::Blackhole, file::FileSink, helicone::HeliconeSink, http_sink::HttpSink,
    loki::LokiSink, lunary::LunarySink, stdout::Stdout,
};
use switchyard_core::SinkRegistry;

/// A registry holding every built-in sink.
pub fn builtin() -> SinkRegistry {
    let mut r = SinkRegistry::new();
    r.register_checked(
        "file",
        "append JSON or text lines to a file (endpoint = path) or to templated paths (path=…), with rotation",
        FileSink::from_config,
        FileSink::check_config,
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
    r.register(
        "lunary",
        "LLM calls to Lunary (api-key required; endpoint defaults to Lunary cloud)",
        LunarySink::from_config,
    );
    r.register(
        "helicone",
        "LLM calls to Helicone's manual logger (api-key required)",
        HeliconeSink::from_config,
    );
    r.register(
        "loki",
        "log entries to Grafana Loki (endpoint = base URL; labels from templates)",
        LokiSink::from_config,
    );
    r.register(
        "http",
        "POST batches to a URL as a JSON array or NDJSON (endpoint = URL)",
        HttpSink::from_config,
    );
    r
}
