//! A minimal Engine API client: one HTTP/1 connection over the unix socket
//! per request. Requests are rare (a listing every few seconds, one log
//! stream per container), so a pool would add state and save nothing.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};

/// Largest JSON answer read (container listings, inspections).
const MAX_JSON: usize = 4 * 1024 * 1024;

/// Why a request to the Engine API failed.
#[derive(Debug)]
pub struct ApiError {
    /// What failed, on what.
    pub message: String,
    /// The answer's status, when the Engine answered with an error.
    pub status: Option<StatusCode>,
}

impl ApiError {
    fn new(message: String) -> Self {
        Self {
            message,
            status: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The Engine API at a unix socket.
#[derive(Debug, Clone)]
pub struct Engine {
    socket: PathBuf,
}

impl Engine {
    /// The API served at `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET path`; an answer other than `200` is an error carrying its status.
    pub async fn get(&self, path: &str) -> Result<Response<Incoming>, ApiError> {
        let at = || format!("GET {path} on {}", self.socket.display());
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| ApiError::new(format!("{}: cannot connect: {e}", at())))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ApiError::new(format!("{}: {e}", at())))?;
        // The connection task ends when the response body is done or dropped.
        tokio::spawn(conn);
        let request = Request::get(path)
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ApiError::new(format!("{}: {e}", at())))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ApiError::new(format!("{}: {e}", at())))?;
        if response.status() != StatusCode::OK {
            return Err(ApiError {
                message: format!("{}: status {}", at(), response.status()),
                status: Some(response.status()),
            });
        }
        Ok(response)
    }

    /// `GET path` and read the answer as JSON (at most 4 MiB).
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ApiError> {
        let body = self.get(path).await?.into_body();
        let bytes = Limited::new(body, MAX_JSON)
            .collect()
            .await
            .map_err(|e| ApiError::new(format!("GET {path}: body: {e}")))?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::new(format!("GET {path}: not the expected JSON: {e}")))
    }
}
