//! Per-route metrics: calls, errors and latency of every `rpc` (serve,
//! dispatch, connect, forward) by namespace and `<Service>.<Method>`, in
//! Prometheus text format.
//!
//! Namespaces and methods come from callers, so label values are bounded: after
//! [`MAX_ROUTES`] distinct routes, new ones are counted under `_other`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// Distinct `(rpc, namespace, method)` label sets kept before folding into
/// `_other`.
pub const MAX_ROUTES: usize = 1000;

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~0.8 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 15))
}

/// The mesh's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    peers: Family<Vec<(&'static str, &'static str)>, Gauge>,
    routes: Mutex<HashSet<(String, String)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let calls = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let peers = Family::default();
        let mut registry = Registry::with_prefix("switchyard_mesh");
        registry.register("calls", "Calls by rpc and route", calls.clone());
        registry.register(
            "errors",
            "Calls whose status was not 200, by rpc and route",
            errors.clone(),
        );
        registry.register(
            "call_duration_seconds",
            "Call latency by rpc and route",
            latency.clone(),
        );
        registry.register("peers", "Connected peers by health", peers.clone());
        Self {
            registry,
            calls,
            errors,
            latency,
            peers,
            routes: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Count one call of `rpc` on a route, its outcome and its latency.
    pub fn record(
        &self,
        rpc: &'static str,
        namespace: &str,
        method: &str,
        ok: bool,
        took: Duration,
    ) {
        let labels = self.labels(rpc, namespace, method);
        self.calls.get_or_create(&labels).inc();
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Set the peer gauges.
    pub fn set_peers(&self, healthy: usize, unhealthy: usize) {
        self.peers
            .get_or_create(&vec![("state", "healthy")])
            .set(healthy as i64);
        self.peers
            .get_or_create(&vec![("state", "unhealthy")])
            .set(unhealthy as i64);
    }

    /// Everything in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    fn labels(&self, rpc: &'static str, namespace: &str, method: &str) -> Labels {
        let key = (namespace.to_string(), method.to_string());
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let known =
            routes.contains(&key) || { routes.len() < MAX_ROUTES && routes.insert(key.clone()) };
        let (namespace, method) = if known {
            key
        } else {
            ("_other".to_string(), "_other".to_string())
        };
        vec![
            ("rpc", rpc.to_string()),
            ("namespace", namespace),
            ("method", method),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_errors_and_histogram_and_bounds_labels() {
        let m = Metrics::default();
        m.record("serve", "users", "U.Get", true, Duration::from_millis(1));
        m.record("serve", "users", "U.Get", false, Duration::from_millis(2));
        for i in 0..MAX_ROUTES + 5 {
            m.record("dispatch", &format!("ns{i}"), "X.Y", true, Duration::ZERO);
        }
        let text = m.render();
        assert!(
            text.contains(
                r#"switchyard_mesh_calls_total{rpc="serve",namespace="users",method="U.Get"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"switchyard_mesh_errors_total{rpc="serve",namespace="users",method="U.Get"} 1"#
        ));
        assert!(text.contains("switchyard_mesh_call_duration_seconds_bucket"));
        assert!(text.contains(r#"namespace="_other""#));
    }
}
