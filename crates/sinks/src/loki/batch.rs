//! From a batch of entries to pushes: group by label set, sort each stream
//! by time, apply the out-of-order policy, then cut into pushes bounded in
//! entries and bytes.
//!
//! Pushes are cut stream after stream, entries in order, so when one stream
//! spans two pushes the second holds its later entries; the sink sends the
//! pushes one after another, which keeps each stream in order at Loki.

use super::entry::Entry;
use super::labels::prometheus_text;
use super::order::{LastPushed, Policy};
use std::collections::HashMap;
use switchyard_core::SinkError;

/// Entries sharing one label set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The label set in Prometheus text form (the stream's identity).
    pub labels: String,
    /// The same labels as pairs, sorted by name.
    pub pairs: Vec<(String, String)>,
    /// Entries, sorted by time once [`Streams::finish`] ran.
    pub entries: Vec<Entry>,
}

/// Streams of one batch, in the order their first entry came.
#[derive(Debug, Default)]
pub struct Streams {
    streams: Vec<Stream>,
    by_labels: HashMap<String, usize>,
}

impl Streams {
    /// Add `entry` to the stream of `pairs` (sorted by name).
    pub fn add(&mut self, pairs: Vec<(&str, String)>, entry: Entry) {
        let view: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let labels = prometheus_text(&view);
        let at = match self.by_labels.get(&labels) {
            Some(&at) => at,
            None => {
                self.streams.push(Stream {
                    labels: labels.clone(),
                    pairs: pairs.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
                    entries: Vec::new(),
                });
                self.by_labels.insert(labels, self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        self.streams[at].entries.push(entry);
    }

    /// Sort every stream by time (stable: equal times keep arrival order)
    /// and apply `policy` against what was already delivered. Returns the
    /// streams and the entries the policy dropped, as permanent failures.
    pub fn finish(
        mut self,
        policy: Policy,
        last: &LastPushed,
    ) -> (Vec<Stream>, Vec<(usize, SinkError)>) {
        let mut dropped = Vec::new();
        for stream in &mut self.streams {
            stream.entries.sort_by_key(|e| e.ts);
            let Some(newest) = last.get(&stream.labels) else {
                continue;
            };
            match policy {
                Policy::Accept => {}
                Policy::RewriteTimestamp => {
                    for e in stream.entries.iter_mut().take_while(|e| e.ts < newest) {
                        e.ts = newest;
                    }
                }
                Policy::Drop => {
                    let old = stream.entries.partition_point(|e| e.ts < newest);
                    for e in stream.entries.drain(..old) {
                        dropped.push((
                            e.index,
                            SinkError::permanent(format!(
                                "loki: entry at {} ns is older than the last one pushed to stream {} ({newest} ns); dropped by out-of-order=drop",
                                e.ts, stream.labels
                            )),
                        ));
                    }
                }
            }
        }
        self.streams.retain(|s| !s.entries.is_empty());
        (self.streams, dropped)
    }
}

/// Part of one stream inside a push.
#[derive(Debug, Clone, Copy)]
pub struct Slice<'a> {
    /// The stream.
    pub stream: &'a Stream,
    /// Its entries in this push, in time order.
    pub entries: &'a [Entry],
}

/// Bytes an entry is counted for: its line plus room for the timestamp and
/// framing. An estimate of the uncompressed body, which is what the bound is for.
fn entry_bytes(e: &Entry) -> usize {
    e.line.len() + 16
}

/// Cut `streams` into pushes of at most `max_events` entries and about
/// `max_bytes` bytes; an entry larger than `max_bytes` on its own goes alone.
pub fn pushes(streams: &[Stream], max_events: usize, max_bytes: usize) -> Vec<Vec<Slice<'_>>> {
    let mut out = Vec::new();
    let mut push: Vec<Slice> = Vec::new();
    let (mut events, mut bytes) = (0usize, 0usize);
    for stream in streams {
        let header = stream.labels.len() + 16;
        let mut start = 0;
        for (i, e) in stream.entries.iter().enumerate() {
            // A stream's first entry in a push also pays for its labels.
            let mut size = entry_bytes(e) + if i == start { header } else { 0 };
            if events > 0 && (events + 1 > max_events || bytes + size > max_bytes) {
                if i > start {
                    push.push(Slice {
                        stream,
                        entries: &stream.entries[start..i],
                    });
                }
                out.push(std::mem::take(&mut push));
                start = i;
                events = 0;
                bytes = 0;
                size = entry_bytes(e) + header;
            }
            events += 1;
            bytes += size;
        }
        if start < stream.entries.len() {
            push.push(Slice {
                stream,
                entries: &stream.entries[start..],
            });
        }
    }
    if !push.is_empty() {
        out.push(push);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: usize, ts: i128) -> Entry {
        Entry {
            index,
            ts,
            line: format!("line {index}"),
        }
    }

    fn streams(items: &[(&str, usize, i128)]) -> Streams {
        let mut s = Streams::default();
        for (app, index, ts) in items {
            s.add(vec![("app", app.to_string())], entry(*index, *ts));
        }
        s
    }

    fn shape(streams: &[Stream]) -> Vec<(String, Vec<(usize, i128)>)> {
        streams
            .iter()
            .map(|s| {
                (
                    s.labels.clone(),
                    s.entries.iter().map(|e| (e.index, e.ts)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn groups_by_label_set_and_sorts_each_stream() {
        let s = streams(&[
            ("a", 0, 30),
            ("b", 1, 5),
            ("a", 2, 10),
            ("a", 3, 30),
            ("b", 4, 1),
        ]);
        let (out, dropped) = s.finish(Policy::Accept, &LastPushed::new(10));
        assert!(dropped.is_empty());
        assert_eq!(
            shape(&out),
            vec![
                (r#"{app="a"}"#.into(), vec![(2, 10), (0, 30), (3, 30)]),
                (r#"{app="b"}"#.into(), vec![(4, 1), (1, 5)]),
            ]
        );
    }

    #[test]
    fn policies_against_the_last_delivered_entry() {
        let last = LastPushed::new(10);
        last.delivered(r#"{app="a"}"#, 20);
        let items = [("a", 0, 10), ("a", 1, 20), ("a", 2, 30), ("b", 3, 1)];

        let (out, dropped) = streams(&items).finish(Policy::Accept, &last);
        assert!(dropped.is_empty());
        assert_eq!(shape(&out)[0].1, vec![(0, 10), (1, 20), (2, 30)]);

        let (out, dropped) = streams(&items).finish(Policy::RewriteTimestamp, &last);
        assert!(dropped.is_empty());
        assert_eq!(shape(&out)[0].1, vec![(0, 20), (1, 20), (2, 30)]);

        let (out, dropped) = streams(&items).finish(Policy::Drop, &last);
        assert_eq!(
            shape(&out)[0].1,
            vec![(1, 20), (2, 30)],
            "equal times are in order"
        );
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].0, 0);
        assert!(
            dropped[0].1.message.contains("out-of-order=drop"),
            "{}",
            dropped[0].1
        );

        let only_old = [("a", 0, 5)];
        let (out, dropped) = streams(&only_old).finish(Policy::Drop, &last);
        assert!(
            out.is_empty() && dropped.len() == 1,
            "an emptied stream is not sent"
        );
    }

    #[test]
    fn pushes_respect_entry_and_byte_bounds_and_keep_stream_order() {
        let items: Vec<(&str, usize, i128)> = (0..5)
            .map(|i| ("a", i, i as i128))
            .chain((5..7).map(|i| ("b", i, i as i128)))
            .collect();
        let (out, _) = streams(&items).finish(Policy::Accept, &LastPushed::new(10));
        let cut = pushes(&out, 3, usize::MAX);
        let got: Vec<Vec<(String, Vec<usize>)>> = cut
            .iter()
            .map(|p| {
                p.iter()
                    .map(|s| {
                        (
                            s.stream.labels.clone(),
                            s.entries.iter().map(|e| e.index).collect(),
                        )
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            got,
            vec![
                vec![(r#"{app="a"}"#.into(), vec![0, 1, 2])],
                vec![
                    (r#"{app="a"}"#.into(), vec![3, 4]),
                    (r#"{app="b"}"#.into(), vec![5])
                ],
                vec![(r#"{app="b"}"#.into(), vec![6])],
            ]
        );
        // Each entry is 6 + 16 bytes, each stream header 9 + 16: two entries fit in 80.
        let cut = pushes(&out, 1000, 80);
        assert!(cut
            .iter()
            .all(|p| p.iter().map(|s| s.entries.len()).sum::<usize>() <= 2));
        assert_eq!(
            cut.iter().flatten().map(|s| s.entries.len()).sum::<usize>(),
            7
        );
        // An entry over the byte bound still goes, alone.
        let cut = pushes(&out, 1000, 1);
        assert_eq!(cut.len(), 7);
    }
}
