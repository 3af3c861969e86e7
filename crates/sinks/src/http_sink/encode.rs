//! A batch as one request body.

use super::config::{Compression, Encoding};
use std::io::Write;
use switchyard_core::{Event, SinkError};

/// Encode `events` and compress as configured.
pub fn batch(
    events: &[Event],
    encoding: Encoding,
    compression: Compression,
) -> Result<Vec<u8>, SinkError> {
    let mut out = Vec::with_capacity(events.len() * 512);
    if encoding == Encoding::JsonArray {
        out.push(b'[');
    }
    for (n, event) in events.iter().enumerate() {
        if n > 0 && encoding == Encoding::JsonArray {
            out.push(b',');
        }
        event.write_json(&mut out).map_err(|e| {
            SinkError::permanent(format!("http: cannot encode event {}: {e}", event.id))
        })?;
        if encoding == Encoding::Ndjson {
            out.push(b'\n');
        }
    }
    if encoding == Encoding::JsonArray {
        out.push(b']');
    }
    match compression {
        Compression::None => Ok(out),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(out.len() / 4),
                flate2::Compression::fast(),
            );
            gz.write_all(&out)
                .and_then(|_| gz.finish())
                .map_err(|e| SinkError::permanent(format!("http: cannot gzip a batch: {e}")))
        }
    }
}
