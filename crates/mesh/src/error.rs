//! Errors of the library API (not of calls: those are statuses in responses).

/// What went wrong, and on what.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// An address that cannot be dialled.
    #[error("invalid peer address `{address}`: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// Why it is invalid.
        reason: String,
    },
    /// TLS material that cannot be used.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The gRPC call failed (peer unreachable, rejected token, timeout).
    #[error("call to `{address}` failed: {:?}: {}", status.code(), status.message())]
    Call {
        /// The peer's address.
        address: String,
        /// The gRPC status.
        status: Box<tonic::Status>,
    },
    /// The peer answered with a non-200 status.
    #[error("`{address}` refused: {code} {message}")]
    Refused {
        /// The peer's address.
        address: String,
        /// The `Status.code` it sent.
        code: i32,
        /// The `Status.message` it sent.
        message: String,
    },
    /// The peer table holds `max` peers already.
    #[error("peer table full: {max} peers")]
    PeerTableFull {
        /// The configured bound.
        max: usize,
    },
    /// The background server task ended abnormally.
    #[error("server task failed: {0}")]
    Task(String),
    /// Serving failed.
    #[error("server: {0}")]
    Serve(#[from] std::io::Error),
}
