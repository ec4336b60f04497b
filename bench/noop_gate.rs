//! The do-nothing gate for bench/gate.sh: answers 200 with the five identity headers
//! and decides nothing. Its throughput is the ceiling for wizbrand's /forward-auth.
//!
//!   cargo run --release --example noop_gate -- 127.0.0.1:9999

use actix_web::{App, HttpResponse, HttpServer, web};

async fn allow() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-User-Id", "00000000-0000-0000-0000-000000000000"))
        .insert_header(("X-User-Email", "bench@example.com"))
        .insert_header(("X-Org-Id", "00000000-0000-0000-0000-000000000001"))
        .insert_header(("X-Org-Slug", "acme"))
        .insert_header(("X-Org-Roles", "ORG_USER"))
        .finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".to_owned());
    HttpServer::new(|| App::new().default_service(web::to(allow)))
        .bind(address)?
        .run()
        .await
}
