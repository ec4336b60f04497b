//! The gate's decision: a pure function of the in-memory state, the forwarded host
//! and who is asking. No I/O, so the hot path makes no network call.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::domain::Principal;
use crate::domain::{OrgSlug, Role};
use crate::policy;

/// An app guarded by the gate, from the `apps` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRule {
    pub key: String,
    pub name: String,
    pub host: HostPattern,
    pub required_feature: String,
    pub min_role: Role,
    /// The app gets the caller's `Authorization` header, Bearer token and all.
    pub pass_authorization: bool,
}

/// `{org}.files.example.com` (org from the host) or an exact host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// The part after `{org}`, starting with a dot: `.files.example.com`.
    OrgPrefixed {
        suffix: String,
    },
    Exact(String),
}

impl HostPattern {
    pub fn parse(pattern: &str) -> Self {
        match pattern.strip_prefix("{org}") {
            Some(suffix) => HostPattern::OrgPrefixed {
                suffix: suffix.to_ascii_lowercase(),
            },
            None => HostPattern::Exact(pattern.to_ascii_lowercase()),
        }
    }

    /// Matches a host (lower-case, no port). `Some(None)`: matched, org not in the
    /// host; `Some(Some(label))`: matched with the org's label.
    fn matches<'h>(&self, host: &'h str) -> Option<Option<&'h str>> {
        match self {
            HostPattern::Exact(exact) => (host == exact).then_some(None),
            HostPattern::OrgPrefixed { suffix } => {
                let label = host.strip_suffix(suffix.as_str())?;
                (!label.is_empty() && !label.contains('.')).then_some(Some(label))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgEntry {
    pub id: Uuid,
    pub slug: OrgSlug,
    pub active: bool,
    pub features: HashSet<String>,
    /// App keys the org's ORG_ADMIN closed.
    pub hidden_apps: HashSet<String>,
}

/// Everything the gate knows, rebuilt from Postgres on every change.
#[derive(Debug, Clone, Default)]
pub struct GateSnapshot {
    pub apps: Vec<AppRule>,
    pub orgs: HashMap<String, OrgEntry>,
    /// Memberships by Keycloak user id (`sub`), then org slug. Never by email: a person
    /// can change their email in Keycloak, not their `sub`.
    pub members_by_sub: HashMap<String, HashMap<String, Vec<Role>>>,
}

/// Why the gate refuses a signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    UnknownHost {
        host: String,
    },
    NotMember {
        org: String,
        app: String,
    },
    RoleTooLow {
        org: String,
        app: String,
        needed: Role,
    },
    FeatureMissing {
        org: String,
        app: String,
        feature: String,
    },
    OrgSuspended {
        org: String,
        app: String,
    },
    AppHidden {
        org: String,
        app: String,
    },
}

impl Denial {
    /// A sentence for the person refused, naming the org and the app.
    pub fn explain(&self) -> String {
        match self {
            Denial::UnknownHost { host } => format!("No app is configured for {host}."),
            Denial::NotMember { org, app } => format!(
                "You are not a member of the organization \"{org}\", so you cannot open {app} there. \
                 Switch to an organization you belong to, or ask an ORG_ADMIN of \"{org}\" to invite you."
            ),
            Denial::RoleTooLow { org, app, needed } => format!(
                "{app} in \"{org}\" needs the role {needed} or higher. Ask an ORG_ADMIN of \"{org}\" for it."
            ),
            Denial::FeatureMissing { org, app, feature } => format!(
                "The plan of \"{org}\" does not include {app} (feature \"{feature}\"). \
                 An ORG_ADMIN of \"{org}\" can ask for a plan that has it."
            ),
            Denial::AppHidden { org, app } => format!(
                "An ORG_ADMIN of \"{org}\" has closed {app} for the organization. Ask them to open it."
            ),
            Denial::OrgSuspended { org, app } => format!(
                "The organization \"{org}\" is suspended, so {app} is closed. Ask a platform administrator."
            ),
        }
    }

    /// [`Denial::explain`] for the person refused: an ORG_ADMIN of the org is not told to
    /// ask an ORG_ADMIN; they are told what they can do themselves.
    pub fn explain_to(&self, org_admin: bool) -> String {
        match self {
            Denial::FeatureMissing { org, app, feature } if org_admin => format!(
                "The plan of \"{org}\" does not include {app} (feature \"{feature}\"). As an \
                 ORG_ADMIN of \"{org}\", ask a platform administrator for a plan that has it."
            ),
            Denial::AppHidden { org, app } if org_admin => format!(
                "{app} is closed for the members of \"{org}\". As one of its ORG_ADMINs, you \
                 can open it again on the organization's page."
            ),
            other => other.explain(),
        }
    }

    /// The org the refusal is about, if any.
    pub fn org(&self) -> Option<&str> {
        match self {
            Denial::UnknownHost { .. } => None,
            Denial::NotMember { org, .. }
            | Denial::RoleTooLow { org, .. }
            | Denial::FeatureMissing { org, .. }
            | Denial::OrgSuspended { org, .. }
            | Denial::AppHidden { org, .. } => Some(org),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Denial::UnknownHost { .. } => "unknown-host",
            Denial::NotMember { .. } => "not-member",
            Denial::RoleTooLow { .. } => "role-too-low",
            Denial::FeatureMissing { .. } => "feature-missing",
            Denial::OrgSuspended { .. } => "org-suspended",
            Denial::AppHidden { .. } => "app-hidden",
        }
    }
}

/// Headers handed to the app on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub user_id: String,
    /// The proven email only; without one the app gets no `X-User-Email` at all.
    pub email: Option<String>,
    pub org_id: Uuid,
    pub org_slug: String,
    pub roles: Vec<Role>,
    pub app: String,
    /// See [`AppRule::pass_authorization`].
    pub pass_authorization: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow(Grant),
    /// Nobody is signed in.
    SignIn,
    /// Signed in, but the host names no org and none is chosen.
    ChooseOrg,
    Deny(Denial),
}

impl GateSnapshot {
    /// Whether `host` (normalised) is an app host behind the gate.
    pub fn serves(&self, host: &str) -> bool {
        self.app_for(host).is_some()
    }

    fn app_for<'h>(&self, host: &'h str) -> Option<(&AppRule, Option<&'h str>)> {
        self.apps
            .iter()
            .find_map(|app| app.host.matches(host).map(|org| (app, org)))
    }

    fn roles_of(&self, who: &Principal, org: &str) -> Option<&Vec<Role>> {
        self.members_by_sub.get(&who.sub).and_then(|m| m.get(org))
    }
}

/// Normalises a forwarded host: lower-case, no port, no trailing dot.
pub fn normalise_host(raw: &str) -> String {
    let host = raw.trim();
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

pub fn decide(state: &GateSnapshot, host: &str, who: Option<&Principal>) -> Outcome {
    let Some((app, org_in_host)) = state.app_for(host) else {
        return Outcome::Deny(Denial::UnknownHost {
            host: host.to_owned(),
        });
    };
    let Some(who) = who else {
        return Outcome::SignIn;
    };
    let org_slug = match org_in_host.or(who.preferred_org.as_deref()) {
        Some(slug) => slug,
        None => return Outcome::ChooseOrg,
    };
    let app_name = app.name.clone();
    // An org that does not exist looks like one the user is not in: slugs stay private.
    let (Some(org), Some(roles)) = (state.orgs.get(org_slug), state.roles_of(who, org_slug)) else {
        return Outcome::Deny(Denial::NotMember {
            org: org_slug.to_owned(),
            app: app_name,
        });
    };
    if !org.active {
        return Outcome::Deny(Denial::OrgSuspended {
            org: org_slug.to_owned(),
            app: app_name,
        });
    }
    if !policy::satisfies(roles, app.min_role) {
        return Outcome::Deny(Denial::RoleTooLow {
            org: org_slug.to_owned(),
            app: app_name,
            needed: app.min_role,
        });
    }
    if !org.features.contains(&app.required_feature) {
        return Outcome::Deny(Denial::FeatureMissing {
            org: org_slug.to_owned(),
            app: app_name,
            feature: app.required_feature.clone(),
        });
    }
    if org.hidden_apps.contains(&app.key) {
        return Outcome::Deny(Denial::AppHidden {
            org: org_slug.to_owned(),
            app: app_name,
        });
    }
    let mut roles = roles.clone();
    roles.sort_by(|a, b| b.cmp(a));
    Outcome::Allow(Grant {
        user_id: who.sub.clone(),
        email: who.email.clone(),
        org_id: org.id,
        org_slug: org_slug.to_owned(),
        roles,
        app: app.key.clone(),
        pass_authorization: app.pass_authorization,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_org_admin_is_not_told_to_ask_an_org_admin() {
        let hidden = Denial::AppHidden {
            org: "acme".into(),
            app: "SEO".into(),
        };
        let missing = Denial::FeatureMissing {
            org: "acme".into(),
            app: "SEO".into(),
            feature: "seo".into(),
        };
        for denial in [&hidden, &missing] {
            assert!(denial.explain().contains("ORG_ADMIN of"), "{denial:?}");
            let to_admin = denial.explain_to(true);
            assert!(!to_admin.contains("Ask an ORG_ADMIN"), "{to_admin}");
            assert!(!to_admin.contains("An ORG_ADMIN of"), "{to_admin}");
            assert_eq!(denial.explain_to(false), denial.explain());
        }
        assert!(hidden.explain_to(true).contains("open it again"));
        assert_eq!(hidden.org(), Some("acme"));
    }

    fn state() -> GateSnapshot {
        let app = |key: &str, feature: &str, min_role| AppRule {
            key: key.into(),
            name: key.into(),
            host: HostPattern::parse(&format!("{{org}}.{key}.wizbrand.localhost")),
            required_feature: feature.into(),
            min_role,
            pass_authorization: false,
        };
        let org = |slug: &str, features: &[&str], active| OrgEntry {
            id: Uuid::nil(),
            slug: OrgSlug::parse(slug).unwrap_or_else(|e| panic!("{e}")),
            active,
            features: features.iter().map(|f| f.to_string()).collect(),
            hidden_apps: HashSet::new(),
        };
        GateSnapshot {
            apps: vec![
                app("seo", "seo", Role::User),
                app("files", "files", Role::Manager),
                app("music", "music", Role::User),
            ],
            orgs: HashMap::from([
                ("acme".into(), org("acme", &["seo", "files"], true)),
                ("beta".into(), org("beta", &["seo"], true)),
                ("gone".into(), org("gone", &["seo"], false)),
                (
                    "shut".into(),
                    OrgEntry {
                        hidden_apps: HashSet::from(["seo".to_owned()]),
                        ..org("shut", &["seo"], true)
                    },
                ),
            ]),
            members_by_sub: HashMap::from([
                (
                    "alice".into(),
                    HashMap::from([
                        ("acme".into(), vec![Role::Admin]),
                        ("gone".into(), vec![Role::Admin]),
                        ("shut".into(), vec![Role::Admin]),
                    ]),
                ),
                (
                    "bob".into(),
                    HashMap::from([("acme".into(), vec![Role::User])]),
                ),
            ]),
        }
    }

    fn who(sub: &str, preferred: Option<&str>) -> Principal {
        Principal {
            sub: sub.into(),
            email: Some(format!("{sub}@example.com")),
            preferred_org: preferred.map(str::to_owned),
            platform_admin: false,
        }
    }

    fn outcome(host: &str, p: Option<Principal>) -> Outcome {
        decide(&state(), host, p.as_ref())
    }

    #[test]
    fn a_member_with_enough_role_is_let_through_with_identity() {
        let Outcome::Allow(grant) =
            outcome("acme.files.wizbrand.localhost", Some(who("alice", None)))
        else {
            panic!("not allowed")
        };
        assert_eq!(grant.org_slug, "acme");
        assert_eq!(grant.roles, vec![Role::Admin]);
        assert_eq!(grant.email.as_deref(), Some("alice@example.com"));
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let cases = [
            ("acme.files.wizbrand.localhost", "bob", "role-too-low"),
            ("beta.files.wizbrand.localhost", "alice", "not-member"),
            ("nope.seo.wizbrand.localhost", "alice", "not-member"),
            ("acme.music.wizbrand.localhost", "alice", "feature-missing"),
            ("gone.seo.wizbrand.localhost", "alice", "org-suspended"),
            ("shut.seo.wizbrand.localhost", "alice", "app-hidden"),
            ("a.b.seo.wizbrand.localhost", "alice", "unknown-host"),
            ("evil.example.com", "alice", "unknown-host"),
        ];
        for (host, sub, kind) in cases {
            match outcome(host, Some(who(sub, None))) {
                Outcome::Deny(d) => assert_eq!(d.kind(), kind, "{host} as {sub}"),
                other => panic!("{host} as {sub}: {other:?}"),
            }
        }
    }

    #[test]
    fn no_session_signs_in_and_no_org_asks_to_choose() {
        assert_eq!(
            outcome("acme.seo.wizbrand.localhost", None),
            Outcome::SignIn
        );
        let mut s = state();
        s.apps.push(AppRule {
            key: "panel".into(),
            name: "Panel".into(),
            host: HostPattern::parse("panel.wizbrand.localhost"),
            required_feature: "seo".into(),
            min_role: Role::User,
            pass_authorization: false,
        });
        assert_eq!(
            decide(&s, "panel.wizbrand.localhost", Some(&who("bob", None))),
            Outcome::ChooseOrg
        );
        assert!(matches!(
            decide(
                &s,
                "panel.wizbrand.localhost",
                Some(&who("bob", Some("acme")))
            ),
            Outcome::Allow(_)
        ));
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(
            normalise_host("ACME.seo.Wizbrand.localhost:8000"),
            "acme.seo.wizbrand.localhost"
        );
        assert_eq!(
            normalise_host("acme.seo.wizbrand.localhost."),
            "acme.seo.wizbrand.localhost"
        );
    }
}

/// Host-pattern matching as a property: `{org}` stands for exactly one non-empty label,
/// nothing else matches, and the forms a proxy may send (case, port, trailing dot)
/// match like the plain host.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
    }

    fn domain() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,3}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn org_patterns_take_exactly_one_label(org in label(), app in domain()) {
            let pattern = HostPattern::parse(&format!("{{org}}.{app}"));
            let host = format!("{org}.{app}");
            prop_assert_eq!(pattern.matches(&host), Some(Some(org.as_str())));
            // One label more, none, or the suffix under another domain: no match.
            let deeper = format!("x.{host}");
            let suffixed = format!("{host}.evil.example");
            let glued = format!("{org}{app}");
            prop_assert_eq!(pattern.matches(&deeper), None);
            prop_assert_eq!(pattern.matches(&app), None);
            let bare = format!(".{app}");
            prop_assert_eq!(pattern.matches(&bare), None);
            prop_assert_eq!(pattern.matches(&suffixed), None);
            prop_assert_eq!(pattern.matches(&glued), None);
        }

        #[test]
        fn a_match_is_always_label_plus_suffix(host in ".{0,40}", app in domain()) {
            let suffix = format!(".{app}");
            let pattern = HostPattern::parse(&format!("{{org}}{suffix}"));
            if let Some(found) = pattern.matches(&host) {
                let org = found.unwrap_or_default();
                prop_assert!(!org.is_empty() && !org.contains('.'));
                prop_assert_eq!(format!("{org}{suffix}"), host);
            }
        }

        #[test]
        fn exact_patterns_match_only_their_host(host in ".{0,30}", exact in domain()) {
            let pattern = HostPattern::parse(&exact);
            prop_assert_eq!(pattern.matches(&exact), Some(None));
            prop_assert_eq!(pattern.matches(&host).is_some(), host == exact);
        }

        #[test]
        fn forwarded_variants_match_like_the_plain_host(
            org in label(),
            app in domain(),
            upper in any::<prop::sample::Index>(),
            port in proptest::option::of(0u32..70000),
            dot in any::<bool>(),
        ) {
            let pattern = HostPattern::parse(&format!("{{org}}.{app}"));
            let plain = format!("{org}.{app}");
            let mut variant: String = plain
                .chars()
                .enumerate()
                .map(|(i, c)| if i % 3 == upper.index(3) { c.to_ascii_uppercase() } else { c })
                .collect();
            if dot {
                variant.push('.');
            }
            if let Some(port) = port {
                variant.push_str(&format!(":{port}"));
            }
            let normalised = normalise_host(&variant);
            prop_assert_eq!(pattern.matches(&normalised), pattern.matches(&plain));
        }

        #[test]
        fn normalising_any_host_is_lower_case_without_a_trailing_dot(raw in ".{0,60}") {
            let host = normalise_host(&raw);
            prop_assert!(!host.ends_with('.'));
            prop_assert!(!host.bytes().any(|b| b.is_ascii_uppercase()));
        }
    }
}
