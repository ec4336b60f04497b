//! Asking the scheduler for a sync, on the record.

use sqlx::PgPool;

use super::{actor_name, commit_audited};
use crate::db::audit::Entry;
use crate::domain::Principal;
use crate::error::AppError;
use crate::sync::Trigger;
use crate::sync::plan::Scope;
use crate::sync::scheduler::SyncHandle;

/// Requests a full sync (platform admins); the scheduler of this process runs it.
/// `trigger`: where it was asked for (the API, the sync page), as the run records it.
pub async fn request(
    pool: &PgPool,
    who: &Principal,
    handle: Option<&SyncHandle>,
    trigger: Trigger,
) -> Result<(), AppError> {
    super::platform_only(who.platform_admin)?;
    let Some(handle) = handle else {
        return Err(AppError::Unavailable {
            dependency: "the sync scheduler (off: WIZBRAND_SYNC_ENABLED=false)",
            source: anyhow::anyhow!("the scheduler is not running in this process"),
        });
    };
    commit_audited(
        pool.begin().await?,
        Entry {
            actor: actor_name(who),
            action: "sync.request",
            target: "all",
            org_id: None,
            before: None,
            after: None,
        },
    )
    .await?;
    handle.request(Scope::All, trigger);
    Ok(())
}
