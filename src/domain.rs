//! Values parsed at the edge: once one of these exists, it is valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub(crate) mod rules;
pub(crate) mod run;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error(
        "\"{0}\" is not a valid org slug: use 1-63 lower-case letters, digits and dashes, not starting or ending with a dash"
    )]
    SlugFormat(String),
    #[error("\"{0}\" is reserved and cannot be an org slug")]
    SlugReserved(String),
    #[error("\"{0}\" is not a role; roles are ORG_ADMIN, ORG_MANAGER, ORG_USER")]
    UnknownRole(String),
    #[error("\"{0}\" is not an email address")]
    Email(String),
    #[error("\"{0}\" is not a plan; plans are free, pro, enterprise")]
    UnknownPlan(String),
    #[error(
        "\"{0}\" is not an email domain: use two or more DNS labels of letters, digits and inner dashes, like acme.example (an IDN as punycode)"
    )]
    DomainFormat(String),
    #[error(
        "{0} is a public mail provider's domain: its addresses belong to anyone, so no organization can claim it"
    )]
    DomainPublic(String),
}

/// An org's plan: one of a known set, each with its quotas ([`crate::policy::quotas`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
}

impl Plan {
    pub const ALL: [Plan; 3] = [Plan::Free, Plan::Pro, Plan::Enterprise];
    /// The names, in the order offered.
    pub const NAMES: [&'static str; 3] = ["free", "pro", "enterprise"];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }
}

impl FromStr for Plan {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Plan::ALL
            .into_iter()
            .find(|p| p.as_str() == raw)
            .ok_or_else(|| DomainError::UnknownPlan(raw.to_owned()))
    }
}

/// From a JSON string only (as [`Role`]): another string is an unknown variant naming
/// the allowed ones, the API's 422.
impl<'de> Deserialize<'de> for Plan {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse()
            .map_err(|_| serde::de::Error::unknown_variant(&raw, &Plan::NAMES))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Slugs that name wizbrand's own hosts and paths; the `orgs_slug_not_reserved`
/// constraint holds the same list.
pub const RESERVED_SLUGS: &[&str] = &[
    "www", "auth", "api", "admin", "login", "logout", "static", "assets", "keycloak", "sso", "id",
    "mail", "root", "system", "wizbrand", "orgs", "metrics", "health",
];

/// An org's slug: a DNS label, since it becomes `<slug>.<app>.<domain>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OrgSlug(String);

impl OrgSlug {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let bytes = raw.as_bytes();
        let well_formed = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-');
        if !well_formed {
            return Err(DomainError::SlugFormat(raw.to_owned()));
        }
        if RESERVED_SLUGS.contains(&raw) {
            return Err(DomainError::SlugReserved(raw.to_owned()));
        }
        Ok(OrgSlug(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrgSlug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        OrgSlug::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A role in an org, ordered from least to most privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Role {
    #[serde(rename = "ORG_USER")]
    User,
    #[serde(rename = "ORG_MANAGER")]
    Manager,
    #[serde(rename = "ORG_ADMIN")]
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Manager, Role::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "ORG_USER",
            Role::Manager => "ORG_MANAGER",
            Role::Admin => "ORG_ADMIN",
        }
    }
}

impl FromStr for Role {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "ORG_USER" => Ok(Role::User),
            "ORG_MANAGER" => Ok(Role::Manager),
            "ORG_ADMIN" => Ok(Role::Admin),
            other => Err(DomainError::UnknownRole(other.to_owned())),
        }
    }
}

/// From a JSON string only. Written by hand so that `null` or a number is a wrong type
/// (the API's 422), where the derived enum would call it malformed JSON (400).
impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(|_| {
            serde::de::Error::unknown_variant(&raw, &["ORG_USER", "ORG_MANAGER", "ORG_ADMIN"])
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking, as proven by a session or a verified token: their Keycloak `sub`
/// (the identity), their proven email (`Email::proven`), their chosen org, and whether
/// they are a platform administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub email: Option<String>,
    pub preferred_org: Option<String>,
    pub platform_admin: bool,
}

/// An email address, normalised: trimmed and lower-cased (Keycloak lower-cases
/// usernames and emails too, so this is the form both sides agree on).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let trimmed = raw.trim();
        let valid = match trimmed.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control())
                    && !domain.contains('@')
                    && trimmed.len() <= 254
            }
            None => false,
        };
        if !valid {
            return Err(DomainError::Email(raw.to_owned()));
        }
        Ok(Email(trimmed.to_lowercase()))
    }

    /// [`Email::parse`] plus the rules Keycloak and mail servers hold an address to, for
    /// a person added now: ASCII only (an IDN domain as punycode, so look-alike letters
    /// cannot pass for another domain), a local part of 1-64 characters from RFC 5322's
    /// `atext` and single dots, domain labels of 1-63 letters, digits and inner dashes.
    /// Addresses already stored are read with the plainer [`Email::parse`].
    pub fn parse_new(raw: &str) -> Result<Self, DomainError> {
        let email = Email::parse(raw)?;
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
        let valid = email.0.split_once('@').is_some_and(|(local, domain)| {
            local.len() <= 64
                && local
                    .split('.')
                    .all(|part| !part.is_empty() && part.chars().all(atext))
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        });
        if valid {
            Ok(email)
        } else {
            Err(DomainError::Email(raw.to_owned()))
        }
    }

    /// An address a person has proven, as Keycloak reports it (`email`,
    /// `email_verified`): verified, and valid by the rules for new members' addresses
    /// (so no comma, quote or angle bracket reaches an app's header). Anything else is
    /// no address at all to wizbrand.
    pub fn proven(raw: Option<&str>, verified: Option<bool>) -> Option<Email> {
        if verified != Some(true) {
            return None;
        }
        Email::parse_new(raw?).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Domains of public mail providers: anyone can hold an address there, so none of them
/// proves membership of an org. Not exhaustive; the platform admin's verification is the
/// real check (docs/lifecycle.md).
pub const PUBLIC_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "mail.com",
    "yandex.com",
    "yandex.ru",
    "qq.com",
    "163.com",
    "zoho.com",
    "fastmail.com",
    "example.com",
];

/// An email domain an org claims (`acme.example`): lower-case ASCII DNS labels, two or
/// more, the last starting with a letter (as every top-level domain does; no IP
/// address), at most 253 characters. An address is
/// at the domain when the part after its `@` is exactly it: subdomains are domains of
/// their own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EmailDomain(String);

impl EmailDomain {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let domain = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let valid = domain.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(label_ok)
            && labels
                .last()
                .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_lowercase()));
        if !valid {
            return Err(DomainError::DomainFormat(raw.to_owned()));
        }
        if PUBLIC_MAIL_DOMAINS.contains(&domain.as_str()) {
            return Err(DomainError::DomainPublic(domain));
        }
        Ok(EmailDomain(domain))
    }

    /// The domain of an address (already normalised by [`Email`]), if it is one a
    /// claim could name.
    pub fn of(email: &Email) -> Option<EmailDomain> {
        let (_, domain) = email.as_str().rsplit_once('@')?;
        EmailDomain::parse(domain).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Email::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verified_valid_addresses_are_proven() {
        let ok = Some("Bob@Example.com");
        assert_eq!(
            Email::proven(ok, Some(true)).map(Email::into_string),
            Some("bob@example.com".to_owned())
        );
        assert_eq!(Email::proven(ok, Some(false)), None);
        assert_eq!(Email::proven(ok, None), None);
        assert_eq!(Email::proven(None, Some(true)), None);
        for forged in [
            "\"bob@example.com,alice\"@example.com",
            "\"<script>\"@example.com",
            "bob@exämple.com",
            "bøb@example.com",
            "bob@example.com\r\nX-Org-Roles: ORG_ADMIN",
        ] {
            assert_eq!(Email::proven(Some(forged), Some(true)), None, "{forged}");
        }
    }

    #[test]
    fn slugs_are_dns_labels_and_not_reserved() {
        for good in ["acme", "a", "a-1", "x9", &"a".repeat(63)] {
            assert!(OrgSlug::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Acme", "-a", "a-", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert_eq!(
                OrgSlug::parse(bad),
                Err(DomainError::SlugFormat(bad.to_owned()))
            );
        }
        assert_eq!(
            OrgSlug::parse("admin"),
            Err(DomainError::SlugReserved("admin".into()))
        );
    }

    #[test]
    fn roles_order_by_privilege_and_round_trip() {
        assert!(Role::Admin > Role::Manager && Role::Manager > Role::User);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("OWNER".parse::<Role>().is_err());
        assert!("org_admin".parse::<Role>().is_err());
    }

    #[test]
    fn roles_from_json_are_strings_only() {
        let parse = |json: &str| serde_json::from_str::<Role>(json);
        assert_eq!(parse("\"ORG_ADMIN\"").ok(), Some(Role::Admin));
        for wrong_type in ["null", "1", "{}", "[]"] {
            let e = parse(wrong_type).err().map(|e| e.is_data());
            assert_eq!(e, Some(true), "{wrong_type}");
        }
        let unknown = parse("\"OWNER\"").err().map(|e| e.to_string());
        assert!(unknown.is_some_and(|e| e.contains("unknown variant `OWNER`")));
    }

    #[test]
    fn new_emails_follow_the_stricter_rules() {
        for good in [
            "erin@example.com",
            "Erin.Smith+x@Sub.Example.com",
            "a@xn--80ak6aa92e.com",
        ] {
            assert!(Email::parse_new(good).is_ok(), "{good}");
        }
        let long_local = format!("{}@example.com", "e".repeat(65));
        let long_label = format!("erin@{}.com", "e".repeat(64));
        for bad in [
            long_local.as_str(),
            long_label.as_str(),
            "erin@ехample.com",
            "érin@example.com",
            "<script>@example.com",
            "erin..smith@example.com",
            ".erin@example.com",
            "erin@-example.com",
            "erin@example_x.com",
        ] {
            assert!(
                Email::parse(bad).is_ok() || bad.contains(".."),
                "{bad} parses loosely"
            );
            assert!(Email::parse_new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn email_domains_are_dns_names_and_never_a_public_providers() {
        assert_eq!(
            EmailDomain::parse(" Acme.Example. ").map(|d| d.to_string()),
            Ok("acme.example".to_owned())
        );
        for good in [
            "acme.example",
            "a.b",
            "xn--80ak6aa92e.com",
            "mail.acme-corp.co.uk",
        ] {
            assert!(EmailDomain::parse(good).is_ok(), "{good}");
        }
        let long = format!("{}.com", "a".repeat(64));
        for bad in [
            "",
            "acme",
            ".acme.example",
            "acme..example",
            "-acme.example",
            "acme-.example",
            "acme_x.example",
            "ex\u{e4}mple.com",
            "10.0.0.1",
            "acme.1x",
            "acme.example/x",
            "a@acme.example",
            "acme example.com",
            &long,
        ] {
            assert!(
                matches!(EmailDomain::parse(bad), Err(DomainError::DomainFormat(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            EmailDomain::parse("GMail.com"),
            Err(DomainError::DomainPublic(_))
        ));
        let at = |e: &str| EmailDomain::of(&Email::parse(e).unwrap()).map(|d| d.to_string());
        assert_eq!(at("Bob@ACME.example"), Some("acme.example".to_owned()));
        assert_eq!(
            at("bob@sub.acme.example"),
            Some("sub.acme.example".to_owned())
        );
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").map(|e| e.to_string()),
            Ok("alice@example.com".to_owned())
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "a@b",
            "a@.com",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
