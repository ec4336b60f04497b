//! wizbrand: the identity edge of a multi-tenant SaaS.
//!
//! Layers: HTTP handlers (thin) → decisions (plain functions) → storage (`db`) and
//! Keycloak (`keycloak`). See the README for the picture.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unreachable,
    clippy::dbg_macro,
    clippy::await_holding_lock
)]

pub mod api;
pub(crate) mod check;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod forward_auth;
pub(crate) mod health;
pub(crate) mod jwt;
pub mod keycloak;
pub(crate) mod mail;
pub mod manage;
pub(crate) mod metrics;
pub mod oidc;
pub(crate) mod policy;
pub(crate) mod scim;
pub mod startup;
pub mod sync;
pub(crate) mod tasks;
pub(crate) mod telemetry;
pub mod web;
