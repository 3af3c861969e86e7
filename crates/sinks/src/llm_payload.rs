//! Reading the LLM transformer's payload back from an event, for the sinks
//! that speak an LLM-observability API. Anything else (a log record, a raw
//! exchange when the transformer was replaced) cannot be sent there and fails
//! permanently, with a message that says why, rather than vanishing.

use switchyard_core::{Event, Payload, SinkError};
use switchyard_transforms::llm::LlmPayload;

/// The payload of `event`, or a permanent error naming the service.
pub fn read(service: &str, event: &Event) -> Result<LlmPayload, SinkError> {
    let what = match &event.payload {
        Payload::Json(doc) => {
            return serde_json::from_str(doc.get()).map_err(|e| {
                SinkError::permanent(format!(
                    "{service}: event {} is not an LLM call payload: {e}",
                    event.id
                ))
            })
        }
        Payload::Http(_) => "an untransformed HTTP exchange",
        Payload::Log(_) => "a log record",
    };
    Err(SinkError::permanent(format!(
        "{service}: event {} is {what}; this service takes LLM call payloads from the LLM transformer",
        event.id
    )))
}
