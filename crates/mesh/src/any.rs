//! Helpers for the `google.protobuf.Any` payloads that handlers exchange.

use crate::handler::HandlerError;
use prost_types::Any;

/// Type URL of a UTF-8 JSON document carried as `Any.value`.
pub const JSON_TYPE_URL: &str = "type.googleapis.com/switchyard.Json";
/// Type URL of raw bytes carried as `Any.value` (`google.protobuf.BytesValue`
/// is a message; this is the bytes themselves).
pub const BYTES_TYPE_URL: &str = "type.googleapis.com/switchyard.Bytes";

/// An `Any` holding `json` as UTF-8 text.
pub fn json(value: &str) -> Any {
    Any {
        type_url: JSON_TYPE_URL.to_string(),
        value: value.as_bytes().to_vec(),
    }
}

/// An `Any` holding a protobuf message under `type_url`.
pub fn pack<M: prost::Message>(type_url: &str, message: &M) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: message.encode_to_vec(),
    }
}

/// Decode `any` as `M`, checking its type URL first. A wrong type or garbage
/// bytes is a [`HandlerError`] — an error response, never a crash.
pub fn unpack<M: prost::Message + Default>(any: &Any, type_url: &str) -> Result<M, HandlerError> {
    if any.type_url != type_url {
        return Err(HandlerError::new(format!(
            "expected input of type `{type_url}`, got `{}`",
            any.type_url
        )));
    }
    M::decode(any.value.as_slice())
        .map_err(|e| HandlerError::new(format!("cannot decode input as `{type_url}`: {e}")))
}

/// The text of an `Any`, if its bytes are UTF-8.
pub fn text(any: &Any) -> Result<&str, HandlerError> {
    std::str::from_utf8(&any.value).map_err(|e| {
        HandlerError::new(format!(
            "input of type `{}` is not UTF-8 text: {e}",
            any.type_url
        ))
    })
}
