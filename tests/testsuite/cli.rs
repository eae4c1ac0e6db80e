//! The user-side CLI end to end against a real server on 127.0.0.1: login
//! and key pinning, publish and the account verbs, install with resolution,
//! lock and cache, tampering by a middlebox, fetch/verify, and mirroring.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use support::user::{installed, publish, User};
use support::Server;

fn yank(server: &Server, name: &str, version: &str) {
    let resp = support::client()
        .delete(format!("{}/api/v1/packages/{name}/{version}", server.url))
        .bearer_auth(server.token.as_ref().unwrap())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// What the middlebox does to responses.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Pass,
    FlipBlobByte,
    AlterSignature,
    /// Serves, for every signature, one made with the registry's real key
    /// over the right bytes but naming another package.
    WrongAttestation,
}

/// A small HTTP/1.1 proxy on 127.0.0.1 in front of a server: it logs every
/// request path and can tamper with blobs and signatures.
struct Proxy {
    url: String,
    upstream: Arc<Mutex<String>>,
    mode: Arc<Mutex<Mode>>,
    log: Arc<Mutex<Vec<String>>>,
    key: Arc<Mutex<Option<PathBuf>>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let p = Proxy {
            url,
            upstream: Arc::new(Mutex::new(upstream.to_string())),
            mode: Arc::new(Mutex::new(Mode::Pass)),
            log: Arc::new(Mutex::new(Vec::new())),
            key: Arc::new(Mutex::new(None)),
        };
        let (up, mode, log, key) = (p.upstream.clone(), p.mode.clone(), p.log.clone(), p.key.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (up, mode, log, key) = (up.clone(), mode.clone(), log.clone(), key.clone());
                std::thread::spawn(move || {
                    let _ = serve_conn(conn, &up, &mode, &log, &key);
                });
            }
        });
        p
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn serve_conn(
    conn: TcpStream,
    upstream: &Mutex<String>,
    mode: &Mutex<Mode>,
    log: &Mutex<Vec<String>>,
    key: &Mutex<Option<PathBuf>>,
) -> std::io::Result<()> {
    let http =
        reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    loop {
        let Some(support::Request { method, path, headers, body }) = support::read_request(&mut reader)?
        else {
            return Ok(());
        };
        log.lock().unwrap().push(format!("{method} {path}"));
        let base = upstream.lock().unwrap().clone();
        let mut req = http.request(method.parse().unwrap(), format!("{base}{path}"));
        for (k, v) in &headers {
            if !["host", "connection", "content-length", "transfer-encoding"]
                .contains(&k.to_lowercase().as_str())
            {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let resp = req.body(body).send().unwrap();
        let status = resp.status();
        let mut out_headers = Vec::new();
        for (k, v) in resp.headers() {
            if !["content-length", "connection", "transfer-encoding"].contains(&k.as_str()) {
                out_headers.push(format!("{}: {}", k, v.to_str().unwrap_or("")));
            }
        }
        let mut bytes = resp.bytes().unwrap().to_vec();
        let m = *mode.lock().unwrap();
        if status == 200 && path.starts_with("/blobs/sha256/") {
            let is_sig = path.ends_with(".minisig");
            match m {
                Mode::FlipBlobByte if !is_sig => {
                    let i = bytes.len() / 2;
                    bytes[i] ^= 0x01;
                }
                Mode::AlterSignature if is_sig => {
                    // Change one character of the signature line (the third line).
                    let text = String::from_utf8(bytes.clone()).unwrap();
                    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                    let sig = &mut lines[1];
                    let c = if sig.as_bytes()[10] == b'A' { "B" } else { "A" };
                    sig.replace_range(10..11, c);
                    bytes = (lines.join("\n") + "\n").into_bytes();
                }
                Mode::WrongAttestation if is_sig => {
                    let hex = path.trim_start_matches("/blobs/sha256/").trim_end_matches(".minisig");
                    let blob =
                        http.get(format!("{base}/blobs/sha256/{hex}")).send().unwrap().bytes().unwrap();
                    let (sha256, blake3) = cairn::store::digests(&blob);
                    let key = cairn::sign::SigningKey::load(key.lock().unwrap().as_ref().unwrap()).unwrap();
                    let att = cairn::sign::Attestation {
                        registry: "cairn".into(),
                        name: "someotherpkg".into(),
                        version: "9.9.9".into(),
                        sha256,
                        blake3,
                        upstream: None,
                    };
                    bytes = key.sign(&blob, &att).unwrap().into_bytes();
                }
                _ => {}
            }
        }
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            bytes.len()
        );
        for h in out_headers {
            head.push_str(&h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        writer.write_all(head.as_bytes())?;
        writer.write_all(&bytes)?;
        writer.flush()?;
    }
}

/// A server whose public URL is a proxy in front of it, so that blob
/// downloads (config.json's `dl`) go through the proxy too.
fn behind_proxy(data: &Path) -> (Server, Proxy) {
    let proxy = Proxy::start("http://127.0.0.1:9");
    let server =
        Server::start_with_env(data, &[("CAIRN_RATE_LIMIT", "off"), ("CAIRN_PUBLIC_URL", &proxy.url)]);
    *proxy.upstream.lock().unwrap() = server.url.clone();
    (server, proxy)
}

/// base 1.0.0 and 1.1.0; left needs base >=1.1, right base ^1.0; app needs both.
fn diamond(server: &Server) {
    publish(server, "base", "1.0.0", &[]);
    publish(server, "base", "1.1.0", &[]);
    publish(server, "left", "1.0.0", &[("base", ">=1.1, <2")]);
    publish(server, "right", "1.0.0", &[("base", "^1.0")]);
    publish(server, "app", "1.0.0", &[("left", "^1"), ("right", "^1.0")]);
}

#[test]
fn login_publish_and_account_verbs() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let token = server.token.clone().unwrap();
    let user = User::new();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    // Usage errors are 2, errors 1.
    assert_eq!(user.run(w, &["install", "--no-such-flag"]).status.code(), Some(2));
    assert!(user.fails(w, &["whoami"]).contains("no registry"));

    // login reads the token from stdin, pins the key, stores 0600 credentials.
    let mut child = user
        .command(w, &["login", "--registry", &server.url])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{token}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("logged in") && err.contains("as admin"), "{err}");
    assert!(err.contains(&server.pubkey), "the pinned key is shown: {err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(user.credentials()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let creds = std::fs::read_to_string(user.credentials()).unwrap();
    assert!(creds.contains(&token) && creds.contains(&server.pubkey));
    assert_eq!(user.ok(w, &["whoami"]).trim(), "admin");

    // publish a directory: VCS directories and ignored files stay out.
    let pkg = w.join("hello");
    std::fs::create_dir_all(pkg.join(".git")).unwrap();
    std::fs::write(pkg.join(".git/config"), "secret").unwrap();
    std::fs::write(pkg.join(".cairnignore"), "*.log\n/notes/\n").unwrap();
    std::fs::write(pkg.join("debug.log"), "x").unwrap();
    std::fs::create_dir_all(pkg.join("notes")).unwrap();
    std::fs::write(pkg.join("notes/todo.md"), "x").unwrap();
    std::fs::create_dir_all(pkg.join("src")).unwrap();
    std::fs::write(pkg.join("src/skill.md"), "do things").unwrap();
    std::fs::write(pkg.join("README.md"), "# hello").unwrap();
    std::fs::write(
        pkg.join("cairn.toml"),
        "[package]\nname = \"hello\"\nversion = \"1.0.0\"\nkind = \"skill\"\ndescription = \"Says hello\"\nlicense = \"MIT\"\n",
    )
    .unwrap();
    let out = user.ok(&pkg, &["publish"]);
    assert!(out.contains("published hello 1.0.0"), "{out}");
    let fetched = user.ok(w, &["fetch", "hello@1.0.0"]);
    let bytes = std::fs::read(w.join(fetched.trim())).unwrap();
    assert!(fetched.trim().ends_with(".tar.zst"));
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(zstd::stream::read::Decoder::new(&bytes[..]).unwrap());
    for e in ar.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(
        names,
        [
            "hello-1.0.0/.cairnignore",
            "hello-1.0.0/README.md",
            "hello-1.0.0/cairn.toml",
            "hello-1.0.0/src/skill.md"
        ]
    );

    // A bad manifest is refused locally, before any upload.
    std::fs::write(pkg.join("cairn.toml"), "[package]\nname = \"hello\"\nversion = \"1.0\"\n").unwrap();
    let err = user.fails(&pkg, &["publish"]);
    assert!(err.contains("would be refused"), "{err}");
    // A tarball publishes too; re-publishing a version is the server's 409.
    let tarball = w.join("hello-1.0.1.tar.gz");
    std::fs::write(&tarball, TarballBuilder::new("hello", "1.0.1").gzip()).unwrap();
    user.ok(w, &["publish", tarball.to_str().unwrap()]);
    let err = user.fails(w, &["publish", tarball.to_str().unwrap()]);
    assert!(err.contains("409"), "{err}");

    // info, yank, owners, tokens.
    let info = user.ok(w, &["info", "hello"]);
    assert!(info.starts_with("hello 1.0.1\n") && info.contains("\n  1.0.0 "), "{info}");
    let json: serde_json::Value = serde_json::from_str(&user.ok(w, &["info", "hello", "--json"])).unwrap();
    assert_eq!(json["latestVersion"], "1.0.1");
    let v: serde_json::Value = serde_json::from_str(&user.ok(w, &["info", "hello@1.0.0", "--json"])).unwrap();
    assert_eq!(v["version"], "1.0.0");
    assert!(user.fails(w, &["info", "nope"]).contains("no package named `nope`"));
    user.ok(w, &["yank", "hello@1.0.1"]);
    let json: serde_json::Value = serde_json::from_str(&user.ok(w, &["info", "hello", "--json"])).unwrap();
    assert_eq!(json["latestVersion"], "1.0.0");
    user.ok(w, &["yank", "--undo", "hello@1.0.1"]);
    server.add_user("bob");
    assert_eq!(user.ok(w, &["owner", "add", "hello", "bob"]).lines().count(), 2);
    assert_eq!(user.ok(w, &["owner", "list", "hello"]).lines().collect::<Vec<_>>(), ["admin", "bob"]);
    user.ok(w, &["owner", "remove", "hello", "bob"]);
    assert_eq!(user.ok(w, &["owner", "list", "hello"]).trim(), "admin");
    let key =
        user.ok(w, &["token", "create", "--label", "ci", "--scope", "publish-update", "--package", "hello*"]);
    let key = key.trim();
    assert!(key.starts_with("cairn_") && key.len() == 46, "{key}");
    let list = user.ok(w, &["token", "list"]);
    assert!(list.contains("ci") && list.contains("publish-update [hello*]"), "{list}");
    assert!(!list.contains(key));
    let id =
        list.lines().find(|l| l.contains(" ci ")).unwrap().split_whitespace().next().unwrap().to_string();
    let other = User::new();
    assert_eq!(other.ok(w, &["whoami", "--registry", &server.url, "--token", key]).trim(), "admin");
    user.ok(w, &["token", "revoke", &id]);
    let err = other.fails(w, &["whoami", "--registry", &server.url, "--token", key]);
    assert!(err.contains("401"), "{err}");

    user.ok(w, &["logout"]);
    assert!(!std::fs::read_to_string(user.credentials()).unwrap().contains(&token));
    assert!(user.fails(w, &["whoami"]).contains("not logged in"));
}

#[test]
fn install_resolves_a_diamond_locks_and_caches() {
    let data = tempfile::tempdir().unwrap();
    let (server, proxy) = behind_proxy(data.path());
    diamond(&server);
    let user = User::new();
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let reg = ["--registry", proxy.url.as_str()];

    user.ok(p, &[&["install", "app"][..], &reg].concat());
    assert_eq!(installed(p), ["app", "base", "left", "right"]);
    assert_eq!(std::fs::read_to_string(p.join("cairn_packages/base/README.md")).unwrap(), "base 1.1.0");
    assert!(p.join("cairn_packages/app/cairn.toml").is_file());
    let lock = std::fs::read_to_string(p.join("cairn.lock")).unwrap();
    let base_sum = publish_sum(&server, "base", "1.1.0");
    let expected_base = format!(
        "[[package]]\nname = \"base\"\nversion = \"1.1.0\"\nchecksum = \"{base_sum}\"\ndependencies = []\n"
    );
    assert!(lock.starts_with("version = 1\n\n[[package]]\nname = \"app\"\n"), "{lock}");
    assert!(lock.contains(&expected_base), "{lock}");
    assert!(lock.contains("dependencies = [\"left\", \"right\"]"), "{lock}");
    let log = proxy.take_log();
    assert_eq!(log.iter().filter(|l| l.starts_with("GET /blobs/") && !l.ends_with(".minisig")).count(), 4);
    // Each index file once: the log check takes the lines the resolver read.
    let index =
        log.iter().filter(|l| l.starts_with("GET /index/") && !l.contains("/meta/") && !l.contains("config"));
    assert_eq!(index.count(), 4, "{log:?}");

    // Again with no names: exactly the lock, and no request at all (every
    // locked version was proven in the log before; the deprecations are
    // the cached meta files').
    std::fs::remove_dir_all(p.join("cairn_packages")).unwrap();
    user.ok(p, &[&["install"][..], &reg].concat());
    assert_eq!(installed(p), ["app", "base", "left", "right"]);
    assert_eq!(proxy.take_log(), Vec::<String>::new(), "a warm install from the lock asks nothing");
    // Names the lock already satisfies: the same.
    user.ok(p, &[&["install", "app@1"][..], &reg].concat());
    assert_eq!(proxy.take_log(), Vec::<String>::new());
    assert_eq!(std::fs::read_to_string(p.join("cairn.lock")).unwrap(), lock);

    // A new project, same cache: the index is revalidated (304), no blob is downloaded.
    let other = tempfile::tempdir().unwrap();
    user.ok(other.path(), &[&["install", "app"][..], &reg].concat());
    let log = proxy.take_log();
    assert!(log.iter().all(|l| !l.starts_with("GET /blobs/")), "{log:?}");
    assert_eq!(std::fs::read_to_string(other.path().join("cairn.lock")).unwrap(), lock);
}

fn publish_sum(server: &Server, name: &str, version: &str) -> String {
    let text = server.get(&format!("/index/{}", cairn::index::package_path(name))).text().unwrap();
    let lines = cairn::index::IndexLine::parse_file(text.as_bytes()).unwrap();
    lines.into_iter().find(|l| l.vers == version).unwrap().cksum
}

#[test]
fn yanked_versions_are_skipped_unless_the_lock_pins_them() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    publish(&server, "core-lib", "1.0.0", &[]);
    publish(&server, "core-lib", "1.1.0", &[]);
    publish(&server, "tool", "1.0.0", &[("core-lib", "^1.0")]);
    let user = User::new();
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let reg = ["--registry", server.url.as_str()];
    user.ok(p, &[&["install", "tool"][..], &reg].concat());
    assert!(std::fs::read_to_string(p.join("cairn.lock")).unwrap().contains("version = \"1.1.0\""));

    yank(&server, "core-lib", "1.1.0");
    // The lock pins the yanked version: it keeps installing, also when re-resolving.
    std::fs::remove_dir_all(p.join("cairn_packages")).unwrap();
    user.ok(p, &[&["install"][..], &reg].concat());
    assert_eq!(
        std::fs::read_to_string(p.join("cairn_packages/core-lib/README.md")).unwrap(),
        "core-lib 1.1.0"
    );
    let out = user.run(p, &[&["install", "tool", "--update"][..], &reg].concat());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("core-lib 1.1.0 is yanked; kept because the lock pins it"));
    assert!(std::fs::read_to_string(p.join("cairn.lock")).unwrap().contains("version = \"1.1.0\""));
    // Without a lock, the yanked version is skipped.
    let fresh = tempfile::tempdir().unwrap();
    user.ok(fresh.path(), &[&["install", "tool"][..], &reg].concat());
    let lock = std::fs::read_to_string(fresh.path().join("cairn.lock")).unwrap();
    assert!(lock.contains("name = \"core-lib\"\nversion = \"1.0.0\""), "{lock}");
    // An explicit `=1.1.0` cannot be met without a pin.
    let err = user.fails(fresh.path(), &[&["install", "core-lib@=1.1.0", "--update"][..], &reg].concat());
    assert!(err.contains("core-lib"), "{err}");
}

#[test]
fn an_unsatisfiable_requirement_is_explained() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    diamond(&server);
    publish(&server, "legacy", "1.0.0", &[("base", "=1.0.0")]);
    publish(&server, "future", "1.0.0", &[("base", "^2")]);
    let user = User::new();
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let reg = ["--registry", server.url.as_str()];

    // left needs base >=1.1 while legacy needs exactly 1.0.0.
    let err = user.fails(p, &[&["install", "app", "legacy"][..], &reg].concat());
    for word in ["cannot find a set of versions", "legacy", "left", "base", "your request"] {
        assert!(err.contains(word), "`{word}` missing from:\n{err}");
    }
    // No base 2.x exists.
    let err = user.fails(p, &[&["install", "future"][..], &reg].concat());
    assert!(err.contains("future") && err.contains("base"), "{err}");
    let err = user.fails(p, &[&["install", "ghost@^1"][..], &reg].concat());
    assert!(err.contains("no package named `ghost`"), "{err}");
    assert!(!p.join("cairn.lock").exists() && !p.join("cairn_packages").exists());
}

#[test]
fn a_middlebox_cannot_slip_anything_in() {
    let data = tempfile::tempdir().unwrap();
    let (server, proxy) = behind_proxy(data.path());
    diamond(&server);
    *proxy.key.lock().unwrap() = Some(data.path().join("minisign.key"));
    let user = User::new();
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let reg = ["--registry", proxy.url.as_str()];

    for (mode, why) in [
        (Mode::FlipBlobByte, "checksum mismatch"),
        (Mode::AlterSignature, "signature"),
        (Mode::WrongAttestation, "attests name=someotherpkg"),
    ] {
        proxy.set(mode);
        let err = user.fails(p, &[&["install", "app"][..], &reg].concat());
        assert!(err.contains(why), "{mode:?}: {err}");
        assert!(installed(p).is_empty(), "{mode:?}: nothing is unpacked");
        assert!(!p.join("cairn.lock").exists());
        // The same through fetch.
        let err = user.fails(p, &[&["fetch", "base@1.1.0"][..], &reg].concat());
        assert!(err.contains(why), "{mode:?}: {err}");
        assert!(!p.join("base-1.1.0.tar.gz").exists());
    }
    // Nothing tampered reached the cache: honest answers install.
    proxy.set(Mode::Pass);
    user.ok(p, &[&["install", "app"][..], &reg].concat());
    assert_eq!(installed(p), ["app", "base", "left", "right"]);
    // A tampered cache is caught too, and repaired from the network.
    let key = cairn::client::cache::registry_key(&proxy.url);
    let cache = user.home.path().join("cache/cairn/registries").join(key).join("blobs");
    let sum = publish_sum(&server, "base", "1.1.0");
    let mut bytes = std::fs::read(cache.join(&sum)).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 1;
    std::fs::write(cache.join(&sum), bytes).unwrap();
    std::fs::remove_dir_all(p.join("cairn_packages")).unwrap();
    proxy.take_log();
    user.ok(p, &[&["install"][..], &reg].concat());
    assert!(proxy.take_log().contains(&format!("GET /blobs/sha256/{sum}")));
}

#[test]
fn a_changed_registry_key_is_refused_until_re_trusted() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (real, proxy) = behind_proxy(d1.path());
    let impostor = Server::start(d2.path());
    publish(&real, "base", "1.0.0", &[]);
    publish(&impostor, "base", "1.0.0", &[]);
    let user = User::new();
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let reg = ["--registry", proxy.url.as_str()];
    let token = real.token.clone().unwrap();

    user.ok(p, &["login", "--registry", &proxy.url, "--token", &token]);
    *proxy.upstream.lock().unwrap() = impostor.url.clone();
    let err = user.fails(p, &[&["install", "base"][..], &reg].concat());
    assert!(err.contains("different signing key") && err.contains("--re-trust"), "{err}");
    assert!(err.contains(&real.pubkey) && err.contains(&impostor.pubkey), "{err}");
    assert!(installed(p).is_empty());
    let err = user.fails(p, &[&["fetch", "base@1.0.0"][..], &reg].concat());
    assert!(err.contains("different signing key"), "{err}");
    // A plain login does not re-trust either.
    let err =
        user.fails(p, &["login", "--registry", &proxy.url, "--token", impostor.token.as_ref().unwrap()]);
    assert!(err.contains("--re-trust"), "{err}");
    user.ok(
        p,
        &["login", "--registry", &proxy.url, "--token", impostor.token.as_ref().unwrap(), "--re-trust"],
    );
    user.ok(p, &[&["install", "base"][..], &reg].concat());
    assert_eq!(installed(p), ["base"]);
}

#[test]
fn fetch_and_verify_a_tarball() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    publish(&server, "base", "1.0.0", &[]);
    publish(&server, "my-tool", "0.3.0-beta.1", &[]);
    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    let w = w.path();
    let reg = ["--registry", server.url.as_str()];
    let path = user.ok(w, &[&["fetch", "my-tool@0.3.0-beta.1"][..], &reg].concat());
    let path = w.join(path.trim());
    assert!(path.ends_with("my-tool-0.3.0-beta.1.tar.gz"));
    let out = user.ok(w, &[&["verify", path.to_str().unwrap()][..], &reg].concat());
    assert!(out.starts_with("ok:") && out.contains("my-tool 0.3.0-beta.1"), "{out}");
    assert!(out.contains(&server.pubkey), "{out}");

    // Another archive with the same name and version is not the published one.
    let forged = w.join("forged.tar.gz");
    std::fs::write(&forged, TarballBuilder::new("base", "1.0.0").file("evil.sh", b"rm -rf /").gzip())
        .unwrap();
    let err = user.fails(w, &[&["verify", forged.to_str().unwrap()][..], &reg].concat());
    assert!(err.contains("not the published base 1.0.0"), "{err}");
}

#[test]
fn mirror_copies_verifies_and_updates() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    diamond(&server);
    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    let mirror = w.path().join("mirror");
    let m = mirror.to_str().unwrap();

    let err = user.run(w.path(), &["mirror", &server.url, m]);
    assert!(err.status.success(), "{}", String::from_utf8_lossy(&err.stderr));
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(stderr.contains("5 blobs fetched, 0 already present"), "{stderr}");
    let blobs = mirror.join("static/blobs/sha256");
    assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 10);
    assert!(std::fs::read_to_string(mirror.join("registry.toml")).unwrap().contains("read_only = true"));
    assert_eq!(
        std::fs::read(mirror.join("static/minisign.pub")).unwrap(),
        std::fs::read(data.path().join("static/minisign.pub")).unwrap()
    );
    for f in ["index/config.json", "index/ba/se/base", "api/v1/packages/base.json"] {
        assert!(mirror.join("static").join(f).is_file(), "{f}");
    }
    let head = |dir: &Path| support::git(dir, &["rev-parse", "refs/heads/main"]).stdout;
    assert_eq!(head(&mirror.join("static/index.git")), head(&data.path().join("static/index.git")));

    // A second run fetches only what is new; an interrupted one resumes.
    publish(&server, "base", "1.2.0", &[]);
    let sum = publish_sum(&server, "base", "1.0.0");
    std::fs::remove_file(blobs.join(format!("{sum}.minisig"))).unwrap();
    let out = user.run(w.path(), &["mirror", &server.url, m]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("2 blobs fetched, 4 already present"), "{stderr}");
    assert_eq!(head(&mirror.join("static/index.git")), head(&data.path().join("static/index.git")));
    assert!(std::fs::read_to_string(mirror.join("static/index/ba/se/base")).unwrap().contains("1.2.0"));
    let out = user.run(w.path(), &["mirror", &server.url, m]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 blobs fetched, 6 already present"));

    // Served read-only at its own URL: installs work with the source gone, writes are refused.
    let front = Proxy::start("http://127.0.0.1:9");
    user.ok(w.path(), &["mirror", &server.url, m, "--public-url", &front.url]);
    let config = std::fs::read_to_string(mirror.join("static/index/config.json")).unwrap();
    assert!(config.contains(&format!("{}/blobs/sha256/", front.url)), "{config}");
    drop(server);
    let served = Server::start(&mirror);
    *front.upstream.lock().unwrap() = served.url.clone();
    let project = tempfile::tempdir().unwrap();
    user.ok(project.path(), &["install", "app", "--registry", &front.url]);
    assert_eq!(installed(project.path()), ["app", "base", "left", "right"]);
    let resp = served.put("base", "9.0.0", "cairn_x", vec![0x1f, 0x8b], "application/gzip");
    assert_eq!(resp.status(), 405);
}
