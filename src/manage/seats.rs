//! Seats that hold: a plan's member quota counts members plus pending invitations, and
//! every way in (adding, inviting; later joining by domain or single sign-on) asks here
//! first, under the org's row lock. A plan downgraded below the current count keeps
//! everyone and gives no new seat until enough have left.

use sqlx::PgConnection;

use crate::db;
use crate::db::orgs::Org;
use crate::error::AppError;
use crate::policy;

/// Why no seat is free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatsFull {
    pub plan: String,
    pub quota: u32,
    pub taken: i64,
    pub wanted: i64,
}

impl SeatsFull {
    pub fn into_error(self) -> AppError {
        let free = (i64::from(self.quota) - self.taken).max(0);
        AppError::QuotaExceeded {
            quota: "members",
            limit: self.quota,
            used: self.taken,
            detail: format!(
                "the `{}` plan's members quota is {}: members plus pending invitations; {} {} taken, \
                 {} free, {} wanted. Remove a member or revoke an invitation, or ask a platform admin \
                 for a larger plan.",
                self.plan,
                self.quota,
                self.taken,
                if self.taken == 1 { "is" } else { "are" },
                free,
                self.wanted,
            ),
        }
    }
}

/// May `wanted` people take a new seat each when `taken` are held under `quota`
/// (`None`: unlimited)? Asking for none (a role change, an invitation accepted: it held
/// its seat already) is always allowed, even over quota.
pub fn seats_free(
    plan: &str,
    quota: Option<u32>,
    taken: i64,
    wanted: i64,
) -> Result<(), SeatsFull> {
    match quota {
        Some(quota) if wanted > 0 && taken.saturating_add(wanted) > i64::from(quota) => {
            Err(SeatsFull {
                plan: plan.to_owned(),
                quota,
                taken,
                wanted,
            })
        }
        _ => Ok(()),
    }
}

/// Takes seats for the addresses that hold none in `org` yet; the caller holds the
/// org's row lock, so two requests cannot both take the last seat.
pub async fn take(conn: &mut PgConnection, org: &Org, emails: &[&str]) -> Result<(), AppError> {
    let mut wanted = 0;
    for email in emails {
        if !db::invitations::holds_seat(&mut *conn, org.id, email).await? {
            wanted += 1;
        }
    }
    if wanted == 0 {
        return Ok(());
    }
    let taken = db::invitations::seats_taken(&mut *conn, org.id).await?;
    seats_free(&org.plan, policy::quotas(&org.plan).members, taken, wanted)
        .map_err(SeatsFull::into_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_org_has_five_seats_counting_invitations() {
        let quota = policy::quotas("free").members;
        assert_eq!(seats_free("free", quota, 4, 1), Ok(()));
        let full = seats_free("free", quota, 5, 1).unwrap_err();
        assert_eq!((full.quota, full.taken, full.wanted), (5, 5, 1));
        // A batch that does not fit is refused whole.
        assert!(seats_free("free", quota, 3, 3).is_err());
        assert_eq!(seats_free("free", quota, 3, 2), Ok(()));
    }

    #[test]
    fn over_quota_after_a_downgrade_keeps_everyone_and_gives_no_new_seat() {
        let quota = policy::quotas("free").members;
        assert!(seats_free("free", quota, 9, 1).is_err());
        // Role changes and accepted invitations take no new seat.
        assert_eq!(seats_free("free", quota, 9, 0), Ok(()));
        assert_eq!(seats_free("enterprise", None, 10_000, 50), Ok(()));
    }

    #[test]
    fn the_refusal_names_the_quota_and_the_way_out() {
        let error = seats_free("free", Some(5), 5, 2).unwrap_err().into_error();
        let text = error.to_string();
        assert!(text.contains("members quota is 5"), "{text}");
        assert!(text.contains("revoke an invitation"), "{text}");
        assert!(matches!(
            error,
            AppError::QuotaExceeded {
                quota: "members",
                limit: 5,
                used: 5,
                ..
            }
        ));
    }
}
