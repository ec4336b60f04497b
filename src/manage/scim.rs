//! The changes an org's directory makes over SCIM, and the SCIM tokens and settings an
//! ORG_ADMIN manages. The same rules as the API and the pages hold: the policy's
//! `may_change_member` (the token acts as an ORG_ADMIN of its own org, nothing more),
//! an org keeps an ORG_ADMIN, every change is audited (actor `scim:<token id>`), and the
//! membership rows the gate and the sync follow are the only effect outside SCIM's own
//! tables.
//!
//! What SCIM may touch: the users it provisioned in its org. A member an admin added by
//! hand is left alone (a create or an address change that names them is a 409) unless
//! an ORG_ADMIN lets SCIM adopt such members. SCIM never changes a `users` row or a
//! Keycloak account (both are shared by every org the person belongs to), so it cannot
//! reach another org or anyone's platform-admin role.

use base64::Engine;
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::members::{LAST_ADMIN, canonical_roles, strings};
use super::{actor_name, authorized_org, commit_audited, parse_roles};
use crate::db;
use crate::db::audit::{Actor, Entry};
use crate::db::orgs::Org;
use crate::db::scim_tokens::ScimToken;
use crate::db::scim_users::{Fields, ScimUser};
use crate::domain::rules::TOKEN_NAME_MAX;
use crate::domain::{Email, Principal, Role};
use crate::error::AppError;
use crate::policy::{self, OrgAccess, OrgAction, Verdict};

/// The SCIM client: a token of one org.
#[derive(Debug, Clone)]
pub struct ScimActor {
    pub token_id: Uuid,
    pub org_id: Uuid,
    pub org_slug: String,
    sub: String,
}

impl ScimActor {
    pub fn new(token: &ScimToken, org_slug: String) -> ScimActor {
        ScimActor {
            token_id: token.id,
            org_id: token.org_id,
            org_slug,
            sub: format!("scim:{}", token.id),
        }
    }

    /// Who the audit log names: the token (`scim:<id>`).
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            sub: &self.sub,
            email: None,
        }
    }

    /// What the token may do in its org: what an ORG_ADMIN may.
    fn access(&self) -> OrgAccess {
        OrgAccess {
            platform_admin: false,
            roles: vec![Role::Admin],
        }
    }
}

/// Why a SCIM change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScimFault {
    /// Another resource (or a member added by hand) holds the name or address.
    #[error("{0}")]
    Uniqueness(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    /// `If-Match` named another version.
    #[error("the resource has changed since the version in If-Match")]
    VersionMismatch,
    /// The rules refuse it (the org's last ORG_ADMIN).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<sqlx::Error> for ScimFault {
    fn from(e: sqlx::Error) -> Self {
        match AppError::from(e) {
            AppError::Conflict(m) => ScimFault::Uniqueness(m),
            other => ScimFault::App(other),
        }
    }
}

/// A User as the directory wants it.
#[derive(Debug, Clone)]
pub struct UserWrite {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub email: Option<Email>,
    /// Every attribute, as stored and answered.
    pub resource: Value,
}

/// What a group edit does to a role's members (user ids as the client sent them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleEdit {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<String>),
}

/// The roles the membership holds for a user: theirs while active with an address.
fn desired(active: bool, email: Option<&str>, roles: &[Role]) -> Vec<Role> {
    if active && email.is_some() {
        canonical_roles(roles)
    } else {
        Vec::new()
    }
}

fn summary(row: &ScimUser) -> Value {
    json!({"id": row.id, "userName": row.user_name, "email": row.email,
           "active": row.active, "roles": row.roles})
}

async fn lock_org(tx: &mut PgConnection, actor: &ScimActor) -> Result<Org, ScimFault> {
    let org = db::orgs::lock_by_slug(tx, &actor.org_slug)
        .await?
        .filter(|o| o.id == actor.org_id)
        .ok_or(ScimFault::NotFound)?;
    Ok(org)
}

/// Sets the membership of `email` in the org from `before` to `after` (empty: none),
/// with the policy's checks and an audit entry; nothing when they are equal.
async fn set_membership(
    tx: &mut PgConnection,
    actor: &ScimActor,
    org: &Org,
    email: &str,
    after: &[Role],
) -> Result<(), ScimFault> {
    let before = db::scim_users::membership_by_email(tx, org.id, email)
        .await?
        .map(|r| canonical_roles(&parse_roles(&r)));
    let before_roles = before.clone().unwrap_or_default();
    if before_roles == after {
        return Ok(());
    }
    match policy::may_change_member(&actor.access(), &before_roles, after) {
        Verdict::Allow => {}
        _ => {
            return Err(ScimFault::Refused(
                "the token's rights do not allow this".into(),
            ));
        }
    }
    let admins = db::members::count_admins(tx, org.id).await?;
    if !policy::keeps_an_admin(admins, &before_roles, after) {
        return Err(ScimFault::Refused(LAST_ADMIN.to_owned()));
    }
    if before.is_none() && !after.is_empty() {
        // A joiner takes a seat like any new member; the org's row lock makes two
        // requests unable to both take the last one.
        let locked = db::orgs::lock_by_slug(&mut *tx, &org.slug)
            .await?
            .ok_or(AppError::NotFound)?;
        super::seats::take(&mut *tx, &locked, &[email]).await?;
    }
    let (user, _) = db::members::ensure_user(tx, email).await?;
    let target = format!("{}/{email}", org.slug);
    let entry = if after.is_empty() {
        db::members::remove(tx, org.id, user).await?;
        Entry {
            actor: actor.actor(),
            action: "member.delete",
            target: &target,
            org_id: Some(org.id),
            before: Some(json!({"email": email, "roles": strings(&before_roles)})),
            after: None,
        }
    } else {
        db::members::upsert(tx, org.id, user, &strings(after)).await?;
        Entry {
            actor: actor.actor(),
            action: "member.put",
            target: &target,
            org_id: Some(org.id),
            before: before.map(|r| json!({"email": email, "roles": strings(&r)})),
            after: Some(json!({"email": email, "roles": strings(after)})),
        }
    };
    db::audit::record(tx, entry).await?;
    Ok(())
}

/// Refuses a name or address another resource of the org holds; for an address a member
/// added by hand holds, hands back their roles when the org lets SCIM adopt them.
async fn check_free(
    tx: &mut PgConnection,
    org: &Org,
    except: Option<Uuid>,
    write: &UserWrite,
    own_email: Option<&str>,
) -> Result<Option<Vec<Role>>, ScimFault> {
    let email = write.email.as_ref().map(Email::as_str);
    if let Some(other) = db::scim_users::clash(tx, org.id, except, &write.user_name, email).await? {
        return Err(ScimFault::Uniqueness(
            if other.user_name.eq_ignore_ascii_case(&write.user_name) {
                format!(
                    "userName `{}` is taken in this org (id {})",
                    write.user_name, other.id
                )
            } else {
                format!(
                    "another user of this org (id {}) has the address {}",
                    other.id,
                    email.unwrap_or_default()
                )
            },
        ));
    }
    let Some(email) = email.filter(|e| Some(*e) != own_email) else {
        return Ok(None);
    };
    let Some(held) = db::scim_users::membership_by_email(tx, org.id, email).await? else {
        return Ok(None);
    };
    if db::scim_tokens::adopts_hand_added(tx, org.id).await? {
        return Ok(Some(parse_roles(&held)));
    }
    Err(ScimFault::Uniqueness(format!(
        "{email} is a member an admin added by hand; SCIM leaves such members alone unless an \
         ORG_ADMIN lets it adopt them (the org's SCIM page)"
    )))
}

fn fields<'a>(write: &'a UserWrite, roles: &'a [String]) -> Fields<'a> {
    Fields {
        user_name: &write.user_name,
        external_id: write.external_id.as_deref(),
        active: write.active,
        email: write.email.as_ref().map(Email::as_str),
        roles,
        resource: &write.resource,
    }
}

async fn audited(
    mut tx: Transaction<'_, Postgres>,
    actor: &ScimActor,
    action: &str,
    target: &str,
    org: &Org,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ScimFault> {
    db::audit::record(
        &mut tx,
        Entry {
            actor: actor.actor(),
            action,
            target: &format!("{}/{target}", org.slug),
            org_id: Some(org.id),
            before,
            after,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Provisions a user (`POST /Users`).
pub async fn create_user(
    pool: &PgPool,
    actor: &ScimActor,
    write: &UserWrite,
) -> Result<ScimUser, ScimFault> {
    let mut tx = pool.begin().await?;
    let org = lock_org(&mut tx, actor).await?;
    let adopted = check_free(&mut tx, &org, None, write, None).await?;
    let roles = strings(&canonical_roles(&adopted.unwrap_or_default()));
    let row =
        db::scim_users::insert(&mut tx, org.id, actor.token_id, &fields(write, &roles)).await?;
    if let Some(email) = &row.email {
        let after = desired(row.active, Some(email), &parse_roles(&row.roles));
        set_membership(&mut tx, actor, &org, email, &after).await?;
    }
    let after = summary(&row);
    audited(
        tx,
        actor,
        "scim.user.create",
        &row.user_name,
        &org,
        None,
        Some(after),
    )
    .await?;
    Ok(row)
}

/// Replaces a user (`PUT`, and `PATCH` once applied): the membership follows its
/// address, `active` and roles.
pub async fn replace_user(
    pool: &PgPool,
    actor: &ScimActor,
    id: Uuid,
    expected_version: Option<i64>,
    write: &UserWrite,
) -> Result<ScimUser, ScimFault> {
    let mut tx = pool.begin().await?;
    let org = lock_org(&mut tx, actor).await?;
    let row = db::scim_users::lock(&mut tx, org.id, id)
        .await?
        .ok_or(ScimFault::NotFound)?;
    if expected_version.is_some_and(|v| v != row.version) {
        return Err(ScimFault::VersionMismatch);
    }
    check_free(&mut tx, &org, Some(id), write, row.email.as_deref()).await?;
    let new_email = write.email.as_ref().map(Email::as_str);
    if let Some(old) = row.email.as_deref()
        && Some(old) != new_email
    {
        // The resource moves to another address: the old one loses this org.
        set_membership(&mut tx, actor, &org, old, &[]).await?;
    }
    let updated = db::scim_users::update(&mut tx, id, &fields(write, &row.roles)).await?;
    if let Some(email) = &updated.email {
        let after = desired(updated.active, Some(email), &parse_roles(&updated.roles));
        set_membership(&mut tx, actor, &org, email, &after).await?;
    }
    let (before, after) = (summary(&row), summary(&updated));
    if before != after {
        audited(
            tx,
            actor,
            "scim.user.update",
            &updated.user_name,
            &org,
            Some(before),
            Some(after),
        )
        .await?;
    } else {
        tx.commit().await?;
    }
    Ok(updated)
}

/// Deprovisions a user (`DELETE`): the resource and the membership it governed go.
pub async fn delete_user(
    pool: &PgPool,
    actor: &ScimActor,
    id: Uuid,
    expected_version: Option<i64>,
) -> Result<(), ScimFault> {
    let mut tx = pool.begin().await?;
    let org = lock_org(&mut tx, actor).await?;
    let row = db::scim_users::lock(&mut tx, org.id, id)
        .await?
        .ok_or(ScimFault::NotFound)?;
    if expected_version.is_some_and(|v| v != row.version) {
        return Err(ScimFault::VersionMismatch);
    }
    if let Some(email) = &row.email {
        set_membership(&mut tx, actor, &org, email, &[]).await?;
    }
    db::scim_users::delete(&mut tx, id).await?;
    let before = summary(&row);
    audited(
        tx,
        actor,
        "scim.user.delete",
        &row.user_name,
        &org,
        Some(before),
        None,
    )
    .await
}

/// Changes who holds `role` (a Group PATCH, PUT or DELETE): every user named must be one
/// SCIM provisioned in this org; all of it is applied, or none.
pub async fn edit_role(
    pool: &PgPool,
    actor: &ScimActor,
    role: Role,
    edits: &[RoleEdit],
) -> Result<(), ScimFault> {
    let mut tx = pool.begin().await?;
    let org = lock_org(&mut tx, actor).await?;
    let users = db::scim_users::lock_all(&mut tx, org.id).await?;
    let by_id: std::collections::HashMap<Uuid, &ScimUser> =
        users.iter().map(|u| (u.id, u)).collect();
    let has = |u: &ScimUser| u.roles.iter().any(|r| r == role.as_str());
    let mut holders: std::collections::BTreeSet<Uuid> =
        users.iter().filter(|u| has(u)).map(|u| u.id).collect();
    let known = |raw: &String| -> Result<Uuid, ScimFault> {
        Uuid::parse_str(raw)
            .ok()
            .filter(|id| by_id.contains_key(id))
            .ok_or_else(|| {
                ScimFault::Invalid(format!(
                    "members: `{raw}` is not a user SCIM provisioned in this org"
                ))
            })
    };
    for edit in edits {
        match edit {
            RoleEdit::Add(ids) => {
                for raw in ids {
                    holders.insert(known(raw)?);
                }
            }
            RoleEdit::Remove(ids) => {
                for raw in ids {
                    if let Ok(id) = Uuid::parse_str(raw) {
                        holders.remove(&id);
                    }
                }
            }
            RoleEdit::RemoveAll => holders.clear(),
            RoleEdit::Replace(ids) => {
                holders = ids.iter().map(known).collect::<Result<_, _>>()?;
            }
        }
    }
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for user in &users {
        let now = holders.contains(&user.id);
        if now == has(user) {
            continue;
        }
        let mut roles = parse_roles(&user.roles);
        if now {
            roles.push(role);
            added.push(user.user_name.clone());
        } else {
            roles.retain(|r| *r != role);
            removed.push(user.user_name.clone());
        }
        let roles = canonical_roles(&roles);
        let stored = strings(&roles);
        let resource = user.resource.clone();
        db::scim_users::update(
            &mut tx,
            user.id,
            &Fields {
                user_name: &user.user_name,
                external_id: user.external_id.as_deref(),
                active: user.active,
                email: user.email.as_deref(),
                roles: &stored,
                resource: &resource,
            },
        )
        .await?;
        if let Some(email) = &user.email {
            set_membership(
                &mut tx,
                actor,
                &org,
                email,
                &desired(user.active, Some(email), &roles),
            )
            .await?;
        }
    }
    if added.is_empty() && removed.is_empty() {
        tx.commit().await?;
        return Ok(());
    }
    audited(
        tx,
        actor,
        "scim.group.update",
        role.as_str(),
        &org,
        None,
        Some(json!({"role": role, "added": added, "removed": removed})),
    )
    .await
}

// Tokens and settings: an ORG_ADMIN's (or a platform admin's) business.

/// Tokens start with this, so a leaked one is recognisable (and secret scanners can
/// be taught it).
pub const TOKEN_PREFIX: &str = "wzscim_";

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A token just created: the secret is shown this once.
pub struct NewToken {
    pub token: ScimToken,
    pub secret: String,
}

/// A token name: trimmed, 1 to [`TOKEN_NAME_MAX`] characters, no control characters.
pub fn check_token_name(raw: &str) -> Result<&str, AppError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > TOKEN_NAME_MAX as usize
        || name.chars().any(char::is_control)
    {
        return Err(AppError::Unprocessable(
            "name: give 1 to 100 characters, e.g. \"Entra ID\"".to_owned(),
        ));
    }
    Ok(name)
}

pub async fn create_token(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    raw_name: &str,
) -> Result<NewToken, AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageScim).await?;
    let name = check_token_name(raw_name)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let prefix: String = secret.chars().take(TOKEN_PREFIX.len() + 6).collect();
    let mut tx = pool.begin().await?;
    let token =
        db::scim_tokens::insert(&mut tx, org.id, name, &hash(&secret), &prefix, &who.sub).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "scim.token.create",
            target: &format!("{}/{}", org.slug, token.id),
            org_id: Some(org.id),
            before: None,
            after: Some(json!({"name": token.name, "prefix": token.prefix})),
        },
    )
    .await?;
    Ok(NewToken { token, secret })
}

pub async fn revoke_token(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    raw_id: &str,
) -> Result<ScimToken, AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageScim).await?;
    let id = Uuid::parse_str(raw_id).map_err(|_| AppError::NotFound)?;
    let mut tx = pool.begin().await?;
    let token = db::scim_tokens::lock(&mut tx, org.id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if token.revoked_at.is_some() {
        return Ok(token);
    }
    db::scim_tokens::revoke(&mut tx, id).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "scim.token.revoke",
            target: &format!("{}/{}", org.slug, token.id),
            org_id: Some(org.id),
            before: Some(json!({"name": token.name, "prefix": token.prefix})),
            after: None,
        },
    )
    .await?;
    Ok(token)
}

/// What the org's SCIM page and the API show.
pub struct Overview {
    pub org: Org,
    pub tokens: Vec<ScimToken>,
    pub adopt_hand_added: bool,
    pub provisioned: usize,
}

pub async fn overview(pool: &PgPool, who: &Principal, slug: &str) -> Result<Overview, AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageScim).await?;
    let tokens = db::scim_tokens::list(pool, org.id).await?;
    let mut conn = pool.acquire().await?;
    let adopt_hand_added = db::scim_tokens::adopts_hand_added(&mut conn, org.id).await?;
    let provisioned = db::scim_users::list(pool, org.id, db::scim_users::Lookup::All)
        .await?
        .len();
    Ok(Overview {
        org,
        tokens,
        adopt_hand_added,
        provisioned,
    })
}

pub async fn set_adopt_hand_added(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    adopt: bool,
) -> Result<(), AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageScim).await?;
    let mut tx = pool.begin().await?;
    let before = db::scim_tokens::adopts_hand_added(&mut tx, org.id).await?;
    if before == adopt {
        return Ok(());
    }
    db::scim_tokens::set_adopt_hand_added(&mut tx, org.id, adopt).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "scim.settings",
            target: &org.slug,
            org_id: Some(org.id),
            before: Some(json!({"adopt_hand_added": before})),
            after: Some(json!({"adopt_hand_added": adopt})),
        },
    )
    .await
}

/// The token a SCIM request presents, if it is one that is not revoked.
pub async fn authenticate(pool: &PgPool, presented: &str) -> Result<Option<ScimActor>, AppError> {
    if !presented.starts_with(TOKEN_PREFIX) || presented.len() > 200 {
        return Ok(None);
    }
    let Some((token, slug)) = db::scim_tokens::by_hash(pool, &hash(presented)).await? else {
        return Ok(None);
    };
    // A failed write of the last-used time must not refuse a good token.
    if let Err(e) = db::scim_tokens::touch(pool, token.id).await {
        tracing::warn!(error = %e, "could not record a SCIM token's use");
    }
    Ok(Some(ScimActor::new(&token, slug)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::rules::TOKEN_NAME_PATTERN;

    #[test]
    fn only_active_users_with_an_address_hold_their_roles() {
        let roles = [Role::User, Role::Admin];
        assert_eq!(
            desired(true, Some("a@example.com"), &roles),
            vec![Role::Admin, Role::User]
        );
        assert!(desired(false, Some("a@example.com"), &roles).is_empty());
        assert!(desired(true, None, &roles).is_empty());
    }

    proptest::proptest! {
        /// A name the document's pattern and length take, `check_token_name` takes; and
        /// one without white space around it, exactly then.
        #[test]
        fn the_token_name_pattern_says_what_the_check_takes(
            raw in "[ -~\t\u{80}-\u{9f}]{0,6}|[a-z ]{98,102}"
        ) {
            let documented = regex_lite::Regex::new(TOKEN_NAME_PATTERN).unwrap().is_match(&raw)
                && raw.chars().count() <= TOKEN_NAME_MAX as usize;
            let taken = check_token_name(&raw).is_ok();
            if documented {
                proptest::prop_assert!(taken, "{:?}", raw);
            }
            if raw.trim() == raw {
                proptest::prop_assert_eq!(documented, taken, "{:?}", raw);
            }
        }
    }

    #[test]
    fn token_names_are_bounded() {
        assert_eq!(check_token_name("  Entra ID ").unwrap(), "Entra ID");
        assert!(check_token_name("").is_err());
        assert!(check_token_name("a\u{0}b").is_err());
        assert!(check_token_name(&"x".repeat(101)).is_err());
    }
}
