//! Loki options from the plugin map, checked before anything starts; every
//! error names the key at fault.

use super::order::Policy;
use super::template::{LabelTemplate, DEFAULT_LABELS};
use crate::http_common::options::{self, Secret};
use crate::http_common::HttpOptions;
use switchyard_core::SinkConfig;

/// The push path under the Loki base URL.
pub const PUSH_PATH: &str = "/loki/api/v1/push";

/// How a push is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `logproto.PushRequest`, snappy block-compressed (Loki's native form).
    Protobuf,
    /// `{"streams":[...]}`, optionally gzip-compressed.
    Json {
        /// `Content-Encoding: gzip`.
        gzip: bool,
    },
}

/// What an entry's line holds for a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// The record's flat JSON object (every field stays queryable with `| json`).
    Json,
    /// Only the message; records without one fall back to their JSON.
    Message,
}

/// How requests authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No `Authorization` header.
    None,
    /// `auth.user` / `auth.password`.
    Basic {
        /// User name (Grafana Cloud: the instance id).
        user: String,
        /// Password or token.
        password: Secret,
    },
    /// `api-key` as a bearer token.
    Bearer(Secret),
}

/// Everything the Loki sink needs.
#[derive(Debug, Clone)]
pub struct LokiConfig {
    /// The push URL and timeouts.
    pub http: HttpOptions,
    /// Wire encoding.
    pub encoding: Encoding,
    /// The label set.
    pub labels: LabelTemplate,
    /// Line content of log records.
    pub line: LineFormat,
    /// `X-Scope-OrgID`, when Loki runs multi-tenant.
    pub tenant: Option<String>,
    /// Credentials.
    pub auth: Auth,
    /// What to do with entries older than their stream's last pushed one.
    pub out_of_order: Policy,
    /// Entries per push.
    pub max_events: usize,
    /// Uncompressed bytes of lines and labels per push.
    pub max_bytes: usize,
    /// Longest line; longer events go to the dead-letter queue.
    pub max_line_bytes: usize,
    /// Streams whose last timestamp is remembered.
    pub max_streams: usize,
}

impl LokiConfig {
    /// Read and check the options.
    pub fn from_config(cfg: &SinkConfig) -> Result<Self, String> {
        let get = |k: &str| cfg.get(k).map(String::as_str);
        let mut http = HttpOptions::from_config("loki", cfg, None)?;
        http.endpoint = push_url(&http.endpoint);
        let encoding = match (get("encoding"), get("compression")) {
            (None | Some("protobuf"), None | Some("snappy")) => Encoding::Protobuf,
            (None | Some("protobuf"), Some(c)) => {
                return Err(format!(
                    "`compression` = `{c}`: protobuf pushes are always snappy-compressed; `compression` applies to encoding=json (none or gzip)"
                ))
            }
            (Some("json"), None | Some("none")) => Encoding::Json { gzip: false },
            (Some("json"), Some("gzip")) => Encoding::Json { gzip: true },
            (Some("json"), Some(c)) => {
                return Err(format!("`compression` = `{c}`: expected none or gzip with encoding=json"))
            }
            (Some(e), _) => return Err(format!("`encoding` = `{e}`: expected protobuf or json")),
        };
        let line = match get("line") {
            None | Some("json") => LineFormat::Json,
            Some("message") => LineFormat::Message,
            Some(o) => return Err(format!("`line` = `{o}`: expected json or message")),
        };
        let out_of_order = match get("out-of-order") {
            None => Policy::Accept,
            Some(v) => Policy::parse(v).ok_or_else(|| {
                format!("`out-of-order` = `{v}`: expected accept, drop or rewrite_timestamp")
            })?,
        };
        let tenant = match get("tenant").map(str::trim) {
            None | Some("") => None,
            Some(t) if t.bytes().all(|b| b.is_ascii_graphic()) => Some(t.to_string()),
            Some(_) => return Err("`tenant`: expected printable ASCII without spaces (it goes in the X-Scope-OrgID header)".into()),
        };
        Ok(Self {
            http,
            encoding,
            labels: LabelTemplate::parse(get("labels").unwrap_or(DEFAULT_LABELS))?,
            line,
            tenant,
            auth: auth(cfg)?,
            out_of_order,
            max_events: options::positive(cfg, "batch-max-events", 1000)?,
            max_bytes: options::positive(cfg, "batch-max-bytes", 1024 * 1024)?,
            max_line_bytes: options::positive(cfg, "max-line-bytes", 256 * 1024)?,
            max_streams: options::positive(cfg, "max-streams", 10_000)?,
        })
    }
}

/// `endpoint` is Loki's base URL; the push path is added unless it is there.
fn push_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(PUSH_PATH) {
        base.to_string()
    } else {
        format!("{base}{PUSH_PATH}")
    }
}

fn auth(cfg: &SinkConfig) -> Result<Auth, String> {
    let nonempty = |k: &str| cfg.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let key = nonempty("api-key");
    match (nonempty("auth.user"), nonempty("auth.password")) {
        (Some(_), Some(_)) if key.is_some() => Err(
            "`auth.user`/`auth.password` and `api-key` both given: choose basic auth or a bearer token".into(),
        ),
        (Some(user), Some(password)) => {
            if user.contains(':') {
                return Err("`auth.user`: a basic-auth user may not contain `:`".into());
            }
            Ok(Auth::Basic {
                user: user.to_string(),
                password: Secret::new(password),
            })
        }
        (Some(_), None) => Err("`auth.user` is set but `auth.password` is not: basic auth needs both".into()),
        (None, Some(_)) => Err("`auth.password` is set but `auth.user` is not: basic auth needs both".into()),
        (None, None) => Ok(key.map_or(Auth::None, |k| Auth::Bearer(Secret::new(k)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> SinkConfig {
        let mut c: SinkConfig = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        c.entry("endpoint".into())
            .or_insert_with(|| "http://127.0.0.1:3100".into());
        c
    }

    #[test]
    fn defaults() {
        let c = LokiConfig::from_config(&cfg(&[])).unwrap();
        assert_eq!(c.http.endpoint, "http://127.0.0.1:3100/loki/api/v1/push");
        assert_eq!(c.encoding, Encoding::Protobuf);
        assert_eq!(c.line, LineFormat::Json);
        assert_eq!(c.out_of_order, Policy::Accept);
        assert_eq!(c.labels.names().collect::<Vec<_>>(), ["job"]);
        assert!(matches!(c.auth, Auth::None));
        assert_eq!((c.max_events, c.max_bytes), (1000, 1024 * 1024));
        let c = LokiConfig::from_config(&cfg(&[("endpoint", "http://h:3100/loki/api/v1/push/")]))
            .unwrap();
        assert_eq!(c.http.endpoint, "http://h:3100/loki/api/v1/push");
    }

    #[test]
    fn options_are_read() {
        let c = LokiConfig::from_config(&cfg(&[
            ("encoding", "json"),
            ("compression", "gzip"),
            ("line", "message"),
            ("tenant", "team-a"),
            ("auth.user", "123"),
            ("auth.password", "pw"),
            ("out-of-order", "rewrite_timestamp"),
            ("batch-max-events", "5"),
        ]))
        .unwrap();
        assert_eq!(c.encoding, Encoding::Json { gzip: true });
        assert_eq!(c.tenant.as_deref(), Some("team-a"));
        assert!(
            matches!(&c.auth, Auth::Basic { user, password } if user == "123" && password.expose() == "pw")
        );
        assert!(
            !format!("{c:?}").contains("pw\""),
            "the password is never printed"
        );
        assert_eq!(c.out_of_order, Policy::RewriteTimestamp);
        let c = LokiConfig::from_config(&cfg(&[("api-key", "k")])).unwrap();
        assert!(matches!(&c.auth, Auth::Bearer(k) if k.expose() == "k"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("encoding", "avro")], "`encoding`"),
            (&[("compression", "gzip")], "`compression`"),
            (
                &[("encoding", "json"), ("compression", "zstd")],
                "`compression`",
            ),
            (&[("line", "raw")], "`line`"),
            (&[("out-of-order", "reorder")], "`out-of-order`"),
            (&[("tenant", "a b")], "`tenant`"),
            (&[("auth.user", "u")], "`auth.password`"),
            (&[("auth.password", "p")], "`auth.user`"),
            (
                &[("auth.user", "u"), ("auth.password", "p"), ("api-key", "k")],
                "`api-key`",
            ),
            (&[("batch-max-events", "0")], "`batch-max-events`"),
            (&[("batch-max-bytes", "x")], "`batch-max-bytes`"),
            (&[("max-streams", "-1")], "`max-streams`"),
            (&[("labels", "request_id={request_id}")], "`labels`"),
            (&[("timeout", "soon")], "`timeout`"),
        ];
        for (pairs, key) in cases {
            let e = LokiConfig::from_config(&cfg(pairs)).unwrap_err();
            assert!(e.contains(key), "{pairs:?}: {e}");
        }
        let e = LokiConfig::from_config(&SinkConfig::new()).unwrap_err();
        assert!(e.contains("--endpoint"), "{e}");
    }
}
