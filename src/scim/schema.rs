//! The schemas wizbrand publishes (RFC 7643 §4, §7, §8.7) as data: the same table
//! answers `/Schemas`, checks request bodies, resolves PATCH paths and tells filters
//! which attributes compare case-exactly.

use serde_json::{Value, json};

use super::filter::{AttrPath, Attributes};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const SPC: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Integer,
    DateTime,
    Reference,
    Complex,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
            Kind::DateTime => "dateTime",
            Kind::Reference => "reference",
            Kind::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadWrite,
    ReadOnly,
    Immutable,
}

/// One attribute of a schema.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    pub name: &'static str,
    pub kind: Kind,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    /// `always`, `default`, `never`.
    pub returned: &'static str,
    /// `none`, `server`.
    pub uniqueness: &'static str,
    pub sub: &'static [Attr],
    pub reference_types: &'static [&'static str],
    pub canonical: &'static [&'static str],
    pub description: &'static str,
}

const fn a(name: &'static str, kind: Kind, description: &'static str) -> Attr {
    Attr {
        name,
        kind,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: "default",
        uniqueness: "none",
        sub: &[],
        reference_types: &[],
        canonical: &[],
        description,
    }
}

const fn string(name: &'static str, description: &'static str) -> Attr {
    a(name, Kind::String, description)
}

const fn complex(name: &'static str, sub: &'static [Attr], description: &'static str) -> Attr {
    Attr {
        sub,
        ..a(name, Kind::Complex, description)
    }
}

const fn multi(attr: Attr) -> Attr {
    Attr {
        multi: true,
        ..attr
    }
}

const fn read_only(attr: Attr) -> Attr {
    Attr {
        mutability: Mutability::ReadOnly,
        ..attr
    }
}

const fn reference(
    name: &'static str,
    types: &'static [&'static str],
    description: &'static str,
) -> Attr {
    Attr {
        reference_types: types,
        ..a(name, Kind::Reference, description)
    }
}

const TYPE_WORK_HOME_OTHER: &[&str] = &["work", "home", "other"];

/// `value`, `display`, `type`, `primary`: the sub-attributes of emails, phone numbers, ….
const fn plural(value: Attr, types: &'static [&'static str]) -> [Attr; 4] {
    [
        value,
        string(
            "display",
            "A human-readable name, primarily used for display purposes.",
        ),
        Attr {
            canonical: types,
            ..string("type", "A label indicating the attribute's function.")
        },
        a(
            "primary",
            Kind::Boolean,
            "Indicates whether this is the primary value; true at most once.",
        ),
    ]
}

const EMAIL_SUB: [Attr; 4] = plural(string("value", "The email address."), TYPE_WORK_HOME_OTHER);
const PHONE_SUB: [Attr; 4] = plural(
    string("value", "The phone number."),
    &["work", "home", "mobile", "fax", "pager", "other"],
);
const IMS_SUB: [Attr; 4] = plural(
    string("value", "The instant messaging address."),
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
);
const PHOTO_SUB: [Attr; 4] = plural(
    reference("value", &["external"], "The URL of a photo of the user."),
    &["photo", "thumbnail"],
);

const NAME_SUB: &[Attr] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family name."),
    string("givenName", "The given name."),
    string("middleName", "The middle name(s)."),
    string("honorificPrefix", "The honorific prefix(es), e.g. 'Ms.'."),
    string("honorificSuffix", "The honorific suffix(es), e.g. 'III'."),
];

const ADDRESS_SUB: &[Attr] = &[
    string(
        "formatted",
        "The full mailing address, formatted for display.",
    ),
    string("streetAddress", "The street address."),
    string("locality", "The city or locality."),
    string("region", "The state or region."),
    string("postalCode", "The zip code or postal code."),
    string("country", "The country name (ISO 3166-1 alpha-2)."),
    Attr {
        canonical: TYPE_WORK_HOME_OTHER,
        ..string("type", "A label indicating the attribute's function.")
    },
    a(
        "primary",
        Kind::Boolean,
        "Indicates whether this is the primary address.",
    ),
];

const GROUPS_SUB: &[Attr] = &[
    read_only(string("value", "The id of the group (the role's name).")),
    read_only(reference("$ref", &["Group"], "The URI of the group.")),
    read_only(string("display", "The group's displayName.")),
    read_only(Attr {
        canonical: &["direct", "indirect"],
        ..string("type", "Always `direct`.")
    }),
];

pub const USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        uniqueness: "server",
        ..string(
            "userName",
            "Unique in the org. The member's address, when it is an email address and no email is marked primary.",
        )
    },
    complex("name", NAME_SUB, "The components of the user's real name."),
    string("displayName", "The name of the user, suitable for display."),
    string("nickName", "The casual way to address the user."),
    reference(
        "profileUrl",
        &["external"],
        "A URI to the user's online profile.",
    ),
    string("title", "The user's title, e.g. 'Vice President'."),
    string(
        "userType",
        "The relationship between the organization and the user.",
    ),
    string(
        "preferredLanguage",
        "The user's preferred written or spoken language.",
    ),
    string("locale", "The user's default location, e.g. 'en-US'."),
    string(
        "timezone",
        "The user's time zone in the 'Olson' format, e.g. 'Europe/Paris'.",
    ),
    a(
        "active",
        Kind::Boolean,
        "false takes the person's roles in the org away (the gate refuses them within a second); true gives them back.",
    ),
    multi(complex(
        "emails",
        &EMAIL_SUB,
        "Email addresses. The primary one (else the first of type work, else the first) is the member's address.",
    )),
    multi(complex("phoneNumbers", &PHONE_SUB, "Phone numbers.")),
    multi(complex("ims", &IMS_SUB, "Instant messaging addresses.")),
    multi(complex("photos", &PHOTO_SUB, "URLs of photos of the user.")),
    multi(complex(
        "addresses",
        ADDRESS_SUB,
        "Physical mailing addresses.",
    )),
    read_only(multi(complex(
        "groups",
        GROUPS_SUB,
        "The role groups the user is in (read-only: change them through /Groups).",
    ))),
];

const MANAGER_SUB: &[Attr] = &[
    string("value", "The id of the manager's User resource."),
    reference("$ref", &["User"], "The URI of the manager's User resource."),
    read_only(string("displayName", "The manager's displayName.")),
];

pub const ENTERPRISE_ATTRS: &[Attr] = &[
    string(
        "employeeNumber",
        "A number identifying the user in the organization.",
    ),
    string("costCenter", "The name of a cost center."),
    string("organization", "The name of an organization."),
    string("division", "The name of a division."),
    string("department", "The name of a department."),
    complex("manager", MANAGER_SUB, "The user's manager."),
];

const MEMBERS_SUB: &[Attr] = &[
    Attr {
        mutability: Mutability::Immutable,
        ..string("value", "The id of a User resource of this org.")
    },
    Attr {
        mutability: Mutability::Immutable,
        ..reference("$ref", &["User"], "The URI of the user.")
    },
    read_only(string("display", "The user's displayName (or userName).")),
    Attr {
        mutability: Mutability::Immutable,
        canonical: &["User"],
        ..string("type", "Always `User`: roles hold users, not groups.")
    },
];

pub const GROUP_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        uniqueness: "server",
        ..string(
            "displayName",
            "The role: ORG_ADMIN, ORG_MANAGER or ORG_USER (fixed; the three groups always exist).",
        )
    },
    multi(complex(
        "members",
        MEMBERS_SUB,
        "The users SCIM provisioned who hold the role.",
    )),
];

/// `externalId`: a common attribute of every resource (RFC 7643 §3.1), set by the client.
pub const EXTERNAL_ID: Attr = Attr {
    case_exact: true,
    ..string("externalId", "The client's identifier of the resource.")
};

/// The attributes of one resource type: its own and its extensions', by URN.
#[derive(Debug, Clone, Copy)]
pub struct ResourceSchema {
    pub urn: &'static str,
    pub attrs: &'static [Attr],
    pub extensions: &'static [(&'static str, &'static [Attr])],
}

pub const USER_SCHEMA: ResourceSchema = ResourceSchema {
    urn: USER,
    attrs: USER_ATTRS,
    extensions: &[(ENTERPRISE, ENTERPRISE_ATTRS)],
};

pub const GROUP_SCHEMA: ResourceSchema = ResourceSchema {
    urn: GROUP,
    attrs: GROUP_ATTRS,
    extensions: &[],
};

/// What a path names, once resolved against a schema.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// The extension's URN, when the attribute is an extension's.
    pub extension: Option<&'static str>,
    pub attr: &'static Attr,
    pub sub: Option<&'static Attr>,
}

fn find(attrs: &'static [Attr], name: &str) -> Option<&'static Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Common attributes every resource has.
const ID: Attr = Attr {
    case_exact: true,
    mutability: Mutability::ReadOnly,
    returned: "always",
    ..string("id", "The resource's id.")
};
const META: Attr = read_only(complex("meta", META_SUB, "The resource's metadata."));
const META_SUB: &[Attr] = &[
    read_only(string("resourceType", "The resource type.")),
    read_only(a("created", Kind::DateTime, "When it was created.")),
    read_only(a("lastModified", Kind::DateTime, "When it last changed.")),
    read_only(reference("location", &["uri"], "Its URI.")),
    read_only(Attr {
        case_exact: true,
        ..string("version", "Its version (the ETag).")
    }),
];

impl ResourceSchema {
    /// Resolves a path (names ignore case); `None` for an attribute it does not have.
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved> {
        let (extension, attrs): (Option<&'static str>, &'static [Attr]) = match &path.urn {
            Some(urn) if urn.eq_ignore_ascii_case(self.urn) => (None, self.attrs),
            Some(urn) => {
                let (u, attrs) = self
                    .extensions
                    .iter()
                    .find(|(u, _)| u.eq_ignore_ascii_case(urn))?;
                (Some(*u), *attrs)
            }
            None => (None, self.attrs),
        };
        let attr = match find(attrs, &path.name) {
            Some(attr) => attr,
            None if extension.is_none() => [&ID, &EXTERNAL_ID, &META]
                .into_iter()
                .find(|a| a.name.eq_ignore_ascii_case(&path.name))?,
            None => return None,
        };
        let sub = match &path.sub {
            Some(s) => Some(find(attr.sub, s)?),
            None => None,
        };
        Some(Resolved {
            extension,
            attr,
            sub,
        })
    }

    /// The extension URN `name` spells (ignoring case), if this resource type has it.
    pub fn extension(&self, name: &str) -> Option<(&'static str, &'static [Attr])> {
        self.extensions
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(name))
            .copied()
    }
}

impl Attributes for ResourceSchema {
    fn case_exact(&self, path: &AttrPath) -> bool {
        self.resolve(path)
            .map(|r| r.sub.unwrap_or(r.attr).case_exact)
            .unwrap_or(false)
    }
}

fn attr_json(attr: &Attr) -> Value {
    let mut v = json!({
        "name": attr.name,
        "type": attr.kind.as_str(),
        "multiValued": attr.multi,
        "description": attr.description,
        "required": attr.required,
        "caseExact": attr.case_exact,
        "mutability": match attr.mutability {
            Mutability::ReadWrite => "readWrite",
            Mutability::ReadOnly => "readOnly",
            Mutability::Immutable => "immutable",
        },
        "returned": attr.returned,
        "uniqueness": attr.uniqueness,
    });
    if let Value::Object(map) = &mut v {
        if attr.kind == Kind::Complex {
            map.insert(
                "subAttributes".into(),
                Value::Array(attr.sub.iter().map(attr_json).collect()),
            );
        }
        if attr.kind == Kind::Reference {
            map.insert("referenceTypes".into(), json!(attr.reference_types));
        }
        if !attr.canonical.is_empty() {
            map.insert("canonicalValues".into(), json!(attr.canonical));
        }
    }
    v
}

fn schema_json(id: &str, name: &str, description: &str, attrs: &[Attr], base: &str) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

// The schemas of the discovery resources themselves (RFC 7643 §7, §6, §5), which a
// client may read to know how to read the rest.
const SCHEMA_ATTRS: &[Attr] = &[
    read_only(string("id", "The schema's URI.")),
    read_only(string("name", "The schema's name.")),
    read_only(string("description", "The schema's description.")),
    read_only(multi(complex(
        "attributes",
        SCHEMA_ATTRIBUTE_SUB,
        "The schema's attributes.",
    ))),
];
const SCHEMA_ATTRIBUTE_SUB: &[Attr] = &[
    read_only(string("name", "The attribute's name.")),
    read_only(string("type", "The attribute's data type.")),
    read_only(a(
        "multiValued",
        Kind::Boolean,
        "Whether it is multi-valued.",
    )),
    read_only(string("description", "What it is.")),
    read_only(a("required", Kind::Boolean, "Whether it is required.")),
    read_only(a(
        "caseExact",
        Kind::Boolean,
        "Whether strings compare case-exactly.",
    )),
    read_only(string(
        "mutability",
        "readOnly, readWrite, immutable or writeOnly.",
    )),
    read_only(string("returned", "always, never, default or request.")),
    read_only(string("uniqueness", "none, server or global.")),
    read_only(multi(string("canonicalValues", "Suggested values."))),
    read_only(multi(string(
        "referenceTypes",
        "What a reference may point to.",
    ))),
];
const RESOURCE_TYPE_ATTRS: &[Attr] = &[
    read_only(string("id", "The resource type's id.")),
    read_only(string("name", "The resource type's name.")),
    read_only(string("description", "What it is.")),
    read_only(reference(
        "endpoint",
        &["uri"],
        "Its endpoint, relative to the base URL.",
    )),
    read_only(reference("schema", &["uri"], "Its core schema.")),
    read_only(multi(complex(
        "schemaExtensions",
        &[
            read_only(reference("schema", &["uri"], "The extension's URI.")),
            read_only(a(
                "required",
                Kind::Boolean,
                "Whether the extension is required.",
            )),
        ],
        "Its extensions.",
    ))),
];
const SPC_ATTRS: &[Attr] = &[
    read_only(reference(
        "documentationUri",
        &["external"],
        "Help for the service.",
    )),
    read_only(complex("patch", SUPPORTED, "PATCH.")),
    read_only(complex("bulk", BULK_SUB, "Bulk operations.")),
    read_only(complex("filter", FILTER_SUB, "Filters.")),
    read_only(complex("changePassword", SUPPORTED, "Password changes.")),
    read_only(complex("sort", SUPPORTED, "Sorting.")),
    read_only(complex("etag", SUPPORTED, "ETags.")),
    read_only(multi(complex(
        "authenticationSchemes",
        AUTH_SUB,
        "How clients authenticate.",
    ))),
];
const SUPPORTED: &[Attr] = &[read_only(a(
    "supported",
    Kind::Boolean,
    "Whether it is supported.",
))];
const BULK_SUB: &[Attr] = &[
    read_only(a("supported", Kind::Boolean, "Whether it is supported.")),
    read_only(a(
        "maxOperations",
        Kind::Integer,
        "The most operations in one request.",
    )),
    read_only(a(
        "maxPayloadSize",
        Kind::Integer,
        "The largest request body, in bytes.",
    )),
];
const FILTER_SUB: &[Attr] = &[
    read_only(a("supported", Kind::Boolean, "Whether it is supported.")),
    read_only(a(
        "maxResults",
        Kind::Integer,
        "The most resources in one answer.",
    )),
];
const AUTH_SUB: &[Attr] = &[
    read_only(string("type", "The scheme's type.")),
    read_only(string("name", "The scheme's name.")),
    read_only(string("description", "What it is.")),
    read_only(reference("specUri", &["external"], "Its specification.")),
    read_only(reference(
        "documentationUri",
        &["external"],
        "Its documentation.",
    )),
    read_only(a(
        "primary",
        Kind::Boolean,
        "Whether it is the preferred one.",
    )),
];

/// Every schema, as `/Schemas` lists them.
pub fn all_schemas(base: &str) -> Vec<Value> {
    vec![
        schema_json(
            USER,
            "User",
            "User Account: a person of the org",
            USER_ATTRS,
            base,
        ),
        schema_json(
            ENTERPRISE,
            "EnterpriseUser",
            "Enterprise User (stored as sent; wizbrand acts on none of it)",
            ENTERPRISE_ATTRS,
            base,
        ),
        schema_json(GROUP, "Group", "The org's roles", GROUP_ATTRS, base),
        schema_json(
            SPC,
            "ServiceProviderConfig",
            "Service Provider Configuration",
            SPC_ATTRS,
            base,
        ),
        schema_json(
            RESOURCE_TYPE,
            "ResourceType",
            "Resource Type",
            RESOURCE_TYPE_ATTRS,
            base,
        ),
        schema_json(
            SCHEMA,
            "Schema",
            "The schema of schemas",
            SCHEMA_ATTRS,
            base,
        ),
    ]
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE], "id": "User", "name": "User", "endpoint": "/Users",
            "description": "The org's people", "schema": USER,
            "schemaExtensions": [{"schema": ENTERPRISE, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": [RESOURCE_TYPE], "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "The org's roles: ORG_ADMIN, ORG_MANAGER, ORG_USER", "schema": GROUP,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

/// Limits the service provider configuration announces, and the handlers hold.
pub const MAX_RESULTS: usize = 200;
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// The most member values one request may carry (PUT or PATCH of a group).
pub const MAX_MEMBERS_PER_REQUEST: usize = 1000;

pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": MAX_PAYLOAD},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "A SCIM token an ORG_ADMIN created on the org's SCIM page (shown once): Authorization: Bearer <token>",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_ignoring_case_with_and_without_the_urn() {
        let p = |s: &str| AttrPath::parse(s).unwrap();
        assert_eq!(
            USER_SCHEMA.resolve(&p("USERNAME")).unwrap().attr.name,
            "userName"
        );
        let r = USER_SCHEMA.resolve(&p("name.givenname")).unwrap();
        assert_eq!(r.sub.unwrap().name, "givenName");
        let r = USER_SCHEMA
            .resolve(&p(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            ))
            .unwrap();
        assert_eq!(r.extension, Some(ENTERPRISE));
        assert_eq!(r.sub.unwrap().name, "value");
        assert!(
            USER_SCHEMA
                .resolve(&p("urn:ietf:params:scim:schemas:core:2.0:User:active"))
                .is_some()
        );
        assert!(
            USER_SCHEMA.resolve(&p("password")).is_none(),
            "wizbrand takes no passwords"
        );
        assert!(
            USER_SCHEMA.resolve(&p("roles")).is_none(),
            "roles are the groups"
        );
        assert!(USER_SCHEMA.case_exact(&p("externalId")));
        assert!(!USER_SCHEMA.case_exact(&p("emails.value")));
    }

    #[test]
    fn discovery_lists_the_mandatory_schemas() {
        let names: Vec<String> = all_schemas("http://x/scim/v2")
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        for wanted in [
            "User",
            "Group",
            "EnterpriseUser",
            "ResourceType",
            "ServiceProviderConfig",
            "Schema",
        ] {
            assert!(names.iter().any(|n| n == wanted), "{wanted}");
        }
    }
}
