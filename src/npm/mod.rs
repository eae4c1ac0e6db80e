//! The npm protocol (SPEC section 18): npm packages are cairn packages,
//! published and read through npm's door (`/npm/`, and
//! `/orgs/{org}/npm/` for a private organisation's registry, npm's scope
//! registry). Reads are static files the package derivation writes
//! (`packument.rs`, signed with `key.rs`); `manifest.rs` turns a
//! package.json into an index line (`"fmt":"npm"`); `range.rs` checks npm's
//! requirement syntax. The door's writes and dynamic reads are
//! `server/npm/`.

pub mod key;
pub mod manifest;
pub mod packument;
pub mod range;

pub use key::Key;

/// The `fmt` of an npm package's index lines.
pub const FMT: &str = "npm";

/// The npm door a URL path is in: the private organisation (none: the
/// public registry's door) and the path below the door, without its `/`.
pub fn door_of(path: &str) -> Option<(Option<&str>, &str)> {
    if let Some(rest) = path.strip_prefix("/npm/") {
        return Some((None, rest));
    }
    let (slug, below) = crate::layout::split_org(path.strip_prefix('/')?)?;
    below.strip_prefix("npm/").map(|rest| (Some(slug), rest))
}

/// The cairn package an npm name stands for at a door: the name itself at
/// the public door, `{name}` for `@{org}/{name}` at an organisation's.
pub fn package_of(org: Option<&str>, npm_name: &str) -> Result<String, String> {
    let scoped = npm_name.strip_prefix('@').map(|s| s.split_once('/').unwrap_or((s, "")));
    let name = match (org, scoped) {
        (None, None) => npm_name,
        (None, Some((scope, _))) => {
            return Err(format!(
                "`{npm_name}` is scoped: a scope is a private organisation's registry here; \
                 set `@{scope}:registry` to /orgs/{scope}/npm/ on this server"
            ))
        }
        (Some(org), Some((scope, name))) if scope.eq_ignore_ascii_case(org) => name,
        (Some(org), _) => {
            return Err(format!(
                "this is @{org}'s registry: its packages are named `@{org}/…`, not `{npm_name}`"
            ))
        }
    };
    crate::name::validate(name).map_err(|e| e.to_string())?;
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doors_and_names() {
        assert_eq!(door_of("/npm/left-pad"), Some((None, "left-pad")));
        assert_eq!(door_of("/orgs/acme/npm/@acme%2fw"), Some((Some("acme"), "@acme%2fw")));
        assert_eq!(door_of("/orgs/acme/api/v1/x"), None);
        assert_eq!(door_of("/npmx"), None);
        assert_eq!(package_of(None, "left-pad").unwrap(), "left-pad");
        assert!(package_of(None, "@acme/w").unwrap_err().contains("/orgs/acme/npm/"));
        assert_eq!(package_of(Some("acme"), "@acme/w").unwrap(), "w");
        assert_eq!(package_of(Some("acme"), "@ACME/w").unwrap(), "w");
        assert!(package_of(Some("acme"), "@other/w").is_err());
        assert!(package_of(Some("acme"), "w").is_err());
        assert!(package_of(None, "../x").is_err());
    }
}
