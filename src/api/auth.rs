//! Who is calling: `Authorization: Bearer <access token>`, verified locally against the
//! realm's cached JWKS. What they may do is decided later, from Postgres.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

use crate::error::{AppError, SurfacedError};
use crate::forward_auth::decide::Principal;
use crate::oidc::jwks::{TokenError, TokenVerifier};

/// A caller whose token was verified.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// Who is written to the audit log: the email, else the subject.
    pub fn actor(&self) -> &str {
        self.0.email.as_deref().unwrap_or(&self.0.sub)
    }

    pub fn sub(&self) -> &str {
        &self.0.sub
    }

    pub fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }

    pub fn platform_admin(&self) -> bool {
        self.0.platform_admin
    }
}

/// The token in an `Authorization: Bearer …` header, if any.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

impl FromRequest for Caller {
    type Error = SurfacedError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<TokenVerifier>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let verifier = verifier.ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("no TokenVerifier registered")).json()
            })?;
            let token = token.ok_or_else(|| AppError::Unauthorized.json())?;
            match verifier.verify(&token).await {
                Ok(principal) => Ok(Caller(principal)),
                Err(TokenError::KeysUnavailable(reason)) => Err(AppError::Unavailable {
                    dependency: "Keycloak (the realm's signing keys)",
                    source: anyhow::anyhow!(reason),
                }
                .json()),
                Err(e) => {
                    // The reason, never the token.
                    tracing::info!(reason = %e, "bearer token refused");
                    Err(AppError::Unauthorized.json())
                }
            }
        })
    }
}
