//! Per-org identity providers: wizbrand creates an org's own OpenID Connect provider in
//! the realm (alias `org-<slug>`) with its mappers, and reads which providers an
//! account is linked to. The sync's service account, which needs
//! `manage-identity-providers` for this (docs/keycloak-realm.md).

use std::collections::HashMap;
use std::time::Duration;

use keycloak::KeycloakAdmin;
use keycloak::types::{IdentityProviderMapperRepresentation, IdentityProviderRepresentation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::token::CachedServiceToken;
use crate::config::KeycloakConfig;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The issuer's discovery document could not be read by Keycloak.
    #[error("Keycloak could not read the provider's discovery document at {url}: {message}")]
    Discovery { url: String, message: String },
    #[error("Keycloak refused or failed {call}: {message}")]
    Keycloak { call: &'static str, message: String },
}

fn failed(call: &'static str) -> impl Fn(keycloak::KeycloakError) -> ProviderError {
    move |e| ProviderError::Keycloak {
        call,
        message: e.to_string(),
    }
}

/// What an org's provider is made of.
pub struct OidcProvider<'a> {
    pub alias: &'a str,
    pub display_name: &'a str,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a SecretString,
}

/// The name of the one mapper wizbrand adds: the Keycloak user name of a person who
/// comes through the provider is `<alias>.<their subject there>`, so it never collides
/// with (and never links to) an account of the realm or of another org's provider.
const USERNAME_MAPPER: &str = "wizbrand username";

pub struct IdentityProviders {
    admin: KeycloakAdmin<CachedServiceToken>,
    realm: String,
}

impl IdentityProviders {
    pub fn new(config: &KeycloakConfig, timeout: Duration) -> IdentityProviders {
        let http = super::http_client(timeout);
        let token = CachedServiceToken::new(http.clone(), config.clone());
        IdentityProviders {
            admin: KeycloakAdmin::new(
                config.internal_url.as_str().trim_end_matches('/'),
                token,
                http,
            ),
            realm: config.realm.clone(),
        }
    }

    /// Creates or replaces the provider and its mapper. Keycloak reads the issuer's
    /// discovery document itself (its endpoints and keys then come from there).
    pub async fn put_oidc(&self, p: &OidcProvider<'_>) -> Result<(), ProviderError> {
        let discovery = format!(
            "{}/.well-known/openid-configuration",
            p.issuer.trim_end_matches('/')
        );
        let imported = self
            .admin
            .realm_identity_provider_import_config_post(
                &self.realm,
                HashMap::from([
                    ("providerId".to_owned(), Value::from("oidc")),
                    ("fromUrl".to_owned(), Value::from(discovery.clone())),
                ]),
            )
            .await
            .map_err(|e| ProviderError::Discovery {
                url: discovery.clone(),
                message: e.to_string(),
            })?;
        let mut config: HashMap<String, String> = imported.into_iter().collect();
        if config.get("issuer").map(|i| i.trim_end_matches('/'))
            != Some(p.issuer.trim_end_matches('/'))
        {
            return Err(ProviderError::Discovery {
                url: discovery,
                message: format!(
                    "its issuer is {:?}, not the issuer entered",
                    config.get("issuer")
                ),
            });
        }
        for (k, v) in [
            ("clientId", p.client_id),
            ("clientSecret", p.client_secret.expose_secret()),
            ("clientAuthMethod", "client_secret_post"),
            ("defaultScope", "openid email profile"),
            ("pkceEnabled", "true"),
            ("pkceMethod", "S256"),
            ("validateSignature", "true"),
            ("useJwksUrl", "true"),
            ("syncMode", "IMPORT"),
        ] {
            config.insert(k.to_owned(), v.to_owned());
        }
        let body = IdentityProviderRepresentation {
            alias: Some(p.alias.to_owned()),
            display_name: Some(p.display_name.to_owned()),
            provider_id: Some("oidc".to_owned()),
            enabled: Some(true),
            // The provider's addresses stay unverified in the realm: it vouches for its
            // own people (the org it belongs to), not for addresses elsewhere.
            trust_email: Some(false),
            store_token: Some(false),
            link_only: Some(false),
            // Reached through kc_idp_hint only: no button on the realm's login page
            // that anyone could press.
            hide_on_login: Some(true),
            config: Some(config),
            ..Default::default()
        };
        if self.exists(p.alias).await? {
            self.admin
                .realm_identity_provider_instances_with_alias_put(&self.realm, p.alias, body)
                .await
                .map_err(failed("replacing the identity provider"))?;
        } else {
            self.admin
                .realm_identity_provider_instances_post(&self.realm, body)
                .await
                .map_err(failed("creating the identity provider"))?;
        }
        self.ensure_username_mapper(p.alias).await
    }

    async fn exists(&self, alias: &str) -> Result<bool, ProviderError> {
        match self
            .admin
            .realm_identity_provider_instances_with_alias_get(&self.realm, alias)
            .await
        {
            Ok(_) => Ok(true),
            Err(keycloak::KeycloakError::HttpFailure { status: 404, .. }) => Ok(false),
            Err(e) => Err(failed("reading the identity provider")(e)),
        }
    }

    async fn ensure_username_mapper(&self, alias: &str) -> Result<(), ProviderError> {
        let mappers = self
            .admin
            .realm_identity_provider_instances_with_alias_mappers_get(&self.realm, alias)
            .await
            .map_err(failed("reading the provider's mappers"))?;
        if mappers
            .iter()
            .any(|m| m.name.as_deref() == Some(USERNAME_MAPPER))
        {
            return Ok(());
        }
        let mapper = IdentityProviderMapperRepresentation {
            name: Some(USERNAME_MAPPER.to_owned()),
            identity_provider_alias: Some(alias.to_owned()),
            identity_provider_mapper: Some("oidc-username-idp-mapper".to_owned()),
            config: Some(HashMap::from([
                ("syncMode".to_owned(), "IMPORT".to_owned()),
                ("template".to_owned(), "${ALIAS}.${CLAIM.sub}".to_owned()),
                ("target".to_owned(), "LOCAL".to_owned()),
            ])),
            ..Default::default()
        };
        self.admin
            .realm_identity_provider_instances_with_alias_mappers_post(&self.realm, alias, mapper)
            .await
            .map(|_| ())
            .map_err(failed("adding the provider's username mapper"))
    }

    /// Deletes the provider (accounts made through it stay, unlinked).
    pub async fn delete(&self, alias: &str) -> Result<(), ProviderError> {
        match self
            .admin
            .realm_identity_provider_instances_with_alias_delete(&self.realm, alias)
            .await
        {
            Ok(_) | Err(keycloak::KeycloakError::HttpFailure { status: 404, .. }) => Ok(()),
            Err(e) => Err(failed("deleting the identity provider")(e)),
        }
    }

    /// The aliases of the providers the account `sub` is linked to.
    pub async fn linked(&self, sub: &str) -> Result<Vec<String>, ProviderError> {
        let links = self
            .admin
            .realm_users_with_user_id_federated_identity_get(&self.realm, sub)
            .await
            .map_err(failed("reading the account's provider links"))?;
        Ok(links
            .into_iter()
            .filter_map(|l| l.identity_provider)
            .collect())
    }
}
