//! wizbrand: the identity edge of a multi-tenant SaaS.
//!
//! Layers: HTTP handlers (thin) → decisions (plain functions) → storage (`db`) and
//! Keycloak (`keycloak`). See the README for the picture.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod api;
pub mod check;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod forward_auth;
pub mod health;
pub mod jwt;
pub mod keycloak;
pub mod mail;
pub mod manage;
pub mod metrics;
pub mod oidc;
pub mod policy;
pub mod scim;
pub mod startup;
pub mod sync;
pub mod tasks;
pub mod telemetry;
pub mod web;
