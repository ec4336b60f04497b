//! `/healthz`, `/readyz` and `/metrics`.
//!
//! Two listeners: the public one (behind Traefik) answers `/healthz` and a bare
//! `/readyz`; the ops listener (`WIZBRAND_OPS_LISTEN`, never routed by Traefik) adds
//! `/metrics` and the readiness details, which name internal URLs and per-app counts.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::Config;
use crate::metrics::Metrics;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub postgres: Check,
    pub keycloak: Check,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn from_result<E: std::fmt::Display>(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => Check {
                ok: true,
                error: None,
            },
            Err(e) => Check {
                ok: false,
                error: Some(e.to_string()),
            },
        }
    }
}

/// Probes Postgres and Keycloak concurrently, each within the probe time-out.
pub async fn readiness(pool: &PgPool, http: &reqwest::Client, config: &Config) -> Readiness {
    let postgres = async {
        match tokio::time::timeout(config.probe_timeout, crate::db::ping(pool)).await {
            Ok(result) => Check::from_result(result),
            Err(_) => Check::from_result(Err("no answer within the probe time-out")),
        }
    };
    let keycloak = async {
        Check::from_result(
            crate::keycloak::discover(http, &config.keycloak)
                .await
                .map(|_| ()),
        )
    };
    let (postgres, keycloak) = tokio::join!(postgres, keycloak);
    Readiness {
        ready: postgres.ok && keycloak.ok,
        postgres,
        keycloak,
    }
}

/// How long a readiness result is served before Postgres and Keycloak are asked again.
pub const READINESS_TTL: Duration = Duration::from_secs(5);

/// The last readiness result. `/readyz` is anonymous: without this, every caller would
/// cost a Postgres round trip and a Keycloak discovery fetch. Callers arriving while a
/// probe runs wait for it and share its result, so at most one probe runs at a time
/// and at most one per `ttl`.
pub struct ReadinessCache {
    ttl: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Arc<Readiness>)>>,
}

impl Default for ReadinessCache {
    fn default() -> Self {
        ReadinessCache::new(READINESS_TTL)
    }
}

impl ReadinessCache {
    pub fn new(ttl: Duration) -> Self {
        ReadinessCache {
            ttl,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached result while it is younger than the TTL, else `probe`'s.
    pub async fn get_or_probe<F, Fut>(&self, probe: F) -> Arc<Readiness>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Readiness>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return Arc::clone(report);
        }
        let report = Arc::new(probe().await);
        *last = Some((Instant::now(), Arc::clone(&report)));
        report
    }
}

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "up" }))
}

/// The public `/readyz`: the status and nothing else. What failed, and where it lives
/// (internal URLs, error texts), is for operators: the ops listener's `/readyz`.
#[get("/readyz")]
async fn readyz(
    pool: web::Data<PgPool>,
    http: web::Data<reqwest::Client>,
    config: web::Data<Config>,
    cache: web::Data<ReadinessCache>,
) -> HttpResponse {
    let report = cache
        .get_or_probe(|| readiness(&pool, &http, &config))
        .await;
    let body = serde_json::json!({ "ready": report.ready });
    if report.ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The ops listener's `/readyz`: which dependency failed and why.
#[get("/readyz")]
async fn readyz_details(
    pool: web::Data<PgPool>,
    http: web::Data<reqwest::Client>,
    config: web::Data<Config>,
    cache: web::Data<ReadinessCache>,
) -> HttpResponse {
    let report = cache
        .get_or_probe(|| readiness(&pool, &http, &config))
        .await;
    if report.ready {
        HttpResponse::Ok().json(&*report)
    } else {
        HttpResponse::ServiceUnavailable().json(&*report)
    }
}

#[get("/metrics")]
async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    match metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be rendered");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// The public listener's probes: bare statuses (the orchestrator's liveness and
/// readiness checks).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// The ops listener (`WIZBRAND_OPS_LISTEN`), which Traefik does not route to:
/// Prometheus metrics and readiness with its details.
pub fn ops_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz)
        .service(readyz_details)
        .service(metrics);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn report(ready: bool) -> Readiness {
        Readiness {
            ready,
            postgres: Check {
                ok: ready,
                error: None,
            },
            keycloak: Check {
                ok: ready,
                error: None,
            },
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_probe_until_the_result_is_stale() {
        let cache = ReadinessCache::new(Duration::from_millis(300));
        let probes = AtomicUsize::new(0);
        let counter = &probes;
        let probe = move || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            report(true)
        };
        let (a, b, c, d) = tokio::join!(
            cache.get_or_probe(probe),
            cache.get_or_probe(probe),
            cache.get_or_probe(probe),
            cache.get_or_probe(probe),
        );
        assert!(a.ready && b.ready && c.ready && d.ready);
        assert_eq!(probes.load(Ordering::SeqCst), 1, "four callers, one probe");
        assert!(cache.get_or_probe(probe).await.ready);
        assert_eq!(probes.load(Ordering::SeqCst), 1, "still fresh");

        tokio::time::sleep(Duration::from_millis(350)).await;
        let failing = move || async move {
            counter.fetch_add(1, Ordering::SeqCst);
            report(false)
        };
        assert!(!cache.get_or_probe(failing).await.ready);
        assert_eq!(probes.load(Ordering::SeqCst), 2, "probed again once stale");
    }
}
