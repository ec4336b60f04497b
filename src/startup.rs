//! Building the application: bind a listener (port 0 allowed) and hand back its address,
//! so tests start the real server in-process.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpServer, web};
use sqlx::PgPool;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::config::Config;
use crate::forward_auth::state::{GateState, spawn_refresher};
use crate::forward_auth::{Gate, GateShared};
use crate::keycloak::directory::KeycloakDirectory;
use crate::metrics::Metrics;
use crate::oidc::client::OidcClient;
use crate::oidc::jwks::TokenVerifier;
use crate::sync::scheduler::{SyncHandle, SyncSettings};
use crate::web::app_host::AppHostSessions;
use crate::web::refresh::SessionRefresher;
use crate::web::revocations::Revocations;
use crate::web::session::SessionSettings;

pub struct Application {
    port: u16,
    server: Server,
    pub pool: PgPool,
}

impl Application {
    /// Binds `config.listen` and prepares the server; migrations run first unless
    /// `WIZBRAND_MIGRATE_ON_START=false`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = crate::db::lazy_pool(&config)?;
        if config.migrate_on_start {
            crate::db::migrate(&pool).await?;
        }
        let metrics = Metrics::new()?;
        let sync = if config.sync_enabled {
            let directory = Arc::new(KeycloakDirectory::new(
                &config.keycloak,
                config.sync_concurrency,
                Duration::from_secs(10),
            ));
            Some(
                crate::sync::scheduler::spawn(
                    pool.clone(),
                    config.database_url.expose_secret().to_owned(),
                    directory,
                    metrics.clone(),
                    SyncSettings {
                        cron: config.sync_cron.clone(),
                        root: config.sync_group_root.clone(),
                        full_read_every: config.sync_full_read_every,
                    },
                )
                .await?,
            )
        } else {
            None
        };
        if config.trusted_proxies.is_empty() {
            tracing::warn!(
                "WIZBRAND_TRUSTED_PROXIES names no proxy: /forward-auth refuses every caller"
            );
        }
        let gate = Arc::new(GateState::default());
        // Without Postgres the gate starts empty (refusing everything) and the
        // refresher fills it in once Postgres answers; /readyz says which is down.
        if let Err(e) = gate.reload(&pool).await {
            tracing::warn!(error = %e, "gate state not loaded at start; retrying in the background");
        }
        spawn_refresher(
            Arc::clone(&gate),
            pool.clone(),
            config.database_url.expose_secret().to_owned(),
        );
        let revocations = Arc::new(Revocations::default());
        // Until the revocations are loaded every session is refused (fail closed), like
        // the gate; the refresher loads them once Postgres answers.
        if let Err(e) = revocations.reload(&pool).await {
            tracing::warn!(error = %e, "session revocations not loaded at start; retrying in the background");
        }
        crate::web::revocations::spawn_refresher(
            Arc::clone(&revocations),
            pool.clone(),
            config.database_url.expose_secret().to_owned(),
        );
        let listener = TcpListener::bind(config.listen).map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (WIZBRAND_LISTEN): {e}", config.listen)
        })?;
        let port = listener.local_addr()?.port();
        let server = run(
            listener,
            pool.clone(),
            config,
            metrics,
            sync,
            gate,
            revocations,
        )?;
        Ok(Application { port, server, pool })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn run(
    listener: TcpListener,
    pool: PgPool,
    config: Config,
    metrics: Metrics,
    sync: Option<SyncHandle>,
    gate: Arc<GateState>,
    revocations: Arc<Revocations>,
) -> anyhow::Result<Server> {
    let sessions = SessionSettings::from_config(&config)?;
    let host_cookies = web::Data::new(crate::web::app_host::HostCookies::from_config(&config)?);
    let security_headers = web::Data::new(crate::web::page::SecurityHeaders::new(&config)?);
    let throttle = web::Data::new(crate::web::throttle::SignInThrottle::new(
        config.signin_rate_per_minute,
    ));
    let readiness = web::Data::new(crate::health::ReadinessCache::default());
    let oidc = Arc::new(OidcClient::new(
        crate::keycloak::http_client(config.probe_timeout),
        &config,
    ));
    let refresher = Arc::new(SessionRefresher::default());
    crate::web::refresh::spawn(
        Arc::clone(&refresher),
        pool.clone(),
        Arc::clone(&oidc),
        Arc::clone(&revocations),
        metrics.clone(),
    );
    let verifier = Arc::new(TokenVerifier::new(
        crate::keycloak::http_client(config.probe_timeout),
        &config.keycloak,
    ));
    let signer = match &config.gate.assertion {
        Some(settings) => Some(web::Data::new(
            crate::forward_auth::assertion::Signer::new(settings, config.public_url.as_str())
                .map_err(|e| anyhow::anyhow!("WIZBRAND_ASSERTION_KEY_FILE: {e}"))?,
        )),
        None => None,
    };
    let gate_shared = Arc::new(GateShared {
        state: Arc::clone(&gate),
        verifier: Arc::clone(&verifier),
        app_hosts: Arc::new(AppHostSessions::new(
            &config,
            Arc::clone(&revocations),
            Arc::clone(&refresher),
        )?),
        trusted_proxies: config.trusted_proxies.clone(),
        public_url: config.public_url.clone(),
        metrics: metrics.clone(),
        access_log: config.gate.access_log,
        pass_cache: config.gate.pass_cache,
        assertions: signer.as_ref().map(|s| s.clone().into_inner()),
    });
    let oidc = web::Data::from(oidc);
    let refresher = web::Data::from(refresher);
    let revocations = web::Data::from(revocations);
    let verifier = web::Data::from(verifier);
    let gate = web::Data::from(gate);
    let metrics = web::Data::new(metrics);
    let sync = web::Data::new(sync);
    let http = web::Data::new(crate::keycloak::http_client(config.probe_timeout));
    let pool = web::Data::new(pool);
    let config = web::Data::new(config);
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(metrics.clone())
            .app_data(security_headers.clone())
            .app_data(host_cookies.clone())
            .app_data(throttle.clone())
            .app_data(readiness.clone())
            .app_data(http.clone())
            .app_data(pool.clone())
            .app_data(config.clone())
            .app_data(sync.clone())
            .app_data(gate.clone())
            .app_data(verifier.clone())
            .app_data(oidc.clone())
            .app_data(revocations.clone())
            .app_data(refresher.clone())
            // Built here, so once per worker: its caches are the worker's own.
            .app_data(web::Data::new(Gate::for_worker(Arc::clone(&gate_shared))));
        if let Some(signer) = &signer {
            app = app.app_data(signer.clone());
        }
        app
            // The gate first, outside the generic middleware: the hot path of every
            // app request does its own (cheaper) bookkeeping (docs/gate.md).
            .configure(crate::forward_auth::routes)
            .service(
                web::scope("")
                    .wrap(from_fn(crate::web::page::security_headers))
                    .wrap(sessions.middleware())
                    // Outside the session middleware: it must not see a duplicated cookie.
                    .wrap(from_fn(crate::web::cookie_guard::refuse_duplicates))
                    .wrap(from_fn(crate::metrics::record))
                    .wrap(from_fn(echo_request_id))
                    .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
                    .configure(crate::health::routes)
                    .configure(crate::forward_auth::assertion::routes)
                    .configure(crate::api::routes)
                    .configure(crate::web::routes),
            )
    })
    .listen(listener)?
    .run();
    Ok(server)
}

/// Returns the request id of the request's span as `X-Request-Id`, so a person
/// reporting a problem can quote it and an operator can find the log lines.
async fn echo_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut response = next.call(req).await?;
    if let Some(id) = id
        && let Ok(value) = HeaderValue::from_str(&id.to_string())
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}
