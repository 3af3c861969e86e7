//! Sending: encode each call, pack calls into bounded requests, read each
//! reply's per-event results.

use super::classify::classify;
use super::config::{LunaryConfig, LunarySettings};
use super::encode;
use crate::http_common::client::{bearer, json_content_type};
use crate::http_common::Client;
use crate::llm_payload;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use switchyard_core::{BuildError, Event, EventFailure, Sink, SinkError};

const SERVICE: &str = "lunary";
/// `{"events":[` + `]}`.
const ENVELOPE: usize = 13;

/// Posts LLM calls to Lunary.
pub struct LunarySink {
    client: Client,
    max_events: usize,
    max_bytes: usize,
}

/// One call ready to send: its index in the batch, run id and events.
struct Call {
    index: usize,
    run_id: String,
    json: Vec<u8>,
}

impl LunarySink {
    /// Build from checked settings.
    pub fn new(config: LunarySettings) -> Result<Self, BuildError> {
        let headers = vec![
            json_content_type(),
            bearer(SERVICE, config.api_key.expose())?,
        ];
        Ok(Self {
            client: Client::new(SERVICE, &config.http, headers)?,
            max_events: config.max_events,
            max_bytes: config.max_bytes,
        })
    }

    /// Build from the typed config (the registry's factory).
    pub fn build(config: LunaryConfig) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Self::new(config.settings()?)?))
    }

    /// Split calls into runs that respect both bounds; a call too large for
    /// the byte bound on its own still goes, alone.
    fn chunks<'a>(&self, calls: &'a [Call]) -> Vec<&'a [Call]> {
        let mut out = Vec::new();
        let (mut start, mut bytes) = (0, ENVELOPE);
        for (i, call) in calls.iter().enumerate() {
            let events = (i - start) * 2;
            let size = call.json.len() + 1;
            if i > start && (events + 2 > self.max_events || bytes + size > self.max_bytes) {
                out.push(&calls[start..i]);
                start = i;
                bytes = ENVELOPE;
            }
            bytes += size;
        }
        if start < calls.len() {
            out.push(&calls[start..]);
        }
        out
    }

    /// Post one request; the failures among its calls.
    async fn post(&self, calls: &[Call]) -> Vec<EventFailure> {
        let mut body =
            Vec::with_capacity(calls.iter().map(|c| c.json.len() + 1).sum::<usize>() + ENVELOPE);
        body.extend_from_slice(b"{\"events\":[");
        for (n, call) in calls.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&call.json);
        }
        body.extend_from_slice(b"]}");
        let reply = match self.client.exchange(body, &[]).await {
            Ok(a) if (200..300).contains(&a.status) => Ok(a),
            Ok(a) => Err(classify(a.status, a.retry_after, &a.body)),
            Err(e) => Err(e),
        };
        match reply {
            Err(error) => calls
                .iter()
                .map(|c| EventFailure {
                    index: c.index,
                    error: error.clone(),
                })
                .collect(),
            Ok(reply) => {
                let failed = failed_runs(&reply.body);
                calls
                    .iter()
                    .filter_map(|c| {
                        failed.get(c.run_id.as_str()).map(|msg| EventFailure {
                            index: c.index,
                            error: SinkError::permanent(format!(
                                "lunary rejected run {}: {msg}",
                                c.run_id
                            )),
                        })
                    })
                    .collect()
            }
        }
    }
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    results: Vec<RunResult>,
}

#[derive(Deserialize)]
struct RunResult {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    error: Option<Value>,
}

/// Runs that failed for a reason other than already existing, with the
/// reason. A reply without readable results means everything was taken (the
/// request itself succeeded).
pub(crate) fn failed_runs(body: &[u8]) -> HashMap<String, String> {
    let Ok(results) = serde_json::from_slice::<Results>(body) else {
        return HashMap::new();
    };
    let mut failed = HashMap::new();
    for r in results.results {
        let (Some(id), Some(false)) = (r.id, r.success) else {
            continue;
        };
        let message = match r.error {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => "no reason given".into(),
        };
        if is_duplicate(&message) {
            continue;
        }
        failed.entry(id).or_insert(message);
    }
    failed
}

/// Lunary's answer for a run id it already has: the earlier delivery arrived.
fn is_duplicate(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("already exists") || m.contains("duplicate")
}

#[async_trait]
impl Sink for LunarySink {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let mut failures = Vec::new();
        let mut calls = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            match llm_payload::read(SERVICE, event) {
                Ok(p) => calls.push(Call {
                    index,
                    json: encode::call(&p),
                    run_id: p.run_id,
                }),
                Err(error) => failures.push(EventFailure { index, error }),
            }
        }
        for chunk in self.chunks(&calls) {
            failures.extend(self.post(chunk).await);
        }
        SinkError::from_failures(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_not_failures() {
        let body = br#"{"results":[{"id":"a","success":true},{"id":"b","success":false,"error":"Run b already exists"},{"id":"c","success":false,"error":{"code":"bad"}}]}"#;
        let failed = failed_runs(body);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed["c"], r#"{"code":"bad"}"#);
        assert!(failed_runs(b"not json").is_empty());
    }
}

#[cfg(test)]
mod props {
    //! Lunary's batch reply says which runs failed: any body reads as a set
    //! of failures (empty when unreadable), never a panic, and only runs the
    //! reply marked unsuccessful for a reason other than a duplicate appear.
    use super::*;
    use proptest::prelude::*;

    fn result() -> impl Strategy<Value = Value> {
        (
            proptest::option::of(any::<String>()),
            proptest::option::of(any::<bool>()),
            prop_oneof![
                Just(Value::Null),
                any::<String>().prop_map(Value::String),
                Just(serde_json::json!("Run already EXISTS")),
                Just(serde_json::json!({"code": "é"})),
            ],
        )
            .prop_map(|(id, success, error)| {
                serde_json::json!({"id": id, "success": success, "error": error})
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = failed_runs(&body);
        }

        #[test]
        fn only_unsuccessful_non_duplicate_runs_fail(
            results in proptest::collection::vec(result(), 0..6),
        ) {
            let body = serde_json::to_vec(&serde_json::json!({"results": results})).unwrap();
            let failed = failed_runs(&body);
            for (id, message) in &failed {
                prop_assert!(!is_duplicate(message));
                prop_assert!(results.iter().any(|r| r["id"] == **id && r["success"] == false));
            }
        }
    }
}
