//! Server-rendered pages for people: sign-in, org selection, admin.
pub mod page;
pub mod session;

use actix_web::web;

pub fn routes(_cfg: &mut web::ServiceConfig) {}
