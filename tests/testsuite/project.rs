//! The consumer's verbs end to end against a real server on 127.0.0.1:
//! `new`, `add`, `install`, `list`, `remove`, `update`, `outdated`, with the
//! text of cairn.toml and cairn.lock asserted, and the deprecation warning
//! an install prints from the index's `meta/` file.

use crate::support;

use std::path::Path;
use support::user::{installed, publish, User};
use support::Server;

/// A user logged in to `server`: the verbs below name no registry.
fn logged_in(server: &Server) -> User {
    let user = User::new();
    let dir = tempfile::tempdir().unwrap();
    user.ok(dir.path(), &["login", "--registry", &server.url, "--token", server.token.as_ref().unwrap()]);
    user
}

fn read(p: &Path, file: &str) -> String {
    std::fs::read_to_string(p.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The lock's text for (name, version, sum, dependencies), in order.
fn lock_text(packages: &[(&str, &str, &str, &[&str])]) -> String {
    let mut out = "version = 1\n".to_string();
    for (name, version, sum, deps) in packages {
        let deps: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
        out.push_str(&format!(
            "\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\nchecksum = \"{sum}\"\ndependencies = [{}]\n",
            deps.join(", ")
        ));
    }
    out
}

/// Runs and asserts success; returns stderr.
fn ok_err(user: &User, p: &Path, args: &[&str]) -> String {
    let out = user.run(p, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "cairn {args:?}: {err}");
    err
}

#[test]
fn add_list_remove_and_install_from_the_manifest() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let base10 = publish(&server, "base", "1.0.0", &[]);
    let base11 = publish(&server, "base", "1.1.0", &[]);
    let left = publish(&server, "left", "1.0.0", &[("base", ">=1.1, <2")]);
    let user = logged_in(&server);
    assert_eq!(user.ok(Path::new("/"), &["whoami"]), "admin\n", "whoami ends its line");
    let project = tempfile::tempdir().unwrap();
    let p = project.path();

    // No manifest yet: `add` makes one holding only [dependencies].
    let err = ok_err(&user, p, &["add", "base"]);
    assert!(err.contains("resolved 1 package\n") && err.contains("installed 1 package into"), "{err}");
    assert_eq!(read(p, "cairn.toml"), "[dependencies]\nbase = \"^1.1.0\"\n");
    assert_eq!(read(p, "cairn.lock"), lock_text(&[("base", "1.1.0", &base11, &[])]));

    // A second add keeps the first requirement; the user's REQ text is kept as given.
    std::fs::write(p.join("cairn.toml"), "# my tools\n[dependencies]\nbase = \"~1.1\" # the API we use\n")
        .unwrap();
    let err = ok_err(&user, p, &["add", "left@1"]);
    assert!(err.contains("resolved 2 packages\n") && err.contains("added left = \"1\""), "{err}");
    assert_eq!(
        read(p, "cairn.toml"),
        "# my tools\n[dependencies]\nbase = \"~1.1\" # the API we use\nleft = \"1\"\n"
    );
    assert_eq!(
        read(p, "cairn.lock"),
        lock_text(&[("base", "1.1.0", &base11, &[]), ("left", "1.0.0", &left, &["base"])])
    );
    assert_eq!(installed(p), ["base", "left"]);
    assert_eq!(user.ok(p, &["list"]), "base 1.1.0 (direct)\nleft 1.0.0 (direct)\n");

    // Removing base from the manifest keeps it installed: left still needs it.
    let err = ok_err(&user, p, &["remove", "base"]);
    assert!(err.contains("removed base from cairn.toml"), "{err}");
    assert_eq!(read(p, "cairn.toml"), "# my tools\n[dependencies]\nleft = \"1\"\n");
    assert_eq!(
        read(p, "cairn.lock"),
        lock_text(&[("base", "1.1.0", &base11, &[]), ("left", "1.0.0", &left, &["base"])])
    );
    assert_eq!(installed(p), ["base", "left"]);
    assert_eq!(user.ok(p, &["list"]), "base 1.1.0\nleft 1.0.0 (direct)\n");
    assert_eq!(user.ok(p, &["list", "--tree"]), "left 1.0.0\n└── base 1.1.0\n");

    // An unknown name is refused and changes nothing.
    let err = user.fails(p, &["remove", "ghost"]);
    assert!(err.contains("`ghost` is not a dependency") && err.contains("cairn list"), "{err}");
    assert_eq!(read(p, "cairn.toml"), "# my tools\n[dependencies]\nleft = \"1\"\n");

    // Removing the last dependency removes what only it needed.
    let err = ok_err(&user, p, &["remove", "left"]);
    assert!(err.contains("removing base 1.1.0") && err.contains("removing left 1.0.0"), "{err}");
    assert_eq!(read(p, "cairn.toml"), "# my tools\n[dependencies]\n");
    assert_eq!(read(p, "cairn.lock"), "version = 1\n");
    assert!(installed(p).is_empty());

    // `install NAME` in a project with a manifest records it as `add` does;
    // `install` alone then installs from the manifest and the lock.
    user.ok(p, &["install", "base@=1.0.0"]);
    assert_eq!(read(p, "cairn.toml"), "# my tools\n[dependencies]\nbase = \"=1.0.0\"\n");
    std::fs::remove_dir_all(p.join("cairn_packages")).unwrap();
    let err = ok_err(&user, p, &["install"]);
    assert!(err.contains("installed 1 package"), "{err}");
    assert_eq!(read(p, "cairn.lock"), lock_text(&[("base", "1.0.0", &base10, &[])]));
    // The manifest wins over a lock that no longer satisfies it.
    std::fs::write(p.join("cairn.toml"), "[dependencies]\nbase = \"^1.1\"\n").unwrap();
    user.ok(p, &["install"]);
    assert_eq!(read(p, "cairn.lock"), lock_text(&[("base", "1.1.0", &base11, &[])]));
    assert_eq!(read(p, "cairn_packages/base/README.md"), "base 1.1.0");

    // search and audit use the registry of the last login.
    assert!(user.ok(p, &["search", "left"]).starts_with("left 1.0.0"));
    let err = user.fails(p, &["audit"]);
    assert!(err.contains(&format!("{}/api/v1/advisories/index.json", server.url)), "{err}");
}

#[test]
fn update_stays_in_range_and_outdated_shows_both_kinds() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    publish(&server, "lib", "1.0.0", &[]);
    let other10 = publish(&server, "other", "1.0.0", &[]);
    let user = logged_in(&server);
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    user.ok(p, &["add", "lib@^1", "other"]);
    assert_eq!(read(p, "cairn.toml"), "[dependencies]\nlib = \"^1\"\nother = \"^1.0.0\"\n");
    let all_current = ok_err(&user, p, &["outdated"]);
    assert!(all_current.contains("all 2 locked packages are up to date"), "{all_current}");

    let lib11 = publish(&server, "lib", "1.1.0", &[]);
    publish(&server, "lib", "2.0.0", &[]);
    let other11 = publish(&server, "other", "1.0.1", &[]);
    let out = user.run(p, &["outdated"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "NAME   LOCKED      NEWEST IN RANGE  NEWEST\n\
         lib    1.0.0       1.1.0            2.0.0  (out of range)\n\
         other  1.0.0       1.0.1            1.0.1\n"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 packages can be updated") && err.contains("1 package has newer versions"),
        "{err}"
    );

    // Named: only that pin is let go, and ^1 takes 1.1.0, not 2.0.0.
    let err = ok_err(&user, p, &["update", "lib"]);
    assert!(err.contains("updating lib 1.0.0 -> 1.1.0"), "{err}");
    assert_eq!(
        read(p, "cairn.lock"),
        lock_text(&[("lib", "1.1.0", &lib11, &[]), ("other", "1.0.0", &other10, &[])])
    );
    assert_eq!(read(p, "cairn_packages/lib/README.md"), "lib 1.1.0");
    // None named: every pin.
    let err = ok_err(&user, p, &["update"]);
    assert!(err.contains("updating other 1.0.0 -> 1.0.1") && !err.contains("lib 1.1.0 ->"), "{err}");
    assert_eq!(
        read(p, "cairn.lock"),
        lock_text(&[("lib", "1.1.0", &lib11, &[]), ("other", "1.0.1", &other11, &[])])
    );
    let err = ok_err(&user, p, &["update"]);
    assert!(err.contains("already the newest"), "{err}");
    assert_eq!(
        read(p, "cairn.toml"),
        "[dependencies]\nlib = \"^1\"\nother = \"^1.0.0\"\n",
        "update edits no requirement"
    );
    assert_eq!(
        user.ok(p, &["outdated"]),
        "NAME  LOCKED      NEWEST IN RANGE  NEWEST\nlib   1.1.0       1.1.0            2.0.0  (out of range)\n"
    );
    assert!(user.fails(p, &["update", "ghost"]).contains("`ghost` is not in cairn.lock"));
}

#[test]
fn new_scaffolds_a_package_and_never_overwrites() {
    let user = User::new();
    let w = tempfile::tempdir().unwrap();
    let err = ok_err(&user, w.path(), &["new", "greeter", "--kind", "skill"]);
    assert!(err.contains("created the skill package `greeter`"), "{err}");
    let dir = w.path().join("greeter");
    assert_eq!(
        read(&dir, "cairn.toml"),
        "[package]\nname = \"greeter\"\nversion = \"0.1.0\"\nkind = \"skill\"\ndescription = \"TODO: what greeter does\"\n\n[dependencies]\n"
    );
    assert!(read(&dir, "README.md").starts_with("# greeter\n"));
    // The scaffold passes the registry's checks as it is.
    assert!(ok_err(&user, &dir, &["publish", "--dry-run"]).contains("greeter 0.1.0 passes"));
    let err = user.fails(w.path(), &["new", "greeter"]);
    assert!(err.contains("already exists: refusing to overwrite it"), "{err}");
    // No name: the current directory, named after it, a library by default.
    let here = w.path().join("my-tool");
    std::fs::create_dir(&here).unwrap();
    user.ok(&here, &["new"]);
    assert!(read(&here, "cairn.toml")
        .starts_with("[package]\nname = \"my-tool\"\nversion = \"0.1.0\"\nkind = \"library\"\n"));
    assert!(user.fails(&here, &["new"]).contains("already exists"));
    assert!(user.fails(w.path(), &["new", "x", "--kind", "../up"]).contains("not a kind"));
}

#[test]
fn a_deprecated_package_warns_until_its_meta_file_goes() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    publish(&server, "old-lib", "1.0.0", &[]);
    publish(&server, "fine", "1.0.0", &[("old-lib", "^1")]);
    let user = logged_in(&server);
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    // A registry without the list of deprecated packages (one made before
    // it, whose installs ask each package's meta file) ...
    std::fs::remove_file(server.static_root().join("api/v1/deprecations.json")).unwrap();
    // ... and what it writes when an owner deprecates a package (SPEC section 5).
    let meta = server.static_root().join("index/meta/ol/d-/old-lib.json");
    std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
    std::fs::write(&meta, r#"{"deprecated":"unmaintained","replacement":"new-lib"}"#).unwrap();
    let warning = "warning: old-lib is deprecated: unmaintained; use new-lib instead\n";

    // A transitive dependency warns too, and the install still succeeds.
    support::eventually(
        || {
            std::fs::remove_dir_all(p.join("cairn_packages")).ok();
            let err = ok_err(&user, p, &["add", "fine"]);
            err.contains(warning)
        },
        || "add never warned about old-lib".into(),
    );
    assert!(!ok_err(&user, p, &["install"]).contains("fine is deprecated"));
    std::fs::write(&meta, r#"{"deprecated":"use the standard library"}"#).unwrap();
    support::eventually(
        || {
            ok_err(&user, p, &["update"])
                .contains("warning: old-lib is deprecated: use the standard library\n")
        },
        || "update never showed the new message".into(),
    );
    // An install from the lock says what the cached meta files say; a
    // resolution asks again.
    assert!(
        ok_err(&user, p, &["install"]).contains("warning: old-lib is deprecated: use the standard library\n")
    );
    std::fs::remove_file(&meta).unwrap();
    support::eventually(
        || !ok_err(&user, p, &["update"]).contains("deprecated"),
        || "the warning stayed after the meta file went".into(),
    );
    assert!(!ok_err(&user, p, &["install"]).contains("deprecated"));
    assert_eq!(installed(p), ["fine", "old-lib"]);
}
