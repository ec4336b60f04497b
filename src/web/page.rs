//! The page frame shared by every HTML response, and HTML escaping.

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
         <style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#222}}\
         h1{{font-size:1.4rem}}</style></head><body>{body_html}</body></html>",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_user_text_is_inert() {
        let page = error_page("Oops", "<script>alert('x')</script> & \"q\"");
        assert!(!page.contains("<script>"));
        assert!(
            page.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;")
        );
    }
}
