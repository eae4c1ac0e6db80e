//! The registry-wide pages: home, stats, status, advisories, user pages,
//! and the pages scripts make alive (search, sign-in, sign-up, dashboard,
//! device approval), whose HTML says what they need when JavaScript is off.

use maud::{html, Markup};
use serde_json::Value;

use super::chart;
use super::frame::{count, day, page};
use crate::derive::Doc;
use crate::layout::{page_url, Layout};

/// A package row of a list (home, user pages).
pub struct Row<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub description: Option<&'a str>,
    pub note: String,
}

fn rows(l: &Layout, rows: &[Row]) -> Markup {
    html! {
        ul.packages {
            @for r in rows {
                li {
                    a href=(page_url(&l.package_page(r.name))) { (r.name) } " "
                    span.version { (r.version) }
                    @if !r.note.is_empty() { " · " (r.note) }
                    @if let Some(d) = r.description { p { (d) } }
                }
            }
        }
    }
}

/// `/`: the search box (in every page's header, and large here), recent
/// publishes, most downloaded, registry totals.
pub fn home(l: &Layout, recent: &[Row], stats: &Value, packages: u64, versions: u64) -> Doc {
    let top = stats["topAllTime"].as_array().into_iter().flatten().take(10);
    let main = html! {
        h1 { "cairn" }
        p.lede { "Packages signed at publish, checked at install, logged for everyone to audit." }
        ul.totals aria-label="Registry totals" {
            li { strong { (count(packages)) } "packages" }
            li { strong { (count(versions)) } "versions" }
            li { strong { (count(stats["total"].as_u64().unwrap_or(0))) } "downloads" }
        }
        div.grid2 {
            section aria-labelledby="recent-h" {
                h2 #recent-h { "Just published" }
                @if recent.is_empty() { p { "Nothing is published yet." } }
                (rows(l, recent))
            }
            section aria-labelledby="top-h" {
                h2 #top-h { "Most downloaded" }
                ol {
                    @for t in top {
                        @let name = t["name"].as_str().unwrap_or_default();
                        li {
                            a href=(page_url(&l.package_page(name))) { (name) }
                            " · " (count(t["downloads"].as_u64().unwrap_or(0)))
                        }
                    }
                }
                @if stats["topAllTime"].as_array().is_none_or(|t| t.is_empty()) {
                    p { "No downloads counted yet." }
                }
            }
        }
    };
    Doc { key: l.home_page(), bytes: page(l, "A package registry", &[], main) }
}

/// `/status`: `health.json` shown plainly.
pub fn status(l: &Layout, health: &Value) -> Doc {
    let field = |k: &str| match &health[k] {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        v => v.to_string(),
    };
    let main = html! {
        h1 { "Status" }
        p { "As the registry's last write group left it; the live probe is "
            a href="/api/v1/health" { code { "/api/v1/health" } } "." }
        dl {
            @for (label, key) in [("Status", "status"), ("Generated", "generatedAt"), ("Index commit", "indexCommit"),
                ("Packages", "packages"), ("Versions", "versions"), ("Last publish", "lastPublishAt"), ("Version", "version")] {
                dt { (label) } dd { code { (field(key)) } }
            }
        }
        h2 { a href="/api/v1/health.json" { code { "health.json" } } }
        pre { code { (serde_json::to_string_pretty(health).unwrap_or_default()) } }
    };
    Doc { key: l.site_page("status"), bytes: page(l, "Status", &[], main) }
}

/// `/stats`: registry totals, the 90-day chart and the top lists.
pub fn stats(l: &Layout, stats: &Value) -> Doc {
    let list = |key: &str| -> Markup {
        html! {
            ol {
                @for t in stats[key].as_array().into_iter().flatten().take(25) {
                    @let name = t["name"].as_str().unwrap_or_default();
                    li { a href=(page_url(&l.package_page(name))) { (name) } " · " (count(t["downloads"].as_u64().unwrap_or(0))) }
                }
            }
        }
    };
    let n = |k: &str| count(stats[k].as_u64().unwrap_or(0));
    if stats.is_null() {
        let main = html! {
            h1 { "Statistics" }
            p { "No data yet: downloads are counted from the web servers' access logs by the stats job, which has not run here." }
        };
        return Doc { key: l.site_page("stats"), bytes: page(l, "Statistics", &[], main) };
    }
    let main = html! {
        h1 { "Statistics" }
        p { "Downloads counted from the web servers' access logs, through "
            (stats["dataThrough"].as_str().unwrap_or("no day yet")) " (UTC)." }
        ul.totals aria-label="Totals" {
            li { strong { (n("total")) } "downloads" }
            li { strong { (n("recent90d")) } "in 90 days" }
            li { strong { (n("last7d")) } "in 7 days" }
            li { strong { (n("packages")) } "packages" }
            li { strong { (n("versions")) } "versions" }
        }
        section aria-labelledby="daily-h" {
            h2 #daily-h { "Downloads, last 90 days" }
            (chart::daily("registry", "Downloads", &chart::series(stats)))
        }
        div.grid2 {
            section aria-labelledby="all-h" { h2 #all-h { "Most downloaded" } (list("topAllTime")) }
            section aria-labelledby="recent-h" { h2 #recent-h { "Most downloaded, 90 days" } (list("topRecent90d")) }
        }
    };
    Doc { key: l.site_page("stats"), bytes: page(l, "Statistics", &[], main) }
}

/// `/advisories`: every advisory, with the packages and versions it affects.
pub fn advisories(l: &Layout, all: &Value) -> Doc {
    let list = all["advisories"].as_array().cloned().unwrap_or_default();
    if all.is_null() {
        let main = html! {
            h1 { "Advisories" }
            p { "No data yet: the advisories job, which matches the advisory database against the index, has not run here." }
        };
        return Doc { key: l.site_page("advisories"), bytes: page(l, "Advisories", &[], main) };
    }
    let main = html! {
        h1 { "Advisories" }
        p { (list.len()) " advisories, in OSV at " a href="/api/v1/advisories/all.json" { code { "all.json" } }
            "; " code { "cairn audit" } " checks a lockfile against them." }
        @for a in &list {
            @let id = a["id"].as_str().unwrap_or_default();
            section.advisory aria-labelledby={ "adv-" (id) } {
                h2 id={ "adv-" (id) } { (id) }
                @if let Some(s) = a["summary"].as_str() { p { (s) } }
                @if let Some(m) = a["modified"].as_str() { p { "Modified " time datetime=(m) { (day(m)) } } }
                ul {
                    @for p in a["affected_packages"].as_array().into_iter().flatten() {
                        @let name = p["name"].as_str().unwrap_or_default();
                        @let versions: Vec<&str> = p["affected_versions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                        li {
                            a href=(page_url(&l.package_page(name))) { (name) } ": "
                            @if versions.is_empty() { "no published version affected" } @else { (versions.join(", ")) }
                        }
                    }
                }
            }
        }
    };
    Doc { key: l.site_page("advisories"), bytes: page(l, "Advisories", &[], main) }
}

/// `/u/{login}`: a user's packages.
pub fn user(l: &Layout, login: &str, since: &str, packages: &[Row]) -> Doc {
    let main = html! {
        h1 { (login) }
        p { "Here since " time datetime=(since) { (day(since)) } ". " (crate::words::count(packages.len(), "package")) "." }
        (rows(l, packages))
    };
    Doc { key: l.user_page(login), bytes: page(l, login, &[], main) }
}

/// `/o/{slug}`: a public organisation's packages.
pub fn org(l: &Layout, slug: &str, name: &str, since: &str, packages: &[Row]) -> Doc {
    let main = html! {
        h1 { (name) }
        p { code { "org:" (slug) } " — an organisation here since " time datetime=(since) { (day(since)) } ". "
            (crate::words::count(packages.len(), "package")) "." }
        (rows(l, packages))
    };
    Doc { key: l.org_page(slug), bytes: page(l, name, &[], main) }
}

/// The pages whose content comes from scripts, and the 404 page.
pub fn fixed(l: &Layout, sign_in: &[String]) -> Vec<Doc> {
    let needs_js = |what: &str| html! { noscript { p.notice { (what) " needs JavaScript; everything else on this site works without it." } } };
    let search = html! {
        h1 { "Search" }
        p #results-status aria-live="polite" { noscript { "Search results need JavaScript; "
            code { "cairn search" } " and " code { "cargo search" } " search the same index." } }
        ol #results aria-live="polite" {}
    };
    let login = html! {
        h1 { "Sign in" }
        p.error #oidc-error role="alert" hidden {}
        @if !sign_in.is_empty() {
            ul.providers {
                @for name in sign_in {
                    li { a.button href={ "/api/v1/auth/oidc/" (name) "/start" } { "Sign in with " (name) } }
                }
            }
            p { "Or with this registry's own account:" }
        }
        (needs_js("Signing in with a password or token"))
        form.stack #login-form {
            label for="login-name" { "Login" }
            input #login-name name="login" autocomplete="username" required;
            label for="login-password" { "Password" }
            input #login-password name="password" type="password" autocomplete="current-password";
            p { "Or sign in with an API token instead of a password (the session then has exactly that token's scopes):" }
            label for="login-token" { "Token" }
            input #login-token name="token" type="password" autocomplete="off" placeholder="cairn_…";
            button.primary type="submit" { "Sign in" }
            p.error #login-error role="alert" {}
        }
        p { "New here? " a href="/signup" { "Create an account" } "." }
    };
    let signup = html! {
        h1 { "Create an account" }
        (needs_js("Signing up"))
        form.stack #signup-form {
            label for="signup-login" { "Login" }
            input #signup-login name="login" autocomplete="username" required pattern="[A-Za-z0-9_-]{1,39}";
            label for="signup-email" { "Email" }
            input #signup-email name="email" type="email" autocomplete="email" required;
            label for="signup-password" { "Password (at least 12 characters)" }
            input #signup-password name="password" type="password" autocomplete="new-password" minlength="12" required;
            button.primary type="submit" { "Create account" }
            p.error #signup-error role="alert" {}
        }
        p { "Registries may keep sign-up closed; then an administrator creates accounts." }
    };
    let dashboard = html! {
        h1 { "Dashboard" }
        (needs_js("The dashboard"))
        p #dash-signed-out hidden { "You are not signed in. " a href="/login" { "Sign in" } "." }
        div #dash hidden {
            p { "Signed in as " strong #dash-login {} ". " button #logout type="button" { "Sign out" } }
            p #dash-usage {}
            p {
                label { input #notify type="checkbox" disabled; " Mail me when a version of a package I own is published, yanked or unyanked, or when its owners change" }
                " " span #notify-result role="status" {}
            }
            section aria-labelledby="tokens-h" {
                h2 #tokens-h { "API tokens" }
                table #tokens {
                    thead { tr { th scope="col" { "Label" } th scope="col" { "Scopes" } th scope="col" { "Packages" }
                        th scope="col" { "Expires" } th scope="col" { "Last used" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {}
                }
                form.stack #token-form {
                    h3 { "New token" }
                    label for="token-label" { "Label" }
                    input #token-label name="label" required;
                    fieldset {
                        legend { "Scopes" }
                        @for s in crate::db::ALL_SCOPES {
                            label { input type="checkbox" name="scopes" value=(s) checked[*s != "tokens"]; " " (s) } br;
                        }
                    }
                    label for="token-packages" { "Packages (patterns, comma-separated; empty means all)" }
                    input #token-packages name="packages" placeholder="my-crate, my-prefix-*";
                    label for="token-expiry" { "Expires" }
                    select #token-expiry name="expiry" {
                        option value="30" { "in 30 days" } option value="90" selected { "in 90 days" }
                        option value="365" { "in a year" } option value="" { "never" }
                    }
                    button.primary type="submit" { "Create token" }
                    p.error #token-error role="alert" {}
                }
                div #new-token hidden role="status" {
                    p { "Your new token. It is shown once: copy it now." }
                    p.secret #new-token-value {}
                }
            }
            section aria-labelledby="packages-h" {
                h2 #packages-h { "Your packages" }
                p { "As the last rebuild listed them." }
                table #packages {
                    thead { tr { th scope="col" { "Package" } th scope="col" { "Latest" } th scope="col" { "Owners" }
                        th scope="col" { "Trusted publishing" } } }
                    tbody {}
                }
            }
            section aria-labelledby="compose-h" {
                h2 #compose-h { "Compose a release from proposals" }
                p { "As an owner of a package: pick its open proposals, merge them on its newest version (conflicts are shown, never guessed) and publish." }
                form.stack #compose-form {
                    label for="compose-package" { "Package" }
                    input #compose-package name="package" required;
                    button type="submit" { "Load its proposals" }
                }
                p.error #compose-error role="alert" {}
                form.stack #compose-pick hidden {
                    fieldset { legend { "Open proposals" } div #compose-proposals {} }
                    button type="submit" { "Compose" }
                }
                div #compose-result hidden {
                    h3 { "Candidate on " span #compose-base {} }
                    h4 { "Conflicts" }
                    ul #compose-conflicts {}
                    div #compose-files {}
                    form.stack #publish-form hidden {
                        label for="publish-bump" { "Version" }
                        select #publish-bump name="bump" {
                            option value="patch" { "patch" } option value="minor" { "minor" } option value="major" { "major" }
                        }
                        label for="publish-changelog" { "Changelog" }
                        textarea #publish-changelog name="changelog" rows="3" {}
                        button.primary type="submit" { "Publish" }
                    }
                }
                p #publish-done role="status" {}
            }
            section aria-labelledby="device-h" {
                h2 #device-h { "Device sign-in" }
                p { "Approve a " code { "cairn login --device" } " on the " a href="/device" { "device page" } "." }
            }
        }
    };
    let device = html! {
        h1 { "Approve a device" }
        (needs_js("Approving a device"))
        p { code { "cairn login --device" } " printed a code; enter it here to give that terminal a token." }
        p #device-signed-out hidden { "Sign in first: " a href="/login?next=/device" { "sign in" } "." }
        form.stack #device-form {
            label for="device-code" { "Code" }
            input #device-code name="userCode" autocomplete="off" placeholder="ABCD-1234" required;
            div.actions {
                button.primary type="submit" value="approve" { "Approve" } " "
                button #device-deny type="button" { "Deny" }
            }
            p #device-result role="status" {}
        }
    };
    let invitation = html! {
        h1 { "An invitation" }
        (needs_js("Answering an invitation"))
        p.error #invite-error role="alert" {}
        div #invite hidden {
            p #invite-text {}
            p #invite-signed-out hidden { "Sign in with an account of that address first: " a #invite-login href="/login" { "sign in" } "." }
            div.actions #invite-actions hidden {
                button.primary #invite-accept type="button" { "Accept" } " "
                button #invite-decline type="button" { "Decline" }
            }
            p #invite-result role="status" {}
        }
    };
    let not_found = html! {
        h1 { "Not found" }
        p { "There is no page at this address. Try the search box, or go " a href="/" { "home" } "." }
    };
    let app = &["app"];
    vec![
        Doc { key: l.site_page("search"), bytes: page(l, "Search", &[], search) },
        Doc { key: l.site_page("login"), bytes: page(l, "Sign in", app, login) },
        Doc { key: l.site_page("signup"), bytes: page(l, "Create an account", app, signup) },
        Doc { key: l.site_page("dashboard"), bytes: page(l, "Dashboard", app, dashboard) },
        Doc { key: l.site_page("device"), bytes: page(l, "Approve a device", app, device) },
        Doc { key: l.site_page("invitations"), bytes: page(l, "An invitation", app, invitation) },
        Doc { key: l.not_found_page(), bytes: page(l, "Not found", &[], not_found) },
    ]
}
