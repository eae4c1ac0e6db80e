//! Atom feeds (RFC 4287; SPEC section 19): the registry's latest publishes
//! (`feeds/updates.xml`, with the summaries) and each package's versions
//! (`feeds/packages/{name}.xml`, with its pages). The bytes depend on their
//! entries only (the feed's `updated` is its newest entry's), so a feed is
//! rewritten only when it changes.

use super::Doc;
use crate::layout::{page_url, url, Layout};

/// One entry: a published version.
pub struct Entry<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub published: &'a str,
    pub summary: Option<&'a str>,
}

/// The feed at `key`, titled `title`, for the page `page` (a key), with
/// `entries` newest first, of the registry named `registry`.
pub fn feed(l: &Layout, registry: &str, key: String, title: &str, page: &str, entries: &[Entry]) -> Doc {
    let updated = entries.iter().map(|e| e.published).max().unwrap_or("1970-01-01T00:00:00Z");
    let id = |rest: &str| format!("urn:cairn:{}:{rest}", urn(registry));
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    x.push_str(&format!("  <id>{}</id>\n  <title>{}</title>\n", esc(&id(&key)), esc(title)));
    x.push_str(&format!("  <updated>{}</updated>\n", esc(updated)));
    x.push_str(&format!(
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n",
        esc(&url(&key))
    ));
    x.push_str(&format!(
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
        esc(&page_url(page))
    ));
    x.push_str(&format!("  <author><name>{}</name></author>\n", esc(registry)));
    for e in entries {
        let link = page_url(&l.version_page(e.name, e.version));
        x.push_str("  <entry>\n");
        x.push_str(&format!("    <id>{}</id>\n", esc(&id(&format!("{}@{}", e.name, e.version)))));
        x.push_str(&format!("    <title>{} {}</title>\n", esc(e.name), esc(e.version)));
        x.push_str(&format!("    <updated>{}</updated>\n", esc(e.published)));
        x.push_str(&format!("    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n", esc(&link)));
        if let Some(summary) = e.summary.filter(|s| !s.is_empty()) {
            x.push_str(&format!("    <summary>{}</summary>\n", esc(summary)));
        }
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    Doc { key, bytes: x.into_bytes() }
}

/// A registry's name in a URN: what RFC 8141 allows as it is, the rest
/// percent-encoded.
fn urn(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// XML's five escapes; characters XML 1.0 forbids (controls) are dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_escaped_and_the_feed_is_as_new_as_its_newest() {
        let l = Layout::public();
        let entries = [
            Entry {
                name: "a",
                version: "1.0.0",
                published: "2026-01-02T00:00:00Z",
                summary: Some("x < y & \"z\"\u{1}"),
            },
            Entry { name: "a", version: "0.9.0", published: "2026-01-01T00:00:00Z", summary: None },
        ];
        let doc = feed(&l, "my reg", "feeds/packages/a.xml".into(), "a", &l.package_page("a"), &entries);
        let text = String::from_utf8(doc.bytes).unwrap();
        assert!(text.contains("<updated>2026-01-02T00:00:00Z</updated>\n  <link rel=\"self\""), "{text}");
        assert!(text.contains("<summary>x &lt; y &amp; &quot;z&quot;</summary>"), "{text}");
        assert!(text.contains("<id>urn:cairn:my%20reg:a@0.9.0</id>"), "{text}");
        assert!(text.contains("href=\"/p/a/0.9.0\""), "{text}");
        assert_eq!(text.matches("<entry>").count(), 2);
    }
}
