//! `cairn fsck`: checks a registry against its own guarantees (SPEC sections
//! 4 to 6) and lists what is wrong, writing nothing:
//!
//! - every index line's blob exists, hashes to the line's `cksum` (SHA-256)
//!   and `blake3`, and has its `size`;
//! - the `.minisig` beside it verifies with the registry's key and its
//!   trusted comment attests exactly this registry, name, version and digests;
//! - the key and name clients are given (`config.json`, `minisign.pub`)
//!   are the ones the signatures were checked against;
//! - the history of `main` is linear (no commit has two parents);
//! - the derived files a publish keeps current (index copies, package,
//!   owners and version documents, READMEs) hold what `cairn rebuild static`
//!   would write (the static job in check mode; listings and user pages,
//!   which lag until the job runs, are not compared).
//!
//! Read-only and lock-free, so it can run beside a server. The index is read
//! at one commit; a writer working meanwhile can still make it report
//! findings that are gone a moment later: a package published, yanked or
//! re-owned during the run has derived files newer than that commit
//! (`derived-*`), a version hard-deleted during the run has lost its blob
//! (`missing-blob`), and the stats job changes download counts in the
//! documents. Run it again to tell such a race from damage.

use anyhow::Result;
use rayon::prelude::*;
use serde::Serialize;
use std::sync::Mutex;

use crate::index::IndexLine;
use crate::jobs::static_files::{self, Drift, DriftKind};
use crate::jobs::Snapshot;
use crate::registry::Registry;
use crate::sign::{Attestation, SignatureError};

/// What one finding is about; printed (and serialized) as [`Kind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An index line whose `cksum` is not 64 lowercase hex digits (it names no blob path).
    BadLine,
    MissingBlob,
    Sha256Mismatch,
    Blake3Mismatch,
    SizeMismatch,
    MissingSignature,
    /// The signature does not verify (wrong key or bytes, legacy, unparsable).
    BadSignature,
    /// The signature verifies but attests other fields than the index line.
    AttestationMismatch,
    /// `config.json` or `minisign.pub` names another key or registry name
    /// than the one signing: clients would refuse every signature.
    KeyMismatch,
    NonlinearHistory,
    DerivedMissing,
    DerivedDiffers,
    /// A stored blob no index line names, older than the grace period (a
    /// publish in flight has blobs before its line).
    OrphanBlob,
    /// The index repository cannot be read (a corrupted pack or object):
    /// nothing after it could be checked.
    CorruptIndex,
    /// The transparency log and the index history disagree, or its
    /// published tiles, bundles or checkpoint do not match its entries.
    LogMismatch,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::BadLine => "bad-line",
            Kind::OrphanBlob => "orphan-blob",
            Kind::CorruptIndex => "corrupt-index",
            Kind::LogMismatch => "log-mismatch",
            Kind::MissingBlob => "missing-blob",
            Kind::Sha256Mismatch => "sha256-mismatch",
            Kind::Blake3Mismatch => "blake3-mismatch",
            Kind::SizeMismatch => "size-mismatch",
            Kind::MissingSignature => "missing-signature",
            Kind::BadSignature => "bad-signature",
            Kind::AttestationMismatch => "attestation-mismatch",
            Kind::KeyMismatch => "key-mismatch",
            Kind::NonlinearHistory => "nonlinear-history",
            Kind::DerivedMissing => "derived-missing",
            Kind::DerivedDiffers => "derived-differs",
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub what: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.what)
    }
}

fn finding(kind: Kind, what: String) -> Finding {
    Finding { kind, what }
}

/// What was checked and what was found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The index commit the lines were read at.
    pub head: String,
    /// Where `main` was when the checks ended, if a writer moved it meanwhile.
    pub moved_to: Option<String>,
    pub packages: u64,
    pub versions: u64,
    pub commits: u64,
    /// Sorted by kind, then by what.
    pub findings: Vec<Finding>,
    pub seconds: f64,
}

/// Blobs younger than this are never orphans: a publish in flight stores
/// its blob before the index line that names it.
pub const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs every check on the registry. An `Err` means fsck could not run (an
/// unreadable repository or an unparsable index file), not a finding.
pub fn check(reg: &Registry) -> Result<Report> {
    let started = std::time::Instant::now();
    let found = Mutex::new(Vec::new());
    let named = Mutex::new(std::collections::HashSet::new());
    // Blobs are checked as each package's lines are read, in parallel with
    // the derived files of the same snapshot.
    // Packages cached from an upstream, by canonical name.
    let cached = crate::db::upstream::origins(&reg.db()?, &reg.space)?;
    let check_package = |_: &[u8], lines: &[IndexLine], _: Option<&crate::index::Meta>| -> Result<()> {
        let upstream = lines.first().is_some_and(|l| cached.contains_key(&crate::name::canonical(&l.name)));
        let mut mine: Vec<Finding> =
            lines.par_iter().flat_map_iter(|l| check_line(reg, l, upstream)).collect();
        found.lock().unwrap().append(&mut mine);
        named.lock().unwrap().extend(lines.iter().map(|l| l.cksum.clone()));
        Ok(())
    };
    // A private registry's derived files are not compared (the static
    // job's check is the public registry's); `repair` rewrites them all.
    let checked = match reg.space.derived_files_checked() {
        true => static_files::check(reg, &check_package),
        false => crate::jobs::Snapshot::load_visiting(reg, &check_package).map(|snap| (snap, Vec::new())),
    };
    let (snap, drift) = match checked {
        Ok(checked) => checked,
        // libgit2 refusing an object (a bad checksum, a broken zlib stream).
        Err(e) if e.chain().any(|c| c.downcast_ref::<git2::Error>().is_some()) => {
            return Ok(Report {
                head: reg.index.head().map(|h| h.to_string()).unwrap_or_default(),
                moved_to: None,
                packages: 0,
                versions: 0,
                commits: 0,
                findings: vec![finding(Kind::CorruptIndex, format!("{e:#}"))],
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        Err(e) => return Err(e),
    };
    let mut findings = found.into_inner().unwrap();
    findings.extend(orphans(reg, &named.into_inner().unwrap())?);
    findings.extend(drift.iter().map(derived_finding));
    findings.extend(check_published_identity(reg, &snap));
    let (commits, nonlinear) = check_history(reg, &snap.head)?;
    findings.extend(nonlinear);
    if let Some(log) = &reg.log {
        if reg.index.is_shared() {
            log.catch_up_local(&reg.index, &reg.root)?;
        }
        findings.extend(log.audit(&reg.index, &reg.root)?.into_iter().map(|p| finding(Kind::LogMismatch, p)));
    }
    findings.sort();
    let now = reg.index.head()?.to_string();
    Ok(Report {
        moved_to: (now != snap.head).then_some(now),
        head: snap.head,
        packages: snap.packages.len() as u64,
        versions: snap.versions,
        commits,
        findings,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Stored blobs that no line names, older than [`ORPHAN_GRACE`].
fn orphans(reg: &Registry, named: &std::collections::HashSet<String>) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    for sha in reg.store.list()? {
        if !named.contains(&sha) && reg.store.age(&sha)?.is_some_and(|age| age > ORPHAN_GRACE) {
            out.push(finding(Kind::OrphanBlob, sha));
        }
    }
    Ok(out)
}

/// Repairs what can be derived or removed, never what needs the key: the
/// derived files are rewritten by the static job, orphan blobs (and their
/// signatures) are removed; a missing or bad signature or blob stays a
/// finding. Returns one line per repair. Holds the writer lock.
pub fn repair(reg: &Registry, report: &Report) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let derived =
        report.findings.iter().filter(|f| matches!(f.kind, Kind::DerivedMissing | Kind::DerivedDiffers));
    let derived = derived.count();
    if !reg.space.derived_files_checked() {
        let paths = reg.rederive_all(&reg.db()?)?;
        done.push(format!("rewrote the derived files of {}", crate::words::count(paths, "index file")));
    } else if derived > 0 {
        // The static job takes the writer lock itself.
        crate::jobs::rebuild(reg, crate::jobs::Job::Static, &crate::jobs::Options::default())?;
        done.push(format!("rewrote derived files ({derived} found)"));
    }
    let _lock = reg.lock_writer()?;
    let conn = reg.db()?;
    for f in report.findings.iter().filter(|f| f.kind == Kind::OrphanBlob) {
        // Under the lock no group commits; one that did since the check
        // recorded a live version for it, and it is no orphan now.
        if crate::db::blob_in_use(&conn, &reg.space, &f.what)? {
            continue;
        }
        reg.store.remove(&f.what)?;
        done.push(format!("removed orphan blob {}", f.what));
    }
    Ok(done)
}

/// The blob and signature of one index line. A line cached from an
/// upstream (`cached`) has its blob only once a client asked for it (or
/// not since it was evicted), and records no BLAKE3 or size.
fn check_line(reg: &Registry, line: &IndexLine, cached: bool) -> Vec<Finding> {
    let id = format!("{} {} sha256:{}", line.name, line.vers, line.cksum);
    // A cksum is joined to the blob directory: anything but hex could name another file.
    if !is_sha256_hex(&line.cksum) {
        return vec![finding(Kind::BadLine, format!("{id}: cksum is not 64 lowercase hex digits"))];
    }
    let bytes = match reg.store.read(&line.cksum) {
        Ok(Some(b)) => b,
        Ok(None) if cached => return Vec::new(),
        Ok(None) => return vec![finding(Kind::MissingBlob, id)],
        Err(e) => return vec![finding(Kind::MissingBlob, format!("{id} (unreadable: {e})"))],
    };
    if cached {
        let mut recorded = line.clone();
        (recorded.blake3, recorded.size) = (crate::store::digests(&bytes).1, bytes.len() as u64);
        let mut out = check_blob(&id, &recorded, &bytes);
        out.extend(check_signature(reg, &id, &recorded, &bytes));
        return out;
    }
    let mut out = check_blob(&id, line, &bytes);
    out.extend(check_signature(reg, &id, line, &bytes));
    out
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The blob's bytes against the line's `cksum`, `blake3` and `size`.
fn check_blob(id: &str, line: &IndexLine, bytes: &[u8]) -> Vec<Finding> {
    let (sha256, blake3) = crate::store::digests(bytes);
    let mut out = Vec::new();
    if sha256 != line.cksum {
        out.push(finding(Kind::Sha256Mismatch, format!("{id}: the blob hashes to {sha256}")));
    }
    if blake3 != line.blake3 {
        let recorded = if line.blake3.is_empty() { "none" } else { &line.blake3 };
        out.push(finding(
            Kind::Blake3Mismatch,
            format!("{id}: blake3 is {blake3}, the line records {recorded}"),
        ));
    }
    if bytes.len() as u64 != line.size {
        out.push(finding(
            Kind::SizeMismatch,
            format!("{id}: {} bytes, the line records {}", bytes.len(), line.size),
        ));
    }
    out
}

/// The `.minisig` beside the blob: made by the registry's key over these
/// bytes, and attesting exactly what the index line says.
fn check_signature(reg: &Registry, id: &str, line: &IndexLine, bytes: &[u8]) -> Option<Finding> {
    let minisig = match reg.store.read_signature(&line.cksum) {
        Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(None) => return Some(finding(Kind::MissingSignature, id.to_string())),
        Err(e) => return Some(finding(Kind::MissingSignature, format!("{id} (unreadable: {e})"))),
    };
    let want = Attestation::of_line(&reg.config.name, line);
    match crate::sign::verify_attested(&reg.pubkey, bytes, &minisig, &want) {
        Ok(()) => None,
        Err(e @ SignatureError::Invalid(_)) => Some(finding(Kind::BadSignature, format!("{id}: {e}"))),
        Err(e @ SignatureError::Mismatch { .. }) => {
            Some(finding(Kind::AttestationMismatch, format!("{id}: {e}")))
        }
    }
}

/// Clients verify with the key and registry name of the index's
/// `config.json` (and people with `minisign.pub`): both must be the ones
/// the signatures were checked against.
fn check_published_identity(reg: &Registry, snap: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    let config: serde_json::Value = (snap.other.iter().find(|(path, _)| path == "config.json"))
        .and_then(|(_, bytes)| serde_json::from_slice(bytes).ok())
        .unwrap_or_default();
    for (field, want) in [("pubkey", &reg.pubkey), ("name", &reg.config.name)] {
        let got = config[field].as_str().unwrap_or("(none)");
        if got != want {
            out.push(finding(Kind::KeyMismatch, format!("index config.json: {field} is {got}, not {want}")));
        }
    }
    let file = reg.root.read(&reg.root.layout().minisign_pub()).ok().flatten().unwrap_or_default();
    let file = String::from_utf8_lossy(&file);
    if !file.lines().any(|l| l.trim() == reg.pubkey) {
        out.push(finding(Kind::KeyMismatch, format!("minisign.pub does not hold {}", reg.pubkey)));
    }
    out
}

/// Walks the history from `head` (the commit the lines were read at); every
/// commit with more than one parent is a finding, since a merge could bring
/// in lines that never went through the writer. Returns the commit count.
fn check_history(reg: &Registry, head: &str) -> Result<(u64, Vec<Finding>)> {
    let repo = git2::Repository::open_bare(reg.index.path())?;
    let mut walk = repo.revwalk()?;
    walk.push(git2::Oid::from_str(head)?)?;
    let (mut commits, mut out) = (0, Vec::new());
    for id in walk {
        let commit = repo.find_commit(id?)?;
        commits += 1;
        if commit.parent_count() > 1 {
            let what = format!("commit {} has {} parents", commit.id(), commit.parent_count());
            out.push(finding(Kind::NonlinearHistory, what));
        }
    }
    Ok((commits, out))
}

fn derived_finding(d: &Drift) -> Finding {
    let kind = match d.kind {
        DriftKind::Missing => Kind::DerivedMissing,
        DriftKind::Differs => Kind::DerivedDiffers,
    };
    finding(kind, d.path.display().to_string())
}
