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
}

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
    let last = last_id(conn, cfg).await?;
    if last <= after {
        return Ok(ListRead {
            complete: true,
            last_id: last,
            ..Default::default()
        });
    }
    let max = max.max(1) as i64;
    let lag = last - after;
    let start = (lag - max).max(0);
    let stop = lag - 1 + max;
    let raw = range(conn, &cfg.key, start as isize, stop as isize).await?;
    let mut read = ListRead {
        last_id: last,
        complete: (raw.len() as i64) < stop - start + 1,
        ..Default::default()
    };
    for item in raw {
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
    read.events.truncate(max as usize);
    Ok(read)
}
