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

use crate::db::sessions::{DueRefresh, RevocationRow};
use crate::oidc::client::{GrantRefused, OidcClient, SignInError};
use crate::web::revocations::Revocations;
use crate::web::token_vault::{Tokens, Vault, VaultError};

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
    /// Keycloak refused for a reason other than the session being over (e.g.
    /// `invalid_client` after a secret rotation): the session goes on, the next tick
    /// retries, and operators are told.
    #[error(transparent)]
    Refused(GrantRefused),
    #[error("unexpected answer to the refresh: {0}")]
    Unexpected(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl RefreshError {
    /// The `outcome` label of `wizbrand_session_refreshes_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RefreshError::Refused(_) => "refused",
            _ => "failed",
        }
    }

    /// The OAuth error code, when Keycloak named one.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            RefreshError::Refused(refused) => Some(refused.code.as_str()),
            _ => None,
        }
    }
}

/// What a failed refresh means for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// The Keycloak session is over: end this one everywhere.
    EndSession,
    /// Anything else (client misconfigured, Keycloak down or erring): keep the
    /// session, retry on the next tick while it is in use.
    KeepAndRetry,
}

/// Only `invalid_grant` ends a session: signing everyone out because of a rotated
/// client secret or a Keycloak hiccup would punish the people for the operator's fault.
pub fn after_failure(error: &SignInError) -> AfterFailure {
    match error {
        SignInError::Refused(refused) if refused.grant_is_dead() => AfterFailure::EndSession,
        _ => AfterFailure::KeepAndRetry,
    }
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
    /// Called on every request with a session (its handle, and from when, in unix
    /// milliseconds, its refresh may be due); allocates only the first time a due
    /// session is seen between two ticks.
    pub fn note_active(&self, handle: &str, refresh_at: i64) {
        if refresh_at > Utc::now().timestamp_millis() {
            return;
        }
        if self
            .active
            .read()
            .is_ok_and(|active| active.contains(handle))
        {
            return;
        }
        if let Ok(mut active) = self.active.write() {
            active.insert(handle.to_owned());
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
    refresh_within(pool, oidc, revocations, handle, REFRESH_MARGIN)
        .await
        .map(|(outcome, _)| outcome)
}

/// How a platform-admin re-check of a web session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminCheck {
    /// Keycloak answered: the new access token says whether the person is one now.
    Checked { platform_admin: bool },
    /// Keycloak ended the session meanwhile.
    Ended,
    /// No answer this time (another refresh holds the session, no refresh token, an
    /// error): the caller treats the person as no platform admin for this request.
    Unknown,
}

/// Re-reads a web session's platform-admin role from Keycloak now: a refresh whatever
/// the access token's expiry (the same locked, rotation-safe step as the background
/// refresh), whose new access token says whether the realm role is still there.
pub async fn recheck_admin(
    pool: &PgPool,
    oidc: &OidcClient,
    verifier: &crate::oidc::jwks::TokenVerifier,
    revocations: &Revocations,
    handle: &str,
    session_ttl: chrono::Duration,
) -> AdminCheck {
    // Every access token is "due" within a margin as long as the session itself.
    let margin = session_ttl;
    match refresh_within(pool, oidc, revocations, handle, margin).await {
        Ok((RefreshOutcome::Refreshed, Some(access_token))) => {
            match verifier.verify(&access_token).await {
                Ok(principal) => AdminCheck::Checked {
                    platform_admin: principal.platform_admin,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "refreshed access token did not verify");
                    AdminCheck::Unknown
                }
            }
        }
        Ok((RefreshOutcome::Ended, _)) => AdminCheck::Ended,
        Ok(_) => AdminCheck::Unknown,
        Err(e) => {
            tracing::warn!(error = %e, "platform-admin re-check failed; not an admin for now");
            AdminCheck::Unknown
        }
    }
}

/// [`refresh_session`] with the margin given; a refreshed session also hands back its
/// new access token.
async fn refresh_within(
    pool: &PgPool,
    oidc: &OidcClient,
    revocations: &Revocations,
    handle: &str,
    margin: chrono::Duration,
) -> Result<(RefreshOutcome, Option<String>), RefreshError> {
    let vault = Vault::for_handle(handle);
    let mut tx = pool.begin().await?;
    let Some(due) = crate::db::sessions::lock_due_refresh(&mut tx, vault.row_id(), margin).await?
    else {
        return Ok((RefreshOutcome::Skipped, None));
    };
    let stored = match vault.open(&due.sealed) {
        Ok(stored) => stored,
        Err(e) => {
            // Written by something other than wizbrand: trust nothing of the session.
            end_session(&mut tx, revocations, &due, vault.row_id()).await?;
            tx.commit().await?;
            tracing::warn!(sub = %due.sub, error = %e, "session tokens do not open; session ended");
            return Ok((RefreshOutcome::Ended, None));
        }
    };
    let Some(refresh_token) = stored.refresh_token.as_deref() else {
        return Ok((RefreshOutcome::Skipped, None));
    };
    match oidc.refresh(refresh_token).await {
        Ok(tokens) => {
            // Keycloak may leave out a new refresh or ID token: the old one stays.
            let renewed = Tokens {
                id_token: tokens.id_token.clone().unwrap_or(stored.id_token),
                access_token: tokens.access_token.clone(),
                refresh_token: tokens.refresh_token.clone().or(stored.refresh_token),
            };
            crate::db::sessions::store_refreshed(
                &mut tx,
                vault.row_id(),
                &vault.seal(&renewed)?,
                renewed.refresh_token.is_some(),
                tokens.access_expires_at(Utc::now()),
            )
            .await?;
            tx.commit().await?;
            Ok((RefreshOutcome::Refreshed, Some(tokens.access_token)))
        }
        Err(reason) if after_failure(&reason) == AfterFailure::EndSession => {
            // The Keycloak session is over: so is this one, on every replica.
            end_session(&mut tx, revocations, &due, vault.row_id()).await?;
            tx.commit().await?;
            tracing::info!(sub = %due.sub, %reason, "Keycloak refused the refresh; session ended");
            Ok((RefreshOutcome::Ended, None))
        }
        // Kept: the transaction rolls back, the row stays due, the next tick retries.
        Err(SignInError::Refused(refused)) => Err(RefreshError::Refused(refused)),
        Err(SignInError::Keycloak(e)) => Err(e.into()),
        Err(SignInError::IdToken(reason)) => Err(RefreshError::Unexpected(reason)),
    }
}

/// Ends a session on every replica (a revocation) and forgets its tokens, within `tx`.
async fn end_session(
    tx: &mut sqlx::PgConnection,
    revocations: &Revocations,
    due: &DueRefresh,
    row_id: &str,
) -> Result<(), RefreshError> {
    let sid = due.sid.as_deref();
    let sub = sid.is_none().then_some(due.sub.as_str());
    let revoked_at = crate::db::sessions::revoke(&mut *tx, sid, sub, due.expires_at).await?;
    crate::db::sessions::delete_tokens(tx, row_id).await?;
    // Applied here before the commit: a failed commit leaves this replica stricter
    // than Postgres until the next reload, never laxer.
    revocations.add(RevocationRow {
        sid: due.sid.clone(),
        sub: sub.map(str::to_owned),
        revoked_at,
    });
    Ok(())
}

/// The background refresh of the sessions in use, until `stop` (a task of
/// `startup`'s). It stops between two sessions, never inside a refresh: Keycloak has
/// rotated the refresh token by the time it answers, and a refresh cut off before the
/// new one is stored would end the person's session.
pub async fn run(
    refresher: Arc<SessionRefresher>,
    pool: PgPool,
    oidc: Arc<OidcClient>,
    revocations: Arc<Revocations>,
    metrics: crate::metrics::Metrics,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let active = refresher.take_active();
        if active.is_empty() {
            continue;
        }
        // Postgres knows the sessions by row id only (derived from the handle).
        let mut by_row: std::collections::HashMap<String, String> = active
            .into_iter()
            .map(|handle| (Vault::for_handle(&handle).row_id().to_owned(), handle))
            .collect();
        let rows: Vec<String> = by_row.keys().cloned().collect();
        let due = match crate::db::sessions::refresh_due(&pool, &rows, REFRESH_MARGIN).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the sessions due for refresh");
                continue;
            }
        };
        for handle in due.iter().filter_map(|row| by_row.remove(row)) {
            if stop.is_cancelled() {
                return;
            }
            let outcome = refresh_session(&pool, &oidc, &revocations, &handle).await;
            let label = match &outcome {
                Ok(outcome) => outcome.as_str(),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        oauth_error = e.oauth_error().unwrap_or("-"),
                        "session refresh failed; the session is kept and the refresh retried while it is in use"
                    );
                    e.metric_label()
                }
            };
            metrics.session_refreshes.with_label_values(&[label]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keycloak::KeycloakError;

    fn refused(status: u16, code: &str) -> SignInError {
        GrantRefused {
            status,
            code: code.into(),
        }
        .into()
    }

    #[test]
    fn only_invalid_grant_ends_the_session() {
        assert_eq!(
            after_failure(&refused(400, "invalid_grant")),
            AfterFailure::EndSession
        );
        for kept in [
            refused(401, "invalid_client"),
            refused(400, "unauthorized_client"),
            refused(400, "invalid_request"),
            refused(400, "unsupported_grant_type"),
            refused(403, "403 Forbidden"),
            refused(429, "429 Too Many Requests"),
            KeycloakError::Status {
                what: "the token refresh",
                status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
            }
            .into(),
            SignInError::IdToken("odd".into()),
        ] {
            assert_eq!(after_failure(&kept), AfterFailure::KeepAndRetry, "{kept}");
        }
    }

    #[test]
    fn a_kept_refusal_is_counted_apart_and_names_its_code() {
        let e = RefreshError::Refused(GrantRefused {
            status: 401,
            code: "invalid_client".into(),
        });
        assert_eq!(e.metric_label(), "refused");
        assert_eq!(e.oauth_error(), Some("invalid_client"));
        let down = RefreshError::Unexpected("x".into());
        assert_eq!(down.metric_label(), "failed");
        assert_eq!(down.oauth_error(), None);
    }
}
