//! Standard output for commands that print results, where the reader may
//! go away early (`switchyard dlq list | head`).
//!
//! Rust ignores `SIGPIPE`, so a write to a closed pipe fails with
//! `BrokenPipe`: `println!` panics on it, and `?` would report it as an
//! error. A reader that stopped reading has what it wanted, so the command
//! stops printing and ends quietly with its own status, as `rg` and the
//! coreutils do.

use std::io::{self, Write};

/// Marks the `BrokenPipe` of standard output, so that only that one ends a
/// command quietly (a broken pipe to a sink or a peer is a real error).
#[derive(Debug)]
struct ReaderGone;

impl std::fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed by its reader")
    }
}

impl std::error::Error for ReaderGone {}

/// Locked standard output whose `BrokenPipe` errors [`reader_gone`] knows.
pub struct Stdout(io::StdoutLock<'static>);

/// Standard output, locked for this command.
pub fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

fn mark(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, ReaderGone)
    } else {
        e
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark)
    }
}

/// Print one line at the end of a run (the final counters): a closed or
/// failing standard output loses the line, never the run's exit.
pub fn final_line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stdout(), "{args}");
}

/// Whether `e` is standard output's reader having gone away.
pub fn reader_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<ReaderGone>())
    })
}

/// Print `text` and a newline to standard output and flush; `Ok` also when
/// the reader has gone away.
pub fn print_line(text: &str) -> anyhow::Result<()> {
    let mut out = stdout();
    quiet_if_gone(writeln!(out, "{text}").and_then(|()| out.flush()))
}

/// `Ok` when `result` failed only because standard output's reader left.
pub fn quiet_if_gone(result: io::Result<()>) -> anyhow::Result<()> {
    match result.map_err(anyhow::Error::from) {
        Err(e) if reader_gone(&e) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_marked_broken_pipe_counts_as_the_reader_gone() {
        let marked = anyhow::Error::from(mark(io::Error::from(io::ErrorKind::BrokenPipe)));
        assert!(reader_gone(&marked));
        assert!(reader_gone(&marked.context("printing the list")));
        // A broken pipe elsewhere (a sink's socket) stays an error.
        let other = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!reader_gone(&other));
        let other = anyhow::Error::from(mark(io::Error::from(io::ErrorKind::PermissionDenied)));
        assert!(!reader_gone(&other));
    }
}
