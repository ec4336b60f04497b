//! Email domains and joining by them (docs/lifecycle.md, "Joining by domain"). An
//! ORG_ADMIN claims a domain and chooses what it offers; a platform admin marks it
//! verified; from then on a person whose *verified* address is at the domain is offered
//! to join ("suggest") or joins as ORG_USER at sign-in ("auto_join"), through the seat
//! check either way. A domain belongs to one org at most.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use super::{actor_name, authorized_org, commit_audited, platform_only};
use crate::db;
use crate::db::audit::Entry;
use crate::db::domains::{Offer, OrgDomain};
use crate::db::orgs::Org;
use crate::domain::{Email, EmailDomain, Principal, Role};
use crate::error::AppError;
use crate::policy::{OrgAccess, OrgAction};

/// What a verified domain offers people whose verified address is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(rename_all = "snake_case")]
pub enum JoinMode {
    /// Nothing: the claim only reserves the domain (and, later, routes single sign-on).
    None,
    /// A "join" button on the home page and the org chooser.
    Suggest,
    /// Joined as ORG_USER at sign-in.
    AutoJoin,
}

impl JoinMode {
    pub const NAMES: [&'static str; 3] = ["none", "suggest", "auto_join"];

    pub fn as_str(self) -> &'static str {
        match self {
            JoinMode::None => "none",
            JoinMode::Suggest => "suggest",
            JoinMode::AutoJoin => "auto_join",
        }
    }
}

impl FromStr for JoinMode {
    type Err = AppError;

    fn from_str(raw: &str) -> Result<Self, AppError> {
        match raw {
            "none" => Ok(JoinMode::None),
            "suggest" => Ok(JoinMode::Suggest),
            "auto_join" => Ok(JoinMode::AutoJoin),
            other => Err(AppError::Unprocessable(format!(
                "\"{other}\" is not a join mode; modes are none, suggest, auto_join"
            ))),
        }
    }
}

impl fmt::Display for JoinMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// From a JSON string only; another string is an unknown variant naming the modes.
impl<'de> Deserialize<'de> for JoinMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse()
            .map_err(|_| serde::de::Error::unknown_variant(&raw, &JoinMode::NAMES))
    }
}

fn parse_domain(raw: &str) -> Result<EmailDomain, AppError> {
    EmailDomain::parse(raw).map_err(|e| AppError::Unprocessable(e.to_string()))
}

/// The domains page and list: the org, what the viewer may do, its domains.
pub struct Overview {
    pub org: Org,
    pub access: OrgAccess,
    pub domains: Vec<OrgDomain>,
}

/// An org's domains (ORG_ADMIN, platform admins).
pub async fn overview(pool: &PgPool, who: &Principal, slug: &str) -> Result<Overview, AppError> {
    let (org, access) = authorized_org(pool, who, slug, OrgAction::ManageDomains).await?;
    let domains = db::domains::list(pool, org.id).await?;
    Ok(Overview {
        org,
        access,
        domains,
    })
}

/// Claims `raw_domain` for the org with `mode`, or changes the mode of the org's claim.
/// Returns the claim and whether it is new. A domain another org holds is a `409`
/// that does not say which org.
pub async fn put(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    raw_domain: &str,
    mode: JoinMode,
) -> Result<(OrgDomain, bool), AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageDomains).await?;
    let domain = parse_domain(raw_domain)?;
    let mut tx = pool.begin().await?;
    let target = format!("{}/{}", org.slug, domain);
    match db::domains::lock(&mut tx, domain.as_str()).await? {
        Some(held) if held.org_id != org.id => Err(AppError::Conflict(format!(
            "{domain} is claimed by another organization; a domain belongs to one at most. \
             If it is yours, ask a platform admin."
        ))),
        Some(held) if held.mode == mode.as_str() => Ok((held, false)),
        Some(held) => {
            let after = db::domains::set_mode(&mut tx, domain.as_str(), mode.as_str()).await?;
            commit_audited(
                tx,
                Entry {
                    actor: actor_name(who),
                    action: "domain.mode",
                    target: &target,
                    org_id: Some(org.id),
                    before: Some(json!({"mode": held.mode})),
                    after: Some(json!({"mode": after.mode})),
                },
            )
            .await?;
            Ok((after, false))
        }
        None => {
            // The unique index settles a race with another org's claim (409 then).
            let created =
                db::domains::insert(&mut tx, org.id, domain.as_str(), mode.as_str(), &who.sub)
                    .await?;
            commit_audited(
                tx,
                Entry {
                    actor: actor_name(who),
                    action: "domain.claim",
                    target: &target,
                    org_id: Some(org.id),
                    before: None,
                    after: Some(json!({"domain": created.domain, "mode": created.mode,
                        "status": created.status})),
                },
            )
            .await?;
            Ok((created, true))
        }
    }
}

/// The org's claim on `raw_domain`, locked; anything else (malformed, unclaimed,
/// another org's) is "not found".
async fn own_claim(
    tx: &mut sqlx::PgConnection,
    org: &Org,
    raw_domain: &str,
) -> Result<OrgDomain, AppError> {
    let domain = EmailDomain::parse(raw_domain).map_err(|_| AppError::NotFound)?;
    db::domains::lock(tx, domain.as_str())
        .await?
        .filter(|d| d.org_id == org.id)
        .ok_or(AppError::NotFound)
}

/// Gives up the org's claim. Members who joined through it stay.
pub async fn remove(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    raw_domain: &str,
) -> Result<OrgDomain, AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageDomains).await?;
    let mut tx = pool.begin().await?;
    let held = own_claim(&mut tx, &org, raw_domain).await?;
    db::domains::delete(&mut tx, &held.domain).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "domain.remove",
            target: &format!("{}/{}", org.slug, held.domain),
            org_id: Some(org.id),
            before: Some(json!({"domain": held.domain, "mode": held.mode, "status": held.status})),
            after: None,
        },
    )
    .await?;
    Ok(held)
}

/// Marks the org's claim verified (platform admins only: they check that the org
/// controls the domain, docs/lifecycle.md). Verifying again changes nothing.
pub async fn verify(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    raw_domain: &str,
) -> Result<OrgDomain, AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::ManageDomains).await?;
    platform_only(who.platform_admin)?;
    let mut tx = pool.begin().await?;
    let held = own_claim(&mut tx, &org, raw_domain).await?;
    if held.status == "verified" {
        return Ok(held);
    }
    let after = db::domains::mark_verified(&mut tx, &held.domain, &who.sub).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "domain.verify",
            target: &format!("{}/{}", org.slug, held.domain),
            org_id: Some(org.id),
            before: Some(json!({"status": held.status})),
            after: Some(json!({"status": after.status, "mode": after.mode})),
        },
    )
    .await?;
    Ok(after)
}

/// How a person joins by domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// They pressed "join" (the domain suggests or auto-joins).
    Asked,
    /// At sign-in (the domain auto-joins).
    SignIn,
}

/// May a domain in `mode` let a person in this `way`?
pub fn allows(mode: &str, way: Way) -> bool {
    match way {
        Way::Asked => mode == "suggest" || mode == "auto_join",
        Way::SignIn => mode == "auto_join",
    }
}

/// The org the person's *verified* address offers to join, if any and not joined yet.
/// An unverified address offers nothing: a person may set it to anything.
pub async fn offer_for(pool: &PgPool, who: &Principal) -> Result<Option<Offer>, AppError> {
    let Some(domain) = who
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .and_then(|e| EmailDomain::of(&e))
    else {
        return Ok(None);
    };
    let mut conn = pool.acquire().await?;
    let Some(offer) = db::domains::offer(&mut conn, domain.as_str()).await? else {
        return Ok(None);
    };
    let roles = db::members::roles_in(pool, offer.org_id, &who.sub).await?;
    Ok(roles.is_empty().then_some(offer))
}

/// What joining did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// A member now, as ORG_USER.
    Joined(Offer),
    /// A member already: nothing changed.
    Already(Offer),
}

/// Makes `who` an ORG_USER of the org `slug` because their verified address is at one
/// of its verified domains whose mode allows `way`; takes a seat (a full org refuses
/// with `quota-exceeded`, nothing written).
pub async fn join(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    way: Way,
) -> Result<Joined, AppError> {
    let not_offered = || {
        AppError::Forbidden(format!(
            "Your verified email address does not let you join \"{slug}\": only people whose \
             verified address is at one of its verified domains may, when the organization \
             allows it. Ask one of its ORG_ADMINs for an invitation."
        ))
    };
    let email = who.email.as_deref().ok_or_else(not_offered)?;
    let domain = Email::parse(email)
        .ok()
        .and_then(|e| EmailDomain::of(&e))
        .ok_or_else(not_offered)?;
    let mut tx = pool.begin().await?;
    // The org's row lock first, as every way in: two joins cannot take the last seat.
    let locked = db::orgs::lock_by_slug(&mut tx, slug)
        .await?
        .ok_or_else(not_offered)?;
    let offer = db::domains::offer(&mut tx, domain.as_str())
        .await?
        .filter(|o| o.org_id == locked.id && allows(&o.mode, way))
        .ok_or_else(not_offered)?;
    let proof = format!("verified email at the verified domain {}", offer.domain);
    let user = super::own_user_row(&mut tx, who, email, &proof).await?;
    if db::members::roles_of(&mut tx, locked.id, user)
        .await?
        .is_some()
    {
        return Ok(Joined::Already(offer));
    }
    super::seats::take(&mut tx, &locked, &[email]).await?;
    let roles = vec![Role::User.as_str().to_owned()];
    db::members::upsert(&mut tx, locked.id, user, &roles).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "domain.join",
            target: &format!("{}/{}", locked.slug, email),
            org_id: Some(locked.id),
            before: None,
            after: Some(json!({"domain": offer.domain, "roles": roles,
                "via": match way { Way::Asked => "suggest", Way::SignIn => "auto_join" }})),
        },
    )
    .await?;
    Ok(Joined::Joined(offer))
}

/// What sign-in did about the person's domain.
#[derive(Debug)]
pub enum AutoJoin {
    Nothing,
    Joined(Offer),
    /// The org had no free seat: the refusal, to show.
    Full(Offer, AppError),
}

/// At sign-in: joins the org whose verified auto-join domain holds the person's
/// verified address, if they are not a member yet.
pub async fn at_sign_in(pool: &PgPool, who: &Principal) -> Result<AutoJoin, AppError> {
    let Some(offer) = offer_for(pool, who).await? else {
        return Ok(AutoJoin::Nothing);
    };
    if !allows(&offer.mode, Way::SignIn) {
        return Ok(AutoJoin::Nothing);
    }
    match join(pool, who, &offer.slug, Way::SignIn).await {
        Ok(Joined::Joined(offer)) => Ok(AutoJoin::Joined(offer)),
        Ok(Joined::Already(_)) => Ok(AutoJoin::Nothing),
        Err(e @ AppError::QuotaExceeded { .. }) => Ok(AutoJoin::Full(offer, e)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_modes_are_the_parsers() {
        let modes = |schema: serde_json::Value, at: &str| -> Vec<String> {
            serde_json::from_value(schema.pointer(at).cloned().unwrap_or_default())
                .unwrap_or_default()
        };
        let mode = serde_json::to_value(schemars::schema_for!(JoinMode)).unwrap_or_default();
        let row = serde_json::to_value(schemars::schema_for!(crate::db::domains::OrgDomain))
            .unwrap_or_default();
        // Each mode a `const` of its own, with its description.
        let consts: Vec<&str> = mode
            .pointer("/oneOf")
            .and_then(|v| v.as_array())
            .map(|all| all.iter().filter_map(|m| m["const"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(consts, JoinMode::NAMES);
        assert_eq!(modes(row, "/properties/mode/enum"), JoinMode::NAMES);
        for name in JoinMode::NAMES {
            assert_eq!(
                name.parse::<JoinMode>().map(JoinMode::as_str).ok(),
                Some(name)
            );
        }
    }

    #[test]
    fn modes_parse_and_name_the_allowed_ones() {
        for mode in [JoinMode::None, JoinMode::Suggest, JoinMode::AutoJoin] {
            assert_eq!(mode.as_str().parse::<JoinMode>().ok(), Some(mode));
        }
        let wrong = "always".parse::<JoinMode>().unwrap_err().to_string();
        assert!(wrong.contains("none, suggest, auto_join"), "{wrong}");
        assert!(serde_json::from_str::<JoinMode>("\"AUTO_JOIN\"").is_err());
        assert!(serde_json::from_str::<JoinMode>("1").is_err());
    }

    #[test]
    fn suggest_lets_people_ask_and_only_auto_join_joins_at_sign_in() {
        assert!(!allows("none", Way::Asked));
        assert!(!allows("none", Way::SignIn));
        assert!(allows("suggest", Way::Asked));
        assert!(!allows("suggest", Way::SignIn));
        assert!(allows("auto_join", Way::Asked));
        assert!(allows("auto_join", Way::SignIn));
    }
}
