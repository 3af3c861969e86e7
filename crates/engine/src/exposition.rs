//! The two text formats of `/metrics`, and which one a scraper gets.
//!
//! The registries encode OpenMetrics 1.0. Prometheus asks for it, but many
//! other scrapers, and `promtool check metrics`, read only the older
//! Prometheus text format 0.0.4, where a counter family is named after its
//! `_total` samples and a reader that meets OpenMetrics sees untyped series
//! without help. So every `/metrics` endpoint renders OpenMetrics once and,
//! unless the client's `Accept` header asks for OpenMetrics, converts it here
//! ([`Format::negotiate`], [`Format::encode`]).
//!
//! The conversion, line by line ([`to_prometheus_text`]):
//! - `# EOF` and `# UNIT` lines go: 0.0.4 has neither.
//! - A counter family `x` is declared as `x_total` (`# HELP`, `# TYPE`), the
//!   name of its samples; its `x_created` samples go. `_created` samples of
//!   histograms and summaries go too.
//! - `unknown` becomes `untyped`; `info` a gauge named `x_info`; `stateset` a
//!   gauge; `gaugehistogram` a histogram (`_gcount`/`_gsum` become
//!   `_count`/`_sum`).
//! - Help text: OpenMetrics escapes `"`, 0.0.4 does not.
//! - Exemplars (` # {…} …`) go; timestamps go from seconds to milliseconds.

use std::collections::HashMap;
use std::fmt::Write as _;

/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `Content-Type` of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0, for clients that ask for it.
    OpenMetrics,
    /// The Prometheus text format 0.0.4, for everyone else.
    PrometheusText,
}

/// How well one `Accept` media range matches a format: how specific it is
/// (`*/*` 0, `text/*` 1, a full type 2) and its quality.
#[derive(Clone, Copy)]
struct Match {
    specificity: u8,
    q: f32,
}

impl Format {
    /// The format for a request's `Accept` header (all its values, joined by
    /// commas). OpenMetrics when the client names it (any version it can
    /// read: none, `1.0.0` or `0.0.1`) with a quality at least that of the
    /// text format, or when it refuses the text format; the text format
    /// otherwise, also when the header is missing, `*/*`, or names nothing
    /// either format satisfies (a scraper is better served than refused).
    /// As in HTTP, the most specific range naming a format sets its quality.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let (mut om, mut text): (Option<Match>, Option<Match>) = (None, None);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut q, mut version) = (Some(1.0f32), None);
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().ok().filter(|q| (0.0..=1.0).contains(q)),
                    "version" => version = Some(value.to_string()),
                    _ => {}
                }
            }
            // A range with a malformed quality is ignored.
            let Some(q) = q else { continue };
            let (for_om, for_text) = match media.as_str() {
                "application/openmetrics-text"
                    if matches!(version.as_deref(), None | Some("1.0.0" | "0.0.1")) =>
                {
                    (Some(2), None)
                }
                "text/plain" if matches!(version.as_deref(), None | Some("0.0.4")) => {
                    (None, Some(2))
                }
                "application/*" => (Some(1), None),
                "text/*" => (None, Some(1)),
                "*/*" => (Some(0), Some(0)),
                _ => (None, None),
            };
            let keep = |slot: &mut Option<Match>, specificity: Option<u8>| {
                let Some(specificity) = specificity else {
                    return;
                };
                let new = Match { specificity, q };
                *slot = Some(match *slot {
                    Some(old)
                        if old.specificity > specificity
                            || (old.specificity == specificity && old.q >= q) =>
                    {
                        old
                    }
                    _ => new,
                });
            };
            keep(&mut om, for_om);
            keep(&mut text, for_text);
        }
        let text_q = text.map_or(0.0, |t| t.q);
        match om {
            Some(om)
                if om.q > 0.0 && (text_q == 0.0 || (om.specificity == 2 && om.q >= text_q)) =>
            {
                Format::OpenMetrics
            }
            _ => Format::PrometheusText,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }

    /// A page in this format, from the page in OpenMetrics.
    pub fn encode(self, openmetrics: String) -> String {
        match self {
            Format::OpenMetrics => openmetrics,
            Format::PrometheusText => to_prometheus_text(&openmetrics),
        }
    }
}

/// An OpenMetrics page as Prometheus text format 0.0.4 (see the module
/// documentation for what changes).
pub fn to_prometheus_text(openmetrics: &str) -> String {
    // Metadata may come before the `# TYPE` line that decides a family's
    // new name (`# HELP` does), so the types are read first.
    let types: HashMap<&str, &str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name, kind.trim()))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    // The family the following samples belong to, and its type.
    let mut family: (&str, &str) = ("", "unknown");
    for line in openmetrics.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let (keyword, rest) = meta.split_once(' ').unwrap_or((meta, ""));
            let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = types.get(name).copied().unwrap_or("unknown");
            family = (name, kind);
            match keyword {
                "HELP" => {
                    let _ = writeln!(
                        out,
                        "# HELP {} {}",
                        renamed(name, kind),
                        unescape_help(rest)
                    );
                }
                "TYPE" => {
                    let _ = writeln!(out, "# TYPE {} {}", renamed(name, kind), new_type(kind));
                }
                // `UNIT` and `EOF` do not exist in 0.0.4; other comments are
                // not OpenMetrics and are not kept either.
                _ => {}
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (name, labels, rest) = split_sample(line);
        let suffix = name.strip_prefix(family.0).unwrap_or(name);
        let name = match (family.1, suffix) {
            ("counter" | "histogram" | "summary" | "gaugehistogram", "_created") => continue,
            ("gaugehistogram", "_gcount") => format!("{}_count", family.0),
            ("gaugehistogram", "_gsum") => format!("{}_sum", family.0),
            _ => name.to_string(),
        };
        // The value, and the timestamp if any, before any exemplar.
        let mut fields = rest
            .split(" # ")
            .next()
            .unwrap_or_default()
            .split_whitespace();
        let value = fields.next().unwrap_or_default();
        let _ = write!(out, "{name}{labels} {value}");
        if let Some(ts) = fields.next().and_then(|t| t.parse::<f64>().ok()) {
            let _ = write!(out, " {}", (ts * 1000.0).round() as i64);
        }
        out.push('\n');
    }
    out
}

/// A family's name in 0.0.4: that of its samples where OpenMetrics adds a
/// suffix to every sample.
fn renamed(name: &str, kind: &str) -> String {
    match kind {
        "counter" => format!("{name}_total"),
        "info" => format!("{name}_info"),
        _ => name.to_string(),
    }
}

fn new_type(kind: &str) -> &'static str {
    match kind {
        "counter" => "counter",
        "gauge" | "info" | "stateset" => "gauge",
        "histogram" | "gaugehistogram" => "histogram",
        "summary" => "summary",
        _ => "untyped",
    }
}

/// OpenMetrics escapes `\`, newline and `"` in help text; 0.0.4 only the
/// first two.
fn unescape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('"') => out.push('"'),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// A sample line as (name, `{labels}` or empty, the rest). Label values may
/// hold spaces, `#`, `}` and escaped quotes, so the labels end at the first
/// `}` outside quotes.
fn split_sample(line: &str) -> (&str, &str, &str) {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !line[name_end..].starts_with('{') {
        return (name, "", &line[name_end..]);
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line[name_end..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => {
                let end = name_end + i + 1;
                return (name, &line[name_end..end], &line[end..]);
            }
            _ => {}
        }
    }
    (name, &line[name_end..], "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_and_gets_it() {
        for accept in [
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            // Prometheus 3, which also offers protobuf and text 1.0.0.
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            "application/openmetrics-text; version=1.0.0",
            "Application/OpenMetrics-Text",
            "text/plain, application/openmetrics-text",
            "text/plain;q=0, */*",
            "application/*",
        ] {
            assert_eq!(
                Format::negotiate(Some(accept)),
                Format::OpenMetrics,
                "{accept}"
            );
        }
    }

    #[test]
    fn a_scraper_that_does_not_ask_for_openmetrics_gets_the_text_format() {
        for accept in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0"),
            Some("application/openmetrics-text;version=2.0.0"),
            Some("application/json"),
            Some("application/openmetrics-text;q=high"),
            Some("*/*;q=0.9, application/*;q=1"),
        ] {
            assert_eq!(
                Format::negotiate(accept),
                Format::PrometheusText,
                "{accept:?}"
            );
        }
    }

    #[test]
    fn counters_are_named_after_their_samples_and_openmetrics_only_lines_go() {
        let om = "\
# HELP app_requests Requests \\\"served\\\" \\\\ all.
# TYPE app_requests counter
app_requests_total{path=\"/a b}#\\\"\"} 3 # {trace=\"x\"} 1 1.5
app_requests_created{path=\"/a b}#\\\"\"} 1700000000.5
# HELP app_latency_seconds Latency.
# TYPE app_latency_seconds histogram
# UNIT app_latency_seconds seconds
app_latency_seconds_sum 0.5
app_latency_seconds_count 2
app_latency_seconds_bucket{le=\"0.1\"} 1
app_latency_seconds_bucket{le=\"+Inf\"} 2
app_latency_seconds_created 1700000000
# HELP app_build Build.
# TYPE app_build info
app_build_info{version=\"1\"} 1
# HELP app_up Up.
# TYPE app_up gauge
app_up 1 1700000000.25
# HELP app_odd Odd.
# TYPE app_odd unknown
app_odd NaN
# EOF
";
        assert_eq!(
            to_prometheus_text(om),
            "\
# HELP app_requests_total Requests \"served\" \\\\ all.
# TYPE app_requests_total counter
app_requests_total{path=\"/a b}#\\\"\"} 3
# HELP app_latency_seconds Latency.
# TYPE app_latency_seconds histogram
app_latency_seconds_sum 0.5
app_latency_seconds_count 2
app_latency_seconds_bucket{le=\"0.1\"} 1
app_latency_seconds_bucket{le=\"+Inf\"} 2
# HELP app_build_info Build.
# TYPE app_build_info gauge
app_build_info{version=\"1\"} 1
# HELP app_up Up.
# TYPE app_up gauge
app_up 1 1700000000250
# HELP app_odd Odd.
# TYPE app_odd untyped
app_odd NaN
"
        );
    }

    #[test]
    fn a_pipeline_page_converts_without_openmetrics_leftovers() {
        let m = crate::metrics::Metrics::new();
        m.delivery("s").observe(0.01);
        let text = to_prometheus_text(&m.render());
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("_created"), "{text}");
        assert!(text.contains("# TYPE dispatcher_sink_delivery_duration_seconds histogram"));
        assert!(text.contains("dispatcher_sink_delivery_duration_seconds_count{component=\"s\"} 1"));
    }
}
