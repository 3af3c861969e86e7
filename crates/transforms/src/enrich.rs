//! `enrich`: add labels — static ones, the host name, environment variables
//! (read once at start-up; a missing variable is a start-up error).

use crate::error::TransformError;
use crate::path::record;
use std::collections::BTreeMap;
use switchyard_core::{Event, Transform, Verdict};

/// Adds labels to every record (existing labels of the same name are kept
/// unless `overwrite`).
pub struct Enrich {
    labels: Vec<(String, String)>,
    overwrite: bool,
}

impl Enrich {
    /// `labels` as given; `hostname_label` gets the host name; `env` maps
    /// label → environment variable.
    pub fn new(
        labels: &BTreeMap<String, String>,
        hostname_label: Option<&str>,
        env: &BTreeMap<String, String>,
        overwrite: bool,
    ) -> Result<Self, TransformError> {
        let mut out: Vec<(String, String)> =
            labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(label) = hostname_label {
            let name = hostname().map_err(|e| {
                TransformError::config("hostname", format!("cannot read the host name: {e}"))
            })?;
            out.push((label.to_string(), name));
        }
        for (label, var) in env {
            let value = std::env::var(var).map_err(|_| {
                TransformError::config(
                    format!("env.{label}"),
                    format!("environment variable `{var}` is not set"),
                )
            })?;
            out.push((label.clone(), value));
        }
        for (k, _) in &out {
            if k.is_empty() {
                return Err(TransformError::config("labels", "a label name is empty"));
            }
        }
        Ok(Self {
            labels: out,
            overwrite,
        })
    }
}

fn hostname() -> std::io::Result<String> {
    if let Ok(h) = std::env::var("HOSTNAME").map(|h| h.trim().to_string()) {
        if !h.is_empty() {
            return Ok(h);
        }
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
}

impl Transform for Enrich {
    fn apply(&self, event: &mut Event) -> Verdict {
        if let Some(rec) = record(event) {
            for (k, v) in &self.labels {
                if self.overwrite || !rec.labels.contains_key(k) {
                    rec.labels.insert(k.clone(), v.clone());
                }
            }
        }
        Verdict::Keep
    }
}
