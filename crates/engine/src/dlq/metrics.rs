//! The dead-letter queue's series for `/metrics`, added as an
//! [`Extra`](crate::metrics::Extra) so the queue's figures are read at scrape
//! time like every other component's.

use super::store::Dlq;
use crate::metrics::{Extra, Series, SeriesKind};
use std::sync::Arc;

/// `dispatcher_dlq_records_discarded_total{reason="expired"}`: records that
/// outlived the retention period and were removed unsent.
pub fn extra(dlq: Arc<Dlq>) -> Extra {
    Arc::new(move |out: &mut Vec<Series>| {
        out.push(Series {
            name: "dlq_records_discarded",
            help: "Dead-letter records removed without being delivered, by reason",
            kind: SeriesKind::Counter(dlq.expired()),
            labels: vec![("reason", "expired".to_string())],
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::settle::{Failure, FailureKind};
    use crate::dlq::DlqConfig;
    use crate::metrics::Metrics;
    use switchyard_core::{Event, LogRecord};
    use time::OffsetDateTime;

    #[test]
    fn expired_records_are_a_labelled_counter() {
        let dir = tempfile::tempdir().unwrap();
        let config = DlqConfig {
            dir: dir.path().to_path_buf(),
            ..DlqConfig::default()
        };
        let old = OffsetDateTime::now_utc() - std::time::Duration::from_secs(48 * 3600);
        let failure = Failure {
            kind: FailureKind::Permanent,
            message: "HTTP 400".into(),
            attempts: 1,
            first_failure: old,
            last_failure: old,
        };
        let events: Vec<Event> = vec![LogRecord::new("a").into(), LogRecord::new("b").into()];
        Dlq::open(config.clone())
            .unwrap()
            .append("http", &events, &failure)
            .unwrap();
        let dlq = Arc::new(Dlq::open(config).unwrap());
        let m = Metrics::new();
        m.add_extra(extra(dlq));
        let text = m.render();
        assert!(
            text.contains("\ndispatcher_dlq_records_discarded_total{reason=\"expired\"} 2"),
            "{text}"
        );
    }
}
