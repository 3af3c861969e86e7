//! A connection that heals: [`Link::get`] hands out a live multiplexed
//! connection, connecting with capped exponential backoff (and jitter, so a
//! fleet of dispatchers does not reconnect in lockstep after a Redis restart)
//! for as long as it takes. A caller that sees a connection-level error calls
//! [`Link::broken`] and asks again. Waiting forever is deliberate: every
//! caller selects on its shutdown signal around `get`.

use super::settings::{redact, RedisTarget, CONNECT_TIMEOUT};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};
use std::time::Duration;
use switchyard_core::backoff::{Backoff, Jitter};
use tracing::{info, warn};

/// Reconnect delays: 100 ms doubling to 5 s, each between half and all of
/// its ceiling.
const RECONNECT: Backoff = Backoff::new(
    Duration::from_millis(100),
    Duration::from_secs(5),
    Jitter::HALF,
);

/// One logical connection to Redis, reconnecting on demand.
pub struct Link {
    client: redis::Client,
    target: RedisTarget,
    role: &'static str,
    config: AsyncConnectionConfig,
    conn: Option<MultiplexedConnection>,
    reconnects: u64,
}

impl Link {
    /// A link for `role` (used in logs: "reader", "acker", "publisher").
    /// `response_timeout` must exceed any `BLOCK` the link's commands use.
    pub fn new(
        target: &RedisTarget,
        role: &'static str,
        response_timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            client: target.client()?,
            target: target.clone(),
            role,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(response_timeout),
            conn: None,
            reconnects: 0,
        })
    }

    /// A live connection; waits (with backoff) until Redis answers.
    pub async fn get(&mut self) -> MultiplexedConnection {
        if let Some(c) = &self.conn {
            return c.clone();
        }
        let (client, config) = (&self.client, &self.config);
        let c = connect_with_backoff(&self.target, self.role, self.reconnects, || {
            client.get_multiplexed_async_connection_with_config(config)
        })
        .await;
        self.conn = Some(c.clone());
        c
    }

    /// Report an error from a command on the current connection. Errors the
    /// server answered (`WRONGTYPE`, `NOGROUP`, ...) leave the connection as
    /// it is; anything else (I/O, timeout, dropped) replaces it on the next
    /// `get`. Returns whether the connection was dropped.
    pub fn broken(&mut self, error: &RedisError) -> bool {
        if is_server_reply(error) {
            return false;
        }
        if self.conn.take().is_some() {
            self.reconnects += 1;
            warn!(role = self.role, redis = %self.target, error = %redact(&error.to_string()), "lost the Redis connection; reconnecting");
        }
        true
    }

    /// Times the connection was lost and replaced.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The endpoint, for messages (password redacted by its `Display`).
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }
}

/// The server answered with an error reply: the connection itself is fine.
pub fn is_server_reply(error: &RedisError) -> bool {
    error.code().is_some()
}

/// Call `connect` until it succeeds, with capped exponential backoff and
/// jitter; loud on the first failure, then once in a while. `reconnects`
/// (how often this role lost its connection before) only decides whether
/// success is worth a log line.
pub async fn connect_with_backoff<T, F, Fut>(
    target: &RedisTarget,
    role: &'static str,
    reconnects: u64,
    mut connect: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RedisError>>,
{
    let mut attempt = 0u32;
    loop {
        match connect().await {
            Ok(c) => {
                if attempt > 0 || reconnects > 0 {
                    info!(role, redis = %target, attempts = attempt + 1, "connected to Redis");
                }
                return c;
            }
            Err(e) => {
                attempt += 1;
                if attempt == 1 || attempt.is_power_of_two() {
                    warn!(role, redis = %target, error = %redact(&e.to_string()), attempt, "cannot connect to Redis; retrying");
                }
                tokio::time::sleep(RECONNECT.delay(attempt - 1, None)).await;
            }
        }
    }
}
