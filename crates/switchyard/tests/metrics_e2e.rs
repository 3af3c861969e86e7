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
