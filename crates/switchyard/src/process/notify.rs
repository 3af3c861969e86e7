//! Readiness for a service manager: systemd's `Type=notify` protocol.
//!
//! When the manager starts the process it sets `NOTIFY_SOCKET` to the path
//! of a Unix datagram socket (a name starting with `@` is in the abstract
//! namespace). Once the command listens it sends `READY=1` there, and
//! `STOPPING=1` when the first SIGTERM or SIGINT starts the drain. Without
//! `NOTIFY_SOCKET` nothing is sent. A message that cannot be sent is logged
//! and otherwise ignored: the manager's own timeout then tells the operator.

use std::io;
use std::os::unix::net::UnixDatagram;
use tracing::warn;

/// The variable naming the manager's socket.
const SOCKET_VAR: &str = "NOTIFY_SOCKET";

/// Tell the service manager the command is ready, and that it is stopping
/// once the first stop signal arrives. Call from inside the async runtime,
/// once every source listens.
pub fn ready() {
    if std::env::var_os(SOCKET_VAR).is_none() {
        return;
    }
    send_or_warn("READY=1");
    // Every watcher of a signal is woken, so this one does not take the
    // signal from the drain's own watcher.
    let mut signals = super::signals::Signals::new();
    tokio::spawn(async move {
        signals.next().await;
        send_or_warn("STOPPING=1");
    });
}

fn send_or_warn(message: &str) {
    if let Err(e) = send(message) {
        warn!(error = %e, message, "cannot notify the service manager through NOTIFY_SOCKET");
    }
}

/// Send `message` to the socket `NOTIFY_SOCKET` names, if it names one.
fn send(message: &str) -> io::Result<()> {
    match std::env::var_os(SOCKET_VAR) {
        Some(path) => send_to(&path.to_string_lossy(), message),
        None => Ok(()),
    }
}

/// Send `message` to the socket at `path`, abstract when it starts with `@`.
fn send_to(path: &str, message: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    match path.strip_prefix('@') {
        Some(name) => send_abstract(&socket, name, message),
        None => socket.send_to(message.as_bytes(), path).map(drop),
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &str, message: &str) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    socket.send_to_addr(message.as_bytes(), &address)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, name: &str, _: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("NOTIFY_SOCKET `@{name}` is an abstract socket, which only Linux has"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reaches_a_socket_named_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        send_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_name_starting_with_at_is_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("switchyard-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        send_to(&format!("@{name}"), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_socket_nobody_bound_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.sock");
        assert!(send_to(path.to_str().unwrap(), "READY=1").is_err());
    }
}
