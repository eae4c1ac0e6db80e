//! The frame every page shares: head, header with the search box, footer.
//! Pages are complete documents with no inline script or style (the pages'
//! Content-Security-Policy allows neither).

use maud::{html, Markup, DOCTYPE};

use super::assets::asset_url;
use crate::layout::Layout;

/// A page's title (before " · cairn"), the scripts it loads beyond
/// search (`app` for the account pages) and its main content.
pub fn page(l: &Layout, title: &str, scripts: &[&str], main: Markup) -> Vec<u8> {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cairn" }
                link rel="stylesheet" href=(asset_url(l, "site"));
                script defer src=(asset_url(l, "search")) {}
                @for s in scripts {
                    script defer src=(asset_url(l, s)) {}
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.site {
                    nav aria-label="Site" {
                        a.brand href="/" { "cairn" }
                        form #search-form role="search" action="/search" method="get" {
                            label.visually-hidden for="q" { "Search packages" }
                            input #q name="q" type="search" autocomplete="off" placeholder="Search packages";
                        }
                        ul {
                            li { a href="/stats" { "Stats" } }
                            li { a href="/advisories" { "Advisories" } }
                            li { a href="/status" { "Status" } }
                            li { a href="/dashboard" { "Dashboard" } }
                        }
                    }
                }
                main #main { (main) }
                footer.site {
                    p {
                        "Every tarball is signed ("
                        a href="/minisign.pub" { "public key" }
                        ") and every version is in the "
                        a href="/log/checkpoint" { "transparency log" }
                        ". Read the index at "
                        a href="/index/config.json" { code { "/index/" } }
                        "."
                    }
                }
            }
        }
    };
    let mut bytes = doc.into_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// A number with thin groups of three (`12 345`).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// The date part of an RFC 3339 time.
pub fn day(t: &str) -> &str {
    t.get(..10).unwrap_or(t)
}

/// A byte size for people.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// The API base of the page's registry, for its scripts (`data-api`): a
/// private organisation's is below its prefix.
pub fn api_base(l: &Layout) -> String {
    match l.org_slug() {
        Some(org) => format!("/orgs/{org}/api/v1/"),
        None => "/api/v1/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1234), "1\u{202f}234");
        assert_eq!(count(1234567), "1\u{202f}234\u{202f}567");
        assert_eq!(size(4096), "4.0 KiB");
    }
}
