//! Storage faults under the real server: a full disk (a small tmpfs,
//! filled), a server started on a read-only filesystem, and fsync failing
//! with EIO (an LD_PRELOAD shim).
//! Each: writes answer 503 `unavailable` with Retry-After and leave nothing
//! behind, reads go on, and writes work again once the fault is gone,
//! without a restart. Mounting needs root (CI runs as root); elsewhere the
//! mount tests say so and stop.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::blocking::Response;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::Server;

const GZ: &str = "application/gzip";

/// A tmpfs of `mib` MiB, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u32) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs failed although running as root");
        Some(Tmpfs(dir.to_path_buf()))
    }

    fn remount(&self, mode: &str) {
        let ok =
            Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(&self.0).status().unwrap();
        assert!(ok.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn tarball(name: &str, version: &str) -> Vec<u8> {
    TarballBuilder::new(name, version).file("README.md", b"# fault test\n").gzip()
}

fn publish(server: &Server, token: &str, name: &str, version: &str) -> Response {
    server.put(name, version, token, tarball(name, version), GZ)
}

/// A 503 in the JSON error shape, with Retry-After.
fn assert_unavailable(r: Response, what: &str) {
    assert_eq!(r.status(), 503, "{what}");
    assert!(r.headers().contains_key("retry-after"), "{what}: Retry-After");
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"], "unavailable", "{what}: {body}");
}

/// Nothing of `name@version` is anywhere: no blob, no index line, no row.
fn assert_absent(server: &Server, name: &str, version: &str) {
    let (sha, _) = cairn::store::digests(&tarball(name, version));
    assert!(!server.static_root().join("blobs/sha256").join(&sha).exists(), "a blob stayed behind");
    let index = server.get(&format!("/index/{}", cairn::index::package_path(name))).text().unwrap();
    assert!(!index.contains(&format!("\"vers\":\"{version}\"")), "an index line: {index}");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(server.data.join("state.db"), flags).unwrap();
    let rows: i64 =
        conn.query_row("SELECT COUNT(*) FROM versions WHERE vers = ?1", [version], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0, "a version row stayed behind");
}

/// Reads keep working: an index file, a document, health.
fn assert_reads(server: &Server, name: &str) {
    assert_eq!(server.get(&format!("/index/{}", cairn::index::package_path(name))).status(), 200);
    assert_eq!(server.get(&format!("/api/v1/packages/{name}.json")).status(), 200);
    assert_eq!(server.get("/api/v1/health").status(), 200);
}

#[test]
fn a_full_disk_refuses_writes_with_503_and_takes_them_again_once_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("mnt"), 24) else { return };
    let server = Server::start(&fs.0.join("data"));
    let token = server.token.clone().unwrap();
    assert_eq!(publish(&server, &token, "roomy", "1.0.0").status(), 201);

    // Fill the filesystem to the last block.
    let filler = fs.0.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    drop(f);

    for version in ["1.1.0", "1.2.0"] {
        assert_unavailable(publish(&server, &token, "roomy", version), "publish on a full disk");
        assert_absent(&server, "roomy", version);
    }
    assert_reads(&server, "roomy");

    // Space again: the same versions are taken (none was burned), no restart.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(publish(&server, &token, "roomy", "1.1.0").status(), 201);
    assert_eq!(publish(&server, &token, "roomy", "1.2.0").status(), 201);
    let index = server.get("/index/ro/om/roomy").text().unwrap();
    assert_eq!(index.lines().count(), 3, "{index}");
    let health: Value = server.get("/api/v1/health").json().unwrap();
    assert_eq!(health["status"], "ok", "{health}");
}

#[test]
fn a_server_on_a_read_only_filesystem_serves_reads_and_takes_writes_once_remounted() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("mnt"), 64) else { return };
    let data = fs.0.join("data");
    let mut server = Server::start(&data);
    let token = server.token.clone().unwrap();
    assert_eq!(publish(&server, &token, "steady", "1.0.0").status(), 201);

    // Linux refuses to remount read-only while a process holds files open
    // for writing (EBUSY), so a running server never sees its storage turn
    // read-only but through the kernel's errors=remount-ro; its write path
    // under failing storage is the fsync test's. A start on storage that is
    // read-only already:
    server.kill();
    fs.remount("ro");
    let server = Server::start(&data);
    assert_reads(&server, "steady");
    let whoami =
        support::client().get(format!("{}/api/v1/whoami", server.url)).bearer_auth(&token).send().unwrap();
    assert_eq!(whoami.status(), 200, "tokens still authenticate");
    assert_unavailable(publish(&server, &token, "steady", "1.1.0"), "publish on a read-only filesystem");
    fs.remount("rw");
    assert_eq!(publish(&server, &token, "steady", "1.1.0").status(), 201, "writes again, without a restart");
    let index = server.get("/index/st/ea/steady").text().unwrap();
    assert_eq!(index.lines().count(), 2, "{index}");
}

/// An LD_PRELOAD library whose fsync, fdatasync and syncfs fail with EIO
/// while the file named by CAIRN_FAULT_FSYNC exists.
fn fsync_shim(dir: &Path) -> PathBuf {
    let src = dir.join("shim.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
static int failing(void) {
    const char *flag = getenv("CAIRN_FAULT_FSYNC");
    return flag && access(flag, F_OK) == 0;
}
#define SHIM(name) int name(int fd) { \
    static int (*real)(int); \
    if (failing()) { errno = EIO; return -1; } \
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, #name); \
    return real(fd); }
SHIM(fsync)
SHIM(fdatasync)
SHIM(syncfs)
"#,
    )
    .unwrap();
    let so = dir.join("shim.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));
    so
}

#[test]
fn a_write_whose_fsync_fails_is_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let shim = fsync_shim(dir.path());
    let flag = dir.path().join("fail-fsync");
    let (shim_s, flag_s) = (shim.to_str().unwrap(), flag.to_str().unwrap());
    let env = [("CAIRN_RATE_LIMIT", "off"), ("LD_PRELOAD", shim_s), ("CAIRN_FAULT_FSYNC", flag_s)];
    let server = Server::start_with_env(&dir.path().join("data"), &env);
    let token = server.token.clone().unwrap();
    assert_eq!(publish(&server, &token, "synced", "1.0.0").status(), 201);

    std::fs::write(&flag, b"").unwrap();
    for version in ["1.1.0", "1.2.0"] {
        let r = publish(&server, &token, "synced", version);
        assert_ne!(r.status(), 201, "a publish whose fsync failed was acknowledged");
        assert_unavailable(r, "publish with fsync failing");
    }
    // Owners and tokens go through SQLite's own fsyncs: refused too.
    let r = support::client()
        .put(format!("{}/api/v1/packages/synced/owners", server.url))
        .bearer_auth(&token)
        .body(r#"{"users":["admin"]}"#)
        .send()
        .unwrap();
    assert_ne!(r.status(), 200, "an owner change whose fsync failed was acknowledged");
    std::fs::remove_file(&flag).unwrap();
    assert_absent(&server, "synced", "1.1.0");
    assert_eq!(publish(&server, &token, "synced", "1.1.0").status(), 201);
    assert_eq!(publish(&server, &token, "synced", "1.2.0").status(), 201);
}

#[test]
fn a_failed_effect_still_answers_201_reports_degraded_and_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let token = server.token.clone().unwrap();
    assert_eq!(publish(&server, &token, "blocked", "1.0.0").status(), 201);
    let health_file = server.static_root().join("api/v1/health.json");
    let health_json = || support::read_json(health_file.clone());
    let before = health_json()["indexCommit"].clone();

    // The package's document directory is a file now: its derived files
    // cannot be written (root ignores permissions, so not a chmod).
    let pkg_dir = server.static_root().join("api/v1/packages/blocked");
    std::fs::remove_dir_all(&pkg_dir).unwrap();
    std::fs::write(&pkg_dir, b"in the way").unwrap();
    let r = publish(&server, &token, "blocked", "1.1.0");
    assert_eq!(r.status(), 201, "the commit is durable: the answer is success");
    let published: Value = r.json().unwrap();
    let health: Value = server.get("/api/v1/health").json().unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["pending"].to_string().contains("bl/oc/blocked"), "{health}");
    // The index has the line at once; a later group does not hide the debt.
    assert!(server.get("/index/bl/oc/blocked").text().unwrap().contains("\"1.1.0\""));
    assert_eq!(publish(&server, &token, "other", "1.0.0").status(), 201);
    assert_eq!(health_json()["indexCommit"], before, "health.json does not move past a pending effect");

    // A restart while it is pending keeps it pending (and says so).
    server.kill();
    let mut server = Server::start(&data);
    let health: Value = server.get("/api/v1/health").json().unwrap();
    assert_eq!(health["status"], "degraded", "after a restart: {health}");

    // Once the obstacle is gone, the writer's retry makes it.
    std::fs::remove_file(server.static_root().join("api/v1/packages/blocked")).unwrap();
    support::eventually(
        || server.get("/api/v1/health").json::<Value>().unwrap()["status"] == "ok",
        || format!("still pending: {}", server.get("/api/v1/health").text().unwrap()),
    );
    let doc: Value = server.get("/api/v1/packages/blocked.json").json().unwrap();
    assert_eq!(doc["latestVersion"], "1.1.0");
    assert_eq!(server.get("/api/v1/packages/blocked/1.1.0.json").status(), 200);
    assert_ne!(health_json()["indexCommit"], before, "health.json caught up");
    server.kill();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn")).args(["fsck", "--data"]).arg(&data).output().unwrap();
    assert!(
        out.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(published["version"], "1.1.0");
}

#[test]
fn a_deprecation_whose_meta_copy_fails_stays_pending_until_made() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let token = server.token.clone().unwrap();
    assert_eq!(publish(&server, &token, "aged", "1.0.0").status(), 201);
    // The static copy of the index's meta/ directory is a file: the copy cannot be written.
    let meta_dir = server.static_root().join("index/meta");
    let _ = std::fs::remove_dir_all(&meta_dir);
    std::fs::write(&meta_dir, b"in the way").unwrap();
    let r = support::client()
        .patch(format!("{}/api/v1/packages/aged", server.url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"deprecated": "use young"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "the commit is durable: the answer is success");
    // The plan's typed effect (its meta file) is owed, not forgotten.
    let health: Value = server.get("/api/v1/health").json().unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["pending"].to_string().contains("the meta file of aged"), "{health}");

    std::fs::remove_file(&meta_dir).unwrap();
    support::eventually(
        || server.get("/api/v1/health").json::<Value>().unwrap()["status"] == "ok",
        || format!("still pending: {}", server.get("/api/v1/health").text().unwrap()),
    );
    let meta: Value = server.get("/index/meta/ag/ed/aged.json").json().unwrap();
    assert_eq!(meta["deprecated"], "use young");
    let doc: Value = server.get("/api/v1/packages/aged.json").json().unwrap();
    assert_eq!(doc["deprecated"], "use young");
}
