//! The port the sync needs from an identity provider: a small trait of its own, so
//! the reconcile logic does not depend on Keycloak's admin API. `keycloak::directory`
//! adapts Keycloak to it; tests use an in-memory one (`sync::memory`).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use crate::domain::Email;
pub use crate::sync::plan::{ATTR_WIZBRAND_USER, Attributes};

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("Keycloak: {call} failed: {message}")]
    Call {
        call: &'static str,
        status: Option<u16>,
        message: String,
    },
    #[error("Keycloak: {0}")]
    Unexpected(String),
}

impl DirectoryError {
    /// The HTTP status the call failed with, when it got that far.
    pub fn status(&self) -> Option<u16> {
        match self {
            DirectoryError::Call { status, .. } => *status,
            DirectoryError::Unexpected(_) => None,
        }
    }

    /// Worth another try: rate limiting, server errors, time-outs, refused connections.
    pub fn is_transient(&self) -> bool {
        match self {
            DirectoryError::Call { status, .. } => match status {
                Some(s) => *s == 429 || *s >= 500,
                None => true,
            },
            DirectoryError::Unexpected(_) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub id: String,
    pub name: String,
    pub attributes: Attributes,
    /// Role mappings, as full group representations carry them (names only).
    pub realm_roles: BTreeSet<String>,
    pub client_roles: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub id: String,
    pub username: Option<String>,
    pub email: Option<Email>,
    pub email_verified: bool,
    pub attributes: Attributes,
}

/// What the sync needs from Keycloak. The futures are `Send` so that a runner generic
/// over the directory can live on a spawned task; implementations write `async fn`.
pub trait Directory: Send + Sync {
    /// How many calls it serves at once (the sync keeps about that many operations
    /// under way).
    fn concurrency(&self) -> usize;

    fn group_by_path(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<GroupInfo>, DirectoryError>> + Send;
    fn child_groups(
        &self,
        parent_id: &str,
    ) -> impl Future<Output = Result<Vec<GroupInfo>, DirectoryError>> + Send;
    fn group_members(
        &self,
        group_id: &str,
    ) -> impl Future<Output = Result<Vec<UserInfo>, DirectoryError>> + Send;
    fn all_users(&self) -> impl Future<Output = Result<Vec<UserInfo>, DirectoryError>> + Send;
    fn user_by_id(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<UserInfo>, DirectoryError>> + Send;
    /// Every account whose email or username is `email` (exact matches).
    fn users_claiming(
        &self,
        email: &Email,
    ) -> impl Future<Output = Result<Vec<UserInfo>, DirectoryError>> + Send;

    fn create_top_group(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<String, DirectoryError>> + Send;
    fn create_child_group(
        &self,
        parent_id: &str,
        name: &str,
        attributes: &Attributes,
    ) -> impl Future<Output = Result<String, DirectoryError>> + Send;
    fn update_group(
        &self,
        group_id: &str,
        name: &str,
        attributes: &Attributes,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;
    fn delete_group(
        &self,
        group_id: &str,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;
    /// Creates the account of a member; `member` (the Postgres user id) goes into the
    /// admin-only attribute `wizbrand_user` ([`ATTR_WIZBRAND_USER`]), so a run that dies
    /// before it records the new id still knows the account as its own next time.
    fn create_user(
        &self,
        email: &Email,
        member: &str,
    ) -> impl Future<Output = Result<String, DirectoryError>> + Send;
    fn add_member(
        &self,
        user_id: &str,
        group_id: &str,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;
    fn remove_member(
        &self,
        user_id: &str,
        group_id: &str,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;
    /// Read-modify-write of a user's attributes: every other field and attribute is
    /// kept (Keycloak's PUT replaces the whole user).
    fn update_user_attributes(
        &self,
        user_id: &str,
        change: &(dyn Fn(&Attributes) -> Attributes + Sync),
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;
    /// Maps realm roles (by name) to a group.
    fn map_realm_roles(
        &self,
        group_id: &str,
        roles: &BTreeSet<String>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;
    /// Removes realm-role mappings (by name) from a group.
    fn unmap_realm_roles(
        &self,
        group_id: &str,
        roles: &BTreeSet<String>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;
    /// Removes client-role mappings (client by `clientId`, roles by name) from a group.
    fn unmap_client_roles(
        &self,
        group_id: &str,
        client: &str,
        roles: &BTreeSet<String>,
    ) -> impl Future<Output = Result<(), DirectoryError>> + Send;

    /// Whether anyone but this service account changed anything in the realm since
    /// `since`, by Keycloak's admin event log; `None` when the log is off and cannot say.
    fn changed_by_others_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Option<bool>, DirectoryError>> + Send;
}

/// Keycloak calls made, by name (`read:…`, `write:…`), and the seconds spent waiting
/// for their answers by name, summed over calls that ran side by side: where a run's
/// time goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    pub calls: BTreeMap<&'static str, u64>,
    pub seconds: BTreeMap<&'static str, f64>,
}

/// A directory that counts its calls for the run report (Keycloak's does). Kept out
/// of [`Directory`], the port, which is only what the sync reads and writes.
pub trait CountsCalls {
    /// The calls made since the last time this was asked.
    fn take_call_stats(&self) -> CallStats;
}
