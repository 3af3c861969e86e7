//! The container logs source: follows the stdout and stderr of containers
//! through the Docker Engine API on its unix socket.
//!
//! - **Discovery by listing.** `GET /containers/json` every `list_interval`
//!   finds running containers (filtered by name globs); each new one gets a
//!   follower. A follower ends with its container's log stream, so a
//!   restarted container is picked up again by the next listing.
//! - **Decoding.** Each follower inspects its container for a TTY, then
//!   reads `GET /containers/{id}/logs?follow=1&stdout=1&stderr=1&timestamps=1`
//!   as multiplexed frames (no TTY) or raw text (TTY); see [`frames`].
//! - **Records** keep the Engine's timestamp and carry the labels
//!   `container_id`, `container_name`, `image`, `compose_service` (when set)
//!   and `stream` (`stdout`/`stderr`).
//! - **No loss across restarts.** Each container's position is the Docker
//!   timestamp of its last *acknowledged* line, written atomically to the
//!   state directory; a follower resumes just after it with `since`. Lines
//!   sharing one nanosecond timestamp across a restart could be skipped; the
//!   Engine's timestamps make that practically impossible.
//! - **Reconnects.** An unreachable socket or a broken stream is retried with
//!   exponential backoff and full jitter, without ending the source.
//!
//! # Layout
//! - `client`: one HTTP/1 request per connection over the unix socket (hyper).
//! - [`frames`]: the multiplexed-stream decoder and bounded line splitting.
//! - `follow`: one container's log stream, acknowledgements, position.
//! - `position`: the positions document.

mod client;
mod follow;
pub mod frames;
mod position;
pub mod source;

use client::Engine;
use follow::Container;
use position::Positions;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::backoff::Backoff;
use switchyard_engine::IntakeSender;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// The Engine's usual socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Settings of the container logs source.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The Engine API's unix socket.
    pub socket: PathBuf,
    /// Follow only containers whose name matches one of these globs; empty =
    /// every container.
    pub include: Vec<String>,
    /// Directory of the positions document.
    pub state_dir: PathBuf,
    /// Pause between two listings of the running containers.
    pub list_interval: Duration,
    /// Longest line; longer ones are cut and counted.
    pub max_line_bytes: usize,
    /// Lines per chunk handed to the intake queue.
    pub chunk_lines: usize,
    /// At stop, how long to wait for lines in flight to be confirmed.
    pub drain_timeout: Duration,
}

impl DockerConfig {
    /// Defaults for the Engine at `socket`, with state in `state_dir`.
    pub fn new(socket: PathBuf, state_dir: PathBuf) -> Self {
        Self {
            socket,
            include: Vec::new(),
            state_dir,
            list_interval: Duration::from_secs(5),
            max_line_bytes: 64 * 1024,
            chunk_lines: 1000,
            drain_timeout: Duration::from_secs(10),
        }
    }

    pub(crate) fn validate(&self) -> Result<Vec<glob::Pattern>, String> {
        for (key, v) in [
            ("max_line_bytes", self.max_line_bytes),
            ("chunk_lines", self.chunk_lines),
        ] {
            if v == 0 {
                return Err(format!("docker: `{key}` must be greater than 0"));
            }
        }
        if self.list_interval.is_zero() {
            return Err("docker: `list_interval` must be longer than 0".into());
        }
        self.include
            .iter()
            .map(|p| {
                glob::Pattern::new(p)
                    .map_err(|e| format!("docker: `include` pattern `{p}` is invalid: {e}"))
            })
            .collect()
    }
}

/// What the container logs source has done.
#[derive(Debug, Default)]
pub struct DockerCounters {
    /// Lines sent to the pipeline.
    pub lines: AtomicU64,
    /// Followers started (a container restarted counts again).
    pub containers_followed: AtomicU64,
    /// Lines cut at `max_line_bytes`.
    pub cut_lines: AtomicU64,
    /// Lines without a readable Docker timestamp.
    pub bad_timestamps: AtomicU64,
    /// Failed requests and broken streams (each retried).
    pub errors: AtomicU64,
}

impl DockerCounters {
    /// What the source lost, by reason (the `reason` label of
    /// `dispatcher_component_discarded_events_total`).
    pub fn discards(&self) -> Vec<(&'static str, u64)> {
        vec![("too_long", self.cut_lines.load(Relaxed))]
    }
}

/// What every follower shares.
struct Shared {
    engine: Engine,
    intake: IntakeSender,
    positions: Positions,
    counters: Arc<DockerCounters>,
    config: DockerConfig,
}

/// A running container logs source.
pub struct DockerSource {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    counters: Arc<DockerCounters>,
}

impl DockerSource {
    /// Check the settings, load the positions and start (on the current
    /// tokio runtime). Lines go to `intake`.
    pub fn start(config: DockerConfig, intake: IntakeSender) -> Result<Self, String> {
        let include = config.validate()?;
        let positions = Positions::load(&config.state_dir)?;
        let counters = Arc::new(DockerCounters::default());
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            engine: Engine::new(config.socket.clone()),
            intake,
            positions,
            counters: counters.clone(),
            config,
        });
        let task = tokio::spawn(watch_containers(shared, include, stop_rx));
        Ok(Self {
            stop,
            task,
            counters,
        })
    }

    /// The source's counters.
    pub fn counters(&self) -> Arc<DockerCounters> {
        self.counters.clone()
    }

    /// Stop following, wait (bounded) for lines in flight to be confirmed,
    /// write the positions and return.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One entry of `GET /containers/json`.
#[derive(Deserialize)]
struct Listed {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

impl Listed {
    fn into_container(self) -> Container {
        let name = self
            .names
            .first()
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| self.id.chars().take(12).collect());
        let compose_service = self
            .labels
            .and_then(|mut l| l.remove("com.docker.compose.service"));
        Container {
            id: self.id,
            name,
            image: self.image,
            compose_service,
        }
    }
}

/// List the running containers now and then, follow the new ones, write the
/// positions; at stop, wait for the followers and write them a last time.
async fn watch_containers(
    shared: Arc<Shared>,
    include: Vec<glob::Pattern>,
    mut stop: watch::Receiver<bool>,
) {
    let mut followers: HashMap<String, JoinHandle<()>> = HashMap::new();
    let backoff = Backoff::full_jitter(Duration::from_millis(100));
    let mut retry = 0;
    loop {
        // A follower ends when its container stops; one that panicked is
        // logged and counted here, and followed again at this listing if its
        // container still runs.
        let ended: Vec<String> = followers
            .iter()
            .filter(|(_, f)| f.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            let Some(f) = followers.remove(&id) else {
                continue;
            };
            if let Err(e) = f.await {
                shared.counters.errors.fetch_add(1, Relaxed);
                error!(container = %id, error = %e, "docker: a container's follower failed; following it again");
            }
        }
        let wait = match shared
            .engine
            .get_json::<Vec<Listed>>("/containers/json")
            .await
        {
            Ok(list) => {
                retry = 0;
                for c in list.into_iter().map(Listed::into_container) {
                    let wanted = include.is_empty() || include.iter().any(|p| p.matches(&c.name));
                    if !wanted || followers.contains_key(&c.id) {
                        continue;
                    }
                    info!(container = %c.name, id = %c.id, "docker: following");
                    shared.counters.containers_followed.fetch_add(1, Relaxed);
                    let id = c.id.clone();
                    let task = tokio::spawn(follow::follow(c, shared.clone(), stop.clone()));
                    followers.insert(id, task);
                }
                shared.config.list_interval
            }
            Err(e) => {
                shared.counters.errors.fetch_add(1, Relaxed);
                warn!(socket = %shared.engine.socket().display(), error = %e, "docker: cannot list containers; will retry");
                retry += 1;
                backoff
                    .delay(retry - 1, None)
                    .max(Duration::from_millis(10))
            }
        };
        save(&shared);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    for (_, f) in followers {
        let _ = f.await;
    }
    save(&shared);
}

fn save(shared: &Shared) {
    if let Err(e) = shared.positions.save() {
        shared.counters.errors.fetch_add(1, Relaxed);
        warn!(dir = %shared.config.state_dir.display(), error = %e, "docker: cannot write positions");
    }
}
