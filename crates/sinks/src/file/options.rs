//! The file sink's config: its keys as written (`endpoint`, `path`,
//! `rotate.max_bytes`, ...), and the settings they are checked into, each
//! error naming its key.

use super::template::PathTemplate;
use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;
use switchyard_core::options::{ByteSize, Positive, Span};
use switchyard_core::BuildError;

/// The `file` sink's options, as a pipeline file or `--sink-option` gives
/// them. Dotted flags (`rotate.max_bytes=1GiB`) are the nested keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The one file every event goes to (the plain form).
    pub endpoint: Option<String>,
    /// `fdatasync` before a batch counts as delivered; default true.
    pub sync: Option<bool>,
    /// A path template (`{service}/{date}/app.log`) below `base_dir`.
    pub path: Option<String>,
    /// The base directory of `path`; default `.`.
    pub base_dir: Option<String>,
    /// `json` (the default) or `text`.
    pub encoding: Option<Encoding>,
    /// When the live file is rotated.
    #[serde(default)]
    pub rotate: RotateConfig,
    /// Which rotated files are kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// `none` (the default), `gzip` or `zstd`, for rotated files.
    pub compress: Option<Compression>,
    /// Close a file not written for this long; default 5m with `path`.
    pub idle_timeout: Option<Span>,
    /// At most this many files open at once; default 256.
    pub max_open_files: Option<Positive>,
    /// With `sync`: newest synced bytes kept in the page cache, or `all`;
    /// default 32 MiB.
    pub keep_cached: Option<KeepCached>,
    /// Append whole blocks with `O_DIRECT`; default false.
    pub direct: Option<bool>,
}

/// `rotate.*`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateConfig {
    /// Rotate before a write would take the file past this size.
    pub max_bytes: Option<ByteSize>,
    /// Rotate when the clock enters a new interval (at least 1s).
    pub interval: Option<Span>,
}

/// `retention.*`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep at most this many rotated files per live file.
    pub max_files: Option<usize>,
    /// Delete rotated files older than this (at least 1s).
    pub max_age: Option<Span>,
}

/// `keep_cached`: a size, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepCached {
    /// Drop older synced bytes beyond this many.
    Bytes(u64),
    /// Leave the page cache to the kernel.
    All,
}

impl<'de> Deserialize<'de> for KeepCached {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "all" {
            return Ok(KeepCached::All);
        }
        ByteSize::parse(&text)
            .map(|b| KeepCached::Bytes(b.0))
            .map_err(|e| serde::de::Error::custom(format!("{e} (or `all`)")))
    }
}

/// Where events go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Every event to one file (`endpoint`), as the plain form always did.
    Single(PathBuf),
    /// Each event to the file its template renders, below `base`.
    Templated {
        /// The base directory; rendered paths never leave it.
        base: PathBuf,
        /// The template (`path`).
        template: PathTemplate,
    },
}

/// How each event becomes a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The event's JSON (the default).
    Json,
    /// A log record's message alone; other events as JSON.
    Text,
}

/// How rotated files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Left as they are.
    None,
    /// `.gz`.
    Gzip,
    /// `.zst`.
    Zstd,
}

impl Compression {
    /// The suffix compressed files get.
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some(".gz"),
            Compression::Zstd => Some(".zst"),
        }
    }
}

/// When the live file is renamed aside and a new one started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a write would take the file past this size.
    pub max_bytes: Option<u64>,
    /// Rotate when the clock enters a new interval (aligned to the Unix epoch:
    /// `1h` rotates on the hour).
    pub interval: Option<Duration>,
}

impl Rotation {
    /// Whether any rotation is configured.
    pub fn enabled(&self) -> bool {
        self.max_bytes.is_some() || self.interval.is_some()
    }
}

/// Which rotated files are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many rotated files per live file.
    pub max_files: Option<usize>,
    /// Delete rotated files older than this.
    pub max_age: Option<Duration>,
}

/// What the file sink runs with, checked.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// Where events go.
    pub target: Target,
    /// `fdatasync` before a batch counts as delivered.
    pub sync: bool,
    /// Line format.
    pub encoding: Encoding,
    /// Rotation.
    pub rotation: Rotation,
    /// Retention of rotated files.
    pub retention: Retention,
    /// Compression of rotated files.
    pub compress: Compression,
    /// Close a file not written for this long.
    pub idle_timeout: Option<Duration>,
    /// At most this many files open at once (the least recently written is
    /// closed first).
    pub max_open_files: usize,
    /// With `sync`: how many of a file's newest synced bytes stay in the
    /// page cache; older ones are dropped from it after each sync. `None`
    /// (`all`): the kernel decides, as for any file.
    pub keep_cached: Option<u64>,
    /// Write whole blocks with `O_DIRECT`, past the page cache (see
    /// [`direct`](super::direct)).
    pub direct: bool,
}

/// Default bound on open files with a path template.
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;
/// Default of `keep_cached`: at 3 KB a line, the last ~10 000 events.
pub const DEFAULT_KEEP_CACHED: u64 = 32 << 20;
/// Default idle timeout with a path template.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

impl FileConfig {
    /// Check the options.
    pub fn settings(self) -> Result<FileSettings, BuildError> {
        let target = self.target()?;
        let templated = matches!(target, Target::Templated { .. });
        let rotation = Rotation {
            max_bytes: self.rotate.max_bytes.map(|b| b.0),
            interval: at_least(
                &["rotate", "interval"],
                self.rotate.interval,
                Duration::from_secs(1),
            )?,
        };
        if !rotation.enabled() {
            let needs = [
                ("retention.max_files", self.retention.max_files.is_some()),
                ("retention.max_age", self.retention.max_age.is_some()),
                (
                    "compress",
                    self.compress.is_some_and(|c| c != Compression::None),
                ),
            ];
            if let Some((key, _)) = needs.iter().find(|(_, set)| *set) {
                return Err(BuildError::options(format!(
                    "option `{key}` needs rotation: set `rotate.max_bytes` or `rotate.interval`"
                )));
            }
        }
        Ok(FileSettings {
            target,
            sync: self.sync.unwrap_or(true),
            encoding: self.encoding.unwrap_or(Encoding::Json),
            rotation,
            retention: Retention {
                max_files: self.retention.max_files,
                max_age: at_least(
                    &["retention", "max_age"],
                    self.retention.max_age,
                    Duration::from_secs(1),
                )?,
            },
            compress: self.compress.unwrap_or(Compression::None),
            idle_timeout: match at_least(
                &["idle_timeout"],
                self.idle_timeout,
                Duration::from_millis(10),
            )? {
                Some(d) => Some(d),
                None => templated.then_some(DEFAULT_IDLE_TIMEOUT),
            },
            max_open_files: self.max_open_files.map_or(DEFAULT_MAX_OPEN_FILES, |p| p.0),
            keep_cached: match self.keep_cached {
                None => Some(DEFAULT_KEEP_CACHED),
                Some(KeepCached::All) => None,
                Some(KeepCached::Bytes(n)) => Some(n),
            },
            direct: self.direct.unwrap_or(false),
        })
    }

    /// One file (`endpoint`) or a template (`path` below `base_dir`).
    fn target(&self) -> Result<Target, BuildError> {
        match &self.path {
            Some(path) => {
                let template =
                    PathTemplate::parse(path).map_err(|e| BuildError::invalid(&["path"], e))?;
                let base = match self.base_dir.as_deref() {
                    Some("") => {
                        return Err(BuildError::invalid(&["base_dir"], "must not be empty"))
                    }
                    Some(dir) => PathBuf::from(dir),
                    None => PathBuf::from("."),
                };
                Ok(Target::Templated { base, template })
            }
            None => {
                if self.base_dir.is_some() {
                    return Err(BuildError::options(
                        "option `base_dir` needs `path` (a path template)",
                    ));
                }
                let path = self.endpoint.as_deref().filter(|p| !p.is_empty()).ok_or_else(|| {
                    BuildError::options("the file sink needs `endpoint` (the path of the JSONL file) or `path` (a path template)")
                })?;
                Ok(Target::Single(PathBuf::from(path)))
            }
        }
    }
}

/// `value`, refused below `min`.
fn at_least(
    key: &[&str],
    value: Option<Span>,
    min: Duration,
) -> Result<Option<Duration>, BuildError> {
    match value {
        Some(Span(d)) if d < min => Err(BuildError::invalid(
            key,
            format!(
                "must be at least {}, not {}",
                humantime::format_duration(min),
                humantime::format_duration(d)
            ),
        )),
        other => Ok(other.map(|s| s.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::Options;

    fn cfg(pairs: &[(&str, &str)]) -> Options {
        pairs.iter().copied().collect()
    }

    fn read(options: Options) -> Result<FileSettings, BuildError> {
        options
            .read::<FileConfig>()
            .and_then(FileConfig::settings)
            .map_err(|e| options.locate(e))
    }

    #[test]
    fn plain_endpoint_keeps_its_old_meaning() {
        let mut flags = cfg(&[("endpoint", "e.jsonl")]);
        // What the dispatcher offers every sink; the file sink has no use for it.
        flags.offer("verbose", "false".into(), "--verbose");
        let o = read(flags).unwrap();
        assert!(matches!(o.target, Target::Single(ref p) if p.as_os_str() == "e.jsonl"));
        assert!(o.sync && o.idle_timeout.is_none() && !o.rotation.enabled());
        assert_eq!(o.keep_cached, Some(DEFAULT_KEEP_CACHED));
        assert_eq!(
            (o.max_open_files, o.direct),
            (DEFAULT_MAX_OPEN_FILES, false)
        );
        assert_eq!(
            (o.encoding, o.compress),
            (Encoding::Json, Compression::None)
        );
    }

    #[test]
    fn keep_cached_takes_a_size_or_all() {
        let keep = |v: &str| {
            read(cfg(&[("endpoint", "e"), ("keep_cached", v)]))
                .unwrap()
                .keep_cached
        };
        assert_eq!(keep("1MiB"), Some(1 << 20));
        assert_eq!(keep("all"), None);
    }

    #[test]
    fn yaml_takes_native_values_and_nested_keys() {
        let yaml = Options::from_value(
            serde_json::json!({
                "path": "{app}.log",
                "sync": false,
                "rotate": {"max_bytes": 1048576, "interval": "1h"},
                "retention.max_files": 3,
                "max_open_files": 8,
                "keep_cached": "all",
            }),
            "sinks.f.options",
        )
        .unwrap();
        let o = read(yaml).unwrap();
        assert!(!o.sync);
        assert_eq!(o.rotation.max_bytes, Some(1 << 20));
        assert_eq!(o.rotation.interval, Some(Duration::from_secs(3600)));
        assert_eq!((o.retention.max_files, o.max_open_files), (Some(3), 8));
        assert_eq!(o.keep_cached, None);
        assert_eq!(o.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases = [
            ("sync", "yes"),
            ("encoding", "xml"),
            ("rotate.max_bytes", "10XB"),
            ("rotate.max_bytes", "0"),
            ("rotate.interval", "soon"),
            ("rotate.interval", "10ms"),
            ("retention.max_files", "-1"),
            ("retention.max_age", "old"),
            ("compress", "lz4"),
            ("idle_timeout", "never"),
            ("max_open_files", "0"),
            ("keep_cached", "lots"),
            ("path", "../x"),
            ("wat", "1"),
            ("rotate.size", "1"),
        ];
        for (key, value) in cases {
            let err = read(cfg(&[
                ("endpoint", "e.jsonl"),
                ("rotate.max_bytes", "1MiB"),
                (key, value),
            ]))
            .unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("--sink-option {key}: ")),
                "{key}={value}: {err}"
            );
            assert_eq!(err.key().unwrap().segments().join("."), key);
        }
    }

    #[test]
    fn retention_and_compression_need_rotation() {
        let err = read(cfg(&[("endpoint", "e"), ("compress", "gzip")])).unwrap_err();
        assert!(
            err.to_string().contains("`compress` needs rotation"),
            "{err}"
        );
        assert!(read(cfg(&[("endpoint", "e"), ("compress", "none")])).is_ok());
    }
}
