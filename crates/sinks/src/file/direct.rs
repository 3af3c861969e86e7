//! Appending without the page cache (`direct=true`): whole 4 KiB blocks go
//! to the device from an aligned buffer with `O_DIRECT`, and only the last,
//! partial block of each write goes through the page cache.
//!
//! Why: a buffered append copies every byte into a page-cache page first.
//! On a VM whose host takes back free guest memory, that copy is the most
//! expensive step of the file sink (1 GB through `dd conv=fdatasync` took
//! 2.6 s of system time, against 0.12 s with `oflag=direct`).
//!
//! How a write goes, with `end` the file's length and `base` the start of
//! its last partial block:
//! 1. the partial block's bytes (kept in memory) are put right before the
//!    new bytes, at an aligned address: in the batch's own buffer when it was
//!    laid out for that ([`Lines::after_partial_block`]), else both are
//!    copied into an aligned buffer of the file's;
//! 2. the whole blocks of that buffer are written at `base` with `O_DIRECT`
//!    (rewriting the partial block's old bytes unchanged);
//! 3. the new partial block, if any, is written through the page cache.
//!
//! The file's length grows only by real bytes, never by padding, so a reader
//! sees a prefix of the lines at any time. The caller's `fdatasync` covers
//! both kinds of write. Each append first checks the file's length: after a
//! truncation (`copytruncate`) or another process's append it goes on from
//! the real end. Writers appending at the same moment are not supported —
//! that needs `O_APPEND`, which `O_DIRECT` writes cannot use.
//!
//! A file system that refuses `O_DIRECT` (ramfs, tmpfs before Linux 6.6)
//! gets buffered appends instead, with a warning.

use super::lines::Lines;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Alignment of offsets, lengths and buffer addresses: the largest logical
/// block size in common use, so it suits 512-byte devices too.
pub const BLOCK: usize = 4096;

/// An append-only file written with `O_DIRECT` where it can be.
pub struct DirectFile {
    /// Buffered handle: the partial last block, reads, `fdatasync`.
    file: File,
    /// `O_DIRECT` handle, or `None` once the file system refused it.
    direct: Option<File>,
    /// The file's length.
    end: u64,
    /// Bytes of the partial last block (`end - tail.len()` is aligned).
    tail: Vec<u8>,
    buf: AlignedBuf,
    /// Direct appends whose lines had to be copied into `buf`.
    copied: u64,
}

impl DirectFile {
    /// Open (creating) `path` to append to it. `Ok((file, None))` when
    /// direct writes are in use; `Some(reason)` when the file system refused
    /// them and appends will be buffered.
    pub fn open(path: &Path) -> io::Result<(Self, Option<io::Error>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let (direct, refused) = match open_direct(path) {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e)),
        };
        let mut f = Self {
            file,
            direct,
            end: 0,
            tail: Vec::new(),
            buf: AlignedBuf::default(),
            copied: 0,
        };
        let end = f.file.metadata()?.len();
        f.resume_at(end)?;
        Ok((f, refused))
    }

    /// Take `end` as the file's length and read its partial last block.
    fn resume_at(&mut self, end: u64) -> io::Result<()> {
        let base = end - end % BLOCK as u64;
        self.tail.resize((end - base) as usize, 0);
        self.file.read_exact_at(&mut self.tail, base)?;
        self.end = end;
        Ok(())
    }

    /// The buffered handle (for `fdatasync` and page-cache advice).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether writes still bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Bytes of the file's partial last block: where the next append
    /// starts within a block.
    pub fn tail_len(&self) -> usize {
        self.tail.len()
    }

    /// Direct appends so far whose lines were copied rather than written
    /// from their own buffer.
    pub fn copied_appends(&self) -> u64 {
        self.copied
    }

    /// Append `lines`. `Ok(Some(reason))` when the file system refused a
    /// direct write: the lines were appended through the page cache and
    /// every later append will be too.
    ///
    /// When `lines` has room for the partial last block right before it at
    /// an aligned address ([`Lines::after_partial_block`] with
    /// [`DirectFile::tail_len`]), the whole blocks go to the device from that
    /// buffer; otherwise they are copied into one of this file's first.
    pub fn append(&mut self, lines: &mut Lines) -> io::Result<Option<io::Error>> {
        // Someone else truncated the file (`logrotate`'s `copytruncate`) or
        // appended to it: go on from its real end rather than write at an
        // offset of our own that no longer holds (a hole of zeros, or lines
        // overwritten).
        let actual = self.file.metadata()?.len();
        if actual != self.end {
            self.resume_at(actual)?;
        }
        let Some(direct) = &self.direct else {
            self.file.write_all_at(lines.bytes(), self.end)?;
            self.end += lines.len() as u64;
            return Ok(None);
        };
        let base = self.end - self.tail.len() as u64;
        let total = self.tail.len() + lines.len();
        let whole = total - total % BLOCK;
        let staged: &[u8] = if lines.take_prefix(&self.tail) {
            lines.with_prefix(self.tail.len())
        } else {
            self.copied += 1;
            let buf = self.buf.get(total);
            buf[..self.tail.len()].copy_from_slice(&self.tail);
            buf[self.tail.len()..].copy_from_slice(lines.bytes());
            buf
        };
        let new = &staged[self.tail.len()..];
        if whole > 0 {
            if let Err(e) = direct.write_all_at(&staged[..whole], base) {
                if e.kind() != io::ErrorKind::InvalidInput {
                    return Err(e);
                }
                // Refused at write time (alignment the device does not
                // accept): from now on, buffered appends.
                self.direct = None;
                self.file.write_all_at(new, self.end)?;
                self.end += new.len() as u64;
                self.tail.clear();
                return Ok(Some(e));
            }
        }
        self.file
            .write_all_at(&staged[whole..total], base + whole as u64)?;
        self.end += new.len() as u64;
        self.tail.clear();
        self.tail.extend_from_slice(&staged[whole..total]);
        Ok(None)
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn open_direct(_path: &Path) -> io::Result<File> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "O_DIRECT is not available on this platform",
    ))
}

/// A reusable buffer whose usable part starts at a [`BLOCK`]-aligned address.
#[derive(Default)]
struct AlignedBuf {
    raw: Vec<u8>,
}

impl AlignedBuf {
    /// At least `len` aligned bytes (contents unspecified).
    fn get(&mut self, len: usize) -> &mut [u8] {
        let need = len + BLOCK;
        if self.raw.len() < need {
            self.raw.resize(need, 0);
        }
        let start = self.raw.as_ptr().align_offset(BLOCK);
        &mut self.raw[start..start + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a test lays out the lines it appends.
    #[derive(Clone, Copy)]
    enum Layout {
        /// Room for the partial block, as the sink makes it.
        InPlace,
        /// No room: the append copies.
        Copied,
        /// Room for a partial block of the wrong length: the append copies.
        WrongGuess,
    }

    fn put(f: &mut DirectFile, bytes: &[u8], layout: Layout) -> Option<io::Error> {
        let mut lines = match layout {
            Layout::InPlace => Lines::after_partial_block(bytes.len(), f.tail_len()),
            Layout::Copied => Lines::with_capacity(bytes.len()),
            Layout::WrongGuess => Lines::after_partial_block(bytes.len(), f.tail_len() + 1),
        };
        lines.buf().extend_from_slice(bytes);
        f.append(&mut lines).unwrap()
    }

    fn contents(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    /// Lines of uneven lengths, so writes end at every offset in a block.
    fn line(i: usize) -> Vec<u8> {
        let mut l = format!("{{\"n\":{i},\"pad\":\"").into_bytes();
        l.extend(std::iter::repeat_n(b'x', (i * 37) % 5000));
        l.extend_from_slice(b"\"}\n");
        l
    }

    #[test]
    fn appends_read_back_exactly_and_the_length_never_holds_padding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let (mut f, _) = DirectFile::open(&path).unwrap();
        let mut expected = Vec::new();
        for i in 0..300 {
            let batch: Vec<u8> = (0..(i % 7) + 1).flat_map(|j| line(i * 10 + j)).collect();
            let layout = [Layout::InPlace, Layout::Copied, Layout::WrongGuess][i % 3];
            let copied = f.copied_appends();
            assert!(put(&mut f, &batch, layout).is_none());
            if f.is_direct() {
                let copies = u64::from(!matches!(layout, Layout::InPlace));
                assert_eq!(f.copied_appends(), copied + copies, "append {i}");
            }
            expected.extend_from_slice(&batch);
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                expected.len() as u64
            );
        }
        f.file().sync_data().unwrap();
        assert_eq!(contents(&path), expected);
    }

    #[test]
    fn reopening_continues_after_the_existing_partial_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(&path, b"kept from before\n".repeat(300)).unwrap();
        let mut expected = contents(&path);
        assert_ne!(expected.len() % BLOCK, 0);
        for round in 0..3 {
            let (mut f, _) = DirectFile::open(&path).unwrap();
            for i in 0..50 {
                let l = line(round * 100 + i);
                put(&mut f, &l, Layout::InPlace);
                expected.extend_from_slice(&l);
            }
        }
        assert_eq!(contents(&path), expected);
    }

    #[test]
    fn a_truncation_or_an_append_from_outside_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let (mut f, _) = DirectFile::open(&path).unwrap();
        put(&mut f, &line(3000).repeat(3), Layout::InPlace);
        // `copytruncate`: the file is emptied under the writer.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        put(&mut f, b"after truncation\n", Layout::InPlace);
        assert_eq!(contents(&path), b"after truncation\n");
        // Another process appends a line.
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"from outside\n")
            .unwrap();
        put(&mut f, b"ours again\n", Layout::InPlace);
        assert_eq!(
            contents(&path),
            b"after truncation\nfrom outside\nours again\n"
        );
    }

    #[test]
    fn uses_o_direct_where_the_file_system_has_it() {
        // A temp dir on ramfs (or an older tmpfs) refuses O_DIRECT: then buffered appends are
        // what is checked.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let (mut f, refused) = DirectFile::open(&path).unwrap();
        if let Some(e) = &refused {
            eprintln!("O_DIRECT refused here ({e}); buffered appends tested instead");
        }
        let big = line(4999).repeat(20);
        assert!(put(&mut f, &big, Layout::InPlace).is_none());
        assert!(put(&mut f, b"last\n", Layout::Copied).is_none());
        assert_eq!(f.is_direct(), refused.is_none());
        let mut expected = big.clone();
        expected.extend_from_slice(b"last\n");
        assert_eq!(contents(&path), expected);
    }
}
