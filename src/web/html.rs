//! HTML building blocks with no dependency on the rest of the crate (a leaf: errors,
//! pages and the gate all use it): escaping, the frame of the plain pages, the error
//! page, HTML and redirect answers, the sign-out form.

use actix_web::HttpResponse;
use actix_web::http::header;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page around already-escaped `body_html`.
pub fn frame(title: &str, body_html: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · wizbrand</title>\
         <link rel=\"stylesheet\" href=\"/static/wizbrand.css\"></head>\
         <body><main id=\"main\">{body_html}</main></body></html>",
        title = escape(title),
    )
}

/// The page people see when a request cannot be served.
pub fn error_page(title: &str, detail: &str) -> String {
    frame(
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(detail)),
    )
}

pub fn redirect(status: actix_web::http::StatusCode, location: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

pub fn html(status: actix_web::http::StatusCode, title: &str, body: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(frame(title, body))
}

/// The sign-out button, carrying the session's CSRF token.
pub fn logout_form(csrf: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button id=\"sign-out\" type=\"submit\">Sign out</button></form>",
        escape(csrf)
    )
}
