//! Organisations (SPEC section 15): the role table as a matrix against a
//! real `cairn serve`, the last-owner rule, organisation tokens (their
//! `Published-By`, what they may and may not do), `org:acme` in
//! owners.json, the audit rows, the outbox and the export, and the CLI.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::{json, Value};
use support::user::User;
use support::{api, client, git, ok, status, Server};

const GZ: &str = "application/gzip";

fn publish(server: &Server, token: &str, name: &str, version: &str) -> Response {
    server.put(name, version, token, TarballBuilder::new(name, version).gzip(), GZ)
}

/// An organisation made by `boss`, its members at their roles, and a
/// package only it owns (`boss` left its users' owners).
fn org_with(server: &Server, boss: &str, slug: &str, members: &[(&str, &str)], package: Option<&str>) {
    let made = api(server, Method::POST, "/orgs", boss, Some(json!({ "slug": slug })));
    assert_eq!(status(made), 201);
    for (login, role) in members {
        let body = json!({ "login": login, "role": role });
        assert_eq!(
            status(api(server, Method::POST, &format!("/orgs/{slug}/members"), boss, Some(body))),
            201
        );
    }
    if let Some(pkg) = package {
        assert_eq!(status(publish(server, boss, pkg, "0.1.0")), 201);
        let owners = format!("/packages/{pkg}/owners");
        let add = json!({ "users": [format!("org:{slug}")] });
        assert_eq!(status(api(server, Method::PUT, &owners, boss, Some(add))), 200);
        let me = api(server, Method::GET, "/whoami", boss, None).json::<Value>().unwrap();
        let remove = json!({ "users": [me["login"]] });
        assert_eq!(status(api(server, Method::DELETE, &owners, boss, Some(remove))), 200);
    }
}

/// Every role against every action: (action, [none, member, admin, owner]).
#[test]
fn the_role_table_as_a_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let boss = server.add_user("boss");
    server.add_user("helper");
    let roles = ["none", "member", "admin", "owner"];
    let expected: &[(&str, [u16; 4])] = &[
        ("read the organisation", [403, 200, 200, 200]),
        ("list members", [403, 200, 200, 200]),
        ("list tokens", [403, 403, 200, 200]),
        ("create a token", [403, 403, 201, 201]),
        ("revoke a token", [403, 403, 200, 200]),
        ("publish a version", [403, 403, 201, 201]),
        ("yank", [403, 403, 200, 200]),
        ("add an owner", [403, 403, 200, 200]),
        ("invite a member", [403, 403, 201, 201]),
        ("invite an owner", [403, 403, 403, 201]),
        ("change a role", [403, 403, 200, 200]),
        ("remove a member", [403, 403, 200, 200]),
        ("change the settings", [403, 403, 403, 200]),
        ("delete the organisation", [403, 403, 403, 200]),
    ];
    let mut got = Vec::new();
    for role in roles {
        let (slug, empty, pkg) = (format!("o-{role}"), format!("e-{role}"), format!("pkg-{role}"));
        let me = server.add_user(&format!("u-{role}"));
        let target = format!("t-{role}");
        server.add_user(&target);
        for login in [format!("i-{role}"), format!("j-{role}")] {
            server.add_user(&login);
        }
        let mut members = vec![(target.as_str(), "member")];
        let my_login = format!("u-{role}");
        if role != "none" {
            members.push((my_login.as_str(), role));
        }
        org_with(&server, &boss, &slug, &members, Some(&pkg));
        org_with(&server, &boss, &empty, &members[1..], None);
        let made = api(
            &server,
            Method::POST,
            &format!("/orgs/{slug}/tokens"),
            &boss,
            Some(json!({ "label": "ci", "scopes": ["publish-update"] })),
        );
        let boss_token = ok(made)["id"].as_i64().unwrap();

        let call = |method: Method, path: String, body: Option<Value>| {
            status(api(&server, method, &path, &me, body))
        };
        let row = [
            call(Method::GET, format!("/orgs/{slug}"), None),
            call(Method::GET, format!("/orgs/{slug}/members"), None),
            call(Method::GET, format!("/orgs/{slug}/tokens"), None),
            call(
                Method::POST,
                format!("/orgs/{slug}/tokens"),
                Some(json!({ "label": "x", "scopes": ["read"] })),
            ),
            call(Method::DELETE, format!("/orgs/{slug}/tokens/{boss_token}"), None),
            status(publish(&server, &me, &pkg, "0.2.0")),
            call(Method::DELETE, format!("/packages/{pkg}/0.1.0"), None),
            call(Method::PUT, format!("/packages/{pkg}/owners"), Some(json!({ "users": ["helper"] }))),
            call(
                Method::POST,
                format!("/orgs/{slug}/members"),
                Some(json!({ "login": format!("i-{role}") })),
            ),
            call(
                Method::POST,
                format!("/orgs/{slug}/members"),
                Some(json!({ "login": format!("j-{role}"), "role": "owner" })),
            ),
            call(Method::PATCH, format!("/orgs/{slug}/members/{target}"), Some(json!({ "role": "admin" }))),
            call(Method::DELETE, format!("/orgs/{slug}/members/{target}"), None),
            call(Method::PATCH, format!("/orgs/{slug}"), Some(json!({ "name": "Renamed" }))),
            call(Method::DELETE, format!("/orgs/{empty}"), None),
        ];
        got.push(row);
    }
    for (i, (action, want)) in expected.iter().enumerate() {
        let have: Vec<u16> = got.iter().map(|row| row[i]).collect();
        assert_eq!(have, want.to_vec(), "{action}: none, member, admin, owner");
    }
    // The owner's changes took: the new name, the empty organisation gone.
    let doc = ok(api(&server, Method::GET, "/orgs/o-owner", &boss, None));
    assert_eq!(doc["name"], "Renamed");
    assert_eq!(status(api(&server, Method::GET, "/orgs/e-owner", &boss, None)), 404);
    // An organisation that owns a package is not deleted.
    assert_eq!(status(api(&server, Method::DELETE, "/orgs/o-owner", &boss, None)), 409);
    // A private organisation is not disclosed to outsiders: 404, not 403.
    let outsider = server.add_user("outsider");
    let private = json!({ "slug": "hidden", "visibility": "private" });
    assert_eq!(status(api(&server, Method::POST, "/orgs", &boss, Some(private))), 201);
    assert_eq!(status(api(&server, Method::GET, "/orgs/hidden", &outsider, None)), 404);
    assert_eq!(status(api(&server, Method::GET, "/orgs/hidden/members", &outsider, None)), 404);
    assert_eq!(status(api(&server, Method::GET, "/orgs/nowhere", &outsider, None)), 404);
}

#[test]
fn an_organisation_never_loses_its_last_owner() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let ann = server.add_user("ann");
    let bob = server.add_user("bob");
    org_with(&server, &ann, "acme", &[("bob", "admin")], None);
    let demote =
        || api(&server, Method::PATCH, "/orgs/acme/members/ann", &ann, Some(json!({ "role": "admin" })));
    let leave = || api(&server, Method::DELETE, "/orgs/acme/members/ann", &ann, None);
    assert_eq!(status(demote()), 409);
    assert_eq!(status(leave()), 409);
    // Nor does erasing the account take the last owner away.
    let erase = api(&server, Method::POST, "/me/delete", &ann, Some(json!({ "confirm": "ann" })));
    assert_eq!(status(erase), 409);
    // An admin cannot make an owner, nor demote one.
    let promote = json!({ "role": "owner" });
    assert_eq!(
        status(api(&server, Method::PATCH, "/orgs/acme/members/bob", &bob, Some(promote.clone()))),
        403
    );
    assert_eq!(status(api(&server, Method::DELETE, "/orgs/acme/members/ann", &bob, None)), 403);
    // With a second owner, the first may step down and then leave.
    assert_eq!(status(api(&server, Method::PATCH, "/orgs/acme/members/bob", &ann, Some(promote))), 200);
    assert_eq!(status(demote()), 200);
    assert_eq!(status(leave()), 200);
    let doc = ok(api(&server, Method::GET, "/orgs/acme", &bob, None));
    assert_eq!(
        doc["members"],
        json!([{ "login": "bob", "role": "owner", "addedAt": doc["members"][0]["addedAt"] }])
    );
    // Bad input: an unknown role, an unknown user, a member twice, a bad slug.
    let bad = json!({ "login": "ann", "role": "boss" });
    assert_eq!(status(api(&server, Method::POST, "/orgs/acme/members", &bob, Some(bad))), 400);
    let nobody = json!({ "login": "nobody" });
    assert_eq!(status(api(&server, Method::POST, "/orgs/acme/members", &bob, Some(nobody))), 404);
    let again = json!({ "login": "bob" });
    assert_eq!(status(api(&server, Method::POST, "/orgs/acme/members", &bob, Some(again))), 409);
    for slug in ["Acme", "-acme", "a_b", ""] {
        assert_eq!(
            status(api(&server, Method::POST, "/orgs", &bob, Some(json!({ "slug": slug })))),
            400,
            "{slug}"
        );
    }
    assert_eq!(status(api(&server, Method::POST, "/orgs", &bob, Some(json!({ "slug": "acme" })))), 409);
}

#[test]
fn organisation_tokens_act_for_the_organisation_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let ann = server.add_user("ann");
    let bob = server.add_user("bob");
    org_with(&server, &ann, "acme", &[("bob", "member")], None);
    org_with(&server, &ann, "other", &[], Some("other-kit"));
    let token = |slug: &str, scopes: Value| {
        let body = json!({ "label": "ci", "scopes": scopes });
        ok(api(&server, Method::POST, &format!("/orgs/{slug}/tokens"), &ann, Some(body)))["key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ci = token("acme", json!(["publish-new", "publish-update", "yank", "change-owners"]));
    // A new package published with it is the organisation's.
    assert_eq!(status(publish(&server, &ci, "acme-kit", "1.0.0")), 201);
    let owners = server.get("/api/v1/packages/acme-kit/owners.json").json::<Value>().unwrap();
    assert_eq!(owners, json!({ "owners": [{ "login": "org:acme" }] }));
    let listed = ok(api(&server, Method::GET, "/packages/acme-kit/owners", &bob, None));
    assert_eq!(listed["users"], json!(["org:acme"]));
    let clone = dir.path().join("clone");
    let cloned =
        git(dir.path(), &["clone", "-q", &format!("{}/index.git", server.url), clone.to_str().unwrap()]);
    assert!(cloned.status.success());
    let log = git(&clone, &["log", "--format=%s|%(trailers:key=Published-By,valueonly)", "-n", "1"]);
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "publish acme-kit 1.0.0|org:acme");
    assert_eq!(ok(api(&server, Method::GET, "/whoami", &ci, None))["login"], "org:acme");
    // The package page links the organisation's page, which the static job
    // writes with its packages (a private organisation has none).
    let page = server.get("/p/acme-kit").text().unwrap();
    assert!(page.contains(r#"href="/o/acme""#), "{page}");
    let rebuilt = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rebuild", "static", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    let org_page = server.get("/o/acme");
    assert_eq!(org_page.status(), 200);
    let org_page = org_page.text().unwrap();
    assert!(org_page.contains("org:acme") && org_page.contains("acme-kit"), "{org_page}");
    // Its admins act as owners; a member does not.
    assert_eq!(status(publish(&server, &ann, "acme-kit", "1.1.0")), 201);
    assert_eq!(status(publish(&server, &bob, "acme-kit", "1.2.0")), 403);
    // It never acts for another organisation, nor for the admin who made it.
    assert_eq!(status(publish(&server, &ci, "other-kit", "0.2.0")), 403);
    assert_eq!(status(publish(&server, &ann, "ann-kit", "0.1.0")), 201);
    assert_eq!(status(publish(&server, &ci, "ann-kit", "0.2.0")), 403);
    let body = json!({ "label": "x", "scopes": ["yank"] });
    assert_eq!(status(api(&server, Method::POST, "/tokens", &ci, Some(body.clone()))), 403);
    assert_eq!(status(api(&server, Method::POST, "/orgs/acme/tokens", &ci, Some(body))), 403);
    assert_eq!(status(api(&server, Method::GET, "/me/export", &ci, None)), 403);
    assert_eq!(status(api(&server, Method::GET, "/tokens", &ci, None)), 403);
    let signin = client().post(format!("{}/api/v1/auth/login", server.url)).json(&json!({ "token": ci }));
    assert_eq!(signin.send().unwrap().status(), 401, "an organisation token opens no web session");
    // Scopes hold: a read-only token publishes nothing; `tokens` is no
    // organisation token's scope.
    let read = token("acme", json!(["read"]));
    assert_eq!(status(publish(&server, &read, "acme-kit", "1.3.0")), 403);
    let bad = json!({ "label": "x", "scopes": ["tokens"] });
    assert_eq!(status(api(&server, Method::POST, "/orgs/acme/tokens", &ann, Some(bad))), 400);
    // The admin's own tokens list does not show the organisation's.
    let mine = ok(api(&server, Method::GET, "/tokens", &ann, None));
    assert!(mine["tokens"].as_array().unwrap().iter().all(|t| t["label"] != "ci"), "{mine}");
    // Revoked, it stops at once.
    let listed = ok(api(&server, Method::GET, "/orgs/acme/tokens", &ann, None));
    let id = listed["tokens"][0]["id"].as_i64().unwrap();
    assert_eq!(status(api(&server, Method::DELETE, &format!("/orgs/acme/tokens/{id}"), &ann, None)), 200);
    assert_eq!(status(publish(&server, &ci, "acme-kit", "1.4.0")), 401);
    // An organisation becomes an owner only by its admin's hand.
    let add = json!({ "users": ["org:acme"] });
    assert_eq!(status(api(&server, Method::PUT, "/packages/ann-kit/owners", &ann, Some(add.clone()))), 200);
    assert_eq!(status(publish(&server, &bob, "bob-kit", "0.1.0")), 201);
    assert_eq!(status(api(&server, Method::PUT, "/packages/bob-kit/owners", &bob, Some(add))), 403);
    let nowhere = json!({ "users": ["org:nowhere"] });
    assert_eq!(status(api(&server, Method::PUT, "/packages/bob-kit/owners", &bob, Some(nowhere))), 404);
}

#[test]
fn private_organisations_stay_out_of_the_public_registry() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let ann = server.add_user("ann");
    let made =
        api(&server, Method::POST, "/orgs", &ann, Some(json!({ "slug": "hidden", "visibility": "private" })));
    assert_eq!(ok(made)["visibility"], "private");
    let body = json!({ "label": "ci", "scopes": ["publish-new", "publish-update"] });
    let ci = ok(api(&server, Method::POST, "/orgs/hidden/tokens", &ann, Some(body)))["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(status(publish(&server, &ci, "secret-kit", "1.0.0")), 403);
    assert_eq!(status(publish(&server, &ann, "ann-kit", "1.0.0")), 201);
    let add = json!({ "users": ["org:hidden"] });
    assert_eq!(status(api(&server, Method::PUT, "/packages/ann-kit/owners", &ann, Some(add))), 409);
    let files = server.static_files();
    assert!(!files.iter().any(|f| f.contains("secret-kit")), "{files:?}");
    // A public organisation that owns a package keeps its visibility.
    org_with(&server, &ann, "open", &[], Some("open-kit"));
    let hide = json!({ "visibility": "private" });
    assert_eq!(status(api(&server, Method::PATCH, "/orgs/open", &ann, Some(hide.clone()))), 409);
    assert_eq!(
        status(api(&server, Method::PATCH, "/orgs/hidden", &ann, Some(json!({ "visibility": "public" })))),
        200
    );
    assert_eq!(status(api(&server, Method::PATCH, "/orgs/hidden", &ann, Some(hide))), 200);
}

#[test]
fn membership_changes_are_audited_told_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let ann = server.add_user("ann");
    let bob = server.add_user("bob");
    org_with(&server, &ann, "acme", &[("bob", "member")], None);
    assert_eq!(
        status(api(&server, Method::PATCH, "/orgs/acme/members/bob", &ann, Some(json!({ "role": "admin" })))),
        200
    );
    assert_eq!(
        status(api(&server, Method::PATCH, "/orgs/acme", &ann, Some(json!({ "visibility": "private" })))),
        200
    );
    assert_eq!(status(api(&server, Method::DELETE, "/orgs/acme/members/bob", &bob, None)), 200);
    let conn = cairn::db::open_sqlite(&dir.path().join("state.db")).unwrap();
    let rows: Vec<(String, String)> = conn
        .query(
            "SELECT action, target FROM audit WHERE action LIKE 'org-%' ORDER BY id",
            cairn::params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let rows: Vec<String> = rows.iter().map(|(a, t)| format!("{a} {t}")).collect();
    assert_eq!(
        rows,
        [
            "org-create org:acme public",
            "org-member-add org:acme bob member",
            "org-member-role org:acme bob admin",
            "org-update org:acme private name=acme",
            "org-member-remove org:acme bob",
        ]
    );
    let outbox = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    let told: Vec<Value> = outbox.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["login"], "bob");
    assert!(told[0]["subject"].as_str().unwrap().contains("org:acme"), "{}", told[0]);
    let export = ok(api(&server, Method::GET, "/me/export", &ann, None));
    assert_eq!(export["organisations"][0]["org"], "acme");
    assert_eq!(export["organisations"][0]["role"], "owner");
    assert_eq!(ok(api(&server, Method::GET, "/me/export", &bob, None))["organisations"], json!([]));
}

#[test]
fn the_cli_manages_an_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let ann = server.add_user("ann");
    server.add_user("bob");
    let user = User::new();
    let work = dir.path();
    let reg = ["--registry", server.url.as_str(), "--token", ann.as_str()];
    fn with<'a>(args: &[&'a str], reg: &[&'a str]) -> Vec<&'a str> {
        [args, reg].concat()
    }
    user.ok(work, &with(&["org", "create", "acme", "--name", "Acme Corp"], &reg));
    user.ok(work, &with(&["org", "invite", "acme", "bob", "--role", "admin"], &reg));
    let members = user.ok(work, &with(&["org", "members", "acme"], &reg));
    let lines: Vec<Vec<&str>> = members.lines().map(|l| l.split_whitespace().take(2).collect()).collect();
    assert_eq!(lines, [vec!["ann", "owner"], vec!["bob", "admin"]]);
    user.ok(work, &with(&["org", "role", "acme", "bob", "member"], &reg));
    let info = user.ok(work, &with(&["org", "info", "acme"], &reg));
    assert!(info.starts_with("org:acme Acme Corp (public)"), "{info}");
    assert!(info.contains("bob") && info.contains("member"), "{info}");
    let key = user.ok(
        work,
        &with(&["org", "token", "acme", "create", "--label", "ci", "--scope", "publish-new"], &reg),
    );
    assert!(key.trim().starts_with("cairn_"), "{key}");
    let listed = user.ok(work, &with(&["org", "token", "acme", "list"], &reg));
    assert!(listed.contains("ci") && listed.contains("publish-new"), "{listed}");
    let last = user.fails(work, &with(&["org", "remove", "acme", "ann"], &reg));
    assert!(last.contains("last owner"), "{last}");
    user.ok(work, &with(&["org", "remove", "acme", "bob"], &reg));
    assert!(!user.ok(work, &with(&["org", "members", "acme"], &reg)).contains("bob"));
}

/// Reads under a private organisation's prefix, through `cairn serve` and
/// through nginx asking cairn with `auth_request`: no token 401, a token of
/// another organisation (or without `read`) 404, a member's token or the
/// organisation's token with `read` 200, a revoked token 401. Nothing of it
/// is in the public tree or the public index.
#[test]
fn private_reads_need_a_member_or_a_read_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, nginx) = support::Nginx::in_front(&data);
    let ann = server.add_user("ann");
    let bob = server.add_user("bob");
    let carol = server.add_user("carol");
    let private = |owner: &str, slug: &str| {
        let body = json!({ "slug": slug, "visibility": "private" });
        assert_eq!(status(api(&server, Method::POST, "/orgs", owner, Some(body))), 201);
    };
    private(&ann, "zq-secret");
    private(&carol, "elsewhere");
    let invite = json!({ "login": "bob" });
    assert_eq!(status(api(&server, Method::POST, "/orgs/zq-secret/members", &ann, Some(invite))), 201);
    let org_token = |owner: &str, slug: &str, scopes: Value| {
        let body = json!({ "label": "ci", "scopes": scopes });
        let doc = ok(api(&server, Method::POST, &format!("/orgs/{slug}/tokens"), owner, Some(body)));
        doc["key"].as_str().unwrap().to_string()
    };
    let reader = org_token(&ann, "zq-secret", json!(["read"]));
    let publisher = org_token(&ann, "zq-secret", json!(["publish-update"]));
    let foreign = org_token(&carol, "elsewhere", json!(["read"]));
    let made =
        api(&server, Method::POST, "/tokens", &bob, Some(json!({ "label": "gone", "scopes": ["yank"] })));
    let made = ok(made);
    let revoked = made["key"].as_str().unwrap().to_string();
    let id = made["id"].as_i64().unwrap();
    assert_eq!(status(api(&server, Method::DELETE, &format!("/tokens/{id}"), &bob, None)), 200);

    let path = "/orgs/zq-secret/index/config.json";
    for base in [&server.url, &nginx.url] {
        let get = |auth: Option<&str>| {
            let mut req = client().get(format!("{base}{path}"));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.send().unwrap()
        };
        let bearer = |t: &str| format!("Bearer {t}");
        let none = get(None);
        assert_eq!(none.status(), 401, "{base}: no token");
        for other in ["//orgs/zq-secret/index/config.json", "/orgs/zq%2Dsecret/index/config.json"] {
            let sneaky = client().get(format!("{base}{other}")).send().unwrap();
            assert!([401, 404].contains(&sneaky.status().as_u16()), "{base}{other}: {}", sneaky.status());
        }
        assert!(none.headers().get("www-authenticate").is_some(), "{base}: the challenge");
        assert_eq!(get(Some(&bearer(&revoked))).status(), 401, "{base}: a revoked token");
        assert_eq!(get(Some("Bearer cairn_nope")).status(), 401, "{base}: a malformed token");
        assert_eq!(get(Some(&bearer(&carol))).status(), 404, "{base}: another organisation's member");
        assert_eq!(get(Some(&bearer(&foreign))).status(), 404, "{base}: another organisation's token");
        assert_eq!(
            get(Some(&bearer(&publisher))).status(),
            404,
            "{base}: an organisation token without read"
        );
        for (who, auth) in [
            ("a member", bearer(&bob)),
            ("the read token", bearer(&reader)),
            ("cargo's header", reader.clone()),
        ] {
            let resp = get(Some(&auth));
            assert_eq!(resp.status(), 200, "{base}: {who}");
            assert_eq!(resp.headers()["cache-control"], "private, max-age=60", "{base}: {who}");
            assert!(resp.headers().get("access-control-allow-origin").is_none(), "{base}: not a public read");
            let config: Value = resp.json().unwrap();
            assert_eq!(config["auth-required"], true);
            assert_eq!(
                config["dl"],
                format!("{}/orgs/zq-secret/blobs/sha256/{{sha256-checksum}}", nginx.url)
            );
            assert_eq!(config["api"], format!("{}/orgs/zq-secret", nginx.url));
        }
    }
    // nginx's question to cairn, asked directly.
    let check = |uri: &str, auth: Option<&str>| {
        let mut req = client().get(format!("{}/api/v1/auth/check", server.url)).header("X-Original-URI", uri);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        req.send().unwrap().status().as_u16()
    };
    assert_eq!(check(path, None), 401);
    assert_eq!(check(path, Some(&carol)), 403);
    assert_eq!(check(path, Some(&bob)), 204);
    assert_eq!(check("/index/config.json", None), 204, "public reads need nothing");
    // Nothing of it in the public tree or the public index.
    let public_files: Vec<String> =
        server.static_files().into_iter().filter(|f| !f.starts_with("orgs/")).collect();
    for f in &public_files {
        let bytes = std::fs::read(server.static_root().join(f)).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("zq-secret"), "{f} names the private organisation");
    }
    let clone = dir.path().join("clone");
    let cloned =
        git(dir.path(), &["clone", "-q", &format!("{}/index.git", server.url), clone.to_str().unwrap()]);
    assert!(cloned.status.success());
    let grep = git(&clone, &["log", "--all", "-p"]);
    assert!(!String::from_utf8_lossy(&grep.stdout).contains("zq-secret"));
    // Made public, it has no private registry any more.
    let open = json!({ "visibility": "public" });
    assert_eq!(status(api(&server, Method::PATCH, "/orgs/zq-secret", &ann, Some(open))), 200);
    let gone = client().get(format!("{}{path}", server.url)).bearer_auth(&bob).send().unwrap();
    assert_eq!(gone.status(), 404);
}

/// A private organisation's registry of its own (SPEC section 15): its
/// admins and its token publish and yank under `/orgs/{org}/api/v1/`, a
/// member only reads, others get 404 and no token 401; its name space is
/// its own (a public package of the same name and version is another);
/// `cairn install` installs from it through `cairn serve` and nginx, with
/// its own log proving what it installed; after the batch jobs ran, no
/// public file and no commit of the public index names its packages.
#[test]
fn a_private_organisation_is_a_registry_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, nginx) = support::Nginx::in_front(&data);
    let ann = server.add_user("ann");
    let bob = server.add_user("bob");
    let carol = server.add_user("carol");
    let body = json!({ "slug": "zq-secret", "visibility": "private" });
    let made = ok(api(&server, Method::POST, "/orgs", &ann, Some(body)));
    assert_eq!(made["registry"], format!("{}/orgs/zq-secret", nginx.url), "its registry's URL");
    let invite = json!({ "login": "bob" });
    assert_eq!(status(api(&server, Method::POST, "/orgs/zq-secret/members", &ann, Some(invite))), 201);
    let body = json!({ "label": "ci", "scopes": ["publish-new", "publish-update", "yank", "read"] });
    let ci = ok(api(&server, Method::POST, "/orgs/zq-secret/tokens", &ann, Some(body)))["key"]
        .as_str()
        .unwrap()
        .to_string();
    let put = |token: Option<&str>, name: &str, version: &str| {
        let mut req = client()
            .put(format!("{}/orgs/zq-secret/api/v1/packages/{name}/{version}", server.url))
            .header("Content-Type", GZ)
            .body(TarballBuilder::new(name, version).file("README.md", b"private words").gzip());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().unwrap()
    };
    assert_eq!(status(put(None, "zq-hidden", "1.0.0")), 401);
    assert_eq!(status(put(Some(&carol), "zq-hidden", "1.0.0")), 404, "not a member: not disclosed");
    assert_eq!(status(put(Some(&bob), "zq-hidden", "1.0.0")), 403, "a member reads, an admin publishes");
    let published = ok(put(Some(&ann), "zq-hidden", "1.0.0"));
    assert!(
        published["signature"].as_str().unwrap().starts_with("/orgs/zq-secret/blobs/sha256/"),
        "{published}"
    );
    assert_eq!(status(put(Some(&ci), "zq-hidden", "1.1.0")), 201, "the organisation's token");
    let body = json!({ "label": "publish only", "scopes": ["publish-update"] });
    let writer = ok(api(&server, Method::POST, "/orgs/zq-secret/tokens", &ann, Some(body)))["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(status(put(Some(&writer), "zq-hidden", "1.1.1")), 201, "publishing needs no `read`");
    assert_eq!(status(put(Some(&writer), "zq-new", "1.0.0")), 403, "a new name needs `publish-new`");
    assert_eq!(status(put(Some(&ann), "zq-hidden", "1.1.0")), 409, "a version is published once");
    // Audited, refusals too, naming the organisation's registry.
    let conn = cairn::db::open_sqlite(&data.join("state.db")).unwrap();
    let rows: Vec<(String, String, String)> = conn
        .query(
            "SELECT action, target, outcome FROM audit WHERE target LIKE '%zq-hidden%' ORDER BY id",
            cairn::params![],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let has = |action: &str, target: &str, outcome: &str| {
        rows.iter().any(|(a, t, o)| a == action && t.contains(target) && o.starts_with(outcome))
    };
    assert!(has("publish", "org:zq-secret zq-hidden 1.0.0", "ok"), "{rows:?}");
    assert!(has("request", "PUT /orgs/zq-secret/api/v1/packages/zq-hidden/1.0.0", "refused 404"), "{rows:?}");
    assert!(has("request", "PUT /orgs/zq-secret/api/v1/packages/zq-hidden/1.0.0", "refused 403"), "{rows:?}");
    // Its own name space: the same name and version in the public registry is another package.
    assert_eq!(status(publish(&server, &carol, "shared-name", "1.0.0")), 201);
    assert_eq!(status(put(Some(&ann), "shared-name", "1.0.0")), 201);
    let owners = client()
        .get(format!("{}/orgs/zq-secret/api/v1/packages/zq-hidden/owners", server.url))
        .bearer_auth(&bob)
        .send()
        .unwrap();
    assert_eq!(ok(owners)["users"], json!(["org:zq-secret"]));
    let yank = client()
        .delete(format!("{}/orgs/zq-secret/api/v1/packages/zq-hidden/1.0.0", server.url))
        .bearer_auth(&ci)
        .send()
        .unwrap();
    assert_eq!(ok(yank)["yanked"], true);
    let index = client()
        .get(format!("{}/orgs/zq-secret/index/{}", server.url, cairn::index::package_path("zq-hidden")))
        .bearer_auth(&bob)
        .send()
        .unwrap();
    let lines: Vec<Value> = index.text().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!((lines[0]["yanked"].as_bool(), lines[1]["vers"].as_str()), (Some(true), Some("1.1.0")));
    let listed = client()
        .get(format!("{}/orgs/zq-secret/api/v1/packages/zq-hidden.json", server.url))
        .bearer_auth(&bob)
        .send()
        .unwrap();
    assert_eq!(listed.status(), 200, "its package document, below its prefix");

    // `cairn publish` by an admin, `cairn install` by a member, through cairn serve and nginx.
    let tarball = dir.path().join("zq-hidden-1.2.0.tar.gz");
    std::fs::write(
        &tarball,
        TarballBuilder::new("zq-hidden", "1.2.0").file("README.md", b"private words").gzip(),
    )
    .unwrap();
    let registry = format!("{}/orgs/zq-secret", nginx.url);
    let publisher = User::new();
    let published = publisher
        .ok(dir.path(), &["publish", tarball.to_str().unwrap(), "--registry", &registry, "--token", &ann]);
    assert!(published.contains("1.2.0"), "{published}");
    for base in [&server.url, &nginx.url] {
        let user = User::new();
        let project = tempfile::tempdir().unwrap();
        let registry = format!("{base}/orgs/zq-secret");
        user.ok(project.path(), &["install", "zq-hidden", "--registry", &registry, "--token", &bob]);
        let readme = project.path().join("cairn_packages/zq-hidden/README.md");
        assert_eq!(std::fs::read_to_string(&readme).unwrap(), "private words", "{base}");
        let lock = std::fs::read_to_string(project.path().join("cairn.lock")).unwrap();
        assert!(lock.contains("version = \"1.2.0\""), "{lock}");
        let err = User::new().fails(project.path(), &["install", "zq-hidden", "--registry", &registry]);
        assert!(err.contains("401"), "{base}: {err}");
        // Logged in to it, the token is the saved one.
        user.ok(project.path(), &["login", "--registry", &registry, "--token", &bob]);
        assert_eq!(user.ok(project.path(), &["whoami", "--registry", &registry]).trim(), "bob", "{base}");
    }
    let checkpoint = client()
        .get(format!("{}/orgs/zq-secret/log/checkpoint", server.url))
        .bearer_auth(&bob)
        .send()
        .unwrap();
    let checkpoint = checkpoint.text().unwrap();
    assert!(checkpoint.contains("/orgs/zq-secret\n"), "its own log: {checkpoint}");

    // The batch jobs ran (and rewrote a private document that was lost);
    // nothing public names the private packages.
    let lost = data.join("static/orgs/zq-secret/api/v1/packages/zq-hidden.json");
    let kept = std::fs::read(&lost).unwrap();
    std::fs::remove_file(&lost).unwrap();
    let jobs = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rebuild", "all", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(jobs.status.success(), "{}", String::from_utf8_lossy(&jobs.stderr));
    assert_eq!(std::fs::read(&lost).unwrap(), kept, "the static job rewrote the private document");
    let root = server.static_root();
    let mut scanned = 0;
    for entry in walkdir::WalkDir::new(&root).into_iter().flatten().filter(|e| e.file_type().is_file()) {
        let key = entry.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        if key.starts_with("orgs/") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("zq-hidden") && !text.contains("zq-secret"),
            "{key} names the private registry"
        );
        assert!(!key.contains("zq-hidden"), "{key}");
        scanned += 1;
    }
    assert!(scanned > 50, "the public tree was there to scan ({scanned} files)");
    let clone = dir.path().join("clone");
    let cloned =
        git(dir.path(), &["clone", "-q", &format!("{}/index.git", nginx.url), clone.to_str().unwrap()]);
    assert!(cloned.status.success());
    let history = String::from_utf8_lossy(&git(&clone, &["log", "--all", "-p"]).stdout).into_owned();
    assert!(history.contains("shared-name") && !history.contains("zq-hidden"), "{history}");
    // The event log (what webhooks and the event stream send) has the public publish alone.
    let events: Vec<String> = conn
        .query("SELECT event || ' ' || name FROM events ORDER BY id", cairn::params![], |r| r.get(0))
        .unwrap();
    assert!(events.contains(&"publish shared-name".to_string()), "{events:?}");
    assert!(!events.iter().any(|e| e.contains("zq-")), "{events:?}");
    let recent: Value = server.get("/api/v1/recent.json").json().unwrap();
    assert_eq!(recent["publishes"].as_array().unwrap().len(), 1, "{recent}");
    let health: Value = server.get("/api/v1/health.json").json().unwrap();
    assert_eq!((health["packages"].as_u64(), health["versions"].as_u64()), (Some(1), Some(1)), "{health}");
    // fsck checks the private registry too: clean, then a damaged private blob.
    let fsck = || fsck(&data);
    let (code, _, err) = fsck();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("fsck orgs/zq-secret: no findings") && err.contains("5 versions"), "{err}");
    let sha = lines[1]["cksum"].as_str().unwrap();
    let blob = data.join("static/orgs/zq-secret/blobs/sha256").join(sha);
    std::fs::write(&blob, b"damaged").unwrap();
    let (code, out, _) = fsck();
    assert_eq!(code, Some(1));
    assert!(out.contains("sha256-mismatch: orgs/zq-secret/: zq-hidden 1.1.0"), "{out}");
}

/// The registry's administrator deletes in a private organisation's
/// registry as in the public one: a version on the admin listener, a
/// whole package with `cairn admin delete --org` while the server runs;
/// the numbers stay burned there, and another organisation is not found.
#[test]
fn an_administrator_deletes_in_a_private_registry() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start_with(dir.path(), &[("CAIRN_RATE_LIMIT", "off")], &["--admin-listen", "127.0.0.1:0"]);
    let admin = server.admin_url.clone().unwrap();
    let ann = server.add_user("ann");
    let body = json!({ "slug": "zq-vault", "visibility": "private" });
    assert_eq!(status(api(&server, Method::POST, "/orgs", &ann, Some(body))), 201);
    let base = format!("{}/orgs/zq-vault", server.url);
    let put = |version: &str| {
        client()
            .put(format!("{base}/api/v1/packages/zq-kept/{version}"))
            .bearer_auth(&ann)
            .header("Content-Type", GZ)
            .body(TarballBuilder::new("zq-kept", version).gzip())
            .send()
            .unwrap()
    };
    let sha = ok(put("1.0.0"))["sha256"].as_str().unwrap().to_string();
    assert_eq!(status(put("1.1.0")), 201);
    let get = |path: &str| client().get(format!("{base}{path}")).bearer_auth(&ann).send().unwrap().status();
    let gone = client().delete(format!("{admin}/admin/orgs/zq-vault/packages/zq-kept/1.0.0")).send().unwrap();
    assert_eq!(status(gone), 200);
    assert_eq!(get(&format!("/blobs/sha256/{sha}")), 404, "its blob went");
    assert_eq!(status(put("1.0.0")), 409, "the number stays burned");
    let nowhere = client().delete(format!("{admin}/admin/orgs/zq-none/packages/zq-kept")).send().unwrap();
    assert_eq!(status(nowhere), 404);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["admin", "delete", "zq-kept", "--org", "zq-vault", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(get(&format!("/index/{}", cairn::index::package_path("zq-kept"))), 404, "the package went");
    assert_eq!(status(put("1.1.0")), 409, "its numbers stay burned");
    assert_eq!(status(put("1.2.0")), 201, "the name is still the organisation's");
}

/// A newly made private organisation's registry passes `cairn fsck` while
/// the server runs and after it stops: its log has a checkpoint from the
/// start (it was made without one: `log/checkpoint is missing`).
#[test]
fn a_new_private_registry_passes_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let ann = server.add_user("ann");
    let body = json!({ "slug": "acme", "visibility": "private" });
    assert_eq!(status(api(&server, Method::POST, "/orgs", &ann, Some(body))), 201);
    let (code, _, err) = fsck(&data);
    assert_eq!(code, Some(0), "while the server runs: {err}");
    assert!(err.contains("fsck orgs/acme: no findings"), "{err}");
    drop(server);
    let (code, _, err) = fsck(&data);
    assert_eq!(code, Some(0), "after the server stopped: {err}");
}

/// `cairn fsck` on `data`: its exit code, stdout and stderr.
fn fsck(data: &std::path::Path) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["fsck", "--data"])
        .arg(data)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}
