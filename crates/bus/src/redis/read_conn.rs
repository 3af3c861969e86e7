//! The stream reader's own connection: commands go out packed by the redis
//! crate, replies come back as one [`Bytes`] buffer each, delimited by
//! [`FrameScan`] and never parsed into the crate's `Value` tree (see
//! [`resp`](super::resp) for why). One command at a time; a read that was
//! cut short (timeout, cancellation, I/O error) leaves the connection in an
//! unknown state, so callers drop it and connect again.

use super::link::{connect_with_backoff, is_server_reply};
use super::resp::FrameScan;
use super::settings::{RedisTarget, CONNECT_TIMEOUT};
use bytes::{Bytes, BytesMut};
use redis::{ConnectionAddr, RedisError, RedisResult};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::warn;

/// Smallest read; replies of a thousand entries are megabytes, so the
/// buffer is sized from the previous reply (below).
const MIN_READ: usize = 64 * 1024;
/// Largest single reply accepted: a bound on what a misbehaving server can
/// make this process buffer (a read of `COUNT` entries is far below it
/// unless entries are huge).
const MAX_REPLY: usize = 512 * 1024 * 1024;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One connection speaking RESP2.
pub struct ReadConn {
    io: Box<dyn Stream>,
    buf: BytesMut,
    scan: FrameScan,
    /// Size of the last reply: the next one is likely alike, and reserving
    /// it up front saves regrowing (copying) the buffer while it arrives.
    last_reply: usize,
}

impl ReadConn {
    /// Connect, authenticate and select the database the target names.
    pub async fn connect(target: &RedisTarget) -> RedisResult<Self> {
        let client = target.client().map_err(|e| {
            RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad target", e))
        })?;
        let info = client.get_connection_info();
        let io: Box<dyn Stream> = match &info.addr {
            ConnectionAddr::Tcp(host, port) => {
                let s = timed(
                    CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                Box::new(timed(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path)).await?)
            }
            #[allow(unreachable_patterns)]
            _ => {
                return Err(RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "TLS is not built in",
                )))
            }
        };
        let mut conn = Self {
            io,
            buf: BytesMut::new(),
            scan: FrameScan::default(),
            last_reply: 0,
        };
        let r = &info.redis;
        if let Some(password) = &r.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &r.username {
                auth.arg(user);
            }
            auth.arg(password);
            conn.ok(&auth).await?;
        }
        if r.db != 0 {
            conn.ok(redis::cmd("SELECT").arg(r.db)).await?;
        }
        Ok(conn)
    }

    /// A command whose reply must not be an error.
    async fn ok(&mut self, cmd: &redis::Cmd) -> RedisResult<()> {
        let reply = self.query(cmd, CONNECT_TIMEOUT).await?;
        redis::parse_redis_value(&reply)?.extract_error().map(drop)
    }

    /// Send `cmd` and return its whole reply, unparsed; fails if it takes
    /// longer than `timeout`.
    pub async fn query(&mut self, cmd: &redis::Cmd, timeout: Duration) -> RedisResult<Bytes> {
        timed(timeout, async {
            self.io.write_all(&cmd.get_packed_command()).await?;
            self.receive().await
        })
        .await
    }

    /// Send `cmd` without waiting for its reply, so the server can work on
    /// it while the caller does something else; [`ReadConn::reply`] then
    /// takes the reply. A command of a few hundred bytes fits the socket's
    /// buffer, so this returns at once unless the connection is broken.
    pub async fn send(&mut self, cmd: &redis::Cmd, timeout: Duration) -> RedisResult<()> {
        timed(timeout, self.io.write_all(&cmd.get_packed_command())).await
    }

    /// The whole reply to the command sent last by [`ReadConn::send`],
    /// unparsed; fails if it takes longer than `timeout`.
    pub async fn reply(&mut self, timeout: Duration) -> RedisResult<Bytes> {
        timed(timeout, self.receive()).await
    }

    async fn receive(&mut self) -> RedisResult<Bytes> {
        self.buf.reserve(self.last_reply.max(MIN_READ));
        loop {
            if let Some(len) = self
                .scan
                .scan(&self.buf)
                .map_err(|e| RedisError::from(io::Error::new(io::ErrorKind::InvalidData, e)))?
            {
                self.last_reply = len;
                return Ok(self.buf.split_to(len).freeze());
            }
            if self.buf.len() > MAX_REPLY {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a reply larger than {MAX_REPLY} bytes"),
                )));
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(MIN_READ.max(self.buf.len()));
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "Redis closed the connection",
                )));
            }
        }
    }
}

async fn timed<T, E: Into<RedisError>>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> RedisResult<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(RedisError::from(io::Error::new(
            io::ErrorKind::TimedOut,
            "Redis did not answer in time",
        ))),
    }
}

/// A [`ReadConn`] that heals, like [`Link`](super::Link): connects with the
/// same backoff, and is handed out by value so a read can run on its own
/// task; give it back with [`ReadLink::put`] when the read went well.
pub struct ReadLink {
    target: RedisTarget,
    role: &'static str,
    conn: Option<ReadConn>,
    reconnects: u64,
}

impl ReadLink {
    /// A link for `role` (used in logs).
    pub fn new(target: &RedisTarget, role: &'static str) -> Self {
        Self {
            target: target.clone(),
            role,
            conn: None,
            reconnects: 0,
        }
    }

    /// The connection, connecting (and waiting with backoff) if there is
    /// none.
    pub async fn take(&mut self) -> ReadConn {
        if let Some(c) = self.conn.take() {
            return c;
        }
        let target = &self.target;
        connect_with_backoff(target, self.role, self.reconnects, || {
            ReadConn::connect(target)
        })
        .await
    }

    /// Give back a connection after a command that left it in a known
    /// state: one that succeeded, or that the server refused.
    pub fn put(&mut self, conn: ReadConn) {
        self.conn = Some(conn);
    }

    /// After `error`, give the connection back if the server answered it,
    /// else drop it (the next [`ReadLink::take`] reconnects). Returns
    /// whether it was dropped.
    pub fn settle(&mut self, conn: ReadConn, error: &RedisError) -> bool {
        if is_server_reply(error) {
            self.put(conn);
            return false;
        }
        self.lost(error);
        true
    }

    /// The connection was lost with `error` (dropped or never given back).
    pub fn lost(&mut self, error: &RedisError) {
        self.conn = None;
        self.reconnects += 1;
        warn!(role = self.role, redis = %self.target, error = %super::settings::redact(&error.to_string()), "lost the Redis connection; reconnecting");
    }
}
