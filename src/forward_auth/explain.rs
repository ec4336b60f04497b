//! Why the gate lets a person through or not: `wizbrand explain --email E --url URL`
//! and the admin page `/admin/explain` run the gate's own decision
//! ([`decide::decide_traced`]) for that person and URL, with a recorder, and show each
//! step, the outcome and the headers an app would get. Never a copy of the rules.

use sqlx::PgPool;

use super::assertion::{Claims, Signer};
use super::decide::{self, GateSnapshot, OrgFrom, Outcome, Step};
use crate::domain::{Email, Principal};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("`{0}` is not an email address")]
    BadEmail(String),
    #[error(
        "`{0}` is not an absolute http(s) URL with a host, e.g. http://acme.seo.wizbrand.localhost/"
    )]
    BadUrl(String),
    #[error("nobody with the email {0} is known to wizbrand (no member row)")]
    UnknownPerson(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The person asked about, as Postgres knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub email: String,
    /// Their Keycloak account (`sub`): none until they first sign in or the sync
    /// creates one.
    pub sub: Option<String>,
    /// The org they chose last (`preferred_org`).
    pub preferred_org: Option<String>,
}

/// Looks a person up by email.
pub async fn find_person(pool: &PgPool, email: &str) -> Result<Person, ExplainError> {
    let email = Email::parse(email).map_err(|_| ExplainError::BadEmail(email.to_owned()))?;
    let row = crate::db::gate::person_by_email(pool, email.as_str())
        .await?
        .ok_or_else(|| ExplainError::UnknownPerson(email.to_string()))?;
    Ok(Person {
        email: row.email,
        sub: row.keycloak_id,
        preferred_org: row.preferred_org,
    })
}

/// What to explain.
pub struct Question<'a> {
    pub person: &'a Person,
    pub url: &'a str,
    /// Decide as if the person had chosen this org (`--org`); else their stored choice
    /// when `use_stored_choice`.
    pub org: Option<&'a str>,
    pub use_stored_choice: bool,
}

/// The decision, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The forwarded host as the gate reads it (lower-case, no port).
    pub host: String,
    pub email: String,
    pub sub: Option<String>,
    /// Said before the steps (e.g. no Keycloak account yet).
    pub notes: Vec<String>,
    pub steps: Vec<Step>,
    /// The org the decision is about, if it got that far.
    pub org: Option<String>,
    /// `allow`, `unauthenticated`, `choose_org` or `deny` (the metric's label).
    pub outcome: &'static str,
    /// The refusal's problem type (`role-too-low`, …), when refused.
    pub denial: Option<&'static str>,
    /// What the gate answers, in words.
    pub answer: String,
    /// The identity headers an app gets (allowed only).
    pub headers: Vec<(String, String)>,
    /// The claims of `X-Wizbrand-Assertion`, when the assertion is on (never signed
    /// here: an explanation must not hand out a credential).
    pub assertion: Option<Claims>,
}

/// The host of `url` as the gate reads it.
pub fn host_of(url: &str) -> Result<String, ExplainError> {
    let bad = || ExplainError::BadUrl(url.to_owned());
    let parsed = url::Url::parse(url.trim()).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad());
    }
    let host = parsed.host_str().ok_or_else(bad)?;
    Ok(decide::normalise_host(host).into_owned())
}

/// Runs the gate's decision for `question` against `snapshot` (the gate's state).
pub fn explain(
    snapshot: &GateSnapshot,
    question: &Question<'_>,
    signer: Option<&Signer>,
) -> Result<Explanation, ExplainError> {
    let host = host_of(question.url)?;
    let person = question.person;
    let mut notes = Vec::new();
    let chosen = question.org.map(str::to_owned).or_else(|| {
        question
            .use_stored_choice
            .then(|| person.preferred_org.clone())
            .flatten()
    });
    let principal = person.sub.as_ref().map(|sub| Principal {
        sub: sub.clone(),
        // What a sign-in carries when Keycloak has the address verified; the gate
        // sends X-User-Email only then.
        email: Email::parse_new(&person.email).ok().map(Email::into_string),
        preferred_org: chosen.clone(),
        // The gate never looks at it.
        platform_admin: false,
    });
    if person.sub.is_none() {
        notes.push(format!(
            "{} has no Keycloak account linked yet (no sign-in so far, and the sync has not created one): \
             they cannot sign in, so the gate sees nobody.",
            person.email
        ));
    }
    if let Some(org) = question.org {
        notes.push(format!(
            "Decided as if {} had chosen the org \"{org}\".",
            person.email
        ));
    }
    let mut steps: Vec<Step> = Vec::new();
    let outcome = decide::decide_traced(snapshot, &host, principal.as_ref(), &mut steps);
    let org = steps.iter().find_map(|s| match s {
        Step::Org {
            slug: Some(slug), ..
        } => Some(slug.clone()),
        _ => None,
    });
    let mut headers = Vec::new();
    let mut assertion = None;
    let (answer, denial) = match &outcome {
        Outcome::Allow(grant) => {
            super::identity_headers(grant, |name, value| {
                headers.push((
                    name.to_string(),
                    value.to_str().unwrap_or_default().to_owned(),
                ));
            });
            if let Some(signer) = signer {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or_default();
                assertion = Some(Claims::of(grant, signer.issuer(), &host, now, signer.ttl()));
            }
            (
                format!(
                    "200: allowed. Traefik passes the request on to {} with the headers below \
                     (X-User-Email only when the sign-in proved the address), the request's \
                     cookies minus wizbrand's, and{} its Authorization header.",
                    grant.app.name,
                    if grant.app.pass_authorization {
                        ""
                    } else {
                        " (unless it is not a Bearer token)"
                    }
                ),
                None,
            )
        }
        Outcome::SignIn => (
            "A browser is sent to sign in (302 to the auth host's hand-off); a script or XHR \
             gets 401 with WWW-Authenticate: Bearer."
                .to_owned(),
            None,
        ),
        Outcome::ChooseOrg => (
            "302 to /orgs/select: the person chooses an org first (the host names none)."
                .to_owned(),
            None,
        ),
        Outcome::Deny(denial) => (
            format!(
                "403 {}: \"{}\" (the page a person sees says this; a script gets \
                 problem+json of type https://wizbrand.dev/problems/{})",
                denial.kind(),
                denial.explain(),
                denial.kind()
            ),
            Some(denial.kind()),
        ),
    };
    if org.is_some()
        && steps.iter().any(|s| {
            matches!(
                s,
                Step::Org {
                    from: OrgFrom::Chosen,
                    ..
                }
            )
        })
        && question.org.is_none()
    {
        notes.push(format!(
            "The host names no org: the org is the one {} chose last.",
            person.email
        ));
    }
    Ok(Explanation {
        host,
        email: person.email.clone(),
        sub: person.sub.clone(),
        notes,
        org,
        outcome: outcome.label(),
        denial,
        answer,
        headers,
        assertion,
        steps,
    })
}

impl Explanation {
    /// The explanation as text (the command prints it).
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} at {}{}\n",
            self.email,
            self.host,
            self.sub
                .as_deref()
                .map(|s| format!(" (Keycloak account {s})"))
                .unwrap_or_default()
        );
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        for (i, step) in self.steps.iter().enumerate() {
            out.push_str(&format!(
                "{}. {} [{}] {step}\n",
                i + 1,
                step.title(),
                if step.passed() { "ok" } else { "stop" }
            ));
        }
        out.push_str(&format!("outcome: {}\n", self.answer));
        if !self.headers.is_empty() {
            out.push_str("headers:\n");
            for (name, value) in &self.headers {
                out.push_str(&format!("  {name}: {value}\n"));
            }
        }
        if let Some(claims) = &self.assertion {
            out.push_str(&format!(
                "  X-Wizbrand-Assertion: a JWT signed at request time with the claims {}\n",
                serde_json::to_string(claims).unwrap_or_default()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::domain::{OrgSlug, Role};
    use crate::forward_auth::decide::{AppRule, HostPattern, OrgEntry};

    fn snapshot() -> GateSnapshot {
        let mut s = GateSnapshot {
            apps: vec![AppRule {
                key: "files".into(),
                name: "Files".into(),
                host: HostPattern::parse("{org}.files.wizbrand.localhost"),
                required_feature: "files".into(),
                min_role: Role::Manager,
                pass_authorization: false,
            }],
            orgs: HashMap::from([(
                "acme".to_owned(),
                OrgEntry {
                    id: uuid::Uuid::nil(),
                    slug: OrgSlug::parse("acme").unwrap_or_else(|e| panic!("{e}")),
                    active: true,
                    features: HashSet::from(["files".to_owned()]),
                    hidden_apps: HashSet::new(),
                },
            )]),
            members_by_sub: HashMap::new(),
        };
        s.add_member(
            "s-alice".into(),
            "acme".into(),
            vec![Role::User, Role::Admin],
        );
        s.add_member("s-bob".into(), "acme".into(), vec![Role::User]);
        s
    }

    fn person(name: &str, sub: bool) -> Person {
        Person {
            email: format!("{name}@example.com"),
            sub: sub.then(|| format!("s-{name}")),
            preferred_org: None,
        }
    }

    fn ask(p: &Person, url: &str) -> Explanation {
        explain(
            &snapshot(),
            &Question {
                person: p,
                url,
                org: None,
                use_stored_choice: true,
            },
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_allowed_person_sees_the_headers_the_app_gets() {
        let e = ask(
            &person("alice", true),
            "http://ACME.files.wizbrand.localhost:8000/x?y",
        );
        assert_eq!(e.host, "acme.files.wizbrand.localhost");
        assert_eq!(e.outcome, "allow");
        assert_eq!(e.org.as_deref(), Some("acme"));
        assert!(e.steps.iter().all(Step::passed));
        let headers: HashMap<&str, &str> = e
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(headers["x-user-id"], "s-alice");
        assert_eq!(headers["x-user-email"], "alice@example.com");
        assert_eq!(headers["x-org-slug"], "acme");
        assert_eq!(headers["x-org-roles"], "ORG_ADMIN,ORG_USER");
        assert!(
            e.to_text().contains("outcome: 200: allowed"),
            "{}",
            e.to_text()
        );
    }

    #[test]
    fn a_refusal_names_the_step_and_the_reason_the_person_sees() {
        let e = ask(
            &person("bob", true),
            "http://acme.files.wizbrand.localhost/",
        );
        assert_eq!((e.outcome, e.denial), ("deny", Some("role-too-low")));
        let last = e.steps.last().unwrap_or_else(|| panic!("no steps"));
        assert_eq!(last.title(), "role");
        assert!(!last.passed());
        assert!(e.headers.is_empty());
        let text = e.to_text();
        assert!(
            text.contains("6. role [stop] ORG_USER against the minimum ORG_MANAGER: too low"),
            "{text}"
        );
        assert!(
            text.contains("needs the role ORG_MANAGER or higher"),
            "{text}"
        );
    }

    #[test]
    fn a_person_without_an_account_is_nobody_to_the_gate() {
        let e = ask(
            &person("carol", false),
            "http://acme.files.wizbrand.localhost/",
        );
        assert_eq!(e.outcome, "unauthenticated");
        assert!(e.notes[0].contains("no Keycloak account"), "{:?}", e.notes);
    }

    #[test]
    fn urls_must_be_absolute() {
        for bad in ["acme.files.wizbrand.localhost", "/x", "ftp://h/", ""] {
            let p = person("alice", true);
            let q = Question {
                person: &p,
                url: bad,
                org: None,
                use_stored_choice: false,
            };
            assert!(
                matches!(explain(&snapshot(), &q, None), Err(ExplainError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
