//! Response statuses. The original dispatcher puts HTTP-style numbers in
//! `Status.code` and clients compare against them, so these are the only
//! codes a node ever sends; the gRPC call itself succeeds.

use crate::pb;

/// `200`: the call was handled.
pub const OK: i32 = 200;
/// `400`: a required field is missing.
pub const BAD_REQUEST: i32 = 400;
/// `404`: no such namespace, method, collector or route.
pub const NOT_FOUND: i32 = 404;
/// `413`: the request is larger than the configured limit.
pub const TOO_LARGE: i32 = 413;
/// `500`: a handler or a forwarded call failed.
pub const INTERNAL: i32 = 500;
/// `503`: this node cannot take another peer (its peer table is full).
pub const UNAVAILABLE: i32 = 503;
/// `504`: the caller's deadline passed.
pub const TIMEOUT: i32 = 504;

/// A status with `code` and `message` and no details.
pub fn new(code: i32, message: impl Into<String>) -> pb::Status {
    pb::Status {
        code,
        message: message.into(),
        details: Default::default(),
    }
}

/// `{200, "OK"}`.
pub fn ok() -> pb::Status {
    new(OK, "OK")
}

/// `status` with `details` added (extra context for operators; original
/// clients ignore the map).
pub fn with_details(mut status: pb::Status, details: &[(&str, String)]) -> pb::Status {
    status
        .details
        .extend(details.iter().map(|(k, v)| (k.to_string(), v.clone())));
    status
}

/// Whether a (possibly absent) status is a success.
pub fn is_ok(status: Option<&pb::Status>) -> bool {
    status.is_some_and(|s| s.code == OK)
}
