//! Following one container's logs: ask for everything after the last line
//! sent (`since`), decode the stream, hand each chunk of lines to the intake
//! queue with one acknowledgement batch, and move the container's position
//! past chunks whose outcome is final, in order. A chunk that comes back
//! unresolved (lost in flight) pins the position before it for the rest of
//! the run, so a restart asks for it again.

use super::frames::{Decoder, Output};
use super::Shared;
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::backoff::Backoff;
use switchyard_core::{AckBatch, BatchOutcome, Event, LogRecord, Payload};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

/// A container as the listing describes it.
#[derive(Debug, Clone)]
pub struct Container {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Image it runs.
    pub image: String,
    /// `com.docker.compose.service` label, when started by Compose.
    pub compose_service: Option<String>,
}

/// How one log stream ended.
enum End {
    /// The source is stopping.
    Stopped,
    /// The Engine closed the stream (the container stopped) or no longer
    /// knows the container (it was removed).
    Finished,
}

struct Follower {
    container: Container,
    shared: Arc<Shared>,
    /// Sent chunks waiting for their outcome: the last timestamp in each.
    pending: VecDeque<(OffsetDateTime, oneshot::Receiver<BatchOutcome>)>,
    /// Timestamp of the last line sent: the next request starts after it.
    sent_until: Option<OffsetDateTime>,
    stalled: bool,
}

/// Follow `container` until its stream ends or `stop` turns true, retrying
/// with backoff while the Engine cannot be reached; then wait (bounded) for
/// the outcomes of what was sent.
pub(super) async fn follow(
    container: Container,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let sent_until = shared.positions.get(&container.id);
    let mut f = Follower {
        container,
        shared,
        pending: VecDeque::new(),
        sent_until,
        stalled: false,
    };
    let backoff = Backoff::full_jitter(Duration::from_millis(100));
    let mut retry = 0;
    loop {
        match f.stream_once(&mut stop, &mut retry).await {
            Ok(End::Stopped) => break,
            Ok(End::Finished) => {
                info!(container = %f.container.name, "docker: log stream ended");
                break;
            }
            Err(e) => {
                f.shared.counters.errors.fetch_add(1, Relaxed);
                warn!(container = %f.container.name, error = %e, "docker: log stream failed; will reconnect");
                let wait = backoff.delay(retry, None);
                retry += 1;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break,
                }
            }
        }
    }
    f.drain().await;
}

impl Follower {
    async fn stream_once(
        &mut self,
        stop: &mut watch::Receiver<bool>,
        retry: &mut u32,
    ) -> Result<End, String> {
        let engine = &self.shared.engine;
        let id = &self.container.id;
        let inspect: Inspect = match engine.get_json(&format!("/containers/{id}/json")).await {
            Ok(i) => i,
            // Removed: nothing more will come; the listing decides if it is back.
            Err(e) if e.status == Some(hyper::StatusCode::NOT_FOUND) => return Ok(End::Finished),
            Err(e) => return Err(e.to_string()),
        };
        let since = match self.sent_until {
            // `since` keeps lines at that very time: start one nanosecond on.
            Some(t) => {
                let t = t + Duration::from_nanos(1);
                format!("{}.{:09}", t.unix_timestamp(), t.nanosecond())
            }
            None => "0".into(),
        };
        let path =
            format!("/containers/{id}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since={since}");
        let mut body = engine
            .get(&path)
            .await
            .map_err(|e| e.to_string())?
            .into_body();
        *retry = 0;
        let mut decoder = Decoder::new(!inspect.config.tty, self.shared.config.max_line_bytes);
        let mut settle = tokio::time::interval(Duration::from_millis(100));
        loop {
            let frame = tokio::select! {
                _ = stop.changed() => return Ok(End::Stopped),
                _ = settle.tick() => {
                    self.settle();
                    continue;
                }
                frame = body.frame() => frame,
            };
            let data = match frame {
                None => return Ok(End::Finished),
                Some(Err(e)) => return Err(format!("reading the log stream: {e}")),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers carry no log lines
                },
            };
            let mut lines = Vec::new();
            let cut = decoder
                .feed(&data, &mut |output, line| {
                    lines.push(self.record(output, line))
                })
                .map_err(|e| format!("bad log stream: {}", e.0))?;
            self.shared.counters.cut_lines.fetch_add(cut, Relaxed);
            for chunk in lines.chunks(self.shared.config.chunk_lines) {
                if !self.send(chunk.to_vec(), stop).await {
                    return Ok(End::Stopped);
                }
            }
        }
    }

    /// Turn one line (`<RFC 3339 time> <message>`) into a record. A line
    /// without a readable time (the rest of a cut line) takes the time of the
    /// line before it, so positions still only move forward.
    fn record(&mut self, output: Output, line: &[u8]) -> (OffsetDateTime, LogRecord) {
        let text = String::from_utf8_lossy(line);
        let parsed = text.split_once(' ').and_then(|(ts, msg)| {
            OffsetDateTime::parse(ts, &Rfc3339)
                .ok()
                .map(|t| (t, ts, msg))
        });
        let (at, raw, message) = match parsed {
            Some((t, raw, msg)) => (t, Some(raw), msg),
            None => {
                self.shared.counters.bad_timestamps.fetch_add(1, Relaxed);
                let t = self.sent_until.unwrap_or_else(OffsetDateTime::now_utc);
                (t, None, text.as_ref())
            }
        };
        self.sent_until = Some(self.sent_until.map_or(at, |s| s.max(at)));
        let c = &self.container;
        let mut rec = LogRecord::new(message);
        rec.timestamp = at;
        // Written back exactly as the Engine sent it (nanoseconds and all);
        // an RFC 3339 time that parsed needs no JSON escaping.
        rec.timestamp_raw = raw.map(|r| format!("\"{r}\"").into());
        rec.labels.insert("container_id".into(), c.id.clone());
        rec.labels.insert("container_name".into(), c.name.clone());
        rec.labels.insert("image".into(), c.image.clone());
        if let Some(s) = &c.compose_service {
            rec.labels.insert("compose_service".into(), s.clone());
        }
        rec.labels.insert("stream".into(), output.as_str().into());
        rec.source_type = Some("docker");
        rec.source_id = Some(c.name.clone());
        (at, rec)
    }

    /// Hand one chunk to the intake queue; false if the source stopped or the
    /// queue closed first.
    async fn send(
        &mut self,
        chunk: Vec<(OffsetDateTime, LogRecord)>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let Some(last) = chunk.iter().map(|(t, _)| *t).max() else {
            return true;
        };
        let (batch, outcome) = AckBatch::new();
        let n = chunk.len() as u64;
        let events: Vec<Event> = chunk
            .into_iter()
            .map(|(_, rec)| Event::new(Payload::Log(rec)).with_ack(batch.token()))
            .collect();
        drop(batch);
        self.pending.push_back((last, outcome));
        let sent = tokio::select! {
            r = self.shared.intake.send(events) => r.is_ok(),
            _ = stop.changed() => false,
        };
        if sent {
            self.shared.counters.lines.fetch_add(n, Relaxed);
        }
        sent
    }

    /// Take the outcomes that arrived, in order, and move the position.
    fn settle(&mut self) {
        while let Some((at, rx)) = self.pending.front_mut() {
            let outcome = match rx.try_recv() {
                Ok(o) => Some(o),
                Err(oneshot::error::TryRecvError::Empty) => break,
                Err(oneshot::error::TryRecvError::Closed) => None,
            };
            let at = *at;
            self.pending.pop_front();
            match outcome {
                Some(o) if o.is_final() && !self.stalled => {
                    let c = &self.container;
                    self.shared.positions.set(&c.id, &c.name, at);
                }
                _ => self.stalled = true,
            }
        }
    }

    /// Wait, up to the drain timeout, for every sent chunk's outcome.
    async fn drain(&mut self) {
        let deadline = tokio::time::Instant::now() + self.shared.config.drain_timeout;
        loop {
            self.settle();
            if self.pending.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(container = %self.container.name, chunks = self.pending.len(),
                    "docker: stopped before every line was confirmed; they will be read again");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The part of `GET /containers/{id}/json` that matters here.
#[derive(serde::Deserialize)]
struct Inspect {
    #[serde(rename = "Config")]
    config: InspectConfig,
}

#[derive(serde::Deserialize)]
struct InspectConfig {
    #[serde(rename = "Tty", default)]
    tty: bool,
}
