//! SCIM 2.0 (RFC 7643, RFC 7644) under `/scim/v2`, one org per token: discovery,
//! `Users` (the org's people) and `Groups` (its three roles). Protocol parsing is plain
//! functions here (`filter`, `patch`, `resource`, `schema`); every change goes through
//! [`crate::manage::scim`]. Errors are SCIM error responses (`application/scim+json`).
//! How an org connects Entra ID or Okta, and what is supported: docs/scim.md.

pub(crate) mod filter;
pub(crate) mod groups;
pub(crate) mod patch;
pub(crate) mod resource;
pub(crate) mod schema;
pub(crate) mod users;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Config;
use crate::error::AppError;
use crate::manage::scim::{ScimActor, ScimFault};
use filter::AttrPath;

pub const PREFIX: &str = "/scim/v2";
pub const CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }
    fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad("invalidSyntax", detail)
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad("invalidValue", detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad("invalidPath", detail)
    }
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad("invalidFilter", detail)
    }
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad("noTarget", detail)
    }
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad("mutability", detail)
    }
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, format!("{what} not found"))
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid SCIM token is required: Authorization: Bearer <token> (an ORG_ADMIN creates one on the org's SCIM page)",
        )
    }
}

impl From<AppError> for ScimError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound => ScimError::not_found("resource"),
            AppError::Conflict(m) => ScimError::uniqueness(m),
            AppError::BadRequest(m) | AppError::Unprocessable(m) => ScimError::invalid_value(m),
            AppError::Forbidden(m) => ScimError::new(StatusCode::FORBIDDEN, None, m),
            // The plan's seats: the directory should stop pushing joiners, not retry.
            AppError::QuotaExceeded { detail, .. } => {
                ScimError::new(StatusCode::FORBIDDEN, None, detail)
            }
            AppError::Unauthorized => ScimError::unauthorized(),
            AppError::MethodNotAllowed => {
                ScimError::new(StatusCode::METHOD_NOT_ALLOWED, None, e.to_string())
            }
            AppError::Unavailable { dependency, source } => {
                tracing::warn!(error = %source, dependency, "SCIM request: dependency unavailable");
                ScimError {
                    retry_after: Some(5),
                    ..ScimError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        None,
                        format!("{dependency} is unavailable; retry later"),
                    )
                }
            }
            AppError::Internal(source) => {
                tracing::error!(error = ?source, "SCIM request failed");
                ScimError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    "something went wrong on our side; it has been logged",
                )
            }
        }
    }
}

impl From<ScimFault> for ScimError {
    fn from(f: ScimFault) -> Self {
        match f {
            ScimFault::Uniqueness(m) => ScimError::uniqueness(m),
            ScimFault::NotFound => ScimError::not_found("resource"),
            ScimFault::Invalid(m) => ScimError::invalid_value(m),
            ScimFault::VersionMismatch => {
                ScimError::new(StatusCode::PRECONDITION_FAILED, None, f.to_string())
            }
            ScimFault::Refused(m) => ScimError::new(StatusCode::CONFLICT, None, m),
            ScimFault::App(e) => e.into(),
        }
    }
}

impl From<sqlx::Error> for ScimError {
    fn from(e: sqlx::Error) -> Self {
        AppError::from(e).into()
    }
}

impl ResponseError for ScimError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if !self.status.is_server_error() {
            tracing::info!(status = self.status.as_u16(), error = %self.detail, "SCIM request refused");
        }
        let mut body = json!({
            "schemas": [schema::ERROR],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut response = HttpResponse::build(self.status);
        response.content_type(CONTENT_TYPE);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"wizbrand SCIM\""));
        }
        if let Some(s) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        response.body(body.to_string())
    }
}

pub type ScimResult = Result<HttpResponse, ScimError>;

/// A JSON answer with SCIM's content type.
pub fn answer(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.to_string())
}

/// Requests per minute per token, as a token bucket per token and replica (like
/// `web::throttle`, keyed by token instead of address; tokens are few, so no eviction).
pub struct ScimLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<Uuid, (f64, Instant)>>,
}

impl ScimLimiter {
    pub fn new(per_minute: u32) -> Self {
        ScimLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the token's bucket: `Err(wait)` when it is empty.
    pub fn take(&self, token: Uuid, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let (tokens, at) = buckets.entry(token).or_insert((capacity, now));
        let refilled =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second).min(capacity);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) / per_second))
        }
    }
}

/// The token in `Authorization: Bearer …` (one header only).
fn bearer(req: &HttpRequest) -> Option<String> {
    let mut all = req.headers().get_all(header::AUTHORIZATION);
    let value = all.next()?.to_str().ok()?;
    if all.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// A request with a valid SCIM token, within the token's rate.
pub struct ScimClient(pub ScimActor);

impl FromRequest for ScimClient {
    type Error = ScimError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pool = req.app_data::<web::Data<PgPool>>().cloned();
        let limiter = req.app_data::<web::Data<ScimLimiter>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let pool = pool.ok_or_else(|| {
                ScimError::from(AppError::Internal(anyhow::anyhow!("no pool registered")))
            })?;
            let token = token.ok_or_else(ScimError::unauthorized)?;
            let actor = crate::manage::scim::authenticate(&pool, &token)
                .await?
                .ok_or_else(ScimError::unauthorized)?;
            if let Some(limiter) = limiter
                && let Err(wait) = limiter.take(actor.token_id, Instant::now())
            {
                return Err(ScimError {
                    retry_after: Some(wait.as_secs().max(1)),
                    ..ScimError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        None,
                        "too many requests for this SCIM token (WIZBRAND_SCIM_RATE_PER_MINUTE); retry after the time in Retry-After",
                    )
                });
            }
            Ok(ScimClient(actor))
        })
    }
}

/// Reads a JSON body of at most [`schema::MAX_PAYLOAD`] bytes.
pub async fn read_json(req: &HttpRequest, mut payload: web::Payload) -> Result<Value, ScimError> {
    let too_large = || {
        ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!("the body is larger than {} bytes", schema::MAX_PAYLOAD),
        )
    };
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if essence != CONTENT_TYPE && essence != "application/json" {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                format!("send the body as {CONTENT_TYPE} (or application/json), not `{essence}`"),
            ));
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > schema::MAX_PAYLOAD) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ScimError::invalid_syntax(format!("the body cannot be read: {e}")))?;
        if body.len() + chunk.len() > schema::MAX_PAYLOAD {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")))
}

/// The base URL resources are located under: `<public URL>/scim/v2`.
pub fn base_url(config: &Config) -> String {
    format!(
        "{}{PREFIX}",
        config.public_url.as_str().trim_end_matches('/')
    )
}

/// `filter`, `startIndex`, `count`, `attributes`, `excludedAttributes` of a list or a
/// search (names ignore case; `sortBy` is ignored, as sorting is not supported).
#[derive(Debug, Default)]
pub struct ListParams {
    pub filter: Option<filter::Filter>,
    pub start_index: usize,
    pub count: usize,
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

fn number(name: &str, raw: &str) -> Result<i64, ScimError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| ScimError::invalid_value(format!("`{name}` must be an integer")))
}

impl ListParams {
    fn build(
        filter: Option<&str>,
        start: Option<i64>,
        count: Option<i64>,
        attributes: Option<&str>,
        excluded: Option<&str>,
        schema: &schema::ResourceSchema,
    ) -> Result<ListParams, ScimError> {
        let filter = match filter {
            Some(raw) => {
                let f = filter::parse(raw)
                    .map_err(|e| ScimError::invalid_filter(format!("filter: {e}")))?;
                for path in f.paths() {
                    if schema.resolve(&path).is_none() {
                        return Err(ScimError::invalid_filter(format!(
                            "filter: `{path}` is not an attribute of {}",
                            schema.urn
                        )));
                    }
                }
                Some(f)
            }
            None => None,
        };
        if attributes.is_some_and(|a| !a.trim().is_empty())
            && excluded.is_some_and(|a| !a.trim().is_empty())
        {
            return Err(ScimError::invalid_syntax(
                "give `attributes` or `excludedAttributes`, not both",
            ));
        }
        Ok(ListParams {
            filter,
            // RFC 7644 §3.4.2.4: below 1 means 1; a negative count means 0.
            start_index: start.unwrap_or(1).max(1) as usize,
            count: count
                .unwrap_or(schema::MAX_RESULTS as i64)
                .clamp(0, schema::MAX_RESULTS as i64) as usize,
            attributes: resource::attribute_list(attributes)?,
            excluded: resource::attribute_list(excluded)?,
        })
    }

    pub fn from_query(
        query: &str,
        schema: &schema::ResourceSchema,
    ) -> Result<ListParams, ScimError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        Self::build(
            get("filter"),
            get("startIndex")
                .map(|v| number("startIndex", v))
                .transpose()?,
            get("count").map(|v| number("count", v)).transpose()?,
            get("attributes"),
            get("excludedAttributes"),
            schema,
        )
    }

    /// A `POST …/.search` body (RFC 7644 §3.4.3).
    pub fn from_search(
        body: &Value,
        schema: &schema::ResourceSchema,
    ) -> Result<ListParams, ScimError> {
        let Value::Object(fields) = body else {
            return Err(ScimError::invalid_syntax(
                "the body must be a SearchRequest object",
            ));
        };
        let lists = filter::get_ci(body, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|u| u.as_str() == Some(schema::SEARCH)));
        if !lists {
            return Err(ScimError::invalid_syntax(format!(
                "`schemas` must list \"{}\"",
                schema::SEARCH
            )));
        }
        let known = [
            "schemas",
            "filter",
            "startIndex",
            "count",
            "attributes",
            "excludedAttributes",
            "sortBy",
            "sortOrder",
        ];
        if let Some(k) = fields
            .keys()
            .find(|k| !known.iter().any(|n| n.eq_ignore_ascii_case(k)))
        {
            return Err(ScimError::invalid_syntax(format!(
                "a SearchRequest has no `{k}`"
            )));
        }
        let text = |name: &str| -> Result<Option<String>, ScimError> {
            match filter::get_ci(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| Some(v.join(",")))
                    .ok_or_else(|| ScimError::invalid_value(format!("`{name}` must be strings"))),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "`{name}` must be a string"
                ))),
            }
        };
        let int = |name: &str| -> Result<Option<i64>, ScimError> {
            match filter::get_ci(body, name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| {
                    ScimError::invalid_value(format!("`{name}` must be an integer"))
                }),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "`{name}` must be an integer"
                ))),
            }
        };
        Self::build(
            text("filter")?.as_deref(),
            int("startIndex")?,
            int("count")?,
            text("attributes")?.as_deref(),
            text("excludedAttributes")?.as_deref(),
            schema,
        )
    }

    /// The `resources` the filter matches (all without one), one page of them as a
    /// ListResponse.
    pub fn page(
        &self,
        resources: impl IntoIterator<Item = Value>,
        schema: &schema::ResourceSchema,
    ) -> Value {
        let matched: Vec<Value> = resources
            .into_iter()
            .filter(|r| {
                self.filter
                    .as_ref()
                    .is_none_or(|f| filter::matches(f, r, schema))
            })
            .collect();
        let total = matched.len();
        let items: Vec<Value> = matched
            .into_iter()
            .skip(self.start_index - 1)
            .take(self.count)
            .map(|r| resource::project(r, schema, &self.attributes, &self.excluded))
            .collect();
        json!({
            "schemas": [schema::LIST],
            "totalResults": total,
            "startIndex": self.start_index,
            "itemsPerPage": items.len(),
            "Resources": items,
        })
    }
}

/// `If-Match`: the version it names (`None` for `*` or no header; a version that can
/// never match for one that is not ours).
pub fn if_match(req: &HttpRequest) -> Option<i64> {
    let raw = req.headers().get(header::IF_MATCH)?.to_str().ok()?.trim();
    if raw == "*" {
        return None;
    }
    let inner = raw.trim_start_matches("W/").trim_matches('"');
    Some(inner.parse::<i64>().unwrap_or(-1))
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

async fn service_provider_config(_: ScimClient, config: web::Data<Config>) -> ScimResult {
    Ok(answer(
        StatusCode::OK,
        &schema::service_provider_config(&base_url(&config)),
    ))
}

fn listed(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [schema::LIST],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

async fn resource_types(_: ScimClient, config: web::Data<Config>) -> ScimResult {
    Ok(answer(
        StatusCode::OK,
        &listed(schema::resource_types(&base_url(&config))),
    ))
}

async fn resource_type(
    _: ScimClient,
    config: web::Data<Config>,
    id: web::Path<String>,
) -> ScimResult {
    schema::resource_types(&base_url(&config))
        .into_iter()
        .find(|t| t["id"] == id.as_str())
        .map(|t| answer(StatusCode::OK, &t))
        .ok_or_else(|| ScimError::not_found("resource type"))
}

async fn schemas(_: ScimClient, config: web::Data<Config>) -> ScimResult {
    Ok(answer(
        StatusCode::OK,
        &listed(schema::all_schemas(&base_url(&config))),
    ))
}

async fn one_schema(_: ScimClient, config: web::Data<Config>, id: web::Path<String>) -> ScimResult {
    schema::all_schemas(&base_url(&config))
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .map(|s| answer(StatusCode::OK, &s))
        .ok_or_else(|| ScimError::not_found("schema"))
}

/// Searching several resource types at once (`POST /.search`) is not offered.
async fn search_all(_: ScimClient) -> ScimResult {
    Err(ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "search one resource type at a time: POST /Users/.search or /Groups/.search",
    ))
}

async fn not_found() -> ScimResult {
    Err(ScimError::not_found("endpoint"))
}

fn method_not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<HttpResponse> + Clone {
    move || {
        let mut response = ScimError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            format!("this endpoint takes {allow}"),
        )
        .error_response();
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        std::future::ready(response)
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, patch, post, put, resource};
    cfg.service(
        web::scope(PREFIX)
            .service(
                resource("/ServiceProviderConfig")
                    .route(get().to(service_provider_config))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .service(
                resource("/ResourceTypes")
                    .route(get().to(resource_types))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .service(
                resource("/ResourceTypes/{id}")
                    .route(get().to(resource_type))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .service(
                resource("/Schemas")
                    .route(get().to(schemas))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .service(
                resource("/Schemas/{id}")
                    .route(get().to(one_schema))
                    .default_service(web::to(method_not_allowed("GET"))),
            )
            .service(
                resource("/Users")
                    .route(get().to(users::list))
                    .route(post().to(users::create))
                    .default_service(web::to(method_not_allowed("GET, POST"))),
            )
            .service(
                resource("/Users/.search")
                    .route(post().to(users::search))
                    .default_service(web::to(method_not_allowed("POST"))),
            )
            .service(
                resource("/Users/{id}")
                    .route(get().to(users::get))
                    .route(put().to(users::replace))
                    .route(patch().to(users::patch))
                    .route(delete().to(users::delete))
                    .default_service(web::to(method_not_allowed("GET, PUT, PATCH, DELETE"))),
            )
            .service(
                resource("/Groups")
                    .route(get().to(groups::list))
                    .route(post().to(groups::create))
                    .default_service(web::to(method_not_allowed("GET, POST"))),
            )
            .service(
                resource("/Groups/.search")
                    .route(post().to(groups::search))
                    .default_service(web::to(method_not_allowed("POST"))),
            )
            .service(
                resource("/Groups/{id}")
                    .route(get().to(groups::get))
                    .route(put().to(groups::replace))
                    .route(patch().to(groups::patch))
                    .route(delete().to(groups::delete))
                    .default_service(web::to(method_not_allowed("GET, PUT, PATCH, DELETE"))),
            )
            .service(
                resource("/.search")
                    .route(post().to(search_all))
                    .default_service(web::to(method_not_allowed("POST"))),
            )
            .default_service(web::to(not_found)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_is_per_token() {
        let limiter = ScimLimiter::new(2);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Instant::now();
        assert!(limiter.take(a, now).is_ok());
        assert!(limiter.take(a, now).is_ok());
        let wait = limiter.take(a, now).unwrap_err();
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(
            limiter.take(b, now).is_ok(),
            "another token has its own bucket"
        );
        assert!(
            limiter.take(a, now + Duration::from_secs(30)).is_ok(),
            "refilled"
        );
        assert!(ScimLimiter::new(0).take(a, now).is_ok());
    }

    #[test]
    fn list_parameters_follow_the_rfc() {
        let p = ListParams::from_query("startIndex=0&count=-5", &schema::USER_SCHEMA).unwrap();
        assert_eq!((p.start_index, p.count), (1, 0));
        let p = ListParams::from_query("count=100000", &schema::USER_SCHEMA).unwrap();
        assert_eq!(p.count, schema::MAX_RESULTS);
        let err =
            ListParams::from_query("filter=shoeSize%20eq%209", &schema::USER_SCHEMA).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidFilter"));
        assert!(err.detail.contains("shoeSize"));
        let err = ListParams::from_query("filter=userName%20eq", &schema::USER_SCHEMA).unwrap_err();
        assert_eq!(err.scim_type, Some("invalidFilter"));
        assert!(ListParams::from_query("count=ten", &schema::USER_SCHEMA).is_err());
        let page = ListParams::from_query("startIndex=2&count=2", &schema::USER_SCHEMA)
            .unwrap()
            .page(
                vec![json!({"id": "1"}), json!({"id": "2"}), json!({"id": "3"})],
                &schema::USER_SCHEMA,
            );
        assert_eq!(page["totalResults"], 3);
        assert_eq!(page["Resources"], json!([{"id": "2"}, {"id": "3"}]));
    }
}
