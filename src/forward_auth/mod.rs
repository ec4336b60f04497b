//! The ForwardAuth gate for Traefik.
pub mod decide;
