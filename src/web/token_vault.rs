//! A session's Keycloak tokens, sealed at rest under a key that only its cookie holds.
//!
//! The cookie carries the session's random `handle` (256 bits), sealed with the
//! session key. From the handle come two values (HKDF-SHA256, distinct `info`):
//! the row id Postgres keys `session_tokens` by, and an AES-256-GCM key that seals
//! the tokens. Postgres holds neither the handle nor the key, so a copy of the
//! database (a dump, a backup, a replica) opens no token; nor does the database with
//! `WIZBRAND_SESSION_KEY`, without the browsers' cookies. The row id is the associated
//! data, so a sealed value moved to another row does not open.
//!
//! The one other place a handle passes through Postgres is a hand-off ticket's row
//! (`host_tickets`, seconds long): there it is sealed under a key derived from the
//! ticket, of which Postgres holds only the SHA-256 ([`seal_for_ticket`]).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The first byte of every sealed value: the format (HKDF-SHA256 + AES-256-GCM, a
/// random 96-bit nonce).
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const ROW_INFO: &[u8] = b"wizbrand session_tokens row id v1";
const KEY_INFO: &[u8] = b"wizbrand session_tokens key v1";
const TICKET_INFO: &[u8] = b"wizbrand host_tickets handle key v1";
const SETTING_INFO: &[u8] = b"wizbrand org setting secret key v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    /// Tampered with, sealed for another session or row, or truncated.
    #[error("the sealed session tokens do not open")]
    DoesNotOpen,
    #[error("the session tokens could not be sealed")]
    Seal,
}

/// What `session_tokens.sealed` holds once opened.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tokens {
    /// The `id_token_hint` of RP-initiated logout.
    pub id_token: String,
    pub access_token: String,
    /// Absent when Keycloak gave none (then the session is never refreshed).
    pub refresh_token: Option<String>,
}

/// Never print a token.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

/// 32 bytes of HKDF-SHA256 from `secret` (a random 256-bit value) for `info`.
fn derive(secret: &str, info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // HKDF-SHA256 gives up to 8160 bytes: 32 never fails; zeros stand in for the
    // impossible case rather than a panic.
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, secret.as_bytes()).expand(info, &mut out);
    out
}

fn seal_with(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| VaultError::Seal)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open_with(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    let (&format, rest) = sealed.split_first().ok_or(VaultError::DoesNotOpen)?;
    if format != FORMAT_V1 || rest.len() < NONCE_LEN {
        return Err(VaultError::DoesNotOpen);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| VaultError::DoesNotOpen)
}

/// A session handle as a hand-off ticket's row holds it: sealed under a key derived
/// from the ticket (URL-safe base64).
pub fn seal_for_ticket(ticket: &str, handle: &str) -> Result<String, VaultError> {
    let cipher = Aes256Gcm::new(&derive(ticket, TICKET_INFO).into());
    let sealed = seal_with(&cipher, handle.as_bytes(), TICKET_INFO)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
}

/// The handle [`seal_for_ticket`] sealed, given the same ticket.
pub fn open_for_ticket(ticket: &str, sealed: &str) -> Result<String, VaultError> {
    let cipher = Aes256Gcm::new(&derive(ticket, TICKET_INFO).into());
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| VaultError::DoesNotOpen)?;
    let plain = open_with(&cipher, &sealed, TICKET_INFO)?;
    String::from_utf8(plain).map_err(|_| VaultError::DoesNotOpen)
}

/// A secret an org configured (its provider's client secret), sealed under a key
/// derived from the server's session key; `row` (the org's id) is the associated data,
/// so a sealed value copied to another org's row does not open.
pub fn seal_setting(server_key: &str, row: &str, secret: &str) -> Result<Vec<u8>, VaultError> {
    let cipher = Aes256Gcm::new(&derive(server_key, SETTING_INFO).into());
    seal_with(&cipher, secret.as_bytes(), row.as_bytes())
}

/// The secret [`seal_setting`] sealed, under the same key and row.
pub fn open_setting(server_key: &str, row: &str, sealed: &[u8]) -> Result<String, VaultError> {
    let cipher = Aes256Gcm::new(&derive(server_key, SETTING_INFO).into());
    let plain = open_with(&cipher, sealed, row.as_bytes())?;
    String::from_utf8(plain).map_err(|_| VaultError::DoesNotOpen)
}

/// The row id and the sealing key of one session, derived from its handle.
pub struct Vault {
    row_id: String,
    cipher: Aes256Gcm,
}

impl Vault {
    pub fn for_handle(handle: &str) -> Vault {
        Vault {
            row_id: base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(derive(handle, ROW_INFO)),
            cipher: Aes256Gcm::new(&derive(handle, KEY_INFO).into()),
        }
    }

    /// What Postgres keys the session's row by (it tells nothing of the handle).
    pub fn row_id(&self) -> &str {
        &self.row_id
    }

    pub fn seal(&self, tokens: &Tokens) -> Result<Vec<u8>, VaultError> {
        let plain = serde_json::to_vec(tokens).map_err(|_| VaultError::Seal)?;
        seal_with(&self.cipher, &plain, self.row_id.as_bytes())
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Tokens, VaultError> {
        let plain = open_with(&self.cipher, sealed, self.row_id.as_bytes())?;
        serde_json::from_slice(&plain).map_err(|_| VaultError::DoesNotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            id_token: "eyJhbGciOiJSUzI1NiJ9.id.sig".into(),
            access_token: "eyJhbGciOiJSUzI1NiJ9.access.sig".into(),
            refresh_token: Some("eyJhbGciOiJIUzUxMiJ9.refresh.sig".into()),
        }
    }

    #[test]
    fn tokens_open_only_with_the_handle_they_were_sealed_for() {
        let vault = Vault::for_handle("handle-a");
        let sealed = vault.seal(&tokens()).unwrap_or_default();
        assert_eq!(vault.open(&sealed), Ok(tokens()));
        assert_eq!(
            Vault::for_handle("handle-a").open(&sealed),
            Ok(tokens()),
            "the same handle, another process"
        );
        assert_eq!(
            Vault::for_handle("handle-b").open(&sealed),
            Err(VaultError::DoesNotOpen)
        );
        for text in ["eyJ", "access", "refresh", "handle-a"] {
            assert!(
                !sealed.windows(text.len()).any(|w| w == text.as_bytes()),
                "{text} in the clear"
            );
        }
        // Two seals of the same tokens differ (a fresh nonce each time).
        assert_ne!(vault.seal(&tokens()).unwrap_or_default(), sealed);
    }

    #[test]
    fn the_row_id_is_stable_and_neither_the_handle_nor_the_key() {
        let a = Vault::for_handle("handle-a");
        assert_eq!(a.row_id(), Vault::for_handle("handle-a").row_id());
        assert_ne!(a.row_id(), Vault::for_handle("handle-b").row_id());
        assert_eq!(a.row_id().len(), 43);
        assert!(!a.row_id().contains("handle"));
    }

    #[test]
    fn a_changed_truncated_or_foreign_value_does_not_open() {
        let vault = Vault::for_handle("h");
        let sealed = vault.seal(&tokens()).unwrap_or_default();
        for at in [0, 1, 5, 13, sealed.len() / 2, sealed.len() - 1] {
            let mut changed = sealed.clone();
            changed[at] ^= 0x01;
            assert_eq!(
                vault.open(&changed),
                Err(VaultError::DoesNotOpen),
                "byte {at}"
            );
        }
        for cut in [0, 1, 12, 13, sealed.len() - 1] {
            assert_eq!(vault.open(&sealed[..cut]), Err(VaultError::DoesNotOpen));
        }
        assert!(
            !format!("{:?}", tokens()).contains("eyJ"),
            "Debug prints no token"
        );
    }

    #[test]
    fn a_tickets_handle_opens_only_with_that_ticket() {
        let sealed = seal_for_ticket("ticket-1", "the-handle").unwrap_or_default();
        assert!(!sealed.contains("the-handle"));
        assert_eq!(
            open_for_ticket("ticket-1", &sealed).as_deref(),
            Ok("the-handle")
        );
        assert_eq!(
            open_for_ticket("ticket-2", &sealed),
            Err(VaultError::DoesNotOpen)
        );
        assert_eq!(
            open_for_ticket("ticket-1", "the-handle"),
            Err(VaultError::DoesNotOpen)
        );
    }

    #[test]
    fn an_org_setting_opens_only_under_its_key_and_row() {
        let sealed = seal_setting("server-key", "org-1", "s3cret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(
            open_setting("server-key", "org-1", &sealed).unwrap(),
            "s3cret"
        );
        assert!(open_setting("server-key", "org-2", &sealed).is_err());
        assert!(open_setting("other-key", "org-1", &sealed).is_err());
    }
}
