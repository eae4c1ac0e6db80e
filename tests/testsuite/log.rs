//! The transparency log end to end (SPEC section 14): it follows the index
//! and an independent implementation (tests/log_check.py: Python, RFC 6962
//! and Ed25519 of its own) verifies it; the CLI fails closed, naming what
//! failed, on a changed index line, a forked registry state signed with
//! the real key, a rolled-back or stale checkpoint and a missing witness
//! quorum, and unpacks nothing.

use crate::support;

use std::path::Path;
use std::process::Command;
use support::user::{publish, User};
use support::Server;

/// Copies a data directory (a registry's whole state) as it is now.
fn copy_dir(from: &Path, to: &Path) {
    let out = Command::new("cp").arg("-a").arg(from).arg(to).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn python_check(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/log_check.py"))
        .args(args)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "log_check.py {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// `cairn fsck` on `data`: its exit code and what it printed.
fn fsck(data: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["fsck", "--data"]).arg(data).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn fsck_clean(data: &Path) {
    let (code, text) = fsck(data);
    assert_eq!(code, Some(0), "fsck: {text}");
}

/// A server on a fixed port, so a second data directory can stand in for
/// the first at the same URL (what a client sees of a swapped origin).
/// The bootstrap token is printed once: a restart is given it back.
fn serve_on(data: &Path, port: u16, token: &mut Option<String>) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let mut server = Server::start_with(data, &[("CAIRN_RATE_LIMIT", "off")], &["--listen", &listen]);
    match &server.token {
        Some(t) => *token = Some(t.clone()),
        None => server.token.clone_from(token),
    }
    server
}

fn install(user: &User, dir: &Path, server: &Server, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["install", "--update", "--registry", &server.url];
    args.extend_from_slice(extra);
    user.run(dir, &args)
}

fn assert_refused(out: &std::process::Output, dir: &Path, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "should fail: {err}");
    assert!(err.contains(what), "the error names {what:?}: {err}");
    assert!(err.contains("Nothing was unpacked"), "{err}");
    assert!(!dir.join("cairn_packages").exists(), "nothing unpacked");
}

#[test]
fn the_log_follows_the_index_and_an_independent_check_agrees() {
    python_check(&["vectors", concat!(env!("CARGO_MANIFEST_DIR"), "/index/log-vectors.json")]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"));
    publish(&server, "base", "1.0.0", &[]);
    publish(&server, "base", "1.1.0", &[]);
    publish(&server, "app", "1.0.0", &[("base", "^1")]);
    let resp = support::client()
        .delete(format!("{}/api/v1/packages/base/1.0.0", server.url))
        .bearer_auth(server.token.as_ref().unwrap())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let checkpoint = server.get("/log/checkpoint").text().unwrap();
    assert_eq!(checkpoint.lines().nth(1), Some("4"), "four changes, four entries:\n{checkpoint}");
    assert_eq!(server.get("/log/checkpoint").headers()["cache-control"], "public, max-age=5");
    let out = python_check(&["root", server.static_root().to_str().unwrap()]);
    assert!(out.contains("log ok: 4 entries"), "{out}");
    let line = std::fs::read_to_string(server.static_root().join("index/3/a/app")).unwrap();
    assert!(line.contains("\"logIndex\":2"), "{line}");
    fsck_clean(&server.data);

    // A client installs through every check.
    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    user.ok(w.path(), &["install", "app", "--registry", &server.url]);
    assert!(w.path().join("cairn_packages/app").is_dir());
    let out = user.ok(w.path(), &["log", "verify", "--registry", &server.url]);
    assert!(out.contains("4 entries verified") && out.contains("3 index lines match"), "{out}");
    // An inclusion proof, checked by the independent implementation.
    let proof = user.ok(w.path(), &["log", "proof", "app@1.0.0", "--registry", &server.url]);
    assert!(proof.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{proof}");
    let file = w.path().join("app.tlog-proof");
    std::fs::write(&file, &proof).unwrap();
    let note_key = server.get("/log/keys").text().unwrap().lines().next().unwrap().to_string();
    let out = python_check(&["proof", file.to_str().unwrap(), &note_key]);
    assert!(out.contains("proof ok: entry 2 of 4: cairn-log-v1 publish app 1.0.0"), "{out}");
    // A proof for another entry's text fails there.
    std::fs::write(&file, proof.replacen("index 2", "index 1", 1)).unwrap();
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/log_check.py"))
        .args(["proof", file.to_str().unwrap(), &note_key])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// A reader who finds a new line in an index copy finds a checkpoint that
/// covers its entry and the version's document: the log's entries are
/// written before the package's files, and its index copy after the rest.
/// A reader polls the index copy, then the checkpoint and the documents,
/// while 24 versions are published (by four clients, so groups hold several).
#[test]
fn a_line_a_reader_finds_is_in_the_checkpoint_it_reads_next() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"));
    publish(&server, "racer", "0.0.1", &[]);
    let index = server.static_root().join("index/ra/ce/racer");
    let checkpoint = server.static_root().join("log/checkpoint");
    let docs = server.static_root().join("api/v1/packages/racer");
    let done = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut seen = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(lines) = std::fs::read_to_string(&index) else { continue };
                let Ok(note) = std::fs::read_to_string(&checkpoint) else { continue };
                let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
                for line in lines.lines() {
                    let line: serde_json::Value = serde_json::from_str(line).unwrap();
                    let entry = line["logIndex"].as_u64().unwrap();
                    assert!(entry < size, "{line} is entry {entry}, the checkpoint read after it has {size}");
                    let doc = docs.join(format!("{}.json", line["vers"].as_str().unwrap()));
                    assert!(doc.is_file(), "{line} is in the index copy, its document not yet");
                }
                seen += 1;
            }
            seen
        });
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let server = &server;
                s.spawn(move || {
                    (0..6).for_each(|i| drop(publish(server, "racer", &format!("1.{w}.{i}"), &[])))
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
    assert!(seen > 0, "the reader read the files");
    assert_eq!(std::fs::read_to_string(&index).unwrap().lines().count(), 25);
}

#[test]
fn a_changed_dependency_with_the_right_tarball_is_caught_by_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"));
    publish(&server, "base", "1.0.0", &[]);
    publish(&server, "extra", "1.0.0", &[]);
    publish(&server, "app", "1.0.0", &[("base", "^1")]);
    // What a middlebox (or the origin's storage) serves: one more
    // dependency in app's line, checksum and tarball unchanged.
    let file = server.static_root().join("index/3/a/app");
    let line = std::fs::read_to_string(&file).unwrap();
    let changed = line.replacen(
        "\"deps\":[",
        "\"deps\":[{\"name\":\"extra\",\"req\":\"^1\",\"features\":[],\"optional\":false,\"default_features\":true,\"target\":null,\"kind\":\"normal\"},",
        1,
    );
    assert_ne!(changed, line);
    std::fs::write(&file, changed).unwrap();
    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    let out = install(&user, w.path(), &server, &["app"]);
    assert_refused(&out, w.path(), "the index line of app 1.0.0 is not the one the log recorded");
}

#[test]
fn a_forked_registry_state_signed_with_the_real_key_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (real, fork) = (dir.path().join("real"), dir.path().join("fork"));
    let (port, mut token) = (support::free_port(), None);
    let user = User::new();
    let mut server = serve_on(&real, port, &mut token);
    publish(&server, "x", "1.0.0", &[]);
    let w = tempfile::tempdir().unwrap();
    user.ok(w.path(), &["install", "x", "--registry", &server.url]);
    server.kill();
    // The compromised state: a copy of the registry, key included.
    copy_dir(&real, &fork);

    let mut server = serve_on(&real, port, &mut token);
    publish(&server, "y", "1.0.0", &[]);
    let w = tempfile::tempdir().unwrap();
    user.ok(w.path(), &["install", "y", "--registry", &server.url]);
    server.kill();

    // The fork shows this client another y 1.0.0: its own tarball, index
    // line and signature, all made with the registry's real key.
    let fork_server = serve_on(&fork, port, &mut token);
    let mut bytes = cairn::archive::builder::TarballBuilder::new("y", "1.0.0")
        .manifest("[package]\nname = \"y\"\nversion = \"1.0.0\"\n".to_string())
        .file("README.md", b"not what everyone else got")
        .gzip();
    let resp = fork_server.put(
        "y",
        "1.0.0",
        fork_server.token.as_ref().unwrap(),
        std::mem::take(&mut bytes),
        "application/gzip",
    );
    assert_eq!(resp.status(), 201);
    let w = tempfile::tempdir().unwrap();
    let out = install(&user, w.path(), &fork_server, &["y"]);
    assert_refused(&out, w.path(), "split view");
    // fetch and verify refuse it too.
    let out = user.run(w.path(), &["fetch", "y@1.0.0", "--registry", &fork_server.url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("split view"));
    assert!(std::fs::read_dir(w.path()).unwrap().next().is_none(), "fetch wrote nothing");
}

#[test]
fn rolled_back_stale_and_unwitnessed_checkpoints_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (data, old) = (dir.path().join("d"), dir.path().join("old"));
    let (port, mut token) = (support::free_port(), None);
    let user = User::new();
    let mut server = serve_on(&data, port, &mut token);
    publish(&server, "x", "1.0.0", &[]);
    server.kill();
    copy_dir(&data, &old);
    let mut server = serve_on(&data, port, &mut token);
    publish(&server, "z", "1.0.0", &[]);
    let w = tempfile::tempdir().unwrap();
    user.ok(w.path(), &["install", "z", "--registry", &server.url]);
    server.kill();

    // A copy from before, served in its place.
    let mut stale = serve_on(&old, port, &mut token);
    let w = tempfile::tempdir().unwrap();
    assert_refused(&install(&user, w.path(), &stale, &["x"]), w.path(), "rolled-back checkpoint");
    stale.kill();

    let server = serve_on(&data, port, &mut token);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_refused(
        &install(&user, w.path(), &server, &["x", "--log-max-age", "1"]),
        w.path(),
        "stale checkpoint",
    );

    // A witness that never cosigned: another log's cosigning key.
    let other = Server::start(&dir.path().join("other"));
    let witness = std::fs::read_to_string(other.static_root().join("log/keys")).unwrap();
    let witness = witness.lines().nth(1).unwrap().to_string();
    assert_refused(
        &install(&user, w.path(), &server, &["x", "--witness", &witness]),
        w.path(),
        "too few witnesses: 0 of the 1 required",
    );
    // Without the policy the same install goes through.
    user.ok(w.path(), &["install", "x", "--registry", &server.url]);
}

#[test]
fn fsck_reports_a_log_that_does_not_match_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("d"));
    publish(&server, "x", "1.0.0", &[]);
    publish(&server, "y", "1.0.0", &[]);
    fsck_clean(&server.data);
    let bundle = server.static_root().join("log/tile/entries/000.p/2");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&bundle, bytes).unwrap();
    let (code, text) = fsck(&server.data);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("log-mismatch") && text.contains("log/tile/entries/000.p/2"), "{text}");
}

/// `cairn witness` following `logs`, on a free port; stopped when dropped.
struct WitnessProcess {
    child: std::process::Child,
    url: String,
    key: String,
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_witness(dir: &Path, log_key: &str) -> WitnessProcess {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["witness", "--listen", "127.0.0.1:0", "--name", "witness.test/w1", "--log", log_key, "--data"])
        .arg(dir)
        .env("CAIRN_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let key = lines.next().unwrap().unwrap().strip_prefix("witness key: ").unwrap().to_string();
    let url = lines.next().unwrap().unwrap().strip_prefix("listening on ").unwrap().to_string();
    std::thread::spawn(move || for _ in lines {});
    WitnessProcess { child, url, key }
}

fn log_keys(server: &Server) -> Vec<String> {
    server.get("/log/keys").text().unwrap().lines().map(str::to_string).collect()
}

fn cosigned_by(server: &Server, witness: &WitnessProcess) -> bool {
    cosigned_by_key(server, &witness.key)
}

fn cosigned_by_key(server: &Server, key: &str) -> bool {
    let name = key.split('+').next().unwrap();
    server.get("/log/checkpoint").text().unwrap().lines().any(|l| l.starts_with(&format!("\u{2014} {name} ")))
}

fn add_checkpoint(witness: &WitnessProcess, body: String) -> (u16, String, String) {
    let resp = support::client().post(format!("{}/add-checkpoint", witness.url)).body(body).send().unwrap();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (resp.status().as_u16(), ct, resp.text().unwrap())
}

/// Points the registry in `data` (stopped) at one witness.
fn use_witness(data: &Path, url: &str, key: &str) {
    let toml = std::fs::read_to_string(data.join("registry.toml")).unwrap();
    let with = format!("witnesses = [{{ url = \"{url}\", key = \"{key}\" }}]");
    assert!(toml.contains("witnesses = []"), "{toml}");
    std::fs::write(data.join("registry.toml"), toml.replace("witnesses = []", &with)).unwrap();
}

/// `cairn mirror --witness`: the mirror keeps a witness of its source,
/// `cairn serve` on the mirror answers the source's add-checkpoint, and a
/// client that requires the mirror's cosignature installs.
#[test]
fn a_mirror_witnesses_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let (data, mirror) = (dir.path().join("d"), dir.path().join("mirror"));
    let (port, mut token) = (support::free_port(), None);
    let mut server = serve_on(&data, port, &mut token);
    publish(&server, "a", "1.0.0", &[]);
    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    let out =
        user.run(w.path(), &["mirror", &server.url, mirror.to_str().unwrap(), "--witness", "mirror.test/w"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("witness key: "))
        .expect("the mirror prints its witness key");
    assert!(key.starts_with("mirror.test/w+"), "{key}");
    let mirror_server = Server::start(&mirror);
    server.kill();
    use_witness(&data, &mirror_server.url, key);
    let server = serve_on(&data, port, &mut token);
    publish(&server, "b", "1.0.0", &[]);
    support::eventually(|| cosigned_by_key(&server, key), || server.get("/log/checkpoint").text().unwrap());
    user.ok(w.path(), &["install", "b", "--registry", &server.url, "--witness", key]);
    // It is the witness: a size other than the one it cosigned is a 409.
    let checkpoint = server.get("/log/checkpoint").text().unwrap();
    let resp = support::client()
        .post(format!("{}/add-checkpoint", mirror_server.url))
        .body(format!("old 0\n\n{checkpoint}"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    assert_eq!(resp.text().unwrap(), "2\n");
}

#[test]
fn a_witness_cosigns_consistent_checkpoints_and_refuses_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let (data, fork) = (dir.path().join("d"), dir.path().join("fork"));
    let (port, mut token) = (support::free_port(), None);
    let mut server = serve_on(&data, port, &mut token);
    let witness = start_witness(&dir.path().join("w"), &log_keys(&server)[0]);
    server.kill();
    use_witness(&data, &witness.url, &witness.key);

    let mut server = serve_on(&data, port, &mut token);
    publish(&server, "a", "1.0.0", &[]);
    support::eventually(|| cosigned_by(&server, &witness), || server.get("/log/checkpoint").text().unwrap());
    server.kill();
    copy_dir(&data, &fork);
    let server = serve_on(&data, port, &mut token);
    publish(&server, "b", "1.0.0", &[]);
    support::eventually(
        || {
            cosigned_by(&server, &witness)
                && server.get("/log/checkpoint").text().unwrap().lines().nth(1) == Some("2")
        },
        || server.get("/log/checkpoint").text().unwrap(),
    );
    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    user.ok(w.path(), &["install", "b", "--registry", &server.url, "--witness", &witness.key]);
    python_check(&["root", server.static_root().to_str().unwrap()]);

    // The fork's own size-2 tree: the witness refuses it.
    let mut fork_server = Server::start(&fork);
    fork_server.token.clone_from(&token);
    publish(&fork_server, "c", "1.0.0", &[]);
    let forked = fork_server.get("/log/checkpoint").text().unwrap();
    assert_eq!(forked.lines().nth(1), Some("2"));
    let (status, _, text) = add_checkpoint(&witness, format!("old 2\n\n{forked}"));
    assert_eq!(status, 422, "{text}");
    assert!(!cosigned_by(&fork_server, &witness), "the fork is never cosigned");
    // A size other than the one it cosigned last: 409 with that size.
    let (status, ct, text) = add_checkpoint(&witness, format!("old 0\n\n{forked}"));
    assert_eq!((status, ct.as_str(), text.as_str()), (409, "text/x.tlog.size", "2\n"));
    // A log it does not follow: 404; a broken signature: 403; old > size: 400.
    let other = Server::start(&dir.path().join("other"));
    assert_eq!(
        add_checkpoint(&witness, format!("old 0\n\n{}", other.get("/log/checkpoint").text().unwrap())).0,
        404
    );
    let real = server.get("/log/checkpoint").text().unwrap();
    let sig_at =
        real.find("\u{2014} ").unwrap() + real[real.find("\u{2014} ").unwrap()..].find(' ').unwrap() + 12;
    let mut broken = real.clone().into_bytes();
    broken[sig_at + 20] = if broken[sig_at + 20] == b'A' { b'B' } else { b'A' };
    assert_eq!(add_checkpoint(&witness, format!("old 2\n\n{}", String::from_utf8(broken).unwrap())).0, 403);
    assert_eq!(add_checkpoint(&witness, format!("old 3\n\n{real}")).0, 400);
}
