//! Invitations: an ORG_ADMIN (any role) or ORG_MANAGER (ORG_USER only) asks a person,
//! by email, to join. The mail carries a link with a random token (only its SHA-256 is
//! stored); the person who opens it signs in, or has wizbrand create their account
//! (Keycloak then mails them the link to set a password), and accepts, which only an
//! account whose *verified* email is the invited address can do. docs/lifecycle.md.

use askama::Template;
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::Digest;
use sqlx::PgPool;
use uuid::Uuid;

use super::members::{canonical_roles, strings};
use super::{actor_name, authorized_org, commit_audited, enforce, parse_roles};
use crate::config::Config;
use crate::db;
use crate::db::audit::{Actor, Entry};
use crate::db::invitations::{Invitation, NewInvitation};
use crate::domain::{Email, Principal, Role};
use crate::error::AppError;
use crate::keycloak::accounts::{AccountError, Accounts};
use crate::mail::{MailError, Mailer, Outgoing};
use crate::policy::{self, OrgAction};

/// At most this many addresses in one request.
pub const MAX_BATCH: usize = 50;

/// Where Keycloak's set-a-password mail sends an invited person back to: their list of
/// invitations (a redirect URI of the web client).
pub const MY_INVITATIONS_PATH: &str = "/invitations";
/// The page an invitation's link opens.
pub const LINK_PATH: &str = "/invitation";

/// The stored form of a token: hex SHA-256 (tokens are 256 random bits, so no salt or
/// slow hash is needed: nobody can guess one to test against the hash).
pub fn token_hash(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh token for a link: 256 random bits, URL-safe base64 (43 characters).
pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a token from a link could be one of ours (43 URL-safe base64 characters);
/// anything else is refused before any lookup.
pub fn well_formed_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why a link (or an accept) is refused. Each says why in words a person understands;
/// none changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// No invitation has this token (mistyped, cut short, forged).
    Unknown,
    Expired {
        org: String,
        expired_at: DateTime<Utc>,
    },
    Revoked {
        org: String,
    },
    Used {
        org: String,
    },
    /// The token of an earlier mail of an invitation that was sent again.
    Replaced {
        org: String,
    },
    /// Signed in with another verified address than the invited one.
    WrongPerson {
        invited: String,
        signed_in: String,
    },
    /// Signed in, but the account's address is not verified.
    Unverified {
        invited: String,
    },
}

impl LinkProblem {
    /// HTTP status of the page: gone for spent links, 403 for the wrong person.
    pub fn status(&self) -> u16 {
        match self {
            LinkProblem::Unknown => 404,
            LinkProblem::Expired { .. }
            | LinkProblem::Revoked { .. }
            | LinkProblem::Used { .. }
            | LinkProblem::Replaced { .. } => 410,
            LinkProblem::WrongPerson { .. } | LinkProblem::Unverified { .. } => 403,
        }
    }

    pub fn heading(&self) -> &'static str {
        match self {
            LinkProblem::Unknown => "No such invitation",
            LinkProblem::Expired { .. } => "This invitation has expired",
            LinkProblem::Revoked { .. } => "This invitation was withdrawn",
            LinkProblem::Used { .. } => "This invitation was used already",
            LinkProblem::Replaced { .. } => "This link was replaced by a newer one",
            LinkProblem::WrongPerson { .. } => "This invitation is for someone else",
            LinkProblem::Unverified { .. } => "Your email address is not verified",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            LinkProblem::Unknown => {
                "The link is not one of ours, or it was cut short. Open it again \
                from the mail, whole; if it still fails, ask for a new invitation."
                    .to_owned()
            }
            LinkProblem::Expired { org, expired_at } => format!(
                "The invitation to {org} ran out on {} UTC. Ask the person who invited you to send it again.",
                expired_at.format("%Y-%m-%d %H:%M")
            ),
            LinkProblem::Revoked { org } => {
                format!("{org} withdrew this invitation. Ask them if you think that is a mistake.")
            }
            LinkProblem::Used { org } => format!(
                "The invitation to {org} was accepted already; a link works once. If that was you, \
                 sign in and you are there."
            ),
            LinkProblem::Replaced { org } => format!(
                "The invitation to {org} was sent again; only the link in the newest mail works."
            ),
            LinkProblem::WrongPerson { invited, signed_in } => format!(
                "The invitation is for {invited}, and you are signed in as {signed_in}. Sign out, then \
                 open the link again and sign in (or create the account) as {invited}."
            ),
            LinkProblem::Unverified { invited } => format!(
                "The invitation is for {invited}; your account's address is not verified, so it proves \
                 nothing. Sign out and sign in as {invited} (Keycloak asks you to verify the address)."
            ),
        }
    }

    /// For the API: spent links are a conflict with the invitation's state.
    pub fn into_error(self) -> AppError {
        match self {
            LinkProblem::Unknown => AppError::NotFound,
            LinkProblem::WrongPerson { .. } | LinkProblem::Unverified { .. } => {
                AppError::Forbidden(format!("{}: {}", self.heading(), self.detail()))
            }
            other => AppError::Conflict(format!("{}: {}", other.heading(), other.detail())),
        }
    }
}

/// A refusal: a link problem (a page that says why) or any other error.
#[derive(Debug)]
pub enum Refusal {
    Link(LinkProblem),
    Error(AppError),
}

impl From<AppError> for Refusal {
    fn from(e: AppError) -> Self {
        Refusal::Error(e)
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Refusal::Error(e.into())
    }
}

impl Refusal {
    pub fn into_error(self) -> AppError {
        match self {
            Refusal::Link(p) => p.into_error(),
            Refusal::Error(e) => e,
        }
    }
}

/// The state of a found invitation at `now`: open, or why not.
pub fn open_or_problem(invitation: &Invitation, now: DateTime<Utc>) -> Result<(), LinkProblem> {
    let org = invitation.org_name.clone();
    match invitation.status.as_str() {
        "accepted" => Err(LinkProblem::Used { org }),
        "revoked" => Err(LinkProblem::Revoked { org }),
        _ if invitation.expires_at <= now => Err(LinkProblem::Expired {
            org,
            expired_at: invitation.expires_at,
        }),
        _ => Ok(()),
    }
}

/// May the signed-in person (their proven email) accept an invitation to `invited`?
pub fn may_accept(proven_email: Option<&str>, invited: &str) -> Result<(), LinkProblem> {
    match proven_email {
        Some(email) if email == invited => Ok(()),
        Some(other) => Err(LinkProblem::WrongPerson {
            invited: invited.to_owned(),
            signed_in: other.to_owned(),
        }),
        None => Err(LinkProblem::Unverified {
            invited: invited.to_owned(),
        }),
    }
}

fn mail_error(e: MailError) -> AppError {
    let dependency = match e {
        MailError::NotConfigured => "outgoing mail (WIZBRAND_SMTP_URL is unset)",
        _ => "outgoing mail (WIZBRAND_SMTP_URL)",
    };
    AppError::Unavailable {
        dependency,
        source: e.into(),
    }
}

fn account_error(e: AccountError) -> AppError {
    AppError::Unavailable {
        dependency: "Keycloak",
        source: e.into(),
    }
}

#[derive(Template)]
#[template(path = "mail/invitation.txt")]
struct InvitationText<'a> {
    inviter: &'a str,
    org: &'a str,
    roles: &'a str,
    link: &'a str,
    expires: &'a str,
}

#[derive(Template)]
#[template(path = "mail/invitation.html")]
struct InvitationHtml<'a> {
    inviter: &'a str,
    org: &'a str,
    roles: &'a str,
    link: &'a str,
    expires: &'a str,
}

/// The invitation mail (plain text and HTML, every value escaped in the HTML).
pub fn invitation_mail(
    config: &Config,
    invitation: &Invitation,
    token: &str,
) -> Result<Outgoing, AppError> {
    let mut link = url::Url::parse(&crate::oidc::client::public_path(
        &config.public_url,
        LINK_PATH,
    ))
    .map_err(|e| AppError::Internal(e.into()))?;
    link.query_pairs_mut().append_pair("token", token);
    let inviter = invitation
        .invited_by_email
        .as_deref()
        .unwrap_or("An administrator");
    let roles = invitation.roles.join(", ");
    let expires = format!("{} UTC", invitation.expires_at.format("%Y-%m-%d %H:%M"));
    let render = |e: askama::Error| AppError::Internal(anyhow::anyhow!("mail template: {e}"));
    let text = InvitationText {
        inviter,
        org: &invitation.org_name,
        roles: &roles,
        link: link.as_str(),
        expires: &expires,
    }
    .render()
    .map_err(render)?;
    let html = InvitationHtml {
        inviter,
        org: &invitation.org_name,
        roles: &roles,
        link: link.as_str(),
        expires: &expires,
    }
    .render()
    .map_err(render)?;
    Ok(Outgoing {
        to: invitation.email.clone(),
        subject: format!(
            "{inviter} invited you to {} on wizbrand",
            invitation.org_name
        ),
        text,
        html,
    })
}

/// The addresses of a request: each valid by the rules for new members' addresses,
/// each once, between 1 and [`MAX_BATCH`].
pub fn parse_batch(raw: &[String]) -> Result<Vec<Email>, AppError> {
    if raw.is_empty() {
        return Err(AppError::Unprocessable(
            "name at least one email address".to_owned(),
        ));
    }
    if raw.len() > MAX_BATCH {
        return Err(AppError::Unprocessable(format!(
            "{} addresses in one request; at most {MAX_BATCH}",
            raw.len()
        )));
    }
    let mut emails: Vec<Email> = Vec::with_capacity(raw.len());
    for r in raw {
        let email = Email::parse_new(r).map_err(|e| AppError::Unprocessable(e.to_string()))?;
        if !emails.contains(&email) {
            emails.push(email);
        }
    }
    Ok(emails)
}

/// Invites every address of `raw_emails` to the org `slug` with `roles`: all or none.
/// Each gets a mail; if one cannot be sent, nothing is kept (the links already mailed
/// are dead, their tokens never stored).
pub async fn invite(
    pool: &PgPool,
    mailer: &Mailer,
    config: &Config,
    who: &Principal,
    slug: &str,
    raw_emails: &[String],
    roles: &[Role],
) -> Result<Vec<Invitation>, AppError> {
    let (org, access) = authorized_org(pool, who, slug, OrgAction::ReadMembers).await?;
    let emails = parse_batch(raw_emails)?;
    let roles = canonical_roles(roles);
    if roles.is_empty() {
        return Err(AppError::Unprocessable(
            "roles must hold at least one of ORG_ADMIN, ORG_MANAGER, ORG_USER".to_owned(),
        ));
    }
    // The same rule as adding a member: managers invite ORG_USERs only.
    enforce(policy::may_change_member(&access, &[], &roles))?;
    if !mailer.configured() {
        return Err(mail_error(MailError::NotConfigured));
    }
    let mut tx = pool.begin().await?;
    let locked = db::orgs::lock_by_slug(&mut tx, &org.slug)
        .await?
        .ok_or(AppError::NotFound)?;
    let now = Utc::now();
    for email in &emails {
        if let Some(user) = db::members::user_id(&mut tx, email.as_str()).await?
            && db::members::roles_of(&mut tx, org.id, user)
                .await?
                .is_some()
        {
            return Err(AppError::Conflict(format!(
                "{email} is a member of {} already; change their roles instead",
                org.slug
            )));
        }
        if let Some(pending) =
            db::invitations::pending_for_update(&mut tx, org.id, email.as_str()).await?
        {
            if pending.expires_at > now {
                return Err(AppError::Conflict(format!(
                    "{email} is invited already (until {} UTC); send that invitation again or revoke it",
                    pending.expires_at.format("%Y-%m-%d %H:%M")
                )));
            }
            // An expired invitation makes way for the new one.
            db::invitations::revoke(&mut tx, pending.id, "wizbrand").await?;
        }
    }
    let addresses: Vec<&str> = emails.iter().map(Email::as_str).collect();
    super::seats::take(&mut tx, &locked, &addresses).await?;
    let role_names = strings(&roles);
    let mut created = Vec::with_capacity(emails.len());
    let mut mails = Vec::with_capacity(emails.len());
    for email in &emails {
        let token = new_token();
        let id = db::invitations::insert(
            &mut tx,
            &NewInvitation {
                org_id: org.id,
                email: email.as_str(),
                roles: &role_names,
                invited_by: &who.sub,
                invited_by_email: who.email.as_deref(),
                token_hash: &token_hash(&token),
                expires_at: now + config.lifecycle.invitation_ttl,
            },
        )
        .await?;
        db::audit::record(
            &mut tx,
            Entry {
                actor: actor_name(who),
                action: "invitation.create",
                target: &format!("{}/{}", org.slug, email),
                org_id: Some(org.id),
                before: None,
                after: Some(json!({"id": id, "email": email, "roles": role_names})),
            },
        )
        .await?;
        let invitation = db::invitations::by_id_for_update(&mut tx, org.id, id)
            .await?
            .ok_or(AppError::NotFound)?;
        mails.push(invitation_mail(config, &invitation, &token)?);
        created.push(invitation);
    }
    for mail in &mails {
        mailer.send(mail).await.map_err(mail_error)?;
    }
    tx.commit().await?;
    Ok(created)
}

/// The invitations page: the org, what the viewer may do, its latest invitations and
/// its seats.
pub struct Overview {
    pub org: db::orgs::Org,
    pub access: policy::OrgAccess,
    pub invitations: Vec<Invitation>,
    pub members: i64,
    pub pending: i64,
    pub taken: i64,
    pub quota: Option<u32>,
}

pub async fn overview(pool: &PgPool, who: &Principal, slug: &str) -> Result<Overview, AppError> {
    let (org, access) = authorized_org(pool, who, slug, OrgAction::ReadMembers).await?;
    let (invitations, _) = db::invitations::list(pool, org.id, 200, 0).await?;
    let (members, pending) = db::invitations::seat_usage(pool, org.id).await?;
    let mut conn = pool.acquire().await?;
    let taken = db::invitations::seats_taken(&mut conn, org.id).await?;
    Ok(Overview {
        quota: policy::quotas(&org.plan).members,
        org,
        access,
        invitations,
        members,
        pending,
        taken,
    })
}

/// An org's invitations (ORG_MANAGER and up).
pub async fn list(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Invitation>, i64), AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ReadMembers).await?;
    Ok(db::invitations::list(pool, org.id, limit, offset).await?)
}

/// Sends a pending invitation again: a new token (the old link is dead from now on) and
/// a new expiry.
pub async fn resend(
    pool: &PgPool,
    mailer: &Mailer,
    config: &Config,
    who: &Principal,
    slug: &str,
    id: Uuid,
) -> Result<Invitation, AppError> {
    let (org, access) = authorized_org(pool, who, slug, OrgAction::ReadMembers).await?;
    if !mailer.configured() {
        return Err(mail_error(MailError::NotConfigured));
    }
    let mut tx = pool.begin().await?;
    let locked = db::orgs::lock_by_slug(&mut tx, &org.slug)
        .await?
        .ok_or(AppError::NotFound)?;
    let before = db::invitations::by_id_for_update(&mut tx, org.id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    enforce(policy::may_change_member(
        &access,
        &[],
        &parse_roles(&before.roles),
    ))?;
    if before.status != "pending" {
        return Err(AppError::Conflict(format!(
            "the invitation of {} is {}; only a pending one can be sent again",
            before.email, before.status
        )));
    }
    if before.expires_at <= Utc::now() {
        // An expired invitation held no seat; sending it again takes one.
        super::seats::take(&mut tx, &locked, &[before.email.as_str()]).await?;
    }
    let token = new_token();
    let expires_at = Utc::now() + config.lifecycle.invitation_ttl;
    db::invitations::renew(&mut tx, id, &token_hash(&token), expires_at).await?;
    let after = db::invitations::by_id_for_update(&mut tx, org.id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: actor_name(who),
            action: "invitation.resend",
            target: &format!("{}/{}", org.slug, after.email),
            org_id: Some(org.id),
            before: Some(json!({"id": id, "expires_at": before.expires_at})),
            after: Some(json!({"id": id, "expires_at": after.expires_at})),
        },
    )
    .await?;
    mailer
        .send(&invitation_mail(config, &after, &token)?)
        .await
        .map_err(mail_error)?;
    tx.commit().await?;
    Ok(after)
}

/// Withdraws a pending invitation; its link then says so. Revoking a revoked one again
/// changes nothing.
pub async fn revoke(pool: &PgPool, who: &Principal, slug: &str, id: Uuid) -> Result<(), AppError> {
    let (org, access) = authorized_org(pool, who, slug, OrgAction::ReadMembers).await?;
    let mut tx = pool.begin().await?;
    let invitation = db::invitations::by_id_for_update(&mut tx, org.id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    enforce(policy::may_change_member(
        &access,
        &[],
        &parse_roles(&invitation.roles),
    ))?;
    match invitation.status.as_str() {
        "revoked" => return Ok(()),
        "accepted" => {
            return Err(AppError::Conflict(format!(
                "{} accepted this invitation already; remove the member instead",
                invitation.email
            )));
        }
        _ => {}
    }
    db::invitations::revoke(&mut tx, id, &who.sub).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "invitation.revoke",
            target: &format!("{}/{}", org.slug, invitation.email),
            org_id: Some(org.id),
            before: Some(json!({"id": id, "status": invitation.status})),
            after: Some(json!({"id": id, "status": "revoked"})),
        },
    )
    .await
}

/// What a link opens: the open invitation, or why not. No identity is checked here.
pub async fn look_up(pool: &PgPool, token: &str) -> Result<Invitation, Refusal> {
    if !well_formed_token(token) {
        return Err(Refusal::Link(LinkProblem::Unknown));
    }
    let hash = token_hash(token);
    match db::invitations::by_token(pool, &hash).await? {
        Some(invitation) => {
            open_or_problem(&invitation, Utc::now()).map_err(Refusal::Link)?;
            Ok(invitation)
        }
        None => Err(Refusal::Link(replaced_or_unknown(pool, &hash).await?)),
    }
}

async fn replaced_or_unknown(pool: &PgPool, hash: &str) -> Result<LinkProblem, sqlx::Error> {
    if !db::invitations::is_retired(pool, hash).await? {
        return Ok(LinkProblem::Unknown);
    }
    let org = db::invitations::org_of_retired(pool, hash).await?;
    Ok(LinkProblem::Replaced {
        org: org.unwrap_or_else(|| "the organization".to_owned()),
    })
}

/// Which invitation to accept: the link's token, or (the invitee's own list) its id.
pub enum Which<'a> {
    Token(&'a str),
    Id(Uuid),
}

/// Accepts an invitation as `who`: their verified email must be the invited address.
/// The membership is created (or its roles joined with the invited ones), the account
/// linked to the address's user row if it was not, and the invitation is spent.
pub async fn accept(
    pool: &PgPool,
    who: &Principal,
    which: Which<'_>,
) -> Result<Invitation, Refusal> {
    let mut tx = pool.begin().await?;
    let found = match which {
        Which::Token(token) => {
            if !well_formed_token(token) {
                return Err(Refusal::Link(LinkProblem::Unknown));
            }
            let hash = token_hash(token);
            match db::invitations::by_token_for_update(&mut tx, &hash).await? {
                Some(found) => found,
                None => return Err(Refusal::Link(replaced_or_unknown(pool, &hash).await?)),
            }
        }
        Which::Id(id) => db::invitations::by_id_any_org_for_update(&mut tx, id)
            .await?
            // Someone else's invitation is as good as none.
            .filter(|i| who.email.as_deref() == Some(i.email.as_str()))
            .ok_or(Refusal::Link(LinkProblem::Unknown))?,
    };
    open_or_problem(&found, Utc::now()).map_err(Refusal::Link)?;
    may_accept(who.email.as_deref(), &found.email).map_err(Refusal::Link)?;
    db::orgs::lock_by_slug(&mut tx, &found.org_slug)
        .await?
        .ok_or(Refusal::Link(LinkProblem::Unknown))?;
    let user = super::own_user_row(
        &mut tx,
        who,
        &found.email,
        "verified email, invitation accepted",
    )
    .await?;
    let held = db::members::roles_of(&mut tx, found.org_id, user)
        .await?
        .map(|r| parse_roles(&r))
        .unwrap_or_default();
    let mut roles = held.clone();
    roles.extend(parse_roles(&found.roles));
    let roles = canonical_roles(&roles);
    db::members::upsert(&mut tx, found.org_id, user, &strings(&roles)).await?;
    db::invitations::mark_accepted(&mut tx, found.id, &who.sub).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "invitation.accept",
            target: &format!("{}/{}", found.org_slug, found.email),
            org_id: Some(found.org_id),
            before: (!held.is_empty()).then(|| json!({"roles": strings(&held)})),
            after: Some(json!({"id": found.id, "email": found.email, "roles": strings(&roles)})),
        },
    )
    .await?;
    Ok(found)
}

/// The open invitations of the signed-in person's verified address.
pub async fn mine(pool: &PgPool, who: &Principal) -> Result<Vec<Invitation>, AppError> {
    match who.email.as_deref() {
        Some(email) => Ok(db::invitations::open_for_email(pool, email).await?),
        None => Ok(Vec::new()),
    }
}

/// What "create my account" did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountOutcome {
    /// Created; Keycloak mailed the set-a-password link.
    Created { email: String },
    /// An account holds the address already: sign in with it.
    Exists { email: String },
}

/// Creates the Keycloak account of an open invitation's address, if none exists, and
/// has Keycloak mail it the link to set a password (which leads back to
/// [`MY_INVITATIONS_PATH`]). If the mail cannot be sent, the account is deleted again.
pub async fn create_account(
    pool: &PgPool,
    accounts: &Accounts,
    config: &Config,
    token: &str,
) -> Result<AccountOutcome, Refusal> {
    let invitation = look_up(pool, token).await?;
    let email = Email::parse(&invitation.email).map_err(|e| AppError::Internal(e.into()))?;
    if accounts.exists(&email).await.map_err(account_error)? {
        return Ok(AccountOutcome::Exists {
            email: invitation.email,
        });
    }
    let id = match accounts.create_invited(&email).await {
        Ok(id) => id,
        Err(AccountError::Exists) => {
            return Ok(AccountOutcome::Exists {
                email: invitation.email,
            });
        }
        Err(e) => return Err(account_error(e).into()),
    };
    let back = crate::oidc::client::public_path(&config.public_url, MY_INVITATIONS_PATH);
    if let Err(e) = accounts.send_set_password(&id, &back).await {
        if let Err(undo) = accounts.delete(&id).await {
            tracing::error!(error = %undo, account = %id, "an account whose mail failed could not be deleted");
        }
        return Err(account_error(e).into());
    }
    let mut tx = pool.begin().await?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: Actor::SYSTEM,
            action: "account.create",
            target: &invitation.email,
            org_id: Some(invitation.org_id),
            before: None,
            after: Some(json!({"keycloak_id": id, "proof": "invitation link opened",
                "invitation": invitation.id})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(AccountOutcome::Created {
        email: invitation.email,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation(status: &str, expires_in_hours: i64) -> Invitation {
        let now = Utc::now();
        Invitation {
            id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            org_slug: "acme".into(),
            org_name: "Acme".into(),
            email: "new@example.com".into(),
            roles: vec!["ORG_MANAGER".into()],
            invited_by: "sub".into(),
            invited_by_email: Some("alice@example.com".into()),
            status: status.into(),
            expires_at: now + chrono::Duration::hours(expires_in_hours),
            sent_at: now,
            accepted_at: None,
            revoked_at: None,
            created_at: now,
        }
    }

    #[test]
    fn a_link_is_open_only_while_pending_and_unexpired() {
        let now = Utc::now();
        assert_eq!(open_or_problem(&invitation("pending", 1), now), Ok(()));
        assert!(matches!(
            open_or_problem(&invitation("pending", -1), now),
            Err(LinkProblem::Expired { .. })
        ));
        assert!(matches!(
            open_or_problem(&invitation("accepted", 1), now),
            Err(LinkProblem::Used { .. })
        ));
        assert!(matches!(
            open_or_problem(&invitation("revoked", 1), now),
            Err(LinkProblem::Revoked { .. })
        ));
    }

    #[test]
    fn only_the_verified_invited_address_may_accept() {
        assert_eq!(
            may_accept(Some("new@example.com"), "new@example.com"),
            Ok(())
        );
        assert!(matches!(
            may_accept(Some("other@example.com"), "new@example.com"),
            Err(LinkProblem::WrongPerson { .. })
        ));
        assert!(matches!(
            may_accept(None, "new@example.com"),
            Err(LinkProblem::Unverified { .. })
        ));
    }

    #[test]
    fn tokens_are_checked_for_shape_and_stored_hashed() {
        let token = new_token();
        assert!(well_formed_token(&token));
        assert!(!well_formed_token(&token[..42]));
        assert!(!well_formed_token(&format!("{}=", &token[..42])));
        assert!(!well_formed_token(""));
        let hash = token_hash(&token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token));
        assert_ne!(hash, token_hash(&new_token()));
    }

    #[test]
    fn every_problem_says_why_with_its_status() {
        for (problem, status) in [
            (LinkProblem::Unknown, 404),
            (
                LinkProblem::Expired {
                    org: "Acme".into(),
                    expired_at: Utc::now(),
                },
                410,
            ),
            (LinkProblem::Revoked { org: "Acme".into() }, 410),
            (LinkProblem::Used { org: "Acme".into() }, 410),
            (LinkProblem::Replaced { org: "Acme".into() }, 410),
            (
                LinkProblem::WrongPerson {
                    invited: "a@example.com".into(),
                    signed_in: "b@example.com".into(),
                },
                403,
            ),
        ] {
            assert_eq!(problem.status(), status, "{problem:?}");
            assert!(!problem.detail().is_empty());
        }
    }

    #[test]
    fn batches_are_bounded_valid_and_without_repeats() {
        let many: Vec<String> = (0..=MAX_BATCH)
            .map(|i| format!("p{i}@example.com"))
            .collect();
        assert!(parse_batch(&many).is_err());
        assert!(parse_batch(&[]).is_err());
        assert!(parse_batch(&["not an address".into()]).is_err());
        let twice = parse_batch(&["A@Example.com".into(), "a@example.com".into()]).unwrap();
        assert_eq!(twice.len(), 1);
    }
}
