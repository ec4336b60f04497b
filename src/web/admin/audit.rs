//! The audit log: every change by a person or client, filterable by org, actor and
//! action. Platform admins see all of it; others the entries of orgs they administer.
//! Each entry reads as a sentence saying what changed (from the entry's before and
//! after), with its code beside it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;

use super::{PAGE_SIZE, Pager, Viewer, page_number, render};
use crate::db::audit::{AuditFilter, AuditRow};
use crate::error::SurfacedError;
use crate::web::html::Frame;
use crate::web::page::html_err;

#[derive(Deserialize)]
struct AuditQuery {
    org: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    page: Option<String>,
}

/// One entry as the page shows it.
struct EntryView {
    at: String,
    actor: String,
    actor_sub: Option<String>,
    what: String,
    code: String,
    target: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    frame: Frame,
    filter: AuditFilter,
    /// The kinds of action offered in the filter: (prefix, label, selected).
    kinds: Vec<(&'static str, &'static str, bool)>,
    rows: Vec<EntryView>,
    pager: Pager,
    /// Not a platform admin and ORG_ADMIN of no org: there is nothing they may see.
    no_access: bool,
}

/// The filter's kinds of action.
const KINDS: [(&str, &str); 6] = [
    ("org.", "Organizations"),
    ("member.", "Members"),
    ("app.", "App registry"),
    ("sync.", "Sync requests"),
    ("account.", "Account links"),
    ("", "Everything"),
];

fn bounded(raw: Option<&str>) -> String {
    raw.unwrap_or_default().trim().chars().take(200).collect()
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "none".to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| text(Some(i)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::Null) | None => "none".to_owned(),
        Some(other) => other.to_string(),
    }
}

fn field<'a>(side: Option<&'a Value>, name: &str) -> Option<&'a Value> {
    side.and_then(|v| v.get(name))
}

/// What changed between `before` and `after`, field by field ("plan: free → pro").
fn changes(before: Option<&Value>, after: Option<&Value>, fields: &[(&str, &str)]) -> Vec<String> {
    fields
        .iter()
        .filter(|(name, _)| field(before, name) != field(after, name))
        .map(|(name, label)| {
            format!(
                "{label}: {} → {}",
                text(field(before, name)),
                text(field(after, name))
            )
        })
        .collect()
}

/// Apps closed and opened by a change of `hidden_apps`.
fn visibility(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let keys = |side| -> Vec<String> {
        field(side, "hidden_apps")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (was, now) = (keys(before), keys(after));
    let closed: Vec<&str> = now
        .iter()
        .filter(|k| !was.contains(k))
        .map(String::as_str)
        .collect();
    let opened: Vec<&str> = was
        .iter()
        .filter(|k| !now.contains(k))
        .map(String::as_str)
        .collect();
    let mut out = Vec::new();
    if !closed.is_empty() {
        out.push(format!("closed {} for the members", closed.join(", ")));
    }
    if !opened.is_empty() {
        out.push(format!("opened {} to the members", opened.join(", ")));
    }
    out
}

/// An entry as a sentence: what was done, to what, and what changed.
pub fn describe(
    action: &str,
    target: &str,
    before: Option<&Value>,
    after: Option<&Value>,
) -> String {
    let email = || {
        field(after, "email")
            .or(field(before, "email"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| target.rsplit('/').next().unwrap_or(target).to_owned())
    };
    match action {
        "member.put" if before.is_none() => {
            format!("Added {} as {}", email(), text(field(after, "roles")))
        }
        "member.put" => format!(
            "Changed the roles of {}: {} → {}",
            email(),
            text(field(before, "roles")),
            text(field(after, "roles"))
        ),
        "member.delete" => format!("Removed {} (was {})", email(), text(field(before, "roles"))),
        "org.create" => format!(
            "Created the organization {target} (plan {}, features {})",
            text(field(after, "plan")),
            text(field(after, "features"))
        ),
        "org.update" => {
            let mut parts = changes(
                before,
                after,
                &[
                    ("name", "name"),
                    ("plan", "plan"),
                    ("features", "features"),
                    ("status", "status"),
                ],
            );
            parts.extend(visibility(before, after));
            if parts.is_empty() {
                format!("Saved the organization {target} unchanged")
            } else {
                format!("Changed the organization {target}: {}", parts.join("; "))
            }
        }
        "org.delete" => format!("Deleted the organization {target}"),
        "app.create" => format!("Added the app {target}"),
        "app.update" => {
            let parts = changes(
                before,
                after,
                &[
                    ("name", "name"),
                    ("host_pattern", "host pattern"),
                    ("required_feature", "feature"),
                    ("min_role", "minimum role"),
                    ("pass_authorization", "caller's Authorization passed on"),
                ],
            );
            if parts.is_empty() {
                format!("Saved the app {target} unchanged")
            } else {
                format!("Changed the app {target}: {}", parts.join("; "))
            }
        }
        "app.delete" => format!("Removed the app {target}"),
        "sync.request" => "Asked for a sync of every organization".to_owned(),
        "account.link" => {
            let proof = field(after, "proof")
                .and_then(Value::as_str)
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            format!(
                "Linked {target} to the Keycloak account {}{proof}",
                text(field(after, "keycloak_id"))
            )
        }
        other => format!("{other} {target}"),
    }
}

#[get("/admin/audit")]
async fn log(
    viewer: Viewer,
    pool: web::Data<PgPool>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, SurfacedError> {
    let filter = AuditFilter {
        org: bounded(q.org.as_deref()),
        actor: bounded(q.actor.as_deref()),
        action: bounded(q.action.as_deref()),
        admin_of: (!viewer.user.admin).then(|| viewer.user.sub.clone()),
    };
    let no_access = !viewer.user.admin
        && !crate::db::sessions::user_orgs(&pool, &viewer.user.sub)
            .await
            .map_err(html_err)?
            .iter()
            .any(|o| o.roles.iter().any(|r| r == "ORG_ADMIN"));
    let page = page_number(q.page.as_deref());
    let (rows, total) = if no_access {
        (Vec::new(), 0)
    } else {
        crate::db::audit::search(&pool, &filter, PAGE_SIZE, (page - 1) * PAGE_SIZE)
            .await
            .map_err(html_err)?
    };
    let base = format!(
        "/admin/audit?{}&",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("org", &filter.org)
            .append_pair("actor", &filter.actor)
            .append_pair("action", &filter.action)
            .finish()
    );
    let rows = rows.into_iter().map(view).collect();
    render(
        StatusCode::OK,
        &AuditPage {
            frame: viewer.frame("Audit log"),
            pager: Pager::new(&base, page, total),
            kinds: KINDS
                .iter()
                .map(|(prefix, label)| (*prefix, *label, *prefix == filter.action))
                .collect(),
            filter,
            rows,
            no_access,
        },
    )
}

fn view(row: AuditRow) -> EntryView {
    EntryView {
        at: row.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        what: describe(
            &row.action,
            &row.target,
            row.before.as_ref(),
            row.after.as_ref(),
        ),
        actor: row
            .actor_email
            .clone()
            .unwrap_or_else(|| match row.actor.as_str() {
                "wizbrand" => "wizbrand (sync or sign-in)".to_owned(),
                other => other.to_owned(),
            }),
        actor_sub: row.actor_email.as_ref().map(|_| row.actor.clone()),
        code: row.action,
        target: row.target,
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(log);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_read_as_what_changed() {
        let put = |before: Option<Value>| {
            describe(
                "member.put",
                "acme/bob@example.com",
                before.as_ref(),
                Some(&json!({"email": "bob@example.com", "roles": ["ORG_MANAGER", "ORG_USER"]})),
            )
        };
        assert_eq!(put(None), "Added bob@example.com as ORG_MANAGER, ORG_USER");
        assert_eq!(
            put(Some(
                json!({"email": "bob@example.com", "roles": ["ORG_USER"]})
            )),
            "Changed the roles of bob@example.com: ORG_USER → ORG_MANAGER, ORG_USER"
        );
        let org = |hidden: &[&str], plan: &str| json!({"slug": "acme", "name": "Acme", "plan": plan, "features": ["seo"], "status": "active", "hidden_apps": hidden});
        assert_eq!(
            describe(
                "org.update",
                "acme",
                Some(&org(&[], "free")),
                Some(&org(&["seo"], "free"))
            ),
            "Changed the organization acme: closed seo for the members"
        );
        assert_eq!(
            describe(
                "org.update",
                "acme",
                Some(&org(&["seo"], "free")),
                Some(&org(&[], "pro"))
            ),
            "Changed the organization acme: plan: free → pro; opened seo to the members"
        );
        assert_eq!(
            describe(
                "member.delete",
                "acme/bob@example.com",
                Some(&json!({"email": "bob@example.com", "roles": ["ORG_USER"]})),
                None
            ),
            "Removed bob@example.com (was ORG_USER)"
        );
        assert_eq!(
            describe("sync.request", "all", None, None),
            "Asked for a sync of every organization"
        );
    }
}
