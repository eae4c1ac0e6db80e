//! READMEs as HTML (SPEC section 11), rendered once when a version's
//! documents are written: CommonMark with GitHub's tables, task lists and
//! strikethrough (pulldown-cmark), then sanitised (ammonia: no script, no
//! style, no event attribute, no `javascript:` or `data:` URL, no ids that
//! could clobber the page's). Relative links and images resolve against
//! the package's repository when it has one.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

/// The README's HTML, safe to put inside a page.
pub fn render(markdown: &str, repository: Option<&str>) -> String {
    let base = repository.and_then(Base::of);
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES;
    let events = Parser::new_ext(markdown, options).map(|event| match (event, &base) {
        (Event::Start(Tag::Link { link_type, dest_url, title, id }), Some(b)) => {
            Event::Start(Tag::Link { link_type, dest_url: b.resolve(dest_url, false), title, id })
        }
        (Event::Start(Tag::Image { link_type, dest_url, title, id }), Some(b)) => {
            Event::Start(Tag::Image { link_type, dest_url: b.resolve(dest_url, true), title, id })
        }
        // A ballot box, not an <input>: a README keeps no form element.
        (Event::TaskListMarker(done), _) => {
            Event::Text(CowStr::from(if done { "\u{2611} " } else { "\u{2610} " }))
        }
        (event, _) => event,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    ammonia::clean(&html)
}

/// Where a repository's files are seen (links) and fetched (images).
struct Base {
    view: String,
    raw: String,
}

impl Base {
    fn of(repository: &str) -> Option<Base> {
        let repo = repository.trim().trim_end_matches('/').trim_end_matches(".git");
        if !(repo.starts_with("https://") || repo.starts_with("http://")) {
            return None;
        }
        let host = repo.split('/').nth(2)?;
        Some(match host {
            "github.com" | "gitlab.com" | "codeberg.org" => {
                Base { view: format!("{repo}/blob/HEAD/"), raw: format!("{repo}/raw/HEAD/") }
            }
            _ => Base { view: format!("{repo}/"), raw: format!("{repo}/") },
        })
    }

    /// A relative URL (no scheme, not an anchor) joined to the base; any
    /// other left as it is (the sanitiser judges its scheme).
    fn resolve<'a>(&self, url: CowStr<'a>, image: bool) -> CowStr<'a> {
        let relative = !url.is_empty()
            && !url.starts_with('#')
            && !url.starts_with("//")
            && !url.split(['/', '?', '#']).next().unwrap_or("").contains(':');
        if !relative {
            return url;
        }
        let path = url.trim_start_matches("./").trim_start_matches('/');
        let base = if image { &self.raw } else { &self.view };
        CowStr::from(format!("{base}{path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn renders_github_flavoured_markdown() {
        let html =
            render("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] done\n- [ ] todo\n\n~~old~~\n", None);
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<table>") && html.contains("<td>1</td>"), "{html}");
        assert!(html.contains("<li>\u{2611} done</li>") && html.contains("<li>\u{2610} todo</li>"), "{html}");
        assert!(html.contains("<del>old</del>"), "{html}");
    }

    #[test]
    fn a_hostile_readme_renders_inert() {
        let hostile = r#"
<script>alert(1)</script>

<img src="x.png" onerror="alert(2)">

[click](javascript:alert(3)) [data](data:text/html,<script>alert(4)</script>) [js](  JaVaScRiPt:alert(6))

<svg><script>alert(5)</script></svg>

<div style="position:fixed;top:0;left:0;width:100%;height:100%">overlay</div>

<style>body { display: none }</style>

<iframe src="https://example.com"></iframe>

<form action="/api/v1/tokens"><input type="text" name="label"><button>go</button></form>

<a id="csrf" name="csrf">clobber</a>
"#;
        let html = render(hostile, None);
        for bad in [
            "<script",
            "alert(1)",
            "onerror",
            "href=\"javascript",
            "href=\"JaVaScRiPt",
            "href=\"data:",
            "<svg",
            "style",
            "<iframe",
            "<form",
            "<input",
            "<button",
            "id=",
            "name=",
        ] {
            assert!(!html.contains(bad), "{bad} survived: {html}");
        }
        assert!(html.contains("overlay"), "text is kept: {html}");
    }

    #[test]
    fn relative_links_and_images_resolve_against_the_repository() {
        let md = "[guide](docs/guide.md) ![logo](./img/logo.png) [top](#usage) [abs](https://example.org/x) [root](/LICENSE)";
        let html = render(md, Some("https://github.com/acme/widget.git"));
        assert!(html.contains(r#"href="https://github.com/acme/widget/blob/HEAD/docs/guide.md""#), "{html}");
        assert!(html.contains(r#"src="https://github.com/acme/widget/raw/HEAD/img/logo.png""#), "{html}");
        assert!(html.contains(r##"href="#usage""##), "{html}");
        assert!(html.contains(r#"href="https://example.org/x""#), "{html}");
        assert!(html.contains(r#"href="https://github.com/acme/widget/blob/HEAD/LICENSE""#), "{html}");
        // Without a repository (or with one that is not a web URL) they stay relative.
        assert!(render(md, None).contains(r#"href="docs/guide.md""#));
        assert!(render(md, Some("git@github.com:acme/widget")).contains(r#"href="docs/guide.md""#));
    }
}
