//! Run ids: a UUIDv5 of the request id, so that the same exchange read twice
//! (a retry, a re-read after a crash) gets the same run id and backends can
//! deduplicate it.

use std::sync::OnceLock;
use uuid::Uuid;

/// The namespace of Switchyard run ids: `uuid_v5(NAMESPACE_URL,
/// "urn:switchyard:llm-run-id")`, fixed forever so ids stay stable across
/// versions.
pub fn namespace() -> Uuid {
    static NAMESPACE: OnceLock<Uuid> = OnceLock::new();
    *NAMESPACE.get_or_init(|| Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:switchyard:llm-run-id"))
}

/// The run id of a request id. An exchange without a request id is named by
/// what identifies it instead (`key` is built by the caller from stable
/// fields), never by something random.
pub fn run_id(key: &str) -> String {
    // Encoded into a stack buffer: `to_string` would go through the
    // formatting machinery for every event.
    Uuid::new_v5(&namespace(), key.as_bytes())
        .hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_version_5_and_distinct() {
        let a = run_id("req-1");
        assert_eq!(a, run_id("req-1"));
        assert_ne!(a, run_id("req-2"));
        let u = Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 5);
    }

    #[test]
    fn run_ids_never_change_across_versions() {
        // uuid5(uuid5(NAMESPACE_URL, "urn:switchyard:llm-run-id"), "req-1"),
        // computed independently: backends deduplicate on it.
        assert_eq!(run_id("req-1"), "f11868d8-df5c-555d-ab16-8efc40cf6b17");
    }
}
