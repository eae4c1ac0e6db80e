//! The static root's layout (SPEC section 6): the one module that builds a
//! static-root path, and the serving rules that go with a path (its
//! Cache-Control, Content-Type and whether it is sent compressed), which
//! `cairn serve`, the shipped nginx configuration and an object store's
//! object headers all follow.
//!
//! A path here is a *key*: relative, `/`-separated, no leading slash, the
//! same string whether it names a file under `static/` or an object in a
//! bucket; its URL is `/{key}`. A [`Layout`] carries a prefix: empty for
//! the public registry, `orgs/{org}/` for a private organisation, whose
//! registry is this same layout below it.
//!
//! Package names never collide with fixed files: per-package documents
//! live in the package's own directory (`api/v1/packages/{name}/…`), and
//! registry-wide files live outside `api/v1/packages/` (`api/v1/stats.json`,
//! `api/v1/advisories/all.json`), so a package called `all`, `stats` or
//! `manifest` keeps its own files.

mod flights;
mod generation;
mod headers;
mod key;
mod object;
mod storage;

pub use headers::{
    cache_control, compressible, content_security_policy, content_type, ranges_allowed, Edge,
    COMPRESS_MIN_BYTES, PAGE_CSP,
};
pub use key::{split_org, Key};
use key::{INVITATIONS, NPM_BLOBS};
pub use object::ObjectStorage;
pub use storage::{FileId, FsStorage, ReadSeek, StaticRoot, Storage};

use crate::index::package_path;

/// Where one registry's files live inside the static root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Empty, or `orgs/{org}/`.
    prefix: String,
}

/// A tile's `N[.p/W]`: N in 3-digit groups, all but the last prefixed
/// `x` (1234067 → `x001/x234/067`).
fn tile_index(n: u64, width: u32) -> String {
    let mut path = format!("{:03}", n % 1000);
    let mut rest = n / 1000;
    while rest > 0 {
        path = format!("x{:03}/{path}", rest % 1000);
        rest /= 1000;
    }
    if width < 256 {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

/// A key an upstream can fill ([`Layout::missable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missable {
    /// A package's index file, by the name its path ends with (lowercase).
    IndexFile(String),
    /// A blob or its `.minisig`, by SHA-256.
    Blob(String),
}

/// The sorts of `api/v1/listings/{sort}/`.
pub const LISTING_SORTS: [&str; 3] = ["name", "newest", "downloads"];

impl Layout {
    /// The public registry at the static root's top.
    pub fn public() -> Layout {
        Layout::default()
    }

    /// A private organisation's registry, below `orgs/{org}/`.
    pub fn org(slug: &str) -> Layout {
        Layout { prefix: format!("orgs/{}/", slug.to_ascii_lowercase()) }
    }

    /// The registry's top: empty, or `orgs/{org}/`.
    pub fn top(&self) -> &str {
        &self.prefix
    }

    /// The registry's URLs' base below the public URL: empty, or `/orgs/{org}`.
    pub fn url_base(&self) -> String {
        match self.prefix.trim_end_matches('/') {
            "" => String::new(),
            top => format!("/{top}"),
        }
    }

    /// What a key of this registry is, when a miss for it may be filled
    /// from an upstream (SPEC section 16): a package's index file, or a
    /// blob or its signature.
    pub fn missable(&self, key: &str) -> Option<Missable> {
        let rest = key.strip_prefix(&self.prefix)?;
        if let Some(path) = rest.strip_prefix("index/") {
            let name = path.rsplit('/').next()?;
            let is_package = crate::name::validate(name).is_ok() && package_path(name) == path;
            return is_package.then(|| Missable::IndexFile(name.to_string()));
        }
        let file = rest.strip_prefix("blobs/sha256/")?;
        let hex = file.strip_suffix(".minisig").unwrap_or(file);
        let is_hex = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        is_hex.then(|| Missable::Blob(hex.to_string()))
    }

    fn at(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn package_base(&self, name: &str) -> String {
        self.at(&format!("api/v1/packages/{}", name.to_ascii_lowercase()))
    }

    /// The static copy of the index tree.
    pub fn index_dir(&self) -> String {
        self.at("index")
    }

    /// A file of the index tree (`config.json`, a package's cargo path,
    /// `advisories/{id}.json`) in the static copy.
    pub fn index_file(&self, tree_path: &str) -> String {
        self.at(&format!("index/{tree_path}"))
    }

    /// A package's file in the static copy of the index.
    pub fn package_index(&self, name: &str) -> String {
        self.index_file(&package_path(name))
    }

    /// The clonable bare repository.
    pub fn index_git(&self) -> String {
        self.at("index.git")
    }

    /// The published log: tiles, entry bundles, keys and the checkpoint.
    pub fn log_dir(&self) -> String {
        self.at("log")
    }

    pub fn blobs_dir(&self) -> String {
        self.at("blobs/sha256")
    }

    pub fn blob(&self, sha256: &str) -> String {
        self.at(&format!("blobs/sha256/{sha256}"))
    }

    pub fn signature(&self, sha256: &str) -> String {
        self.at(&format!("blobs/sha256/{sha256}.minisig"))
    }

    pub fn minisign_pub(&self) -> String {
        self.at("minisign.pub")
    }

    /// The directory of a package's own documents (versions, owners, stats, advisories).
    pub fn package_dir(&self, name: &str) -> String {
        self.package_base(name)
    }

    pub fn package_doc(&self, name: &str) -> String {
        format!("{}.json", self.package_base(name))
    }

    /// A package's file, by its name inside [`Layout::package_dir`].
    pub fn package_file(&self, name: &str, file: &str) -> String {
        format!("{}/{file}", self.package_base(name))
    }

    /// `{version}.json` inside the package directory.
    pub fn version_file(version: &str) -> String {
        format!("{version}.json")
    }

    /// `{version}/readme.md` inside the package directory.
    pub fn readme_file(version: &str) -> String {
        format!("{version}/readme.md")
    }

    pub const OWNERS_FILE: &'static str = "owners.json";

    pub fn version_doc(&self, name: &str, version: &str) -> String {
        self.package_file(name, &Layout::version_file(version))
    }

    pub fn readme(&self, name: &str, version: &str) -> String {
        self.package_file(name, &Layout::readme_file(version))
    }

    /// The README rendered and sanitised (SPEC section 11), beside `readme.md`.
    pub fn readme_html(&self, name: &str, version: &str) -> String {
        self.package_file(name, &format!("{version}/readme.html"))
    }

    pub fn owners(&self, name: &str) -> String {
        self.package_file(name, Layout::OWNERS_FILE)
    }

    /// The packages whose newest version depends on it (SPEC section 19).
    pub fn dependents(&self, name: &str) -> String {
        self.package_file(name, "dependents.json")
    }

    pub fn package_stats(&self, name: &str) -> String {
        self.package_file(name, "stats.json")
    }

    pub fn package_advisories(&self, name: &str) -> String {
        self.package_file(name, "advisories.json")
    }

    /// The Atom feed of the registry's latest publishes (SPEC section 19).
    pub fn feed_updates(&self) -> String {
        self.at("feeds/updates.xml")
    }

    /// The Atom feed of one package's versions.
    pub fn feed_package(&self, name: &str) -> String {
        self.at(&format!("feeds/packages/{}.xml", name.to_ascii_lowercase()))
    }

    /// The npm door's directory (SPEC section 18): `npm`, or `orgs/{org}/npm`.
    pub fn npm_dir(&self) -> String {
        self.at("npm")
    }

    /// The name npm knows a package by here: the organisation's scope in
    /// its registry (`@acme/widget`), the name itself in the public one.
    pub fn npm_name(&self, name: &str) -> String {
        match self.org_slug() {
            Some(org) => format!("@{org}/{}", name.to_ascii_lowercase()),
            None => name.to_ascii_lowercase(),
        }
    }

    /// A package's packument: `npm/{name}`, `orgs/{org}/npm/@{org}/{name}`
    /// (npm asks for `@acme%2fwidget` or `@acme/widget`: one file serves both).
    pub fn npm_packument(&self, name: &str) -> String {
        format!("{}/{}", self.npm_dir(), self.npm_name(name))
    }

    /// The registry's npm signing key, as npm reads it.
    pub fn npm_keys(&self) -> String {
        format!("{}/-/npm/v1/keys", self.npm_dir())
    }

    /// A tarball's URL path as a packument gives it: the blob's, or in a
    /// private organisation's registry the same blob below its npm door,
    /// because npm sends a scope registry's token only below its URL.
    pub fn npm_tarball(&self, sha256: &str) -> String {
        match self.org_slug() {
            Some(_) => url(&format!("{}/{NPM_BLOBS}{sha256}", self.npm_dir())),
            None => url(&self.blob(sha256)),
        }
    }

    /// The private organisation whose registry this is.
    pub fn org_slug(&self) -> Option<&str> {
        split_org(&self.prefix).map(|(slug, _)| slug)
    }

    /// The transparency log's signed checkpoint.
    pub fn log_checkpoint(&self) -> String {
        self.at("log/checkpoint")
    }

    /// The log's two verifier keys (note, cosignature), a line each.
    pub fn log_keys(&self) -> String {
        self.at("log/keys")
    }

    /// A hash tile: `log/tile/{L}/{N}[.p/{W}]` (C2SP tlog-tiles; `W` < 256
    /// marks a partial tile).
    pub fn log_tile(&self, level: u8, n: u64, width: u32) -> String {
        self.at(&format!("log/tile/{level}/{}", tile_index(n, width)))
    }

    /// An entry bundle: `log/tile/entries/{N}[.p/{W}]`.
    pub fn log_entries(&self, n: u64, width: u32) -> String {
        self.at(&format!("log/tile/entries/{}", tile_index(n, width)))
    }

    pub fn user(&self, login: &str) -> String {
        self.at(&format!("api/v1/users/{}.json", login.to_ascii_lowercase()))
    }

    pub fn recent(&self) -> String {
        self.at("api/v1/recent.json")
    }

    pub fn health(&self) -> String {
        self.at("api/v1/health.json")
    }

    pub fn stats(&self) -> String {
        self.at("api/v1/stats.json")
    }

    pub fn listing_dir(&self, sort: &str) -> String {
        self.at(&format!("api/v1/listings/{sort}"))
    }

    /// The listings of one kind, `api/v1/kinds/{kind}/` (a word: `archive::is_word`).
    pub fn kind_dir(&self, kind: &str) -> String {
        format!("{}/{}", self.kinds_dir(), kind.to_ascii_lowercase())
    }

    /// The directory of every kind's listing.
    pub fn kinds_dir(&self) -> String {
        self.at("api/v1/kinds")
    }

    /// The listings of one keyword, `api/v1/keywords/{keyword}/` (a word).
    pub fn keyword_dir(&self, keyword: &str) -> String {
        format!("{}/{}", self.keywords_dir(), keyword.to_ascii_lowercase())
    }

    /// The directory of every keyword's listing.
    pub fn keywords_dir(&self) -> String {
        self.at("api/v1/keywords")
    }

    /// Page `page` (from 1) of a listing directory.
    pub fn listing_page(dir: &str, page: usize) -> String {
        format!("{dir}/{page}.json")
    }

    pub fn search_dir(&self) -> String {
        self.at("api/v1/search")
    }

    pub fn search_manifest(&self) -> String {
        self.at("api/v1/search/manifest.json")
    }

    pub fn search_delta(&self) -> String {
        self.at("api/v1/search/delta.json")
    }

    /// A shard, by its file name (`{generation}-{i}.json`).
    pub fn search_shard(&self, file: &str) -> String {
        self.at(&format!("api/v1/search/{file}"))
    }

    pub fn advisories_dir(&self) -> String {
        self.at("api/v1/advisories")
    }

    /// Every deprecated package with its message (SPEC section 6).
    pub fn deprecations(&self) -> String {
        self.at("api/v1/deprecations.json")
    }

    pub fn advisories_index(&self) -> String {
        self.at("api/v1/advisories/index.json")
    }

    pub fn advisories_all(&self) -> String {
        self.at("api/v1/advisories/all.json")
    }

    /// The site's home page.
    pub fn home_page(&self) -> String {
        self.at("index.html")
    }

    /// The package's page, `/p/{name}`.
    pub fn package_page(&self, name: &str) -> String {
        self.at(&Layout::page(&format!("p/{}", name.to_ascii_lowercase())))
    }

    /// One version's page, `/p/{name}/{version}`.
    pub fn version_page(&self, name: &str, version: &str) -> String {
        self.at(&Layout::page(&format!("p/{}/{version}", name.to_ascii_lowercase())))
    }

    /// A package's proposals and the form to propose a change,
    /// `/p/{name}/proposals` (no version is called `proposals`).
    pub fn proposals_page(&self, name: &str) -> String {
        self.at(&Layout::page(&format!("p/{}/proposals", name.to_ascii_lowercase())))
    }

    /// One proposal with its diff, `/p/{name}/proposals/{id}`.
    pub fn proposal_page(&self, name: &str, id: i64) -> String {
        self.at(&Layout::page(&format!("p/{}/proposals/{id}", name.to_ascii_lowercase())))
    }

    /// A user's page, `/u/{login}`.
    pub fn user_page(&self, login: &str) -> String {
        self.at(&Layout::page(&format!("u/{}", login.to_ascii_lowercase())))
    }

    /// `/o/{slug}`: an organisation's page.
    pub fn org_page(&self, slug: &str) -> String {
        self.at(&Layout::page(&format!("o/{}", slug.to_ascii_lowercase())))
    }

    /// The page of a package owner as owners are listed: `org:{slug}` is
    /// an organisation's, any other a user's.
    pub fn owner_page(&self, owner: &str) -> String {
        match crate::name::slug_of_owner(owner) {
            Some(slug) => self.org_page(slug),
            None => self.user_page(owner),
        }
    }

    /// The link an invitation's mail carries (SPEC section 19): any
    /// `/invitations/{token}` is the one invitation page, whose script
    /// reads the token from the URL (see [`Key::new`]).
    pub fn invitation_url(token: &str) -> String {
        format!("/{INVITATIONS}/{token}")
    }

    /// A fixed page of the site by its URL's key (`stats`, `search`, `login`, …).
    pub fn site_page(&self, url_key: &str) -> String {
        self.at(&Layout::page(url_key))
    }

    /// A content-named asset (`site-{hash}.css`), immutable.
    pub fn asset(&self, file: &str) -> String {
        self.at(&format!("assets/{file}"))
    }

    /// The page nginx and `cairn serve` answer an unknown path with.
    pub fn not_found_page(&self) -> String {
        self.at("404.html")
    }

    /// A site page by its URL's key: the page at `/p/{name}` is stored as
    /// `p/{name}/index.html` (SPEC section 11), `/` as `index.html`.
    pub fn page(url_key: &str) -> String {
        match url_key.trim_end_matches('/') {
            "" => "index.html".to_string(),
            dir => format!("{dir}/index.html"),
        }
    }
}

/// The URL of a key.
pub fn url(key: &str) -> String {
    format!("/{key}")
}

/// The URLs a shared cache may hold a changed key under (a CDN purge):
/// the key's own and, for a page, its directory's (`/p/abc`, `/`).
pub fn purge_urls(key: &str) -> Vec<String> {
    match key == "index.html" || key.ends_with("/index.html") {
        true => vec![url(key), page_url(key)],
        false => vec![url(key)],
    }
}

/// The URL of a page's key: its directory (`p/abc/index.html` → `/p/abc`).
pub fn page_url(key: &str) -> String {
    let dir = key.strip_suffix("index.html").unwrap_or(key).trim_end_matches('/');
    format!("/{dir}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tiles_follow_the_tlog_tiles_paths() {
        let l = Layout::public();
        assert_eq!(l.log_tile(0, 1_234_067, 256), "log/tile/0/x001/x234/067");
        assert_eq!(l.log_tile(1, 0, 17), "log/tile/1/000.p/17");
        assert_eq!(l.log_entries(1000, 256), "log/tile/entries/x001/000");
        assert_eq!(Layout::org("acme").log_checkpoint(), "orgs/acme/log/checkpoint");
        assert_eq!(Layout::org("Acme").url_base(), "/orgs/acme");
        assert_eq!(Layout::public().url_base(), "");
    }

    #[test]
    fn cache_control_follows_the_spec_table() {
        let cc = |p: &str| cache_control(p, Edge::Expiring);
        let immutable = "public, max-age=31536000, immutable";
        assert_eq!(cc("/blobs/sha256/ab"), immutable);
        assert_eq!(cc("/index/3/a/abc"), "public, max-age=60");
        assert_eq!(cc("/api/v1/health.json"), "public, max-age=10");
        assert_eq!(cc("/minisign.pub"), "public, max-age=300");
        assert_eq!(cc("/api/v1/search/manifest.json"), "public, max-age=5");
        assert_eq!(cc("/api/v1/search/delta.json"), "public, max-age=5");
        assert_eq!(cc("/api/v1/search/0123456789abcdef-3.json"), immutable);
        assert_eq!(cc("/api/v1/packages/stats.json"), "public, max-age=60");
        assert_eq!(cc("/api/v1/packages/all/stats.json"), "public, max-age=300");
        assert_eq!(cc("/api/v1/packages/all/advisories.json"), "public, max-age=300");
        assert_eq!(cc("/api/v1/advisories/all.json"), "public, max-age=300");
        assert_eq!(cc("/api/v1/packages/all.json"), "public, max-age=60");
        assert_eq!(cc("/api/v1/kinds/skill/1.json"), "public, max-age=60");
        assert_eq!(cc("/api/v1/keywords/stats/2.json"), "public, max-age=60");
        assert_eq!(cc("/"), "public, max-age=60");
        assert_eq!(cc("/p/abc/index.html"), "public, max-age=60");
        assert_eq!(cc("/orgs/acme/index/config.json"), "private, max-age=60");
    }

    #[test]
    fn with_a_purge_index_files_and_documents_are_kept_at_the_edge() {
        let cc = |p: &str| cache_control(p, Edge::Purged { s_maxage: 86_400 });
        let edge = "public, max-age=60, s-maxage=86400";
        assert_eq!(cc("/index/3/a/abc"), edge);
        assert_eq!(cc("/index/config.json"), edge);
        assert_eq!(cc("/api/v1/packages/abc.json"), edge);
        assert_eq!(cc("/api/v1/packages/stats.json"), edge, "the document of a package called stats");
        assert_eq!(cc("/api/v1/packages/abc/1.0.0.json"), edge);
        assert_eq!(cc("/api/v1/packages/abc/owners.json"), edge);
        assert_eq!(cc("/api/v1/packages/abc/stats.json"), "public, max-age=300");
        assert_eq!(cc("/api/v1/packages/abc/advisories.json"), "public, max-age=300");
        assert_eq!(cc("/index.git/info/refs"), "public, max-age=60");
        assert_eq!(cc("/api/v1/recent.json"), "public, max-age=60");
        assert_eq!(cc("/p/abc/index.html"), "public, max-age=60");
        assert_eq!(cc("/blobs/sha256/ab"), "public, max-age=31536000, immutable");
        assert_eq!(cc("/orgs/acme/index/config.json"), "private, max-age=60");
    }

    #[test]
    fn a_page_is_purged_under_its_directory_too() {
        assert_eq!(purge_urls("p/abc/index.html"), ["/p/abc/index.html", "/p/abc"]);
        assert_eq!(purge_urls("index.html"), ["/index.html", "/"]);
        assert_eq!(purge_urls("index/ab/c/abc"), ["/index/ab/c/abc"]);
    }

    #[test]
    fn fixed_files_and_package_files_never_share_a_path() {
        let l = Layout::public();
        let names = [
            "all",
            "manifest",
            "delta",
            "stats",
            "recent",
            "health",
            "listings",
            "users",
            "advisories",
            "deprecations",
        ];
        let fixed = [
            l.stats(),
            l.recent(),
            l.health(),
            l.advisories_all(),
            l.advisories_index(),
            l.deprecations(),
            l.search_manifest(),
            l.search_delta(),
            Layout::listing_page(&l.listing_dir("name"), 1),
            l.user("all"),
        ];
        for name in names {
            let own = [
                l.package_doc(name),
                l.version_doc(name, "1.0.0"),
                l.readme(name, "1.0.0"),
                l.owners(name),
                l.package_stats(name),
                l.package_advisories(name),
                l.package_index(name),
            ];
            for key in &own {
                assert!(!fixed.contains(key), "{name}: {key}");
            }
        }
    }

    #[test]
    fn pages_are_index_files_of_their_url() {
        assert_eq!(Layout::page(""), "index.html");
        assert_eq!(Layout::page("p/all"), "p/all/index.html");
        assert_eq!(Layout::page("p/all/1.0.0/"), "p/all/1.0.0/index.html");
        assert_eq!(
            Layout::page(&Layout::public().home_page().replace("index.html", "")),
            Layout::public().home_page()
        );
    }

    #[test]
    fn an_organisation_has_the_same_layout_below_its_prefix() {
        let (p, o) = (Layout::public(), Layout::org("Acme"));
        for (a, b) in [
            (p.package_doc("x"), o.package_doc("x")),
            (p.blob("ab"), o.blob("ab")),
            (p.index_file("config.json"), o.index_file("config.json")),
            (p.search_delta(), o.search_delta()),
        ] {
            assert_eq!(b, format!("orgs/acme/{a}"));
        }
    }
}
