//! Prometheus metrics: one registry per application instance.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub gate_decisions: IntCounterVec,
    pub gate_latency: prometheus::Histogram,
    /// App-host passes the gate's workers keep opened (`forward_auth::passes`).
    pub gate_pass_cache: prometheus::IntGauge,
    pub sync_runs: IntCounterVec,
    pub sync_ops: IntCounterVec,
    pub sync_failures: IntCounterVec,
    pub sync_duration: prometheus::Histogram,
    pub sync_last_success: Gauge,
    pub session_refreshes: IntCounterVec,
}

/// A finished sync run as the metrics count it.
#[derive(Debug, Clone, Copy)]
pub struct SyncRunFigures<'a> {
    /// The outcome, a label of `wizbrand_sync_runs_total` (`succeeded`, `partial`, …).
    pub status: &'static str,
    /// Whether it moves `sync_last_success_timestamp_seconds`.
    pub succeeded: bool,
    pub seconds: f64,
    /// Operations applied, by kind.
    pub ops: &'a std::collections::BTreeMap<&'static str, u64>,
    /// Operations (and members) that failed.
    pub failed: u64,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("wizbrand".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
            ),
            &["route"],
        )?;
        let gate_decisions = IntCounterVec::new(
            Opts::new(
                "gate_decisions_total",
                "Forward-auth decisions by outcome and app",
            ),
            &["outcome", "app"],
        )?;
        let gate_latency = prometheus::Histogram::with_opts(
            HistogramOpts::new("gate_decision_seconds", "Forward-auth decision latency").buckets(
                vec![
                    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1,
                ],
            ),
        )?;
        let gate_pass_cache = prometheus::IntGauge::new(
            "gate_pass_cache_entries",
            "App-host passes kept opened by the gate's workers",
        )?;
        let sync_runs = IntCounterVec::new(
            Opts::new("sync_runs_total", "Sync runs by outcome"),
            &["status"],
        )?;
        let sync_ops = IntCounterVec::new(
            Opts::new(
                "sync_operations_total",
                "Keycloak changes applied by the sync, by kind",
            ),
            &["op"],
        )?;
        let sync_failures = IntCounterVec::new(
            Opts::new("sync_failures_total", "Sync operations that failed"),
            &["status"],
        )?;
        let sync_duration = prometheus::Histogram::with_opts(
            HistogramOpts::new("sync_run_duration_seconds", "Duration of sync runs")
                .buckets(vec![0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        )?;
        let sync_last_success = Gauge::new(
            "sync_last_success_timestamp_seconds",
            "Unix time of the last sync run that succeeded",
        )?;
        let session_refreshes = IntCounterVec::new(
            Opts::new(
                "session_refreshes_total",
                "Token refreshes of browser sessions by outcome",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(session_refreshes.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(gate_decisions.clone()))?;
        registry.register(Box::new(gate_latency.clone()))?;
        registry.register(Box::new(gate_pass_cache.clone()))?;
        registry.register(Box::new(sync_runs.clone()))?;
        registry.register(Box::new(sync_ops.clone()))?;
        registry.register(Box::new(sync_failures.clone()))?;
        registry.register(Box::new(sync_duration.clone()))?;
        registry.register(Box::new(sync_last_success.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_duration,
            gate_decisions,
            gate_latency,
            gate_pass_cache,
            sync_runs,
            sync_ops,
            sync_failures,
            sync_duration,
            sync_last_success,
            session_refreshes,
        })
    }

    /// Counts a finished sync run (plain figures: the metrics know nothing of the sync).
    pub fn record_sync(&self, run: &SyncRunFigures<'_>) {
        self.sync_runs.with_label_values(&[run.status]).inc();
        self.sync_duration.observe(run.seconds);
        for (op, n) in run.ops {
            self.sync_ops.with_label_values(&[op]).inc_by(*n);
        }
        if run.failed > 0 {
            self.sync_failures
                .with_label_values(&[run.status])
                .inc_by(run.failed);
        }
        if run.succeeded {
            self.sync_last_success
                .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// The `method` label: a client chooses the method (any token, thousands of characters
/// long), so only the standard ones get a series of their own; the rest share `other`.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware that counts and times every request by its route pattern (not the raw
/// path, which would give one series per org and user).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = method_label(req.method());
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        // A route pattern of the router (a fixed set), never the raw path.
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        metrics
            .http_requests
            .with_label_values(&[method, route.as_str(), response.status().as_str()])
            .inc();
        metrics
            .http_duration
            .with_label_values(&[route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::Method;

    #[test]
    fn only_standard_methods_get_a_label_of_their_own() {
        for known in [
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
        ] {
            let method = Method::from_bytes(known.as_bytes()).unwrap();
            assert_eq!(method_label(&method), known);
        }
        for made_up in ["ANYTHING", "get", "PROPFIND", &"X".repeat(4006)] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }
}
