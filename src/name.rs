//! Package names and versions (SPEC section 2): syntax, the canonical key that
//! makes `Foo_bar` and `foo-bar` one package, the confusable key that stops
//! look-alike names, and reserved names.

use std::fmt;

/// Windows device names: a package directory named like these cannot be
/// created on Windows, so they are refused whatever the configuration says.
const WINDOWS_DEVICES: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9",
    "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

/// The configurable reserved list's default.
pub const DEFAULT_RESERVED: &[&str] =
    &["cairn", "api", "admin", "index", "blobs", "search", "std", "core", "alloc"];

#[derive(Debug, PartialEq, Eq)]
pub enum NameError {
    Syntax(String),
    Reserved(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Syntax(n) => write!(
                f,
                "invalid package name `{n}`: a name starts with an ASCII letter and has at most 64 letters, digits, `-` or `_`"
            ),
            NameError::Reserved(n) => write!(f, "the package name `{n}` is reserved"),
        }
    }
}

/// Checks `^[A-Za-z][A-Za-z0-9_-]{0,63}$`.
pub fn validate(name: &str) -> Result<(), NameError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphabetic()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError::Syntax(name.to_string()))
    }
}

/// Refuses Windows device names and the configured reserved list, compared on
/// the canonical form so `API` and `Std` are caught too.
pub fn check_reserved(name: &str, reserved: &[String]) -> Result<(), NameError> {
    let key = canonical(name);
    if WINDOWS_DEVICES.contains(&key.as_str()) || reserved.iter().any(|r| canonical(r) == key) {
        return Err(NameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// crates.io's identity rule: lowercase, `_` is `-`. Index and static paths
/// use the lowercased name (`lower`), identity uses this key.
/// Whether a name pattern (a name, or a prefix and a trailing `*`) covers
/// `name`, both compared as canonical names: token scopes, upstreams'
/// allow/deny and `--require-provenance` read patterns this one way.
pub fn matches(pattern: &str, name: &str) -> bool {
    let name = canonical(name);
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(&canonical(prefix)),
        None => canonical(pattern) == name,
    }
}

pub fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// PyPI's look-alike rule: lowercase, drop `-`, `_`, `.`, map `l`/`i` to `1`
/// and `o` to `0`, so `g00gle-auth` collides with `google-auth`.
pub fn confusable(name: &str) -> String {
    name.to_ascii_lowercase()
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .map(|c| match c {
            'l' | 'i' => '1',
            'o' => '0',
            c => c,
        })
        .collect()
}

/// A SemVer 2.0 version as published.
pub fn parse_version(v: &str) -> Result<semver::Version, String> {
    semver::Version::parse(v).map_err(|e| format!("invalid version `{v}`: {e} (SemVer 2.0 expected)"))
}

/// The version's identity: build metadata does not make a new version.
pub fn version_key(v: &semver::Version) -> String {
    let mut key = v.clone();
    key.build = semver::BuildMetadata::EMPTY;
    key.to_string()
}

/// How an organisation is written where owners are listed (owners.json,
/// the owner API, `Published-By`, page links): `org:acme`.
pub fn owner_name(slug: &str) -> String {
    format!("org:{slug}")
}

/// The slug of an owner written as `org:acme`.
pub fn slug_of_owner(owner: &str) -> Option<&str> {
    owner.strip_prefix("org:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_syntax() {
        for ok in ["a", "Foo_bar-2", &"a".repeat(64)] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "-a", "a.b", "a b", "é", &"a".repeat(65)] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn canonical_merges_case_and_underscore() {
        assert_eq!(canonical("Foo_Bar"), canonical("foo-bar"));
    }

    #[test]
    fn confusable_catches_lookalikes() {
        assert_eq!(confusable("g00gle-auth"), confusable("google_auth"));
        assert_eq!(confusable("Ii1"), "111");
        assert_ne!(confusable("serde"), confusable("serda"));
    }

    #[test]
    fn reserved_names_are_refused() {
        let list: Vec<String> = DEFAULT_RESERVED.iter().map(|s| s.to_string()).collect();
        assert!(check_reserved("COM1", &list).is_err());
        assert!(check_reserved("Std", &list).is_err());
        assert!(check_reserved("serde", &list).is_ok());
    }

    #[test]
    fn build_metadata_does_not_make_a_new_version() {
        let a = parse_version("1.0.0+a").unwrap();
        let b = parse_version("1.0.0+b").unwrap();
        assert_eq!(version_key(&a), version_key(&b));
    }
}
