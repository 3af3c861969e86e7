//! The file sink's options (`--sink-option KEY=VALUE`), each validated with
//! an error that names its key.

use super::template::PathTemplate;
use std::path::PathBuf;
use std::time::Duration;
use switchyard_core::SinkConfig;

/// Keys the dispatcher hands to every sink; the file sink does not use them.
const SHARED_KEYS: [&str; 2] = ["verbose", "api-key"];

/// Every key the file sink reads.
const KEYS: [&str; 14] = [
    "endpoint",
    "sync",
    "path",
    "base_dir",
    "encoding",
    "rotate.max_bytes",
    "rotate.interval",
    "retention.max_files",
    "retention.max_age",
    "compress",
    "idle_timeout",
    "max_open_files",
    "keep_cached",
    "direct",
];

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The event's JSON (the default).
    Json,
    /// A log record's message alone; other events as JSON.
    Text,
}

/// How rotated files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Everything the file sink is configured with.
#[derive(Debug, Clone)]
pub struct FileOptions {
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

impl FileOptions {
    /// Read and validate the plugin map.
    pub fn parse(cfg: &SinkConfig) -> Result<Self, String> {
        if let Some(key) = cfg
            .keys()
            .find(|k| !KEYS.contains(&k.as_str()) && !SHARED_KEYS.contains(&k.as_str()))
        {
            return Err(format!(
                "unknown file sink option `{key}`; known: {}",
                KEYS.join(", ")
            ));
        }
        let get = |k: &str| cfg.get(k).map(String::as_str);
        let target = match get("path") {
            Some(path) => {
                let template =
                    PathTemplate::parse(path).map_err(|e| format!("option `path`: {e}"))?;
                let base = match get("base_dir") {
                    Some("") => return Err("option `base_dir` must not be empty".into()),
                    Some(dir) => PathBuf::from(dir),
                    None => PathBuf::from("."),
                };
                Target::Templated { base, template }
            }
            None => {
                if get("base_dir").is_some() {
                    return Err("option `base_dir` needs `path` (a path template)".into());
                }
                let path = get("endpoint")
                    .filter(|p| !p.is_empty())
                    .ok_or("the file sink needs `endpoint` (the path of the JSONL file) or `path` (a path template)")?;
                Target::Single(PathBuf::from(path))
            }
        };
        let templated = matches!(target, Target::Templated { .. });
        let options = Self {
            target,
            sync: parse_bool(get("sync"), "sync", true)?,
            encoding: match get("encoding") {
                None | Some("json") => Encoding::Json,
                Some("text") => Encoding::Text,
                Some(other) => {
                    return Err(format!(
                        "option `encoding` must be json or text, not `{other}`"
                    ))
                }
            },
            rotation: Rotation {
                max_bytes: get("rotate.max_bytes")
                    .map(|v| parse_size(v).map_err(|e| format!("option `rotate.max_bytes`: {e}")))
                    .transpose()?,
                interval: get("rotate.interval")
                    .map(|v| parse_duration(v, "rotate.interval", Duration::from_secs(1)))
                    .transpose()?,
            },
            retention: Retention {
                max_files: get("retention.max_files")
                    .map(|v| parse_count(v, "retention.max_files", 0))
                    .transpose()?,
                max_age: get("retention.max_age")
                    .map(|v| parse_duration(v, "retention.max_age", Duration::from_secs(1)))
                    .transpose()?,
            },
            compress: match get("compress") {
                None | Some("none") => Compression::None,
                Some("gzip") => Compression::Gzip,
                Some("zstd") => Compression::Zstd,
                Some(other) => {
                    return Err(format!(
                        "option `compress` must be gzip, zstd or none, not `{other}`"
                    ))
                }
            },
            idle_timeout: match get("idle_timeout") {
                Some(v) => Some(parse_duration(
                    v,
                    "idle_timeout",
                    Duration::from_millis(10),
                )?),
                None => templated.then_some(DEFAULT_IDLE_TIMEOUT),
            },
            max_open_files: match get("max_open_files") {
                Some(v) => parse_count(v, "max_open_files", 1)?,
                None => DEFAULT_MAX_OPEN_FILES,
            },
            keep_cached: match get("keep_cached") {
                None => Some(DEFAULT_KEEP_CACHED),
                Some("all") => None,
                Some(v) => Some(
                    parse_size(v).map_err(|e| format!("option `keep_cached`: {e} (or `all`)"))?,
                ),
            },
            direct: parse_bool(get("direct"), "direct", false)?,
        };
        if !options.rotation.enabled() {
            for key in ["retention.max_files", "retention.max_age", "compress"] {
                if get(key).is_some_and(|v| v != "none") {
                    return Err(format!(
                        "option `{key}` needs rotation: set `rotate.max_bytes` or `rotate.interval`"
                    ));
                }
            }
        }
        Ok(options)
    }
}

fn parse_bool(value: Option<&str>, key: &str, default: bool) -> Result<bool, String> {
    match value {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(format!(
            "option `{key}` must be true or false, not `{other}`"
        )),
    }
}

fn parse_count(value: &str, key: &str, min: usize) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "option `{key}` must be a whole number of at least {min}, not `{value}`"
        )),
    }
}

fn parse_duration(value: &str, key: &str, min: Duration) -> Result<Duration, String> {
    match humantime::parse_duration(value) {
        Ok(d) if d >= min => Ok(d),
        Ok(_) => Err(format!(
            "option `{key}` must be at least {}, not `{value}`",
            humantime::format_duration(min)
        )),
        Err(e) => Err(format!(
            "option `{key}` must be a duration such as 1h or 30s, not `{value}`: {e}"
        )),
    }
}

/// `1048576`, `512KiB`, `100MiB`, `1GiB` (also `K`, `M`, `G`, `KB`, `MB`,
/// `GB`, all binary multiples).
fn parse_size(value: &str) -> Result<u64, String> {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{value}` (use KiB, MiB or GiB)"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("must be a size above 0 such as 100MiB, not `{value}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> SinkConfig {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plain_endpoint_keeps_its_old_meaning() {
        let o = FileOptions::parse(&cfg(&[("endpoint", "e.jsonl"), ("verbose", "false")])).unwrap();
        assert!(matches!(o.target, Target::Single(ref p) if p.as_os_str() == "e.jsonl"));
        assert!(o.sync && o.idle_timeout.is_none() && !o.rotation.enabled());
        assert_eq!(o.keep_cached, Some(DEFAULT_KEEP_CACHED));
    }

    #[test]
    fn keep_cached_takes_a_size_or_all() {
        let keep = |v: &str| {
            FileOptions::parse(&cfg(&[("endpoint", "e"), ("keep_cached", v)]))
                .unwrap()
                .keep_cached
        };
        assert_eq!(keep("1MiB"), Some(1 << 20));
        assert_eq!(keep("all"), None);
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
        ];
        for (key, value) in cases {
            let err = FileOptions::parse(&cfg(&[
                ("endpoint", "e.jsonl"),
                ("rotate.max_bytes", "1MiB"),
                (key, value),
            ]))
            .unwrap_err();
            assert!(err.contains(&format!("`{key}`")), "{key}={value}: {err}");
        }
    }

    #[test]
    fn retention_and_compression_need_rotation() {
        let err = FileOptions::parse(&cfg(&[("endpoint", "e"), ("compress", "gzip")])).unwrap_err();
        assert!(err.contains("`compress` needs rotation"), "{err}");
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("2M"), Ok(2 << 20));
        assert_eq!(parse_size("100"), Ok(100));
    }
}
