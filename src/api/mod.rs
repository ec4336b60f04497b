//! wizbrand-api: JSON endpoints under `/api/v1`, Bearer tokens, problem+json errors.
//!
//! The router and the OpenAPI document are both built from [`table`]: a route is added
//! once, with its documentation, and cannot be served without being documented.

pub(crate) mod apps;
pub(crate) mod auth;
pub(crate) mod domains;
pub(crate) mod invitations;
pub(crate) mod members;
pub(crate) mod openapi;
pub(crate) mod orgs;
pub(crate) mod scim;
pub(crate) mod sso;
pub(crate) mod sync;

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::Method;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, web};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, SurfacedError};

pub const PREFIX: &str = "/api/v1";
/// Request bodies are small; anything larger is refused before it is parsed.
pub const JSON_LIMIT: usize = 64 * 1024;

pub type ApiResult = Result<HttpResponse, SurfacedError>;

/// Any error the handlers meet, answered as problem+json.
pub fn problem(e: impl Into<AppError>) -> SurfacedError {
    e.into().json()
}

pub use crate::manage::enforce;

/// One documented route.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: Method,
    /// The full path, OpenAPI style: `/api/v1/orgs/{slug}`.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// Name of the request body's schema (in `openapi::schemas`), if it takes one.
    pub body: Option<&'static str>,
    /// Status and schema name of the successful answer (`None`: no body).
    pub success: (u16, Option<&'static str>),
    /// Another success status with the same body (a PUT that creates: `201`).
    pub also: Option<u16>,
    /// Takes `limit` and `offset`.
    pub paged: bool,
    /// Needs a bearer token.
    pub auth: bool,
}

impl RouteDoc {
    const fn new(
        method: Method,
        path: &'static str,
        operation_id: &'static str,
        summary: &'static str,
    ) -> Self {
        RouteDoc {
            method,
            path,
            operation_id,
            summary,
            body: None,
            success: (200, None),
            also: None,
            paged: false,
            auth: true,
        }
    }

    fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }

    fn ok(mut self, status: u16, schema: Option<&'static str>) -> Self {
        self.success = (status, schema);
        self
    }

    fn or(mut self, status: u16) -> Self {
        self.also = Some(status);
        self
    }

    fn paged(mut self) -> Self {
        self.paged = true;
        self
    }

    fn public(mut self) -> Self {
        self.auth = false;
        self
    }
}

/// The routes, each with its handler and its documentation.
pub struct Table {
    pub docs: Vec<RouteDoc>,
    resources: Vec<(&'static str, Resource)>,
}

impl Table {
    fn add<F, Args>(&mut self, doc: RouteDoc, handler: F)
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let relative = doc.path.strip_prefix(PREFIX).unwrap_or(doc.path);
        let route = web::method(doc.method.clone()).to(handler);
        match self.resources.iter().position(|(p, _)| *p == relative) {
            Some(i) => {
                let (path, resource) = self.resources.remove(i);
                self.resources.insert(i, (path, resource.route(route)));
            }
            None => self
                .resources
                .push((relative, web::resource(relative).route(route))),
        }
        self.docs.push(doc);
    }
}

impl Table {
    /// The methods a resource (path relative to the API prefix) takes, for `Allow`.
    fn allowed(&self, relative: &str) -> String {
        let mut methods: Vec<&str> = self
            .docs
            .iter()
            .filter(|d| d.path.strip_prefix(PREFIX).unwrap_or(d.path) == relative)
            .map(|d| d.method.as_str())
            .collect();
        if methods.contains(&"GET") {
            // actix answers HEAD for a GET route.
            methods.push("HEAD");
        }
        methods.join(", ")
    }
}

/// Every API route. The router and the OpenAPI document come from here only.
pub fn table() -> Table {
    use Method as M;
    let mut t = Table {
        docs: Vec::new(),
        resources: Vec::new(),
    };
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/me",
            "getMe",
            "The caller: identity and memberships from Postgres",
        )
        .ok(200, Some("Me")),
        orgs::me,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/orgs",
            "listOrgs",
            "Orgs the caller belongs to (all of them for platform admins)",
        )
        .ok(200, Some("OrgPage"))
        .paged(),
        orgs::list,
    );
    t.add(
        RouteDoc::new(
            M::POST,
            "/api/v1/orgs",
            "createOrg",
            "Create an org (platform admins)",
        )
        .body("OrgCreate")
        .ok(201, Some("Org")),
        orgs::create,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/orgs/{slug}",
            "getOrg",
            "One org (members and platform admins)",
        )
        .ok(200, Some("Org")),
        orgs::get,
    );
    t.add(
        RouteDoc::new(
            M::PATCH,
            "/api/v1/orgs/{slug}",
            "updateOrg",
            "Rename (ORG_ADMIN); plan, features, status (platform admins)",
        )
        .body("OrgPatch")
        .ok(200, Some("Org")),
        orgs::update,
    );
    t.add(
        RouteDoc::new(
            M::DELETE,
            "/api/v1/orgs/{slug}",
            "deleteOrg",
            "Delete an org (platform admins)",
        )
        .ok(204, None),
        orgs::delete,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/orgs/{slug}/members",
            "listMembers",
            "An org's members and roles (ORG_MANAGER and up)",
        )
        .ok(200, Some("MemberPage"))
        .paged(),
        members::list,
    );
    t.add(
        RouteDoc::new(
            M::PUT,
            "/api/v1/orgs/{slug}/members/{email}",
            "putMember",
            "Set a member's roles; idempotent (ORG_ADMIN; ORG_MANAGER for ORG_USER only)",
        )
        .body("MemberPut")
        .ok(200, Some("MemberRoles"))
        .or(201),
        members::put,
    );
    t.add(
        RouteDoc::new(
            M::DELETE,
            "/api/v1/orgs/{slug}/members/{email}",
            "deleteMember",
            "Remove a member (ORG_ADMIN; ORG_MANAGER for ORG_USERs only)",
        )
        .ok(204, None),
        members::delete,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/orgs/{slug}/invitations",
            "listInvitations",
            "An org's invitations, newest first (ORG_MANAGER and up)",
        )
        .ok(200, Some("InvitationPage"))
        .paged(),
        invitations::list,
    );
    t.add(
        RouteDoc::new(
            M::POST,
            "/api/v1/orgs/{slug}/invitations",
            "createInvitations",
            "Invite 1-50 addresses with roles, each mailed a link; all or none (ORG_ADMIN; ORG_MANAGER for ORG_USER only). A pending invitation holds a seat: past the plan's members quota, 403 quota-exceeded",
        )
        .body("InvitationCreate")
        .ok(201, Some("InvitationList")),
        invitations::create,
    );
    t.add(
        RouteDoc::new(
            M::POST,
            "/api/v1/orgs/{slug}/invitations/{id}/resend",
            "resendInvitation",
            "Mail a pending invitation again with a new link and expiry; the old link is dead",
        )
        .ok(200, Some("Invitation")),
        invitations::resend,
    );
    t.add(
        RouteDoc::new(
            M::DELETE,
            "/api/v1/orgs/{slug}/invitations/{id}",
            "revokeInvitation",
            "Revoke a pending invitation (idempotent); its link then says so",
        )
        .ok(204, None),
        invitations::revoke,
    );
    t.add(
        RouteDoc::new(
            M::POST,
            "/api/v1/invitations/accept",
            "acceptInvitation",
            "Accept an invitation by its link's token; the caller's verified email must be the invited address",
        )
        .body("InvitationAccept")
        .ok(200, Some("Invitation")),
        invitations::accept,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/orgs/{slug}/entitlements",
            "getEntitlements",
            "Plan, features and quotas (members, platform admins, service clients with the API client role entitlements-reader)",
        )
        .ok(200, Some("Entitlements")),
        orgs::entitlements,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/orgs/{slug}/scim",
            "getScim",
            "The org's SCIM settings and tokens, never their secrets (ORG_ADMIN)",
        )
        .ok(200, Some("ScimSettings")),
        scim::get,
    );
    t.add(
        RouteDoc::new(
            M::PATCH,
            "/api/v1/orgs/{slug}/scim",
            "updateScim",
            "Let SCIM adopt members added by hand, or not (ORG_ADMIN)",
        )
        .body("ScimSettingsPatch")
        .ok(200, Some("ScimSettings")),
        scim::update,
    );
    t.add(
        RouteDoc::new(
            M::POST,
            "/api/v1/orgs/{slug}/scim/tokens",
            "createScimToken",
            "Create a SCIM bearer token; its secret is in this answer only (ORG_ADMIN)",
        )
        .body("ScimTokenCreate")
        .ok(201, Some("ScimTokenCreated")),
        scim::create_token,
    );
    t.add(
        RouteDoc::new(
            M::DELETE,
            "/api/v1/orgs/{slug}/scim/tokens/{id}",
            "revokeScimToken",
            "Revoke a SCIM token: its next request is a 401 (ORG_ADMIN)",
        )
        .ok(204, None),
        scim::revoke_token,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/orgs/{slug}/domains",
            "listDomains",
            "The org's email domains: claimed or verified, and what each offers (ORG_ADMIN)",
        )
        .ok(200, Some("DomainList")),
        domains::list,
    );
    t.add(
        RouteDoc::new(
            M::PUT,
            "/api/v1/orgs/{slug}/domains/{domain}",
            "putDomain",
            "Claim an email domain for the org, or set its join mode (ORG_ADMIN); a domain another org holds is 409. The mode takes effect once a platform admin verifies the domain",
        )
        .body("DomainPut")
        .ok(200, Some("Domain"))
        .or(201),
        domains::put,
    );
    t.add(
        RouteDoc::new(
            M::DELETE,
            "/api/v1/orgs/{slug}/domains/{domain}",
            "deleteDomain",
            "Give up a domain; members who joined through it stay (ORG_ADMIN)",
        )
        .ok(204, None),
        domains::delete,
    );
    t.add(
        RouteDoc::new(
            M::POST,
            "/api/v1/orgs/{slug}/domains/{domain}/verify",
            "verifyDomain",
            "Mark an org's claimed domain verified (platform admins); idempotent",
        )
        .ok(200, Some("Domain")),
        domains::verify,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/orgs/{slug}/sso",
            "getSso",
            "The org's own OpenID Connect provider, never its secret; 404 when none is connected (ORG_ADMIN)",
        )
        .ok(200, Some("SsoSettings")),
        sso::get,
    );
    t.add(
        RouteDoc::new(
            M::PUT,
            "/api/v1/orgs/{slug}/sso",
            "putSso",
            "Connect or replace the org's OpenID Connect provider: Keycloak reads the issuer's discovery document (unreadable: 422); the client secret is write-only (ORG_ADMIN)",
        )
        .body("SsoPut")
        .ok(200, Some("SsoSettings"))
        .or(201),
        sso::put,
    );
    t.add(
        RouteDoc::new(
            M::DELETE,
            "/api/v1/orgs/{slug}/sso",
            "deleteSso",
            "Disconnect the org's provider; members who came through it stay (ORG_ADMIN)",
        )
        .ok(204, None),
        sso::delete,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/apps",
            "listApps",
            "Apps wizbrand guards (any authenticated caller)",
        )
        .ok(200, Some("AppPage"))
        .paged(),
        apps::list,
    );
    t.add(
        RouteDoc::new(
            M::POST,
            "/api/v1/apps",
            "createApp",
            "Add an app (platform admins)",
        )
        .body("AppCreate")
        .ok(201, Some("App")),
        apps::create,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/apps/{key}",
            "getApp",
            "One app (any authenticated caller)",
        )
        .ok(200, Some("App")),
        apps::get,
    );
    t.add(
        RouteDoc::new(
            M::PATCH,
            "/api/v1/apps/{key}",
            "updateApp",
            "Change an app (platform admins)",
        )
        .body("AppPatch")
        .ok(200, Some("App")),
        apps::update,
    );
    t.add(
        RouteDoc::new(
            M::DELETE,
            "/api/v1/apps/{key}",
            "deleteApp",
            "Remove an app (platform admins)",
        )
        .ok(204, None),
        apps::delete,
    );
    t.add(
        RouteDoc::new(
            M::POST,
            "/api/v1/sync",
            "requestSync",
            "Ask for a full sync now (platform admins); 503 when the scheduler is off",
        )
        .ok(202, Some("SyncRequested")),
        sync::request,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/sync/runs",
            "listSyncRuns",
            "Sync runs, newest first (platform admins)",
        )
        .ok(200, Some("SyncRunPage"))
        .paged(),
        sync::runs,
    );
    t.add(
        RouteDoc::new(
            M::GET,
            "/api/v1/openapi.json",
            "getOpenApi",
            "This document",
        )
        .ok(200, None)
        .public(),
        openapi::serve,
    );
    t
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    let mut scope = web::scope(PREFIX)
        .app_data(
            web::JsonConfig::default()
                .limit(JSON_LIMIT)
                .error_handler(json_error),
        )
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .default_service(web::to(not_found));
    let table = table();
    let allows: Vec<String> = table
        .resources
        .iter()
        .map(|(p, _)| table.allowed(p))
        .collect();
    for ((_, resource), allow) in table.resources.into_iter().zip(allows) {
        // RFC 9110: a 405 names the methods the resource takes.
        scope = scope.service(resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { method_not_allowed(allow) }
        })));
    }
    cfg.service(scope);
}

async fn not_found() -> ApiResult {
    Err(problem(AppError::NotFound))
}

/// A route that exists, asked with a method it does not take.
fn method_not_allowed(allow: String) -> HttpResponse {
    let mut response =
        actix_web::ResponseError::error_response(&problem(AppError::MethodNotAllowed));
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// Bodies that cannot be read become problem+json naming the problem, e.g. the unknown
/// field (`deny_unknown_fields` on every body).
fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let error = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            AppError::BadRequest(format!(
                "the body is too large (at most {JSON_LIMIT} bytes)"
            ))
        }
        JsonPayloadError::ContentType => {
            AppError::BadRequest("send the body as application/json".to_owned())
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            AppError::Unprocessable(format!("the body is invalid: {e}"))
        }
        JsonPayloadError::Deserialize(e) => {
            AppError::BadRequest(format!("the body is not valid JSON: {e}"))
        }
        other => AppError::BadRequest(format!("the body cannot be read: {other}")),
    };
    error.json().into()
}

fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    AppError::BadRequest(format!("the query string is invalid: {err}"))
        .json()
        .into()
}

/// `?limit=&offset=` on every list.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

impl PageQuery {
    /// `(limit, offset)`, checked: limit 1..=200 (default 50), offset >= 0.
    pub fn checked(&self) -> Result<(i64, i64), AppError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        let offset = self.offset.unwrap_or(0);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(AppError::BadRequest(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        if offset < 0 {
            return Err(AppError::BadRequest(
                "offset must not be negative".to_owned(),
            ));
        }
        Ok((limit, offset))
    }
}

/// One page of a list.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(rename = "{T}Page")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

pub fn page<T: Serialize>(items: Vec<T>, total: i64, (limit, offset): (i64, i64)) -> HttpResponse {
    HttpResponse::Ok().json(Page {
        items,
        total,
        limit,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_is_bounded() {
        let q = |limit, offset| PageQuery { limit, offset }.checked().ok();
        assert_eq!(q(None, None), Some((DEFAULT_LIMIT, 0)));
        assert_eq!(q(Some(200), Some(5)), Some((200, 5)));
        assert_eq!(q(Some(0), None), None);
        assert_eq!(q(Some(201), None), None);
        assert_eq!(q(None, Some(-1)), None);
    }

    #[test]
    fn every_route_is_documented_once() {
        let docs = table().docs;
        let mut seen = std::collections::BTreeSet::new();
        for doc in &docs {
            assert!(doc.path.starts_with(PREFIX), "{}", doc.path);
            assert!(
                seen.insert((doc.method.to_string(), doc.path)),
                "twice: {} {}",
                doc.method,
                doc.path
            );
        }
    }
}
