//! cargo itself as cairn's client (SPEC section 8): the real `cargo` on PATH
//! publishes, yanks, manages owners, searches and builds against a cairn
//! server on 127.0.0.1, with a temporary CARGO_HOME.
//!
//! Nothing here reaches crates.io: every CARGO_HOME replaces crates-io with an
//! empty local directory source, and the replacement test points crates-io
//! at cairn in the consumer project's own `.cargo/config.toml`.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use cairn::archive::ManifestKind;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{client, Nginx, Server};

/// A temporary CARGO_HOME with the `cairn` registry, and a target directory
/// shared by every build of one test.
pub(crate) struct CargoEnv {
    home: PathBuf,
    target: PathBuf,
    token: String,
    /// The name of a registry that needs the token too (upper case).
    private: Option<String>,
}

impl CargoEnv {
    fn new(root: &Path, server: &Server, token: &str) -> CargoEnv {
        CargoEnv::at(root, &server.url, token)
    }

    /// A CARGO_HOME whose `cairn` registry is at `url` (nginx in front, say).
    pub(crate) fn at(root: &Path, url: &str, token: &str) -> CargoEnv {
        let home = root.join("cargo-home");
        let empty = root.join("no-crates-io");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&empty).unwrap();
        let config = format!(
            r#"[registries.cairn]
index = "sparse+{url}/index/"

# No test may reach crates.io: its source is an empty local directory.
[source.crates-io]
replace-with = "no-crates-io"

[source.no-crates-io]
directory = "{empty}"

[net]
retry = 0

[http]
timeout = 60

[term]
color = "never"
progress.when = "never"
"#,
            empty = empty.display()
        );
        std::fs::write(home.join("config.toml"), config).unwrap();
        CargoEnv { home, target: root.join("target"), token: token.to_string(), private: None }
    }

    /// Adds the registry `name` at `url`, which needs a token (RFC 3139's
    /// `auth-required`): cargo's `cargo:token` provider, the token from
    /// `CARGO_REGISTRIES_{NAME}_TOKEN` (the env's token).
    fn with_private(self, name: &str, url: &str) -> CargoEnv {
        let config = self.home.join("config.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "\n[registries.{name}]\nindex = \"sparse+{url}/index/\"\ncredential-provider = [\"cargo:token\"]\n"
        ));
        std::fs::write(config, text).unwrap();
        CargoEnv { private: Some(name.to_ascii_uppercase()), ..self }
    }

    fn command(&self, dir: &Path, args: &[&str], token: &str) -> Command {
        let mut cmd = Command::new("cargo");
        cmd.args(args)
            .current_dir(dir)
            .env("CARGO_HOME", &self.home)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_REGISTRIES_CAIRN_TOKEN", token)
            .env_remove("CARGO_REGISTRY_TOKEN")
            .env_remove("CARGO_NET_OFFLINE")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("CARGO_MAKEFLAGS")
            .env_remove("CARGO_REGISTRIES_CRATES_IO_PROTOCOL");
        if let Some(name) = &self.private {
            cmd.env(format!("CARGO_REGISTRIES_{name}_TOKEN"), token);
        }
        cmd
    }

    fn run_as(&self, dir: &Path, args: &[&str], token: &str) -> (bool, String, String) {
        let Output { status, stdout, stderr } = self.command(dir, args, token).output().expect("cargo runs");
        (
            status.success(),
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    /// Runs cargo as the env's user; panics with cargo's output on failure.
    /// Returns stdout.
    pub(crate) fn ok(&self, dir: &Path, args: &[&str]) -> String {
        self.ok_as(dir, args, &self.token)
    }

    fn ok_as(&self, dir: &Path, args: &[&str], token: &str) -> String {
        let (ok, out, err) = self.run_as(dir, args, token);
        assert!(ok, "cargo {args:?} failed in {}:\n{out}\n{err}", dir.display());
        out
    }

    /// Runs cargo expecting failure; returns stderr.
    fn fails_as(&self, dir: &Path, args: &[&str], token: &str) -> String {
        let (ok, out, err) = self.run_as(dir, args, token);
        assert!(!ok, "cargo {args:?} should have failed:\n{out}\n{err}");
        err
    }
}

/// Writes a crate: Cargo.toml (`[package]` plus `extra`) and `src/lib.rs` or
/// `src/main.rs`.
pub(crate) fn write_crate(
    root: &Path,
    name: &str,
    version: &str,
    extra: &str,
    file: &str,
    code: &str,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n\
         description = \"The {name} test crate\"\nlicense = \"MIT\"\n{extra}"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src").join(file), code).unwrap();
    dir
}

fn publish(cargo: &CargoEnv, dir: &Path) {
    cargo.ok(dir, &["publish", "--registry", "cairn", "--allow-dirty", "--no-verify"]);
}

/// The search shards follow the index on the server's timer; tests build them now.
fn rebuild_search(server: &Server) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rebuild", "search", "--data"])
        .arg(&server.data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The lines of a package's index file, as served over HTTP.
fn index_lines(server: &Server, name: &str) -> Vec<Value> {
    let resp = server.get(&format!("/index/{}", cairn::index::package_path(name)));
    assert_eq!(resp.status(), 200, "index file of {name}");
    resp.text().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Every registry package in a Cargo.lock: (name, version, checksum).
fn locked_packages(lockfile: &Path) -> Vec<(String, String, String)> {
    let lock: toml::Table = std::fs::read_to_string(lockfile).unwrap().parse().unwrap();
    lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("source").is_some())
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_string();
            (s("name"), s("version"), s("checksum"))
        })
        .collect()
}

/// Each locked checksum is the SHA-256 of the blob cairn stores under it,
/// and the index line's `cksum`.
fn assert_checksums_are_blobs(server: &Server, locked: &[(String, String, String)]) {
    for (name, version, checksum) in locked {
        let blob = server.static_root().join("blobs/sha256").join(checksum);
        let bytes =
            std::fs::read(&blob).unwrap_or_else(|e| panic!("{name} {version}: no blob {checksum}: {e}"));
        assert_eq!(&sha256_hex(&bytes), checksum, "{name} {version}: blob's SHA-256");
        let line = index_lines(server, name).into_iter().find(|l| l["vers"] == version.as_str()).unwrap();
        assert_eq!(line["cksum"], checksum.as_str(), "{name} {version}: index cksum");
    }
}

fn start(dir: &Path) -> (Server, CargoEnv) {
    let server = Server::start(&dir.join("data"));
    let token = server.token.clone().expect("bootstrap token");
    let cargo = CargoEnv::new(dir, &server, &token);
    (server, cargo)
}

/// `cargo publish --registry cairn` of a crate, a second crate that depends
/// on it, and a binary that depends on both, built and run with `cargo run`.
#[test]
fn publish_depend_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, cargo) = start(tmp.path());
    let src = tmp.path().join("src");

    let alpha =
        write_crate(&src, "alpha", "0.1.0", "", "lib.rs", "pub fn greet() -> &'static str { \"alpha\" }\n");
    publish(&cargo, &alpha);
    let lines = index_lines(&server, "alpha");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["name"], "alpha");
    assert_eq!(lines[0]["vers"], "0.1.0");
    assert_eq!(lines[0]["fmt"], "tar.gz");
    assert_eq!(lines[0]["description"], "The alpha test crate");
    assert_eq!(lines[0]["pubtime"].as_str().unwrap().len(), 20);

    let beta = write_crate(
        &src,
        "beta",
        "0.1.0",
        "[dependencies]\nalpha = { version = \"0.1\", registry = \"cairn\" }\n",
        "lib.rs",
        "pub fn greet() -> String { format!(\"beta+{}\", alpha::greet()) }\n",
    );
    publish(&cargo, &beta);
    let beta_line = &index_lines(&server, "beta")[0];
    // A dependency from the same registry has no `registry` key.
    assert_eq!(
        beta_line["deps"],
        json!([{"name": "alpha", "req": "^0.1", "features": [], "optional": false,
                "default_features": true, "target": null, "kind": "normal"}])
    );

    // Re-publishing a version is refused (cargo sees it in the index first;
    // the server's own 409 is checked in `index_serving_and_refusals`).
    let err = cargo.fails_as(
        &alpha,
        &["publish", "--registry", "cairn", "--allow-dirty", "--no-verify"],
        &cargo.token,
    );
    assert!(err.contains("crate alpha@0.1.0 already exists on `cairn` index"), "{err}");

    let app = write_crate(
        &src,
        "app",
        "0.1.0",
        "publish = false\n[dependencies]\nalpha = { version = \"0.1\", registry = \"cairn\" }\n\
         beta = { version = \"0.1\", registry = \"cairn\" }\n",
        "main.rs",
        "fn main() { println!(\"app says {} and {}\", alpha::greet(), beta::greet()); }\n",
    );
    let out = cargo.ok(&app, &["run", "--quiet"]);
    assert_eq!(out.trim(), "app says alpha and beta+alpha");
    let locked = locked_packages(&app.join("Cargo.lock"));
    let mut names: Vec<&str> = locked.iter().map(|p| p.0.as_str()).collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);
    assert_checksums_are_blobs(&server, &locked);

    // A dependency the registry does not have: the index answers 404, and
    // cargo reports the missing package.
    let missing = write_crate(
        &src,
        "wants-missing",
        "0.1.0",
        "publish = false\n[dependencies]\nnot-published-here = { version = \"1\", registry = \"cairn\" }\n",
        "main.rs",
        "fn main() {}\n",
    );
    let err = cargo.fails_as(&missing, &["generate-lockfile"], &cargo.token);
    assert!(err.contains("no matching package named `not-published-here` found"), "{err}");
}

/// cargo against nginx in front of cairn (the shipped configuration):
/// `cargo publish` through nginx's proxy, `cargo search` finding the crate
/// at once (the search delta, no search job), and resolve, download and
/// build from nginx's static files.
#[test]
fn cargo_publishes_searches_and_builds_through_nginx() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (server, nginx) = Nginx::in_front(&data);
    let cargo = CargoEnv::at(tmp.path(), &nginx.url, server.token.as_deref().unwrap());
    let src = tmp.path().join("src");

    let lib = write_crate(
        &src,
        "wombat-lib",
        "0.3.0",
        "keywords = [\"marsupial\"]\n",
        "lib.rs",
        "pub fn dig() -> u8 { 7 }\n",
    );
    publish(&cargo, &lib);
    let found = cargo.ok(tmp.path(), &["search", "--registry", "cairn", "wombat"]);
    assert!(found.contains("wombat-lib = \"0.3.0\""), "{found}");
    let app = write_crate(
        &src,
        "burrow",
        "0.1.0",
        "publish = false\n[dependencies]\nwombat-lib = { version = \"0.3\", registry = \"cairn\" }\n",
        "main.rs",
        "fn main() { println!(\"dug {}\", wombat_lib::dig()); }\n",
    );
    assert_eq!(cargo.ok(&app, &["run", "--quiet"]).trim(), "dug 7");
    assert_checksums_are_blobs(&server, &locked_packages(&app.join("Cargo.lock")));
    // The download came from nginx: its access log has the blob's GET.
    let log = std::fs::read_to_string(nginx.run_dir.join("access.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("GET /blobs/sha256/") && l.contains(" 200 ")), "{log}");
    assert!(log.lines().any(|l| l.contains("PUT /api/v1/crates/new")), "{log}");
}

/// A private organisation's registry as cargo's (SPEC section 15, RFC
/// 3139): cargo publishes a crate there with a member's token, and builds
/// a project that depends on it and on a public crate, through `cairn
/// serve` and through nginx asking cairn (`auth_request`); without a token
/// cargo is refused. Its index, downloads and publish are below
/// `/orgs/{org}/`, and nothing public names the crate.
#[test]
fn cargo_builds_with_a_private_crate_through_serve_and_nginx() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (server, nginx) = Nginx::in_front(&data);
    let admin = server.token.clone().unwrap();
    let made = client()
        .post(format!("{}/api/v1/orgs", server.url))
        .bearer_auth(&admin)
        .json(&json!({ "slug": "zq-corp", "visibility": "private" }))
        .send()
        .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().unwrap());
    let src = tmp.path().join("src");
    let open = write_crate(&src, "open-helper", "1.0.0", "", "lib.rs", "pub fn two() -> u8 { 2 }\n");
    let secret = write_crate(&src, "zq-inner", "0.2.0", "", "lib.rs", "pub fn five() -> u8 { 5 }\n");
    let app = write_crate(
        &src,
        "zq-app",
        "0.1.0",
        "publish = false\n[dependencies]\n\
         zq-inner = { version = \"0.2\", registry = \"corp\" }\n\
         open-helper = { version = \"1\", registry = \"cairn\" }\n",
        "main.rs",
        "fn main() { println!(\"{}\", zq_inner::five() * open_helper::two()); }\n",
    );
    for (i, base) in [&server.url, &nginx.url].into_iter().enumerate() {
        let home = tmp.path().join(format!("cargo-{i}"));
        let cargo = CargoEnv::at(&home, base, &admin).with_private("corp", &format!("{base}/orgs/zq-corp"));
        if i == 0 {
            publish(&cargo, &open);
            cargo.ok(&secret, &["publish", "--registry", "corp", "--allow-dirty", "--no-verify"]);
        }
        // Its search answers from its own files (the write group's delta).
        let found = cargo.ok(tmp.path(), &["search", "--registry", "corp", "zq-inner"]);
        assert!(found.contains("zq-inner = \"0.2.0\""), "{base}: {found}");
        let public_search = cargo.ok(tmp.path(), &["search", "--registry", "cairn", "zq-inner"]);
        assert!(!public_search.contains("zq-inner"), "{base}: {public_search}");
        let _ = std::fs::remove_file(app.join("Cargo.lock"));
        assert_eq!(cargo.ok(&app, &["run", "--quiet"]).trim(), "10", "{base}");
        let locked = locked_packages(&app.join("Cargo.lock"));
        let inner = locked.iter().find(|(n, ..)| n == "zq-inner").expect("zq-inner locked");
        let blob = server.static_root().join("orgs/zq-corp/blobs/sha256").join(&inner.2);
        assert_eq!(sha256_hex(&std::fs::read(&blob).unwrap()), inner.2, "{base}: the private blob");
        let _ = std::fs::remove_file(app.join("Cargo.lock"));
        let refused = cargo.fails_as(&app, &["generate-lockfile"], "");
        assert!(refused.contains("401") || refused.contains("token"), "{base}: {refused}");
    }
    let log = std::fs::read_to_string(nginx.run_dir.join("access.log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("GET /orgs/zq-corp/blobs/sha256/") && l.contains(" 200 ")),
        "{log}"
    );
    for f in server.static_files().iter().filter(|f| !f.starts_with("orgs/")) {
        let bytes = std::fs::read(server.static_root().join(f)).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("zq-inner"), "{f} names the private crate");
    }
}

/// `cargo yank` and `cargo yank --undo` (checked in the index file),
/// `cargo owner --list/--add/--remove` (and what an owner may then do),
/// `cargo search`.
#[test]
fn yank_owners_and_search() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, cargo) = start(tmp.path());
    let src = tmp.path().join("src");
    let gamma =
        write_crate(&src, "gamma-lib", "0.1.0", "keywords = [\"greek\"]\n", "lib.rs", "pub fn g() {}\n");
    publish(&cargo, &gamma);
    let delta = write_crate(&src, "delta", "1.2.3", "", "lib.rs", "pub fn d() {}\n");
    publish(&cargo, &delta);

    // Yank, checked in the index file (on disk and over HTTP), then undo.
    let lines_on_disk = || {
        let path = server.static_root().join("index").join(cairn::index::package_path("gamma-lib"));
        let text = std::fs::read_to_string(path).unwrap();
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect::<Vec<_>>()
    };
    cargo.ok(&gamma, &["yank", "--registry", "cairn", "gamma-lib", "--version", "0.1.0"]);
    assert_eq!(index_lines(&server, "gamma-lib")[0]["yanked"], true);
    assert_eq!(lines_on_disk()[0]["yanked"], true);
    // cargo sees the yank: a fresh lockfile cannot pick the version.
    let user = write_crate(
        &src,
        "gamma-user",
        "0.1.0",
        "publish = false\n[dependencies]\ngamma-lib = { version = \"0.1\", registry = \"cairn\" }\n",
        "main.rs",
        "fn main() {}\n",
    );
    let err = cargo.fails_as(&user, &["generate-lockfile"], &cargo.token);
    assert!(err.contains("yanked"), "{err}");
    cargo.ok(&gamma, &["yank", "--registry", "cairn", "gamma-lib", "--version", "0.1.0", "--undo"]);
    assert_eq!(index_lines(&server, "gamma-lib")[0]["yanked"], false);
    assert_eq!(lines_on_disk()[0]["yanked"], false);
    cargo.ok(&user, &["generate-lockfile"]);

    // Owners.
    let list = |cargo: &CargoEnv| cargo.ok(&gamma, &["owner", "--registry", "cairn", "--list", "gamma-lib"]);
    assert_eq!(list(&cargo).trim(), "admin");
    let bob = server.add_user("bob");
    let err =
        cargo.fails_as(&gamma, &["yank", "--registry", "cairn", "gamma-lib", "--version", "0.1.0"], &bob);
    assert!(err.contains("not an owner"), "{err}");
    let (ok, out, err) =
        cargo.run_as(&gamma, &["owner", "--registry", "cairn", "--add", "bob", "gamma-lib"], &cargo.token);
    assert!(ok, "{out}\n{err}");
    assert!(err.contains("bob") || out.contains("bob"), "{out}\n{err}");
    let owners: Vec<String> = list(&cargo).lines().map(str::to_string).collect();
    assert_eq!(owners, ["admin", "bob"]);
    // bob is an owner now: he may yank.
    cargo.ok_as(&gamma, &["yank", "--registry", "cairn", "gamma-lib", "--version", "0.1.0"], &bob);
    cargo.ok_as(&gamma, &["yank", "--registry", "cairn", "gamma-lib", "--version", "0.1.0", "--undo"], &bob);
    cargo.ok(&gamma, &["owner", "--registry", "cairn", "--remove", "bob", "gamma-lib"]);
    assert_eq!(list(&cargo).trim(), "admin");
    let err =
        cargo.fails_as(&gamma, &["yank", "--registry", "cairn", "gamma-lib", "--version", "0.1.0"], &bob);
    assert!(err.contains("not an owner"), "{err}");
    let err = cargo.fails_as(
        &gamma,
        &["owner", "--registry", "cairn", "--add", "nobody-here", "gamma-lib"],
        &cargo.token,
    );
    assert!(err.contains("nobody-here"), "{err}");
    // The owners document agrees.
    let doc: Value = server.get("/api/v1/packages/gamma-lib/owners.json").json().unwrap();
    assert_eq!(doc, json!({"owners": [{"login": "admin"}]}));

    // Search: exact name first, description matches, limits.
    rebuild_search(&server);
    let out = cargo.ok(&gamma, &["search", "--registry", "cairn", "gamma-lib"]);
    let first = out.lines().next().unwrap_or_default();
    assert!(first.starts_with("gamma-lib = \"0.1.0\""), "{out}");
    assert!(first.contains("The gamma-lib test crate"), "{out}");
    let out = cargo.ok(&gamma, &["search", "--registry", "cairn", "test crate", "--limit", "1"]);
    assert!(out.starts_with("delta = \"1.2.3\""), "{out}");
    assert!(out.contains("1 crates more"), "{out}");
    let out = cargo.ok(&gamma, &["search", "--registry", "cairn", "no-such-thing"]);
    assert!(!out.contains(" = \""), "{out}");
}

/// cairn as a replacement for crates.io: three small crates with real
/// dependency metadata (a renamed dependency, an optional one behind `dep:`
/// and `?/` features, a target-specific one, `links` with a build script,
/// `rust-version`, a dev-dependency) are published with cargo, then a
/// project that names them as plain crates.io dependencies builds against
/// cairn through `[source.crates-io] replace-with`. The lockfile checksums
/// are the SHA-256 of the stored .crate files.
#[test]
fn replaces_crates_io() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, cargo) = start(tmp.path());
    let src = tmp.path().join("src");

    let base = write_crate(
        &src,
        "tinybase",
        "0.1.0",
        "links = \"tinybase\"\nbuild = \"build.rs\"\n[features]\ndefault = [\"std\"]\nstd = []\n",
        "lib.rs",
        "pub fn base() -> &'static str { if cfg!(feature = \"std\") { \"base(std)\" } else { \"base\" } }\n",
    );
    std::fs::write(base.join("build.rs"), "fn main() {}\n").unwrap();
    publish(&cargo, &base);

    let extra = write_crate(
        &src,
        "tinyextra",
        "0.1.3",
        "[features]\nfast = []\n\
         [target.'cfg(unix)'.dependencies]\ntinybase = { version = \"0.1\", registry = \"cairn\" }\n\
         [dev-dependencies]\ntinybase = { version = \"0.1.0\", registry = \"cairn\" }\n",
        "lib.rs",
        "pub fn extra() -> &'static str { if cfg!(feature = \"fast\") { \"extra(fast)\" } else { \"extra\" } }\n",
    );
    publish(&cargo, &extra);

    let mid = write_crate(
        &src,
        "tinymid",
        "0.2.0",
        "rust-version = \"1.70\"\n\
         [dependencies]\nbase = { package = \"tinybase\", version = \"0.1\", registry = \"cairn\", \
         default-features = false, features = [\"std\"] }\n\
         tinyextra = { version = \"0.1\", registry = \"cairn\", optional = true }\n\
         [features]\nextra = [\"dep:tinyextra\"]\nfast = [\"tinyextra?/fast\"]\n",
        "lib.rs",
        "pub fn describe() -> String {\n\
         #[cfg(feature = \"extra\")] let e = tinyextra::extra();\n\
         #[cfg(not(feature = \"extra\"))] let e = \"no extra\";\n\
         format!(\"mid over {} with {}\", base::base(), e)\n}\n",
    );
    publish(&cargo, &mid);

    // The lines, as crates.io would write them.
    let base_line = &index_lines(&server, "tinybase")[0];
    assert_eq!(base_line["links"], "tinybase");
    assert_eq!(base_line["features"], json!({"default": ["std"], "std": []}));
    assert_eq!(base_line["v"], 1);
    let extra_line = &index_lines(&server, "tinyextra")[0];
    let kinds: Vec<(String, String)> = extra_line["deps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap().into(), d["target"].as_str().unwrap_or("-").into()))
        .collect();
    // Sorted as crates.io sorts: by name, then requirement.
    assert_eq!(kinds, [("normal".to_string(), "cfg(unix)".to_string()), ("dev".into(), "-".into())]);
    let mid_line = &index_lines(&server, "tinymid")[0];
    assert_eq!(mid_line["v"], 2);
    assert_eq!(mid_line["rust_version"], "1.70");
    assert_eq!(mid_line["features"], json!({}));
    assert_eq!(mid_line["features2"], json!({"extra": ["dep:tinyextra"], "fast": ["tinyextra?/fast"]}));
    assert_eq!(
        mid_line["deps"],
        json!([
            {"name": "base", "req": "^0.1", "features": ["std"], "optional": false,
             "default_features": false, "target": null, "kind": "normal", "package": "tinybase"},
            {"name": "tinyextra", "req": "^0.1", "features": [], "optional": true,
             "default_features": true, "target": null, "kind": "normal"}
        ])
    );

    // The consumer names them as crates.io dependencies; its own config
    // replaces crates.io with cairn.
    let consumer = write_crate(
        &src,
        "consumer",
        "0.1.0",
        "publish = false\n[dependencies]\ntinymid = { version = \"0.2\", features = [\"extra\", \"fast\"] }\n\
         tinybase = \"0.1\"\n",
        "main.rs",
        "fn main() { println!(\"{} / {}\", tinymid::describe(), tinybase::base()); }\n",
    );
    std::fs::create_dir_all(consumer.join(".cargo")).unwrap();
    std::fs::write(
        consumer.join(".cargo/config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"cairn-src\"\n\n[source.cairn-src]\nregistry = \"sparse+{}/index/\"\n",
            server.url
        ),
    )
    .unwrap();
    let out = cargo.ok(&consumer, &["run", "--quiet"]);
    assert_eq!(out.trim(), "mid over base(std) with extra(fast) / base(std)");

    let lock = std::fs::read_to_string(consumer.join("Cargo.lock")).unwrap();
    assert!(lock.contains("source = \"registry+https://github.com/rust-lang/crates.io-index\""), "{lock}");
    let locked = locked_packages(&consumer.join("Cargo.lock"));
    let mut names: Vec<&str> = locked.iter().map(|p| p.0.as_str()).collect();
    names.sort();
    assert_eq!(names, ["tinybase", "tinyextra", "tinymid"]);
    assert_checksums_are_blobs(&server, &locked);
}

/// What cargo relies on, checked over HTTP: config.json's `dl` and `api`,
/// ETag/304 on index files, 404 for a package that does not exist; and the
/// publish endpoint's refusals in cargo's error shape.
#[test]
fn index_serving_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"));
    let token = server.token.clone().unwrap();
    let http = client();

    let resp = server.get("/index/config.json");
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let config: Value = resp.json().unwrap();
    assert_eq!(config["dl"], format!("{}/blobs/sha256/{{sha256-checksum}}", server.url));
    assert_eq!(config["api"], server.url);
    let resp =
        http.get(format!("{}/index/config.json", server.url)).header("If-None-Match", &etag).send().unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(server.get("/index/no/th/nothing-here").status(), 404);

    let frame = |meta: &Value, krate: &[u8]| {
        let json = serde_json::to_vec(meta).unwrap();
        let mut b = (json.len() as u32).to_le_bytes().to_vec();
        b.extend_from_slice(&json);
        b.extend_from_slice(&(krate.len() as u32).to_le_bytes());
        b.extend_from_slice(krate);
        b
    };
    let put = |body: Vec<u8>, token: Option<&str>| {
        let mut r = http.put(format!("{}/api/v1/crates/new", server.url)).body(body);
        if let Some(t) = token {
            r = r.header("Authorization", t); // cargo's bare token form
        }
        let resp = r.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap())
    };
    let detail = |v: &Value| v["errors"][0]["detail"].as_str().unwrap().to_string();
    let meta = |name: &str, vers: &str| {
        json!({"name": name, "vers": vers, "deps": [], "features": {}, "authors": [], "description": "raw",
               "keywords": [], "categories": [], "badges": {}, "links": null})
    };
    let krate = TarballBuilder::new("rawcrate", "1.0.0")
        .manifest_kind(ManifestKind::Cargo)
        .file("src/lib.rs", b"")
        .gzip();

    // Malformed frames.
    for body in [vec![], vec![9, 0, 0, 0, b'{'], {
        let mut b = frame(&meta("rawcrate", "1.0.0"), &krate);
        b.push(0);
        b
    }] {
        let (status, err) = put(body, Some(&token));
        assert_eq!(status, 400);
        assert!(detail(&err).starts_with("malformed publish frame"), "{err}");
    }
    // No token.
    let (status, err) = put(frame(&meta("rawcrate", "1.0.0"), &krate), None);
    assert_eq!(status, 401);
    assert!(err["errors"][0]["detail"].is_string(), "{err}");
    // Metadata that disagrees with the .crate's Cargo.toml.
    let (status, err) = put(frame(&meta("rawcrate", "1.0.1"), &krate), Some(&token));
    assert_eq!(status, 400, "{err}");
    // A .crate with cairn.toml instead of Cargo.toml.
    let native = TarballBuilder::new("rawcrate", "1.0.0").gzip();
    let (status, err) = put(frame(&meta("rawcrate", "1.0.0"), &native), Some(&token));
    assert_eq!(status, 400);
    assert!(detail(&err).contains("Cargo.toml"), "{err}");
    // The archive rules apply: a symlink is refused.
    let hostile = TarballBuilder::new("rawcrate", "1.0.0")
        .manifest_kind(ManifestKind::Cargo)
        .symlink("src/lib.rs", "/etc/passwd")
        .gzip();
    let (status, err) = put(frame(&meta("rawcrate", "1.0.0"), &hostile), Some(&token));
    assert_eq!(status, 400, "{err}");
    // Bad metadata JSON.
    let (status, err) = put(frame(&json!({"name": "rawcrate"}), &krate), Some(&token));
    assert_eq!(status, 400);
    assert!(detail(&err).contains("metadata"), "{err}");
    assert_eq!(server.get("/index/ra/wc/rawcrate").status(), 404, "nothing refused was written");

    // Accepted, with cargo's answer; the Bearer form works too.
    let (status, ok) = put(frame(&meta("rawcrate", "1.0.0"), &krate), Some(&format!("Bearer {token}")));
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok, json!({"warnings": {"invalid_categories": [], "invalid_badges": [], "other": []}}));
    let resp = server.get("/index/ra/wc/rawcrate");
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let line: Value = serde_json::from_str(resp.text().unwrap().trim()).unwrap();
    assert_eq!(line["cksum"], sha256_hex(&krate));
    assert_eq!(line["size"], krate.len());
    let resp = http
        .get(format!("{}/index/ra/wc/rawcrate", server.url))
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 304);
    let blob = server.get(&format!("/blobs/sha256/{}", sha256_hex(&krate)));
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().unwrap().as_ref(), &krate[..]);
    // The same version again: 409 in cargo's shape.
    let (status, err) = put(frame(&meta("rawcrate", "1.0.0"), &krate), Some(&token));
    assert_eq!(status, 409, "{err}");

    // Owners and search over plain HTTP.
    rebuild_search(&server);
    let owners: Value = server.get("/api/v1/crates/rawcrate/owners").json().unwrap();
    assert_eq!(owners["users"][0]["login"], "admin");
    assert!(owners["users"][0]["id"].is_i64());
    assert_eq!(server.get("/api/v1/crates/nothing-here/owners").status(), 404);
    let found: Value = server.get("/api/v1/crates?q=rawcrate&per_page=5").json().unwrap();
    assert_eq!(
        found,
        json!({"crates": [{"name": "rawcrate", "max_version": "1.0.0", "description": "A test package"}],
               "meta": {"total": 1}})
    );
    let resp = server.get("/api/v1/crates?q=x&per_page=lots");
    assert_eq!(resp.status(), 400);
    // Unyank of a version that does not exist.
    let resp = http
        .put(format!("{}/api/v1/crates/rawcrate/9.9.9/unyank", server.url))
        .header("Authorization", &token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.json::<Value>().unwrap()["errors"][0]["detail"].is_string());
}

/// cargo against `cairn serve` fronting an S3 bucket (SPEC section 13):
/// publish, resolve and build, every file read from the bucket; the blob
/// cargo checked is the bucket's object.
#[test]
fn cargo_publishes_and_builds_through_serve_fronting_a_bucket() {
    let s3 = support::s3::S3::start();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("registry.toml"), s3.storage_toml("crates")).unwrap();
    let server = Server::start_with_env(&data, &support::s3::ENV);
    let cargo = CargoEnv::new(tmp.path(), &server, server.token.as_deref().unwrap());
    let src = tmp.path().join("src");

    let lib = write_crate(&src, "bucket-lib", "0.2.0", "", "lib.rs", "pub fn n() -> u8 { 42 }\n");
    publish(&cargo, &lib);
    let app = write_crate(
        &src,
        "bucket-app",
        "0.1.0",
        "publish = false\n[dependencies]\nbucket-lib = { version = \"0.2\", registry = \"cairn\" }\n",
        "main.rs",
        "fn main() { println!(\"got {}\", bucket_lib::n()); }\n",
    );
    assert_eq!(cargo.ok(&app, &["run", "--quiet"]).trim(), "got 42");
    assert!(!data.join("static").exists(), "nothing of the static root on the node");
    for (name, version, checksum) in locked_packages(&app.join("Cargo.lock")) {
        let blob = s3.get(&format!("crates/blobs/sha256/{checksum}")).expect("the blob is in the bucket");
        assert_eq!(sha256_hex(&blob.bytes), checksum, "{name} {version}");
        let line = index_lines(&server, &name).into_iter().find(|l| l["vers"] == version.as_str()).unwrap();
        assert_eq!(line["cksum"], checksum.as_str());
    }
}
