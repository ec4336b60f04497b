//! Who is calling: `Authorization: Bearer <access token>`, verified locally against the
//! realm's cached JWKS. What they may do is decided later, from Postgres.

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

use crate::config::Config;
use crate::domain::Principal;
use crate::error::{AppError, SurfacedError};
use crate::oidc::jwks::{TokenError, TokenVerifier};

/// A caller whose token was verified.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The token's client roles of the API client (`resource_access.wizbrand-api.roles`),
    /// e.g. `entitlements-reader` for service clients.
    pub api_roles: Vec<String>,
}

impl Caller {
    /// Who is written to the audit log.
    pub fn actor(&self) -> crate::db::audit::Actor<'_> {
        crate::manage::actor_name(&self.principal)
    }

    pub fn sub(&self) -> &str {
        &self.principal.sub
    }

    pub fn platform_admin(&self) -> bool {
        self.principal.platform_admin
    }

    pub fn has_api_role(&self, role: &str) -> bool {
        self.api_roles.iter().any(|r| r == role)
    }
}

/// The client roles `client` holds in a token's `resource_access`. Only called on a
/// token whose signature and claims were verified, so reading the payload is safe.
pub fn client_roles(token: &str, client: &str) -> Vec<String> {
    crate::jwt::unverified_claims(token)
        .as_ref()
        .and_then(|c| c["resource_access"][client]["roles"].as_array())
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The token in an `Authorization: Bearer …` header, if any.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    // Two Authorization headers: which one a proxy on the way read is unknown; none.
    let mut all = req.headers().get_all(header::AUTHORIZATION);
    let value = all.next()?.to_str().ok()?;
    if all.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

impl FromRequest for Caller {
    type Error = SurfacedError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<TokenVerifier>>().cloned();
        let audience = req
            .app_data::<web::Data<Config>>()
            .map(|c| c.keycloak.api_audience.clone())
            .unwrap_or_else(|| "wizbrand-api".to_owned());
        let token = bearer(req);
        Box::pin(async move {
            let verifier = verifier.ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("no TokenVerifier registered")).json()
            })?;
            let token = token.ok_or_else(|| AppError::Unauthorized.json())?;
            match verifier.verify(&token).await {
                Ok(principal) => Ok(Caller {
                    principal,
                    api_roles: client_roles(&token, &audience),
                }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_roles_come_from_resource_access() {
        let payload = serde_json::json!({
            "resource_access": {"wizbrand-api": {"roles": ["entitlements-reader"]},
                                "other": {"roles": ["x"]}}
        });
        use base64::Engine;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!("{}.{}.sig", b64(b"{}"), b64(payload.to_string().as_bytes()));
        assert_eq!(
            client_roles(&token, "wizbrand-api"),
            vec!["entitlements-reader"]
        );
        assert!(client_roles(&token, "nobody").is_empty());
        assert!(client_roles("garbage", "wizbrand-api").is_empty());
    }
}
