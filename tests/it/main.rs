// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The one integration-test binary: the real Postgres and Keycloak (started once by
//! `scripts/stack.sh up --infra`), a database per test, wizbrand in-process.

mod browser;
mod helpers;

mod admin;
mod api;
mod assertion;
mod attacks;
mod bad_input;
mod check;
mod conformance;
mod cookies;
mod domains;
mod faults;
mod gate;
mod health;
mod identity;
mod keycloak_realm;
mod layers;
mod lifecycle;
mod operations;
mod pages;
mod prod;
mod schema;
mod scim;
mod seed;
mod shutdown;
mod sibling;
mod signin;
mod sso;
mod sync;
