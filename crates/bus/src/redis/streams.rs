//! The Redis Streams protocol of the spec, one command per method:
//! pipelined `XADD` for publishers, and a consumer [`Group`] for readers
//! (create, read own pending, read new, auto-claim, acknowledge,
//! dead-letter, keep dropped entries, lag).
//!
//! Commands are built by hand (`redis::cmd`) so that what goes on the wire is
//! visible here, byte for byte as the spec writes it.

use super::entry::{self, AutoClaim, RawEntry, StreamId};
use super::read_conn::ReadConn;
use super::resp;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};
use std::time::Duration;

/// Default stream key.
pub const DEFAULT_STREAM: &str = "llm-proxy-events";
/// Default consumer group.
pub const DEFAULT_GROUP: &str = "llm-proxy-dispatchers";
/// Default approximate maximum stream length.
pub const DEFAULT_MAX_LEN: usize = 10_000;
/// How long a read may take beyond its `BLOCK` time before the connection
/// counts as dead.
pub const READ_GRACE: Duration = Duration::from_secs(10);

/// Append `payloads` with one pipelined round trip:
/// `XADD <stream> MAXLEN ~ <max_len> * data <payload>` each.
pub async fn xadd_batch(
    conn: &mut MultiplexedConnection,
    stream: &str,
    max_len: usize,
    payloads: &[Vec<u8>],
) -> RedisResult<()> {
    if payloads.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::Pipeline::with_capacity(payloads.len());
    // Sized up front: growing each command's buffer argument by argument
    // was a quarter of the publisher's cost per event.
    let fixed = "XADD".len() + stream.len() + "MAXLEN~*data".len() + 20;
    for p in payloads {
        let mut cmd = redis::Cmd::with_capacity(8, fixed + p.len());
        cmd.arg("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(max_len)
            .arg("*")
            .arg("data")
            .arg(p.as_slice());
        pipe.add_command(cmd).ignore();
    }
    pipe.query_async::<()>(conn).await
}

/// Settings of one consumer in one group.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Stream key (`REDIS_STREAM_KEY`).
    pub stream: String,
    /// Group name (`REDIS_CONSUMER_GROUP`).
    pub group: String,
    /// This consumer's name (`REDIS_CONSUMER_NAME`).
    pub consumer: String,
    /// Entries per read (`REDIS_STREAM_BATCH_SIZE`).
    pub count: usize,
    /// Longest wait of a read for new entries (`REDIS_STREAM_BLOCK_TIME`).
    pub block: Duration,
    /// Idle time after which another consumer's pending entry is taken over
    /// (`REDIS_STREAM_CLAIM_TIME`).
    pub claim_idle: Duration,
    /// Approximate bound of the dead-letter stream `<stream>:dead`.
    pub dead_max_len: usize,
}

impl GroupConfig {
    /// The spec's defaults for `consumer`.
    pub fn new(consumer: impl Into<String>) -> Self {
        Self {
            stream: DEFAULT_STREAM.into(),
            group: DEFAULT_GROUP.into(),
            consumer: consumer.into(),
            count: 500,
            block: Duration::from_secs(5),
            claim_idle: Duration::from_secs(30),
            dead_max_len: DEFAULT_MAX_LEN,
        }
    }

    /// Where poison entries are kept: `<stream>:dead`.
    pub fn dead_stream(&self) -> String {
        format!("{}:dead", self.stream)
    }
}

/// One consumer of a consumer group. Holds no connection: each call takes
/// the connection to use, so a caller can keep blocking reads and
/// acknowledgements on separate connections.
#[derive(Debug, Clone)]
pub struct Group {
    cfg: GroupConfig,
}

impl Group {
    /// A consumer with these settings.
    pub fn new(cfg: GroupConfig) -> Self {
        Self { cfg }
    }

    /// Its settings.
    pub fn config(&self) -> &GroupConfig {
        &self.cfg
    }

    /// `XGROUP CREATE <stream> <group> 0 MKSTREAM`; an existing group
    /// (`BUSYGROUP`) is fine.
    pub async fn ensure(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        let r: RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.cfg.stream)
            .arg(&self.cfg.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// This consumer's own pending entries after `after` (no blocking):
    /// `XREADGROUP GROUP g c COUNT n STREAMS s <after>`. Empty once all were
    /// re-read.
    pub async fn read_pending(
        &self,
        conn: &mut ReadConn,
        after: StreamId,
    ) -> RedisResult<Vec<RawEntry>> {
        self.read(conn, &after.to_string(), None).await
    }

    /// New entries, waiting up to the block time:
    /// `XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS s >`.
    pub async fn read_new(&self, conn: &mut ReadConn) -> RedisResult<Vec<RawEntry>> {
        self.read(conn, ">", Some(self.cfg.block)).await
    }

    /// [`Group::read_new`] in two steps: send the read now, so Redis
    /// prepares its reply while the caller works, and take the entries
    /// later with [`Group::receive_new`] on the same connection.
    pub async fn send_read_new(&self, conn: &mut ReadConn) -> RedisResult<()> {
        let cmd = self.read_cmd(">", Some(self.cfg.block));
        conn.send(&cmd, READ_GRACE).await
    }

    /// The entries of the read [`Group::send_read_new`] sent.
    pub async fn receive_new(&self, conn: &mut ReadConn) -> RedisResult<Vec<RawEntry>> {
        resp::read_reply(conn.reply(self.cfg.block + READ_GRACE).await?)
    }

    /// Reads go over a [`ReadConn`]: their replies are most of what a
    /// dispatcher receives, and are taken apart without the redis crate's
    /// `Value` tree.
    async fn read(
        &self,
        conn: &mut ReadConn,
        id: &str,
        block: Option<Duration>,
    ) -> RedisResult<Vec<RawEntry>> {
        let cmd = self.read_cmd(id, block);
        let timeout = block.unwrap_or_default() + READ_GRACE;
        resp::read_reply(conn.query(&cmd, timeout).await?)
    }

    fn read_cmd(&self, id: &str, block: Option<Duration>) -> redis::Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.cfg.group)
            .arg(&self.cfg.consumer)
            .arg("COUNT")
            .arg(self.cfg.count);
        if let Some(b) = block {
            // BLOCK 0 would wait forever; keep at least 1 ms.
            cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&self.cfg.stream).arg(id);
        cmd
    }

    /// Take over entries idle longer than the claim time, from `cursor` on:
    /// `XAUTOCLAIM s g c <min-idle-ms> <cursor> COUNT n`.
    pub async fn autoclaim(
        &self,
        conn: &mut MultiplexedConnection,
        cursor: StreamId,
    ) -> RedisResult<AutoClaim> {
        let v: Value = redis::cmd("XAUTOCLAIM")
            .arg(&self.cfg.stream)
            .arg(&self.cfg.group)
            .arg(&self.cfg.consumer)
            .arg(self.cfg.claim_idle.as_millis() as u64)
            .arg(cursor.to_string())
            .arg("COUNT")
            .arg(self.cfg.count)
            .query_async(conn)
            .await?;
        entry::autoclaim_reply(v).map_err(protocol)
    }

    /// `XACK s g id...`; returns how many were pending.
    pub async fn ack(
        &self,
        conn: &mut MultiplexedConnection,
        ids: &[StreamId],
    ) -> RedisResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.cfg.stream).arg(&self.cfg.group);
        for id in ids {
            cmd.arg(id);
        }
        cmd.query_async(conn).await
    }

    /// Keep a poison entry in `<stream>:dead` (its original id, the reason,
    /// then its original fields) and acknowledge it, in one atomic
    /// transaction so it is never acknowledged without being kept.
    pub async fn dead_letter(
        &self,
        conn: &mut MultiplexedConnection,
        entry: &RawEntry,
        reason: &str,
    ) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let xadd = pipe
            .cmd("XADD")
            .arg(self.cfg.dead_stream())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.cfg.dead_max_len)
            .arg("*")
            .arg("id")
            .arg(entry.id.to_string())
            .arg("reason")
            .arg(reason);
        for (k, v) in entry.fields.iter().flatten() {
            xadd.arg(&k[..]).arg(&v[..]);
        }
        xadd.ignore();
        pipe.cmd("XACK")
            .arg(&self.cfg.stream)
            .arg(&self.cfg.group)
            .arg(entry.id.to_string())
            .ignore();
        pipe.query_async::<()>(conn).await
    }

    /// Keep entries the engine gave up on in `<stream>:dead` and acknowledge
    /// them, each in one server-side step (a script runs atomically) so that
    /// none is acknowledged without being kept. The dead entry has the
    /// original id, `reason`, then the original fields, read back from the
    /// stream — the source need not hold every entry's bytes while it waits
    /// for their fate. An entry trimmed from the stream in the meantime is
    /// kept with its id and reason only. Returns how many entries were still
    /// in the stream.
    pub async fn keep_dropped(
        &self,
        conn: &mut MultiplexedConnection,
        ids: &[StreamId],
        reason: &str,
    ) -> RedisResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(KEEP_DROPPED)
            .arg(2)
            .arg(&self.cfg.stream)
            .arg(self.cfg.dead_stream())
            .arg(&self.cfg.group)
            .arg(self.cfg.dead_max_len)
            .arg(reason);
        for id in ids {
            cmd.arg(id);
        }
        cmd.query_async(conn).await
    }

    /// Stream length (`XLEN`) and the group's pending count (`XPENDING`
    /// summary).
    pub async fn lag(&self, conn: &mut MultiplexedConnection) -> RedisResult<(u64, u64)> {
        let (len, summary): (u64, Value) = redis::pipe()
            .cmd("XLEN")
            .arg(&self.cfg.stream)
            .cmd("XPENDING")
            .arg(&self.cfg.stream)
            .arg(&self.cfg.group)
            .query_async(conn)
            .await?;
        let pending = match summary {
            Value::Array(items) => match items.first() {
                Some(Value::Int(n)) => *n as u64,
                _ => 0,
            },
            _ => 0,
        };
        Ok((len, pending))
    }
}

/// `keep_dropped` on the server. KEYS: stream, dead stream. ARGV: group,
/// dead stream bound, reason, ids. The same layout as a poison entry's dead
/// copy (`id`, `reason`, original fields), so one reader handles both.
const KEEP_DROPPED: &str = r#"
local found = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  local dead = {KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', id, 'reason', ARGV[3]}
  local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
  if entry then
    found = found + 1
    for _, v in ipairs(entry[2]) do dead[#dead + 1] = v end
  end
  redis.call('XADD', unpack(dead))
  redis.call('XACK', KEYS[1], ARGV[1], id)
end
return found
"#;

fn protocol(msg: String) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::TypeError, "unexpected stream reply", msg))
}
