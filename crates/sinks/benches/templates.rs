//! Template hot paths: the file sink's path template and the Loki sink's
//! label template, each rendered for 1000 log records (once per event, as
//! the sinks do for every batch).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::fmt::Write as _;
use switchyard_core::{Event, LogRecord};
use switchyard_sinks::file::template::{PathTemplate, Stamp};
use switchyard_sinks::loki::template::LabelTemplate;

const N: usize = 1000;

/// Records with two labels, a level and a nested field.
fn events() -> Vec<Event> {
    (0..N)
        .map(|seq| {
            let mut json = String::new();
            let _ = write!(
                json,
                r#"{{"timestamp":"2026-11-22T09:00:00Z","level":"info","message":"GET /api/v1/users/{seq} done","labels":{{"service":"api-gateway","host":"web-{:02}"}},"geo":{{"region":"eu-west"}},"seq":{seq}}}"#,
                seq % 8
            );
            Event::from(serde_json::from_str::<LogRecord>(&json).expect("valid record"))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = events();
    let mut group = c.benchmark_group("templates");
    group.throughput(Throughput::Elements(N as u64));

    let path = PathTemplate::parse("{service}/{date}/{host}-{hour}.log").expect("valid template");
    let stamp = Stamp {
        date: "2026-11-22".into(),
        hour: "09".into(),
    };
    let mut out = String::new();
    group.bench_function("file_path_1000", |b| {
        b.iter(|| {
            let mut total = 0;
            for e in &events {
                out.clear();
                path.render(e, &stamp, &mut out);
                total += out.len();
            }
            total
        })
    });

    let labels = LabelTemplate::parse(
        "app={service},level={level},host={labels.host},region={geo.region},env=prod",
    )
    .expect("valid labels");
    group.bench_function("loki_labels_1000", |b| {
        b.iter(|| events.iter().map(|e| labels.render(e).len()).sum::<usize>())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
