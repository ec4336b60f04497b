//! Per-org single sign-on (docs/lifecycle.md, "Single sign-on per org"). An ORG_ADMIN
//! (or a platform admin) connects the org's own OpenID Connect provider; wizbrand makes
//! it a Keycloak identity provider bound to the org (alias `org-<slug>`). Sign-in asks
//! for the email first when any org has one, and sends an address at a verified domain
//! of such an org to its provider (`kc_idp_hint`). An account linked to the provider
//! joins that org, and no other, through the seat check.

use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;

use super::{actor_name, authorized_org, commit_audited};
use crate::db;
use crate::db::audit::Entry;
use crate::db::orgs::Org;
use crate::db::sso::OrgSso;
use crate::domain::{Email, EmailDomain, Principal, Role};
use crate::error::AppError;
use crate::keycloak::providers::{IdentityProviders, OidcProvider, ProviderError};
use crate::policy::OrgAction;

/// The Keycloak alias of an org's provider: bound to the org by its slug.
pub fn alias_of(slug: &str) -> String {
    format!("org-{slug}")
}

/// Seals an org's client secret for its row. Startup builds it around the server key
/// and the web vault's sealing (a layer above this one); the pages and the API share it.
pub struct SecretSealer(SealFn);

type SealFn = Box<dyn Fn(&Org, &str) -> Result<Vec<u8>, AppError> + Send + Sync>;

impl SecretSealer {
    pub fn new(
        seal: impl Fn(&Org, &str) -> Result<Vec<u8>, AppError> + Send + Sync + 'static,
    ) -> SecretSealer {
        SecretSealer(Box::new(seal))
    }

    pub fn seal(&self, org: &Org, secret: &SecretString) -> Result<Vec<u8>, AppError> {
        use secrecy::ExposeSecret;
        (self.0)(org, secret.expose_secret())
    }
}

/// The redirect URI the org registers at its provider: Keycloak's broker endpoint of
/// the org's alias.
pub fn redirect_uri(keycloak: &crate::config::KeycloakConfig, slug: &str) -> String {
    format!(
        "{}/realms/{}/broker/{}/endpoint",
        keycloak.url.as_str().trim_end_matches('/'),
        keycloak.realm,
        alias_of(slug)
    )
}

/// What an ORG_ADMIN enters.
pub struct Settings<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
    pub join_role: &'a str,
}

/// The issuer must be an `https` URL (or `http` on a loopback host, for a provider on
/// the same machine in development), with no query, fragment or credentials.
pub fn check_issuer(raw: &str) -> Result<url::Url, AppError> {
    let bad = |why: &str| AppError::Unprocessable(format!("the issuer {raw:?} {why}"));
    let url = url::Url::parse(raw.trim()).map_err(|_| bad("is not a URL"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(bad("must be an https URL")),
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.host_str().is_none()
    {
        return Err(bad("must have no query, fragment or credentials"));
    }
    Ok(url)
}

/// A client id: 1 to 255 characters, no control characters.
pub fn check_client_id(raw: &str) -> Result<&str, AppError> {
    let id = raw.trim();
    if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
        return Err(AppError::Unprocessable(
            "the client id must be 1 to 255 characters without control characters".to_owned(),
        ));
    }
    Ok(id)
}

fn provider_error(e: ProviderError) -> AppError {
    match e {
        // The admin's input: Keycloak could not use the issuer.
        ProviderError::Discovery { .. } => AppError::Unprocessable(format!(
            "{e}. Check the issuer: its /.well-known/openid-configuration must be reachable \
             from Keycloak."
        )),
        ProviderError::Keycloak { .. } => AppError::Unavailable {
            dependency: "Keycloak",
            source: e.into(),
        },
    }
}

/// The org's provider, if any (ORG_ADMIN, platform admins).
pub async fn overview(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
) -> Result<(Org, Option<OrgSso>), AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageSso).await?;
    let sso = db::sso::of_org(pool, org.id).await?;
    Ok((org, sso))
}

/// Connects (or replaces) the org's provider. `sealed` is the client secret as the
/// caller sealed it for the org's row; the secret itself goes to Keycloak only.
pub async fn configure(
    pool: &PgPool,
    providers: &IdentityProviders,
    who: &Principal,
    slug: &str,
    settings: &Settings<'_>,
    seal: impl FnOnce(&Org) -> Result<Vec<u8>, AppError>,
) -> Result<OrgSso, AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageSso).await?;
    let issuer = check_issuer(settings.issuer)?;
    let issuer = issuer.as_str().trim_end_matches('/').to_owned();
    let client_id = check_client_id(settings.client_id)?;
    {
        use secrecy::ExposeSecret;
        let secret = settings.client_secret.expose_secret();
        if secret.is_empty() || secret.len() > 1024 {
            return Err(AppError::Unprocessable(
                "the client secret must be 1 to 1024 characters".to_owned(),
            ));
        }
    }
    let join_role: Role = settings
        .join_role
        .parse()
        .map_err(|e: crate::domain::DomainError| AppError::Unprocessable(e.to_string()))?;
    let alias = alias_of(&org.slug);
    providers
        .put_oidc(&OidcProvider {
            alias: &alias,
            display_name: &org.name,
            issuer: &issuer,
            client_id,
            client_secret: settings.client_secret,
        })
        .await
        .map_err(provider_error)?;
    let sealed = seal(&org)?;
    let mut tx = pool.begin().await?;
    let before = db::sso::of_org(pool, org.id).await?;
    db::sso::upsert(
        &mut tx,
        &db::sso::NewSso {
            org_id: org.id,
            alias: &alias,
            issuer: &issuer,
            client_id,
            sealed: &sealed,
            join_role: join_role.as_str(),
            by: &who.sub,
        },
    )
    .await?;
    // Never the secret, in the log or anywhere else.
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "sso.configure",
            target: &org.slug,
            org_id: Some(org.id),
            before: before.map(
                |b| json!({"issuer": b.issuer, "client_id": b.client_id, "join_role": b.join_role}),
            ),
            after: Some(
                json!({"alias": alias, "issuer": issuer, "client_id": client_id,
                "join_role": join_role.as_str(), "client_secret": "(changed, sealed)"}),
            ),
        },
    )
    .await?;
    db::sso::of_org(pool, org.id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the provider row vanished")))
}

/// Disconnects the org's provider: deleted in Keycloak, forgotten here. Members who
/// came through it stay members.
pub async fn remove(
    pool: &PgPool,
    providers: &IdentityProviders,
    who: &Principal,
    slug: &str,
) -> Result<(), AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageSso).await?;
    let Some(held) = db::sso::of_org(pool, org.id).await? else {
        return Err(AppError::NotFound);
    };
    providers
        .delete(&held.alias)
        .await
        .map_err(provider_error)?;
    let mut tx = pool.begin().await?;
    db::sso::delete(&mut tx, org.id).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "sso.remove",
            target: &org.slug,
            org_id: Some(org.id),
            before: Some(json!({"alias": held.alias, "issuer": held.issuer})),
            after: None,
        },
    )
    .await
}

/// Where `/login` sends an address: the provider alias of the verified domain's org,
/// or `None` (the password form). Any address typed counts here: it only picks the
/// door, Keycloak and the provider still prove who comes through it.
pub async fn route_for(pool: &PgPool, raw_email: &str) -> Result<Option<String>, AppError> {
    let Some(domain) = Email::parse(raw_email)
        .ok()
        .and_then(|e| EmailDomain::of(&e))
    else {
        return Ok(None);
    };
    Ok(db::sso::alias_for_domain(pool, domain.as_str()).await?)
}

/// What sign-in did about the person's org provider.
#[derive(Debug)]
pub enum SsoJoin {
    Nothing,
    /// A member of the org `name` now, with `role`.
    Joined {
        org: String,
        name: String,
        role: String,
    },
    /// Not made a member of the org `name`: no seat is free (`QuotaExceeded`), the
    /// address belongs to another account here (`Conflict`) or none came (`Forbidden`).
    Refused {
        name: String,
        refusal: AppError,
    },
}

/// At sign-in: an account linked to an org's provider (it came through it, now or
/// before) becomes a member of that org, with the org's join role, if it is not one.
/// Only that org: the alias is bound to one org, and the provider's address (never
/// trusted, so unverified in the realm) links no row of anyone else.
pub async fn join_at_sign_in(
    pool: &PgPool,
    providers: &IdentityProviders,
    sub: &str,
    raw_email: Option<&str>,
) -> Result<SsoJoin, AppError> {
    if !db::sso::any(pool).await? {
        return Ok(SsoJoin::Nothing);
    }
    let linked = providers
        .linked(sub)
        .await
        .map_err(|e| AppError::Unavailable {
            dependency: "Keycloak",
            source: e.into(),
        })?;
    for alias in linked {
        let Some(sso) = db::sso::by_alias(pool, &alias).await? else {
            continue;
        };
        match join_org(pool, &sso, sub, raw_email).await {
            Ok(Some(org)) => {
                return Ok(SsoJoin::Joined {
                    name: org.name,
                    org: org.slug,
                    role: sso.join_role,
                });
            }
            Ok(None) => {}
            Err(
                refusal @ (AppError::QuotaExceeded { .. }
                | AppError::Conflict(_)
                | AppError::Forbidden(_)),
            ) => {
                let name = match db::sync_state::org_slug(pool, sso.org_id).await? {
                    Some(slug) => db::orgs::by_slug(pool, &slug)
                        .await?
                        .map(|o| o.name)
                        .unwrap_or(slug),
                    None => String::new(),
                };
                return Ok(SsoJoin::Refused { name, refusal });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(SsoJoin::Nothing)
}

/// Makes the account a member of the provider's org; `None` when it is one already.
async fn join_org(
    pool: &PgPool,
    sso: &OrgSso,
    sub: &str,
    raw_email: Option<&str>,
) -> Result<Option<Org>, AppError> {
    let slug = db::sync_state::org_slug(pool, sso.org_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut tx = pool.begin().await?;
    let locked = db::orgs::lock_by_slug(&mut tx, &slug)
        .await?
        .ok_or(AppError::NotFound)?;
    if locked.status != "active" {
        return Ok(None);
    }
    let user = match db::invitations::user_of_account(&mut tx, sub).await? {
        Some(user) => user,
        None => {
            // The provider's address is unverified: it labels a new row, and links to
            // no existing one (that could be someone else's).
            let email = raw_email
                .and_then(|e| Email::parse_new(e).ok())
                .ok_or_else(|| {
                    AppError::Forbidden(
                        "Your organization's sign-in service sent no usable email address, \
                         so wizbrand cannot make you a member. Ask your administrator."
                            .to_owned(),
                    )
                })?;
            if db::members::user_id(&mut tx, email.as_str())
                .await?
                .is_some()
            {
                return Err(AppError::Conflict(format!(
                    "{email} belongs to another account here, so signing in through your \
                     organization's provider cannot take it over; ask a platform admin"
                )));
            }
            db::sso::insert_user(&mut tx, email.as_str(), sub).await?
        }
    };
    if db::members::roles_of(&mut tx, locked.id, user)
        .await?
        .is_some()
    {
        return Ok(None);
    }
    let email = db::sso::user_email(&mut tx, user).await?;
    super::seats::take(&mut tx, &locked, &[email.as_str()]).await?;
    let roles = vec![sso.join_role.clone()];
    db::members::upsert(&mut tx, locked.id, user, &roles).await?;
    commit_audited(
        tx,
        Entry {
            actor: db::audit::Actor { sub, email: None },
            action: "sso.join",
            target: &format!("{}/{}", locked.slug, email),
            org_id: Some(locked.id),
            before: None,
            after: Some(json!({"alias": sso.alias, "roles": roles})),
        },
    )
    .await?;
    Ok(Some(locked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_are_https_or_loopback_http_without_extras() {
        assert!(check_issuer("https://login.acme.example/realms/acme").is_ok());
        assert!(check_issuer("http://localhost:8180/realms/corp").is_ok());
        for bad in [
            "http://login.acme.example",
            "ftp://x.example",
            "https://u:p@x.example",
            "https://x.example/?a=1",
            "https://x.example/#f",
            "not a url",
            "",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
        assert_eq!(alias_of("acme"), "org-acme");
        assert!(check_client_id("wizbrand").is_ok());
        assert!(check_client_id("").is_err());
        assert!(check_client_id("a\nb").is_err());
    }
}
