//! The git-backed sparse index (SPEC section 5): where a package's file lives,
//! the JSON line format, and the writer that commits to the bare repository.

pub mod cargo;
pub mod crate_manifest;
mod git;
pub mod line;
pub mod meta;
mod packs;
pub mod remotes;
pub mod stored;

pub use git::{CommitView, IndexRepo, IndexSnapshot, IndexTx};
pub use line::{IndexDep, IndexLine};
pub use meta::Meta;
pub use packs::RETIRED_DIR;

/// cargo's sparse-index path for a package: `1/{n}`, `2/{n}`, `3/{c}/{n}`,
/// else `{n[0..2]}/{n[2..4]}/{n}`, on the lowercased name.
pub fn package_path(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.len() {
        1 => format!("1/{n}"),
        2 => format!("2/{n}"),
        3 => format!("3/{}/{n}", &n[..1]),
        _ => format!("{}/{}/{n}", &n[..2], &n[2..4]),
    }
}

#[cfg(test)]
mod tests {
    use super::package_path;

    #[test]
    fn paths_follow_cargo() {
        assert_eq!(package_path("a"), "1/a");
        assert_eq!(package_path("ab"), "2/ab");
        assert_eq!(package_path("Abc"), "3/a/abc");
        assert_eq!(package_path("Serde_json"), "se/rd/serde_json");
    }
}
