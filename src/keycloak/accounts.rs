//! Accounts for invited people: wizbrand creates the Keycloak account of an invitee who
//! has none and asks Keycloak to mail them its "set a password" link (the sync's service
//! account, `manage-users`). Passwords never pass through wizbrand.

use std::time::Duration;

use keycloak::KeycloakAdmin;
use keycloak::types::UserRepresentation;

use super::token::CachedServiceToken;
use crate::config::KeycloakConfig;
use crate::domain::Email;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// An account holds this address (or this user name) already: sign in with it.
    #[error("an account with this address exists")]
    Exists,
    #[error("Keycloak refused or failed {call}: {message}")]
    Keycloak { call: &'static str, message: String },
}

fn failed(call: &'static str) -> impl Fn(keycloak::KeycloakError) -> AccountError {
    move |e| match &e {
        keycloak::KeycloakError::HttpFailure { status: 409, .. } => AccountError::Exists,
        _ => AccountError::Keycloak {
            call,
            message: e.to_string(),
        },
    }
}

/// How long Keycloak's set-a-password link works (its "execute actions" token).
const SET_PASSWORD_LINK_SECONDS: i32 = 12 * 3600;

pub struct Accounts {
    admin: KeycloakAdmin<CachedServiceToken>,
    realm: String,
    web_client_id: String,
}

impl Accounts {
    pub fn new(config: &KeycloakConfig, timeout: Duration) -> Accounts {
        let http = super::http_client(timeout);
        let token = CachedServiceToken::new(http.clone(), config.clone());
        Accounts {
            admin: KeycloakAdmin::new(
                config.internal_url.as_str().trim_end_matches('/'),
                token,
                http,
            ),
            realm: config.realm.clone(),
            web_client_id: config.web_client_id.clone(),
        }
    }

    /// Whether any account holds `email` as its address or its user name (verified or
    /// not: either way a new account would collide with it).
    pub async fn exists(&self, email: &Email) -> Result<bool, AccountError> {
        for (by_email, by_username) in [
            (Some(email.to_string()), None),
            (None, Some(email.to_string())),
        ] {
            let found = self
                .admin
                .realm_users_get(
                    &self.realm,
                    Some(true),
                    None,
                    None,
                    by_email,
                    None,
                    None,
                    Some(true),
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(1),
                    None,
                    None,
                    by_username,
                )
                .await
                .map_err(failed("the user search"))?;
            if !found.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Creates the account of an invitee: user name and address `email`, the address
    /// verified (the invitation link, mailed to it, was opened: the same proof as
    /// Keycloak's own verification link), no password yet. Returns its id.
    pub async fn create_invited(&self, email: &Email) -> Result<String, AccountError> {
        let body = UserRepresentation {
            username: Some(email.to_string()),
            email: Some(email.to_string()),
            email_verified: Some(true),
            enabled: Some(true),
            required_actions: Some(vec!["UPDATE_PASSWORD".into()]),
            ..Default::default()
        };
        let response = self
            .admin
            .realm_users_post(&self.realm, body)
            .await
            .map_err(failed("creating the account"))?;
        response
            .to_id()
            .map(str::to_owned)
            .ok_or(AccountError::Keycloak {
                call: "creating the account",
                message: "no id in the answer".to_owned(),
            })
    }

    /// Asks Keycloak to mail the account its link to set a password; the link's last
    /// page leads to `back` (a redirect URI of the web client).
    pub async fn send_set_password(&self, id: &str, back: &str) -> Result<(), AccountError> {
        self.admin
            .realm_users_with_user_id_execute_actions_email_put(
                &self.realm,
                id,
                Some(self.web_client_id.clone()),
                Some(SET_PASSWORD_LINK_SECONDS),
                Some(back.to_owned()),
                vec!["UPDATE_PASSWORD".to_owned()],
            )
            .await
            .map(|_| ())
            .map_err(failed("sending the set-a-password mail"))
    }

    /// Takes back an account this module just created (its mail could not be sent).
    pub async fn delete(&self, id: &str) -> Result<(), AccountError> {
        self.admin
            .realm_users_with_user_id_delete(&self.realm, id)
            .await
            .map(|_| ())
            .map_err(failed("deleting the account"))
    }
}
