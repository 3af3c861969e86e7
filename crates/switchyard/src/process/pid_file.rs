//! `--pid-file`: this process's id in a file, for service managers and for
//! `--detach`, whose parent waits until the file names its child.
//!
//! The file is written once the process is ready (listening), so its
//! presence means "up"; it is written whole to a temporary file and renamed
//! into place, so a reader never sees half of it. It is removed on a normal
//! exit and on a stop at once.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The pid file of `--detach` when `--pid-file` is not given.
pub fn default_path() -> PathBuf {
    PathBuf::from("switchyard-dispatcher.pid")
}

/// Write this process's id, and a newline, to `path`, atomically.
pub fn write(path: &Path) -> anyhow::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|_| std::fs::rename(&tmp, path))
        .with_context(|| {
            format!(
                "cannot write pid file `{}` — check --pid-file",
                path.display()
            )
        })
}

/// The process id in the pid file at `path`, if it holds one.
pub fn read(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Remove the pid file at `path`; one already gone is no error.
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_pid_file_names_this_process_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dispatcher.pid");
        write(&path).unwrap();
        assert_eq!(read(&path), Some(std::process::id()));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        // Only the file itself: the temporary one was renamed into place.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        remove(&path);
        assert_eq!(read(&path), None);
        remove(&path); // twice is fine
    }

    #[test]
    fn a_pid_file_that_holds_no_pid_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.pid");
        std::fs::write(&path, "not a pid\n").unwrap();
        assert_eq!(read(&path), None);
    }

    #[test]
    fn an_unwritable_pid_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("x.pid");
        let e = write(&path).unwrap_err();
        assert!(format!("{e:#}").contains("x.pid"), "{e:#}");
    }
}
