//! The layer order of docs/architecture.md, kept true: every `crate::…` path in `src/`
//! must point to a lower layer (or stay inside its own module). A test that needs no
//! stack; it reads the source.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::helpers::repo_root;

/// Lowest first. A module may use the modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    // Values and settings: no behaviour of their own.
    &["domain", "config", "web::html", "jwt"],
    // Cross-cutting: errors, decisions, logs, metrics, the task supervisor.
    &["error", "policy", "telemetry", "metrics", "tasks"],
    // Storage: the SQL.
    &["db"],
    // The reconcile engine and its port (`sync::directory`).
    &["sync"],
    // Talking to Keycloak: the admin adapter (implements the sync's port), then OIDC.
    &["keycloak", "mail"],
    &["oidc"],
    // The changes people make, shared by the API and the pages.
    &["manage"],
    // The gate.
    &["forward_auth"],
    // HTTP surfaces.
    &["web", "api", "health", "scim"],
    // Wiring: the server and the configuration check.
    &["startup", "check"],
    // The commands.
    &["cli", "lib", "main"],
];

/// Imports that go against the order today, each with why it is still there. The list
/// only shrinks: a new one fails the test.
const KNOWN: &[(&str, &str, &str)] = &[];

fn unit_of(path: &str) -> String {
    if path == "web::html" || path.starts_with("web::html::") {
        return "web::html".to_owned();
    }
    path.split("::").next().unwrap_or(path).to_owned()
}

fn layer_of(unit: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&unit))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/web/admin/orgs.rs` → `web::admin::orgs`.
fn module_of(relative: &Path) -> String {
    let text = relative
        .with_extension("")
        .to_string_lossy()
        .replace('/', "::");
    text.trim_start_matches("src::")
        .trim_end_matches("::mod")
        .to_owned()
}

/// The `crate::a::b` paths a line uses (`use crate::{a, b}` lists too).
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in line.match_indices("crate::") {
        let rest = &line[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let item = item.trim();
                if !item.is_empty() {
                    out.push(item.split(['{', ' ']).next().unwrap_or(item).to_owned());
                }
            }
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push(path.trim_end_matches(':').to_owned());
    }
    out
}

#[test]
fn every_import_goes_down_the_layers() {
    let root = repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut seen_known = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap();
        let module = module_of(relative);
        let from = unit_of(&module);
        let from_layer = layer_of(&from)
            .unwrap_or_else(|| panic!("{}: module {from} is in no layer", relative.display()));
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for path in crate_paths(code) {
                let to = unit_of(&path);
                if to == from || to.is_empty() {
                    continue;
                }
                let Some(to_layer) = layer_of(&to) else {
                    violations.push(format!(
                        "{}:{}: crate::{path}: module {to} is in no layer",
                        relative.display(),
                        n + 1
                    ));
                    continue;
                };
                if to_layer < from_layer {
                    continue;
                }
                let key = relative.to_string_lossy().to_string();
                if KNOWN.iter().any(|(f, t, _)| *f == key && *t == to) {
                    seen_known.insert((key, to));
                    continue;
                }
                violations.push(format!(
                    "{}:{}: {from} (layer {from_layer}) uses crate::{path} ({to}, layer {to_layer}): \
                     imports go down the layers of docs/architecture.md",
                    relative.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // A known exception that is gone must leave the list.
    for (file, to, why) in KNOWN {
        assert!(
            seen_known.contains(&((*file).to_owned(), (*to).to_owned())),
            "{file} no longer uses {to} ({why}): take it off KNOWN in tests/it/layers.rs"
        );
    }
}

/// `super::a::b` in module `web::admin::orgs` → `web::admin::a::b`; `self::x` in
/// `web::admin` (a `mod.rs`) → `web::admin::x`.
fn super_paths(module: &str, line: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `super` is the parent module: for `web/admin/orgs.rs` (`web::admin::orgs`) and
    // for `web/admin/mod.rs` (`web::admin`) alike, the path without its last part.
    let base = module.rsplit_once("::").map_or("", |(p, _)| p).to_owned();
    for (i, _) in line.match_indices("super::") {
        if i > 0 && line[..i].ends_with("::") {
            continue;
        }
        let rest = &line[i + "super::".len()..];
        let prefix = if base.is_empty() {
            String::new()
        } else {
            format!("{base}::")
        };
        if let Some(group) = rest.strip_prefix('{') {
            for item in group.split('}').next().unwrap_or("").split(',') {
                let item = item.trim().split(['{', ' ']).next().unwrap_or("");
                if !item.is_empty() && item != "self" {
                    out.push(format!("{prefix}{item}"));
                }
            }
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push(format!("{prefix}{}", path.trim_end_matches(':')));
    }
    out
}

/// The file (as a module path) a path points into: its longest prefix that is a module.
fn owning_module<'a>(path: &str, modules: &'a BTreeSet<String>) -> Option<&'a String> {
    let mut candidate = path.to_owned();
    loop {
        if let Some(m) = modules.get(&candidate) {
            return Some(m);
        }
        candidate = candidate.rsplit_once("::")?.0.to_owned();
    }
}

/// No two files import each other (a parent `mod.rs` and its children excepted: Rust's
/// module tree is built that way), `crate::` and `super::` paths alike.
#[test]
fn no_two_files_import_each_other() {
    let root = repo_root();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(&root).unwrap()))
        .collect();
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap();
        let module = module_of(relative);
        let text = std::fs::read_to_string(file).unwrap();
        // Only the code before the unit tests: a test module may use what it likes.
        let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let mut paths = crate_paths(line);
            paths.extend(super_paths(&module, line));
            for path in paths {
                if let Some(to) = owning_module(&path, &modules)
                    && *to != module
                {
                    edges.insert((module.clone(), to.clone()));
                }
            }
        }
    }
    let nested =
        |a: &str, b: &str| a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"));
    let mut cycles = Vec::new();
    for (a, b) in &edges {
        if a < b && edges.contains(&(b.clone(), a.clone())) && !nested(a, b) {
            cycles.push(format!("{a} <-> {b}"));
        }
    }
    assert!(
        cycles.is_empty(),
        "files that import each other (move what both need into a module of its own):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_reader_sees_the_paths_a_line_uses() {
    assert_eq!(
        crate_paths("use crate::{db, web::page::html_err};"),
        ["db", "web::page::html_err"]
    );
    assert_eq!(
        crate_paths("let x = crate::web::html::escape(s);"),
        ["web::html::escape"]
    );
    assert_eq!(unit_of("web::html::escape"), "web::html");
    assert_eq!(unit_of("web::page"), "web");
    assert_eq!(module_of(Path::new("src/web/admin/mod.rs")), "web::admin");
}
