//! A static-root key as a typed value: the checked path below the static
//! root, with the registry it belongs to read once, when the key is made.
//! Whatever depends on that registry (the private gate, CORS, an
//! upstream's misses) asks the value, never the string again.

use super::{Layout, Missable};

/// A key of the static root (relative, `/`-separated, no `.`-segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    path: String,
    /// The private organisation whose registry the key is in; `None`: the public registry's.
    org: Option<String>,
}

impl Key {
    /// The key of already decoded URL segments (empty ones skipped), or
    /// `None` for a segment that would leave its directory or name a
    /// dotfile (temporary files of atomic writes start with a dot).
    pub fn from_segments<S: AsRef<str>>(segments: impl IntoIterator<Item = S>) -> Option<Key> {
        let mut path = String::new();
        for seg in segments {
            let seg = seg.as_ref();
            if seg.is_empty() {
                continue;
            }
            if seg.starts_with('.') || seg.contains(['/', '\\', '\0']) {
                return None;
            }
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(seg);
        }
        Some(Key::new(path))
    }

    /// A key a [`Layout`] built, or the URL of one (an npm tarball's
    /// alias of a blob is the blob; an invitation's link, its page).
    pub fn new(path: String) -> Key {
        let path = npm_blob_alias(&path).or_else(|| invitation_page(&path)).unwrap_or(path);
        let org = split_org(&path).map(|(slug, _)| slug.to_string());
        Key { path, org }
    }

    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The private organisation whose registry holds the key.
    pub fn org(&self) -> Option<&str> {
        self.org.as_deref()
    }

    /// Whether anyone may read it (no organisation's gate before it).
    pub fn is_public(&self) -> bool {
        self.org.is_none()
    }

    /// The layout of the registry the key is in.
    pub fn layout(&self) -> Layout {
        self.org().map_or_else(Layout::public, Layout::org)
    }

    /// What an upstream could fill of this key, if anything (SPEC section 16).
    pub fn missable(&self) -> Option<Missable> {
        self.layout().missable(&self.path)
    }

    /// The key of the page that stands for this key as a directory
    /// (`p/abc` → `p/abc/index.html`).
    pub fn page(&self) -> Key {
        Key { path: Layout::page(&self.path), org: self.org.clone() }
    }

    /// Its URL path.
    pub fn url(&self) -> String {
        super::url(&self.path)
    }
}

/// A key of a private organisation's registry (`orgs/{org}/{rest}`): the
/// organisation and `rest`. The one reading of that prefix, for keys and
/// URL paths (without their leading `/`) alike.
pub fn split_org(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("orgs/")?;
    let (slug, below) = rest.split_once('/').unwrap_or((rest, ""));
    (!slug.is_empty()).then_some((slug, below))
}

/// Where invitations' links point: the site's page `invitations`.
pub(super) const INVITATIONS: &str = "invitations";

/// The page an invitation's link stands for (`invitations/{token}` →
/// `invitations/index.html`).
fn invitation_page(key: &str) -> Option<String> {
    let token = key.strip_prefix(INVITATIONS)?.strip_prefix('/')?;
    (!token.is_empty() && !token.contains('/')).then(|| Layout::page(INVITATIONS))
}

/// Below a private registry's npm door, its blobs (see [`Layout::npm_tarball`]).
pub(super) const NPM_BLOBS: &str = "-/blobs/sha256/";

/// The blob key a private registry's npm tarball URL stands for.
fn npm_blob_alias(key: &str) -> Option<String> {
    let (slug, below) = split_org(key)?;
    let hex = below.strip_prefix("npm/")?.strip_prefix(NPM_BLOBS)?;
    Some(Layout::org(slug).blob(hex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_knows_its_registry() {
        assert_eq!(split_org("orgs/acme/index/config.json"), Some(("acme", "index/config.json")));
        assert_eq!(split_org("orgs/acme"), Some(("acme", "")));
        assert_eq!(split_org("orgs//x"), None);
        assert_eq!(split_org("index/config.json"), None);
        let k = Key::from_segments("//orgs/acme//index/3/a/abc".split('/')).unwrap();
        assert_eq!((k.as_str(), k.org(), k.is_public()), ("orgs/acme/index/3/a/abc", Some("acme"), false));
        assert_eq!(k.missable(), Some(Missable::IndexFile("abc".into())));
        assert_eq!(k.page().as_str(), "orgs/acme/index/3/a/abc/index.html");
        assert!(Key::new("orgs".into()).is_public());
        assert_eq!(Key::from_segments(["index", "..", "x"]), None);
        assert_eq!(Key::from_segments(["a/b"]), None);
        assert_eq!(Key::from_segments(Vec::<String>::new()).unwrap().as_str(), "");
        let tarball = Layout::org("acme").npm_tarball("ab");
        assert_eq!(tarball, "/orgs/acme/npm/-/blobs/sha256/ab");
        let k = Key::from_segments(tarball.split('/')).unwrap();
        assert_eq!((k.as_str(), k.org()), ("orgs/acme/blobs/sha256/ab", Some("acme")));
    }

    #[test]
    fn an_invitation_link_is_the_invitation_page() {
        let link = Layout::invitation_url("tok_en-1");
        let k = Key::from_segments(link.split('/')).unwrap();
        assert_eq!(k.as_str(), Layout::public().site_page("invitations"));
        assert_eq!(Key::new("invitations/a/b".into()).as_str(), "invitations/a/b");
        assert_eq!(Key::new("invitations".into()).as_str(), "invitations");
    }
}
