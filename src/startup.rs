//! Building the application: bind a listener (port 0 allowed) and hand back its address,
//! so tests start the real server in-process; start the background tasks, all of
//! them here ([`start_tasks`]); and stop gracefully ([`Application::run_until`]).

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpServer, web};
use sqlx::PgPool;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::config::Config;
use crate::forward_auth::state::GateState;
use crate::forward_auth::{Gate, GateShared};
use crate::keycloak::directory::KeycloakDirectory;
use crate::metrics::Metrics;
use crate::oidc::client::OidcClient;
use crate::oidc::jwks::TokenVerifier;
use crate::sync::scheduler::{Scheduler, SyncHandle, SyncSettings};
use crate::tasks::Tasks;
use crate::web::app_host::AppHostSessions;
use crate::web::refresh::SessionRefresher;
use crate::web::revocations::Revocations;
use crate::web::session::SessionSettings;

pub struct Application {
    port: u16,
    server: Server,
    /// The ops listener's port and server (`WIZBRAND_OPS_LISTEN`).
    ops: Option<(u16, Server)>,
    pub pool: PgPool,
    tasks: Tasks,
    grace: Duration,
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
        let database_url = config.database_url.expose_secret().to_owned();
        let sync = if config.sync_enabled {
            let directory = Arc::new(KeycloakDirectory::new(
                &config.keycloak,
                config.sync_concurrency,
                Duration::from_secs(10),
            ));
            Some(Scheduler::new(
                pool.clone(),
                database_url.clone(),
                directory,
                metrics.clone(),
                SyncSettings {
                    cron: config.sync_cron.clone(),
                    root: config.sync_group_root.clone(),
                    full_read_every: config.sync_full_read_every,
                },
            )?)
        } else {
            None
        };
        let (sync, scheduler) = match sync {
            Some((handle, scheduler)) => (Some(handle), Some(scheduler)),
            None => (None, None),
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
        let revocations = Arc::new(Revocations::default());
        // Until the revocations are loaded every session is refused (fail closed), like
        // the gate; the refresher loads them once Postgres answers.
        if let Err(e) = revocations.reload(&pool).await {
            tracing::warn!(error = %e, "session revocations not loaded at start; retrying in the background");
        }
        let oidc = Arc::new(OidcClient::new(
            crate::keycloak::http_client(config.probe_timeout),
            &config,
        ));
        let refresher = Arc::new(SessionRefresher::default());
        let mut tasks = Tasks::default();
        start_tasks(
            &mut tasks,
            Background {
                pool: pool.clone(),
                database_url,
                gate: Arc::clone(&gate),
                revocations: Arc::clone(&revocations),
                refresher: Arc::clone(&refresher),
                oidc: Arc::clone(&oidc),
                metrics: metrics.clone(),
                scheduler,
            },
        );
        let listener = TcpListener::bind(config.listen).map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (WIZBRAND_LISTEN): {e}", config.listen)
        })?;
        let port = listener.local_addr()?.port();
        let grace = config.shutdown_grace;
        let ops_listener = bind_ops(&config)?;
        let ops_port = match &ops_listener {
            Some(listener) => Some(listener.local_addr()?.port()),
            None => None,
        };
        let (server, ops) = run(
            listener,
            ops_listener,
            pool.clone(),
            config,
            metrics,
            sync,
            Shared {
                gate,
                revocations,
                oidc,
                refresher,
            },
        )?;
        Ok(Application {
            port,
            server,
            ops: ops_port.zip(ops),
            pool,
            tasks,
            grace,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The ops listener's port (`WIZBRAND_OPS_LISTEN`), unless it is off.
    pub fn ops_port(&self) -> Option<u16> {
        self.ops.as_ref().map(|(port, _)| *port)
    }

    /// Serves until the process ends (the tests' in-process servers).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let _tasks = self.tasks;
        match self.ops {
            Some((_, ops)) => {
                let (public, ops) = tokio::join!(self.server, ops);
                public.and(ops)
            }
            None => self.server.await,
        }
    }

    /// Serves until `signal`, then shuts down within the grace period
    /// (`WIZBRAND_SHUTDOWN_GRACE_SECONDS`): no new connections (the listener closes),
    /// requests in flight finish (kept-alive connections close after their answer),
    /// background tasks stop at a safe point of their own (a sync between two
    /// operations), then the database pool closes. Past the grace period what is
    /// left is cut off.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Application {
            server,
            ops,
            pool,
            tasks,
            grace,
            ..
        } = self;
        // The ops listener (metrics, readiness details) serves beside the public one
        // and stops with it.
        let ops = ops.map(|(_, ops)| {
            let handle = ops.handle();
            tokio::spawn(ops);
            handle
        });
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        tokio::select! {
            served = &mut server => {
                // Not asked to stop: the server failed.
                tasks.shutdown(grace).await;
                return served.map_err(|e| anyhow::anyhow!("the HTTP server stopped: {e}"));
            }
            () = signal => {}
        }
        tracing::info!(
            grace_seconds = grace.as_secs(),
            "shutting down: no new connections; finishing requests in flight and background tasks"
        );
        let began = Instant::now();
        let stop_ops = async {
            if let Some(ops) = &ops {
                ops.stop(true).await;
            }
        };
        let ((), (), served, tasks_in_time) = tokio::join!(
            handle.stop(true),
            stop_ops,
            &mut server,
            tasks.shutdown(grace)
        );
        // What is left of the grace period, and a moment at least.
        let left = grace
            .saturating_sub(began.elapsed())
            .max(Duration::from_millis(200));
        if tokio::time::timeout(left, pool.close()).await.is_err() {
            tracing::warn!("database connections still in use after the shutdown; leaving them");
        }
        served.map_err(|e| anyhow::anyhow!("the HTTP server failed while stopping: {e}"))?;
        tracing::info!(
            seconds = began.elapsed().as_secs_f64(),
            tasks_in_time,
            "stopped"
        );
        Ok(())
    }
}

/// Resolves at the first SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops gracefully");
                std::future::pending::<()>().await;
            }
        }
    };
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM received"),
        () = interrupt => tracing::info!("Ctrl-C received"),
    }
}

/// What the background tasks work on.
struct Background {
    pool: PgPool,
    database_url: String,
    gate: Arc<GateState>,
    revocations: Arc<Revocations>,
    refresher: Arc<SessionRefresher>,
    oidc: Arc<OidcClient>,
    metrics: Metrics,
    scheduler: Option<Scheduler<KeycloakDirectory>>,
}

/// Every background task of `serve`, each supervised by `tasks` (restarted when it
/// ends early, stopped at shutdown).
fn start_tasks(tasks: &mut Tasks, b: Background) {
    let (gate, pool, url) = (b.gate, b.pool.clone(), b.database_url.clone());
    tasks.supervise("gate-refresh", move |stop| {
        crate::forward_auth::state::refresh(Arc::clone(&gate), pool.clone(), url.clone(), stop)
    });
    let (revocations, pool, url) = (
        Arc::clone(&b.revocations),
        b.pool.clone(),
        b.database_url.clone(),
    );
    tasks.supervise("revocations-refresh", move |stop| {
        crate::web::revocations::refresh(Arc::clone(&revocations), pool.clone(), url.clone(), stop)
    });
    let (refresher, pool, oidc, revocations, metrics) =
        (b.refresher, b.pool, b.oidc, b.revocations, b.metrics);
    tasks.supervise("session-refresh", move |stop| {
        crate::web::refresh::run(
            Arc::clone(&refresher),
            pool.clone(),
            Arc::clone(&oidc),
            Arc::clone(&revocations),
            metrics.clone(),
            stop,
        )
    });
    if let Some(scheduler) = b.scheduler {
        let scheduler = Arc::new(scheduler);
        let runner = Arc::clone(&scheduler);
        tasks.supervise("sync-runner", move |stop| runner.runner_task(stop));
        let listener = Arc::clone(&scheduler);
        tasks.supervise("sync-changes", move |stop| listener.listener_task(stop));
        tasks.supervise("sync-cron", move |stop| scheduler.cron_task(stop));
    }
}

/// The in-memory state the handlers share with the background tasks.
struct Shared {
    gate: Arc<GateState>,
    revocations: Arc<Revocations>,
    oidc: Arc<OidcClient>,
    refresher: Arc<SessionRefresher>,
}

/// The ops listener's socket (`WIZBRAND_OPS_LISTEN`), unless it is off.
fn bind_ops(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    let Some(address) = config.ops.listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(address)
        .map_err(|e| anyhow::anyhow!("cannot listen on {address} (WIZBRAND_OPS_LISTEN): {e}"))?;
    Ok(Some(listener))
}

/// The ops server: metrics and readiness details, on a listener of its own that
/// Traefik does not route to (docs/operations.md). One worker: scrapes and probes only.
fn run_ops(
    listener: TcpListener,
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    metrics: web::Data<Metrics>,
    http: web::Data<reqwest::Client>,
    readiness: web::Data<crate::health::ReadinessCache>,
) -> anyhow::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(pool.clone())
            .app_data(config.clone())
            .app_data(metrics.clone())
            .app_data(http.clone())
            .app_data(readiness.clone())
            .configure(crate::health::ops_routes)
    })
    .workers(1)
    // Stopped with the public server by `Application::run_until`.
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok(server)
}

#[allow(clippy::too_many_arguments)]
fn run(
    listener: TcpListener,
    ops_listener: Option<TcpListener>,
    pool: PgPool,
    config: Config,
    metrics: Metrics,
    sync: Option<SyncHandle>,
    shared: Shared,
) -> anyhow::Result<(Server, Option<Server>)> {
    let Shared {
        gate,
        revocations,
        oidc,
        refresher,
    } = shared;
    let sessions = SessionSettings::from_config(&config)?;
    let session_settings = web::Data::new(sessions.clone());
    let host_cookies = web::Data::new(crate::web::app_host::HostCookies::from_config(&config)?);
    let security_headers = web::Data::new(crate::web::page::SecurityHeaders::new(&config)?);
    let throttle = web::Data::new(crate::web::throttle::SignInThrottle::new(
        config.signin_rate_per_minute,
    ));
    let readiness = web::Data::new(crate::health::ReadinessCache::default());
    let scim_limiter = web::Data::new(crate::scim::ScimLimiter::new(config.scim_rate_per_minute));
    let grace = config.shutdown_grace;
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
    let mailer = web::Data::new(crate::mail::Mailer::new(config.lifecycle.mail.as_ref())?);
    let accounts = web::Data::new(crate::keycloak::accounts::Accounts::new(
        &config.keycloak,
        Duration::from_secs(10),
    ));
    let providers = web::Data::new(crate::keycloak::providers::IdentityProviders::new(
        &config.keycloak,
        Duration::from_secs(10),
    ));
    let sealer = {
        let server_key = config.session_key.clone();
        web::Data::new(crate::manage::sso::SecretSealer::new(move |org, secret| {
            use secrecy::ExposeSecret;
            crate::web::token_vault::seal_setting(
                server_key.expose_secret(),
                &org.id.to_string(),
                secret,
            )
            .map_err(|e| crate::error::AppError::Internal(e.into()))
        }))
    };
    let pool = web::Data::new(pool);
    let config = web::Data::new(config);
    let ops = match ops_listener {
        Some(listener) => Some(run_ops(
            listener,
            pool.clone(),
            config.clone(),
            metrics.clone(),
            http.clone(),
            readiness.clone(),
        )?),
        None => None,
    };
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(metrics.clone())
            .app_data(session_settings.clone())
            .app_data(security_headers.clone())
            .app_data(host_cookies.clone())
            .app_data(throttle.clone())
            .app_data(readiness.clone())
            .app_data(scim_limiter.clone())
            .app_data(http.clone())
            .app_data(mailer.clone())
            .app_data(accounts.clone())
            .app_data(providers.clone())
            .app_data(sealer.clone())
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
                    // Between the guard and the session middleware: a cookie under a
                    // previous session key is sealed again under the current one.
                    .wrap(from_fn(crate::web::key_rotation::open_with_previous_keys))
                    // Outside the session middleware: it must not see a duplicated cookie.
                    .wrap(from_fn(crate::web::cookie_guard::refuse_duplicates))
                    .wrap(from_fn(crate::metrics::record))
                    .wrap(from_fn(echo_request_id))
                    .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
                    .configure(crate::health::routes)
                    .configure(crate::forward_auth::assertion::routes)
                    .configure(crate::api::routes)
                    .configure(crate::scim::routes)
                    .configure(crate::web::routes),
            )
    })
    // Signals are `serve`'s to handle (`Application::run_until`), not every server's.
    .disable_signals()
    .shutdown_timeout(grace.as_secs())
    .listen(listener)?
    .run();
    Ok((server, ops))
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
