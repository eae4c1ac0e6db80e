//! The site's stylesheet and scripts, embedded in the binary and written
//! under content names (`site-{hash}.css`): a page names the exact bytes
//! it was rendered with, so the files are served immutable and a new
//! release never meets a stale cached script.

use std::sync::LazyLock;

use crate::derive::Doc;
use crate::layout::{url, Layout};

struct Asset {
    stem: &'static str,
    bytes: &'static [u8],
    /// `{stem}-{hash}.{ext}`.
    file: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let embedded: [(&str, &str, &[u8]); 3] = [
        ("site", "css", include_bytes!("../../site/assets/site.css")),
        ("search", "js", include_bytes!("../../site/assets/search.js")),
        ("app", "js", include_bytes!("../../site/assets/app.js")),
    ];
    embedded
        .into_iter()
        .map(|(stem, ext, bytes)| {
            let hash = blake3::hash(bytes).to_hex();
            Asset { stem, bytes, file: format!("{stem}-{}.{ext}", &hash[..12]) }
        })
        .collect()
});

fn asset(stem: &str) -> &'static Asset {
    ASSETS.iter().find(|a| a.stem == stem).expect("an embedded asset")
}

/// The URL of the stylesheet (`site`) or a script (`search`, `app`).
pub fn asset_url(l: &Layout, stem: &str) -> String {
    url(&l.asset(&asset(stem).file))
}

/// Every asset as the static root stores it.
pub fn docs(l: &Layout) -> Vec<Doc> {
    ASSETS.iter().map(|a| Doc { key: l.asset(&a.file), bytes: a.bytes.to_vec() }).collect()
}

/// The total size of the stylesheet and the scripts a page loads.
pub fn weight(stems: &[&str]) -> usize {
    stems.iter().map(|s| asset(s).bytes.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_named_by_their_content() {
        let l = Layout::public();
        for a in ASSETS.iter() {
            assert!(a.file.starts_with(&format!("{}-", a.stem)) && !a.file.contains('/'));
            assert_eq!(asset_url(&l, a.stem), format!("/assets/{}", a.file));
        }
        assert_eq!(
            crate::layout::cache_control(&asset_url(&l, "site"), crate::layout::Edge::Expiring),
            "public, max-age=31536000, immutable"
        );
    }
}
