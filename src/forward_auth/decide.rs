//! The gate's decision: a pure function of the in-memory state, the forwarded host
//! and who is asking. No I/O, so the hot path makes no network call.
//!
//! The decision goes step by step (which app, which org, membership, status, role,
//! feature, hidden apps) and can record each step with why it passed or stopped there:
//! `wizbrand explain` and the admin page run this very function with a recorder
//! ([`Vec<Step>`]), the gate with [`Untraced`], whose recording compiles to nothing.

use std::collections::{HashMap, HashSet};
use std::fmt;

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

impl fmt::Display for HostPattern {
    /// As it is written in the `apps` table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::OrgPrefixed { suffix } => write!(f, "{{org}}{suffix}"),
            HostPattern::Exact(host) => f.write_str(host),
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
    /// Memberships by Keycloak user id (`sub`), then org slug, each member's roles
    /// highest first (as `X-Org-Roles` lists them; [`GateSnapshot::add_member`] keeps
    /// that order). Never by email: a person can change their email in Keycloak, not
    /// their `sub`.
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

/// A request let through: borrowed from the snapshot and the caller, so allowing
/// costs no allocation; the identity headers are made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a> {
    pub who: &'a Principal,
    pub app: &'a AppRule,
    pub org: &'a OrgEntry,
    /// Highest first.
    pub roles: &'a [Role],
}

impl Grant<'_> {
    pub fn user_id(&self) -> &str {
        &self.who.sub
    }

    /// The proven email only; without one the app gets no `X-User-Email` at all.
    pub fn email(&self) -> Option<&str> {
        self.who.email.as_deref()
    }

    pub fn org_slug(&self) -> &str {
        self.org.slug.as_str()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    Allow(Grant<'a>),
    /// Nobody is signed in.
    SignIn,
    /// Signed in, but the host names no org and none is chosen.
    ChooseOrg,
    Deny(Denial),
}

impl Outcome<'_> {
    /// The `outcome` label of `wizbrand_gate_decisions_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Allow(_) => "allow",
            Outcome::SignIn => "unauthenticated",
            Outcome::ChooseOrg => "choose_org",
            Outcome::Deny(_) => "deny",
        }
    }
}

/// Where the org of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgFrom {
    /// The `{org}` label of the host.
    Host,
    /// The caller's chosen org (`preferred_org`).
    Chosen,
    /// Neither: the host names none and none is chosen.
    Nowhere,
}

/// The app a host matched, as a step shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSeen {
    pub key: String,
    pub name: String,
    pub pattern: String,
    pub feature: String,
    pub min_role: Role,
}

/// One step of the decision and what it found. [`Step::passed`] says whether the
/// decision went on from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The forwarded host against every app's host pattern (the first match counts).
    App {
        host: String,
        matched: Option<AppSeen>,
    },
    /// Who is asking (their Keycloak `sub`), if anyone.
    Caller {
        sub: Option<String>,
    },
    Org {
        slug: Option<String>,
        from: OrgFrom,
    },
    /// The caller's roles in the org; `None` when not a member (`org_exists` false:
    /// no org of that slug, which the gate answers the same way, so slugs stay private).
    Membership {
        org: String,
        org_exists: bool,
        roles: Option<Vec<Role>>,
    },
    Status {
        org: String,
        active: bool,
    },
    Role {
        held: Vec<Role>,
        needed: Role,
        enough: bool,
    },
    Feature {
        feature: String,
        plan: Vec<String>,
        included: bool,
    },
    Hidden {
        app: String,
        hidden: bool,
    },
}

impl Step {
    /// Whether the decision went on after this step.
    pub fn passed(&self) -> bool {
        match self {
            Step::App { matched, .. } => matched.is_some(),
            Step::Caller { sub } => sub.is_some(),
            Step::Org { slug, .. } => slug.is_some(),
            Step::Membership { roles, .. } => roles.is_some(),
            Step::Status { active, .. } => *active,
            Step::Role { enough, .. } => *enough,
            Step::Feature { included, .. } => *included,
            Step::Hidden { hidden, .. } => !hidden,
        }
    }

    /// A short name of the step.
    pub fn title(&self) -> &'static str {
        match self {
            Step::App { .. } => "app",
            Step::Caller { .. } => "caller",
            Step::Org { .. } => "org",
            Step::Membership { .. } => "membership",
            Step::Status { .. } => "org status",
            Step::Role { .. } => "role",
            Step::Feature { .. } => "feature",
            Step::Hidden { .. } => "hidden apps",
        }
    }
}

fn roles_text(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    if names.is_empty() {
        "no role".to_owned()
    } else {
        names.join(", ")
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::App {
                host,
                matched: Some(app),
            } => write!(
                f,
                "{host} matches app {} ({}) by the host pattern {}; it needs the feature \"{}\" and the role {} or higher",
                app.key, app.name, app.pattern, app.feature, app.min_role
            ),
            Step::App {
                host,
                matched: None,
            } => {
                write!(f, "{host} matches no app's host pattern: unknown host")
            }
            Step::Caller { sub: Some(sub) } => write!(f, "signed in as {sub}"),
            Step::Caller { sub: None } => write!(f, "nobody is signed in: sign in first"),
            Step::Org {
                slug: Some(slug),
                from: OrgFrom::Host,
            } => write!(f, "the org \"{slug}\" from the host"),
            Step::Org {
                slug: Some(slug), ..
            } => write!(
                f,
                "the host names no org; the caller's chosen org (preferred_org) is \"{slug}\""
            ),
            Step::Org { slug: None, .. } => write!(
                f,
                "the host names no org and the caller has chosen none: choose an org first"
            ),
            Step::Membership {
                org,
                roles: Some(roles),
                ..
            } => write!(f, "a member of \"{org}\" with {}", roles_text(roles)),
            Step::Membership {
                org,
                org_exists: true,
                roles: None,
            } => write!(f, "not a member of \"{org}\""),
            Step::Membership {
                org,
                org_exists: false,
                roles: None,
            } => write!(
                f,
                "no org \"{org}\" exists (refused as \"not a member\", so slugs stay private)"
            ),
            Step::Status { org, active: true } => write!(f, "\"{org}\" is active"),
            Step::Status { org, active: false } => write!(f, "\"{org}\" is suspended"),
            Step::Role {
                held,
                needed,
                enough,
            } => write!(
                f,
                "{} against the minimum {needed}: {}",
                roles_text(held),
                if *enough { "enough" } else { "too low" }
            ),
            Step::Feature {
                feature,
                plan,
                included,
            } => write!(
                f,
                "the feature \"{feature}\" is {}in the org's plan ({})",
                if *included { "" } else { "not " },
                if plan.is_empty() {
                    "no features".to_owned()
                } else {
                    plan.join(", ")
                }
            ),
            Step::Hidden { app, hidden: true } => {
                write!(f, "an ORG_ADMIN of the org has closed {app} (hidden_apps)")
            }
            Step::Hidden { app, hidden: false } => {
                write!(f, "{app} is not among the org's hidden apps")
            }
        }
    }
}

/// Where a decision's steps go.
pub trait Trace {
    /// `step` is only called when the trace keeps steps: the gate's hot path never
    /// builds one.
    fn record(&mut self, step: impl FnOnce() -> Step);
}

/// The gate's trace: keeps nothing, costs nothing.
pub struct Untraced;

impl Trace for Untraced {
    #[inline(always)]
    fn record(&mut self, _step: impl FnOnce() -> Step) {}
}

impl Trace for Vec<Step> {
    fn record(&mut self, step: impl FnOnce() -> Step) {
        self.push(step());
    }
}

impl GateSnapshot {
    /// Whether `host` (normalised) is an app host behind the gate.
    pub fn serves(&self, host: &str) -> bool {
        self.app_for(host).is_some()
    }

    /// The org an app host names (its `{org}` label), if any.
    pub fn org_in_host<'h>(&self, host: &'h str) -> Option<&'h str> {
        self.app_for(host).and_then(|(_, org)| org)
    }

    fn app_for<'h>(&self, host: &'h str) -> Option<(&AppRule, Option<&'h str>)> {
        self.apps
            .iter()
            .find_map(|app| app.host.matches(host).map(|org| (app, org)))
    }

    fn roles_of(&self, who: &Principal, org: &str) -> Option<&Vec<Role>> {
        self.members_by_sub.get(&who.sub).and_then(|m| m.get(org))
    }

    /// Records a membership, its roles highest first and each once.
    pub fn add_member(&mut self, sub: String, org: String, mut roles: Vec<Role>) {
        roles.sort_by(|a, b| b.cmp(a));
        roles.dedup();
        self.members_by_sub
            .entry(sub)
            .or_default()
            .insert(org, roles);
    }
}

/// Normalises a forwarded host: lower-case, no port, no trailing dot. Borrows when the
/// host is already in that form (the usual case: Traefik sends what browsers send).
pub fn normalise_host(raw: &str) -> std::borrow::Cow<'_, str> {
    let host = raw.trim();
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// The gate's decision (nothing recorded).
pub fn decide<'a>(state: &'a GateSnapshot, host: &str, who: Option<&'a Principal>) -> Outcome<'a> {
    decide_traced(state, host, who, &mut Untraced)
}

/// The decision, each step recorded in `trace`: the one function behind the gate and
/// `explain`.
pub fn decide_traced<'a>(
    state: &'a GateSnapshot,
    host: &str,
    who: Option<&'a Principal>,
    trace: &mut impl Trace,
) -> Outcome<'a> {
    let found = state.app_for(host);
    trace.record(|| Step::App {
        host: host.to_owned(),
        matched: found.map(|(app, _)| AppSeen {
            key: app.key.clone(),
            name: app.name.clone(),
            pattern: app.host.to_string(),
            feature: app.required_feature.clone(),
            min_role: app.min_role,
        }),
    });
    let Some((app, org_in_host)) = found else {
        return Outcome::Deny(Denial::UnknownHost {
            host: host.to_owned(),
        });
    };
    trace.record(|| Step::Caller {
        sub: who.map(|w| w.sub.clone()),
    });
    let Some(who) = who else {
        return Outcome::SignIn;
    };
    let (org_slug, from) = match (org_in_host, who.preferred_org.as_deref()) {
        (Some(slug), _) => (Some(slug), OrgFrom::Host),
        (None, Some(slug)) => (Some(slug), OrgFrom::Chosen),
        (None, None) => (None, OrgFrom::Nowhere),
    };
    trace.record(|| Step::Org {
        slug: org_slug.map(str::to_owned),
        from,
    });
    let Some(org_slug) = org_slug else {
        return Outcome::ChooseOrg;
    };
    let deny = |make: fn(String, String) -> Denial| {
        Outcome::Deny(make(org_slug.to_owned(), app.name.clone()))
    };
    let org = state.orgs.get(org_slug);
    // An org that does not exist looks like one the user is not in: slugs stay private.
    let roles = org.and(state.roles_of(who, org_slug));
    trace.record(|| Step::Membership {
        org: org_slug.to_owned(),
        org_exists: org.is_some(),
        roles: roles.cloned(),
    });
    let (Some(org), Some(roles)) = (org, roles) else {
        return deny(|org, app| Denial::NotMember { org, app });
    };
    trace.record(|| Step::Status {
        org: org_slug.to_owned(),
        active: org.active,
    });
    if !org.active {
        return deny(|org, app| Denial::OrgSuspended { org, app });
    }
    let enough = policy::satisfies(roles, app.min_role);
    trace.record(|| Step::Role {
        held: roles.clone(),
        needed: app.min_role,
        enough,
    });
    if !enough {
        return Outcome::Deny(Denial::RoleTooLow {
            org: org_slug.to_owned(),
            app: app.name.clone(),
            needed: app.min_role,
        });
    }
    let included = org.features.contains(&app.required_feature);
    trace.record(|| Step::Feature {
        feature: app.required_feature.clone(),
        plan: {
            let mut plan: Vec<String> = org.features.iter().cloned().collect();
            plan.sort();
            plan
        },
        included,
    });
    if !included {
        return Outcome::Deny(Denial::FeatureMissing {
            org: org_slug.to_owned(),
            app: app.name.clone(),
            feature: app.required_feature.clone(),
        });
    }
    let hidden = org.hidden_apps.contains(&app.key);
    trace.record(|| Step::Hidden {
        app: app.key.clone(),
        hidden,
    });
    if hidden {
        return deny(|org, app| Denial::AppHidden { org, app });
    }
    Outcome::Allow(Grant {
        who,
        app,
        org,
        roles,
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

    /// The outcome's label and, for a refusal, its kind (owned: the outcome borrows).
    fn outcome(host: &str, p: Option<Principal>) -> (String, Option<&'static str>) {
        let s = state();
        let o = decide(&s, host, p.as_ref());
        let kind = match &o {
            Outcome::Deny(d) => Some(d.kind()),
            _ => None,
        };
        (o.label().to_owned(), kind)
    }

    #[test]
    fn a_member_with_enough_role_is_let_through_with_identity() {
        let s = state();
        let alice = who("alice", None);
        let Outcome::Allow(grant) = decide(&s, "acme.files.wizbrand.localhost", Some(&alice))
        else {
            panic!("not allowed")
        };
        assert_eq!(grant.org_slug(), "acme");
        assert_eq!(grant.roles, &[Role::Admin]);
        assert_eq!(grant.email(), Some("alice@example.com"));
        assert_eq!(grant.user_id(), "alice");
        assert_eq!(grant.app.key, "files");
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
            assert_eq!(
                outcome(host, Some(who(sub, None))),
                ("deny".to_owned(), Some(kind)),
                "{host} as {sub}"
            );
        }
    }

    #[test]
    fn no_session_signs_in_and_no_org_asks_to_choose() {
        assert_eq!(
            outcome("acme.seo.wizbrand.localhost", None).0,
            "unauthenticated"
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
        let bob = who("bob", None);
        assert_eq!(
            decide(&s, "panel.wizbrand.localhost", Some(&bob)),
            Outcome::ChooseOrg
        );
        let bob = who("bob", Some("acme"));
        assert!(matches!(
            decide(&s, "panel.wizbrand.localhost", Some(&bob)),
            Outcome::Allow(_)
        ));
    }

    /// The recorded decision is the gate's decision: the same outcome, every step but
    /// the last one passed, and the last one passed only when the request is allowed.
    #[test]
    fn the_recorded_steps_lead_to_the_gates_outcome() {
        let s = state();
        let people = [
            None,
            Some(who("alice", None)),
            Some(who("bob", None)),
            Some(who("bob", Some("acme"))),
            Some(who("carol", None)),
        ];
        let hosts = [
            "acme.seo.wizbrand.localhost",
            "acme.files.wizbrand.localhost",
            "beta.files.wizbrand.localhost",
            "nope.seo.wizbrand.localhost",
            "acme.music.wizbrand.localhost",
            "gone.seo.wizbrand.localhost",
            "shut.seo.wizbrand.localhost",
            "evil.example.com",
        ];
        for host in hosts {
            for p in &people {
                let mut steps: Vec<Step> = Vec::new();
                let traced = decide_traced(&s, host, p.as_ref(), &mut steps);
                assert_eq!(traced, decide(&s, host, p.as_ref()), "{host} {p:?}");
                let (last, before) = steps.split_last().unwrap_or_else(|| panic!("no step"));
                assert!(before.iter().all(Step::passed), "{host} {p:?}: {steps:?}");
                assert_eq!(
                    last.passed(),
                    matches!(traced, Outcome::Allow(_)),
                    "{host} {p:?}: {steps:?}"
                );
                // Every step says something a person can read.
                assert!(steps.iter().all(|st| !st.to_string().is_empty()));
            }
        }
        let mut steps = Vec::new();
        let bob = who("bob", None);
        decide_traced(&s, "acme.files.wizbrand.localhost", Some(&bob), &mut steps);
        let titles: Vec<&str> = steps.iter().map(Step::title).collect();
        assert_eq!(
            titles,
            ["app", "caller", "org", "membership", "org status", "role"]
        );
        assert_eq!(
            steps[5].to_string(),
            "ORG_USER against the minimum ORG_MANAGER: too low"
        );
        assert_eq!(
            steps[0].to_string(),
            "acme.files.wizbrand.localhost matches app files (files) by the host pattern \
             {org}.files.wizbrand.localhost; it needs the feature \"files\" and the role ORG_MANAGER or higher"
        );
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
