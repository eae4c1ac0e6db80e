//! `[index] remotes`: the index pushed to a bare repository on disk after
//! every commit, fast-forward only and off the reply's path; a diverged
//! remote refuses the push while the registry goes on answering 201, and
//! catches up once it is fixed; `cairn mirror --index-remote` follows it.

use crate::support;

use serde_json::Value;
use std::path::Path;
use support::user::{publish, User};
use support::{eventually, git, set_config, Server};

fn rev(repo: &Path, what: &str) -> String {
    let out = git(repo, &["rev-parse", "--verify", "--quiet", what]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `main`'s history, newest first, and whether it has a merge.
fn history(repo: &Path) -> (Vec<String>, bool) {
    let list = |args: &[&str]| {
        let out = git(repo, args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect::<Vec<_>>()
    };
    let merges = list(&["rev-list", "--min-parents=2", "refs/heads/main"]);
    (list(&["rev-list", "refs/heads/main"]), !merges.is_empty())
}

fn remote_status(server: &Server) -> Value {
    let health: Value = server.get("/api/v1/health").json().unwrap();
    health["remotes"][0].clone()
}

#[test]
fn the_index_is_pushed_fast_forward_only_and_a_mirror_follows_the_remote() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let remote = dir.path().join("remote.git");
    assert!(git(dir.path(), &["init", "--quiet", "--bare", remote.to_str().unwrap()]).status.success());
    let mut first = Server::start(&data);
    let token = first.token.clone();
    first.kill();
    set_config(&data, &[("remotes = []", &format!("remotes = [{:?}]", remote.to_str().unwrap()))]);
    let mut server = Server::start(&data);
    server.token = token;
    let index = data.join("static/index.git");

    // Several versions: the remote ends at the registry's head, same linear history.
    for v in ["1.0.0", "1.1.0", "1.2.0", "2.0.0"] {
        publish(&server, "pushed", v, &[]);
    }
    eventually(
        || rev(&remote, "refs/heads/main") == rev(&index, "refs/heads/main"),
        || {
            format!(
                "remote at {:?}, index at {:?}",
                rev(&remote, "refs/heads/main"),
                rev(&index, "refs/heads/main")
            )
        },
    );
    let (ours, merged) = history(&index);
    assert!(!merged);
    assert_eq!(history(&remote), (ours.clone(), false));
    assert!(ours.len() >= 5, "init and four publishes: {ours:?}");
    assert_eq!(remote_status(&server)["pushed"], ours[0].as_str());
    assert!(remote_status(&server)["error"].is_null());

    // The remote moves on its own: pushes are refused, never forced, and
    // the registry keeps answering 201.
    let before = rev(&remote, "refs/heads/main");
    let tree = rev(&remote, "refs/heads/main^{tree}");
    let out = git(
        &remote,
        &[
            "-c",
            "user.name=rogue",
            "-c",
            "user.email=rogue@example.org",
            "commit-tree",
            &tree,
            "-p",
            &before,
            "-m",
            "rogue",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rogue = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(git(&remote, &["update-ref", "refs/heads/main", &rogue]).status.success());
    publish(&server, "pushed", "2.1.0", &[]);
    eventually(
        || remote_status(&server)["failures"].as_u64() >= Some(1),
        || format!("no failed push recorded: {}", remote_status(&server)),
    );
    publish(&server, "pushed", "2.2.0", &[]);
    let status = remote_status(&server);
    assert!(status["error"].as_str().is_some_and(|e| !e.is_empty()), "{status}");
    assert_eq!(status["pushed"], before.as_str(), "nothing pushed since: {status}");
    assert_eq!(rev(&remote, "refs/heads/main"), rogue, "the remote's commit stays: no force push");

    // Fixed: the retries bring it up to date without another write.
    assert!(git(&remote, &["update-ref", "refs/heads/main", &before]).status.success());
    eventually(
        || rev(&remote, "refs/heads/main") == rev(&index, "refs/heads/main"),
        || format!("the remote never caught up: {}", remote_status(&server)),
    );
    let (ours, _) = history(&index);
    assert_eq!(history(&remote), (ours, false));
    eventually(|| remote_status(&server)["error"].is_null(), || remote_status(&server).to_string());

    // A mirror takes its index from the remote (and the rest from the source).
    let user = User::new();
    let mirror = dir.path().join("mirror");
    let m = mirror.to_str().unwrap();
    let r = remote.to_str().unwrap();
    user.ok(dir.path(), &["mirror", &server.url, m, "--index-remote", r]);
    let mirrored = mirror.join("static/index.git");
    assert_eq!(rev(&mirrored, "refs/heads/main"), rev(&remote, "refs/heads/main"));
    let file = std::fs::read_to_string(mirror.join("static/index/pu/sh/pushed")).unwrap();
    assert_eq!(file.lines().count(), 6, "{file}");

    // It follows: a new version reaches the remote, then the mirror.
    publish(&server, "pushed", "3.0.0", &[]);
    eventually(
        || rev(&remote, "refs/heads/main") == rev(&index, "refs/heads/main"),
        || remote_status(&server).to_string(),
    );
    user.ok(dir.path(), &["mirror", &server.url, m, "--index-remote", r]);
    assert_eq!(rev(&mirrored, "refs/heads/main"), rev(&index, "refs/heads/main"));
    let file = std::fs::read_to_string(mirror.join("static/index/pu/sh/pushed")).unwrap();
    assert!(file.lines().last().unwrap().contains("\"3.0.0\""), "{file}");
    assert!(mirror.join("static/blobs/sha256").read_dir().unwrap().count() > 0);
}
