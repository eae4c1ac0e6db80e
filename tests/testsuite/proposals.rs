//! Proposals (SPEC section 19) against a real `cairn serve`: proposing,
//! the diff, composing two proposals, a conflict shown and the publish
//! refused, rejecting and withdrawing, the publish of the candidate (the
//! new version's tarball holding the merged file, its signature
//! verifying), the pages that read without a script, the refusals (each
//! with the JSON error body, writing nothing), the export and the audit
//! rows, and a private organisation's registry.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};
use support::{api, ok, status, Server};

const BASE: &str = "# Skill\n\nintro\n\n## Usage\n\nrun it\n";

fn skill(name: &str, version: &str) -> Vec<u8> {
    TarballBuilder::new(name, version)
        .file("SKILL.md", BASE.as_bytes())
        .file("bin/run", b"#!/bin/sh\n")
        .gzip()
}

fn propose(server: &Server, token: &str, pkg: &str, title: &str, content: &str) -> Response {
    let body = json!({ "title": title, "intent": "clearer", "baseVersion": "1.0.0", "content": content });
    api(server, Method::POST, &format!("/packages/{pkg}/proposals"), token, Some(body))
}

fn open_ids(server: &Server, token: &str, pkg: &str) -> Vec<i64> {
    let doc = ok(api(server, Method::GET, &format!("/packages/{pkg}/proposals?status=open"), token, None));
    doc["proposals"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect()
}

/// The list page's form starts from the newest version's SKILL.md,
/// written by the publish's write group from the upload (there at the
/// 201); an older version published later leaves it alone.
#[test]
fn the_proposals_page_follows_the_newest_version_from_the_publish_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let owner = server.add_user("owner");
    let publish = |version: &str, text: &str| {
        let bytes = TarballBuilder::new("tune", version).file("SKILL.md", text.as_bytes()).gzip();
        assert_eq!(status(server.put("tune", version, &owner, bytes, "application/gzip")), 201);
        std::fs::read_to_string(server.static_root().join("p/tune/proposals/index.html")).unwrap()
    };
    let page = publish("1.0.0", "first words");
    assert!(page.contains("first words") && page.contains(r#"value="1.0.0""#), "{page}");
    let page = publish("1.1.0", "second words");
    assert!(page.contains("second words") && page.contains(r#"value="1.1.0""#), "{page}");
    assert!(!page.contains("first words"), "{page}");
    let page = publish("0.9.0", "older words");
    assert!(page.contains("second words") && !page.contains("older words"), "{page}");
}

#[test]
fn propose_compose_conflict_and_publish_a_merged_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let owner = server.add_user("owner");
    let (ann, bob, cy) = (server.add_user("ann"), server.add_user("bob"), server.add_user("cy"));
    assert_eq!(
        status(server.put("skill", "1.0.0", &owner, skill("skill", "1.0.0"), "application/gzip")),
        201
    );

    // Refusals write nothing: no token, a bad body, a missing version, a
    // path out of the package, a file too large, an unknown package.
    let anonymous = support::client()
        .post(format!("{}/api/v1/packages/skill/proposals", server.url))
        .json(&json!({ "title": "t", "baseVersion": "1.0.0", "content": "x" }))
        .send()
        .unwrap();
    assert_eq!(status(anonymous), 401);
    let bad = |body: Value| status(api(&server, Method::POST, "/packages/skill/proposals", &ann, Some(body)));
    assert_eq!(bad(json!({ "title": "", "baseVersion": "1.0.0", "content": "x" })), 400);
    assert_eq!(bad(json!({ "title": "t", "baseVersion": "1.0.0" })), 400);
    assert_eq!(bad(json!({ "title": "t", "baseVersion": "9.9.9", "content": "x" })), 404);
    assert_eq!(bad(json!({ "title": "t", "baseVersion": "1.0.0", "path": "../x", "content": "x" })), 400);
    let huge = "x".repeat(256 * 1024 + 1);
    assert_eq!(bad(json!({ "title": "t", "baseVersion": "1.0.0", "content": huge })), 413);
    assert_eq!(status(propose(&server, &ann, "nothing-here", "t", "x")), 404);
    assert!(open_ids(&server, &ann, "skill").is_empty());

    // Two proposals on separate lines, one on the same line as the first.
    let a = ok(propose(&server, &ann, "skill", "Better intro", &BASE.replace("intro", "a better intro")));
    assert_eq!(a["status"], "open");
    let body = json!({ "title": "Twice", "baseVersion": "1.0.0", "skillMdContent": BASE.replace("run it", "run it twice") });
    let b = ok(api(&server, Method::POST, "/packages/skill/proposals", &bob, Some(body)));
    let c = ok(propose(&server, &cy, "skill", "Other intro", &BASE.replace("intro", "another intro")));
    let (a, b, c) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap(), c["id"].as_i64().unwrap());
    assert_eq!(open_ids(&server, &bob, "skill"), [c, b, a], "newest first");

    let shown = ok(api(&server, Method::GET, &format!("/packages/skill/proposals/{a}"), &bob, None));
    let diff = shown["diff"].as_str().unwrap();
    assert!(
        diff.starts_with("--- a/SKILL.md\n+++ b/SKILL.md\n") && diff.contains("\n-intro\n+a better intro\n"),
        "{diff}"
    );
    assert_eq!((shown["author"].as_str(), shown["path"].as_str()), (Some("ann"), Some("SKILL.md")));

    // The candidate is the owner's: made empty on the newest version at first fetch.
    assert_eq!(status(api(&server, Method::GET, "/packages/skill/candidate", &ann, None)), 403);
    let fresh = ok(api(&server, Method::GET, "/packages/skill/candidate", &owner, None));
    assert_eq!(fresh, json!({ "baseVersion": "1.0.0", "proposalIds": [], "files": {}, "conflicts": [] }));
    let compose = |ids: &[i64]| {
        api(&server, Method::PUT, "/packages/skill/candidate", &owner, Some(json!({ "proposalIds": ids })))
    };
    assert_eq!(
        status(api(
            &server,
            Method::PUT,
            "/packages/skill/candidate",
            &ann,
            Some(json!({ "proposalIds": [a] }))
        )),
        403
    );
    let two = ok(compose(&[a, b]));
    let merged = "# Skill\n\na better intro\n\n## Usage\n\nrun it twice\n";
    assert_eq!(two["files"]["SKILL.md"], merged);
    assert_eq!(two["conflicts"], json!([]));

    // The third conflicts with the first: listed with its hunk, never guessed.
    let three = ok(compose(&[a, b, c]));
    assert_eq!(three["files"]["SKILL.md"], merged, "the conflicting proposal changes nothing");
    let conflicts = three["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{three}");
    assert_eq!(
        (conflicts[0]["proposalId"].as_i64(), conflicts[0]["path"].as_str()),
        (Some(c), Some("SKILL.md"))
    );
    assert_eq!(
        conflicts[0]["hunks"],
        json!([{ "ours": "a better intro\n", "base": "intro\n", "theirs": "another intro\n" }])
    );
    let publish =
        |body: Value| api(&server, Method::POST, "/packages/skill/candidate/publish", &owner, Some(body));
    assert_eq!(status(publish(json!({ "bump": "minor" }))), 409);
    assert_eq!(status(server.get("/api/v1/packages/skill/1.1.0.json")), 404, "nothing published");

    // Closing: the owner rejects, only the author withdraws, a closed one stays closed.
    let patch = |id: i64, token: &str, s: &str| {
        api(
            &server,
            Method::PATCH,
            &format!("/packages/skill/proposals/{id}"),
            token,
            Some(json!({ "status": s })),
        )
    };
    assert_eq!(status(patch(a, &bob, "withdrawn")), 403);
    assert_eq!(status(patch(c, &cy, "rejected")), 403);
    assert_eq!(status(patch(c, &owner, "merged")), 400);
    assert_eq!(ok(patch(c, &owner, "rejected"))["status"], "rejected");
    assert_eq!(status(patch(c, &cy, "withdrawn")), 409);
    assert_eq!(status(compose(&[a, c])), 409, "a rejected proposal is not composed");

    // A proposal withdrawn after the candidate was composed stops its publish.
    let d = ok(propose(&server, &cy, "skill", "Title", &BASE.replace("# Skill", "# The skill")))["id"]
        .as_i64()
        .unwrap();
    assert_eq!(ok(compose(&[a, b, d]))["conflicts"], json!([]));
    assert_eq!(ok(patch(d, &cy, "withdrawn"))["status"], "withdrawn");
    assert_eq!(status(publish(json!({ "bump": "minor" }))), 409);

    ok(compose(&[a, b]));
    assert_eq!(status(publish(json!({ "bump": "sideways" }))), 400);
    let published = ok(publish(json!({ "bump": "minor", "changelog": "Clearer docs." })));
    assert_eq!((published["name"].as_str(), published["version"].as_str()), (Some("skill"), Some("1.1.0")));
    assert_eq!(published["proposalIds"], json!([a, b]));

    // The new version: the merged file, the bumped manifest, the changelog,
    // the rest of the newest version as it was, and a signature that verifies.
    let sha = published["sha256"].as_str().unwrap();
    let tarball = server.get(&format!("/blobs/sha256/{sha}")).bytes().unwrap();
    let minisig = server.get(&format!("/blobs/sha256/{sha}.minisig")).text().unwrap();
    let attested = cairn::sign::verify(&server.pubkey, &tarball, &minisig).unwrap();
    assert_eq!(
        (attested.name.as_str(), attested.version.as_str(), attested.sha256.as_str()),
        ("skill", "1.1.0", sha)
    );
    let files = cairn::archive::rewrite::read(&tarball, "skill-1.1.0").unwrap();
    assert_eq!(files["SKILL.md"].data, merged.as_bytes());
    assert!(String::from_utf8_lossy(&files["cairn.toml"].data).contains("version = \"1.1.0\""));
    assert!(String::from_utf8_lossy(&files["CHANGELOG.md"].data).starts_with("## 1.1.0\n\nClearer docs.\n"));
    assert_eq!(files["bin/run"].data, b"#!/bin/sh\n", "the other files as they were");
    let line = ok(server.get("/api/v1/packages/skill/1.1.0.json"));
    assert_eq!(line["version"], "1.1.0", "{line}");

    // Its proposals are merged with that version; the candidate starts again.
    let merged_a = ok(api(&server, Method::GET, &format!("/packages/skill/proposals/{a}"), &ann, None));
    assert_eq!(
        (merged_a["status"].as_str(), merged_a["mergedVersion"].as_str()),
        (Some("merged"), Some("1.1.0"))
    );
    assert!(open_ids(&server, &ann, "skill").is_empty());
    let next = ok(api(&server, Method::GET, "/packages/skill/candidate", &owner, None));
    assert_eq!(
        (next["baseVersion"].as_str(), next["proposalIds"].as_array().map(Vec::len)),
        (Some("1.1.0"), Some(0))
    );
    assert_eq!(status(publish(json!({ "bump": "patch" }))), 409, "nothing composed");

    // The pages read without a script.
    let page = server.get("/p/skill/proposals").text().unwrap();
    assert!(
        page.contains("Better intro") && page.contains("Other intro") && page.contains("merged"),
        "{page}"
    );
    let page = server.get(&format!("/p/skill/proposals/{a}")).text().unwrap();
    assert!(page.contains("+a better intro") && page.contains("-intro"), "{page}");

    // A package published before proposals has no such page: the static job writes it.
    let list_page = server.static_root().join("p/skill/proposals/index.html");
    std::fs::remove_file(&list_page).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rebuild", "static", "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(&list_page).expect("the static job wrote the missing page");
    assert!(page.contains("Better intro") && page.contains("propose-form"), "{page}");

    // The author's export holds the proposal; each change has its audit row.
    let export = ok(api(&server, Method::GET, "/me/export", &ann, None));
    assert_eq!(export["proposals"][0]["title"], "Better intro");
    let actions: Vec<&str> =
        export["audit"].as_array().unwrap().iter().filter_map(|r| r["action"].as_str()).collect();
    assert!(actions.contains(&"proposal-create"), "{actions:?}");
    let mine = ok(api(&server, Method::GET, "/me/export", &owner, None));
    let actions: Vec<&str> =
        mine["audit"].as_array().unwrap().iter().filter_map(|r| r["action"].as_str()).collect();
    for want in ["proposal-rejected", "candidate-compose", "proposal-merge"] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
}

/// In a private organisation's registry: its members propose, its admins
/// compose and publish, anyone else is told nothing of it.
#[test]
fn a_private_registry_keeps_its_proposals_to_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let boss = server.add_user("boss");
    let (member, stranger) = (server.add_user("member"), server.add_user("stranger"));
    assert_eq!(
        status(api(
            &server,
            Method::POST,
            "/orgs",
            &boss,
            Some(json!({ "slug": "acme", "visibility": "private" }))
        )),
        201
    );
    let invite = json!({ "login": "member", "role": "member" });
    assert_eq!(status(api(&server, Method::POST, "/orgs/acme/members", &boss, Some(invite))), 201);
    let org_api = |method: Method, path: &str, token: &str, body: Option<Value>| {
        let mut req = support::client()
            .request(method, format!("{}/orgs/acme/api/v1{path}", server.url))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().unwrap()
    };
    let put = support::client()
        .put(format!("{}/orgs/acme/api/v1/packages/tool/1.0.0", server.url))
        .bearer_auth(&boss)
        .header("Content-Type", "application/gzip")
        .body(skill("tool", "1.0.0"))
        .send()
        .unwrap();
    assert_eq!(status(put), 201);

    let body = json!({ "title": "Twice", "baseVersion": "1.0.0", "content": BASE.replace("run it", "run it twice") });
    assert_eq!(status(org_api(Method::POST, "/packages/tool/proposals", &stranger, Some(body.clone()))), 404);
    let made = ok(org_api(Method::POST, "/packages/tool/proposals", &member, Some(body)));
    let id = made["id"].as_i64().unwrap();
    assert_eq!(status(org_api(Method::GET, "/packages/tool/proposals", &stranger, None)), 404);
    let shown = ok(api(&server, Method::GET, &format!("/orgs/acme/proposals/{id}"), &member, None));
    assert!(shown["diff"].as_str().unwrap().contains("+run it twice"));
    assert_eq!(
        status(api(&server, Method::GET, &format!("/orgs/acme/proposals/{id}"), &stranger, None)),
        404
    );
    assert_eq!(
        status(api(&server, Method::GET, "/packages/tool/proposals", &boss, None)),
        404,
        "not the public registry's"
    );

    assert_eq!(
        status(org_api(Method::GET, "/packages/tool/candidate", &member, None)),
        403,
        "a member is no admin"
    );
    let composed =
        ok(org_api(Method::PUT, "/packages/tool/candidate", &boss, Some(json!({ "proposalIds": [id] }))));
    assert_eq!(composed["conflicts"], json!([]));
    let published = ok(org_api(
        Method::POST,
        "/packages/tool/candidate/publish",
        &boss,
        Some(json!({ "bump": "patch" })),
    ));
    assert_eq!(published["version"], "1.0.1");
    let shown = ok(api(&server, Method::GET, &format!("/orgs/acme/proposals/{id}"), &member, None));
    assert_eq!(shown["mergedVersion"], "1.0.1");
}

/// In chromium (`tools/site-test/proposals.mjs`): proposing on the
/// proposals page, reading a diff with scripts off, composing on the
/// dashboard with a conflict shown and its publish refused, publishing;
/// then the new version's tarball holds the merged file under a signature
/// that verifies.
#[test]
fn the_proposal_flow_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let owner = server.add_user("owner");
    let (ann, bob) = (server.add_user("ann"), server.add_user("bob"));
    assert_eq!(
        status(server.put("skill", "1.0.0", &owner, skill("skill", "1.0.0"), "application/gzip")),
        201
    );
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("site-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = std::process::Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test/proposals.mjs"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test"))
        .env("CAIRN_URL", &server.url)
        .env("PKG", "skill")
        .env("OWNER_TOKEN", &owner)
        .env("ANN_TOKEN", &ann)
        .env("BOB_TOKEN", &bob)
        .env("SCREENSHOT", shots.join("dashboard-compose.png"))
        .output()
        .expect("node runs (tools/test.sh installs it, chromium and tools/site-test's packages)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser's proposal flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("proposals flow ok"), "{stdout}");

    let line = ok(server.get("/api/v1/packages/skill/1.1.0.json"));
    let sha = line["sha256"].as_str().unwrap();
    let tarball = server.get(&format!("/blobs/sha256/{sha}")).bytes().unwrap();
    let minisig = server.get(&format!("/blobs/sha256/{sha}.minisig")).text().unwrap();
    let attested = cairn::sign::verify(&server.pubkey, &tarball, &minisig).unwrap();
    assert_eq!((attested.name.as_str(), attested.version.as_str()), ("skill", "1.1.0"));
    let files = cairn::archive::rewrite::read(&tarball, "skill-1.1.0").unwrap();
    assert_eq!(files["SKILL.md"].data, b"# Skill\n\na better intro\n\n## Usage\n\nrun it twice\n");
    let open = ok(api(&server, Method::GET, "/packages/skill/proposals?status=rejected", &ann, None));
    assert_eq!(open["proposals"][0]["title"], "Other intro", "the conflicting one, rejected on its page");
}

/// A crate (a package with Cargo.toml and no cairn.toml): its candidate's
/// version is set in Cargo.toml, and the new version is a crate cargo reads.
#[test]
fn a_crates_candidate_bumps_its_cargo_toml() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let owner = server.add_user("owner");
    let ann = server.add_user("ann");
    let krate = TarballBuilder::new("gears", "0.3.1")
        .manifest_kind(cairn::archive::ManifestKind::Cargo)
        .file("README.md", b"# gears\n\nTurns.\n")
        .file("src/lib.rs", b"pub fn turn() {}\n")
        .gzip();
    assert_eq!(status(server.put("gears", "0.3.1", &owner, krate, "application/gzip")), 201);
    let body = json!({ "title": "Say more", "baseVersion": "0.3.1", "path": "README.md", "content": "# gears\n\nTurns well.\n" });
    let id = ok(api(&server, Method::POST, "/packages/gears/proposals", &ann, Some(body)))["id"].clone();
    let composed = ok(api(
        &server,
        Method::PUT,
        "/packages/gears/candidate",
        &owner,
        Some(json!({ "proposalIds": [id] })),
    ));
    assert_eq!(composed["files"]["README.md"], "# gears\n\nTurns well.\n");
    let published = ok(api(
        &server,
        Method::POST,
        "/packages/gears/candidate/publish",
        &owner,
        Some(json!({ "bump": "major" })),
    ));
    assert_eq!(published["version"], "1.0.0");
    let sha = published["sha256"].as_str().unwrap();
    let tarball = server.get(&format!("/blobs/sha256/{sha}")).bytes().unwrap();
    let files = cairn::archive::rewrite::read(&tarball, "gears-1.0.0").unwrap();
    let manifest = String::from_utf8_lossy(&files["Cargo.toml"].data).into_owned();
    assert!(manifest.contains("version = \"1.0.0\"") && !files.contains_key("cairn.toml"), "{manifest}");
    assert_eq!(files["src/lib.rs"].data, b"pub fn turn() {}\n");
    // cargo's index line of the new version.
    let index = server.get("/index/ge/ar/gears").text().unwrap();
    assert!(index.lines().any(|l| l.contains("\"vers\":\"1.0.0\"")), "{index}");
}
