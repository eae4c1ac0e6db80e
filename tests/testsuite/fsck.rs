//! `cairn fsck` on a real registry: clean after publishes and a yank, then
//! each kind of damage on its own (a fresh registry each), reported with its
//! kind and exit 1, without fsck writing anything.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::Server;

/// A registry with foo 1.0.0, foo 1.1.0 (yanked), bar 0.1.0 (with a README)
/// and Baz_Qux 2.0.0 (zstd), and the SHA-256 of each, by "name version".
struct Registry {
    _dir: tempfile::TempDir,
    server: Server,
    sha: BTreeMap<&'static str, String>,
}

impl Registry {
    fn new() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("data"));
        let token = server.token.clone().unwrap();
        let mut sha = BTreeMap::new();
        let packages = [
            ("foo", "1.0.0", TarballBuilder::new("foo", "1.0.0").gzip(), "application/gzip"),
            ("foo", "1.1.0", TarballBuilder::new("foo", "1.1.0").gzip(), "application/gzip"),
            (
                "bar",
                "0.1.0",
                TarballBuilder::new("bar", "0.1.0").file("README.md", b"# bar\n").gzip(),
                "application/gzip",
            ),
            ("Baz_Qux", "2.0.0", TarballBuilder::new("Baz_Qux", "2.0.0").zstd(), "application/zstd"),
        ];
        for (name, version, body, content_type) in packages {
            let resp = server.put(name, version, &token, body, content_type);
            assert_eq!(resp.status(), 201, "{name} {version}");
            let body: Value = resp.json().unwrap();
            sha.insert(key(name, version), body["sha256"].as_str().unwrap().to_string());
        }
        let resp = support::client()
            .delete(format!("{}/api/v1/packages/foo/1.1.0", server.url))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "yank");
        Registry { _dir: dir, server, sha }
    }

    fn data(&self) -> &Path {
        &self.server.data
    }

    fn root(&self) -> PathBuf {
        self.server.static_root()
    }

    fn blob(&self, name: &str, version: &str) -> PathBuf {
        self.root().join("blobs/sha256").join(&self.sha[key(name, version)])
    }

    fn sig(&self, name: &str, version: &str) -> PathBuf {
        self.blob(name, version).with_extension("minisig")
    }

    /// `{name} {version} sha256:{hex}`, as findings name a version.
    fn id(&self, name: &str, version: &str) -> String {
        format!("{name} {version} sha256:{}", self.sha[key(name, version)])
    }
}

fn key(name: &str, version: &str) -> &'static str {
    match (name, version) {
        ("foo", "1.0.0") => "foo 1.0.0",
        ("foo", "1.1.0") => "foo 1.1.0",
        ("bar", "0.1.0") => "bar 0.1.0",
        ("Baz_Qux", "2.0.0") => "Baz_Qux 2.0.0",
        _ => panic!("not published: {name} {version}"),
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

fn fsck(data: &Path, extra: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("fsck")
        .arg("--data")
        .arg(data)
        .args(extra)
        .env("CAIRN_LOG", "warn")
        .output()
        .unwrap();
    Outcome {
        code: out.status.code().expect("fsck exits"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs fsck, asserts exit 1 and exactly `want` on stdout.
fn assert_findings(reg: &Registry, want: &[String]) {
    let out = fsck(reg.data(), &[]);
    assert_eq!(out.code, 1, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert_eq!(out.lines(), want, "stderr: {}", out.stderr);
    let summary = format!("fsck: {} finding", want.len());
    assert!(out.stderr.contains(&summary), "summary on stderr: {}", out.stderr);
}

fn assert_clean(reg: &Registry) {
    let out = fsck(reg.data(), &[]);
    assert_eq!(out.code, 0, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("fsck: no findings"), "{}", out.stderr);
}

/// Every file under the static root with its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

#[test]
fn a_healthy_registry_has_no_findings_and_fsck_writes_nothing() {
    let reg = Registry::new();
    let before = snapshot(&reg.root());
    let started = std::time::Instant::now();
    assert_clean(&reg);
    eprintln!("cairn fsck on the test registry: {:?}", started.elapsed());
    let out = fsck(reg.data(), &["--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["findings"], serde_json::json!([]));
    assert_eq!(report["packages"], 3);
    assert_eq!(report["versions"], 4);
    // init's config commit, four publishes, one yank.
    assert_eq!(report["commits"], 6);
    let head = std::fs::read_to_string(reg.root().join("index.git/refs/heads/main")).unwrap();
    assert_eq!(report["head"], head.trim());
    // health.json and recent.json included: nothing written, not even a timestamp.
    assert!(before == snapshot(&reg.root()), "fsck changed the static root");
}

#[test]
fn a_flipped_byte_in_a_blob_is_a_sha256_mismatch() {
    let reg = Registry::new();
    let path = reg.blob("foo", "1.0.0");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let out = fsck(reg.data(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let id = reg.id("foo", "1.0.0");
    for kind in ["sha256-mismatch", "blake3-mismatch", "bad-signature"] {
        assert!(
            out.lines().iter().any(|l| l.starts_with(&format!("{kind}: {id}: "))),
            "{kind} for foo 1.0.0 in:\n{}",
            out.stdout
        );
    }
    assert_eq!(out.lines().len(), 3, "nothing else: {}", out.stdout);

    // A client refuses the corrupted blob the server now serves.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["fetch", "foo@1.0.0", "--registry", &reg.server.url])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "fetch took a corrupted blob");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("sha-256") || err.to_lowercase().contains("sha256"), "{err}");
    assert!(
        std::fs::read_dir(home.path())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".tar.gz")),
        "nothing written"
    );
}

#[test]
fn a_deleted_blob_is_missing() {
    let reg = Registry::new();
    // The yanked version: yanked is not gone, pins still resolve.
    std::fs::remove_file(reg.blob("foo", "1.1.0")).unwrap();
    assert_findings(&reg, &[format!("missing-blob: {}", reg.id("foo", "1.1.0"))]);
    let out = fsck(reg.data(), &["--json"]);
    assert_eq!(out.code, 1);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["findings"],
        serde_json::json!([{"kind": "missing-blob", "what": reg.id("foo", "1.1.0")}])
    );
}

#[test]
fn a_signature_over_other_bytes_or_truncated_or_missing_is_reported() {
    let reg = Registry::new();
    // A valid signature by the registry's key, over another tarball.
    std::fs::copy(reg.sig("bar", "0.1.0"), reg.sig("foo", "1.0.0")).unwrap();
    // Half a signature.
    let sig = std::fs::read(reg.sig("Baz_Qux", "2.0.0")).unwrap();
    std::fs::write(reg.sig("Baz_Qux", "2.0.0"), &sig[..sig.len() / 2]).unwrap();
    std::fs::remove_file(reg.sig("bar", "0.1.0")).unwrap();
    let out = fsck(reg.data(), &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let lines = out.lines();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(lines[0], format!("missing-signature: {}", reg.id("bar", "0.1.0")));
    assert!(
        lines[1].starts_with(&format!("bad-signature: {}: ", reg.id("Baz_Qux", "2.0.0"))),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with(&format!("bad-signature: {}: ", reg.id("foo", "1.0.0"))), "{}", lines[2]);
}

#[test]
fn a_valid_signature_attesting_other_fields_is_reported() {
    let reg = Registry::new();
    // Re-sign foo 1.0.0's bytes with the registry's own key, but attesting
    // version 1.1.0: the signature verifies, its trusted comment is wrong.
    let key = cairn::sign::SigningKey::load(&reg.data().join("minisign.key")).unwrap();
    let bytes = std::fs::read(reg.blob("foo", "1.0.0")).unwrap();
    let (sha256, blake3) = cairn::store::digests(&bytes);
    let registry =
        support::read_json(reg.root().join("index/config.json"))["name"].as_str().unwrap().to_string();
    let att = cairn::sign::Attestation {
        registry,
        name: "foo".into(),
        version: "1.1.0".into(),
        sha256,
        blake3,
        upstream: None,
    };
    std::fs::write(reg.sig("foo", "1.0.0"), key.sign(&bytes, &att).unwrap()).unwrap();
    assert_findings(
        &reg,
        &[format!(
            "attestation-mismatch: {}: valid, but attests version=1.1.0, not 1.0.0",
            reg.id("foo", "1.0.0")
        )],
    );
}

#[test]
fn edited_and_missing_derived_files_are_reported_until_a_rebuild() {
    let reg = Registry::new();
    let root = reg.root();
    let doc = root.join("api/v1/packages/foo.json");
    let text = std::fs::read_to_string(&doc).unwrap();
    assert!(text.contains("\"latestVersion\": \"1.0.0\""), "{text}");
    std::fs::write(&doc, text.replace("\"latestVersion\": \"1.0.0\"", "\"latestVersion\": \"1.1.0\""))
        .unwrap();
    let version_doc = root.join("api/v1/packages/bar/0.1.0.json");
    std::fs::remove_file(&version_doc).unwrap();
    std::fs::remove_file(root.join("api/v1/packages/bar/0.1.0/readme.md")).unwrap();
    std::fs::write(root.join("index/3/f/foo"), b"").unwrap();
    assert_findings(
        &reg,
        &[
            "derived-missing: api/v1/packages/bar/0.1.0.json".to_string(),
            "derived-missing: api/v1/packages/bar/0.1.0/readme.md".to_string(),
            "derived-differs: api/v1/packages/foo.json".to_string(),
            "derived-differs: index/3/f/foo".to_string(),
        ],
    );
    // Check mode wrote nothing back.
    assert!(!version_doc.exists());
    assert!(std::fs::read_to_string(&doc).unwrap().contains("\"latestVersion\": \"1.1.0\""));
    // What fsck compares against is what a rebuild writes.
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rebuild", "static", "--data"])
        .arg(reg.data())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_clean(&reg);
}

#[test]
fn a_merge_commit_on_main_is_a_nonlinear_history() {
    let reg = Registry::new();
    let repo = git2::Repository::open_bare(reg.root().join("index.git")).unwrap();
    let head = repo.head().unwrap().peel_to_commit().unwrap();
    let side = head.parent(0).unwrap();
    let sig = git2::Signature::now("mallory", "mallory@example.org").unwrap();
    // Same tree as the head: only the history's shape is wrong.
    let merge = repo.commit(None, &sig, &sig, "merge", &head.tree().unwrap(), &[&head, &side]).unwrap();
    repo.reference("refs/heads/main", merge, true, "test: a merge on main").unwrap();
    assert_findings(&reg, &[format!("nonlinear-history: commit {merge} has 2 parents")]);
}

#[test]
fn a_published_key_other_than_the_signing_key_is_reported() {
    let reg = Registry::new();
    let other = tempfile::tempdir().unwrap();
    let stranger = cairn::sign::SigningKey::generate(&other.path().join("k")).unwrap();
    std::fs::write(reg.root().join("minisign.pub"), stranger.public_key_file()).unwrap();
    let ours =
        support::read_json(reg.root().join("index/config.json"))["pubkey"].as_str().unwrap().to_string();
    assert_findings(&reg, &[format!("key-mismatch: minisign.pub does not hold {ours}")]);
}

/// Sets a file's modification time `secs` seconds back.
fn age(path: &Path, secs: u64) {
    let out =
        Command::new("touch").arg("-d").arg(format!("@{}", now_secs() - secs)).arg(path).output().unwrap();
    assert!(out.status.success());
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn repair_rewrites_derived_files_and_removes_old_orphans_but_never_re_signs() {
    let reg = Registry::new();
    let root = reg.root();
    // Derived damage, an old orphan, a fresh one (a publish in flight), and a bad signature.
    std::fs::remove_file(root.join("api/v1/packages/bar/0.1.0.json")).unwrap();
    let old = root.join("blobs/sha256").join("ab".repeat(32));
    std::fs::write(&old, b"nobody's tarball").unwrap();
    std::fs::write(old.with_extension("minisig"), b"nobody's signature").unwrap();
    age(&old, 2 * 3600);
    let fresh = root.join("blobs/sha256").join("cd".repeat(32));
    std::fs::write(&fresh, b"a tarball whose line is being committed").unwrap();
    let sig = reg.sig("Baz_Qux", "2.0.0");
    let bad = b"untrusted comment: not a signature\nRWQ\n".to_vec();
    std::fs::write(&sig, &bad).unwrap();

    let out = fsck(reg.data(), &[]);
    assert_eq!(out.code, 1);
    let lines = out.lines();
    assert!(lines.iter().any(|l| *l == format!("orphan-blob: {}", "ab".repeat(32))), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains(&"cd".repeat(32))), "a fresh blob is no orphan: {lines:?}");

    let out = fsck(reg.data(), &["--repair"]);
    assert_eq!(out.code, 1, "the bad signature remains: {}", out.stderr);
    assert!(out.stderr.contains("repaired: rewrote derived files"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("repaired: removed orphan blob {}", "ab".repeat(32))),
        "{}",
        out.stderr
    );
    assert_eq!(out.lines().len(), 1, "only the bad signature: {:?}", out.lines());
    assert!(
        out.lines()[0].starts_with(&format!("bad-signature: {}", reg.id("Baz_Qux", "2.0.0"))),
        "{:?}",
        out.lines()
    );
    assert_eq!(std::fs::read(&sig).unwrap(), bad, "never re-signed");
    assert!(!old.exists() && !old.with_extension("minisig").exists());
    assert!(fresh.exists());
    assert!(root.join("api/v1/packages/bar/0.1.0.json").exists());
}

#[test]
fn a_corrupted_pack_file_is_reported() {
    let reg = Registry::new();
    let packs = reg.root().join("index.git/objects/pack");
    let pack = std::fs::read_dir(&packs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    // Past the 12-byte header: inside the first objects' compressed data.
    for i in (40..bytes.len() - 20).step_by(97) {
        bytes[i] ^= 0x55;
    }
    std::fs::write(&pack, &bytes).unwrap();
    let out = fsck(reg.data(), &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("corrupt-index: "),
        "a finding, not a crash: {}{}",
        out.stdout,
        out.stderr
    );
}

/// A registry just made by `cairn init`, before any server ran, passes
/// fsck: its log is published with its first checkpoint at init.
#[test]
fn a_registry_fresh_from_init_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init =
        Command::new(env!("CARGO_BIN_EXE_cairn")).args(["init", "--data"]).arg(&data).output().unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["fsck", "--data"]).arg(&data).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(data.join("static/log/checkpoint").is_file(), "{text}");
}
