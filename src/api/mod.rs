//! wizbrand-api: JSON endpoints under `/api/v1`, Bearer tokens, problem+json errors.
//! (Being built: see the README's status section.)

use actix_web::web;

pub fn routes(_cfg: &mut web::ServiceConfig) {}
