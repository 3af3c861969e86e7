//! Application log records: a service answered an HTTP request, at some
//! level, taking some time, inside some trace.

use switchyard_core::LogRecord;

const SERVICES: &[&str] = &[
    "checkout", "payments", "catalog", "auth", "search", "gateway",
];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/cart",
    "/api/v1/products",
    "/api/v1/products/{id}",
    "/api/v1/login",
    "/api/v1/search",
    "/healthz",
];
const ENVS: &[&str] = &["prod", "staging"];

/// One record. Levels follow a production-like mix: mostly info, some debug,
/// few warnings, rare errors; slow or failed requests raise the level.
pub fn record(rng: &mut fastrand::Rng) -> LogRecord {
    let service = pick(rng, SERVICES);
    let method = pick(rng, METHODS);
    let path = pick(rng, PATHS).replace("{id}", &rng.u32(1000..100_000).to_string());
    // A long-tailed latency: most requests are quick, a few are very slow.
    let latency_ms = match rng.u8(0..100) {
        0..=79 => rng.u32(2..80),
        80..=97 => rng.u32(80..900),
        _ => rng.u32(900..5000),
    };
    let status: u16 = match rng.u8(0..100) {
        0..=89 => 200,
        90..=93 => 404,
        94..=96 => 401,
        97..=98 => 500,
        _ => 503,
    };
    let level = match (status, latency_ms) {
        (500.., _) => "error",
        (400.., _) | (_, 1000..) => "warn",
        _ if rng.u8(0..10) == 0 => "debug",
        _ => "info",
    };
    let message = match level {
        "error" => format!("{method} {path} failed with {status}: upstream unavailable"),
        "warn" if status >= 400 => format!("{method} {path} rejected with {status}"),
        "warn" => format!("{method} {path} slow: {latency_ms} ms"),
        _ => format!("{method} {path} {status} in {latency_ms} ms"),
    };
    let mut rec = LogRecord::new(message);
    rec.level = Some(level.to_owned());
    rec.labels.insert("service".into(), service.to_owned());
    rec.labels.insert("env".into(), pick(rng, ENVS).to_owned());
    let trace_id = format!("{:016x}{:016x}", rng.u64(..), rng.u64(..));
    let span_id = format!("{:016x}", rng.u64(..));
    // Plain strings and numbers always serialize.
    let _ = rec.fields.insert_value("http_method", method);
    let _ = rec.fields.insert_value("http_path", &path);
    let _ = rec.fields.insert_value("http_status", &status);
    let _ = rec.fields.insert_value("latency_ms", &latency_ms);
    let _ = rec.fields.insert_value("trace_id", &trace_id);
    let _ = rec.fields.insert_value("span_id", &span_id);
    rec.source_type = Some("demo");
    rec.source_id = Some("logs".into());
    rec
}

pub(super) fn pick<'a>(rng: &mut fastrand::Rng, from: &[&'a str]) -> &'a str {
    from[rng.usize(..from.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_have_the_promised_shape() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..200 {
            let r = record(&mut rng);
            let level = r.level.as_deref().unwrap();
            assert!(["debug", "info", "warn", "error"].contains(&level));
            assert!(SERVICES.contains(&r.labels["service"].as_str()));
            let trace = r.fields.get("trace_id").unwrap().get().trim_matches('"');
            assert_eq!(trace.len(), 32);
            assert!(trace.bytes().all(|b| b.is_ascii_hexdigit()));
            let path = r.fields.get("http_path").unwrap().get();
            assert!(path.starts_with("\"/"), "{path}");
            assert!(r.fields.get("latency_ms").is_some());
            assert!(r.message.unwrap().contains(path.trim_matches('"')));
        }
    }
}
