//! bench-prefill: fills a freshly `cairn init`ed registry with N synthetic
//! packages (one version each) so the publish benchmark runs against an
//! index of realistic size.
//!
//!     cargo run --release --example bench-prefill -- --data DIR --packages 100000
//!
//! What it writes, in the registry's own durability order:
//! 1. `state.db`: one `packages`, `owners` (user `admin`) and `versions` row
//!    per package, in one SQLite transaction.
//! 2. `static/index.git`: ONE commit on top of `main` whose tree adds every
//!    package file at its cargo path. Objects are built in a mempack backend
//!    and written as one pack (no loose objects), then `main` is moved and
//!    the dumb-HTTP files (`info/refs`, `objects/info/packs`) are rewritten
//!    with `git update-server-info`.
//! 3. `static/index/…` copies of the index files and (unless `--no-docs`) the
//!    derived package, owners and version documents, written without fsync
//!    (a generator, not a publish). `--sync` runs `sync` at the end; the
//!    benchmark script syncs before each measurement instead.
//! 4. `api/v1/health.json` and `recent.json`, so `cairn serve` sees derived
//!    files in line with the index head and does not re-derive everything.
//!
//! Names look like `{pseudo-word}-{word}-{NNNN}` (`vokasen-falcon-0412`),
//! distinct after canonicalisation and not confusable with one another (the
//! PyPI rule of SPEC section 2). No first word starts with `z`, so the load
//! generator's `zq…` names can never collide with them. Blobs are not written:
//! the publish benchmark never reads prefilled tarballs.

use anyhow::{bail, Context, Result};
use git2::{ObjectType, Oid, Repository, Signature, Tree};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rayon::prelude::*;
use sha2::Digest;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cairn::index::{package_path, IndexLine};

const BRANCH: &str = "refs/heads/main";

struct Args {
    data: PathBuf,
    packages: usize,
    /// Versions in all (about): each package gets 1 + an exponential draw.
    versions: usize,
    seed: u64,
    docs: bool,
    sync: bool,
    /// Also record skewed download totals (the stats job's table).
    downloads: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench-prefill --data DIR --packages N [--versions TOTAL] [--seed S] [--no-docs] [--sync] [--downloads]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut data = None;
    let mut packages = None;
    let mut seed = 42u64;
    let mut docs = true;
    let mut sync = false;
    let mut versions = None;
    let mut downloads = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = it.next().map(PathBuf::from),
            "--packages" => packages = it.next().and_then(|v| v.parse().ok()),
            "--seed" => seed = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
            "--no-docs" => docs = false,
            "--sync" => sync = true,
            "--versions" => versions = it.next().and_then(|v| v.parse().ok()),
            "--downloads" => downloads = true,
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    match (data, packages) {
        (Some(data), Some(packages)) => {
            Args { data, packages, versions: versions.unwrap_or(packages), seed, docs, sync, downloads }
        }
        _ => usage(),
    }
}

const ONSETS: &[&str] = &[
    "b", "d", "f", "g", "h", "j", "k", "m", "n", "p", "r", "s", "t", "v", "w", "br", "dr", "fr", "gr", "kr",
    "pr", "tr", "st", "sk", "sp", "ch", "sh", "th", "qu", "x", "c", "pl", "bl", "gl",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "y", "ai", "ea", "ou", "io"];
const CODAS: &[&str] = &["", "", "", "n", "r", "s", "t", "x", "m", "k", "l", "nd", "st"];
const WORDS: &[&str] = &[
    "api", "async", "auth", "bench", "bind", "bits", "buf", "build", "bytes", "cache", "cli", "codec",
    "color", "config", "core", "crypto", "csv", "data", "date", "db", "derive", "diff", "dns", "engine",
    "env", "error", "event", "ffi", "file", "fmt", "fs", "future", "graph", "grpc", "hash", "http", "image",
    "index", "io", "json", "kit", "lexer", "lint", "log", "macro", "map", "math", "mcp", "mock", "net",
    "num", "orm", "parser", "path", "plugin", "pool", "prompt", "proto", "queue", "rand", "regex", "rpc",
    "rt", "runtime", "sdk", "serde", "server", "shell", "skill", "sql", "stream", "sync", "term", "test",
    "text", "time", "tls", "toml", "tools", "trace", "tree", "types", "ui", "url", "utils", "uuid", "wasm",
    "web", "xml", "yaml", "zip", "agent", "hook", "review", "store", "search", "query", "socket", "signal",
    "vector", "bloom",
];
const KINDS: &[&str] = &["library", "library", "library", "skill", "mcp", "subagent", "prompt"];
const LICENSES: &[&str] = &["MIT", "Apache-2.0", "MIT OR Apache-2.0", "BSD-3-Clause", "MPL-2.0"];

fn pseudo_word(rng: &mut StdRng) -> String {
    loop {
        let syllables = rng.gen_range(2..=3);
        let mut w = String::new();
        for i in 0..syllables {
            w.push_str(ONSETS[rng.gen_range(0..ONSETS.len())]);
            w.push_str(VOWELS[rng.gen_range(0..VOWELS.len())]);
            if i + 1 == syllables {
                w.push_str(CODAS[rng.gen_range(0..CODAS.len())]);
            }
        }
        if w.len() >= 4 && !w.starts_with('z') {
            return w;
        }
    }
}

/// `count` names, distinct as packages and pairwise not confusable.
fn names(count: usize, rng: &mut StdRng) -> Vec<String> {
    let mut keys = HashSet::with_capacity(count * 2);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let name = format!(
            "{}-{}-{:04}",
            pseudo_word(rng),
            WORDS[rng.gen_range(0..WORDS.len())],
            rng.gen_range(0..10_000)
        );
        if cairn::name::validate(&name).is_err() || name.len() > 64 {
            continue;
        }
        // The confusable key is coarser than the canonical one: unique
        // confusable keys imply unique packages.
        if keys.insert(cairn::name::confusable(&name)) {
            out.push(name);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A word drawn with a Zipf-like skew: low indexes far more often, as real
/// descriptions and keywords reuse a few words a lot.
fn skewed<'a>(words: &[&'a str], rng: &mut StdRng) -> &'a str {
    let u: f64 = rng.gen_range(0.0..1.0);
    words[((words.len() as f64).powf(u) as usize).saturating_sub(1).min(words.len() - 1)]
}

const FILLER: &[&str] = &[
    "fast",
    "simple",
    "small",
    "safe",
    "async",
    "library",
    "tool",
    "client",
    "server",
    "parser",
    "support",
    "rust",
    "implementation",
    "minimal",
    "efficient",
    "generic",
    "portable",
    "typed",
    "zero-copy",
    "streaming",
    "bindings",
    "framework",
    "utilities",
    "helpers",
    "extension",
    "wrapper",
    "layer",
    "engine",
    "protocol",
    "format",
    "command-line",
    "embedded",
    "cross-platform",
    "lightweight",
    "high-performance",
    "experimental",
];

/// The `index`-th version of a package, ascending: 0.0.0, 0.0.1, …
fn version_at(index: usize) -> String {
    format!("{}.{}.{}", index / 40, (index / 8) % 5, index % 8)
}

fn line_for(name: &str, rng: &mut StdRng, pubtime: &str) -> IndexLine {
    let vers = version_at(0);
    let mut deps = Vec::new();
    for _ in 0..rng.gen_range(0..4) {
        deps.push(cairn::index::IndexDep::normal(
            WORDS[rng.gen_range(0..WORDS.len())],
            &format!("^{}.{}", rng.gen_range(0..3), rng.gen_range(0..10)),
        ));
    }
    let words: Vec<&str> = name.split('-').collect();
    IndexLine {
        name: name.to_string(),
        vers,
        deps,
        cksum: hex(&sha2::Sha256::digest(name.as_bytes())),
        features: BTreeMap::new(),
        yanked: false,
        links: None,
        v: 1,
        features2: None,
        rust_version: None,
        pubtime: Some(pubtime.to_string()),
        blake3: blake3::hash(name.as_bytes()).to_hex().to_string(),
        size: rng.gen_range(1_000..200_000),
        fmt: "tar.gz".into(),
        kind: Some(KINDS[rng.gen_range(0..KINDS.len())].to_string()),
        description: Some({
            let mut d = vec![words[0], words[1]];
            for _ in 0..rng.gen_range(4..12) {
                d.push(if rng.gen_bool(0.5) { skewed(FILLER, rng) } else { skewed(WORDS, rng) });
            }
            d.join(" ")
        }),
        license: Some(LICENSES[rng.gen_range(0..LICENSES.len())].to_string()),
        keywords: {
            let mut k = vec![words[1].to_string()];
            for _ in 0..rng.gen_range(0..5) {
                let w = skewed(WORDS, rng).to_string();
                if !k.contains(&w) {
                    k.push(w);
                }
            }
            k
        },
        repository: Some(format!("https://example.org/bench/{name}")),
        provenance: None,
        npm: None,
        log_index: None,
    }
}

/// A directory of the tree being added.
#[derive(Default)]
struct Dir {
    dirs: BTreeMap<String, Dir>,
    files: BTreeMap<String, Oid>,
}

impl Dir {
    fn insert(&mut self, path: &str, blob: Oid) {
        match path.split_once('/') {
            Some((first, rest)) => self.dirs.entry(first.to_string()).or_default().insert(rest, blob),
            None => {
                self.files.insert(path.to_string(), blob);
            }
        }
    }

    /// Writes this directory merged over `base` (entries already there are
    /// kept unless replaced); returns the tree id.
    fn write(&self, repo: &Repository, base: Option<&Tree>) -> Result<Oid> {
        let mut tb = repo.treebuilder(base)?;
        for (name, dir) in &self.dirs {
            let sub = match base.and_then(|t| t.get_name(name)) {
                Some(e) if e.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(e.id())?),
                Some(_) => bail!("`{name}` exists in the index and is not a directory"),
                None => None,
            };
            let id = dir.write(repo, sub.as_ref())?;
            tb.insert(name, id, 0o040000)?;
        }
        for (name, blob) in &self.files {
            if base.and_then(|t| t.get_name(name)).is_some() {
                bail!("`{name}` exists in the index already");
            }
            tb.insert(name, *blob, 0o100644)?;
        }
        Ok(tb.write()?)
    }
}

fn main() -> Result<()> {
    let args = parse_args();
    let t0 = Instant::now();
    let data = &args.data;
    anyhow::ensure!(
        cairn::registry::Registry::exists(data),
        "{} holds no registry: run `cairn init --data {}` first",
        data.display(),
        data.display()
    );
    let config = cairn::config::Config::load(data)?;
    let static_root = data.join("static");
    let repo_path = static_root.join("index.git");

    let mut rng = StdRng::seed_from_u64(args.seed);
    let names = names(args.packages, &mut rng);
    // Spread publication times over the past year, oldest first.
    let now = chrono::Utc::now();
    let year = chrono::Duration::days(365);
    // Versions per package: 1 + an exponential draw, so the mean matches
    // --versions and a few packages have hundreds (as on crates.io).
    let extra_mean = (args.versions as f64 / args.packages.max(1) as f64 - 1.0).max(0.0);
    let packages: Vec<Vec<IndexLine>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let at = now - year + year * (i as i32) / (args.packages.max(1) as i32);
            let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
            let count = 1 + (-u.ln() * extra_mean) as usize;
            let at = cairn::index::line::pubtime(at);
            let first = line_for(n, &mut rng, &at);
            (0..count).map(|v| IndexLine { vers: version_at(v), ..first.clone() }).collect()
        })
        .collect();
    let lines: Vec<&IndexLine> = packages.iter().flatten().collect();
    eprintln!("prefill: {} packages, {} versions in {:.1?}", packages.len(), lines.len(), t0.elapsed());

    // 1. The database rows, one transaction.
    let t = Instant::now();
    let conn = cairn::db::open(&cairn::db::Target::of(data, &config)?)?;
    let admin: i64 = conn
        .query_row(
            "SELECT id FROM users WHERE login = ?1",
            cairn::params![cairn::registry::BOOTSTRAP_LOGIN],
            |r| r.get(0),
        )
        .context("the bootstrap user `admin` is missing")?;
    {
        let txn = conn.transaction()?;
        let mut seq: i64 =
            txn.query_row("SELECT COALESCE(MAX(seq), 0) FROM versions", cairn::params![], |r| r.get(0))?;
        {
            for l in &lines {
                let key = cairn::name::canonical(&l.name);
                let at = l.pubtime.as_deref().unwrap();
                let version = semver::Version::parse(&l.vers)?;
                if l.vers == "0.0.0" {
                    txn.execute(
                        "INSERT INTO packages (key, name, confusable, created_at) VALUES (?1, ?2, ?3, ?4)",
                        cairn::params![key, l.name, cairn::name::confusable(&l.name), at],
                    )?;
                    txn.execute(
                        "INSERT INTO owners (package, user_id, added_at) VALUES (?1, ?2, ?3)",
                        cairn::params![key, admin, at],
                    )?;
                }
                if args.downloads {
                    // Pareto-distributed: most versions see little, a few see millions.
                    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
                    txn.execute(
                        "INSERT INTO stats_totals (package, vers, total) VALUES (?1, ?2, ?3)
                         ON CONFLICT (package, vers) DO UPDATE SET total = excluded.total",
                        cairn::params![key, l.vers, (10.0 / u.powf(1.2)) as i64],
                    )?;
                }
                seq += 1;
                txn.execute(
                    "INSERT INTO versions (package, version, vers, sha256, published_at, publisher, seq)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    cairn::params![key, cairn::name::version_key(&version), l.vers, l.cksum, at, admin, seq],
                )?;
            }
        }
        // Rows written directly: recount the live counters.
        txn.execute_batch(
            "UPDATE counters SET value = (SELECT COUNT(*) FROM versions WHERE deleted_at IS NULL) WHERE name = 'versions';
             UPDATE counters SET value = (SELECT COUNT(DISTINCT package) FROM versions WHERE deleted_at IS NULL) WHERE name = 'packages';",
        )?;
        txn.commit()?;
    }
    eprintln!("prefill: database rows in {:.1?}", t.elapsed());

    // 2. One commit with every file, written as one pack.
    let t = Instant::now();
    let repo = Repository::open_bare(&repo_path)?;
    let odb = repo.odb()?;
    let mempack = odb.add_new_mempack_backend(1000)?;
    let parent = repo.find_commit(repo.refname_to_id(BRANCH)?)?;
    let base = parent.tree()?;
    let mut root = Dir::default();
    for p in &packages {
        let blob = repo.blob(&IndexLine::file_bytes(p))?;
        root.insert(&package_path(&p[0].name), blob);
    }
    let tree = repo.find_tree(root.write(&repo, Some(&base))?)?;
    let when = git2::Time::new(now.timestamp(), 0);
    let sig = Signature::new(&config.name, "registry@cairn.invalid", &when)?;
    let message = format!(
        "bench prefill: {} packages\n\nPublished-By: {}\n",
        packages.len(),
        cairn::registry::BOOTSTRAP_LOGIN
    );
    let commit = repo.commit(None, &sig, &sig, &message, &tree, &[&parent])?;
    eprintln!("prefill: objects built in {:.1?}", t.elapsed());
    let t = Instant::now();
    let mut buf = git2::Buf::new();
    mempack.dump(&repo, &mut buf)?;
    eprintln!("prefill: pack of {:.1} MiB built in {:.1?}", buf.len() as f64 / 1048576.0, t.elapsed());
    let mut writer = odb.packwriter()?;
    writer.write_all(&buf)?;
    writer.commit()?;
    mempack.reset()?;
    drop(writer);
    repo.reference(BRANCH, commit, true, "bench prefill")?;
    let status = std::process::Command::new("git")
        .arg("update-server-info")
        .current_dir(&repo_path)
        .status()
        .context("running `git update-server-info` (is git installed?)")?;
    anyhow::ensure!(status.success(), "`git update-server-info` failed");
    drop(tree);
    drop(parent);
    drop(base);
    drop(odb);
    drop(repo);
    eprintln!("prefill: pack written, main = {commit}");

    // 3. The static copies, in parallel, without per-file fsync.
    let t = Instant::now();
    let owners = vec![cairn::registry::BOOTSTRAP_LOGIN.to_string()];
    let layout = cairn::layout::Layout::public();
    packages.par_iter().try_for_each(|p| -> Result<()> {
        let none = cairn::derive::Downloads::new();
        let file = IndexLine::file_bytes(p);
        let mut docs = vec![cairn::derive::index_copy(&layout, &p[0].name, &file)];
        if args.docs {
            docs.push(cairn::derive::package(&layout, p, &owners, &none, None, &Default::default()));
            docs.push(cairn::derive::owners(&layout, &p[0].name, &owners));
            docs.extend(
                p.iter().map(|l| cairn::derive::version(&layout, l, false, &none, &Default::default())),
            );
        }
        for doc in docs {
            write(&static_root.join(&doc.key), &doc.bytes)?;
        }
        Ok(())
    })?;
    // 4. Summaries from the database and the new head.
    let reg = cairn::registry::Registry::open(data, config)?;
    reg.write_summaries(&conn, &reg.index.head()?.to_string())?;
    if args.sync {
        let status = std::process::Command::new("sync").status();
        anyhow::ensure!(status.map(|s| s.success()).unwrap_or(false), "`sync` failed");
    }
    eprintln!("prefill: static files in {:.1?}", t.elapsed());
    eprintln!("prefill: {} packages added in {:.1?} (index commit {commit})", packages.len(), t0.elapsed());
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::write(path, bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::write(path, bytes)
        }
        r => r,
    }
}
