//! Posted HTML forms: `application/x-www-form-urlencoded` with repeated names (check
//! boxes), which serde's form decoding does not collect.

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use futures_util::future::LocalBoxFuture;

/// Forms are small; anything bigger is refused before it is parsed.
const LIMIT: usize = 16 * 1024;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        Fields(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or empty.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl FromRequest for Fields {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = body.await?;
            if body.len() > LIMIT {
                return Err(actix_web::error::ErrorPayloadTooLarge(
                    "the form is too large",
                ));
            }
            Ok(Fields::parse(&body))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_collected_and_values_decoded() {
        let f = Fields::parse(b"csrf=a%2Bb&features=seo&features=files&name=+Acme+Inc+");
        assert_eq!(f.get("csrf"), Some("a+b"));
        assert_eq!(f.all("features"), vec!["seo", "files"]);
        assert_eq!(f.text("name"), "Acme Inc");
        assert_eq!(f.get("missing"), None);
    }
}
