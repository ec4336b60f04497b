//! OpenID Connect: verifying Keycloak's tokens locally against the realm's JWKS, and
//! the sign-in client.
pub mod client;
pub mod jwks;
