//! The gate's in-memory state: rebuilt from Postgres at start, on every change
//! announced on `wizbrand_changes` (so every replica follows within a second), and
//! every 30 seconds as a safety net. Readers take an `Arc` and never wait on I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::PgPool;

use super::decide::{AppRule, GateSnapshot, HostPattern, OrgEntry};
use crate::db::changes::follow;
use crate::domain::{OrgSlug, Role};

/// The tables the gate's state is made of.
const GATE_TABLES: &[&str] = &["apps", "orgs", "users", "memberships"];

const SAFETY_NET: Duration = Duration::from_secs(30);
/// Changes within this window share one reload.
const SETTLE: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct GateState {
    current: RwLock<Arc<GateSnapshot>>,
    /// Moves with every new snapshot: a worker holding one checks this (a read of a
    /// line nobody writes between reloads) instead of taking the lock per request.
    version: AtomicU64,
}

impl GateState {
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> Arc<GateSnapshot> {
        self.current
            .read()
            .map(|s| Arc::clone(&s))
            .unwrap_or_default()
    }

    fn replace(&self, next: GateSnapshot) {
        if let Ok(mut slot) = self.current.write() {
            *slot = Arc::new(next);
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    pub async fn reload(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        self.replace(load(pool).await?);
        Ok(())
    }
}

/// Reads everything the gate needs; rows Postgres should never hold are skipped
/// with a warning rather than failing the whole reload.
pub async fn load(pool: &PgPool) -> Result<GateSnapshot, sqlx::Error> {
    let (apps, orgs, members) = tokio::try_join!(
        crate::db::gate::apps(pool),
        crate::db::gate::orgs(pool),
        crate::db::gate::members(pool)
    )?;
    let mut snapshot = GateSnapshot::default();
    for app in apps {
        match app.min_role.parse::<Role>() {
            Ok(min_role) => snapshot.apps.push(AppRule {
                host: HostPattern::parse(&app.host_pattern),
                key: app.key,
                name: app.name,
                required_feature: app.required_feature,
                min_role,
                pass_authorization: app.pass_authorization,
            }),
            Err(e) => tracing::warn!(app = app.key, error = %e, "app skipped"),
        }
    }
    for org in orgs {
        match OrgSlug::parse(&org.slug) {
            Ok(slug) => {
                snapshot.orgs.insert(
                    org.slug.clone(),
                    OrgEntry {
                        id: org.id,
                        slug,
                        active: org.status == "active",
                        features: org.features.into_iter().collect(),
                        hidden_apps: org.hidden_apps.into_iter().collect(),
                    },
                );
            }
            Err(e) => tracing::warn!(org = org.slug, error = %e, "org skipped"),
        }
    }
    for m in members {
        let roles: Vec<Role> = m.roles.iter().filter_map(|r| r.parse().ok()).collect();
        snapshot.add_member(m.keycloak_id, m.slug, roles);
    }
    Ok(snapshot)
}

/// Keeps `state` in step with Postgres until `stop` (a task of `startup`'s).
pub async fn refresh(
    state: Arc<GateState>,
    pool: PgPool,
    database_url: String,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut changes = follow(database_url, "gate", SETTLE, SAFETY_NET, stop);
    while let Some(change) = changes.next().await {
        if change.touches(GATE_TABLES) {
            reload_logged(&state, &pool).await;
        }
    }
}

async fn reload_logged(state: &GateState, pool: &PgPool) {
    if let Err(e) = state.reload(pool).await {
        tracing::warn!(error = %e, "gate state reload failed; keeping the last one");
    }
}
