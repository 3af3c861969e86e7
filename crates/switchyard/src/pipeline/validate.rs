//! Reading a pipeline file: interpolate, parse, check every component and the
//! wiring, and report *every* error — each with its key path and line —
//! before anything starts.

use super::dispatcher_block::DispatcherBlock;
use super::interpolate::interpolate;
use super::locate::line_of;
use super::schema::{Admin, SinkEntry};
use serde::de::DeserializeOwned;
use serde_norway::{Mapping, Value};
use std::fmt;
use std::sync::Arc;
use switchyard_core::{SinkConfig, SinkRegistry, Transform};
use switchyard_engine::source::{Source, SourceError, SourceRegistry};
use switchyard_engine::topology::Shape;
use switchyard_transforms::{TransformError, TransformRegistry};

/// One problem of a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path (`sinks.out.buffer.when_full`), or empty.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// A transform, built.
pub struct TransformSpec {
    /// Name.
    pub name: String,
    /// Inputs.
    pub inputs: Vec<String>,
    /// The step.
    pub transform: Arc<dyn Transform>,
}

/// A pipeline file that passed every check.
pub struct Checked {
    /// Admin server, if any.
    pub admin: Option<Admin>,
    /// The pipeline's dead-letter queue, if any.
    pub dlq: Option<switchyard_engine::DlqConfig>,
    /// The longest a stop drains.
    pub shutdown_timeout: std::time::Duration,
    /// Sources in file order, built from their typed settings.
    pub sources: Vec<(String, Box<dyn Source>)>,
    /// Transforms in file order.
    pub transforms: Vec<TransformSpec>,
    /// Sinks in file order.
    pub sinks: Vec<(String, SinkEntry)>,
}

const TOP: [&str; 7] = [
    "admin",
    "dispatcher",
    "dlq",
    "sources",
    "transforms",
    "sinks",
    "shutdown_timeout",
];

/// [`check`] of a file as read from disk: bytes that are not UTF-8 are
/// refused at the line and column of the first bad one.
pub fn check_bytes(
    bytes: &[u8],
    env: impl Fn(&str) -> Option<String>,
    sink_plugins: &SinkRegistry,
) -> Result<Checked, Vec<ConfigError>> {
    match std::str::from_utf8(bytes) {
        Ok(text) => check(text, env, sink_plugins),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            Err(vec![ConfigError {
                line: Some(line),
                path: String::new(),
                message: format!(
                    "not UTF-8 text: the byte at column {} is not valid UTF-8; save the file as UTF-8",
                    good.len() - line_start + 1
                ),
            }])
        }
    }
}

/// Check `text`; `env` reads environment variables; `sink_plugins` are the
/// registered sinks, whose options are checked as their build reads them.
pub fn check(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
    sink_plugins: &SinkRegistry,
) -> Result<Checked, Vec<ConfigError>> {
    let sink_types: Vec<&str> = sink_plugins.names().collect();
    let text = interpolate(text, env).map_err(|errors| {
        errors
            .into_iter()
            .map(|m| {
                let (line, message) = split_line(&m);
                ConfigError {
                    line,
                    path: String::new(),
                    message,
                }
            })
            .collect::<Vec<_>>()
    })?;
    let root: Value = serde_norway::from_str(&text).map_err(|e| {
        vec![ConfigError {
            line: e.location().map(|l| l.line()),
            path: String::new(),
            message: format!("not valid YAML: {e}"),
        }]
    })?;
    let mut c = Checker {
        text: &text,
        errors: Vec::new(),
    };
    let Value::Mapping(mut root) = root else {
        return Err(vec![c.error(
            &[],
            "the file must be a mapping of admin, sources, transforms and sinks".into(),
        )]);
    };
    for key in root.keys() {
        let k = key.as_str().unwrap_or("");
        if !TOP.contains(&k) {
            let e = c.error(
                &[k],
                format!("unknown key; expected one of {}", TOP.join(", ")),
            );
            c.errors.push(e);
        }
    }
    c.dispatcher_defaults(&mut root);
    let admin = root
        .get("admin")
        .and_then(|v| c.typed::<Admin>(&["admin"], v.clone()));
    let dlq = root
        .get("dlq")
        .and_then(|v| c.typed::<switchyard_engine::DlqConfig>(&["dlq"], v.clone()));
    if let Some(Err(e)) = dlq.as_ref().map(|d| d.validate()) {
        let e = c.error(&["dlq"], e);
        c.errors.push(e);
    }
    let shutdown_timeout = root
        .get("shutdown_timeout")
        .map_or(Some(super::schema::ShutdownTimeout::default()), |v| {
            c.typed(&["shutdown_timeout"], v.clone())
        })
        .unwrap_or_default()
        .0;

    // Names of components that have errors of their own: the wiring still
    // knows them, so what reads them is not reported a second time.
    let mut source_names = Vec::new();
    let mut broken_sinks = Vec::new();
    let mut sources = Vec::new();
    let source_types = switchyard_sources::builtin();
    for (name, v) in c.section(&root, "sources") {
        source_names.push(name.clone());
        if let Some(s) = c.source(&source_types, &name, v) {
            if s.queue_size() == 0 {
                let e = c.error(
                    &["sources", &name, "queue_size"],
                    "must be greater than 0".into(),
                );
                c.errors.push(e);
            }
            sources.push((name, s));
        }
    }

    let mut transforms = Vec::new();
    let mut transform_inputs = Vec::new();
    let transform_types = switchyard_transforms::builtin();
    for (name, v) in c.section(&root, "transforms") {
        let at = ["transforms", name.as_str()];
        let Value::Mapping(mut m) = v else {
            let e = c.error(&at, "expected a mapping with `type` and `inputs`".into());
            c.errors.push(e);
            continue;
        };
        let inputs = match m.remove("inputs") {
            Some(i) => c
                .typed::<Vec<String>>(&["transforms", &name, "inputs"], i)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        transform_inputs.push((name.clone(), inputs.clone()));
        if let Some(t) = c.transform(&transform_types, &name, m) {
            transforms.push(TransformSpec {
                name,
                inputs,
                transform: t,
            });
        }
    }

    let mut sinks = Vec::new();
    for (name, v) in c.section(&root, "sinks") {
        let inputs = raw_inputs(&v);
        if let Some(kind) = v.get("type").and_then(Value::as_str) {
            if !sink_types.contains(&kind) {
                let e = c.error(
                    &["sinks", &name, "type"],
                    format!(
                        "`{kind}` is not a sink plugin; `switchyard plugins` lists them ({})",
                        sink_types.join(", ")
                    ),
                );
                c.errors.push(e);
            }
        }
        let v = concurrency_shorthand(v);
        let Some(s) = c.typed::<SinkEntry>(&["sinks", &name], v) else {
            broken_sinks.push((name, inputs));
            continue;
        };
        c.sink_settings(&name, &s);
        if sink_types.contains(&s.kind.as_str()) {
            c.sink_options(&name, &s, sink_plugins);
        }
        sinks.push((name, s));
    }

    let shape = Shape {
        sources: source_names,
        transforms: transform_inputs,
        sinks: sinks
            .iter()
            .map(|(n, s)| (n.clone(), s.inputs.clone()))
            .chain(broken_sinks.iter().cloned())
            .collect(),
    };
    // Wiring is checked only between components that parsed: a component
    // with its own error would otherwise be reported twice.
    for problem in shape.check() {
        let (path, message) = problem.split_once(": ").unwrap_or(("", &problem));
        let keys: Vec<&str> = path.split('.').collect();
        let e = c.error(&keys, message.to_string());
        c.errors.push(e);
    }

    if c.errors.is_empty() {
        Ok(Checked {
            admin,
            dlq,
            shutdown_timeout,
            sources,
            transforms,
            sinks,
        })
    } else {
        c.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        Err(c.errors)
    }
}

fn split_line(m: &str) -> (Option<usize>, String) {
    if let Some(rest) = m.strip_prefix("line ") {
        if let Some((n, msg)) = rest.split_once(": ") {
            if let Ok(n) = n.parse() {
                return (Some(n), msg.to_string());
            }
        }
    }
    (None, m.to_string())
}

struct Checker<'t> {
    text: &'t str,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&self, path: &[&str], message: String) -> ConfigError {
        ConfigError {
            line: line_of(self.text, path),
            path: path.join("."),
            message,
        }
    }

    /// The named entries of a top-level section, in file order.
    fn section(&mut self, root: &Mapping, key: &str) -> Vec<(String, Value)> {
        match root.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| match k.as_str() {
                    Some(name) => Some((name.to_string(), v.clone())),
                    None => {
                        let e = self.error(&[key], "component names must be strings".into());
                        self.errors.push(e);
                        None
                    }
                })
                .collect(),
            Some(_) => {
                let e = self.error(&[key], "expected a mapping of names to components".into());
                self.errors.push(e);
                Vec::new()
            }
        }
    }

    /// Deserialize `value`; on error record it with the exact key path.
    fn typed<T: DeserializeOwned>(&mut self, at: &[&str], value: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let mut path: Vec<String> = at.iter().map(|s| s.to_string()).collect();
                if inner != "." {
                    path.extend(inner.split('.').map(|s| s.to_string()));
                }
                let message = e.into_inner().to_string();
                // An unknown key names itself: point at it.
                if let Some(key) = unknown_field(&message) {
                    if path.last() != Some(&key) {
                        path.push(key);
                    }
                }
                let message = explain(message);
                let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                let err = self.error(&keys, message);
                self.errors.push(err);
                None
            }
        }
    }

    /// The `dispatcher:` block, checked at its own lines, then copied into
    /// the components as their defaults (see [`super::dispatcher_block`]).
    fn dispatcher_defaults(&mut self, root: &mut Mapping) {
        let Some(v) = root.get("dispatcher").cloned() else {
            return;
        };
        let Some(block) = self.typed::<DispatcherBlock>(&["dispatcher"], v) else {
            return;
        };
        let problems = block.problems();
        if problems.is_empty() {
            block.apply(root);
        }
        for (path, message) in problems {
            let keys: Vec<&str> = std::iter::once("dispatcher").chain(path).collect();
            let e = self.error(&keys, message);
            self.errors.push(e);
        }
    }

    /// Read a source by its `type` from the registry of source types: its
    /// typed settings refuse unknown keys, and its own checks run (without
    /// effects). Each problem is placed at the key it names.
    fn source(&mut self, types: &SourceRegistry, name: &str, v: Value) -> Option<Box<dyn Source>> {
        let Value::Mapping(mut m) = v else {
            let e = self.error(&["sources", name], "expected a mapping with `type`".into());
            self.errors.push(e);
            return None;
        };
        let kind = match m.remove("type") {
            Some(Value::String(t)) => t,
            _ => {
                let known: Vec<&str> = types.names().collect();
                let e = self.error(
                    &["sources", name, "type"],
                    format!("required, one of {}", known.join(", ")),
                );
                self.errors.push(e);
                return None;
            }
        };
        let settings = match serde_json::to_value(Value::Mapping(m)) {
            Ok(v) => v,
            Err(e) => {
                let e = self.error(&["sources", name], e.to_string());
                self.errors.push(e);
                return None;
            }
        };
        match types.build(&kind, settings) {
            Ok(s) => Some(s),
            Err(e) => {
                self.source_errors(name, &e);
                None
            }
        }
    }

    /// Every problem of a source's settings, at its key.
    fn source_errors(&mut self, name: &str, e: &SourceError) {
        for problem in e.problems() {
            let mut path = vec!["sources", name];
            if let Some(key) = problem.key() {
                path.extend(key.split('.'));
            }
            let mut message = problem.message();
            boolean_hint(&mut message);
            let e = self.error(&path, message);
            self.errors.push(e);
        }
    }

    /// A transform from its registered type, or its errors at their keys.
    fn transform(
        &mut self,
        types: &TransformRegistry,
        name: &str,
        mut m: Mapping,
    ) -> Option<Arc<dyn Transform>> {
        let kind = match m.remove("type") {
            Some(Value::String(t)) => t,
            _ => {
                let known: Vec<&str> = types.names().collect();
                let e = self.error(
                    &["transforms", name, "type"],
                    format!("required, one of {}", known.join(", ")),
                );
                self.errors.push(e);
                return None;
            }
        };
        let settings = match serde_json::to_value(Value::Mapping(m)) {
            Ok(v) => v,
            Err(e) => {
                let e = self.error(&["transforms", name], e.to_string());
                self.errors.push(e);
                return None;
            }
        };
        match types.build(&kind, settings) {
            Ok(t) => Some(Arc::from(t)),
            Err(e) => {
                self.transform_error(name, &e);
                None
            }
        }
    }

    /// A transform's error at its key, as the file writes it (`ops[0].parse`
    /// is at `ops.parse`'s line).
    fn transform_error(&mut self, name: &str, e: &TransformError) {
        let mut path: Vec<String> = vec!["transforms".into(), name.into()];
        if let Some(key) = e.key() {
            path.extend(
                key.split('.')
                    .map(|s| s.split('[').next().unwrap_or(s).to_string()),
            );
        }
        let message = explain(e.message());
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        let err = self.error(&keys, message);
        self.errors.push(err);
    }

    /// The sink's own options, read into its typed config as its build
    /// reads them (without its effects: no file is opened, no connection
    /// made). The error is placed at the option it names, as the file
    /// writes it, else at `options`.
    fn sink_options(&mut self, name: &str, s: &SinkEntry, plugins: &SinkRegistry) {
        let mut path = vec!["sinks".to_string(), name.to_string(), "options".to_string()];
        let result = SinkConfig::from_value(s.options.clone(), &path.join("."))
            .and_then(|options| plugins.check(&s.kind, &options));
        let Err(error) = result else {
            return;
        };
        if let Some(key) = error.key() {
            path.extend(written_key(&s.options, key.segments()));
        }
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        let e = self.error(&keys, error.detail());
        self.errors.push(e);
    }

    fn sink_settings(&mut self, name: &str, s: &SinkEntry) {
        let at = |k: &[&'static str]| {
            let mut p = vec!["sinks".to_string(), name.to_string()];
            p.extend(k.iter().map(|s| s.to_string()));
            p
        };
        let mut problems: Vec<(Vec<String>, String)> = Vec::new();
        if let Err(e) = s.buffer.config().validate() {
            let (key, message) = e.split_once(": ").unwrap_or(("", &e));
            let mut p = at(&["buffer"]);
            p.push(key.to_string());
            problems.push((p, message.to_string()));
        }
        if s.buffer.kind == super::schema::BufferKind::Disk
            && s.buffer.when_full != switchyard_engine::WhenFull::Block
        {
            problems.push((
                at(&["buffer", "when_full"]),
                "a disk buffer only blocks when full; drop policies need `type: memory`".into(),
            ));
        }
        if s.buffer.kind == super::schema::BufferKind::Memory && s.buffer.dir.is_some() {
            problems.push((
                at(&["buffer", "dir"]),
                "only a `type: disk` buffer has a directory".into(),
            ));
        }
        if s.batch.max_events == 0 {
            problems.push((
                at(&["batch", "max_events"]),
                "must be greater than 0".into(),
            ));
        }
        if let Err(e) = s.delivery.validate() {
            problems.push((at(&["delivery"]), e));
        }
        for (path, message) in problems {
            let keys: Vec<&str> = path.iter().map(String::as_str).collect();
            let e = self.error(&keys, message);
            self.errors.push(e);
        }
    }
}

/// `delivery.concurrency: 4` (or the seed document's `worker_count: 4`)
/// means a fixed number of batches in flight; `concurrency: adaptive` is
/// AIMD. The engine's type spells the fixed form as a tagged value, which
/// nobody should have to write in YAML.
fn concurrency_shorthand(mut v: Value) -> Value {
    let Some(Value::Mapping(d)) = v.get_mut("delivery") else {
        return v;
    };
    if let Some(n) = d.remove("worker_count") {
        d.entry("concurrency".into()).or_insert(n);
    }
    if let Some(c) = d.get_mut("concurrency") {
        if c.is_number() {
            let n = c.clone();
            *c = Value::Tagged(Box::new(serde_norway::value::TaggedValue {
                tag: serde_norway::value::Tag::new("fixed"),
                value: n,
            }));
        }
    }
    v
}

/// A component's `inputs`, read leniently (its own errors are reported by
/// its typed check).
fn raw_inputs(v: &Value) -> Vec<String> {
    v.get("inputs")
        .and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The keys of the option at `segments` as `options` writes them: nested
/// (`rotate: {max_bytes: ..}`) or dotted (`rotate.max_bytes: ..`). Stops at
/// the first key the file does not have (a required option left out).
fn written_key(options: &serde_json::Value, segments: &[String]) -> Vec<String> {
    let Some(map) = options.as_object() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    if let [first, rest @ ..] = segments {
        if let Some(inner) = map.get(first) {
            found.push(first.clone());
            found.extend(written_key(inner, rest));
        } else if let [second, rest @ ..] = rest {
            let dotted = format!("{first}.{second}");
            if let Some(inner) = map.get(&dotted) {
                found.push(dotted);
                found.extend(written_key(inner, rest));
            }
        }
    }
    found
}

/// Serde's message in the file's words: "unknown field `x`, expected …"
/// becomes "unknown key; expected …" (the path names the key), and a
/// boolean expected says how to write one.
fn explain(mut message: String) -> String {
    if unknown_field(&message).is_some() {
        message = message
            .split_once(", expected")
            .map(|(_, rest)| format!("unknown key; expected{rest}"))
            .unwrap_or(message);
    }
    boolean_hint(&mut message);
    message
}

/// YAML 1.2 reads `yes`, `on` and the like as text: say what a boolean
/// key takes.
fn boolean_hint(message: &mut String) {
    if message.ends_with("expected a boolean") {
        message.push_str(" (write `true` or `false`)");
    }
}

/// The key of serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        let env = |k: &str| (k == "HOME_DIR").then(|| "/data".to_string());
        match check(text, env, &switchyard_sinks::builtin()) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    const GOOD: &str = "\
sources:
  app:
    type: file
    include: ['${HOME_DIR}/*.log']
transforms:
  errs:
    type: filter
    inputs: [app]
    condition: 'level == \"error\"'
sinks:
  out:
    type: stdout
    inputs: [errs, app]
";

    #[test]
    fn http_source_bounds_are_read_and_zero_is_refused() {
        let yaml = |extra: &str| {
            format!(
                "sources:\n  h:\n    type: http\n    address: 127.0.0.1:1\n{extra}sinks:\n  o:\n    type: stdout\n    inputs: [h]\n"
            )
        };
        let ok = "    max_connections: 10\n    max_concurrent_requests: 5\n    max_body_memory: 1000\n    header_timeout: 1s\n    body_timeout: 2s\n    idle_timeout: 3s\n";
        assert!(errors(&yaml(ok)).is_empty(), "{:?}", errors(&yaml(ok)));
        assert_eq!(
            errors(&yaml("    max_connections: 0\n    max_body_memory: 0\n")),
            [
                "line 5: sources.h.max_connections: must be greater than 0",
                "line 6: sources.h.max_body_memory: must be greater than 0",
            ]
        );
    }

    #[test]
    fn a_good_file_passes() {
        assert!(errors(GOOD).is_empty(), "{:?}", errors(GOOD));
    }

    #[test]
    fn shutdown_timeout_is_a_pipeline_key_with_a_default() {
        let check = |text: &str| check(text, |_| None, &switchyard_sinks::builtin());
        let default = check(&GOOD.replace("${HOME_DIR}", "/data")).ok().unwrap();
        assert_eq!(default.shutdown_timeout, std::time::Duration::from_secs(30));
        let set = check(&format!(
            "shutdown_timeout: 5s\n{}",
            GOOD.replace("${HOME_DIR}", "/d")
        ))
        .ok()
        .unwrap();
        assert_eq!(set.shutdown_timeout, std::time::Duration::from_secs(5));
        let bad = errors(&format!("shutdown_timeout: soon\n{GOOD}"));
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(
            bad[0].starts_with("line 1: shutdown_timeout: `soon` is not a duration"),
            "{bad:?}"
        );
    }

    #[test]
    fn bad_files_each_with_its_exact_messages() {
        let table: &[(&str, &[&str])] = &[
            (
                "sources:\n  a:\n    type: file\n    include: [x]\n    colour: red\nsinks:\n  o:\n    type: stdout\n    inputs: [a]\n",
                &["line 5: sources.a.colour: unknown key; expected one of `include`, `read_from`, `state_dir`, `json`, `partial_line_timeout`, `multiline`, `queue_size`"],
            ),
            (
                "sources:\n  a:\n    type: carrier_pigeon\nsinks:\n  o:\n    type: stdout\n    inputs: [a]\n",
                &["line 3: sources.a.type: `carrier_pigeon` is not a source type; expected one of http, file, tcp, udp, syslog_tcp, syslog_udp, docker, demo, redis_streams, redis_list"],
            ),
            (
                "sources:\n  a:\n    type: tcp\n    address: nowhere\nsinks:\n  o:\n    type: stdout\n    inputs: [a]\n",
                &["line 4: sources.a.address: invalid socket address syntax"],
            ),
            (
                "sources:\n  a:\n    type: tcp\n    address: 127.0.0.1:1\nsinks:\n  o:\n    type: stdout\n    inputs: [a]\n    buffer:\n      when_full: sometimes\n",
                &["line 10: sinks.o.buffer.when_full: unknown variant `sometimes`, expected one of `block`, `drop_newest`, `drop_oldest`"],
            ),
            (
                "sources:\n  a:\n    type: tcp\n    address: 127.0.0.1:1\nsinks:\n  o:\n    type: kafka\n    inputs: [a, b]\n    batch: {timeout: soon}\n",
                &[
                    "line 7: sinks.o.type: `kafka` is not a sink plugin; `switchyard plugins` lists them (blackhole, file, helicone, http, loki, lunary, stdout)",
                    "line 8: sinks.o.inputs: `b` is not a source or transform",
                    "line 9: sinks.o.batch.timeout: `soon` is not a duration (expected number at 0)",
                ],
            ),
            (
                "sources:\n  a:\n    type: tcp\n    address: 127.0.0.1:1\nsinks:\n  o:\n    type: stdout\n    inputs: [a, b]\n    buffer:\n      high_watermark: 0.5\n",
                &[
                    "line 8: sinks.o.inputs: `b` is not a source or transform",
                    "line 9: sinks.o.buffer.low_watermark: 0.6 must be below high_watermark (0.5)",
                ],
            ),
            (
                "sources:\n  a:\n    type: tcp\n    address: 127.0.0.1:1\ntransforms:\n  f:\n    type: filter\n    inputs: [a]\n    condition: 'level =='\n  s:\n    type: sample\n    inputs: [a]\n    rate: 0\nsinks:\n  o:\n    type: stdout\n    inputs: [f]\n",
                &[
                    "line 9: transforms.f.condition: expected a value after `level ==`, found the end",
                    "line 13: transforms.s.rate: must be at least 1",
                ],
            ),
            (
                "source:\n  a: {}\nsinks: {}\n",
                &[
                    "line 1: source: unknown key; expected one of admin, dispatcher, dlq, sources, transforms, sinks, shutdown_timeout",
                    "line 3: sinks: at least one sink is required",
                    "sources: at least one source is required",
                ],
            ),
            (
                "sources:\n  a:\n    type: file\n    include: ['${LOGS}']\nsinks: {}\n",
                &["line 4: environment variable `LOGS` is not set (write `${LOGS:-default}` for a default)"],
            ),
            (
                "sources:\n  a:\n    type: file\n    include: [x\n",
                &["line 5: not valid YAML: did not find expected ',' or ']' at line 5 column 1, while parsing a flow sequence at line 4 column 14"],
            ),
        ];
        for (text, want) in table {
            assert_eq!(&errors(text), want, "config:\n{text}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_at_their_line_and_column() {
        let mut bytes = b"sources:\n  a:\n    type: fi".to_vec();
        bytes.extend([0xC3, 0x28]);
        let got = check_bytes(&bytes, |_| None, &switchyard_sinks::builtin())
            .err()
            .unwrap();
        assert_eq!(
            got.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["line 3: not UTF-8 text: the byte at column 13 is not valid UTF-8; save the file as UTF-8"]
        );
        // UTF-8 text, non-ASCII included, is read as `check` reads it.
        let good = GOOD.replace("errs", "érrs").replace("${HOME_DIR}", "/d");
        assert!(check_bytes(good.as_bytes(), |_| None, &switchyard_sinks::builtin()).is_ok());
    }

    /// YAML 1.2, as before the YAML library changed: `yes`/`on` are text, so
    /// a boolean key refuses them with a hint; `5s` is a duration's text; a
    /// sink option keeps `yes` as written.
    #[test]
    fn yaml_1_1_booleans_are_text_and_durations_read_as_before() {
        let head = "sources:\n  a:\n    type: file\n    include: [x]\n";
        assert_eq!(
            errors(&format!("{head}    json: yes\nsinks:\n  o: {{type: stdout, inputs: [a]}}\n")),
            ["line 5: sources.a.json: invalid type: string \"yes\", expected a boolean (write `true` or `false`)"]
        );
        let c = check(
            &format!("{head}    json: True\n    partial_line_timeout: 5s\nsinks:\n  o:\n    type: http\n    inputs: [a]\n    options: {{endpoint: 'http://127.0.0.1:9/', header: {{flag: on, n: 010}}}}\n"),
            |_| None,
            &switchyard_sinks::builtin(),
        )
        .ok()
        .unwrap();
        assert_eq!(c.sources.len(), 1);
        // The same keys as the registry reads them, with this YAML library.
        let f: switchyard_sources::file_tail::source::FileSourceConfig =
            serde_norway::from_str("include: [x]\njson: True\npartial_line_timeout: 5s\n").unwrap();
        assert!(f.json);
        assert_eq!(f.partial_line_timeout, std::time::Duration::from_secs(5));
        // Sink options keep what YAML 1.2 reads: `on` and `010` as text.
        assert_eq!(
            c.sinks[0].1.options,
            serde_json::json!({"endpoint": "http://127.0.0.1:9/", "header": {"flag": "on", "n": "010"}})
        );
    }

    /// `validate` used to pass sink options only `run` read: a bogus size or
    /// a Lunary sink without a key failed at start, with no line number.
    #[test]
    fn sink_options_are_checked_as_the_sink_reads_them() {
        let head = "sources:\n  a:\n    type: tcp\n    address: 127.0.0.1:1\nsinks:\n";
        let file = format!(
            "{head}  f:\n    type: file\n    inputs: [a]\n    options:\n      path: '{{app}}.log'\n      base_dir: /nonexistent/for/validate\n      rotate.max_bytes: bogus\n"
        );
        let got = errors(&file);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("line 12: sinks.f.options.rotate.max_bytes: "),
            "{got:?}"
        );
        assert!(got[0].contains("bogus"), "{got:?}");
        // Checking made nothing on disk.
        assert!(!std::path::Path::new("/nonexistent/for/validate").exists());

        let lunary = format!("{head}  l:\n    type: lunary\n    inputs: [a]\n");
        let got = errors(&lunary);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("line 6: sinks.l.options: "), "{got:?}");
        assert!(got[0].contains("api-key"), "{got:?}");

        let tail = "sources:\n  a:\n    type: file\n    include: ['x/*.log']\n    multiline:\n      start: '(unclosed'\nsinks:\n  o:\n    type: stdout\n    inputs: [a]\n";
        let got = errors(tail);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("line 6: sources.a.multiline.start: `multiline.start` pattern `(unclosed` is invalid"),
            "{got:?}"
        );

        let good = format!(
            "{head}  l:\n    type: lunary\n    inputs: [a]\n    options:\n      api-key: k\n      timeout: 5s\n"
        );
        assert!(errors(&good).is_empty(), "{:?}", errors(&good));
    }

    mod props {
        //! Config text is typed by people: any text, and the good config
        //! with anything inserted anywhere, is accepted or refused with
        //! messages, never a panic.
        use super::*;
        use proptest::prelude::*;

        fn messages_or_nothing(text: &str) -> Result<(), TestCaseError> {
            if let Err(errors) = check(text, |_| None, &switchyard_sinks::builtin()) {
                prop_assert!(!errors.is_empty());
                for e in &errors {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn arbitrary_text_never_panics(
                bytes in proptest::collection::vec(any::<u8>(), 0..256),
            ) {
                messages_or_nothing(&String::from_utf8_lossy(&bytes))?;
            }

            /// The file as read: any bytes, invalid UTF-8 and non-ASCII
            /// included.
            #[test]
            fn arbitrary_bytes_never_panic(
                bytes in proptest::collection::vec(
                    prop_oneof![any::<u8>(), Just(b'\n'), Just(b':'), Just(0xC3), Just(0xFF)],
                    0..256,
                ),
                prefix in prop::sample::select(vec!["", GOOD, "sources:\n  a:\n    type: ", "sinks:\n  é:\n"]),
            ) {
                let mut all = prefix.as_bytes().to_vec();
                all.extend(&bytes);
                let result = check_bytes(&all, |_| None, &switchyard_sinks::builtin());
                if let Err(errors) = result {
                    prop_assert!(!errors.is_empty());
                    for e in &errors {
                        prop_assert!(!e.to_string().is_empty());
                    }
                }
            }

            #[test]
            fn the_good_config_with_anything_inserted_never_panics(
                inserts in proptest::collection::vec(
                    (
                        any::<prop::sample::Index>(),
                        prop_oneof![
                            prop::sample::select(vec![
                                ":", "-", "[", "]", "{", "}", "\n", "  ", "'", "\"", "$", "${",
                                "}", "&a", "*a", "!!", "#", "\t", "é", "\u{0}", "\u{feff}",
                            ])
                            .prop_map(str::to_string),
                            any::<String>(),
                        ],
                    ),
                    1..4,
                ),
            ) {
                let mut text = GOOD.to_string();
                for (at, what) in inserts {
                    let boundaries: Vec<usize> = text
                        .char_indices()
                        .map(|(i, _)| i)
                        .chain([text.len()])
                        .collect();
                    text.insert_str(boundaries[at.index(boundaries.len())], &what);
                }
                messages_or_nothing(&text)?;
            }
        }
    }
}
