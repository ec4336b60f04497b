//! `/healthz`, `/readyz` and `/metrics`.

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

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "up" }))
}

#[get("/readyz")]
async fn readyz(
    pool: web::Data<PgPool>,
    http: web::Data<reqwest::Client>,
    config: web::Data<Config>,
) -> HttpResponse {
    let report = readiness(&pool, &http, &config).await;
    if report.ready {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
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

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}
