//! One line per event: the event's JSON, or for `encoding=text` a log
//! record's message alone.

use super::options::Encoding;
use switchyard_core::{Event, Payload, SinkError};

/// Append `event` and a newline to `out`.
pub fn line(encoding: Encoding, event: &Event, out: &mut Vec<u8>) -> Result<(), SinkError> {
    match (&event.payload, encoding) {
        (Payload::Log(record), Encoding::Text) => {
            // One event stays one line: line breaks inside the message are
            // written as the two characters `\n` / `\r`.
            let message = record.message.as_deref().unwrap_or("");
            for b in message.bytes() {
                match b {
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
        }
        _ => event
            .write_json(out)
            .map_err(|e| SinkError::permanent(format!("cannot encode event {}: {e}", event.id)))?,
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::LogRecord;

    #[test]
    fn text_is_the_message_on_one_line() {
        let ev: Event = LogRecord::new("a\nb").into();
        let mut out = Vec::new();
        line(Encoding::Text, &ev, &mut out).unwrap();
        assert_eq!(out, b"a\\nb\n");
        out.clear();
        line(Encoding::Json, &ev, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["message"], "a\nb");
    }
}
