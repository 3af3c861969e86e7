//! Multiline joining: a line matching the start pattern begins an event, the
//! lines after it that do not match belong to it (a stack trace under its
//! exception line, a traceback under its header).
//!
//! An event is the file's text from its first line to its last, so it is one
//! contiguous byte range of the read buffer and covers exactly the file bytes
//! of its lines: the checkpoint logic stays "a position moves past a range
//! once the range's event is final". The last event of a read is still open
//! (its next line may be a continuation); the reader keeps its bytes and reads
//! them again with what follows, which is why an open event costs nothing to
//! resume after a restart: its start is where the checkpoint stands.

use regex::bytes::Regex;
use std::ops::Range;

/// Settings of multiline joining.
#[derive(Debug, Clone)]
pub struct MultilineConfig {
    /// A line matching this regular expression starts a new event.
    pub start: String,
    /// Most lines in one event; the event is cut there (and counted).
    pub max_lines: usize,
    /// Most bytes in one event; the event is cut before the line that would
    /// pass it (and counted).
    pub max_bytes: usize,
}

impl MultilineConfig {
    /// Join on `start` with the default bounds (500 lines, 256 KiB).
    pub fn new(start: impl Into<String>) -> Self {
        Self {
            start: start.into(),
            max_lines: 500,
            max_bytes: 256 * 1024,
        }
    }

    /// Compile the pattern; errors name the setting at fault.
    pub(super) fn build(&self) -> Result<Multiline, String> {
        let start = Regex::new(&self.start).map_err(|e| {
            format!(
                "file tail: `multiline.start` pattern `{}` is invalid: {e}",
                self.start
            )
        })?;
        for (key, v) in [("max_lines", self.max_lines), ("max_bytes", self.max_bytes)] {
            if v == 0 {
                return Err(format!(
                    "file tail: `multiline.{key}` must be greater than 0"
                ));
            }
        }
        Ok(Multiline {
            start,
            max_lines: self.max_lines,
            max_bytes: self.max_bytes,
        })
    }
}

/// The compiled joiner.
#[derive(Debug, Clone)]
pub struct Multiline {
    start: Regex,
    max_lines: usize,
    max_bytes: usize,
}

/// The event being built.
struct Open {
    bytes: Range<usize>,
    lines: usize,
}

impl Multiline {
    /// Group `lines` (ranges of `buf`, in order) into events: closed events
    /// are pushed to `events`, and the last, still open one is returned. The
    /// number of events cut at a bound is added to `cut`.
    pub fn group(
        &self,
        buf: &[u8],
        lines: &[Range<usize>],
        events: &mut Vec<Range<usize>>,
        cut: &mut u64,
    ) -> Option<Range<usize>> {
        let mut open: Option<Open> = None;
        for line in lines {
            if let Some(o) = &mut open {
                let starts = self.start.is_match(&buf[line.clone()]);
                let over =
                    o.lines + 1 > self.max_lines || line.end - o.bytes.start > self.max_bytes;
                if !starts && !over {
                    o.bytes.end = line.end;
                    o.lines += 1;
                    continue;
                }
                if !starts {
                    *cut += 1;
                }
                events.push(o.bytes.clone());
            }
            open = Some(Open {
                bytes: line.clone(),
                lines: 1,
            });
        }
        open.map(|o| o.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(text: &str, config: MultilineConfig) -> (Vec<&str>, Option<&str>, u64) {
        let ml = config.build().unwrap();
        let mut lines = Vec::new();
        let mut at = 0;
        for l in text.split_inclusive('\n') {
            lines.push(at..at + l.trim_end_matches('\n').len());
            at += l.len();
        }
        let (mut events, mut cut) = (Vec::new(), 0);
        let open = ml.group(text.as_bytes(), &lines, &mut events, &mut cut);
        let events = events.into_iter().map(|r| &text[r]).collect();
        (events, open.map(|r| &text[r]), cut)
    }

    #[test]
    fn continuation_lines_join_their_start_line() {
        let text =
            "2026-01-01 ERROR boom\n  at a.B(C.java:1)\n  at d.E(F.java:2)\n2026-01-01 INFO ok\n";
        let (events, open, cut) = join(text, MultilineConfig::new(r"^\d{4}-"));
        assert_eq!(
            events,
            ["2026-01-01 ERROR boom\n  at a.B(C.java:1)\n  at d.E(F.java:2)"]
        );
        assert_eq!(open, Some("2026-01-01 INFO ok"));
        assert_eq!(cut, 0);
    }

    #[test]
    fn lines_before_the_first_start_line_form_their_own_event() {
        let (events, open, _) = join("orphan\nmore\nSTART x\n", MultilineConfig::new("^START"));
        assert_eq!(events, ["orphan\nmore"]);
        assert_eq!(open, Some("START x"));
    }

    #[test]
    fn events_are_cut_at_max_lines_and_max_bytes() {
        let mut config = MultilineConfig::new("^S");
        config.max_lines = 2;
        let (events, open, cut) = join("S1\na\nb\nc\n", config.clone());
        assert_eq!(events, ["S1\na"]);
        assert_eq!(open, Some("b\nc"));
        assert_eq!(cut, 1);

        config.max_lines = 100;
        config.max_bytes = 6;
        let (events, open, cut) = join("S1\nab\ncd\n", config);
        assert_eq!(events, ["S1\nab"]);
        assert_eq!(open, Some("cd"));
        assert_eq!(cut, 1);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let err = MultilineConfig::new("(").build().unwrap_err();
        assert!(err.contains("multiline.start"), "{err}");
        let mut c = MultilineConfig::new("^x");
        c.max_lines = 0;
        assert!(c.build().unwrap_err().contains("multiline.max_lines"));
    }
}
