//! The pipeline file check of `switchyard validate` / `run`: arbitrary text
//! (interpolation, YAML, every component's typed config, sink options, the
//! wiring, error lines). Never a panic; an error list is never empty.
//!
//! The check lives in the binary crate, which a fuzz crate cannot link, so
//! its modules are compiled here from their sources.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Siblings at the root, as in the binary's `pipeline` module: the check
// reaches the others as `super::…`.
#[allow(dead_code, unused_imports)]
#[path = "../../crates/switchyard/src/pipeline/dispatcher_block.rs"]
mod dispatcher_block;
#[allow(dead_code, unused_imports)]
#[path = "../../crates/switchyard/src/pipeline/interpolate.rs"]
mod interpolate;
#[allow(dead_code, unused_imports)]
#[path = "../../crates/switchyard/src/pipeline/locate.rs"]
mod locate;
#[allow(dead_code, unused_imports)]
#[path = "../../crates/switchyard/src/pipeline/schema.rs"]
mod schema;
#[allow(dead_code, unused_imports)]
#[path = "../../crates/switchyard/src/pipeline/validate.rs"]
mod validate;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = |k: &str| (k == "SET").then(|| "value".to_string());
    if let Err(errors) = validate::check(&text, env, &switchyard_sinks::builtin()) {
        assert!(!errors.is_empty());
        for e in &errors {
            let _ = e.to_string();
        }
    }
});
