//! Which Keycloak account is which member: the one decision of the sync that security
//! rests on, pure so that each case is a unit test.
//!
//! A person is their Keycloak `sub`. A member row (Postgres, known by the email an admin
//! typed) is tied to an account only
//! - by the id stored on the row (the sync created that account, or a link below made it);
//! - or, for a row with no usable id, by the one account that claims the row's address
//!   and is nobody else's already, when that account either carries the row's id in
//!   `wizbrand_user` (the sync made it, and died before storing its id) or holds the
//!   address *as a verified email* (the realm lets only administrators change an email,
//!   and an address becomes verified only through Keycloak's own proof).
//!
//! Anything else that claims the address (an unverified email, a username equal to the
//! address, an account linked to another member) is a conflict: the member is left out
//! of the run, which says why, and nothing is created over it (Keycloak would refuse a
//! second account with that username or email on every run).

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::Email;

/// A user row as Postgres has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The Postgres user id.
    pub id: String,
    pub email: Email,
    pub keycloak_id: Option<String>,
}

/// What the sync read of a Keycloak account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub username: Option<String>,
    /// Keycloak's current email (which may differ from the member's).
    pub email: Option<Email>,
    pub email_verified: bool,
    /// The `wizbrand_user` attribute: whom the sync created this account for.
    pub created_for: Option<String>,
}

/// A link this run records on a member row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub email: Email,
    pub keycloak_id: String,
    /// The id the row held before, when that account is gone from Keycloak.
    pub previous: Option<String>,
    pub proof: Proof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The account holds the member's address as a verified email.
    VerifiedEmail,
    /// This sync created the account for the member.
    CreatedBySync,
}

impl Proof {
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::VerifiedEmail => "verified email in Keycloak",
            Proof::CreatedBySync => "created by the sync",
        }
    }
}

/// A member the run cannot provision, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub email: Email,
    pub account_id: String,
    pub reason: &'static str,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "member {}: Keycloak account {} {}; not linked and no account created \
             (the person signs in with the address verified, or an administrator resolves it)",
            self.email, self.account_id, self.reason
        )
    }
}

/// The outcome for every member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// Account id → the member it belongs to.
    pub linked: BTreeMap<String, Email>,
    /// Links to record (the account is in `linked` already).
    pub new_links: Vec<Link>,
    /// Members whose stored account is gone: the run creates a new one; the id it held.
    pub gone: BTreeMap<Email, String>,
    pub conflicts: Vec<Conflict>,
}

impl Resolution {
    pub fn conflicted(&self) -> BTreeSet<&Email> {
        self.conflicts.iter().map(|c| &c.email).collect()
    }
}

/// Ties members to accounts. `accounts` holds every account the sync read: for a full
/// run the whole realm, for a scoped run the stored ids and whatever claims a scoped
/// member's address.
pub fn resolve(members: &[Member], accounts: &BTreeMap<String, Account>) -> Resolution {
    let mut out = Resolution::default();
    // Every stored id that still names an account belongs to its member, whatever that
    // account's email says now.
    let owned: BTreeSet<&str> = members
        .iter()
        .filter_map(|m| m.keycloak_id.as_deref())
        .filter(|id| accounts.contains_key(*id))
        .collect();
    // Who claims which address, by email or (ASCII case aside) username, in id order:
    // one pass over the accounts instead of one per unlinked member.
    let mut by_address: BTreeMap<String, Vec<&Account>> = BTreeMap::new();
    for account in accounts.values() {
        let email = account.email.as_ref().map(|e| e.as_str().to_owned());
        let username = account.username.as_deref().map(str::to_ascii_lowercase);
        for address in email
            .iter()
            .chain(username.iter().filter(|u| Some(*u) != email.as_ref()))
        {
            by_address.entry(address.clone()).or_default().push(account);
        }
    }
    for m in members {
        if let Some(id) = m.keycloak_id.as_deref()
            && accounts.contains_key(id)
        {
            out.linked.insert(id.to_owned(), m.email.clone());
            continue;
        }
        let claimants: &[&Account] = by_address.get(m.email.as_str()).map_or(&[], Vec::as_slice);
        let previous = m.keycloak_id.clone();
        match claimants {
            [] => {
                if let Some(old) = previous {
                    out.gone.insert(m.email.clone(), old);
                }
            }
            [account] => {
                let made_for_this_member = account.created_for.as_deref() == Some(m.id.as_str());
                let reason = if owned.contains(account.id.as_str()) {
                    Some("belongs to another member")
                } else if made_for_this_member {
                    None
                } else if account.email.as_ref() != Some(&m.email) {
                    Some("has this address as its username but another email")
                } else if !account.email_verified {
                    Some("holds this address, but its email is not verified")
                } else {
                    None
                };
                match reason {
                    Some(reason) => out.conflicts.push(Conflict {
                        email: m.email.clone(),
                        account_id: account.id.clone(),
                        reason,
                    }),
                    None => {
                        out.linked.insert(account.id.clone(), m.email.clone());
                        out.new_links.push(Link {
                            email: m.email.clone(),
                            keycloak_id: account.id.clone(),
                            previous,
                            proof: if made_for_this_member {
                                Proof::CreatedBySync
                            } else {
                                Proof::VerifiedEmail
                            },
                        });
                    }
                }
            }
            [first, ..] => out.conflicts.push(Conflict {
                email: m.email.clone(),
                account_id: first.id.clone(),
                reason: "is one of several accounts that claim this address",
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn member(e: &str, id: Option<&str>) -> Member {
        Member {
            id: format!("pg-{e}"),
            email: email(e),
            keycloak_id: id.map(str::to_owned),
        }
    }

    fn account(id: &str, username: &str, e: &str, verified: bool) -> (String, Account) {
        (
            id.to_owned(),
            Account {
                id: id.to_owned(),
                username: Some(username.to_owned()),
                email: Some(email(e)),
                email_verified: verified,
                created_for: None,
            },
        )
    }

    #[test]
    fn a_stored_id_wins_whatever_the_account_email_says_now() {
        let accounts = BTreeMap::from([account("k1", "old@x.io", "new@x.io", false)]);
        let r = resolve(&[member("old@x.io", Some("k1"))], &accounts);
        assert_eq!(r.linked.get("k1"), Some(&email("old@x.io")));
        assert!(r.new_links.is_empty() && r.conflicts.is_empty() && r.gone.is_empty());
    }

    #[test]
    fn an_unverified_account_with_the_members_address_is_a_conflict_never_a_link() {
        // The attack: a stranger sets their email to an address an admin then adds.
        let accounts = BTreeMap::from([account("evil", "mallory", "invited@x.io", false)]);
        let r = resolve(&[member("invited@x.io", None)], &accounts);
        assert!(r.linked.is_empty());
        assert_eq!(r.conflicts.len(), 1);
        assert_eq!(r.conflicts[0].account_id, "evil");
        assert!(r.conflicts[0].to_string().contains("not verified"));
    }

    #[test]
    fn a_member_who_changed_their_email_keeps_their_membership_and_cannot_take_another() {
        // bob (k-bob) is a member as bob@x.io and set his email to invited@x.io.
        let accounts = BTreeMap::from([account("k-bob", "bob@x.io", "invited@x.io", false)]);
        let r = resolve(
            &[
                member("bob@x.io", Some("k-bob")),
                member("invited@x.io", None),
            ],
            &accounts,
        );
        assert_eq!(r.linked.get("k-bob"), Some(&email("bob@x.io")));
        assert_eq!(r.linked.len(), 1);
        assert_eq!(r.conflicts[0].email, email("invited@x.io"));
        assert_eq!(r.conflicts[0].reason, "belongs to another member");
    }

    #[test]
    fn even_a_verified_email_of_another_members_account_is_not_linked() {
        let accounts = BTreeMap::from([account("k-bob", "bob@x.io", "invited@x.io", true)]);
        let r = resolve(
            &[
                member("bob@x.io", Some("k-bob")),
                member("invited@x.io", None),
            ],
            &accounts,
        );
        assert_eq!(r.conflicts[0].reason, "belongs to another member");
    }

    #[test]
    fn a_verified_unlinked_account_is_linked_once() {
        let accounts = BTreeMap::from([account("k", "ann@x.io", "ann@x.io", true)]);
        let r = resolve(&[member("ann@x.io", None)], &accounts);
        assert_eq!(r.linked.get("k"), Some(&email("ann@x.io")));
        assert_eq!(
            r.new_links,
            vec![Link {
                email: email("ann@x.io"),
                keycloak_id: "k".into(),
                previous: None,
                proof: Proof::VerifiedEmail,
            }]
        );
    }

    #[test]
    fn a_username_taken_by_someone_who_changed_their_email_is_a_conflict_not_a_create() {
        // The account made for old@x.io now has another email; old@x.io is a member again.
        let accounts = BTreeMap::from([account("k", "old@x.io", "elsewhere@x.io", true)]);
        let r = resolve(&[member("old@x.io", None)], &accounts);
        assert_eq!(r.conflicts.len(), 1);
        assert!(r.conflicts[0].reason.contains("username"));
        assert!(r.gone.is_empty());
    }

    #[test]
    fn a_gone_account_is_recreated_and_the_old_id_named() {
        let r = resolve(&[member("ann@x.io", Some("deleted"))], &BTreeMap::new());
        assert_eq!(
            r.gone.get(&email("ann@x.io")).map(String::as_str),
            Some("deleted")
        );
        assert!(r.linked.is_empty() && r.conflicts.is_empty());
    }

    #[test]
    fn no_account_means_the_plan_creates_one() {
        let r = resolve(&[member("ann@x.io", None)], &BTreeMap::new());
        assert_eq!(r, Resolution::default());
    }

    #[test]
    fn an_account_the_sync_made_for_this_member_is_linked_though_unverified() {
        // A run created it and died before storing the id.
        let (id, mut made) = account("k", "ann@x.io", "ann@x.io", false);
        made.created_for = Some("pg-ann@x.io".into());
        let r = resolve(&[member("ann@x.io", None)], &BTreeMap::from([(id, made)]));
        assert_eq!(r.new_links.len(), 1, "{r:?}");
        assert_eq!(r.new_links[0].proof, Proof::CreatedBySync);
        // Made for somebody else: still a conflict.
        let (id, mut other) = account("k", "ann@x.io", "ann@x.io", false);
        other.created_for = Some("pg-someone-else".into());
        let r = resolve(&[member("ann@x.io", None)], &BTreeMap::from([(id, other)]));
        assert_eq!(r.conflicts.len(), 1);
    }

    #[test]
    fn two_claimants_are_a_conflict() {
        let accounts = BTreeMap::from([
            account("a", "ann@x.io", "other@x.io", true),
            account("b", "b", "ann@x.io", true),
        ]);
        let r = resolve(&[member("ann@x.io", None)], &accounts);
        assert_eq!(r.conflicts.len(), 1);
        assert!(r.linked.is_empty());
    }
}
