//! `/metrics` of the real binary: the format a scraper asks for, checked by
//! tools nobody here wrote (`promtool` for the Prometheus text format, the
//! Python client's strict OpenMetrics parser), and the losses of sources in
//! `dispatcher_component_discarded_events_total`.
//!
//! `promtool` comes with Debian's `prometheus` package and the parser with
//! PyPI's `prometheus-client` in `target/python-deps` (`scripts/test`
//! installs both when missing; `SWITCHYARD_PYTHON_DEPS` names another
//! directory). Without them the checks that need them are skipped, and say so.

mod common;

use common::{free_port, http, promtool, run_command, spawn_listening, stop_with_output};
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What Prometheus 2 sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `GET /metrics`, with `accept` if given: (`Content-Type`, body).
fn scrape(port: u16, accept: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (content_type, body.to_string())
}

fn python_deps() -> PathBuf {
    std::env::var_os("SWITCHYARD_PYTHON_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/python-deps")
        })
}

/// Parse `page` with the Python client's OpenMetrics parser, which refuses
/// anything the format does not allow: `Err` with its complaint, `None`
/// when python3 or the package is missing.
fn openmetrics_parser(page: &str) -> Option<Result<(), String>> {
    const PARSE: &str = "import sys\n\
        try:\n    from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        except ImportError:\n    sys.exit(3)\n\
        list(text_string_to_metric_families(sys.stdin.read()))\n";
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .env("PYTHONPATH", python_deps())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.code() {
        Some(0) => Some(Ok(())),
        Some(3) => None,
        _ => Some(Err(String::from_utf8_lossy(&out.stderr).into_owned())),
    }
}

/// Scrape (in the text format) until `line` is on the page; the page.
fn wait_for_line(port: u16, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, page) = scrape(port, None);
        if page.lines().any(|l| l == line) {
            return page;
        }
        assert!(Instant::now() < deadline, "no `{line}` in:\n{page}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn discarded(component: &str, reason: &str, n: u64) -> String {
    format!("dispatcher_component_discarded_events_total{{component=\"{component}\",component_kind=\"source\",reason=\"{reason}\"}} {n}")
}

/// Both formats of one page, checked by the outside tools.
fn check_both_formats(port: u16) {
    let (content_type, text) = scrape(port, None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for accept in ["*/*", "text/plain;version=0.0.4"] {
        assert_eq!(scrape(port, Some(accept)).0, content_type, "{accept}");
    }
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE dispatcher_component_discarded_events_total counter"),
        "{text}"
    );
    assert!(text.contains("dispatcher_sink_delivery_duration_seconds_bucket{"));

    let (content_type, openmetrics) = scrape(port, Some(PROMETHEUS_ACCEPT));
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(openmetrics.contains("# TYPE dispatcher_component_discarded_events counter"));

    match promtool(&text) {
        Some((ok, printed)) => {
            assert!(
                ok && printed.is_empty(),
                "promtool on the text format:\n{printed}\n{text}"
            );
        }
        None => println!(
            "SKIPPED: promtool is not installed (Debian package `prometheus`; scripts/test \
             installs it), so the text format was not linted"
        ),
    }
    // promtool reads only the text format: on OpenMetrics it sees each
    // counter's `x_total` samples as a family of their own without help,
    // and should find nothing else. The strict parser checks the rest.
    if let Some((_, printed)) = promtool(&openmetrics) {
        for complaint in printed.lines() {
            let family = complaint
                .strip_suffix("_total no help text")
                .unwrap_or_else(|| panic!("promtool on OpenMetrics: {complaint}"));
            assert!(
                openmetrics.contains(&format!("# TYPE {family} counter\n")),
                "{complaint}"
            );
        }
    }
    match openmetrics_parser(&openmetrics) {
        Some(result) => {
            if let Err(e) = result {
                panic!("the OpenMetrics parser refused the page: {e}\n{openmetrics}");
            }
        }
        None => println!(
            "SKIPPED: python3 with prometheus-client is not available (scripts/test installs it \
             into target/python-deps), so the OpenMetrics page was not parsed"
        ),
    }
}

#[test]
fn the_dispatcher_counts_cut_messages_and_both_formats_pass_the_linters() {
    let dir = tempfile::tempdir().unwrap();
    let (port, tcp, udp) = (free_port(), free_port(), free_port());
    // Two lines past the bound of two, then a new event: one cut.
    std::fs::write(dir.path().join("app.log"), "S one\n a\n b\nS two\n").unwrap();
    let mut cmd = common::dispatcher_command(port);
    cmd.args(["--flush-interval", "20ms", "--max-message-bytes", "16"])
        .args(["--tcp", &format!("127.0.0.1:{tcp}")])
        .args(["--udp", &format!("127.0.0.1:{udp}")])
        .arg("--tail")
        .arg(dir.path().join("*.log"))
        .args([
            "--tail-multiline-start",
            "^S ",
            "--tail-multiline-max-lines",
            "2",
        ])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--endpoint")
        .arg(dir.path().join("out.jsonl"));
    let child = spawn_listening(&mut cmd, port);
    assert_eq!(
        http(port, "POST", "/v1/logs", br#"[{"message":"m"}]"#).0,
        202
    );
    let long = "x".repeat(40);
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(long.as_bytes(), ("127.0.0.1", udp))
        .unwrap();
    TcpStream::connect(("127.0.0.1", tcp))
        .unwrap()
        .write_all(format!("{long}\nshort\n").as_bytes())
        .unwrap();

    wait_for_line(port, &discarded("udp", "too_long", 1));
    wait_for_line(port, &discarded("tcp", "too_long", 1));
    wait_for_line(port, &discarded("tail", "multiline_cut", 1));
    let page = wait_for_line(port, &discarded("intake", "sink_stopped", 0));
    // The dispatcher builds no in-process bus, so reports none.
    assert!(!page.contains("component=\"bus\""), "{page}");
    for line in [
        discarded("udp", "udp_queue_full", 0),
        discarded("tcp", "connection_refused", 0),
        discarded("intake", "sink_stopped", 0),
    ] {
        assert!(page.lines().any(|l| l == line), "no `{line}` in:\n{page}");
    }
    check_both_formats(port);
    stop_with_output(child);
}

#[test]
fn a_pipeline_file_source_reports_its_cut_datagrams_under_its_own_name() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, udp) = (free_port(), free_port());
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "admin:
  address: 127.0.0.1:{admin}
sources:
  syslog_in:
    type: udp
    address: 127.0.0.1:{udp}
    max_message_bytes: 16
sinks:
  out:
    type: file
    inputs: [syslog_in]
    options:
      endpoint: ${{OUT}}/out.jsonl
    batch: {{max_events: 10, timeout: 20ms}}
"
        ),
    )
    .unwrap();
    let mut cmd = run_command(&config);
    cmd.env("OUT", dir.path());
    let child = spawn_listening(&mut cmd, admin);
    // The admin server answers before the sources start; the source's
    // series appear once its socket is bound.
    wait_for_line(admin, &discarded("syslog_in", "too_long", 0));
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to("y".repeat(40).as_bytes(), ("127.0.0.1", udp))
        .unwrap();
    wait_for_line(admin, &discarded("syslog_in", "too_long", 1));
    check_both_formats(admin);
    stop_with_output(child);
}

/// The repository's `deploy/` directory.
fn deploy(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

/// The metric names a PromQL expression reads: every identifier that is
/// not a function, an aggregation, a keyword, a label (in `{…}`, `by (…)`,
/// `on (…)`, …), a range (`[…]`), a string or a Grafana variable (`$x`).
fn metric_names(expr: &str) -> Vec<String> {
    const WORDS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    // Skip from an opening `open` to its matching `close`, strings included.
    let skip_group = |mut i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '"' | '\'' | '`' => {
                    let quote = chars[i];
                    i += 1;
                    while i < chars.len() && chars[i] != quote {
                        i += if chars[i] == '\\' { 2 } else { 1 };
                    }
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_group(i, '{', '}');
        } else if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_group(i, c, c);
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A Grafana variable or a number (`0.99`, `1e3`): skip the word.
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.:".contains(chars[i])) {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let called = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) {
                if called {
                    i = skip_group(next, '(', ')');
                }
            } else if !called && !WORDS.contains(&word.as_str()) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every family on a text-format page, as the sample names it may have: a
/// histogram `x` has `x_bucket`, `x_sum` and `x_count`.
fn exported_names(page: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in page.lines() {
        let Some(declaration) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = declaration.split_once(' ').unwrap();
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        } else {
            names.insert(name.to_string());
        }
    }
    names
}

/// Every PromQL expression of the dashboard: its panels' targets and its
/// variables' queries (`label_values(<expr>, <label>)` reads `<expr>`).
fn dashboard_expressions(dashboard: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] == "query" {
            let query = variable["query"]["query"].as_str().unwrap();
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(e, _)| e)
                .unwrap_or_else(|| panic!("variable query not understood: {query}"));
            exprs.push(inner.to_string());
        }
    }
    exprs
}

/// Every expression of the alerting rules.
fn rule_expressions(rules: &serde_norway::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

/// Every `dispatcher_…` word anywhere in `text` (annotations' queries too).
fn family_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("dispatcher_") {
        let before = rest[..at].chars().last();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            words.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    words
}

#[test]
fn the_expression_parser_finds_metrics_and_nothing_else() {
    let expr = r#"histogram_quantile(0.99, sum by (le, component) (rate(x_seconds_bucket{component=~"$component", le!="a b"}[$__rate_interval])))
        / on (instance) group_left (job) max without (job) (up offset 5m) > bool 1e3 and count(y_total)"#;
    assert_eq!(metric_names(expr), ["x_seconds_bucket", "up", "y_total"]);
}

/// A pipeline with a sink that fails (so its breaker opens and events are
/// dead-lettered), a disk buffer and a dead-letter queue, so every
/// labelled series the dashboard and the rules read is on the page.
fn failing_pipeline_page() -> String {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on `refused`: each attempt fails, a transient error.
    let (admin, http_in, refused) = (free_port(), free_port(), free_port());
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "admin: {{address: 127.0.0.1:{admin}}}
shutdown_timeout: 1s
dlq: {{dir: ${{OUT}}/dlq}}
sources:
  in: {{type: http, address: 127.0.0.1:{http_in}}}
sinks:
  out:
    type: http
    inputs: [in]
    options: {{endpoint: http://127.0.0.1:{refused}/ingest, timeout: 1s}}
    batch: {{max_events: 1, timeout: 10ms}}
    buffer: {{type: disk, dir: ${{OUT}}/buffer}}
    delivery: {{max_retries: 0, circuit_breaker: {{failure_threshold: 1, timeout: 1h}}}}
"
        ),
    )
    .unwrap();
    let mut cmd = run_command(&config);
    cmd.env("OUT", dir.path());
    let child = spawn_listening(&mut cmd, http_in);
    for _ in 0..3 {
        http(http_in, "POST", "/v1/logs", br#"[{"message":"m"}]"#);
    }
    let page = wait_for_line(
        admin,
        "dispatcher_circuit_breaker_state{component=\"out\"} 1.0",
    );
    stop_with_output(child);
    page
}

#[test]
fn every_series_the_dashboard_and_the_alerts_read_is_exported() {
    let page = failing_pipeline_page();
    let exported = exported_names(&page);
    let dashboard_text = std::fs::read_to_string(deploy("grafana/switchyard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).unwrap();
    let rules_text = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let rules: serde_norway::Value = serde_norway::from_str(&rules_text).unwrap();

    let mut referenced = std::collections::BTreeSet::new();
    for (file, exprs) in [
        ("grafana/switchyard.json", dashboard_expressions(&dashboard)),
        ("prometheus/alerts.yml", rule_expressions(&rules)),
    ] {
        assert!(!exprs.is_empty(), "{file}: no expressions");
        for expr in exprs {
            let names = metric_names(&expr);
            assert!(!names.is_empty(), "{file}: no metric in `{expr}`");
            referenced.extend(names);
        }
    }
    // Queries inside annotations' templates and descriptions, too.
    referenced.extend(family_words(&dashboard_text));
    referenced.extend(family_words(&rules_text));
    let missing: Vec<_> = referenced.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "referenced but not exported: {missing:?}\nexported: {exported:?}"
    );
    // And each has samples, labelled ones included.
    for name in &referenced {
        assert!(
            page.lines()
                .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
            "no sample of {name} on:\n{page}"
        );
    }
    assert!(referenced.len() >= 20, "{referenced:?}");
}

#[test]
fn the_dashboard_is_a_grafana_model_with_a_prometheus_datasource_variable() {
    let text = std::fs::read_to_string(deploy("grafana/switchyard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(dashboard["uid"], "switchyard");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(variables.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    let mut ids = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "duplicate id");
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(x + w <= 24, "{grid}");
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            for target in panel["targets"].as_array().unwrap() {
                assert_eq!(target["datasource"]["uid"], "${datasource}");
            }
        }
    }
}

#[test]
fn the_alert_rules_pass_promtool() {
    let path = deploy("prometheus/alerts.yml");
    let out = match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let apt = Command::new("apt-get").arg("--version").output().is_ok();
            assert!(
                !apt,
                "promtool is missing: install Debian's `prometheus` package (scripts/test does)"
            );
            println!(
                "SKIPPED!!! promtool is missing and apt-get is not available, so \
                 deploy/prometheus/alerts.yml was NOT checked"
            );
            return;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check rules:\n{printed}");
    assert!(printed.contains("SUCCESS"), "{printed}");
}
