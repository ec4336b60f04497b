//! Token refresh of browser sessions.
//!
//! wizbrand keeps each session's tokens server-side (`session_tokens`). While a session
//! is in use, its access token is refreshed shortly before it expires: that keeps the
//! Keycloak session alive exactly as long as the person is active, and a refresh that
//! Keycloak refuses (session ended, idle too long, user disabled) ends the session here.
//!
//! Requests only note that a session is in use ([`SessionRefresher::note_active`], no
//! I/O); a background task refreshes the due ones. Keycloak rotates refresh tokens, so
//! two refreshes of one session racing each other could sign the person out: each
//! refresh holds the session's row lock (`FOR UPDATE SKIP LOCKED`) across the call to
//! Keycloak, which makes it one at a time per session across every replica.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

use crate::db::sessions::RevocationRow;
use crate::oidc::client::{OidcClient, SignInError};
use crate::web::revocations::Revocations;
use crate::web::session::SignedIn;

/// Refresh when the access token has less than this left.
pub const REFRESH_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
/// How often the background task looks at the sessions in use.
const TICK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("session store: {0}")]
    Database(#[from] sqlx::Error),
    /// Keycloak could not be asked; the session goes on and the next tick retries.
    #[error(transparent)]
    Keycloak(#[from] crate::keycloak::KeycloakError),
    #[error("unexpected answer to the refresh: {0}")]
    Unexpected(String),
}

/// What one refresh attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Refreshed,
    /// Not due, or another refresh holds the session (it does the work).
    Skipped,
    /// Keycloak refused the refresh token: the session was ended everywhere.
    Ended,
}

impl RefreshOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshOutcome::Refreshed => "refreshed",
            RefreshOutcome::Skipped => "skipped",
            RefreshOutcome::Ended => "ended",
        }
    }
}

/// The sessions seen in use since the last tick whose refresh may be due.
#[derive(Default)]
pub struct SessionRefresher {
    /// Read-mostly: a due session is looked up on every request, inserted once a tick.
    active: RwLock<HashSet<String>>,
}

impl SessionRefresher {
    /// Called on every request with a session; allocates only the first time a due
    /// session is seen between two ticks.
    pub fn note_active(&self, user: &SignedIn) {
        if user.refresh_at > Utc::now().timestamp_millis() {
            return;
        }
        if self
            .active
            .read()
            .is_ok_and(|active| active.contains(&user.handle))
        {
            return;
        }
        if let Ok(mut active) = self.active.write() {
            active.insert(user.handle.clone());
        }
    }

    fn take_active(&self) -> Vec<String> {
        self.active
            .write()
            .map(|mut a| a.drain().collect())
            .unwrap_or_default()
    }
}

/// Refreshes the session `handle` if it is due and nobody else is refreshing it.
pub async fn refresh_session(
    pool: &PgPool,
    oidc: &OidcClient,
    revocations: &Revocations,
    handle: &str,
) -> Result<RefreshOutcome, RefreshError> {
    let mut tx = pool.begin().await?;
    let Some(due) = crate::db::sessions::lock_due_refresh(&mut tx, handle, REFRESH_MARGIN).await?
    else {
        return Ok(RefreshOutcome::Skipped);
    };
    match oidc.refresh(&due.refresh_token).await {
        Ok(tokens) => {
            crate::db::sessions::store_refreshed(
                &mut tx,
                handle,
                &tokens.access_token,
                tokens.refresh_token.as_deref(),
                tokens.id_token.as_deref(),
                tokens.access_expires_at(Utc::now()),
            )
            .await?;
            tx.commit().await?;
            Ok(RefreshOutcome::Refreshed)
        }
        Err(SignInError::Refused(reason)) => {
            // The Keycloak session is over: so is this one, on every replica.
            let sid = due.sid.as_deref();
            let sub = sid.is_none().then_some(due.sub.as_str());
            let revoked_at =
                crate::db::sessions::revoke(&mut *tx, sid, sub, due.expires_at).await?;
            crate::db::sessions::delete_tokens(&mut tx, handle).await?;
            tx.commit().await?;
            revocations.add(RevocationRow {
                sid: due.sid.clone(),
                sub: sub.map(str::to_owned),
                revoked_at,
            });
            tracing::info!(sub = %due.sub, %reason, "Keycloak refused the refresh; session ended");
            Ok(RefreshOutcome::Ended)
        }
        Err(SignInError::Keycloak(e)) => Err(e.into()),
        Err(SignInError::IdToken(reason)) => Err(RefreshError::Unexpected(reason)),
    }
}

/// Runs the background refresh of the sessions in use, for the life of the process.
pub fn spawn(
    refresher: Arc<SessionRefresher>,
    pool: PgPool,
    oidc: Arc<OidcClient>,
    revocations: Arc<Revocations>,
    metrics: crate::metrics::Metrics,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let active = refresher.take_active();
            if active.is_empty() {
                continue;
            }
            let due = match crate::db::sessions::refresh_due(&pool, &active, REFRESH_MARGIN).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the sessions due for refresh");
                    continue;
                }
            };
            for handle in due {
                let outcome = refresh_session(&pool, &oidc, &revocations, &handle).await;
                let label = match &outcome {
                    Ok(outcome) => outcome.as_str(),
                    Err(e) => {
                        tracing::warn!(error = %e, "session refresh failed; retried while the session is in use");
                        "failed"
                    }
                };
                metrics.session_refreshes.with_label_values(&[label]).inc();
            }
        }
    });
}
