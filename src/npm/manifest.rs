//! An npm package's index line (`"fmt":"npm"`, SPEC section 18), made from
//! its archive's package.json: the dependencies as npm ranges by kind, its
//! npm digests, and the package.json fields a packument carries.

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};
use std::collections::BTreeMap;

use crate::archive::npm::{dependency_table, DEPENDENCY_KINDS};
use crate::archive::Inspected;
use crate::index::line::Npm;
use crate::index::{IndexDep, IndexLine};

/// The package.json fields npm reads from a packument's version (its
/// "manifest") beyond those the line keeps as its own keys.
const FIELDS: &[&str] = &[
    "main",
    "module",
    "types",
    "typings",
    "exports",
    "type",
    "browser",
    "bin",
    "man",
    "directories",
    "engines",
    "os",
    "cpu",
    "libc",
    "funding",
    "homepage",
    "author",
    "bugs",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "scripts",
    "gypfile",
    "sideEffects",
];

/// The line of an npm archive that passed inspection, under the cairn
/// name `name` (the package.json's without its scope).
pub fn line(inspected: &Inspected, name: &str, bytes: &[u8], sha256: &str, blake3: &str) -> IndexLine {
    let root: Map<String, Value> = serde_json::from_str(&inspected.manifest_text).unwrap_or_default();
    let mut line =
        IndexLine::native(&inspected.manifest, crate::npm::FMT, sha256, blake3, bytes.len() as u64);
    line.name = name.to_string();
    line.deps = dependencies(&root);
    let fields = FIELDS.iter().filter_map(|f| root.get(*f).map(|v| (f.to_string(), v.clone()))).collect();
    line.npm = Some(Box::new(Npm {
        integrity: format!("sha512-{}", BASE64_STANDARD.encode(Sha512::digest(bytes))),
        shasum: hex(&sha1::Sha1::digest(bytes)),
        file_count: inspected.file_count,
        unpacked_size: inspected.file_bytes,
        fields,
    }));
    line
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every dependency by kind: `optionalDependencies` as optional normal
/// ones (npm lets them override `dependencies`), `peer` and `dev` as such.
fn dependencies(root: &Map<String, Value>) -> Vec<IndexDep> {
    let mut deps: BTreeMap<(String, &str), IndexDep> = BTreeMap::new();
    for (table, kind) in DEPENDENCY_KINDS {
        for (name, req) in dependency_table(root, table).unwrap_or_default() {
            let mut dep = IndexDep::normal(&name, &req);
            dep.optional = kind == "optional";
            dep.kind = if kind == "optional" { "normal" } else { kind }.to_string();
            deps.insert((name, if kind == "optional" { "normal" } else { kind }), dep);
        }
    }
    deps.into_values().collect()
}

/// The package.json dependency tables of a line's dependencies, as a
/// packument's version has them (an optional one in both `dependencies`
/// and `optionalDependencies`, as npm's registry has it).
pub fn tables(deps: &[IndexDep]) -> Map<String, Value> {
    let mut tables: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for dep in deps {
        let mut put = |table| {
            tables.entry(table).or_default().insert(dep.name.clone(), Value::String(dep.req.clone()));
        };
        match dep.kind.as_str() {
            "peer" => put("peerDependencies"),
            "dev" => put("devDependencies"),
            _ => {
                put("dependencies");
                if dep.optional {
                    put("optionalDependencies");
                }
            }
        }
    }
    tables.into_iter().map(|(k, v)| (k.to_string(), Value::Object(v))).collect()
}
