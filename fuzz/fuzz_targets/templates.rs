//! File path templates, Loki label templates and field paths from any text,
//! rendered with label values from the same bytes: a rendered file path
//! always stays below the base directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use switchyard_core::{Event, LogRecord};
use switchyard_sinks::file::template::{check_relative, PathTemplate, Stamp};
use switchyard_sinks::loki::template::LabelTemplate;
use switchyard_transforms::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The template, then (after the first NUL) a label value.
    let (template, value) = text.split_once('\0').unwrap_or((&text, ".."));
    let labels = BTreeMap::from([
        ("a".to_string(), value.to_string()),
        ("app".to_string(), value.to_string()),
    ]);
    let mut rec = LogRecord::new(value);
    rec.labels = labels;
    if let Ok(t) = PathTemplate::parse(template) {
        let stamp = Stamp {
            date: "2024-02-29".into(),
            hour: "23".into(),
        };
        let mut out = String::new();
        t.render(&Event::from(rec.clone()), &stamp, &mut out);
        assert_eq!(check_relative(&out), Ok(()), "{template:?} → {out:?}");
    }
    if let Ok(p) = Path::parse(template) {
        let _ = p.get(&rec);
        p.set(&mut rec, serde_json::Value::String(value.into()));
        p.delete(&mut rec);
    }
    if let Ok(t) = LabelTemplate::parse(template) {
        let _ = t.render(&Event::from(rec));
    }
});
