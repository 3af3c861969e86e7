//! Helpers shared by the end-to-end tests: start the real binary on a free
//! loopback port, stop it with SIGTERM, read its final counters.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Dispatchers started by this test process and not yet stopped.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A failing test must not leave dispatchers behind: on panic, kill every
/// dispatcher this process started and did not stop.
fn kill_running_on_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let pids = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
            for pid in pids {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            default(info);
        }));
    });
}

fn forget(pid: u32) {
    if let Ok(mut running) = RUNNING.lock() {
        running.retain(|p| *p != pid);
    }
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `switchyard dispatcher --listen 127.0.0.1:<port>` with warnings only, its
/// output captured; add arguments and environment, then [`spawn_listening`].
pub fn dispatcher_command(port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.arg("dispatcher")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Spawn and wait (bounded) until `port` accepts connections.
pub fn spawn_listening(cmd: &mut Command, port: u16) -> Child {
    kill_running_on_panic();
    let mut child = cmd.spawn().unwrap();
    RUNNING.lock().unwrap().push(child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dispatcher did not start listening on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// SIGTERM, wait for a clean exit; (stdout, stderr).
pub fn stop_with_output(child: Child) -> (String, String) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    forget(pid);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit: {:?} {stderr}", out.status);
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// The `final counters:` line of a dispatcher's output.
pub fn final_counters_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("final counters:"))
        .unwrap_or_else(|| panic!("no final counters in {stdout:?}"))
}

/// The final counters as name → value.
pub fn final_counters(stdout: &str) -> HashMap<String, u64> {
    final_counters_line(stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// A minimal HTTP/1.1 request on loopback; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    http_with(port, method, path, body, "")
}

/// [`http`] with extra header lines (each ending in `\r\n`).
pub fn http_with(port: u16, method: &str, path: &str, body: &[u8], extra: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// `switchyard run --config <file>` with warnings only, output captured.
pub fn run_command(config: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A loopback HTTP server that answers `503` while `down` is set and `200`
/// otherwise, counting the bodies it accepted (one connection per request).
pub struct FlakyServer {
    /// Its port.
    pub port: u16,
    /// While true, every request gets `503`.
    pub down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Bodies answered with `200`.
    pub accepted: std::sync::Arc<Mutex<Vec<String>>>,
}

impl FlakyServer {
    /// Start it in a thread (it lives as long as the test process).
    pub fn start(down: bool) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let flag = Arc::new(AtomicBool::new(down));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (f, a) = (flag.clone(), accepted.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.to_ascii_lowercase();
                    if let Some(v) = l.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let status = if f.load(Ordering::SeqCst) {
                    "503 Service Unavailable"
                } else {
                    a.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Self {
            port,
            down: flag,
            accepted,
        }
    }
}

/// `kill -9`: no shutdown, no final flush — a crash. Waits for the exit.
pub fn kill_hard(mut child: Child) {
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL on Unix
    let _ = child.wait();
    forget(pid);
}

/// Read one HTTP/1.1 request's head and its `Content-Length` body; `None`
/// when the connection ends first.
pub fn read_request_body(reader: &mut std::io::BufReader<std::net::TcpStream>) -> Option<Vec<u8>> {
    use std::io::{BufRead, Read};
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

/// A loopback HTTP sink that answers `400` (a permanent error, with a small
/// JSON body) to a request whose body contains `marker`, and `200`
/// otherwise; returns its port and the bodies it accepted.
pub fn refusing_server(marker: &'static str) -> (u16, std::sync::Arc<Mutex<Vec<String>>>) {
    use std::io::Write;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = std::io::BufReader::new(stream);
                let Some(body) = read_request_body(&mut reader) else {
                    return;
                };
                let body = String::from_utf8_lossy(&body).into_owned();
                let status = if body.contains(marker) {
                    "400 Bad Request"
                } else {
                    seen.lock().unwrap().push(body);
                    "200 OK"
                };
                let reply = "{\"error\":\"refused by the test sink\"}";
                let _ = write!(
                    reader.into_inner(),
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            });
        }
    });
    (port, accepted)
}

/// `promtool check metrics` on `page`: (success, everything it printed);
/// `None` when promtool is not installed.
pub fn promtool(page: &str) -> Option<(bool, String)> {
    use std::io::Write;
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), printed))
}

/// Run `switchyard bench <args>` to the end and return its standard output,
/// after checking that it succeeded.
pub fn bench(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench {args:?} failed: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The number after `prefix` at the start of a line of `out`.
pub fn number_after(out: &str, prefix: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{prefix}<number>` in:\n{out}"))
}
