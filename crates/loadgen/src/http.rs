//! A minimal blocking HTTP/1.1 client for the server under test: enough to
//! post bodies and read `/stats` on a keep-alive connection, and nothing
//! more, so that the client costs the shared CPU as little as possible.

use anyhow::Context;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One request on a keep-alive connection; returns (status, body).
pub fn http(
    stream: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line.get(9..12).context("bad status line")?.parse()?;
    let mut len = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse()?;
        }
    }
    let mut resp = vec![0; len];
    reader.read_exact(&mut resp)?;
    Ok((status, resp))
}

/// A keep-alive connection to the server under test on loopback `port`.
pub fn connect(port: u16) -> anyhow::Result<(TcpStream, BufReader<TcpStream>)> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    let r = BufReader::new(s.try_clone()?);
    Ok((s, r))
}

/// The `/stats` document of the server on loopback `port`, on a new
/// connection.
pub fn stats(port: u16) -> anyhow::Result<serde_json::Value> {
    let (mut s, mut r) = connect(port)?;
    let (_, body) = http(&mut s, &mut r, "GET", "/stats", b"")?;
    Ok(serde_json::from_slice(&body)?)
}
