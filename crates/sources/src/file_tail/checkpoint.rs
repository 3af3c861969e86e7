//! Read positions of tailed files, kept on disk across restarts.
//!
//! Files are known by identity (device and inode), not by path, so a file
//! renamed by rotation keeps its position under its new name. The store is
//! one small JSON document replaced atomically (write a temporary file, sync
//! it, rename it over the old one, sync the directory): a crash leaves either
//! the old or the new document, never a torn one.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

impl FileId {
    /// The identity of an open file or a path's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    dev: u64,
    ino: u64,
    /// Where the file was last seen (for people reading the document).
    path: PathBuf,
    /// Bytes of the file whose lines are delivered.
    offset: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct Document {
    files: Vec<Entry>,
}

/// The checkpoint store of one tail source.
pub struct Checkpoints {
    path: PathBuf,
    offsets: HashMap<FileId, (PathBuf, u64)>,
    dirty: bool,
}

impl Checkpoints {
    /// Load `dir/checkpoints.json`, creating `dir` if needed. A missing
    /// document is an empty store; an unreadable one is an error (starting
    /// over silently would re-send or skip data).
    pub fn load(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create state directory `{}`: {e}", dir.display()))?;
        let path = dir.join("checkpoints.json");
        let doc = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Document>(&bytes).map_err(|e| {
                format!(
                    "checkpoint file `{}` is not valid ({e}); move it away to start over",
                    path.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Document::default(),
            Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
        };
        let offsets = doc
            .files
            .into_iter()
            .map(|e| {
                (
                    FileId {
                        dev: e.dev,
                        ino: e.ino,
                    },
                    (e.path, e.offset),
                )
            })
            .collect();
        Ok(Self {
            path,
            offsets,
            dirty: false,
        })
    }

    /// The delivered offset of a file, if known.
    pub fn get(&self, id: FileId) -> Option<u64> {
        self.offsets.get(&id).map(|(_, o)| *o)
    }

    /// Record a file's delivered offset.
    pub fn set(&mut self, id: FileId, path: &Path, offset: u64) {
        let entry = self.offsets.entry(id).or_insert_with(|| (path.into(), 0));
        if entry.1 != offset || entry.0 != path {
            *entry = (path.into(), offset);
            self.dirty = true;
        }
    }

    /// Forget a file that is gone.
    pub fn remove(&mut self, id: FileId) {
        if self.offsets.remove(&id).is_some() {
            self.dirty = true;
        }
    }

    /// Write the document if anything changed since the last save.
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut files: Vec<Entry> = self
            .offsets
            .iter()
            .map(|(id, (path, offset))| Entry {
                dev: id.dev,
                ino: id.ino,
                path: path.clone(),
                offset: *offset,
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let bytes = serde_json::to_vec_pretty(&Document { files })?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_offsets_load_back_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let id = FileId { dev: 1, ino: 42 };
        let mut c = Checkpoints::load(dir.path()).unwrap();
        assert_eq!(c.get(id), None);
        c.set(id, Path::new("/logs/a.log"), 1234);
        c.save().unwrap();
        let c = Checkpoints::load(dir.path()).unwrap();
        assert_eq!(c.get(id), Some(1234));
        std::fs::write(dir.path().join("checkpoints.json"), b"{not json").unwrap();
        let err = Checkpoints::load(dir.path()).err().unwrap();
        assert!(err.contains("not valid"), "{err}");
    }
}
