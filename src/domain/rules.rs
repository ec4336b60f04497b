//! The rules of the values the API takes, written as JSON Schema states them. The
//! OpenAPI document (`api::openapi`) is generated from the request and response types,
//! whose fields carry these patterns and bounds; the checks themselves stay in the
//! parsers (`OrgSlug::parse`, `Email::parse`, `manage::orgs`) and the database's CHECK
//! constraints, and the tests below hold the two to the same answers.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::{Email, OrgSlug, Plan, RESERVED_SLUGS, Role};

/// A DNS label: `OrgSlug::parse`, and `orgs_slug_format`.
pub const SLUG_PATTERN: &str = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
/// `manage::orgs::normalise_features`, and an app's `required_feature`.
pub const FEATURE_PATTERN: &str = "^[a-z0-9_-]{1,40}$";
/// An app's host pattern: `{org}.` then a host name.
pub const HOST_PATTERN: &str = "^(\\{org\\}\\.)?[a-z0-9.-]+$";
/// A display name (`manage::orgs::check_name`, `orgs_name_not_blank`): at least one
/// character that is not white space, no control characters; at most [`NAME_MAX`].
pub const NAME_PATTERN: &str =
    "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$";
pub const NAME_MAX: u32 = 200;
/// A SCIM token's name (`manage::scim::check_token_name`): as [`NAME_PATTERN`], the
/// C1 controls (U+0080–U+009F) refused too; at most [`TOKEN_NAME_MAX`].
pub const TOKEN_NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
pub const TOKEN_NAME_MAX: u32 = 100;
/// An email domain (`EmailDomain::parse`): two or more lower-case DNS labels, the last
/// starting with a letter.
pub const DOMAIN_PATTERN: &str =
    "^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$";
/// The longest address `Email::parse` takes.
pub const EMAIL_MAX: u32 = 254;

/// `impl JsonSchema` for a value of this module: its name in the document, whether it
/// is written out where used (`inline`) or referenced, and its schema.
macro_rules! value_schema {
    ($ty:ty, $name:literal, inline: $inline:literal, $schema:expr) => {
        impl JsonSchema for $ty {
            fn inline_schema() -> bool {
                $inline
            }

            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

value_schema!(
    OrgSlug,
    "OrgSlug",
    inline: true,
    json_schema!({
        "type": "string",
        "pattern": SLUG_PATTERN,
        "not": {"enum": RESERVED_SLUGS},
        "description": "A DNS label, not reserved (www, auth, api, admin, …)",
    })
);

value_schema!(
    Email,
    "Email",
    inline: true,
    json_schema!({
        "type": "string",
        "format": "email",
        "maxLength": EMAIL_MAX,
        "description": "ASCII: RFC 5322 atoms with dots, a domain of DNS labels (IDN as punycode)",
    })
);

value_schema!(
    Role,
    "Role",
    inline: false,
    json_schema!({"type": "string", "enum": Role::ALL.map(Role::as_str)})
);

value_schema!(
    Plan,
    "Plan",
    inline: false,
    json_schema!({"type": "string", "enum": Plan::NAMES})
);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex_lite::Regex;

    use super::*;

    fn matches(pattern: &str, value: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(value)
    }

    proptest! {
        /// What the document says a slug is, `OrgSlug::parse` takes, and no more.
        #[test]
        fn the_slug_pattern_says_what_the_parser_takes(raw in "[a-z0-9-]{0,64}|[ -~]{0,8}") {
            let documented = matches(SLUG_PATTERN, &raw) && !RESERVED_SLUGS.contains(&raw.as_str());
            prop_assert_eq!(documented, OrgSlug::parse(&raw).is_ok(), "{:?}", raw);
        }
    }

    #[test]
    fn the_role_schema_names_every_role_and_only_those() {
        let mut generator = SchemaGenerator::default();
        let schema = Role::json_schema(&mut generator);
        let names: Vec<&str> = schema
            .get("enum")
            .and_then(|v| v.as_array())
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for role in Role::ALL {
            assert!(names.contains(&role.as_str()));
            assert_eq!(names.iter().filter(|n| **n == role.as_str()).count(), 1);
        }
        assert_eq!(names.len(), Role::ALL.len());
    }
}
