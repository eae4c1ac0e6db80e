//! Download statistics from access logs (SPEC sections 6 and 9): what is
//! counted, what is skipped, that no line is ever counted twice, and the
//! documents `cairn rebuild stats` writes.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use support::{read_json, validate, Server};

fn publish(server: &Server, name: &str, version: &str) -> String {
    let token = server.token.clone().unwrap();
    let resp =
        server.put(name, version, &token, TarballBuilder::new(name, version).gzip(), "application/gzip");
    assert_eq!(resp.status(), 201, "{name} {version}");
    resp.json::<Value>().unwrap()["sha256"].as_str().unwrap().to_string()
}

fn line(ip: &str, ts: &str, request: &str, status: u16) -> String {
    sized(ip, ts, request, status, 5120)
}

fn sized(ip: &str, ts: &str, request: &str, status: u16, bytes: u64) -> String {
    format!("{ip} - - [{ts}] \"{request}\" {status} {bytes} \"-\" \"cargo/1.80.0 (linux)\"\n")
}

fn get(sha: &str) -> String {
    format!("GET /blobs/sha256/{sha} HTTP/1.1")
}

fn rebuild_stats(data: &Path, logs: &[&Path]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(["rebuild", "stats", "--data"]).arg(data);
    for log in logs {
        cmd.arg("--access-log").arg(log);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["stats"].clone()
}

fn daily(doc: &Value, date: &str) -> u64 {
    doc["daily"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["date"] == date)
        .map_or(0, |d| d["downloads"].as_u64().unwrap())
}

#[test]
fn counts_downloads_once_per_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let foo1 = publish(&server, "foo", "1.0.0");
    let foo2 = publish(&server, "foo", "1.1.0");
    let bar = publish(&server, "Bar_Baz", "0.1.0");
    publish(&server, "quiet", "1.0.0");

    let first = line("198.51.100.1", "01/Mar/2026:10:00:00 +0000", &get(&foo1), 200);
    let mut log = String::new();
    log += &first;
    log += &first; // two identical lines in one file: two downloads
                   // A 206 counts when its bytes are the whole blob (a download resumed
                   // from the start), not when they are a piece of it.
    let foo1_size = std::fs::metadata(data.join("static/blobs/sha256").join(&foo1)).unwrap().len();
    log += &sized("198.51.100.2", "02/Mar/2026:08:00:00 +0000", &get(&foo1), 206, foo1_size);
    log += &sized("198.51.100.2", "02/Mar/2026:08:00:01 +0000", &get(&foo1), 206, foo1_size - 1);
    // 23:30 at -0200 is 01:30 UTC on March 3rd.
    log += &line("198.51.100.3", "02/Mar/2026:23:30:00 -0200", &get(&foo2), 200);
    log += &line("198.51.100.4", "03/Mar/2026:12:00:00 +0000", &get(&foo2), 404);
    log += &line(
        "198.51.100.4",
        "03/Mar/2026:12:00:00 +0000",
        &format!("HEAD /blobs/sha256/{foo1} HTTP/1.1"),
        200,
    );
    log += &line("198.51.100.4", "03/Mar/2026:12:00:01 +0000", "GET /index/3/f/foo HTTP/1.1", 200);
    log += &line(
        "198.51.100.4",
        "03/Mar/2026:12:00:02 +0000",
        &format!("GET /blobs/sha256/{foo1}.minisig HTTP/1.1"),
        200,
    );
    log += &line(
        "198.51.100.4",
        "03/Mar/2026:12:00:03 +0000",
        &format!("POST /blobs/sha256/{foo1} HTTP/1.1"),
        200,
    );
    log += "this is not a log line\n";
    log += "198.51.100.5 - - [03/Mar/2026:12:00:04 +0000] \"GET /blobs/sha256/trunc\n";
    log += &line("198.51.100.6", "03/Mar/2026:13:00:00 +0000", &get(&bar), 200);
    log += &line("198.51.100.7", "03/Mar/2026:13:00:00 +0000", &get(&"ab".repeat(32)), 200);
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let access = logs.join("access.log");
    std::fs::write(&access, &log).unwrap();

    let r = rebuild_stats(&data, &[&access]);
    assert_eq!(r["lines"], 14, "{r:#}");
    assert_eq!(r["counted"], 5, "{r:#}");
    assert_eq!(r["malformedSkipped"], 2, "{r:#}");
    assert_eq!(r["notDownloads"], 6, "{r:#}");
    assert_eq!(r["unknownBlobs"], 1, "{r:#}");
    assert_eq!(r["duplicatesSkipped"], 0, "{r:#}");
    assert_eq!(r["malformedSamples"][0], format!("{}:11", access.display()), "{r:#}");

    // The same file again, a renamed copy and a gzipped rotated copy: nothing new.
    let renamed = logs.join("access.log.1");
    std::fs::copy(&access, &renamed).unwrap();
    let gz = logs.join("access.log.2.gz");
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    enc.write_all(log.as_bytes()).unwrap();
    enc.finish().unwrap();
    let r = rebuild_stats(&data, &[&access, &renamed, &gz]);
    assert_eq!(r["lines"], 42, "{r:#}");
    assert_eq!(r["counted"], 0, "{r:#}");
    assert_eq!(r["duplicatesSkipped"], 15, "{r:#}");
    assert_eq!(r["malformedSkipped"], 6, "{r:#}");

    // The file grew: only its new lines count, and a third copy of the
    // repeated line is a third download.
    let mut grown = std::fs::OpenOptions::new().append(true).open(&access).unwrap();
    grown.write_all(first.as_bytes()).unwrap();
    grown.write_all(line("198.51.100.8", "03/Mar/2026:18:00:00 +0000", &get(&foo2), 200).as_bytes()).unwrap();
    drop(grown);
    let r = rebuild_stats(&data, &[&access]);
    assert_eq!(r["counted"], 2, "{r:#}");
    assert_eq!(r["duplicatesSkipped"], 5, "{r:#}");

    // foo 1.0.0: 3 on March 1st, 1 on the 2nd; foo 1.1.0: 2 on the 3rd; Bar_Baz: 1 on the 3rd.
    let root = server.static_root();
    let foo = read_json(root.join("api/v1/packages/foo/stats.json"));
    validate("package-stats", &foo);
    assert_eq!(foo["name"], "foo");
    assert_eq!(foo["total"], 6, "{foo:#}");
    assert_eq!(foo["recent90d"], 6);
    assert_eq!(foo["last7d"], 6);
    assert_eq!(foo["dataThrough"], "2026-03-03");
    let series = foo["daily"].as_array().unwrap();
    assert_eq!(series.len(), 90);
    assert_eq!(series[89]["date"], "2026-03-03");
    assert_eq!(series[0]["date"], "2025-12-04");
    assert_eq!((daily(&foo, "2026-03-01"), daily(&foo, "2026-03-02"), daily(&foo, "2026-03-03")), (3, 1, 2));
    let versions = foo["versions"].as_array().unwrap();
    assert_eq!(versions[0]["version"], "1.1.0", "newest first");
    assert_eq!((versions[0]["downloads"].as_u64(), versions[1]["downloads"].as_u64()), (Some(2), Some(4)));

    let bar_stats = read_json(root.join("api/v1/packages/bar_baz/stats.json"));
    validate("package-stats", &bar_stats);
    assert_eq!((bar_stats["name"].as_str(), bar_stats["total"].as_u64()), (Some("Bar_Baz"), Some(1)));
    let quiet = read_json(root.join("api/v1/packages/quiet/stats.json"));
    validate("package-stats", &quiet);
    assert_eq!(quiet["total"], 0);

    let all = read_json(root.join("api/v1/stats.json"));
    validate("stats", &all);
    assert_eq!(
        (all["total"].as_u64(), all["packages"].as_u64(), all["versions"].as_u64()),
        (Some(7), Some(3), Some(4))
    );
    assert_eq!(all["dataThrough"], "2026-03-03");
    assert_eq!(daily(&all, "2026-03-03"), 3);
    let top: Vec<&str> =
        all["topAllTime"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(top, ["foo", "Bar_Baz"], "packages without downloads are left out");
    assert_eq!(all["topRecent90d"][0]["downloads"], 6);

    // The package and version documents carry the counts after `rebuild stats`.
    let doc = read_json(root.join("api/v1/packages/foo.json"));
    assert_eq!(doc["downloads"], 6, "{doc:#}");
    let v1 = doc["versions"].as_array().unwrap().iter().find(|v| v["version"] == "1.0.0").unwrap();
    assert_eq!(v1["downloads"], 4);
    assert_eq!(read_json(root.join("api/v1/packages/foo/1.1.0.json"))["downloads"], 2);

    // Nothing new: the documents stay byte for byte.
    let before = std::fs::read(root.join("api/v1/packages/foo/stats.json")).unwrap();
    let r = rebuild_stats(&data, &[&access, &gz]);
    assert_eq!(r["counted"], 0);
    assert_eq!(r["documents"]["written"], 0, "{r:#}");
    assert_eq!(std::fs::read(root.join("api/v1/packages/foo/stats.json")).unwrap(), before);

    // `rebuild stats` rewrites only the documents of packages with new
    // counts (here none: a removed one stays removed); `rebuild static`
    // rewrites them all.
    let quiet = root.join("api/v1/packages/quiet/1.0.0.json");
    std::fs::remove_file(&quiet).unwrap();
    rebuild_stats(&data, &[&access]);
    assert!(!quiet.exists());
    let out =
        Command::new(env!("CARGO_BIN_EXE_cairn")).args(["rebuild", "static", "--data"]).arg(&data).output();
    assert!(out.unwrap().status.success());
    assert_eq!(read_json(quiet)["downloads"], 0);
}

#[test]
fn a_missing_log_is_an_error_and_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let sha = publish(&server, "solo", "1.0.0");
    let good = dir.path().join("good.log");
    std::fs::write(&good, line("192.0.2.1", "05/Apr/2026:00:00:00 +0000", &get(&sha), 200)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["rebuild", "stats", "--data"])
        .arg(&data)
        .arg("--access-log")
        .arg(&good)
        .arg("--access-log")
        .arg(dir.path().join("missing.log"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.log"));
    // The good file was not counted half: a later run counts it once.
    assert_eq!(rebuild_stats(&data, &[&good])["counted"], 1);
    assert_eq!(read_json(server.static_root().join("api/v1/packages/solo/stats.json"))["total"], 1);
}

#[test]
fn a_line_still_being_written_is_counted_once_it_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let sha = publish(&server, "growing", "1.0.0");
    let log = dir.path().join("access.log");
    let whole = line("192.0.2.1", "05/Apr/2026:00:00:00 +0000", &get(&sha), 200);
    let second = line("192.0.2.2", "05/Apr/2026:00:00:01 +0000", &get(&sha), 200);
    // The web server has written the first line and part of the second.
    let cut = second.len() - 20;
    std::fs::write(&log, format!("{whole}{}", &second[..cut])).unwrap();
    let r = rebuild_stats(&data, &[&log]);
    assert_eq!(r["counted"], 1, "{r:#}");
    assert_eq!(r["malformedSkipped"], 0, "{r:#}");
    assert_eq!(r["files"][0]["partialLastLineBytes"], cut as u64);
    // The rest of the line arrives: it counts once, the first line not again.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(&second.as_bytes()[cut..])
        .unwrap();
    let r = rebuild_stats(&data, &[&log]);
    assert_eq!(r["counted"], 1, "{r:#}");
    assert_eq!(r["files"][0]["partialLastLineBytes"], 0);
    assert_eq!(read_json(server.static_root().join("api/v1/packages/growing/stats.json"))["total"], 2);
}

#[test]
fn the_server_counts_configured_logs_on_a_timer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let sha = publish(&server, "timed", "1.0.0");
    server.kill();
    let log = dir.path().join("access.log");
    std::fs::write(&log, line("192.0.2.1", "05/Apr/2026:00:00:00 +0000", &get(&sha), 200)).unwrap();
    let logs = format!("access_logs = [{:?}]", log.display().to_string());
    support::set_config(&data, &[("stats_interval = 0", "stats_interval = 1"), ("access_logs = []", &logs)]);
    let server = Server::start(&data);

    let total = || {
        let resp = server.get("/api/v1/packages/timed/stats.json");
        if resp.status() == 200 {
            resp.json::<Value>().unwrap()["total"].as_u64().unwrap()
        } else {
            0
        }
    };
    let wait_for =
        |n: u64| support::eventually(|| total() == n, || format!("stats.json total never reached {n}"));
    wait_for(1);
    // The package document follows within the same run (stats.json is written first).
    let downloads =
        || server.get("/api/v1/packages/timed.json").json::<Value>().unwrap()["downloads"].clone();
    support::eventually(|| downloads() == 1, || format!("timed.json downloads: {}", downloads()));
    // The next line appended to the same log is counted by a later tick, the first never again.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(line("192.0.2.2", "05/Apr/2026:00:00:09 +0000", &get(&sha), 200).as_bytes())
        .unwrap();
    wait_for(2);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(total(), 2);
}

#[test]
fn a_window_bounds_what_is_counted_and_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let sha = publish(&server, "windowed", "1.0.0");
    let today = chrono::Utc::now().date_naive();
    let days_ago = |n: i64| (today - chrono::Duration::days(n)).format("%d/%b/%Y:00:00:01 +0000").to_string();
    let log = dir.path().join("access.log");
    let lines: String =
        [0, 10, 100].iter().map(|&n| line("198.51.100.7", &days_ago(n), &get(&sha), 200)).collect();
    std::fs::write(&log, lines).unwrap();
    let first_seen_day = || -> i64 {
        let conn = rusqlite::Connection::open(data.join("state.db")).unwrap();
        conn.query_row("SELECT MIN(day) FROM stats_seen", [], |r| r.get(0)).unwrap()
    };
    let today_n = today.signed_duration_since(chrono::NaiveDate::default()).num_days();

    support::set_config(&data, &[("stats_window_days = 0", "stats_window_days = 30")]);
    let run = rebuild_stats(&data, &[&log]);
    assert_eq!((run["counted"].as_u64(), run["expiredSkipped"].as_u64()), (Some(2), Some(1)), "{run:#}");
    assert_eq!(first_seen_day(), today_n - 10);

    // A narrower window drops the fingerprints of the 10-day-old line, and
    // the line is not counted again: it is outside the window too.
    support::set_config(&data, &[("stats_window_days = 30", "stats_window_days = 5")]);
    let run = rebuild_stats(&data, &[&log]);
    let got = (&run["counted"], &run["expiredSkipped"], &run["duplicatesSkipped"]);
    assert_eq!(got, (&Value::from(0), &Value::from(2), &Value::from(1)), "{run:#}");
    assert_eq!(first_seen_day(), today_n);

    // Widening it again cannot bring the dropped days back.
    support::set_config(&data, &[("stats_window_days = 5", "stats_window_days = 0")]);
    let run = rebuild_stats(&data, &[&log]);
    assert_eq!((run["counted"].as_u64(), run["expiredSkipped"].as_u64()), (Some(0), Some(2)), "{run:#}");
    let doc = read_json(data.join("static/api/v1/packages/windowed/stats.json"));
    assert_eq!(doc["total"], 2, "{doc:#}");
}
