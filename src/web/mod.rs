//! Server-rendered pages for people: sign-in, org selection, admin.
pub(crate) mod admin;
pub mod app_host;
pub(crate) mod cookie_guard;
pub(crate) mod html;
pub(crate) mod invitations;
pub mod key_rotation;
pub(crate) mod orgs;
pub(crate) mod page;
pub(crate) mod rd;
pub mod refresh;
pub mod revocations;
pub mod session;
pub(crate) mod signin;
pub(crate) mod throttle;
pub mod token_vault;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(signin::routes)
        .configure(app_host::routes)
        .configure(orgs::routes)
        .configure(admin::routes)
        .configure(invitations::routes)
        .service(page::stylesheet)
        // Any path nothing else serves (the API's scope answers its own).
        .default_service(web::to(page::not_found));
}
