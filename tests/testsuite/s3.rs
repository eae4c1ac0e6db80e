//! The static root and the blobs in an S3-compatible bucket (SPEC section
//! 13), against moto's server on 127.0.0.1 (and s3s-fs's for the first
//! two tests, a second implementation in another language): what a publish leaves in the
//! bucket and with which headers, `cairn serve` fronting the bucket, the
//! index repository's authoritative copy there (a node that lost its data
//! directory's working copy catches up from it), and create-only writes
//! that are really conditional.

use crate::support;

use cairn::layout::{ObjectStorage, Storage};
use std::path::Path;
use support::s3::{Kind, ENV, S3};
use support::{git, Server};

/// A data directory with `registry.toml` naming the bucket, before init.
fn data_on(s3: &S3, dir: &Path, prefix: &str) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("registry.toml"), s3.storage_toml(prefix)).unwrap();
    data
}

fn storage(s3: &S3, prefix: &str) -> ObjectStorage {
    // The credentials object_store reads from the environment, and nothing
    // else: this process runs every other test too (CAIRN_RATE_LIMIT=off
    // here turned off the rate limits of servers other tests start).
    for (k, v) in ENV.iter().filter(|(k, _)| k.starts_with("AWS_")) {
        std::env::set_var(k, v);
    }
    let cfg: cairn::config::Config = toml::from_str(&s3.storage_toml(prefix)).unwrap();
    ObjectStorage::open(&cfg.storage, cfg.edge()).unwrap()
}

#[test]
fn create_only_writes_are_conditional() {
    for kind in [Kind::Moto, Kind::S3sFs] {
        create_only_writes_are_conditional_on(S3::start_kind(kind));
    }
}

fn create_only_writes_are_conditional_on(s3: S3) {
    let store = storage(&s3, "cond");
    assert!(store.put_new("blobs/sha256/ab", b"first").unwrap(), "created");
    assert!(!store.put_new("blobs/sha256/ab", b"second").unwrap(), "refused: it exists");
    assert_eq!(store.read("blobs/sha256/ab").unwrap().unwrap(), b"first", "never overwritten");
    // A second client that did not look first is refused by the server too.
    let other = storage(&s3, "cond");
    assert!(!other.put_new("blobs/sha256/ab", b"third").unwrap());
    assert_eq!(s3.get("cond/blobs/sha256/ab").unwrap().bytes, b"first");
    // Replacing writes replace; absent keys read as absent.
    store.put("index/config.json", b"{}").unwrap();
    store.put("index/config.json", b"{\"a\":1}").unwrap();
    assert_eq!(store.read("index/config.json").unwrap().unwrap(), b"{\"a\":1}");
    assert!(store.read("index/none.json").unwrap().is_none());
    assert!(store.stat("index/none.json").unwrap().is_none());
    let before = store.stat("index/config.json").unwrap().unwrap();
    store.put("index/config.json", b"{\"a\":2}").unwrap();
    assert_ne!(store.stat("index/config.json").unwrap().unwrap(), before, "a new version");
    assert_eq!(store.list("index").unwrap(), ["config.json"]);
    assert_eq!(store.list("blobs").unwrap(), ["sha256"]);
    store.remove("index/config.json").unwrap();
    assert!(!store.exists("index/config.json"));

    // Compare-and-swap: only the writer that saw the current version wins.
    let key = "index.git/refs/heads/main";
    let first = store.swap(key, b"a\n", None).unwrap().expect("created");
    assert!(other.swap(key, b"b\n", None).unwrap().is_none(), "exists already");
    let (bytes, tag) = other.read_tagged(key).unwrap().unwrap();
    assert_eq!((bytes.as_slice(), tag.as_str()), (&b"a\n"[..], first.as_str()));
    let second = other.swap(key, b"c\n", Some(&tag)).unwrap().expect("still at that version");
    assert!(store.swap(key, b"d\n", Some(&first)).unwrap().is_none(), "a stale view loses");
    assert_eq!(store.read(key).unwrap().unwrap(), b"c\n");
    assert!(store.swap(key, b"e\n", Some(&second)).unwrap().is_some());
}

#[test]
fn a_registry_in_a_bucket_publishes_serves_and_survives_losing_its_node() {
    a_registry_in_a_bucket_on(S3::start_kind(Kind::Moto));
}

#[test]
fn a_registry_in_an_s3s_fs_bucket_publishes_serves_and_survives_losing_its_node() {
    a_registry_in_a_bucket_on(S3::start_kind(Kind::S3sFs));
}

fn a_registry_in_a_bucket_on(s3: S3) {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_on(&s3, tmp.path(), "reg");
    let mut server = Server::start_with_env(&data, &ENV);
    let sha = support::user::publish(&server, "bucketed", "1.0.0", &[]);
    support::user::publish(&server, "bucketed", "1.1.0", &[]);

    // Nothing of the static root is on the node's disk.
    assert!(!data.join("static").exists(), "the static root is the bucket");
    // The bucket holds it, each object with its URL's headers (SPEC section 6).
    let expect = [
        ("index/bu/ck/bucketed", "", "public, max-age=60"),
        (
            &format!("blobs/sha256/{sha}") as &str,
            "application/octet-stream",
            "public, max-age=31536000, immutable",
        ),
        (
            &format!("blobs/sha256/{sha}.minisig"),
            "text/plain; charset=utf-8",
            "public, max-age=31536000, immutable",
        ),
        ("api/v1/packages/bucketed.json", "application/json", ""),
        ("p/bucketed/index.html", "text/html; charset=utf-8", ""),
        ("index/config.json", "", "public, max-age=60"),
        ("index.git/refs/heads/main", "", "public, max-age=60"),
        ("minisign.pub", "", "public, max-age=300"),
    ];
    for (key, content_type, cache_control) in expect {
        let object = s3.get(&format!("reg/{key}")).unwrap_or_else(|| panic!("{key} is not in the bucket"));
        let url = format!("/{key}");
        let want_type =
            if content_type.is_empty() { cairn::layout::content_type(&url) } else { content_type };
        let want_cache = match cache_control {
            "" => cairn::layout::cache_control(&url, cairn::layout::Edge::Expiring),
            given => given.into(),
        };
        assert_eq!(object.content_type.as_deref(), Some(want_type), "{key}");
        assert_eq!(object.cache_control.as_deref(), Some(&*want_cache), "{key}");
        // cairn serve answers the same bytes from the bucket.
        let page_url = if key.ends_with("/index.html") { cairn::layout::page_url(key) } else { url.clone() };
        let served = server.get(&page_url);
        assert_eq!(served.status(), 200, "{page_url}");
        assert_eq!(served.headers()["cache-control"], &*want_cache, "{page_url}");
        assert_eq!(served.bytes().unwrap().to_vec(), object.bytes, "{page_url}");
    }
    let lines = String::from_utf8(s3.get("reg/index/bu/ck/bucketed").unwrap().bytes).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");

    // The index repository in the bucket is the authoritative copy, and
    // clonable over dumb HTTP (here through cairn serve, as a CDN would).
    let tip = String::from_utf8(s3.get("reg/index.git/refs/heads/main").unwrap().bytes).unwrap();
    let clone = tmp.path().join("clone");
    let out =
        git(tmp.path(), &["clone", "-q", &format!("{}/index.git", server.url), clone.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let head = git(&clone, &["rev-parse", "HEAD"]);
    assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), tip.trim());

    // The node loses its working copy of the index (its data directory
    // holds nothing that cannot be lost): it starts from the bucket's.
    server.kill();
    std::fs::remove_dir_all(data.join("index.git")).unwrap();
    let token = server.token.take();
    let mut server = Server::start_with_env(&data, &ENV);
    server.token = token;
    support::user::publish(&server, "bucketed", "1.2.0", &[]);
    let lines = String::from_utf8(s3.get("reg/index/bu/ck/bucketed").unwrap().bytes).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    let out = git(&clone, &["pull", "-q", "--ff-only", &format!("{}/index.git", server.url), "main"]);
    assert!(out.status.success(), "linear history: {}", String::from_utf8_lossy(&out.stderr));
    let log = git(&clone, &["log", "--format=%s"]);
    let subjects = String::from_utf8_lossy(&log.stdout);
    // (A `config` commit too: the node came back on another port.)
    let subjects: Vec<&str> = subjects.lines().filter(|s| s.starts_with("publish")).collect();
    assert_eq!(subjects[..3], ["publish bucketed 1.2.0", "publish bucketed 1.1.0", "publish bucketed 1.0.0"]);

    // The batch jobs and fsck work on the bucket as on a disk: a document
    // removed by hand is found missing, and repaired by the static job.
    let cairn = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(args)
            .arg("--data")
            .arg(&data)
            .envs(ENV)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (clean, report) = cairn(&["fsck"]);
    assert!(clean, "{report}");
    storage(&s3, "reg").remove("api/v1/packages/bucketed.json").unwrap();
    let (clean, report) = cairn(&["fsck"]);
    assert!(!clean && report.contains("api/v1/packages/bucketed.json"), "{report}");
    let (ok, report) = cairn(&["rebuild", "static"]);
    assert!(ok, "{report}");
    assert!(s3.get("reg/api/v1/packages/bucketed.json").is_some());
    let (clean, report) = cairn(&["fsck"]);
    assert!(clean, "{report}");

    // A second registry in the same bucket under another prefix is apart.
    assert!(s3.keys("other").is_empty());
    // `cairn init` over a bucket that holds an index refuses.
    let again = data_on(&s3, &tmp.path().join("second"), "reg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["init", "--data"])
        .arg(&again)
        .envs(ENV)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a registry's index"));
}

/// `cairn mirror` into a bucket: DIR holds an operator's registry.toml
/// naming the bucket; the mirror's files and its index repository land
/// there, and `cairn serve` on DIR serves them read-only.
#[test]
fn a_mirror_writes_into_a_bucket() {
    let s3 = S3::start();
    let source_dir = tempfile::tempdir().unwrap();
    let source = Server::start(source_dir.path());
    let sha = support::user::publish(&source, "mirrored", "0.1.0", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_on(&s3, tmp.path(), "mirror");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["mirror", &source.url])
        .arg(&dir)
        .envs(ENV)
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let toml = std::fs::read_to_string(dir.join("registry.toml")).unwrap();
    assert!(toml.contains("read_only = true") && toml.contains("[storage]"), "{toml}");
    for key in [
        format!("mirror/blobs/sha256/{sha}"),
        format!("mirror/blobs/sha256/{sha}.minisig"),
        "mirror/index/mi/rr/mirrored".into(),
        "mirror/api/v1/packages/mirrored.json".into(),
        "mirror/minisign.pub".into(),
    ] {
        assert!(s3.get(&key).is_some(), "{key} is not in the bucket");
    }
    let tip = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap().trim().to_string();
    let source_head =
        support::git(&source_dir.path().join("static/index.git"), &["rev-parse", "refs/heads/main"]);
    assert_eq!(tip(s3.get("mirror/index.git/refs/heads/main").unwrap().bytes), tip(source_head.stdout));
    assert!(!dir.join("static").exists());

    let served = Server::start_with_env(&dir, &ENV);
    let resp = served.get("/index/mi/rr/mirrored");
    assert_eq!(resp.status(), 200);
    assert!(resp.text().unwrap().contains("\"0.1.0\""));
    let resp = served.put("mirrored", "9.0.0", "cairn_x", vec![0x1f, 0x8b], "application/gzip");
    assert_eq!(resp.status(), 405);
}

/// An embedded registry moved onto a bucket with `cairn migrate`: the
/// same packages, history and tokens, served from the bucket, fsck clean,
/// and it takes new publishes there.
#[test]
fn cairn_migrate_moves_an_embedded_registry_onto_a_bucket() {
    let s3 = S3::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start(&data);
    let sha = support::user::publish(&server, "moving", "1.0.0", &[]);
    support::user::publish(&server, "moving", "1.1.0", &[]);
    let token = server.token.take();
    server.kill();

    let cairn = |args: &[&str]| {
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_cairn")).args(args).envs(ENV).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let new = tmp.path().join("new.toml");
    // The registry's own registry.toml with its `[storage]` table replaced.
    let mut toml: toml::Table = std::fs::read_to_string(data.join("registry.toml")).unwrap().parse().unwrap();
    let storage: toml::Table = s3.storage_toml("moved").parse().unwrap();
    toml.insert("storage".into(), storage["storage"].clone());
    std::fs::write(&new, toml::to_string(&toml).unwrap()).unwrap();
    // Refused while a server holds the data directory.
    let running = Server::start(&data);
    let (ok, report) = cairn(&["migrate", "--data", data.to_str().unwrap(), "--to", new.to_str().unwrap()]);
    assert!(!ok, "{report}");
    assert!(s3.keys("moved").is_empty(), "nothing copied while a server runs");
    drop(running);
    let head = support::git(&data.join("static/index.git"), &["rev-parse", "refs/heads/main"]).stdout;
    let (ok, report) = cairn(&["migrate", "--data", data.to_str().unwrap(), "--to", new.to_str().unwrap()]);
    assert!(ok, "{report}");
    assert!(s3.get(&format!("moved/blobs/sha256/{sha}")).is_some());
    let tip = String::from_utf8(s3.get("moved/index.git/refs/heads/main").unwrap().bytes).unwrap();
    assert_eq!(tip.trim(), String::from_utf8_lossy(&head).trim());
    let (clean, report) = cairn(&["fsck", "--data", data.to_str().unwrap()]);
    assert!(clean, "{report}");

    // The old static root can go: the bucket is the registry now.
    std::fs::remove_dir_all(data.join("static")).unwrap();
    let mut server = Server::start_with_env(&data, &ENV);
    server.token = token;
    let lines = server.get("/index/mo/vi/moving").text().unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    support::user::publish(&server, "moving", "1.2.0", &[]);
    let lines = String::from_utf8(s3.get("moved/index/mo/vi/moving").unwrap().bytes).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
}

/// The fence, without servers: two working copies of one bucket's index.
/// After the second takes over (a new lease epoch), the first — whose view
/// is from before — cannot commit, and the history stays the second's.
#[test]
fn a_working_copy_from_before_a_takeover_cannot_commit() {
    use cairn::index::{stored::Copy, IndexRepo};
    let s3 = S3::start();
    let root = std::sync::Arc::new(cairn::layout::StaticRoot::new(
        Box::new(storage(&s3, "fence")),
        cairn::layout::Layout::public(),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let copy = || Some(std::sync::Arc::new(Copy::new(root.clone())));
    let first = IndexRepo::init(&tmp.path().join("a"), "t", b"{}", copy()).unwrap();
    let second = IndexRepo::open(&tmp.path().join("b"), "t", copy()).unwrap();
    let commit = |repo: &IndexRepo, path: &str| {
        repo.write_batch(|tx| tx.commit(&[(path, Some(&b"x\n"[..]))], &format!("publish {path} 1.0.0"), "t"))
    };
    commit(&first, "one").unwrap();
    assert!(second.take_over(7).unwrap(), "the second copy pulled the first's commit");
    commit(&second, "two").unwrap();
    let refused = commit(&first, "three").unwrap_err();
    assert!(refused.chain().any(|e| e.is::<cairn::index::stored::Moved>()), "{refused:#}");
    assert_eq!(first.read_file("three").unwrap(), None, "its local ref went back");
    // Taking over in turn, it commits on top of the second's commit.
    assert!(first.take_over(8).unwrap());
    commit(&first, "three").unwrap();
    let subjects: Vec<String> =
        first.history().unwrap().into_iter().map(|(_, s)| s.lines().next().unwrap().to_string()).collect();
    assert_eq!(subjects[1..], ["publish one 1.0.0", "publish two 1.0.0", "publish three 1.0.0"]);
}

/// The bucket's pack merge, without servers: a working copy's commits (one
/// pack each) are merged into one pack, their parts retired; once their
/// retirement is past `RETIRE_AFTER` (aged here by rewriting the list) the
/// next merge deletes them from the bucket, and a fresh working copy pulls
/// the whole history from what is left.
#[test]
fn retired_packs_leave_the_bucket_after_their_wait() {
    use cairn::index::{stored::Copy, IndexRepo};
    let s3 = S3::start();
    let root = std::sync::Arc::new(cairn::layout::StaticRoot::new(
        Box::new(storage(&s3, "merge")),
        cairn::layout::Layout::public(),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let copy = || Some(std::sync::Arc::new(Copy::new(root.clone())));
    let repo = IndexRepo::init(&tmp.path().join("a"), "t", b"{}", copy()).unwrap();
    for i in 0..8 {
        let path = format!("p{i}");
        repo.write_batch(|tx| {
            tx.commit(&[(&path, Some(&b"x\n"[..]))], &format!("publish {path} 1.0.0"), "t")
        })
        .unwrap();
    }
    let idx_keys = || -> Vec<String> {
        s3.keys("merge/index.git/objects/pack").into_iter().filter(|k| k.ends_with(".idx")).collect()
    };
    let before = idx_keys();
    assert_eq!(before.len(), 9, "the config commit and 8 groups: a pack each");
    repo.consolidate_packs().unwrap();
    let retired_key = "index.git/objects/info/retired";
    let retired = String::from_utf8(root.read(retired_key).unwrap().unwrap()).unwrap();
    let names: Vec<&str> = retired.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert!(names.len() >= 7, "the merged packs retired: {retired}");
    assert_eq!(idx_keys().len(), before.len() + 1, "the merged pack beside its parts, which wait");
    // Their wait is over.
    let aged: String = retired
        .lines()
        .map(|l| {
            let (name, at) = l.split_once(' ').unwrap();
            format!("{name} {}\n", at.parse::<u64>().unwrap() - 400)
        })
        .collect();
    root.put(retired_key, aged.as_bytes()).unwrap();
    // A node reads the list when it takes the lease (and keeps it after).
    repo.take_over(1).unwrap();
    repo.consolidate_packs().unwrap();
    let left = idx_keys();
    for name in &names {
        assert!(!left.iter().any(|k| k.contains(name)), "{name} deleted: {left:?}");
        assert!(
            s3.get(&format!("merge/index.git/objects/pack/{name}.pack")).is_none(),
            "{name}.pack deleted"
        );
    }
    assert_eq!(left.len(), before.len() + 1 - names.len());
    assert_eq!(root.read(retired_key).unwrap().unwrap(), b"", "nothing waits any more");
    let fresh = IndexRepo::open(&tmp.path().join("b"), "t", copy()).unwrap();
    let subjects = fresh.history().unwrap().len();
    assert_eq!(subjects, 9, "the whole history from the packs that are left");
    assert_eq!(fresh.read_file("p7").unwrap().as_deref(), Some(&b"x\n"[..]));
}
