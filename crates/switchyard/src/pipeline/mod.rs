//! Pipelines from a YAML file: `switchyard run --config` and
//! `switchyard validate --config`.
//!
//! - [`interpolate`]: `${VAR}` / `${VAR:-default}` before parsing.
//! - [`locate`]: the line of a key path, for error messages.
//! - [`schema`]: the file's shape (unknown keys refused).
//! - [`dispatcher_block`]: the seed's `dispatcher:` block, as defaults.
//! - [`validate`]: every error at once, with key path and line.
//! - [`admin`]: `/metrics`, `/health`, `/ready`.
//! - [`run`]: build and run the graph until SIGINT/SIGTERM.

pub mod admin;
pub mod dispatcher_block;
pub mod interpolate;
pub mod locate;
pub mod run;
pub mod schema;
pub mod validate;
