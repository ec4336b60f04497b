//! Keycloak as the sync's [`Directory`] (the port is the sync's own): the `keycloak`
//! crate's admin API, with bounded concurrency, retries of transient failures, and
//! call counts ([`CountsCalls`]) for the run report.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;
use keycloak::types::{GroupRepresentation, RoleRepresentation, UserRepresentation};
use keycloak::{KeycloakAdmin, KeycloakError as CrateError};
use rand::Rng;
use tokio::sync::Semaphore;

use super::token::CachedServiceToken;
use crate::config::KeycloakConfig;
use crate::domain::Email;
use crate::sync::directory::{
    ATTR_WIZBRAND_USER, Attributes, CallStats, CountsCalls, Directory, DirectoryError, GroupInfo,
    UserInfo,
};

/// A failed call of the `keycloak` crate, named by our call name.
fn call_error(call: &'static str, e: CrateError) -> DirectoryError {
    let status = match &e {
        CrateError::HttpFailure { status, .. } => Some(*status),
        CrateError::ReqwestFailure(r) => r.status().map(|s| s.as_u16()),
    };
    DirectoryError::Call {
        call,
        status,
        message: e.to_string(),
    }
}

const PAGE: i32 = 500;
/// Pages of full user representations are smaller: with Keycloak's user cache cold a
/// page of 500 took longer than the call's time-out when 8 were read side by side,
/// and every retry read it again.
const USERS_PAGE: i32 = 100;
const ATTEMPTS: u32 = 4;
const EVENTS_PAGE: i32 = 1000;

pub struct KeycloakDirectory {
    admin: KeycloakAdmin<CachedServiceToken>,
    token: CachedServiceToken,
    realm: String,
    permits: Semaphore,
    /// The permits' number.
    concurrency: usize,
    stats: Mutex<CallStats>,
    /// Realm roles by name, as `…/role-mappings/realm/available` lists them: the
    /// service account may not read `/roles` (that needs `view-realm`), and a mapping
    /// must name the role's id. Filled once, refilled when a role is not found.
    realm_roles: tokio::sync::Mutex<HashMap<String, RoleRepresentation>>,
}

impl KeycloakDirectory {
    pub fn new(config: &KeycloakConfig, concurrency: usize, timeout: Duration) -> Self {
        let http = super::http_client(timeout);
        let token = CachedServiceToken::new(http.clone(), config.clone());
        KeycloakDirectory {
            admin: KeycloakAdmin::new(
                config.internal_url.as_str().trim_end_matches('/'),
                token.clone(),
                http,
            ),
            token,
            realm: config.realm.clone(),
            permits: Semaphore::new(concurrency.max(1)),
            concurrency: concurrency.max(1),
            stats: Mutex::new(CallStats::default()),
            realm_roles: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// One admin call: bounded concurrency, counted, retried with exponential backoff
    /// and jitter while the failure is transient.
    async fn call<T, F, Fut>(&self, name: &'static str, f: F) -> Result<T, DirectoryError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CrateError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| DirectoryError::Unexpected(e.to_string()))?;
                if let Ok(mut stats) = self.stats.lock() {
                    *stats.calls.entry(name).or_default() += 1;
                }
                let started = std::time::Instant::now();
                let result = f().await.map_err(|e| call_error(name, e));
                if let Ok(mut stats) = self.stats.lock() {
                    *stats.seconds.entry(name).or_default() += started.elapsed().as_secs_f64();
                }
                result
            };
            match result {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    let base = 200u64 * 2u64.pow(attempt - 1);
                    let jitter = rand::rng().random_range(0..=base / 2);
                    tracing::warn!(call = name, attempt, error = %e, "retrying Keycloak call");
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                }
                other => return other,
            }
        }
    }
}

fn attributes_of(raw: Option<&std::collections::HashMap<String, Vec<String>>>) -> Attributes {
    raw.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn group_info(g: GroupRepresentation) -> GroupInfo {
    GroupInfo {
        attributes: attributes_of(g.attributes.as_ref()),
        realm_roles: g.realm_roles.unwrap_or_default().into_iter().collect(),
        client_roles: g
            .client_roles
            .unwrap_or_default()
            .into_iter()
            .map(|(client, roles)| (client, roles.into_iter().collect()))
            .collect(),
        id: g.id.unwrap_or_default(),
        name: g.name.unwrap_or_default(),
    }
}

fn user_info(u: UserRepresentation) -> UserInfo {
    UserInfo {
        attributes: attributes_of(u.attributes.as_ref()),
        email: u.email.as_deref().and_then(|e| Email::parse(e).ok()),
        email_verified: u.email_verified.unwrap_or(false),
        username: u.username,
        id: u.id.unwrap_or_default(),
    }
}

fn created_id(
    call: &'static str,
    response: keycloak::DefaultResponse,
) -> Result<String, DirectoryError> {
    response.to_id().map(str::to_owned).ok_or_else(|| {
        DirectoryError::Unexpected(format!("{call}: Keycloak gave no id of what it created"))
    })
}

impl KeycloakDirectory {
    /// Every item of a paged listing: pages of `PAGE` until a short one.
    async fn all_pages<R, T, F, Fut>(
        &self,
        name: &'static str,
        fetch: F,
        convert: fn(R) -> T,
    ) -> Result<Vec<T>, DirectoryError>
    where
        F: Fn(i32) -> Fut,
        Fut: Future<Output = Result<Vec<R>, CrateError>>,
    {
        let mut out = Vec::new();
        loop {
            let first = i32::try_from(out.len()).unwrap_or(i32::MAX);
            let page = self.call(name, || fetch(first)).await?;
            let full = page.len() == PAGE as usize;
            out.extend(page.into_iter().map(convert));
            if !full {
                return Ok(out);
            }
        }
    }

    /// The representations of these realm roles, for a mapping to `group_id`. The
    /// roles missing from the cache are looked up among those the group may still be
    /// given (which holds every role it lacks); one lookup serves concurrent callers.
    async fn realm_role_reps(
        &self,
        group_id: &str,
        roles: &BTreeSet<String>,
        refresh: bool,
    ) -> Result<Vec<RoleRepresentation>, DirectoryError> {
        let mut cache = self.realm_roles.lock().await;
        if refresh {
            cache.clear();
        }
        if roles.iter().any(|r| !cache.contains_key(r)) {
            let available = self
                .call("read:available_realm_roles", || {
                    self.admin
                        .realm_groups_with_group_id_role_mappings_realm_available_get(
                            &self.realm,
                            group_id,
                        )
                })
                .await?;
            for role in available {
                if let Some(name) = role.name.clone() {
                    cache.insert(name, role);
                }
            }
        }
        roles
            .iter()
            .map(|name| {
                cache.get(name).cloned().ok_or_else(|| {
                    DirectoryError::Unexpected(format!(
                        "realm role {name} does not exist or the service account may not map it"
                    ))
                })
            })
            .collect()
    }

    async fn users_page(&self, first: i32) -> Result<Vec<UserInfo>, DirectoryError> {
        let page = self
            .call("read:users", || {
                self.admin.realm_users_get(
                    &self.realm,
                    Some(false),
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(first),
                    None,
                    None,
                    None,
                    None,
                    Some(USERS_PAGE),
                    None,
                    None,
                    None,
                )
            })
            .await?;
        Ok(page.into_iter().map(user_info).collect())
    }
}

impl Directory for KeycloakDirectory {
    fn concurrency(&self) -> usize {
        self.concurrency
    }

    async fn group_by_path(&self, path: &str) -> Result<Option<GroupInfo>, DirectoryError> {
        let path = path.trim_start_matches('/');
        match self
            .call("read:group_by_path", || {
                self.admin
                    .realm_group_by_path_with_path_get(&self.realm, path)
            })
            .await
        {
            Ok(g) => Ok(Some(group_info(g))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn child_groups(&self, parent_id: &str) -> Result<Vec<GroupInfo>, DirectoryError> {
        self.all_pages(
            "read:child_groups",
            |first| {
                self.admin.realm_groups_with_group_id_children_get(
                    &self.realm,
                    parent_id,
                    Some(false),
                    None,
                    Some(first),
                    Some(PAGE),
                    None,
                    Some(true),
                )
            },
            group_info,
        )
        .await
    }

    async fn group_members(&self, group_id: &str) -> Result<Vec<UserInfo>, DirectoryError> {
        self.all_pages(
            "read:group_members",
            |first| {
                self.admin.realm_groups_with_group_id_members_get(
                    &self.realm,
                    group_id,
                    Some(true),
                    Some(first),
                    Some(PAGE),
                )
            },
            user_info,
        )
        .await
    }

    async fn all_users(&self) -> Result<Vec<UserInfo>, DirectoryError> {
        // Full representations are slow to page through (Keycloak loads each user's
        // attributes), so the pages are fetched side by side, bounded by the permits.
        let count = self
            .call("read:users_count", || {
                self.admin.realm_users_count_get(
                    &self.realm,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            })
            .await?;
        let pages = count.max(0) / USERS_PAGE + 1;
        let mut fetches = Vec::new();
        for page in 0..pages {
            fetches.push(self.users_page(page * USERS_PAGE));
        }
        let mut out = Vec::new();
        for page in join_all(fetches).await {
            out.extend(page?);
        }
        // A user created while paging is found by the next run; a page shifted by a
        // deletion may repeat someone, so duplicates are dropped.
        let mut seen = std::collections::HashSet::new();
        out.retain(|u| seen.insert(u.id.clone()));
        Ok(out)
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserInfo>, DirectoryError> {
        match self
            .call("read:user_by_id", || {
                self.admin
                    .realm_users_with_user_id_get(&self.realm, id, None)
            })
            .await
        {
            Ok(u) => Ok(Some(user_info(u))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn users_claiming(&self, email: &Email) -> Result<Vec<UserInfo>, DirectoryError> {
        let search = |by_email: bool| {
            self.call("read:users_claiming", move || {
                let value = Some(email.to_string());
                let (email, username) = if by_email {
                    (value, None)
                } else {
                    (None, value)
                };
                self.admin.realm_users_get(
                    &self.realm,
                    Some(false),
                    None,
                    None,
                    email,
                    None,
                    None,
                    Some(true),
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(5),
                    None,
                    None,
                    username,
                )
            })
        };
        let (by_email, by_username) = tokio::join!(search(true), search(false));
        let mut found: Vec<UserInfo> = by_email?
            .into_iter()
            .chain(by_username?)
            .map(user_info)
            .filter(|u| {
                u.email.as_ref() == Some(email)
                    || u.username
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(email.as_str()))
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        found.retain(|u| seen.insert(u.id.clone()));
        Ok(found)
    }

    async fn create_top_group(&self, name: &str) -> Result<String, DirectoryError> {
        let response = self
            .call("write:create_group", || {
                self.admin.realm_groups_post(
                    &self.realm,
                    GroupRepresentation {
                        name: Some(name.to_owned()),
                        ..Default::default()
                    },
                )
            })
            .await?;
        created_id("create_group", response)
    }

    async fn create_child_group(
        &self,
        parent_id: &str,
        name: &str,
        attributes: &Attributes,
    ) -> Result<String, DirectoryError> {
        let body = GroupRepresentation {
            name: Some(name.to_owned()),
            attributes: Some(attributes.clone().into_iter().collect()),
            ..Default::default()
        };
        let response = self
            .call("write:create_group", || {
                self.admin.realm_groups_with_group_id_children_post(
                    &self.realm,
                    parent_id,
                    body.clone(),
                )
            })
            .await?;
        created_id("create_group", response)
    }

    async fn update_group(
        &self,
        group_id: &str,
        name: &str,
        attributes: &Attributes,
    ) -> Result<(), DirectoryError> {
        let body = GroupRepresentation {
            id: Some(group_id.to_owned()),
            name: Some(name.to_owned()),
            attributes: Some(attributes.clone().into_iter().collect()),
            ..Default::default()
        };
        self.call("write:update_group", || {
            self.admin
                .realm_groups_with_group_id_put(&self.realm, group_id, body.clone())
        })
        .await
        .map(|_| ())
    }

    async fn delete_group(&self, group_id: &str) -> Result<(), DirectoryError> {
        match self
            .call("write:delete_group", || {
                self.admin
                    .realm_groups_with_group_id_delete(&self.realm, group_id)
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_user(&self, email: &Email, member: &str) -> Result<String, DirectoryError> {
        let body = UserRepresentation {
            attributes: Some(
                [(ATTR_WIZBRAND_USER.to_owned(), vec![member.to_owned()])]
                    .into_iter()
                    .collect(),
            ),
            username: Some(email.to_string()),
            email: Some(email.to_string()),
            email_verified: Some(false),
            enabled: Some(true),
            required_actions: Some(vec!["UPDATE_PASSWORD".into(), "VERIFY_EMAIL".into()]),
            ..Default::default()
        };
        let response = self
            .call("write:create_user", || {
                self.admin.realm_users_post(&self.realm, body.clone())
            })
            .await?;
        created_id("create_user", response)
    }

    async fn add_member(&self, user_id: &str, group_id: &str) -> Result<(), DirectoryError> {
        self.call("write:add_member", || {
            self.admin
                .realm_users_with_user_id_groups_with_group_id_put(&self.realm, user_id, group_id)
        })
        .await
        .map(|_| ())
    }

    async fn remove_member(&self, user_id: &str, group_id: &str) -> Result<(), DirectoryError> {
        self.call("write:remove_member", || {
            self.admin
                .realm_users_with_user_id_groups_with_group_id_delete(
                    &self.realm,
                    user_id,
                    group_id,
                )
        })
        .await
        .map(|_| ())
    }

    async fn update_user_attributes(
        &self,
        user_id: &str,
        change: &(dyn Fn(&Attributes) -> Attributes + Sync),
    ) -> Result<(), DirectoryError> {
        let mut user = self
            .call("read:user", || {
                self.admin
                    .realm_users_with_user_id_get(&self.realm, user_id, None)
            })
            .await?;
        let next = change(&attributes_of(user.attributes.as_ref()));
        user.attributes = Some(next.into_iter().collect());
        // Fields the GET returns but the PUT must not carry back.
        user.access = None;
        self.call("write:update_user", || {
            self.admin
                .realm_users_with_user_id_put(&self.realm, user_id, user.clone())
        })
        .await
        .map(|_| ())
    }

    async fn map_realm_roles(
        &self,
        group_id: &str,
        roles: &BTreeSet<String>,
    ) -> Result<(), DirectoryError> {
        let reps = self.realm_role_reps(group_id, roles, false).await?;
        let post = |reps: Vec<RoleRepresentation>| {
            self.call("write:map_realm_roles", move || {
                self.admin
                    .realm_groups_with_group_id_role_mappings_realm_post(
                        &self.realm,
                        group_id,
                        reps.clone(),
                    )
            })
        };
        match post(reps).await {
            // A role deleted and made again has a new id: look it up afresh once.
            Err(e) if e.status() == Some(404) => {
                post(self.realm_role_reps(group_id, roles, true).await?)
                    .await
                    .map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    async fn unmap_realm_roles(
        &self,
        group_id: &str,
        roles: &BTreeSet<String>,
    ) -> Result<(), DirectoryError> {
        // The group's own mappings carry the ids the DELETE needs.
        let mapped = self
            .call("read:realm_role_mappings", || {
                self.admin
                    .realm_groups_with_group_id_role_mappings_realm_get(&self.realm, group_id)
            })
            .await?;
        let gone: Vec<RoleRepresentation> = mapped
            .into_iter()
            .filter(|r| r.name.as_ref().is_some_and(|n| roles.contains(n)))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        self.call("write:unmap_realm_roles", || {
            self.admin
                .realm_groups_with_group_id_role_mappings_realm_delete(
                    &self.realm,
                    group_id,
                    gone.clone(),
                )
        })
        .await
        .map(|_| ())
    }

    async fn unmap_client_roles(
        &self,
        group_id: &str,
        client: &str,
        roles: &BTreeSet<String>,
    ) -> Result<(), DirectoryError> {
        // The DELETE needs the client's internal id. Only the group's full mappings
        // name it, and Keycloak shows them only to a caller that may view clients
        // (`view-clients`, which also reads client secrets; `query-clients` lists
        // nothing). Without it the drift is reported, not repaired.
        let mappings = self
            .call("read:role_mappings", || {
                self.admin
                    .realm_groups_with_group_id_role_mappings_get(&self.realm, group_id)
            })
            .await?;
        let hidden = || {
            DirectoryError::Unexpected(format!(
                "client roles of {client} are mapped to this group, but the service account \
                 may not see client ids (no view-clients) to remove them: remove them by hand"
            ))
        };
        let found = mappings
            .client_mappings
            .unwrap_or_default()
            .into_values()
            .find(|m| m.client.as_deref() == Some(client))
            .ok_or_else(hidden)?;
        let client_uuid = found.id.ok_or_else(hidden)?;
        let gone: Vec<RoleRepresentation> = found
            .mappings
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.name.as_ref().is_some_and(|n| roles.contains(n)))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        self.call("write:unmap_client_roles", || {
            self.admin
                .realm_groups_with_group_id_role_mappings_clients_with_client_id_delete(
                    &self.realm,
                    group_id,
                    &client_uuid,
                    gone.clone(),
                )
        })
        .await
        .map(|_| ())
    }

    async fn changed_by_others_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<bool>, DirectoryError> {
        let config = self
            .call("read:events_config", || {
                self.admin.realm_events_config_get(&self.realm)
            })
            .await?;
        if config.admin_events_enabled != Some(true) {
            return Ok(None);
        }
        let token = self
            .token
            .token()
            .await
            .map_err(|e| DirectoryError::Unexpected(e.to_string()))?;
        let Some(me) = super::token::subject_of(&token) else {
            return Ok(None);
        };
        let from = since.timestamp_millis().to_string();
        let mut first = 0;
        loop {
            let page = self
                .call("read:admin_events", || {
                    self.admin.realm_admin_events_get(
                        &self.realm,
                        None,
                        None,
                        None,
                        None,
                        Some(from.clone()),
                        None,
                        Some("asc".to_owned()),
                        Some(first),
                        Some(EVENTS_PAGE),
                        None,
                        None,
                        None,
                    )
                })
                .await?;
            let others = page.iter().any(|event| {
                event
                    .auth_details
                    .as_ref()
                    .and_then(|a| a.user_id.as_deref())
                    != Some(me.as_str())
            });
            if others {
                return Ok(Some(true));
            }
            if page.len() < EVENTS_PAGE as usize {
                return Ok(Some(false));
            }
            first += EVENTS_PAGE;
        }
    }
}

impl CountsCalls for KeycloakDirectory {
    fn take_call_stats(&self) -> CallStats {
        self.stats
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}
