//! The last delivered log timestamp of each container, kept on disk so a
//! restart asks the Engine only for what came after it (`since`).
//!
//! One small JSON document replaced atomically (temporary file, sync, rename,
//! sync the directory): a crash leaves the old or the new one, never a torn
//! one. Followers update the shared map as acknowledgements arrive; the
//! source writes it out now and then and at stop.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const FILE: &str = "docker-positions.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    /// For people reading the document.
    name: String,
    /// RFC 3339 with nanoseconds: the last delivered line's Docker timestamp.
    delivered: String,
}

/// Positions of every container, shared by the followers.
#[derive(Clone)]
pub struct Positions {
    path: PathBuf,
    inner: Arc<Mutex<(BTreeMap<String, Entry>, bool)>>,
}

impl Positions {
    /// Read the document in `dir` (none yet: empty). The directory is made.
    pub fn load(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "docker: cannot create the state directory `{}`: {e}",
                dir.display()
            )
        })?;
        let path = dir.join(FILE);
        let map = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "docker: `{}` is not a positions document: {e}",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("docker: cannot read `{}`: {e}", path.display())),
        };
        Ok(Self {
            path,
            inner: Arc::new(Mutex::new((map, false))),
        })
    }

    /// The last delivered timestamp of container `id`.
    pub fn get(&self, id: &str) -> Option<OffsetDateTime> {
        let inner = self.inner.lock().expect("positions lock is never poisoned");
        let e = inner.0.get(id)?;
        OffsetDateTime::parse(&e.delivered, &Rfc3339).ok()
    }

    /// Record that container `id` is delivered up to `at`.
    pub fn set(&self, id: &str, name: &str, at: OffsetDateTime) {
        let Ok(delivered) = at.format(&Rfc3339) else {
            return; // only years outside 0..=9999 fail; Docker never sends them
        };
        let mut inner = self.inner.lock().expect("positions lock is never poisoned");
        inner.0.insert(
            id.to_owned(),
            Entry {
                name: name.to_owned(),
                delivered,
            },
        );
        inner.1 = true;
    }

    /// Write the document if anything changed since the last write.
    pub fn save(&self) -> std::io::Result<()> {
        let text = {
            let mut inner = self.inner.lock().expect("positions lock is never poisoned");
            if !inner.1 {
                return Ok(());
            }
            inner.1 = false;
            serde_json::to_vec_pretty(&inner.0).map_err(std::io::Error::other)?
        };
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_a_reload_with_nanoseconds() {
        let dir = tempfile::tempdir().unwrap();
        let p = Positions::load(dir.path()).unwrap();
        let at = OffsetDateTime::parse("2026-11-30T10:00:00.123456789Z", &Rfc3339).unwrap();
        p.set("abc", "web", at);
        p.save().unwrap();
        let again = Positions::load(dir.path()).unwrap();
        assert_eq!(again.get("abc"), Some(at));
        assert_eq!(again.get("other"), None);
    }
}
