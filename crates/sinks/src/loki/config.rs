//! The Loki sink's config: its keys as written, and the settings they are
//! checked into before anything starts; every error names the key at fault.

use super::order::Policy;
use super::template::{LabelTemplate, DEFAULT_LABELS};
use crate::http_common::options::Secret;
use crate::http_common::HttpOptions;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use switchyard_core::options::{ByteSize, Positive, Span};
use switchyard_core::BuildError;

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

/// The `loki` sink's options, as a pipeline file or `--sink-option` gives
/// them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LokiConfig {
    /// Loki's base URL (required); the push path is added unless present.
    pub endpoint: Option<String>,
    /// The label set: `NAME=TEMPLATE,...` or a mapping of names to
    /// templates; default `job=switchyard`.
    pub labels: Option<Labels>,
    /// `protobuf` (snappy, the default) or `json`.
    pub encoding: Option<String>,
    /// With `encoding: json`: `none` (the default) or `gzip`.
    pub compression: Option<String>,
    /// A log record's line: `json` (the default) or `message`.
    pub line: Option<String>,
    /// `X-Scope-OrgID`, when Loki runs multi-tenant.
    pub tenant: Option<String>,
    /// Basic auth: `auth.user` and `auth.password`.
    pub auth: Option<BasicAuth>,
    /// A bearer token instead of basic auth.
    pub api_key: Option<Secret>,
    /// `accept` (the default), `drop` or `rewrite_timestamp`.
    pub out_of_order: Option<String>,
    /// Entries per push; default 1000.
    pub batch_max_events: Option<Positive>,
    /// Uncompressed bytes per push; default 1 MiB.
    pub batch_max_bytes: Option<ByteSize>,
    /// Longest line; default 256 KiB.
    pub max_line_bytes: Option<ByteSize>,
    /// Streams whose last timestamp is remembered; default 10000.
    pub max_streams: Option<Positive>,
    /// Whole-request timeout; default 30s.
    pub timeout: Option<Span>,
    /// Connect timeout; default 10s.
    pub connect_timeout: Option<Span>,
}

/// `auth.user` and `auth.password`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name (Grafana Cloud: the instance id).
    pub user: Option<String>,
    /// Password or token.
    pub password: Option<Secret>,
}

/// `labels` as written: the text form, or a mapping of names to templates.
#[derive(Debug, Clone)]
pub struct Labels(String);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let pair = |name: &str, template: &str| {
            if name.contains([',', '=']) || template.contains(',') {
                Err(D::Error::custom(format!(
                    "label `{name}`: a name may not contain `,` or `=`, nor a template `,`"
                )))
            } else {
                Ok(format!("{name}={template}"))
            }
        };
        match Value::deserialize(d)? {
            Value::String(text) => Ok(Labels(text)),
            Value::Object(map) => map
                .iter()
                .map(|(name, template)| match template {
                    Value::String(t) => pair(name, t),
                    Value::Number(_) | Value::Bool(_) => pair(name, &template.to_string()),
                    _ => Err(D::Error::custom(format!(
                        "label `{name}`: expected a template such as {{level}}"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|pairs| Labels(pairs.join(","))),
            _ => Err(D::Error::custom(
                "expected NAME=TEMPLATE,... or a mapping of label names to templates",
            )),
        }
    }
}

/// What the Loki sink runs with, checked.
#[derive(Debug, Clone)]
pub struct LokiSettings {
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
    /// Check the options.
    pub fn settings(self) -> Result<LokiSettings, BuildError> {
        let mut http = HttpOptions::new(
            "loki",
            self.endpoint,
            None,
            self.timeout,
            self.connect_timeout,
        )?;
        http.endpoint = push_url(&http.endpoint);
        let labels = self
            .labels
            .map_or_else(|| DEFAULT_LABELS.to_string(), |l| l.0);
        let labels = LabelTemplate::parse(&labels).map_err(|e| {
            let e = e.strip_prefix("`labels`: ").unwrap_or(&e).to_string();
            BuildError::invalid(&["labels"], e)
        })?;
        let bytes = |b: Option<ByteSize>, default: usize| {
            b.map_or(default, |b| usize::try_from(b.0).unwrap_or(usize::MAX))
        };
        Ok(LokiSettings {
            http,
            encoding: encoding(self.encoding.as_deref(), self.compression.as_deref())?,
            labels,
            line: match self.line.as_deref() {
                None | Some("json") => LineFormat::Json,
                Some("message") => LineFormat::Message,
                Some(o) => {
                    return Err(BuildError::invalid(
                        &["line"],
                        format!("expected json or message, not `{o}`"),
                    ))
                }
            },
            tenant: tenant(self.tenant)?,
            auth: auth(self.auth.unwrap_or_default(), self.api_key)?,
            out_of_order: match self.out_of_order.as_deref() {
                None => Policy::Accept,
                Some(v) => Policy::parse(v).ok_or_else(|| {
                    BuildError::invalid(
                        &["out-of-order"],
                        format!("expected accept, drop or rewrite_timestamp, not `{v}`"),
                    )
                })?,
            },
            max_events: self.batch_max_events.map_or(1000, |p| p.0),
            max_bytes: bytes(self.batch_max_bytes, 1024 * 1024),
            max_line_bytes: bytes(self.max_line_bytes, 256 * 1024),
            max_streams: self.max_streams.map_or(10_000, |p| p.0),
        })
    }
}

fn encoding(encoding: Option<&str>, compression: Option<&str>) -> Result<Encoding, BuildError> {
    let compression_err = |message: String| BuildError::invalid(&["compression"], message);
    Ok(match (encoding, compression) {
        (None | Some("protobuf"), None | Some("snappy")) => Encoding::Protobuf,
        (None | Some("protobuf"), Some(c)) => return Err(compression_err(format!(
            "`{c}`: protobuf pushes are always snappy-compressed; `compression` applies to encoding=json (none or gzip)"
        ))),
        (Some("json"), None | Some("none")) => Encoding::Json { gzip: false },
        (Some("json"), Some("gzip")) => Encoding::Json { gzip: true },
        (Some("json"), Some(c)) => {
            return Err(compression_err(format!("expected none or gzip with encoding=json, not `{c}`")))
        }
        (Some(e), _) => {
            return Err(BuildError::invalid(&["encoding"], format!("expected protobuf or json, not `{e}`")))
        }
    })
}

fn tenant(tenant: Option<String>) -> Result<Option<String>, BuildError> {
    match tenant.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(t.to_string())),
        Some(_) => Err(BuildError::invalid(
            &["tenant"],
            "expected printable ASCII without spaces (it goes in the X-Scope-OrgID header)",
        )),
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

fn auth(basic: BasicAuth, key: Option<Secret>) -> Result<Auth, BuildError> {
    let user = basic
        .user
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    let password = basic.password.filter(|p| !p.is_empty());
    let key = key.filter(|k| !k.is_empty());
    match (user, password) {
        (Some(_), Some(_)) if key.is_some() => Err(BuildError::options(
            "`auth.user`/`auth.password` and `api-key` both given: choose basic auth or a bearer token",
        )),
        (Some(user), Some(password)) => {
            if user.contains(':') {
                return Err(BuildError::invalid(
                    &["auth", "user"],
                    "a basic-auth user may not contain `:`",
                ));
            }
            Ok(Auth::Basic { user, password })
        }
        (Some(_), None) => Err(BuildError::options(
            "`auth.user` is set but `auth.password` is not: basic auth needs both",
        )),
        (None, Some(_)) => Err(BuildError::options(
            "`auth.password` is set but `auth.user` is not: basic auth needs both",
        )),
        (None, None) => Ok(key.map_or(Auth::None, Auth::Bearer)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use switchyard_core::Options;

    fn cfg(pairs: &[(&str, &str)]) -> Options {
        let mut c = Options::new();
        c.insert("endpoint".into(), "http://127.0.0.1:3100".into());
        for (k, v) in pairs {
            c.insert(k.to_string(), v.to_string());
        }
        c
    }

    fn read(options: Options) -> Result<LokiSettings, BuildError> {
        options
            .read::<LokiConfig>()
            .and_then(LokiConfig::settings)
            .map_err(|e| options.locate(e))
    }

    #[test]
    fn defaults() {
        let c = read(cfg(&[])).unwrap();
        assert_eq!(c.http.endpoint, "http://127.0.0.1:3100/loki/api/v1/push");
        assert_eq!(c.encoding, Encoding::Protobuf);
        assert_eq!(c.line, LineFormat::Json);
        assert_eq!(c.out_of_order, Policy::Accept);
        assert_eq!(c.labels.names().collect::<Vec<_>>(), ["job"]);
        assert!(matches!(c.auth, Auth::None));
        assert_eq!((c.max_events, c.max_bytes), (1000, 1024 * 1024));
        let c = read(cfg(&[("endpoint", "http://h:3100/loki/api/v1/push/")])).unwrap();
        assert_eq!(c.http.endpoint, "http://h:3100/loki/api/v1/push");
    }

    #[test]
    fn options_are_read() {
        let c = read(cfg(&[
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
        let c = read(cfg(&[("api-key", "k")])).unwrap();
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
            let e = read(cfg(pairs)).unwrap_err().to_string();
            let bare = key.trim_matches('`');
            assert!(
                e.contains(key) || e.starts_with(&format!("--sink-option {bare}: ")),
                "{pairs:?}: {e}"
            );
        }
        let e = read(Options::new()).unwrap_err().to_string();
        assert!(e.contains("--endpoint"), "{e}");
    }

    #[test]
    fn native_yaml_values_and_a_label_mapping() {
        let yaml = Options::from_value(
            serde_json::json!({
                "endpoint": "http://h:3100",
                "labels": {"service": "{service}", "env": "prod"},
                "auth": {"user": 123, "password": "pw"},
                "batch-max-events": 5,
                "max-line-bytes": "1KiB",
            }),
            "sinks.l.options",
        )
        .unwrap();
        let c = read(yaml).unwrap();
        assert_eq!(c.labels.names().collect::<Vec<_>>(), ["env", "service"]);
        assert!(matches!(&c.auth, Auth::Basic { user, .. } if user == "123"));
        assert_eq!((c.max_events, c.max_line_bytes), (5, 1024));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let yaml = Options::from_value(
            serde_json::json!({"endpoint": "http://h", "auth": {"token": "x"}}),
            "sinks.l.options",
        )
        .unwrap();
        let e = read(yaml).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "sinks.l.options.auth.token: unknown option; expected `user` or `password`"
            ),
            "{e}"
        );
        let e = read(cfg(&[("colour", "red")])).unwrap_err().to_string();
        assert!(e.starts_with("--sink-option colour: unknown option"), "{e}");
    }
}
