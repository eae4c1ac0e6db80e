//! The batch jobs on a small generated registry (issue 4): `cairn init`,
//! the synthetic generator (`tools/bench/prefill.rs`, the `bench-prefill`
//! example) with several versions per package and skewed download totals,
//! then `cairn rebuild all`, checked the way a user would see the result:
//! the report's counts against the index itself, every JSON document against
//! its schema, package and version documents against the index lines and
//! the download totals, the three listings, search through a served
//! registry, and a second static rebuild that writes nothing.
//!
//! Expected values come from what the generator wrote (the index at `main`
//! in `static/index.git`, the download totals in `state.db`), never from
//! constants: the generator draws version counts at random.

use crate::support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::Server;

const PACKAGES: usize = 400;
/// Versions in all, about: the generator draws each package's count.
const VERSIONS: usize = 3000;
const SEED: &str = "4";
/// Rows per listing page.
const PAGE: usize = 100;
/// Packages searched for by exact name.
const SEARCHED: usize = 20;

/// The generator, built by `cargo test` next to the binaries
/// (`{target}/debug/examples/`, with or without CARGO_TARGET_DIR).
fn prefill_exe() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_cairn"));
    let exe =
        bin.parent().unwrap().join("examples").join(format!("bench-prefill{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.is_file(),
        "the generator {} is missing: a plain `cargo test` builds it; with `cargo test --test generated` \
         build it first with `cargo build --example bench-prefill`",
        exe.display()
    );
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&exe) < modified(bin) {
        eprintln!(
            "note: {} is older than {}; if it is stale, rebuild it with `cargo build --example bench-prefill`",
            exe.display(),
            bin.display()
        );
    }
    exe
}

/// Runs `cmd`, panics with its stderr unless it succeeds, returns stdout.
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.env("CAIRN_LOG", "warn").output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

fn rebuild(data: &Path, job: &str) -> Value {
    let stdout = run(cairn().args(["rebuild", job, "--data"]).arg(data));
    serde_json::from_slice(&stdout).unwrap_or_else(|e| panic!("rebuild {job} prints JSON: {e}"))
}

/// One package as the index holds it.
struct Pkg {
    /// The name as published.
    name: String,
    /// The file's path in the index.
    path: String,
    /// Its lines, in file order.
    lines: Vec<Value>,
}

impl Pkg {
    fn pubtimes(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| l["pubtime"].as_str())
    }
}

/// The index at `main`: its commit, every file's bytes (by path) and the
/// packages by lowercase name.
fn index_at_main(data: &Path) -> (String, BTreeMap<String, Vec<u8>>, BTreeMap<String, Pkg>) {
    let repo = git2::Repository::open_bare(data.join("static/index.git")).unwrap();
    let head = repo.refname_to_id("refs/heads/main").unwrap();
    let tree = repo.find_commit(head).unwrap().tree().unwrap();
    let mut files = BTreeMap::new();
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            let blob = repo.find_blob(entry.id()).unwrap();
            files.insert(format!("{dir}{}", entry.name().unwrap()), blob.content().to_vec());
        }
        git2::TreeWalkResult::Ok
    })
    .unwrap();
    let mut packages = BTreeMap::new();
    for (path, bytes) in &files {
        if path == "config.json" || path.starts_with("advisories/") {
            continue;
        }
        let lines: Vec<Value> = std::str::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("index {path}: {e}")))
            .collect();
        assert!(!lines.is_empty(), "index {path} is empty");
        let name = lines[0]["name"].as_str().unwrap().to_string();
        assert!(lines.iter().all(|l| l["name"] == name.as_str()), "index {path} mixes names");
        let pkg = Pkg { name: name.clone(), path: path.clone(), lines };
        assert!(packages.insert(name.to_ascii_lowercase(), pkg).is_none(), "{name} twice in the index");
    }
    (head.to_string(), files, packages)
}

/// Download totals by (lowercase name, version), as the generator recorded them.
fn download_totals(data: &Path) -> HashMap<(String, String), u64> {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT p.name, t.vers, t.total FROM stats_totals t JOIN packages p ON p.key = t.package")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(((r.get::<_, String>(0)?.to_ascii_lowercase(), r.get::<_, String>(1)?), r.get::<_, i64>(2)?))
        })
        .unwrap();
    rows.map(|r| {
        let (k, v) = r.unwrap();
        (k, v as u64)
    })
    .collect()
}

fn version_of(v: &Value) -> semver::Version {
    semver::Version::parse(v.as_str().unwrap()).unwrap()
}

/// Every file under `root`, by path relative to it.
fn files_under(root: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned(), e.path().to_path_buf())
        })
        .collect();
    v.sort();
    v
}

/// Panics listing the first failures, if any.
fn report(what: &str, failures: &[String]) {
    let shown: Vec<&String> = failures.iter().take(30).collect();
    assert!(failures.is_empty(), "{what}: {} failures, first:\n{shown:#?}", failures.len());
}

#[test]
fn a_generated_registry_rebuilds_end_to_end() {
    let prefill = prefill_exe();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("registry");
    let t = Instant::now();
    run(cairn().args(["init", "--data"]).arg(&data));
    run(Command::new(&prefill).arg("--data").arg(&data).args([
        "--packages",
        &PACKAGES.to_string(),
        "--versions",
        &VERSIONS.to_string(),
        "--seed",
        SEED,
        "--no-docs",
        "--downloads",
    ]));
    eprintln!("init + prefill: {:.1?}", t.elapsed());

    // What the generator wrote: the index and the download totals.
    let (head, index_files, packages) = index_at_main(&data);
    let lines: usize = packages.values().map(|p| p.lines.len()).sum();
    assert_eq!(packages.len(), PACKAGES, "packages in the generated index");
    assert!(lines > 2 * PACKAGES, "the generator made few versions per package: {lines}");
    let totals = download_totals(&data);
    let downloads = |lower: &str, vers: &Value| -> u64 {
        totals.get(&(lower.to_string(), vers.as_str().unwrap().to_string())).copied().unwrap_or(0)
    };
    assert!(totals.values().sum::<u64>() > 0, "the generator recorded no downloads");

    // The rebuild's report counts what the index holds.
    let t = Instant::now();
    let all = rebuild(&data, "all");
    eprintln!("rebuild all: {:.1?}; {PACKAGES} packages, {lines} versions", t.elapsed());
    assert_eq!(all["static"]["packages"], PACKAGES, "{all:#}");
    assert_eq!(all["static"]["versions"], lines, "{all:#}");
    // Three sorts of every package, then the kind and keyword listings.
    let listing_pages = all["static"]["listingPages"].as_u64().unwrap() as usize;
    assert!(listing_pages > 3 * PACKAGES.div_ceil(PAGE), "{all:#}");
    assert_eq!(all["search"]["packages"], PACKAGES, "{all:#}");

    let t = Instant::now();
    let root = data.join("static");
    let json = |rel: &str| support::read_json(root.join(rel));

    // The static index copy is the index at `main`, file for file.
    let copy: BTreeMap<String, Vec<u8>> = files_under(&root.join("index"))
        .into_iter()
        .filter(|(rel, _)| !rel.contains(".tmp-"))
        .map(|(rel, path)| (rel, std::fs::read(path).unwrap()))
        .collect();
    let missing: Vec<&String> = index_files.keys().filter(|p| !copy.contains_key(*p)).collect();
    let extra: Vec<&String> = copy.keys().filter(|p| !index_files.contains_key(*p)).collect();
    let differ: Vec<&String> =
        index_files.iter().filter(|(p, b)| copy.get(*p).is_some_and(|c| c != *b)).map(|(p, _)| p).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "static/index against index.git: missing {missing:?}, extra {extra:?}, different {differ:?}"
    );

    // Every JSON document validates against its schema, and none lacks one.
    let (failures, checked) = support::validate_static_tree(&root);
    report("schemas", &failures);
    eprintln!("validated: {checked:?}");
    assert_eq!(checked.get("package"), Some(&PACKAGES), "package documents: {checked:?}");
    assert_eq!(checked.get("version"), Some(&lines), "version documents: {checked:?}");
    assert_eq!(checked.get("owners"), Some(&PACKAGES), "owners documents: {checked:?}");
    assert_eq!(checked.get("listing"), Some(&listing_pages), "listing pages: {checked:?}");
    for schema in
        ["index-config", "index-line", "health", "recent", "user", "search-manifest", "search-shard"]
    {
        assert!(checked.contains_key(schema), "nothing checked against {schema}: {checked:?}");
    }

    // Package, owners and version documents: one per package, one entry and
    // one document per index line, with the recorded downloads.
    let mut failures = Vec::new();
    let mut fail = |f: String| failures.push(f);
    let mut docs: HashMap<String, Value> = HashMap::new();
    for (lower, p) in &packages {
        let doc = json(&format!("api/v1/packages/{lower}.json"));
        let name = p.name.as_str();
        if doc["name"] != name || doc["id"] != lower.as_str() {
            fail(format!("{lower}: name {} id {}", doc["name"], doc["id"]));
        }
        let entries = doc["versions"].as_array().unwrap();
        if entries.len() != p.lines.len() {
            fail(format!("{name}: {} version entries for {} index lines", entries.len(), p.lines.len()));
        }
        let by_version: HashMap<&str, &Value> =
            entries.iter().map(|e| (e["version"].as_str().unwrap(), e)).collect();
        let order: Vec<semver::Version> = entries.iter().map(|e| version_of(&e["version"])).collect();
        if !order.windows(2).all(|w| w[0] > w[1]) {
            fail(format!("{name}: versions not newest first: {order:?}"));
        }
        let mut total = 0;
        for line in &p.lines {
            let vers = line["vers"].as_str().unwrap();
            let want = downloads(lower, &line["vers"]);
            total += want;
            let Some(e) = by_version.get(vers) else {
                fail(format!("{name}: no entry for {vers}"));
                continue;
            };
            for (field, from) in [
                ("sha256", &line["cksum"]),
                ("blake3", &line["blake3"]),
                ("sizeBytes", &line["size"]),
                ("publishedAt", &line["pubtime"]),
                ("yanked", &line["yanked"]),
            ] {
                if &e[field] != from {
                    fail(format!("{name} {vers}: entry {field} {} but the index says {from}", e[field]));
                }
            }
            if e["downloads"] != want {
                fail(format!("{name} {vers}: entry downloads {} but {want} recorded", e["downloads"]));
            }
            let vdoc = json(&format!("api/v1/packages/{lower}/{vers}.json"));
            if vdoc["name"] != name || vdoc["version"] != vers || vdoc["sha256"] != line["cksum"] {
                fail(format!(
                    "{name} {vers}: version document says {} {} {}",
                    vdoc["name"], vdoc["version"], vdoc["sha256"]
                ));
            }
            if vdoc["downloads"] != want {
                fail(format!(
                    "{name} {vers}: version document downloads {} but {want} recorded",
                    vdoc["downloads"]
                ));
            }
            if vdoc["indexPath"] != format!("/index/{}", p.path) {
                fail(format!("{name} {vers}: indexPath {} but the file is {}", vdoc["indexPath"], p.path));
            }
            if vdoc["dependencies"].as_array().map(Vec::len) != line["deps"].as_array().map(Vec::len) {
                fail(format!("{name} {vers}: dependencies differ from the index line"));
            }
        }
        if doc["downloads"] != total {
            fail(format!("{name}: downloads {} but {total} recorded", doc["downloads"]));
        }
        let latest = p
            .lines
            .iter()
            .filter(|l| l["yanked"] != true)
            .map(|l| version_of(&l["vers"]))
            .filter(|v| v.pre.is_empty())
            .max()
            .map(|v| v.to_string());
        if doc["latestVersion"].as_str().map(String::from) != latest {
            fail(format!("{name}: latestVersion {} but {latest:?}", doc["latestVersion"]));
        }
        let updated = p.pubtimes().max();
        if doc["updatedAt"].as_str() != updated || doc["createdAt"] != p.lines[0]["pubtime"] {
            fail(format!(
                "{name}: createdAt {} updatedAt {} for pubtimes {:?}",
                doc["createdAt"],
                doc["updatedAt"],
                p.pubtimes().collect::<Vec<_>>()
            ));
        }
        if doc["owners"] != serde_json::json!(["admin"]) {
            fail(format!("{name}: owners {}", doc["owners"]));
        }
        let owners = json(&format!("api/v1/packages/{lower}/owners.json"));
        if owners != serde_json::json!({ "owners": [{ "login": "admin" }] }) {
            fail(format!("{name}: owners.json {owners}"));
        }
        // Nothing but this package's documents in its directory.
        let versions: BTreeSet<String> =
            p.lines.iter().map(|l| format!("{}.json", l["vers"].as_str().unwrap())).collect();
        for (rel, _) in files_under(&root.join(format!("api/v1/packages/{lower}"))) {
            if !versions.contains(&rel)
                && !["owners.json", "stats.json", "dependents.json"].contains(&rel.as_str())
            {
                fail(format!("{name}: unexpected api/v1/packages/{lower}/{rel}"));
            }
        }
        docs.insert(lower.clone(), doc);
    }
    let doc_files: BTreeSet<String> = std::fs::read_dir(root.join("api/v1/packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".json").map(String::from))
        .collect();
    let names: BTreeSet<String> = packages.keys().cloned().collect();
    if doc_files != names {
        fail(format!(
            "package documents {} for {} packages: extra {:?}",
            doc_files.len(),
            names.len(),
            doc_files.difference(&names).collect::<Vec<_>>()
        ));
    }
    report("package and version documents", &failures);

    // Listings: every package once, in its order, summarised as its document says.
    let mut failures = Vec::new();
    let pages = PACKAGES.div_ceil(PAGE);
    for sort in ["name", "newest", "downloads"] {
        let mut rows = Vec::new();
        for page in 1..=pages {
            let doc = json(&format!("api/v1/listings/{sort}/{page}.json"));
            let want = serde_json::json!({
                "sort": sort, "page": page, "pages": pages, "perPage": PAGE, "total": PACKAGES,
            });
            for (k, v) in want.as_object().unwrap() {
                if &doc[k] != v {
                    failures.push(format!("{sort}/{page}.json: {k} {} not {v}", doc[k]));
                }
            }
            let n = doc["packages"].as_array().unwrap().len();
            if n != PAGE.min(PACKAGES - (page - 1) * PAGE) {
                failures.push(format!("{sort}/{page}.json: {n} rows"));
            }
            rows.extend(doc["packages"].as_array().unwrap().iter().cloned());
        }
        if root.join(format!("api/v1/listings/{sort}/{}.json", pages + 1)).exists() {
            failures.push(format!("{sort}: a page past the last"));
        }
        let listed: Vec<String> =
            rows.iter().map(|r| r["name"].as_str().unwrap().to_ascii_lowercase()).collect();
        if listed.iter().cloned().collect::<BTreeSet<_>>() != names || listed.len() != PACKAGES {
            failures.push(format!("{sort}: {} rows, not each package once", listed.len()));
        }
        for row in &rows {
            let lower = row["name"].as_str().unwrap().to_ascii_lowercase();
            let Some(doc) = docs.get(&lower) else { continue };
            for (field, of_doc) in [
                ("name", "name"),
                ("latestVersion", "latestVersion"),
                ("downloads", "downloads"),
                ("updatedAt", "updatedAt"),
                ("createdAt", "createdAt"),
                ("kind", "kind"),
                ("description", "description"),
            ] {
                if row[field] != doc[of_doc] {
                    failures.push(format!(
                        "{sort}: {lower} {field} {} but its document says {}",
                        row[field], doc[of_doc]
                    ));
                }
            }
        }
        // Names by lowercase, ascending; the others by their key, descending.
        let key = |r: &Value| match sort {
            "name" => r["name"].clone(),
            "newest" => r["updatedAt"].clone(),
            _ => r["downloads"].clone(),
        };
        let in_order = |a: &Value, b: &Value| match sort {
            "name" => {
                a["name"].as_str().map(str::to_ascii_lowercase)
                    < b["name"].as_str().map(str::to_ascii_lowercase)
            }
            "newest" => a["updatedAt"].as_str() >= b["updatedAt"].as_str(),
            _ => a["downloads"].as_u64() >= b["downloads"].as_u64(),
        };
        if let Some(i) = rows.windows(2).position(|w| !in_order(&w[0], &w[1])) {
            failures.push(format!(
                "{sort}: rows {} and {} out of order: {} ({}) before {} ({})",
                i + 1,
                i + 2,
                rows[i]["name"],
                key(&rows[i]),
                rows[i + 1]["name"],
                key(&rows[i + 1])
            ));
        }
    }
    report("listings", &failures);

    // Summaries agree with the index.
    let health = json("api/v1/health.json");
    assert_eq!(
        (health["packages"].as_u64(), health["versions"].as_u64()),
        (Some(PACKAGES as u64), Some(lines as u64)),
        "{health:#}"
    );
    assert_eq!(health["indexCommit"], head, "{health:#}");
    let recent = json("api/v1/recent.json");
    let times: Vec<&str> =
        recent["publishes"].as_array().unwrap().iter().map(|r| r["publishedAt"].as_str().unwrap()).collect();
    assert_eq!(times.len(), lines.min(100), "recent.json: {recent:#}");
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "recent.json not newest first: {times:?}");
    assert_eq!(
        times.first().copied(),
        packages.values().flat_map(|p| p.pubtimes()).max(),
        "recent.json's newest"
    );
    let user = json("api/v1/users/admin.json");
    assert_eq!(user["packages"].as_array().unwrap().len(), PACKAGES, "admin owns every package");
    let manifest = json("api/v1/search/manifest.json");
    assert_eq!(
        (manifest["docs"].as_u64(), manifest["indexCommit"].as_str()),
        (Some(PACKAGES as u64), Some(head.as_str())),
        "{manifest:#}"
    );
    eprintln!("checks: {:.1?}", t.elapsed());

    // A second static rebuild finds every file up to date.
    let t = Instant::now();
    let again = rebuild(&data, "static");
    eprintln!("rebuild static: {:.1?}", t.elapsed());
    assert_eq!(again["static"]["written"], 0, "a second run writes nothing: {again:#}");
    assert_eq!(
        (&again["static"]["packages"], &again["static"]["versions"]),
        (&all["static"]["packages"], &all["static"]["versions"])
    );

    // Search through the served registry finds each sampled package by its exact name, first.
    let t = Instant::now();
    let server = Server::start(&data);
    let mut failures = Vec::new();
    // A configuration directory of its own: search pins the registry's key.
    let config = tempfile::tempdir().unwrap();
    for p in packages.values().step_by(PACKAGES / SEARCHED) {
        let stdout = run(cairn()
            .args(["search", "--registry", &server.url, "--json", "--limit", "5", &p.name])
            .env("CAIRN_CONFIG_DIR", config.path()));
        let results: Vec<Value> = serde_json::from_slice(&stdout).unwrap();
        let got: Vec<&str> = results.iter().map(|r| r["name"].as_str().unwrap()).collect();
        if got.first() != Some(&p.name.as_str()) {
            failures.push(format!("search {:?}: got {got:?}", p.name));
        }
    }
    report("search by exact name", &failures);
    eprintln!("{SEARCHED} searches: {:.1?}", t.elapsed());
}

/// `kill -9` of a first static rebuild while it writes: every package
/// directory a reader can see is whole (each is written under a temporary
/// name and renamed into place), the server's start removes what was left
/// staged, and the next rebuild completes the tree.
#[test]
fn a_killed_rebuild_leaves_only_whole_package_directories() {
    let prefill = prefill_exe();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("registry");
    run(cairn().args(["init", "--data"]).arg(&data));
    run(Command::new(&prefill).arg("--data").arg(&data).args([
        "--packages",
        "3000",
        "--versions",
        "15000",
        "--seed",
        SEED,
        "--no-docs",
    ]));
    let (_, _, packages) = index_at_main(&data);
    let docs = data.join("static/api/v1/packages");
    // Package directories and staged ones (`.tmp-…`).
    let subdirs = |path: &Path| -> (Vec<std::fs::DirEntry>, usize) {
        let entries = std::fs::read_dir(path).into_iter().flatten().map(|e| e.unwrap());
        let (staged, dirs): (Vec<_>, Vec<_>) = entries
            .filter(|e| e.file_type().unwrap().is_dir())
            .partition(|e| e.file_name().to_string_lossy().starts_with(".tmp-"));
        (dirs, staged.len())
    };

    let mut child = cairn()
        .args(["rebuild", "static", "--data"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while subdirs(&docs).0.len() < packages.len() / 10 {
        assert!(child.try_wait().unwrap().is_none(), "the rebuild ended before it could be killed");
        assert!(started.elapsed().as_secs() < 300, "the rebuild wrote too little in 300 s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Every package directory holds all of its package's files.
    let check_whole = |dirs: &[std::fs::DirEntry]| {
        let mut failures = Vec::new();
        for entry in dirs {
            let name = entry.file_name().into_string().unwrap();
            let Some(pkg) = packages.get(&name) else {
                failures.push(format!("{name}: no such package"));
                continue;
            };
            let mut want: BTreeSet<String> =
                pkg.lines.iter().map(|l| format!("{}.json", l["vers"].as_str().unwrap())).collect();
            want.insert("owners.json".into());
            want.insert("dependents.json".into());
            let have: BTreeSet<String> = std::fs::read_dir(entry.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            if have != want {
                failures.push(format!("{name}: has {have:?}, wants {want:?}"));
            }
        }
        report("package directories", &failures);
    };
    let (dirs, staged) = subdirs(&docs);
    eprintln!("killed with {} package directories written, {staged} staged", dirs.len());
    assert!(dirs.len() >= packages.len() / 10 && dirs.len() < packages.len(), "{} directories", dirs.len());
    check_whole(&dirs);

    let server = Server::start(&data);
    let leftovers: Vec<String> = walkdir::WalkDir::new(server.static_root())
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(leftovers.is_empty(), "left after the server's start: {leftovers:?}");
    drop(server);
    rebuild(&data, "static");
    let (dirs, staged) = subdirs(&docs);
    assert_eq!((dirs.len(), staged), (packages.len(), 0), "after a second rebuild");
    check_whole(&dirs);
    let again = rebuild(&data, "static");
    assert_eq!(again["static"]["written"], 0, "a third rebuild writes nothing: {again:#}");
}
