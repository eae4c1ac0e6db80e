//! Packing a package directory into the archive `cairn publish` uploads: a
//! deterministic `.tar.zst` whose entries all lie under `{name}-{version}/`.
//!
//! Skipped: version-control directories, `cairn_packages/`, and whatever the
//! package's `.cairnignore` lists (gitignore-like patterns: `*`, `?`, `**`, a
//! trailing `/` for directories only, a leading `/` to anchor at the package
//! root). `cairn.toml` is always included. Symbolic links are refused, as the
//! registry would refuse them.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Directories never packed.
const SKIPPED_DIRS: &[&str] = &[".git", ".hg", ".svn", ".bzr", ".jj", "_darcs", "CVS", "cairn_packages"];

/// The ignore file read from the package root.
pub const IGNORE_FILE: &str = ".cairnignore";

/// A fixed modification time (2006-07-24), so one tree always packs to the same bytes.
const MTIME: u64 = 1_153_704_088;

/// A packed package.
#[derive(Debug)]
pub struct Packed {
    pub name: String,
    pub version: String,
    /// The `.tar.zst` bytes.
    pub bytes: Vec<u8>,
    /// Packed file paths, relative to the package root, in archive order.
    pub files: Vec<String>,
}

/// Reads `dir/cairn.toml` for the name and version and packs `dir`.
pub fn pack_dir(dir: &Path) -> Result<Packed> {
    let manifest_path = dir.join("cairn.toml");
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!("reading {} (a package directory holds cairn.toml)", manifest_path.display())
    })?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest_path.display()))?;
    let field = |k: &str| -> Result<String> {
        table
            .get("package")
            .and_then(|p| p.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .with_context(|| format!("{} has no [package] {k}", manifest_path.display()))
    };
    let (name, version) = (field("name")?, field("version")?);
    let ignore = Ignore::load(dir)?;
    let files = list_files(dir, &ignore)?;
    let prefix = format!("{name}-{version}");
    let mut tar = tar::Builder::new(Vec::new());
    for rel in &files {
        let path = dir.join(rel);
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let meta = std::fs::metadata(&path)?;
        use std::os::unix::fs::PermissionsExt;
        append(&mut tar, &prefix, rel, meta.permissions().mode() & 0o111 != 0, &data)?;
    }
    let tar = tar.into_inner()?;
    let bytes = zstd::encode_all(&tar[..], 12)?;
    Ok(Packed { name, version, bytes, files })
}

/// Appends a regular file at `{prefix}/{rel}` with the fixed owner and
/// time, so one tree always packs to the same bytes.
pub(super) fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    prefix: &str,
    rel: &str,
    executable: bool,
    data: &[u8],
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mtime(MTIME);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mode(if executable { 0o755 } else { 0o644 });
    tar.append_data(&mut header, format!("{prefix}/{rel}"), data).with_context(|| format!("adding {rel}"))
}

/// The files to pack, relative to `dir` with `/` separators, sorted.
pub fn list_files(dir: &Path, ignore: &Ignore) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(dir).follow_links(false).sort_by_file_name().into_iter();
    let mut it = walker.filter_entry(|e| {
        if e.depth() == 0 {
            return true;
        }
        let name = e.file_name().to_string_lossy();
        !(e.file_type().is_dir() && SKIPPED_DIRS.contains(&name.as_ref()))
    });
    while let Some(entry) = it.next() {
        let entry = entry?;
        if entry.depth() == 0 {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).expect("under dir");
        let Some(rel) = rel.to_str() else {
            bail!("{} is not a UTF-8 path; the registry refuses such names", entry.path().display());
        };
        let rel = rel.replace('\\', "/");
        let is_dir = entry.file_type().is_dir();
        if rel != "cairn.toml" && ignore.matches(&rel, is_dir) {
            if is_dir {
                it.skip_current_dir();
            }
            continue;
        }
        if entry.file_type().is_symlink() {
            bail!("{rel} is a symbolic link; packages hold only files and directories (list it in {IGNORE_FILE} to leave it out)");
        }
        if entry.file_type().is_file() {
            out.push(rel);
        } else if !is_dir {
            bail!("{rel} is neither a file nor a directory");
        }
    }
    Ok(out)
}

/// Patterns from `.cairnignore`.
#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    glob: String,
    anchored: bool,
    dir_only: bool,
    negated: bool,
}

impl Ignore {
    pub fn load(dir: &Path) -> Result<Ignore> {
        match std::fs::read_to_string(dir.join(IGNORE_FILE)) {
            Ok(text) => Ok(Ignore::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ignore::default()),
            Err(e) => Err(e).context(IGNORE_FILE),
        }
    }

    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, line) = match line.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (dir_only, line) = match line.strip_suffix('/') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let anchored = line.contains('/');
            let glob = line.trim_start_matches('/').to_string();
            if !glob.is_empty() {
                patterns.push(Pattern { glob, anchored, dir_only, negated });
            }
        }
        Ignore { patterns }
    }

    /// Whether `rel` (relative, `/`-separated) is ignored; the last matching
    /// pattern wins, as in gitignore.
    pub fn matches(&self, rel: &str, is_dir: bool) -> bool {
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let mut ignored = false;
        for p in &self.patterns {
            if p.dir_only && !is_dir {
                continue;
            }
            let hit = if p.anchored {
                glob(p.glob.as_bytes(), rel.as_bytes())
            } else {
                glob(p.glob.as_bytes(), base.as_bytes())
            };
            if hit {
                ignored = !p.negated;
            }
        }
        ignored
    }
}

/// `*` and `?` stay within one component, `**` crosses them.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', b'*', rest @ ..] => {
            let rest = rest.strip_prefix(b"/").unwrap_or(rest);
            (0..=s.len()).any(|i| glob(rest, &s[i..]))
        }
        [b'*', rest @ ..] => {
            for i in 0..=s.len() {
                if glob(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' {
                    return false;
                }
            }
            false
        }
        [b'?', rest @ ..] => !s.is_empty() && s[0] != b'/' && glob(rest, &s[1..]),
        [c, rest @ ..] => !s.is_empty() && s[0] == *c && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_patterns_follow_gitignore() {
        let ig = Ignore::parse("# c\n*.log\nbuild/\n/secret.txt\ndocs/**/*.tmp\n!keep.log\n");
        assert!(ig.matches("a.log", false));
        assert!(ig.matches("x/y/a.log", false));
        assert!(!ig.matches("keep.log", false));
        assert!(ig.matches("build", true));
        assert!(!ig.matches("build", false));
        assert!(ig.matches("secret.txt", false));
        assert!(!ig.matches("x/secret.txt", false));
        assert!(ig.matches("docs/a/b/c.tmp", false));
        assert!(ig.matches("docs/c.tmp", false));
        assert!(!ig.matches("src/lib.rs", false));
    }

    #[test]
    fn packs_under_the_prefix_and_passes_inspection() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("cairn.toml"), "[package]\nname = \"hello\"\nversion = \"1.0.0\"\n").unwrap();
        std::fs::write(d.join("README.md"), "hi").unwrap();
        std::fs::create_dir_all(d.join(".git/objects")).unwrap();
        std::fs::write(d.join(".git/HEAD"), "x").unwrap();
        std::fs::write(d.join(".cairnignore"), "*.log\n").unwrap();
        std::fs::write(d.join("debug.log"), "x").unwrap();
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::write(d.join("src/lib.md"), "body").unwrap();
        let p = pack_dir(d).unwrap();
        assert_eq!(p.files, vec![".cairnignore", "README.md", "cairn.toml", "src/lib.md"]);
        let again = pack_dir(d).unwrap();
        assert_eq!(p.bytes, again.bytes, "packing is deterministic");
        let i = crate::archive::inspect(
            &p.bytes,
            "hello",
            "1.0.0",
            Some("application/zstd"),
            crate::archive::ManifestKind::Cairn,
            &crate::archive::Limits::default(),
        )
        .unwrap();
        assert_eq!(i.readme.as_deref(), Some(&b"hi"[..]));
    }
}
