//! Shared by the file tail tests: a tail source feeding a stand-in engine
//! that records each event's message and confirms it (or does not).
#![allow(dead_code)] // each test binary uses its own subset

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::{Fate, Payload};
use switchyard_engine::intake;
use switchyard_sources::file_tail::{TailConfig, TailSource};
use tokio::runtime::Runtime;

pub type Got = Arc<Mutex<Vec<String>>>;

/// A running tail source and the lines its stand-in engine received.
pub struct Run {
    pub source: TailSource,
    got: Got,
    engine: tokio::task::JoinHandle<()>,
}

pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

pub fn config(dir: &Path, pattern: &str) -> TailConfig {
    let mut c = TailConfig::new(
        vec![dir.join(pattern).display().to_string()],
        dir.join("state"),
    );
    c.poll_interval = Duration::from_millis(20);
    c.checkpoint_interval = Duration::from_millis(50);
    c
}

/// Start tailing; the stand-in engine confirms lines when `confirm` is true
/// and otherwise lets them go unresolved (lost in flight).
pub fn start(rt: &Runtime, config: TailConfig, confirm: bool) -> Run {
    let (tx, mut rx) = intake(10_000);
    let got: Got = Arc::default();
    let sink = got.clone();
    let engine = rt.spawn(async move {
        while let Some(chunk) = rx.recv().await {
            for mut event in chunk {
                let Payload::Log(rec) = &event.payload else {
                    panic!("a log record")
                };
                sink.lock()
                    .unwrap()
                    .push(rec.message.clone().unwrap_or_default());
                if confirm {
                    event.resolve(Fate::Delivered);
                }
            }
        }
    });
    let source = TailSource::spawn(config, tx, rt.handle().clone()).unwrap();
    Run {
        source,
        got,
        engine,
    }
}

impl Run {
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} lines: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stop(self, rt: &Runtime) -> Vec<String> {
        self.source.stop();
        rt.block_on(self.engine).unwrap();
        self.got.lock().unwrap().clone()
    }
}

pub fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
