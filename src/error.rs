//! One application error type, mapped to HTTP responses in one place.
//!
//! People get the error page (`templates/error.html`); API clients get `application/problem+json` (RFC 9457).
//! The cause chain is logged here, never shown.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::web::html::Frame;

/// Which kind of client an error is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Html,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("sign-in required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    /// A plan's quota is used up (`quota`: which one, e.g. `members`).
    #[error("{detail}")]
    QuotaExceeded {
        quota: &'static str,
        limit: u32,
        used: i64,
        detail: String,
    },
    #[error("{dependency} is unavailable")]
    Unavailable {
        dependency: &'static str,
        #[source]
        source: anyhow::Error,
    },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// An error together with the surface it is answered on.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SurfacedError {
    pub error: AppError,
    pub surface: Surface,
}

impl AppError {
    pub fn html(self) -> SurfacedError {
        SurfacedError {
            error: self,
            surface: Surface::Html,
        }
    }

    pub fn json(self) -> SurfacedError {
        SurfacedError {
            error: self,
            surface: Surface::Json,
        }
    }

    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            AppError::BadRequest(_) => ("bad-request", "Bad request"),
            AppError::Unauthorized => ("unauthorized", "Sign-in required"),
            AppError::Forbidden(_) => ("forbidden", "Access denied"),
            AppError::NotFound => ("not-found", "Not found"),
            AppError::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            AppError::Conflict(_) => ("conflict", "Conflict"),
            AppError::Unprocessable(_) => ("validation", "Invalid input"),
            AppError::QuotaExceeded { .. } => ("quota-exceeded", "Quota exceeded"),
            AppError::Unavailable { .. } => ("unavailable", "Service unavailable"),
            AppError::Internal(_) => ("internal", "Internal error"),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::QuotaExceeded { .. } => StatusCode::FORBIDDEN,
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What a person may read: never the internal cause.
    fn public_detail(&self) -> String {
        match self {
            AppError::Internal(_) => "Something went wrong on our side; it has been logged.".into(),
            other => other.to_string(),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        // Named constraints map to the client's mistake, not ours.
        if let sqlx::Error::Database(db) = &e
            && let Some(constraint) = db.constraint()
        {
            let what = constraint.to_owned();
            return if constraint.ends_with("_key") || constraint.ends_with("_pkey") {
                AppError::Conflict(format!("already exists ({what})"))
            } else {
                AppError::Unprocessable(format!("violates rule {what}"))
            };
        }
        // Postgres out of reach (down, restarting, pool exhausted for 5 s, a connection
        // cut: SQLSTATE classes 08 and 57P): the client may retry, so 503, not 500.
        let connection_lost = matches!(&e, sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")));
        if connection_lost
            || matches!(
                e,
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            )
        {
            return AppError::Unavailable {
                dependency: "Postgres",
                source: e.into(),
            };
        }
        AppError::Internal(e.into())
    }
}

// The API document's `Problem` schema is derived from this type (`api::openapi`).
/// An error (RFC 9457).
#[derive(Serialize, schemars::JsonSchema)]
pub struct Problem<'a> {
    /// `https://wizbrand.dev/problems/` and the kind, e.g. `not-found`.
    #[serde(rename = "type")]
    #[schemars(url)]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    /// `quota-exceeded` only: which quota, e.g. `members`.
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<&'static str>,
    /// `quota-exceeded` only: the plan's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<u32>,
    /// `quota-exceeded` only: the seats taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    used: Option<i64>,
}

/// The one builder of `application/problem+json` answers (RFC 9457), for the API's
/// errors and the gate's refusals alike; `kind` becomes the `type` URI.
pub fn problem_response(status: StatusCode, kind: &str, title: &str, detail: &str) -> HttpResponse {
    problem_json(status, kind, title, detail, None)
}

/// [`problem_response`] with the figures of a `quota-exceeded` refusal.
fn problem_json(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: &str,
    quota: Option<(&'static str, u32, i64)>,
) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/problem+json")
        .json(Problem {
            kind: format!("https://wizbrand.dev/problems/{kind}"),
            title,
            status: status.as_u16(),
            detail,
            quota: quota.map(|q| q.0),
            limit: quota.map(|q| q.1),
            used: quota.map(|q| q.2),
        })
}

impl ResponseError for SurfacedError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.error.status();
        if status.is_server_error() {
            tracing::error!(error = ?anyhow_chain(&self.error), "request failed");
        } else {
            tracing::info!(error = %self.error, "request refused");
        }
        let (kind, title) = self.error.kind();
        let detail = self.error.public_detail();
        let mut response = match self.surface {
            Surface::Json => {
                let quota = match &self.error {
                    AppError::QuotaExceeded {
                        quota, limit, used, ..
                    } => Some((*quota, *limit, *used)),
                    _ => None,
                };
                problem_json(status, kind, title, &detail, quota)
            }
            Surface::Html => {
                crate::web::html::error_response(status, Frame::bare(title), title, &detail)
            }
        };
        let headers = response.headers_mut();
        if matches!(self.error, AppError::Unauthorized) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self.error, AppError::Unavailable { .. }) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        // Without a stated surface, machines are the safer guess.
        SurfacedError {
            error: AppError::Internal(anyhow::anyhow!("{self}")),
            surface: Surface::Json,
        }
        .error_response()
    }
}

fn anyhow_chain(e: &AppError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
