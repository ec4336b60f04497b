//! Server-rendered pages for people: sign-in, org selection, admin.
pub mod admin;
pub mod app_host;
pub mod cookie_guard;
pub mod html;
pub mod invitations;
pub mod key_rotation;
pub mod orgs;
pub mod page;
pub mod rd;
pub mod refresh;
pub mod revocations;
pub mod session;
pub mod signin;
pub mod throttle;
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
