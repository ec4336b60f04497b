//! What every HTML page is made of, with no dependency on the rest of the crate (a leaf:
//! errors, pages and the gate all use it): the frame that every page's template extends
//! (`templates/base.html`: header, skip link, stylesheet, sign-out), the one error page
//! (`templates/error.html`), rendering, and redirects. Every page is an askama template,
//! which escapes every value it shows.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use askama::Template;
use serde::{Deserialize, Serialize};

/// A one-time message shown at the top of the next page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    /// `ok` or `error` (a CSS class).
    pub kind: String,
    pub text: String,
}

/// The signed-in person, as the header shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavUser {
    /// Display name, else email, else subject.
    pub who: String,
    pub admin: bool,
    /// The session's CSRF token for the sign-out form. `None` where no wizbrand form can
    /// live (a page on an app host): sign-out is then a link to the auth host's
    /// `GET /logout`, which asks first.
    pub csrf: Option<String>,
}

/// What the frame of every page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub title: String,
    /// Signed in: the admin links, the name and the sign-out.
    pub user: Option<NavUser>,
    /// Nobody signed in (or not known, as on an error page made without the request):
    /// whether to offer "Sign in".
    pub sign_in: bool,
    pub flash: Option<Flash>,
    /// What every link and the stylesheet start with: empty on the auth host; the public
    /// URL's origin on a page shown on an app host, whose own paths belong to the app.
    pub base: String,
}

impl Frame {
    /// A frame on the auth host for nobody in particular: the header offers "Sign in".
    pub fn signed_out(title: impl Into<String>) -> Frame {
        Frame {
            title: title.into(),
            user: None,
            sign_in: true,
            flash: None,
            base: String::new(),
        }
    }

    /// A frame for an answer made without the request (an error turned into a page in
    /// [`crate::error`]): the header links home only.
    pub fn bare(title: impl Into<String>) -> Frame {
        Frame {
            sign_in: false,
            ..Frame::signed_out(title)
        }
    }

    /// A URL on the auth host: `path` as is on it, absolute from an app host.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A link under an error page's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: &'static str,
    pub href: String,
    pub text: &'static str,
}

/// The page people see when something cannot be done: a heading, why, and where to go.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub frame: Frame,
    pub heading: String,
    pub detail: String,
    /// Empty: a single link home.
    pub links: Vec<Link>,
}

impl ErrorPage {
    pub fn new(frame: Frame, heading: impl Into<String>, detail: impl Into<String>) -> Self {
        ErrorPage {
            frame,
            heading: heading.into(),
            detail: detail.into(),
            links: Vec::new(),
        }
    }
}

/// A rendered template as an HTML answer that no cache keeps. A template that fails to
/// render (it cannot with askama's checked templates, short of a formatting error) is a
/// plain-text 500, logged.
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body("Internal error: the page could not be rendered; it has been logged.")
        }
    }
}

/// The error page for `status`, in `frame`.
pub fn error_response(
    status: StatusCode,
    frame: Frame,
    heading: &str,
    detail: &str,
) -> HttpResponse {
    render(status, &ErrorPage::new(frame, heading, detail))
}

/// The gate's refusal (403) for a browser on an app host. The page shows there, so its
/// stylesheet and links are absolute to the auth host at `base` (the public URL's
/// origin): Home, "Switch organization" (`switch`: the org chooser through the
/// hand-off, for people with more than one org) and Sign out (the auth host's
/// `GET /logout`, which asks first: no wizbrand form can live on an app host).
pub fn refusal_page(
    base: &str,
    who: Option<&str>,
    detail: &str,
    switch: Option<&str>,
) -> HttpResponse {
    let frame = Frame {
        title: "Access denied".to_owned(),
        user: who.map(|who| NavUser {
            who: who.to_owned(),
            admin: false,
            csrf: None,
        }),
        sign_in: false,
        flash: None,
        base: base.trim_end_matches('/').to_owned(),
    };
    let mut links = vec![Link {
        id: "home",
        href: frame.link("/"),
        text: "Home",
    }];
    if let Some(switch) = switch {
        links.push(Link {
            id: "switch-org",
            href: switch.to_owned(),
            text: "Switch organization",
        });
    }
    if who.is_some() {
        links.push(Link {
            id: "sign-out-link",
            href: frame.link("/logout"),
            text: "Sign out",
        });
    }
    let page = ErrorPage {
        frame,
        heading: "Access denied".to_owned(),
        detail: detail.to_owned(),
        links,
    };
    render(StatusCode::FORBIDDEN, &page)
}

pub fn redirect(status: StatusCode, location: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(page: &impl Template) -> String {
        page.render()
            .unwrap_or_else(|e| format!("render failed: {e}"))
    }

    #[test]
    fn markup_in_user_text_is_inert() {
        let page = body(&ErrorPage::new(
            Frame::bare("Oops <b>"),
            "Oops",
            "<script>alert('x')</script> & \"q\"",
        ));
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
        assert!(
            page.contains("&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;q&#34;"),
            "{page}"
        );
    }

    #[test]
    fn a_page_on_an_app_host_links_to_the_auth_host() {
        let mut frame = Frame::bare("Access denied");
        frame.base = "https://auth.example.com".into();
        frame.user = Some(NavUser {
            who: "bob".into(),
            admin: false,
            csrf: None,
        });
        let page = body(&ErrorPage::new(frame, "Access denied", "no"));
        assert!(
            page.contains("href=\"https://auth.example.com/static/wizbrand.css\""),
            "{page}"
        );
        assert!(
            page.contains("href=\"https://auth.example.com/\""),
            "{page}"
        );
        // No form on an app host: sign-out asks first, on the auth host.
        assert!(!page.contains("<form"), "{page}");
        assert!(
            page.contains("href=\"https://auth.example.com/logout\""),
            "{page}"
        );
        for relative in ["href=\"/", "action=\"/"] {
            assert!(!page.contains(relative), "{relative} in {page}");
        }
    }

    #[test]
    fn the_frame_has_a_skip_link_and_the_sign_out_form_its_token() {
        let frame = Frame {
            user: Some(NavUser {
                who: "alice".into(),
                admin: true,
                csrf: Some("tok\"en".into()),
            }),
            ..Frame::signed_out("Home")
        };
        let page = body(&ErrorPage::new(frame, "x", "y"));
        assert!(page.contains("class=\"skip\" href=\"#main\""), "{page}");
        assert!(page.contains("<main id=\"main\""), "{page}");
        assert!(page.contains("action=\"/logout\""), "{page}");
        assert!(page.contains("value=\"tok&#34;en\""), "{page}");
        assert!(page.contains("href=\"/admin/sync\""), "{page}");
    }
}
