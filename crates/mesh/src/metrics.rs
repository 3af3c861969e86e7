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
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// Distinct `(rpc, namespace, method)` label sets kept before folding into
/// `_other`.
pub const MAX_ROUTES: usize = 1000;

type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~0.8 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 15))
}

/// The metrics of one route (`rpc`, namespace, method): handles on the
/// registered series, so that recording a call touches no label set.
#[derive(Clone)]
pub struct RouteMetrics {
    calls: Counter,
    errors: Counter,
    latency: Histogram,
}

impl RouteMetrics {
    /// Count one call, its outcome and its latency.
    pub fn record(&self, ok: bool, took: Duration) {
        self.calls.inc();
        if !ok {
            self.errors.inc();
        }
        self.latency.observe(took.as_secs_f64());
    }
}

/// A route as callers name it: the method label is `<Service>.<Method>`, or
/// the bare method when there is no service.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
struct Route<'a> {
    rpc: &'static str,
    namespace: &'a str,
    service: Option<&'a str>,
    method: &'a str,
}

impl Route<'_> {
    fn method_label(&self) -> String {
        match self.service {
            Some(service) => format!("{service}.{}", self.method),
            None => self.method.to_string(),
        }
    }
}

/// A cached route: its name (to tell hash collisions apart) and its handles.
struct Cached {
    rpc: &'static str,
    namespace: String,
    service: Option<String>,
    method: String,
    metrics: RouteMetrics,
}

impl Cached {
    fn is(&self, route: &Route<'_>) -> bool {
        self.rpc == route.rpc
            && self.namespace == route.namespace
            && self.service.as_deref() == route.service
            && self.method == route.method
    }
}

/// The mesh's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    peers: Family<Vec<(&'static str, &'static str)>, Gauge>,
    /// Distinct `(namespace, method label)` pairs given their own labels.
    routes: Mutex<HashSet<(String, String)>>,
    /// Every call looks its route up here, by hash and without allocating;
    /// only a route's first call builds labels. Routes folded into `_other`
    /// are not cached, so this holds at most [`MAX_ROUTES`] routes per rpc.
    cache: RwLock<HashMap<u64, Vec<Cached>>>,
    hasher: RandomState,
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
            cache: RwLock::default(),
            hasher: RandomState::new(),
        }
    }
}

impl Metrics {
    /// Count one call of `rpc` on a route, its outcome and its latency.
    /// `method` is the whole method label (`<Service>.<Method>`).
    pub fn record(
        &self,
        rpc: &'static str,
        namespace: &str,
        method: &str,
        ok: bool,
        took: Duration,
    ) {
        self.route(rpc, namespace, None, method).record(ok, took);
    }

    /// The metrics of `rpc` calls to `service.method` (or the bare `method`
    /// when `service` is `None`) in `namespace`.
    pub fn route(
        &self,
        rpc: &'static str,
        namespace: &str,
        service: Option<&str>,
        method: &str,
    ) -> RouteMetrics {
        let route = Route {
            rpc,
            namespace,
            service,
            method,
        };
        let hash = self.hasher.hash_one(route);
        {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache
                .get(&hash)
                .and_then(|c| c.iter().find(|c| c.is(&route)))
            {
                return hit.metrics.clone();
            }
        }
        let (labels, known) = self.labels(rpc, namespace, route.method_label());
        let metrics = RouteMetrics {
            calls: self.calls.get_or_create(&labels).clone(),
            errors: self.errors.get_or_create(&labels).clone(),
            latency: self.latency.get_or_create(&labels).clone(),
        };
        if known {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            let entries = cache.entry(hash).or_default();
            if !entries.iter().any(|c| c.is(&route)) {
                entries.push(Cached {
                    rpc,
                    namespace: namespace.to_string(),
                    service: service.map(str::to_string),
                    method: method.to_string(),
                    metrics: metrics.clone(),
                });
            }
        }
        metrics
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

    /// The labels of a route, and whether it has its own (else it is folded
    /// into `_other`).
    fn labels(&self, rpc: &'static str, namespace: &str, method: String) -> (Labels, bool) {
        let key = (namespace.to_string(), method);
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let known =
            routes.contains(&key) || { routes.len() < MAX_ROUTES && routes.insert(key.clone()) };
        let (namespace, method) = if known {
            key
        } else {
            ("_other".to_string(), "_other".to_string())
        };
        let labels = vec![
            ("rpc", rpc.to_string()),
            ("namespace", namespace),
            ("method", method),
        ];
        (labels, known)
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

    #[test]
    fn a_route_named_by_service_and_method_is_the_same_series_as_its_label() {
        let m = Metrics::default();
        m.route("serve", "users", Some("U"), "Get")
            .record(true, Duration::from_millis(1));
        m.route("serve", "users", Some("U"), "Get")
            .record(false, Duration::from_millis(1));
        m.record("serve", "users", "U.Get", true, Duration::from_millis(1));
        m.route("serve", "users", None, "Get")
            .record(true, Duration::from_millis(1));
        let text = m.render();
        assert!(
            text.contains(
                r#"switchyard_mesh_calls_total{rpc="serve",namespace="users",method="U.Get"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"switchyard_mesh_errors_total{rpc="serve",namespace="users",method="U.Get"} 1"#
        ));
        assert!(text.contains(
            r#"switchyard_mesh_calls_total{rpc="serve",namespace="users",method="Get"} 1"#
        ));
    }

    #[test]
    fn routes_folded_into_other_are_not_cached() {
        let m = Metrics::default();
        for i in 0..MAX_ROUTES + 50 {
            m.record("serve", &format!("ns{i}"), "X.Y", true, Duration::ZERO);
        }
        let cached: usize = m.cache.read().unwrap().values().map(Vec::len).sum();
        assert_eq!(cached, MAX_ROUTES);
        assert!(m.render().contains(
            r#"switchyard_mesh_calls_total{rpc="serve",namespace="_other",method="_other"} 50"#
        ));
    }
}
