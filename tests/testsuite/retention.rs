//! Retention rules (SPEC section 20): `[[retention]]` through the one
//! write path, with a dry run, never deleting an exactly pinned version;
//! a rule for the public registry, a private organisation's registry, or
//! the packages a public organisation owns.

use crate::support;

use crate::ops::cairn;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use support::{api, Server};

fn retention(data: &Path, dry_run: bool) -> Value {
    let mut args = vec!["admin".as_ref(), "retention".as_ref(), "--data".as_ref(), data.as_os_str()];
    if dry_run {
        args.push("--dry-run".as_ref());
    }
    serde_json::from_str(&cairn(&args)).unwrap()
}

/// The versions an index file serves.
fn served_versions(server: &Server, path: &str) -> Vec<String> {
    let text = server.get(path).text().unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["vers"].as_str().unwrap().to_string())
        .collect()
}

fn versions_of(report: &Value, list: &str) -> Vec<String> {
    report[list].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap().to_string()).collect()
}

#[test]
fn retention_lets_old_prereleases_go_through_the_writer_but_keeps_exact_pins() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    for v in ["1.0.0-alpha.1", "1.0.0-alpha.2", "1.0.0-beta.1", "1.0.0-beta.2", "1.0.0"] {
        support::user::publish(&server, "lib", v, &[]);
    }
    support::user::publish(&server, "app", "1.0.0", &[("lib", "=1.0.0-alpha.1")]);
    let token = server.token.clone().unwrap();
    let all = served_versions(&server, "/index/3/l/lib");
    assert_eq!(all.len(), 5);
    let config = std::fs::read_to_string(data.join("registry.toml")).unwrap();

    // A rule that names a bad age is refused, and nothing goes.
    std::fs::write(
        data.join("registry.toml"),
        format!("{config}\n[[retention]]\nprereleases_older_than = \"soon\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["admin", "retention", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("soon"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing is 30 days old yet.
    std::fs::write(
        data.join("registry.toml"),
        format!("{config}\n[[retention]]\nprereleases_older_than = \"30d\"\n"),
    )
    .unwrap();
    let report = retention(&data, false);
    assert!(versions_of(&report, "deleted").is_empty(), "{report}");

    std::fs::write(
        data.join("registry.toml"),
        format!("{config}\n[[retention]]\nkeep_last_prereleases = 1\n"),
    )
    .unwrap();
    let dry = retention(&data, true);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(versions_of(&dry, "deleted"), ["1.0.0-beta.1", "1.0.0-alpha.2"], "{dry}");
    assert_eq!(versions_of(&dry, "kept"), ["1.0.0-alpha.1"], "{dry}");
    assert_eq!(dry["kept"][0]["pinnedBy"], "app 1.0.0");
    assert_eq!(served_versions(&server, "/index/3/l/lib"), all, "a dry run deletes nothing");

    let report = retention(&data, false);
    assert_eq!(versions_of(&report, "deleted"), versions_of(&dry, "deleted"));
    assert_eq!(served_versions(&server, "/index/3/l/lib"), ["1.0.0-alpha.1", "1.0.0-beta.2", "1.0.0"]);
    let doc: Value = server.get("/api/v1/packages/lib.json").json().unwrap();
    assert!(!doc.to_string().contains("1.0.0-beta.1"), "{doc}");
    // Hard deletes: audited, the numbers burned, the registry whole.
    let conn = rusqlite::Connection::open(data.join("state.db")).unwrap();
    let audited: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'delete' AND target LIKE 'lib 1.0.0-%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 2);
    let body = cairn::archive::builder::TarballBuilder::new("lib", "1.0.0-beta.1").gzip();
    assert_eq!(
        server.put("lib", "1.0.0-beta.1", server.token.as_ref().unwrap(), body, "application/gzip").status(),
        409
    );
    crate::ops::fsck_clean(&data);

    // The timer applies the rules on its own.
    drop(server);
    support::set_config(&data, &[("retention_interval = 86400", "retention_interval = 1")]);
    let server = Server::start(&data);
    let body = cairn::archive::builder::TarballBuilder::new("lib", "1.0.1-rc.1").gzip();
    assert_eq!(server.put("lib", "1.0.1-rc.1", &token, body, "application/gzip").status(), 201);
    support::eventually(
        || !served_versions(&server, "/index/3/l/lib").contains(&"1.0.0-beta.2".to_string()),
        || format!("the timer left {:?}", served_versions(&server, "/index/3/l/lib")),
    );
    assert_eq!(served_versions(&server, "/index/3/l/lib"), ["1.0.0-alpha.1", "1.0.0", "1.0.1-rc.1"]);
}

/// A rule with `org` covers that organisation alone: a private
/// organisation's rule its own registry, a public organisation's the
/// packages it owns; the public registry's other packages stay.
#[test]
fn an_organisations_rule_covers_its_registry_or_its_packages_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let token = server.token.clone().unwrap();
    for org in [json!({"slug": "acme", "visibility": "private"}), json!({"slug": "pubco"})] {
        assert_eq!(api(&server, reqwest::Method::POST, "/orgs", &token, Some(org)).status(), 201);
    }
    let pre = ["1.0.0-a.1", "1.0.0-a.2", "1.0.0-a.3"];
    for v in pre {
        support::user::publish(&server, "loose", v, &[]);
        support::user::publish(&server, "owned", v, &[]);
        let body = cairn::archive::builder::TarballBuilder::new("inner", v).gzip();
        let resp = support::client()
            .put(format!("{}/orgs/acme/api/v1/packages/inner/{v}", server.url))
            .bearer_auth(&token)
            .header("Content-Type", "application/gzip")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let owners = json!({"users": ["org:pubco"]});
    assert_eq!(
        api(&server, reqwest::Method::PUT, "/packages/owned/owners", &token, Some(owners)).status(),
        200
    );
    support::set_config(
        &data,
        &[(
            "[mail]\n",
            "[[retention]]\norg = \"acme\"\nkeep_last_prereleases = 1\n\n\
             [[retention]]\norg = \"pubco\"\nkeep_last_prereleases = 1\n\n[mail]\n",
        )],
    );

    let dry = retention(&data, true);
    let went = |r: &Value| -> Vec<(String, String, String)> {
        let list = r["deleted"].as_array().unwrap().iter();
        let mut all: Vec<_> = list
            .map(|v| {
                (
                    v["org"].as_str().unwrap_or("").into(),
                    v["name"].as_str().unwrap().into(),
                    v["version"].as_str().unwrap().into(),
                )
            })
            .collect();
        all.sort();
        all
    };
    let want: Vec<(String, String, String)> = [("acme", "inner"), ("pubco", "owned")]
        .iter()
        .flat_map(|(o, n)| pre[..2].iter().map(move |v| (o.to_string(), n.to_string(), v.to_string())))
        .collect();
    assert_eq!(went(&dry), want, "{dry}");
    assert_eq!(served_versions(&server, "/index/lo/os/loose"), pre, "a dry run deletes nothing");

    let report = retention(&data, false);
    assert_eq!(went(&report), want);
    assert_eq!(served_versions(&server, "/index/lo/os/loose"), pre, "no rule covers `loose`");
    assert_eq!(served_versions(&server, "/index/ow/ne/owned"), ["1.0.0-a.3"]);
    let inner = support::client()
        .get(format!("{}/{}", server.url, cairn::layout::Layout::org("acme").package_index("inner")))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let left: Vec<String> = inner
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["vers"].as_str().unwrap().into())
        .collect();
    assert_eq!(left, ["1.0.0-a.3"], "the private registry's own index");
    crate::ops::fsck_clean(&data);
}
