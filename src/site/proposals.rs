//! A package's proposal pages (SPEC section 19): `/p/{name}/proposals`,
//! its open proposals, the closed ones, and the form to propose a change
//! to a file of the newest version; `/p/{name}/proposals/{id}`, one
//! proposal with its diff. Proposals are database rows that change
//! without an index commit, so these pages are written again by the
//! handler of each change (`server/proposal_pages.rs`), not by the
//! package's derivation. Reading needs no script; sending the form does,
//! as every write of the site (the session's CSRF value).

use maud::{html, Markup};

use super::frame::{api_base, day, page};
use crate::db::proposals::Proposal;
use crate::derive::Doc;
use crate::layout::{page_url, Layout};

/// The newest version's file the form starts from.
pub struct Draft<'a> {
    pub version: &'a str,
    /// Its text files, by path (offered in the form's path list).
    pub paths: Vec<&'a str>,
    pub path: &'a str,
    pub content: &'a str,
}

/// `/p/{name}/proposals`.
pub fn list(l: &Layout, name: &str, proposals: &[Proposal], draft: Option<&Draft>) -> Doc {
    let (open, closed): (Vec<&Proposal>, Vec<&Proposal>) = proposals.iter().partition(|p| p.status == "open");
    let main = html! {
        h1 { "Proposals for " a href=(page_url(&l.package_page(name))) { (name) } }
        section aria-labelledby="open-h" {
            h2 #open-h { "Open (" (open.len()) ")" }
            @if open.is_empty() { p { "No open proposals." } }
            ul.proposals #open-proposals {
                @for p in &open { li { (row(l, name, p)) } }
            }
        }
        @if !closed.is_empty() {
            section aria-labelledby="closed-h" {
                h2 #closed-h { "Closed" }
                ul.proposals {
                    @for p in &closed {
                        li { (row(l, name, p)) " · " (p.status)
                            @if let Some(v) = &p.merged_version { " in " a href=(page_url(&l.version_page(name, v))) { (v) } } }
                    }
                }
            }
        }
        // The dashboard's compose view speaks to the public registry's API.
        @if l.org_slug().is_none() {
            p { "Owners compose open proposals into a new version on the "
                a href={ "/dashboard?compose=" (name.to_ascii_lowercase()) } { "dashboard" } "." }
        }
        @if let Some(d) = draft { (form(l, name, d)) }
    };
    Doc { key: l.proposals_page(name), bytes: page(l, &format!("Proposals for {name}"), &["app"], main) }
}

fn row(l: &Layout, name: &str, p: &Proposal) -> Markup {
    html! {
        a href=(page_url(&l.proposal_page(name, p.id))) { "#" (p.id) " " (p.title) }
        " · " code { (p.path) } " on " (p.base_version) " by " (p.author) ", " (day(&p.created_at))
    }
}

fn form(l: &Layout, name: &str, d: &Draft) -> Markup {
    html! {
        section aria-labelledby="propose-h" {
            h2 #propose-h { "Propose a change" }
            noscript { p.notice { "Sending a proposal needs JavaScript and a signed-in account; reading works without." } }
            p #propose-signed-out hidden { "Sign in to propose a change: " a href={ "/login?next=" (page_url(&l.proposals_page(name))) } { "sign in" } "." }
            form.stack #propose-form data-package=(name) data-api=(api_base(l)) {
                label for="propose-title" { "Title" }
                input #propose-title name="title" required maxlength="200";
                label for="propose-intent" { "Why (what the change is for)" }
                textarea #propose-intent name="intent" rows="3" {}
                label for="propose-base" { "Version it changes" }
                input #propose-base name="baseVersion" value=(d.version) required;
                label for="propose-path" { "File" }
                input #propose-path name="path" value=(d.path) list="propose-paths" required;
                datalist #propose-paths { @for p in &d.paths { option value=(p) {} } }
                label for="propose-content" { "The file as you propose it" }
                textarea #propose-content name="content" rows="16" { (d.content) }
                button.primary type="submit" { "Send proposal" }
                p.error #propose-error role="alert" {}
            }
            p #propose-done role="status" {}
        }
    }
}

/// `/p/{name}/proposals/{id}`: the proposal and its unified diff against
/// its base version's file.
pub fn one(l: &Layout, name: &str, p: &Proposal, diff: &str) -> Doc {
    let main = html! {
        p { a href=(page_url(&l.proposals_page(name))) { "Proposals for " (name) } }
        h1 { "#" (p.id) " " (p.title) }
        dl.facts {
            dt { "Status" } dd #proposal-status { (p.status)
                @if let Some(v) = &p.merged_version { " in " a href=(page_url(&l.version_page(name, v))) { (v) } } }
            dt { "File" } dd { code { (p.path) } }
            dt { "Against" } dd { a href=(page_url(&l.version_page(name, &p.base_version))) { (p.base_version) } }
            dt { "By" } dd { a href=(page_url(&l.user_page(&p.author))) { (p.author) } ", " (day(&p.created_at)) }
        }
        @if p.status == "open" {
            div.actions #proposal-actions hidden data-package=(name) data-api=(api_base(l)) data-id=(p.id) data-author=(p.author) {
                button #proposal-withdraw type="button" hidden { "Withdraw (its author)" } " "
                button #proposal-reject type="button" { "Reject (an owner)" }
                p.error #proposal-error role="alert" {}
            }
        }
        @if !p.intent.is_empty() { section aria-labelledby="intent-h" { h2 #intent-h { "Why" } p.intent { (p.intent) } } }
        section aria-labelledby="diff-h" {
            h2 #diff-h { "Diff" }
            @if diff.is_empty() { p { "The proposal changes nothing." } }
            @else {
                pre.diff #diff {
                    @for line in diff.lines() {
                        @let class = match line.as_bytes().first() {
                            Some(b'+') if !line.starts_with("+++") => "add",
                            Some(b'-') if !line.starts_with("---") => "del",
                            Some(b'@') => "hunk",
                            _ => "ctx",
                        };
                        span class=(class) { (line) } "\n"
                    }
                }
            }
        }
    };
    Doc {
        key: l.proposal_page(name, p.id),
        bytes: page(l, &format!("#{} {} · {name}", p.id, p.title), &["app"], main),
    }
}
