//! The built-in sinks, each under its type name with its typed config.

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
        FileSink::build,
        FileSink::check,
    );
    r.register("stdout", "JSON lines on standard output", Stdout::build);
    r.register(
        "blackhole",
        "accept and discard (benchmarks)",
        Blackhole::build,
    );
    r.register(
        "lunary",
        "LLM calls to Lunary (api-key required; endpoint defaults to Lunary cloud)",
        LunarySink::build,
    );
    r.register(
        "helicone",
        "LLM calls to Helicone's manual logger (api-key required)",
        HeliconeSink::build,
    );
    r.register(
        "loki",
        "log entries to Grafana Loki (endpoint = base URL; labels from templates)",
        LokiSink::build,
    );
    r.register(
        "http",
        "POST batches to a URL as a JSON array or NDJSON (endpoint = URL)",
        HttpSink::build,
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{Options, SinkConfig};

    /// What the dispatcher gives whichever sink is chosen: each sink takes
    /// the keys it has and leaves the others.
    fn offered() -> SinkConfig {
        let mut o = Options::new();
        o.offer("endpoint", "http://127.0.0.1:9/x".into(), "--endpoint");
        o.offer("api-key", "k".into(), "--api-key");
        o.offer("sync", "false".into(), "--file-sync");
        o.offer("verbose", "false".into(), "--verbose");
        o
    }

    #[test]
    fn every_sink_takes_the_shared_flags_it_has() {
        let registry = builtin();
        for name in registry.names() {
            if name == "file" {
                continue; // its endpoint is a path; checked below
            }
            registry
                .check(name, &offered())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let mut file = offered();
        file.offer("endpoint", "events.jsonl".into(), "--endpoint");
        registry.check("file", &file).unwrap();
    }

    #[test]
    fn every_sink_refuses_an_unknown_key_by_name() {
        let registry = builtin();
        for name in registry.names() {
            let mut o = offered();
            o.insert("colour".into(), "red".into());
            let e = registry.check(name, &o).err().unwrap().to_string();
            assert!(
                e.starts_with("--sink-option colour: unknown option"),
                "{name}: {e}"
            );
        }
        let e = registry
            .check("kafka", &offered())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("unknown service `kafka`; available: blackhole, file"),
            "{e}"
        );
    }

    #[test]
    fn the_registry_lists_each_sinks_keys() {
        let registry = builtin();
        assert_eq!(registry.options("stdout"), Some(&[][..]));
        let file = registry.options("file").unwrap();
        assert!(
            file.contains(&"rotate") && file.contains(&"endpoint"),
            "{file:?}"
        );
        let loki = registry.options("loki").unwrap();
        assert!(
            loki.contains(&"out-of-order") && loki.contains(&"api-key"),
            "{loki:?}"
        );
    }
}
