//! Creating, changing and deleting orgs.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use super::{actor_name, authorized_org, commit_audited};
use crate::db;
use crate::db::audit::Entry;
use crate::db::orgs::Org;
use crate::domain::Principal;
use crate::domain::rules::{FEATURE_PATTERN, NAME_MAX, NAME_PATTERN, SLUG_PATTERN};
use crate::domain::{OrgSlug, Plan};
use crate::error::AppError;
use crate::policy::OrgAction;

// The API document's schema is derived from this type (`api::openapi`): each field's
// rule is the one its check enforces (`domain::rules`).
/// A new org.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgCreate {
    pub slug: OrgSlug,
    #[schemars(length(min = 1, max = NAME_MAX), pattern(NAME_PATTERN))]
    pub name: String,
    #[serde(default = "free")]
    pub plan: Plan,
    #[serde(default)]
    #[schemars(inner(pattern(FEATURE_PATTERN)))]
    pub features: Vec<String>,
}

fn free() -> Plan {
    Plan::Free
}

/// A change to an org; a field left out (or `null`) is left as it is.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    /// ORG_ADMIN or platform admin.
    #[schemars(length(min = 1, max = NAME_MAX), pattern(NAME_PATTERN))]
    pub name: Option<String>,
    /// Platform admin.
    pub plan: Option<Plan>,
    /// Platform admin.
    #[schemars(inner(pattern(FEATURE_PATTERN)))]
    pub features: Option<Vec<String>>,
    /// Platform admin.
    #[schemars(extend("enum" = ["active", "suspended", null]))]
    pub status: Option<String>,
    /// Keys of existing apps (listed as served), closed for this org; ORG_ADMIN or
    /// platform admin.
    #[schemars(inner(pattern(SLUG_PATTERN)))]
    pub hidden_apps: Option<Vec<String>>,
}

impl OrgPatch {
    /// What the change needs: the name and app visibility are ORG_ADMIN's, the rest is
    /// the platform's.
    pub fn action(&self) -> OrgAction {
        if self.plan.is_some() || self.features.is_some() || self.status.is_some() {
            OrgAction::ChangePlan
        } else {
            OrgAction::Rename
        }
    }
}

/// Features are short lower-case names (the apps' `required_feature`); sorted, no repeats.
pub fn normalise_features(raw: &[String]) -> Result<Vec<String>, AppError> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for f in raw {
        let ok = !f.is_empty()
            && f.len() <= 40
            && f.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(AppError::Unprocessable(format!(
                "\"{f}\" is not a feature name: use 1-40 lower-case letters, digits, dashes and underscores"
            )));
        }
        out.push(f.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A display name: trimmed, 1 to 200 characters.
pub fn check_name(raw: &str) -> Result<&str, AppError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(AppError::Unprocessable(
            "name: give 1 to 200 characters (rule orgs_name_not_blank)".to_owned(),
        ));
    }
    Ok(name)
}

/// Creates an org (platform admins only).
pub async fn create(pool: &PgPool, who: &Principal, new: &OrgCreate) -> Result<Org, AppError> {
    super::platform_only(who.platform_admin)?;
    let features = normalise_features(&new.features)?;
    let name = check_name(&new.name)?;
    let mut tx = pool.begin().await?;
    let org = db::orgs::insert(
        &mut tx,
        new.slug.as_str(),
        name,
        new.plan.as_str(),
        &features,
    )
    .await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "org.create",
            target: &org.slug,
            org_id: Some(org.id),
            before: None,
            after: Some(json!(org)),
        },
    )
    .await?;
    Ok(org)
}

/// Changes an org; what `who` must hold depends on what the patch touches.
pub async fn update(
    pool: &PgPool,
    who: &Principal,
    slug: &str,
    patch: &OrgPatch,
) -> Result<Org, AppError> {
    let (org, _) = authorized_org(pool, who, slug, patch.action()).await?;
    let features = patch
        .features
        .as_deref()
        .map(normalise_features)
        .transpose()?;
    let name = patch.name.as_deref().map(check_name).transpose()?;
    if let Some(keys) = &patch.hidden_apps {
        let known = db::apps::keys(pool).await?;
        if let Some(unknown) = keys.iter().find(|k| !known.contains(k)) {
            return Err(AppError::Unprocessable(format!(
                "hidden_apps: `{unknown}` is not an app"
            )));
        }
    }
    let hidden_apps = patch.hidden_apps.as_ref().map(|keys| {
        let mut keys = keys.clone();
        keys.sort();
        keys.dedup();
        keys
    });
    let mut tx = pool.begin().await?;
    let after = db::orgs::update(
        &mut tx,
        org.id,
        name,
        patch.plan.map(Plan::as_str),
        features.as_deref(),
        patch.status.as_deref(),
        hidden_apps.as_deref(),
    )
    .await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "org.update",
            target: &org.slug,
            org_id: Some(org.id),
            before: Some(json!(org)),
            after: Some(json!(after)),
        },
    )
    .await?;
    Ok(after)
}

/// Deletes an org (platform admins); hands back what was deleted.
pub async fn delete(pool: &PgPool, who: &Principal, slug: &str) -> Result<Org, AppError> {
    let (org, _) = authorized_org(pool, who, slug, OrgAction::Delete).await?;
    let mut tx = pool.begin().await?;
    db::orgs::delete(&mut tx, org.id).await?;
    commit_audited(
        tx,
        Entry {
            actor: actor_name(who),
            action: "org.delete",
            target: &org.slug,
            // The org is gone; the slug in `target` and `before` says which it was.
            org_id: None,
            before: Some(json!(org)),
            after: None,
        },
    )
    .await?;
    Ok(org)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_need_the_platform_for_anything_but_the_name() {
        let patch: OrgPatch = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(patch.action(), OrgAction::Rename);
        let patch: OrgPatch = serde_json::from_str(r#"{"name":"x","plan":"pro"}"#).unwrap();
        assert_eq!(patch.action(), OrgAction::ChangePlan);
        let err = serde_json::from_str::<OrgPatch>(r#"{"plan":"platinum"}"#).unwrap_err();
        assert!(
            err.to_string().contains(
                "unknown variant `platinum`, expected one of `free`, `pro`, `enterprise`"
            ),
            "{err}"
        );
        let err = serde_json::from_str::<OrgPatch>(r#"{"nmae":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `nmae`"), "{err}");
    }

    #[test]
    fn features_are_names_sorted_once() {
        let f =
            |v: &[&str]| normalise_features(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(f(&["seo", "files", "seo"]).unwrap(), vec!["files", "seo"]);
        assert!(f(&["Bad Name"]).is_err());
        assert!(f(&[""]).is_err());
    }

    proptest::proptest! {
        /// What the document says a feature is, normalising takes, and no more.
        #[test]
        fn the_feature_pattern_says_what_normalising_takes(raw in "[a-z0-9_-]{0,41}|[ -~]{0,6}") {
            let documented = regex_lite::Regex::new(FEATURE_PATTERN).unwrap().is_match(&raw);
            let taken = normalise_features(std::slice::from_ref(&raw)).is_ok();
            proptest::prop_assert_eq!(documented, taken, "{:?}", raw);
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  Acme ").unwrap(), "Acme");
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(201)).is_err());
    }
}
