//! A throwaway `redis-server` for tests: loopback only, no persistence, its own
//! temporary directory, an ephemeral port that stays the same across
//! [`RedisServer::restart`] so clients can reconnect. Killed on drop.
//!
//! Tests never touch a Redis on the default port 6379.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped) private `redis-server`.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a server on a free loopback port.
    ///
    /// Panics with the reason when `redis-server` is missing or does not come up:
    /// a test cannot do anything useful without it.
    pub fn start() -> Self {
        // Bind-and-release finds a free port; the tiny race with other tests is
        // retried below by picking another port.
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self {
                port,
                dir: tempfile::tempdir().expect("a temporary directory for redis-server"),
                child: None,
            };
            if server.spawn().is_ok() {
                return server;
            }
        }
        panic!("redis-server did not start on any free port (is it installed?)");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `127.0.0.1:<port>`, the `REDIS_ADDR` form.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kill the server (SIGKILL: no save, no goodbye). Data is lost — the
    /// server runs without persistence.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restart like a Redis that persists its data: write an RDB snapshot
    /// into the server's directory, kill the server, start it again on the
    /// same port; the new server loads the snapshot. Clients see their
    /// connections drop and must reconnect.
    pub fn restart_keeping_data(&mut self) {
        self.command(&["SAVE"]).expect("SAVE before restart");
        self.stop();
        self.spawn()
            .expect("redis-server restarts on the same port");
    }

    /// Start the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.path().join("dump.rdb"));
        self.spawn()
            .expect("redis-server restarts on the same port");
    }

    /// Start it again after [`RedisServer::stop`], loading whatever snapshot
    /// a previous [`RedisServer::save`] left.
    pub fn start_again(&mut self) {
        self.spawn()
            .expect("redis-server restarts on the same port");
    }

    /// Write an RDB snapshot now (the server never saves on its own).
    pub fn save(&self) {
        self.command(&["SAVE"]).expect("SAVE");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.path().to_str().ok_or("temp dir is not UTF-8")?;
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--dir", dir])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("redis-server exited early: {status}"));
                }
            }
            if self.command(&["PING"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err("redis-server did not answer PING in time".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run one command over a fresh connection and return the reply rendered
    /// as text (integers and bulk strings as they are, arrays one item per
    /// line, nil as `(nil)`). Independent of the code under test, so tests can
    /// check raw keys and fields with it.
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream
            .write_all(req.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut out = String::new();
        read_reply(&mut reader, &mut out)?;
        Ok(out.trim_end_matches('\n').to_string())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Minimal RESP2 reader, enough for test assertions.
fn read_reply(r: &mut impl BufRead, out: &mut String) -> Result<(), String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1.min(line.len()));
    match kind {
        "+" | ":" => {
            out.push_str(rest);
            out.push('\n');
        }
        "-" => return Err(rest.to_string()),
        "$" => {
            let n: i64 = rest
                .parse()
                .map_err(|_| format!("bad bulk length {rest}"))?;
            if n < 0 {
                out.push_str("(nil)\n");
            } else {
                let mut buf = vec![0; n as usize + 2];
                std::io::Read::read_exact(r, &mut buf).map_err(|e| e.to_string())?;
                buf.truncate(n as usize);
                out.push_str(&String::from_utf8_lossy(&buf));
                out.push('\n');
            }
        }
        "*" => {
            let n: i64 = rest
                .parse()
                .map_err(|_| format!("bad array length {rest}"))?;
            if n < 0 {
                out.push_str("(nil)\n");
            }
            for _ in 0..n.max(0) {
                read_reply(r, out)?;
            }
        }
        other => return Err(format!("unexpected reply type {other:?}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_restarts_on_the_same_port_keeping_data() {
        let mut server = RedisServer::start();
        assert_ne!(server.port(), 6379);
        assert_eq!(server.command(&["SET", "k", "v"]).unwrap(), "OK");
        let port = server.port();
        server.restart_keeping_data();
        assert_eq!(server.port(), port);
        assert_eq!(server.command(&["GET", "k"]).unwrap(), "v");
        server.restart();
        assert_eq!(server.command(&["GET", "k"]).unwrap(), "(nil)");
        server.stop();
        assert!(server.command(&["PING"]).is_err());
    }
}
