//! The Redis LIST log of older proxies, as the spec describes it: `INCR
//! <key>:seq` gives each event its `LogID`, `LPUSH` puts the newest at index
//! 0, `LTRIM` bounds the length, `EXPIRE` sets a TTL; dispatchers keep the
//! highest delivered `LogID` under `llm-proxy-dispatcher:<plugin>:last_id`.
//!
//! Reading is incremental: instead of the whole list, [`read_after`] fetches
//! only the window where the oldest undelivered ids must be.

use super::decode;
use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use serde::Deserialize;
use std::time::Duration;
use switchyard_core::{Event, Payload};

/// Where a LIST log lives and how it is bounded.
#[derive(Debug, Clone)]
pub struct ListConfig {
    /// List key; the counter is `<key>:seq`.
    pub key: String,
    /// `LTRIM <key> 0 <max_len-1>` after each push, when set.
    pub max_len: Option<usize>,
    /// `EXPIRE <key> <ttl>` after each push, when set.
    pub ttl: Option<Duration>,
}

impl ListConfig {
    /// The counter key, `<key>:seq`.
    pub fn seq_key(&self) -> String {
        format!("{}:seq", self.key)
    }

    /// Where a dispatcher keeps the entries it gave up on: the stream
    /// `<key>:dead`, laid out like a Streams dead entry (`id`, `reason`,
    /// `data`) so one reader handles both.
    pub fn dead_stream(&self) -> String {
        format!("{}:dead", self.key)
    }
}

/// Approximate bound (`MAXLEN ~`) of the dead stream `<key>:dead`.
pub const DEAD_MAX_LEN: usize = super::streams::DEFAULT_MAX_LEN;

/// The dispatcher offset key of a plugin: `llm-proxy-dispatcher:<plugin>:last_id`
/// (`default` for an empty name).
pub fn offset_key(plugin: &str) -> String {
    let plugin = if plugin.is_empty() { "default" } else { plugin };
    format!("llm-proxy-dispatcher:{plugin}:last_id")
}

/// Give `events` consecutive `LogID`s (one `INCRBY <key>:seq n`, the batched
/// form of `INCR`) and push them oldest first, so the newest ends at index 0;
/// then trim and expire. Two round trips for the whole batch.
pub async fn push_batch(
    conn: &mut MultiplexedConnection,
    cfg: &ListConfig,
    events: &mut [Event],
) -> RedisResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let last: i64 = redis::cmd("INCRBY")
        .arg(cfg.seq_key())
        .arg(events.len())
        .query_async(conn)
        .await?;
    let first = last - events.len() as i64 + 1;
    let mut lpush = redis::cmd("LPUSH");
    lpush.arg(&cfg.key);
    for (i, event) in events.iter_mut().enumerate() {
        set_log_id(event, first + i as i64);
        let mut json = Vec::with_capacity(512);
        event.write_json(&mut json).map_err(|e| {
            redis::RedisError::from((
                redis::ErrorKind::TypeError,
                "cannot encode event",
                e.to_string(),
            ))
        })?;
        lpush.arg(json);
    }
    let mut pipe = redis::pipe();
    pipe.add_command(lpush).ignore();
    if let Some(n) = cfg.max_len {
        pipe.cmd("LTRIM")
            .arg(&cfg.key)
            .arg(0)
            .arg(n.max(1) as i64 - 1)
            .ignore();
    }
    if let Some(ttl) = cfg.ttl {
        pipe.cmd("EXPIRE")
            .arg(&cfg.key)
            .arg(ttl.as_secs().max(1))
            .ignore();
    }
    pipe.query_async::<()>(conn).await
}

fn set_log_id(event: &mut Event, id: i64) {
    match &mut event.payload {
        Payload::Http(x) => x.log_id = id,
        Payload::Log(r) => {
            let _ = r.fields.insert_value("LogID", &id);
        }
        // A finished payload document is published as it is.
        Payload::Json(_) => {}
    }
}

/// `LRANGE <key> start stop`, raw.
pub async fn range(
    conn: &mut MultiplexedConnection,
    key: &str,
    start: isize,
    stop: isize,
) -> RedisResult<Vec<Vec<u8>>> {
    redis::cmd("LRANGE")
        .arg(key)
        .arg(start)
        .arg(stop)
        .query_async(conn)
        .await
}

/// `LLEN <key>`.
pub async fn count(conn: &mut MultiplexedConnection, key: &str) -> RedisResult<u64> {
    redis::cmd("LLEN").arg(key).query_async(conn).await
}

/// The last `LogID` handed out (`GET <key>:seq`), 0 if none.
pub async fn last_id(conn: &mut MultiplexedConnection, cfg: &ListConfig) -> RedisResult<i64> {
    let v: Option<i64> = redis::cmd("GET")
        .arg(cfg.seq_key())
        .query_async(conn)
        .await?;
    Ok(v.unwrap_or(0))
}

/// The plugin's delivered offset (`GET`), 0 if none.
pub async fn get_offset(conn: &mut MultiplexedConnection, plugin: &str) -> RedisResult<i64> {
    let v: Option<i64> = redis::cmd("GET")
        .arg(offset_key(plugin))
        .query_async(conn)
        .await?;
    Ok(v.unwrap_or(0))
}

/// Store the plugin's delivered offset (`SET`).
pub async fn set_offset(
    conn: &mut MultiplexedConnection,
    plugin: &str,
    id: i64,
) -> RedisResult<()> {
    redis::cmd("SET")
        .arg(offset_key(plugin))
        .arg(id)
        .query_async(conn)
        .await
}

/// What one incremental read found.
#[derive(Debug, Default)]
pub struct ListRead {
    /// Entries with `LogID` > the offset, ascending by `LogID`, at most
    /// `max`: the event, or why an entry with that id cannot be one.
    pub events: Vec<(i64, Result<Event, String>)>,
    /// The last id handed out (`<key>:seq`) when the read began.
    pub last_id: i64,
    /// The window reached already-delivered ids or the list's end, so an id
    /// missing below the first one returned is really missing.
    pub complete: bool,
    /// Entries skipped because they are not JSON or have no integer `LogID`
    /// (they cannot be placed, so the spec's readers skip them).
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(rename = "LogID")]
    log_id: i64,
}

/// Read the oldest events with `LogID` > `after`, at most `max`.
///
/// Ids are assigned before the push, so without gaps the entry with id
/// `after + 1` sits at index `last_id - after - 1`. The window reaches `max`
/// entries newer than that and as many older, which tolerates that many
/// pushes happening between the `GET` and the `LRANGE`.
pub async fn read_after(
    conn: &mut MultiplexedConnection,
    cfg: &ListConfig,
    after: i64,
    max: usize,
) -> RedisResult<ListRead> {
    let max = max.max(1);
    let window = window(conn, cfg, after, max).await?;
    let mut read = ListRead {
        last_id: window.last_id,
        complete: window.short,
        ..Default::default()
    };
    for item in window.raw {
        let id = match serde_json::from_slice::<IdOnly>(&item) {
            Ok(x) => x.log_id,
            Err(e) => {
                read.skipped.push(format!("{e}"));
                continue;
            }
        };
        if id <= after {
            read.complete = true;
            continue;
        }
        read.events.push((id, decode::json(&item)));
    }
    read.events.sort_by_key(|(id, _)| *id);
    read.events.truncate(max);
    Ok(read)
}

/// The raw entries of the window where the ids after `after` must be.
struct Window {
    last_id: i64,
    raw: Vec<Vec<u8>>,
    /// The list ended before the window did.
    short: bool,
}

/// Empty (and `short`) when no id after `after` was handed out yet.
async fn window(
    conn: &mut MultiplexedConnection,
    cfg: &ListConfig,
    after: i64,
    max: usize,
) -> RedisResult<Window> {
    let last = last_id(conn, cfg).await?;
    if last <= after {
        return Ok(Window {
            last_id: last,
            raw: Vec::new(),
            short: true,
        });
    }
    let max = max as i64;
    let lag = last - after;
    let start = (lag - max).max(0);
    let stop = lag - 1 + max;
    let raw = range(conn, &cfg.key, start as isize, stop as isize).await?;
    Ok(Window {
        last_id: last,
        short: (raw.len() as i64) < stop - start + 1,
        raw,
    })
}

/// Keep the entries with the `LogID`s `ids` in the dead stream (`id`,
/// `reason`, then `data`: the entry as it was in the list) and store the
/// plugin's offset `up_to`, in one transaction: the offset never moves past
/// an entry that was not kept. `ids` must lie within the `span` ids after
/// `after`; they are read back from the list, so the caller need not hold
/// their bytes while it waits for their fate. An entry trimmed or expired
/// in the meantime is kept with its id and reason only. Returns how many
/// entries were still in the list.
#[allow(clippy::too_many_arguments)] // one transaction's worth of inputs
pub async fn keep_and_store_offset(
    conn: &mut MultiplexedConnection,
    cfg: &ListConfig,
    plugin: &str,
    after: i64,
    span: usize,
    ids: &[i64],
    reason: &str,
    up_to: i64,
) -> RedisResult<u64> {
    let mut found: Vec<(i64, Vec<u8>)> = Vec::with_capacity(ids.len());
    for item in window(conn, cfg, after, span.max(1)).await?.raw {
        if let Ok(x) = serde_json::from_slice::<IdOnly>(&item) {
            if ids.contains(&x.log_id) && !found.iter().any(|(id, _)| *id == x.log_id) {
                found.push((x.log_id, item));
            }
        }
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    for id in ids {
        let xadd = pipe
            .cmd("XADD")
            .arg(cfg.dead_stream())
            .arg("MAXLEN")
            .arg("~")
            .arg(DEAD_MAX_LEN)
            .arg("*")
            .arg("id")
            .arg(id)
            .arg("reason")
            .arg(reason);
        if let Some((_, raw)) = found.iter().find(|(f, _)| f == id) {
            xadd.arg("data").arg(raw.as_slice());
        }
        xadd.ignore();
    }
    pipe.cmd("SET").arg(offset_key(plugin)).arg(up_to).ignore();
    pipe.query_async::<()>(conn).await?;
    Ok(found.len() as u64)
}
