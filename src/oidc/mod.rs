//! OpenID Connect: verifying Keycloak's tokens locally against the realm's JWKS.
pub mod jwks;
