//! SCIM filters and attribute paths (RFC 7644 §3.4.2.2 and §3.5.2): parsed into a tree,
//! then evaluated against a resource's JSON. Plain functions, no I/O.

use serde_json::Value;

/// How deeply filters may nest: deeper ones are refused instead of exhausting the stack.
const MAX_DEPTH: usize = 32;
/// Filters and paths longer than this are refused before they are parsed.
pub const MAX_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{0}")]
    Syntax(String),
}

fn syntax(msg: impl Into<String>) -> FilterError {
    FilterError::Syntax(msg.into())
}

/// `urn:…:User:name.givenName`: an optional schema URN, an attribute, a sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// Parses one path word; names are kept as written (matching ignores case).
    pub fn parse(word: &str) -> Result<AttrPath, FilterError> {
        let (urn, rest) = if word.len() > 4 && word[..4].eq_ignore_ascii_case("urn:") {
            match word.rfind(':') {
                Some(i) => (Some(word[..i].to_owned()), &word[i + 1..]),
                None => (None, word),
            }
        } else {
            (None, word)
        };
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        let valid = |s: &str| {
            let mut chars = s.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if !valid(name) || sub.is_some_and(|s| !valid(s)) {
            return Err(syntax(format!("`{word}` is not an attribute path")));
        }
        Ok(AttrPath {
            urn,
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, CompareOp, Value),
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work"]`: the inner filter applies to each value of the attribute.
    ValuePath(AttrPath, Box<Filter>),
}

impl Filter {
    /// Every attribute path the filter names (inner paths of a value path are relative
    /// to it: `emails[type eq "x"]` names `emails` and `emails.type`).
    pub fn paths(&self) -> Vec<AttrPath> {
        match self {
            Filter::Compare(p, _, _) | Filter::Present(p) => vec![p.clone()],
            Filter::And(a, b) | Filter::Or(a, b) => {
                let mut v = a.paths();
                v.extend(b.paths());
                v
            }
            Filter::Not(a) => a.paths(),
            Filter::ValuePath(outer, inner) => {
                let mut v = vec![outer.clone()];
                for p in inner.paths() {
                    v.push(AttrPath {
                        urn: outer.urn.clone(),
                        name: outer.name.clone(),
                        sub: Some(p.name),
                    });
                }
                v
            }
        }
    }

    /// `userName eq "x"` (or `externalId`, `id`) at the top: lets a store look it up
    /// directly instead of reading every resource.
    pub fn top_level_eq(&self) -> Option<(&str, &str)> {
        match self {
            Filter::Compare(p, CompareOp::Eq, Value::String(v)) if p.sub.is_none() => {
                Some((p.name.as_str(), v.as_str()))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// `.sub` right after a `]` (PATCH paths only).
    DotSub(String),
    Word(String),
    Literal(Value),
}

fn lex(input: &str) -> Result<Vec<Token>, FilterError> {
    if input.len() > MAX_LEN {
        return Err(syntax(format!("longer than {MAX_LEN} characters")));
    }
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b'[' => {
                out.push(Token::OpenBracket);
                i += 1;
            }
            b']' => {
                out.push(Token::CloseBracket);
                i += 1;
                if bytes.get(i) == Some(&b'.') {
                    let start = i + 1;
                    let mut j = start;
                    while j < bytes.len() && is_word_byte(bytes[j]) {
                        j += 1;
                    }
                    out.push(Token::DotSub(input[start..j].to_owned()));
                    i = j;
                }
            }
            b'"' => {
                // A JSON string: find its end (a quote not escaped), let serde decode it.
                let mut j = i + 1;
                let mut escaped = false;
                loop {
                    let Some(&b) = bytes.get(j) else {
                        return Err(syntax("a string is not closed"));
                    };
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        break;
                    }
                    j += 1;
                }
                let value: Value = serde_json::from_str(&input[i..=j])
                    .map_err(|_| syntax(format!("{} is not a valid string", &input[i..=j])))?;
                out.push(Token::Literal(value));
                i = j + 1;
            }
            _ if is_word_byte(c) => {
                let start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                let word = &input[start..i];
                let literal = match word.to_ascii_lowercase().as_str() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    "null" => Some(Value::Null),
                    _ if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') => Some(
                        serde_json::from_str::<serde_json::Number>(word)
                            .map(Value::Number)
                            .map_err(|_| syntax(format!("`{word}` is not a number")))?,
                    ),
                    _ => None,
                };
                out.push(match literal {
                    Some(v) => Token::Literal(v),
                    None => Token::Word(word.to_owned()),
                });
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or('?');
                return Err(syntax(format!("unexpected `{ch}`")));
            }
        }
    }
    Ok(out)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$' | b':' | b'.' | b'+')
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Filter, FilterError> {
        self.deeper()?;
        let mut left = self.and_expr()?;
        while self.keyword("or") {
            self.at += 1;
            let right = self.and_expr()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") {
            self.at += 1;
            if self.next() != Some(Token::Open) {
                return Err(syntax("`not` must be followed by `(`"));
            }
            let inner = self.or_expr()?;
            self.expect_close()?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or_expr()?;
            self.expect_close()?;
            return Ok(inner);
        }
        self.attr_expr()
    }

    fn expect_close(&mut self) -> Result<(), FilterError> {
        match self.next() {
            Some(Token::Close) => Ok(()),
            _ => Err(syntax("a `(` is not closed")),
        }
    }

    fn attr_expr(&mut self) -> Result<Filter, FilterError> {
        let word = match self.next() {
            Some(Token::Word(w)) => w,
            Some(Token::Literal(v)) => {
                return Err(syntax(format!("expected an attribute, found {v}")));
            }
            Some(other) => return Err(syntax(format!("expected an attribute, found {other:?}"))),
            None => return Err(syntax("the filter ends too early")),
        };
        let path = AttrPath::parse(&word)?;
        if self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            if path.sub.is_some() {
                return Err(syntax(format!(
                    "`{word}[…]`: a value filter applies to an attribute, not a sub-attribute"
                )));
            }
            self.deeper()?;
            let inner = self.or_expr()?;
            self.depth -= 1;
            if self.next() != Some(Token::CloseBracket) {
                return Err(syntax("a `[` is not closed"));
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let op = match self.next() {
            Some(Token::Word(w)) => w,
            _ => {
                return Err(syntax(format!(
                    "`{word}` must be followed by an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"
                )));
            }
        };
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(&op).ok_or_else(|| {
            syntax(format!(
                "`{op}` is not an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)"
            ))
        })?;
        match self.next() {
            Some(Token::Literal(v)) => Ok(Filter::Compare(path, op, v)),
            _ => Err(syntax(format!(
                "`{word}` and its operator must be followed by a value (a quoted string, a number, true, false or null)"
            ))),
        }
    }
}

/// Parses a `filter` query parameter.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Err(syntax("the filter is empty"));
    }
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let f = p.or_expr()?;
    match p.peek() {
        None => Ok(f),
        Some(t) => Err(syntax(format!("unexpected {t:?} after the filter"))),
    }
}

/// A PATCH operation's `path`: an attribute, optionally a value filter, optionally a
/// sub-attribute after it (`emails[type eq "work"].value`).
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after the filter.
    pub sub: Option<String>,
}

pub fn parse_path(input: &str) -> Result<PatchPath, FilterError> {
    let tokens = lex(input)?;
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    let attr = match p.next() {
        Some(Token::Word(w)) => AttrPath::parse(&w)?,
        _ => return Err(syntax("a path starts with an attribute name")),
    };
    let mut path = PatchPath {
        attr,
        filter: None,
        sub: None,
    };
    if p.peek() == Some(&Token::OpenBracket) {
        p.at += 1;
        if path.attr.sub.is_some() {
            return Err(syntax(
                "a value filter applies to an attribute, not a sub-attribute",
            ));
        }
        path.filter = Some(p.or_expr()?);
        if p.next() != Some(Token::CloseBracket) {
            return Err(syntax("a `[` is not closed"));
        }
        if let Some(Token::DotSub(sub)) = p.peek().cloned() {
            p.at += 1;
            AttrPath::parse(&sub)?;
            path.sub = Some(sub);
        }
    }
    match p.peek() {
        None => Ok(path),
        Some(t) => Err(syntax(format!("unexpected {t:?} in the path"))),
    }
}

/// What evaluation needs to know of the schema: whether an attribute compares strings
/// exactly (`caseExact`).
pub trait Attributes {
    fn case_exact(&self, path: &AttrPath) -> bool;
}

/// Whether `resource` (or, inside a value path, one value of an attribute) matches.
pub fn matches(filter: &Filter, resource: &Value, attrs: &dyn Attributes) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, resource, attrs) && matches(b, resource, attrs),
        Filter::Or(a, b) => matches(a, resource, attrs) || matches(b, resource, attrs),
        Filter::Not(a) => !matches(a, resource, attrs),
        Filter::Present(path) => values_at(resource, path).iter().any(|v| present(v)),
        Filter::Compare(path, op, wanted) => {
            let found = values_at(resource, path);
            let exact = attrs.case_exact(path);
            match op {
                // `ne`: no value equals (an absent attribute is "not equal").
                CompareOp::Ne => !found
                    .iter()
                    .any(|v| compare(v, CompareOp::Eq, wanted, exact)),
                _ if wanted.is_null() && *op == CompareOp::Eq => !found.iter().any(|v| present(v)),
                _ => found.iter().any(|v| compare(v, *op, wanted, exact)),
            }
        }
        Filter::ValuePath(path, inner) => {
            let outer = AttrPath {
                urn: path.urn.clone(),
                name: path.name.clone(),
                sub: None,
            };
            let scoped = Scoped {
                outer: &outer,
                attrs,
            };
            elements(resource, &outer)
                .iter()
                .any(|v| matches(inner, v, &scoped))
        }
    }
}

/// Whether one value of the attribute `outer` (an element of `emails`, say) matches the
/// filter inside `outer[…]`.
pub fn matches_within(
    inner: &Filter,
    element: &Value,
    outer: &AttrPath,
    attrs: &dyn Attributes,
) -> bool {
    matches(inner, element, &Scoped { outer, attrs })
}

/// Inside `emails[…]`: `type` means `emails.type`.
struct Scoped<'a> {
    outer: &'a AttrPath,
    attrs: &'a dyn Attributes,
}

impl Attributes for Scoped<'_> {
    fn case_exact(&self, path: &AttrPath) -> bool {
        self.attrs.case_exact(&AttrPath {
            urn: self.outer.urn.clone(),
            name: self.outer.name.clone(),
            sub: Some(path.name.clone()),
        })
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// A key of `object`, ignoring case.
pub fn get_ci<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The values of an attribute as they are: each element of a multi-valued one.
fn elements<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let base = match &path.urn {
        Some(urn) => match get_ci(resource, urn) {
            Some(ext) if ext.is_object() => ext,
            _ => resource,
        },
        None => resource,
    };
    match get_ci(base, &path.name) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    }
}

/// The values a path names in a resource: every value of a multi-valued attribute (its
/// `value` sub-attribute when the path names none and the values are complex).
pub fn values_at<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    // The URN of the resource's own schema is not a key: the attribute is at the top.
    let items = elements(
        resource,
        &AttrPath {
            sub: None,
            ..path.clone()
        },
    );
    match &path.sub {
        Some(sub) => items.into_iter().filter_map(|v| get_ci(v, sub)).collect(),
        None => items
            .into_iter()
            .map(|v| {
                if v.is_object() {
                    get_ci(v, "value").unwrap_or(v)
                } else {
                    v
                }
            })
            .collect(),
    }
}

fn compare(found: &Value, op: CompareOp, wanted: &Value, exact: bool) -> bool {
    match (found, wanted) {
        (Value::String(f), Value::String(w)) => {
            let (f, w) = if exact {
                (f.clone(), w.clone())
            } else {
                (f.to_lowercase(), w.to_lowercase())
            };
            match op {
                CompareOp::Eq => f == w,
                CompareOp::Ne => f != w,
                CompareOp::Co => f.contains(&w),
                CompareOp::Sw => f.starts_with(&w),
                CompareOp::Ew => f.ends_with(&w),
                CompareOp::Gt => f > w,
                CompareOp::Ge => f >= w,
                CompareOp::Lt => f < w,
                CompareOp::Le => f <= w,
            }
        }
        (Value::Number(f), Value::Number(w)) => {
            let (Some(f), Some(w)) = (f.as_f64(), w.as_f64()) else {
                return false;
            };
            match op {
                CompareOp::Eq => f == w,
                CompareOp::Ne => f != w,
                CompareOp::Gt => f > w,
                CompareOp::Ge => f >= w,
                CompareOp::Lt => f < w,
                CompareOp::Le => f <= w,
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
            }
        }
        // Booleans compare by equality only; directories also send them as strings.
        (Value::Bool(f), w) => match (op, as_bool(w)) {
            (CompareOp::Eq, Some(w)) => *f == w,
            (CompareOp::Ne, Some(w)) => *f != w,
            _ => false,
        },
        _ => false,
    }
}

/// `true`, or the strings `"True"`/`"false"` Entra ID sends for booleans.
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct NoneExact;
    impl Attributes for NoneExact {
        fn case_exact(&self, path: &AttrPath) -> bool {
            path.name.eq_ignore_ascii_case("externalId") || path.name.eq_ignore_ascii_case("id")
        }
    }

    fn user() -> Value {
        json!({
            "id": "42", "userName": "Alice@Example.com", "externalId": "AbC",
            "displayName": "Alice Liddell", "active": true,
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [{"value": "alice@example.com", "type": "work", "primary": true},
                       {"value": "al@home.example", "type": "home"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7"},
            "meta": {"lastModified": "2026-11-29T10:00:00Z"}
        })
    }

    fn m(filter: &str) -> bool {
        let f = parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        matches(&f, &user(), &NoneExact)
    }

    #[test]
    fn the_operators_directories_use_match_as_the_rfc_says() {
        assert!(
            m(r#"userName eq "alice@example.com""#),
            "userName ignores case"
        );
        assert!(
            m(r#"USERNAME Eq "ALICE@example.COM""#),
            "names and operators too"
        );
        assert!(!m(r#"externalId eq "abc""#), "externalId is caseExact");
        assert!(m(r#"externalId eq "AbC""#));
        assert!(m(r#"displayName co "lid""#));
        assert!(m(r#"displayName sw "alice""#));
        assert!(m(r#"displayName ew "LIDDELL""#));
        assert!(!m("title pr"));
        assert!(m("name.givenName pr"));
        assert!(
            m(r#"emails.value eq "al@home.example""#),
            "any value of a multi-valued attribute"
        );
        assert!(
            m(r#"emails eq "alice@example.com""#),
            "a complex value compares by its `value`"
        );
        assert!(m(r#"emails[type eq "work" and value co "@example.com"]"#));
        assert!(!m(r#"emails[type eq "home" and value co "@example.com"]"#));
        assert!(m(r#"userName eq "x" or displayName sw "Alice""#));
        assert!(!m(r#"userName eq "x" and displayName sw "Alice""#));
        assert!(m(r#"not (userName eq "x")"#));
        assert!(m(
            r#"(userName eq "x" or active eq true) and not (title pr)"#
        ));
        assert!(m(r#"active eq "True""#), "Entra's boolean strings");
        assert!(m(r#"title ne "boss""#), "an absent attribute is not equal");
        assert!(m(r#"meta.lastModified gt "2026-01-01T00:00:00Z""#));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7""#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "alice""#
        ));
    }

    #[test]
    fn malformed_filters_are_errors_that_say_why() {
        for bad in [
            "",
            "userName",
            r#"userName eq"#,
            r#"userName equals "x""#,
            r#"userName eq "x"#,
            r#"(userName eq "x""#,
            r#"userName eq "x")"#,
            r#"userName eq "x" and"#,
            r#"emails[type eq "work""#,
            r#"name.givenName[value eq "x"]"#,
            r#"1abc eq "x""#,
            r#"userName eq x"#,
            "userName eq 12ab",
            r#"userName eq "x" ; drop"#,
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad}");
        }
        let deep = format!("{}userName pr{}", "(".repeat(100), ")".repeat(100));
        let err = parse(&deep).unwrap_err().to_string();
        assert!(err.contains("nested deeper"), "{err}");
        assert!(parse(&"a".repeat(MAX_LEN + 1)).is_err());
    }

    #[test]
    fn patch_paths_take_a_value_filter_and_a_sub_attribute() {
        let p = parse_path(r#"members[value eq "2819c223"]"#).unwrap();
        assert_eq!(p.attr.name, "members");
        assert!(p.filter.is_some() && p.sub.is_none());
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
            .unwrap();
        assert_eq!(
            p.attr.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.attr.name, "manager");
        let p = parse_path("name.givenName").unwrap();
        assert_eq!(p.attr.sub.as_deref(), Some("givenName"));
        assert!(parse_path(r#"members[value eq "x"] extra"#).is_err());
        assert!(parse_path("").is_err());
    }

    #[test]
    fn the_simple_lookups_are_recognised() {
        let f = parse(r#"userName eq "bob""#).unwrap();
        assert_eq!(f.top_level_eq(), Some(("userName", "bob")));
        assert_eq!(parse(r#"userName co "bob""#).unwrap().top_level_eq(), None);
        let paths = parse(r#"emails[type eq "work"]"#).unwrap().paths();
        assert_eq!(paths[1].sub.as_deref(), Some("type"));
    }
}
