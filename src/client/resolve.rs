//! Version resolution with PubGrub over index lines already fetched.
//!
//! One version per package name. Requirements use cargo's syntax and
//! semantics (`semver::VersionReq`), turned into ranges that read well in a
//! conflict explanation and are then corrected against the versions the
//! index actually lists, so pre-release rules match cargo's exactly. Yanked
//! versions are never chosen unless the lock pins them; a locked version is
//! preferred whenever it satisfies the requirements.

use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyConstraints, DependencyProvider,
    PackageResolutionStatistics, PubGrubError, Ranges, Reporter,
};
use semver::{Comparator, Op, Version, VersionReq};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::index::IndexLine;

/// A node of the graph: the request itself or a package (lowercase key).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pkg {
    Root,
    Name(String),
}

const ROOT_LABEL: &str = "\u{1}root";

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pkg::Root => f.write_str(ROOT_LABEL),
            Pkg::Name(n) => f.write_str(n),
        }
    }
}

/// Whether a dependency of an index line takes part in resolution.
pub fn dep_counts(d: &crate::index::IndexDep) -> bool {
    d.kind != "dev" && !d.optional && d.registry.is_none()
}

/// The package a dependency names (cargo's `package` rename).
pub fn dep_target(d: &crate::index::IndexDep) -> &str {
    d.package.as_deref().unwrap_or(&d.name)
}

struct Candidate {
    version: Version,
    line: IndexLine,
}

/// The index as the resolver sees it: package key → versions, highest first.
pub struct Universe {
    packages: HashMap<String, Vec<Candidate>>,
}

impl Universe {
    /// `files`: package key (lowercase) → its index lines (`None`: no such package).
    pub fn new(files: &HashMap<String, Option<Vec<IndexLine>>>) -> Universe {
        let mut packages = HashMap::new();
        for (key, lines) in files {
            let mut cands: Vec<Candidate> = lines
                .iter()
                .flatten()
                .filter_map(|l| {
                    Version::parse(&l.vers).ok().map(|version| Candidate { version, line: l.clone() })
                })
                .collect();
            cands.sort_by(|a, b| b.version.cmp(&a.version));
            packages.insert(key.clone(), cands);
        }
        Universe { packages }
    }

    fn versions(&self, key: &str) -> &[Candidate] {
        self.packages.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The set of versions of `key` that `req` matches, as readable ranges.
    fn range(&self, key: &str, req: &VersionReq) -> Ranges<Version> {
        let mut r =
            req.comparators.iter().fold(Ranges::full(), |acc, c| acc.intersection(&comparator_range(c)));
        // Make the range agree with cargo's matching on every listed version
        // (pre-releases match only when the requirement names one).
        for c in self.versions(key) {
            let (matches, contains) = (req.matches(&c.version), r.contains(&c.version));
            if matches && !contains {
                r = r.union(&Ranges::singleton(c.version.clone()));
            } else if !matches && contains {
                r = r.intersection(&Ranges::singleton(c.version.clone()).complement());
            }
        }
        r
    }
}

/// The lowest version above every `major.minor.patch-pre` of `v`'s triple.
fn v(major: u64, minor: u64, patch: u64) -> Version {
    Version::new(major, minor, patch)
}

fn comparator_range(c: &Comparator) -> Ranges<Version> {
    let (maj, min, pat) = (c.major, c.minor, c.patch);
    let exact = || {
        let mut x = v(maj, min.unwrap_or(0), pat.unwrap_or(0));
        x.pre = c.pre.clone();
        x
    };
    // The first version past the partial version `c` names.
    let next = || match (min, pat) {
        (None, _) => v(maj + 1, 0, 0),
        (Some(m), None) => v(maj, m + 1, 0),
        (Some(m), Some(p)) => v(maj, m, p + 1),
    };
    match c.op {
        Op::Exact | Op::Wildcard => match (min, pat) {
            (Some(_), Some(_)) => Ranges::singleton(exact()),
            _ => Ranges::between(exact(), next()),
        },
        Op::Greater => match (min, pat) {
            (Some(_), Some(_)) => Ranges::strictly_higher_than(exact()),
            _ => Ranges::higher_than(next()),
        },
        Op::GreaterEq => Ranges::higher_than(exact()),
        Op::Less => Ranges::strictly_lower_than(exact()),
        Op::LessEq => match (min, pat) {
            (Some(_), Some(_)) => Ranges::lower_than(exact()),
            _ => Ranges::strictly_lower_than(next()),
        },
        Op::Tilde => match min {
            None => Ranges::between(exact(), v(maj + 1, 0, 0)),
            Some(m) => Ranges::between(exact(), v(maj, m + 1, 0)),
        },
        Op::Caret => {
            let upper = match (maj, min, pat) {
                (0, None, _) => v(1, 0, 0),
                (0, Some(0), None) => v(0, 1, 0),
                (0, Some(0), Some(p)) => v(0, 0, p + 1),
                (0, Some(m), _) => v(0, m + 1, 0),
                (x, _, _) => v(x + 1, 0, 0),
            };
            Ranges::between(exact(), upper)
        }
        _ => Ranges::full(),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ResolveError(String);

struct Provider<'a> {
    universe: &'a Universe,
    roots: Vec<(String, VersionReq)>,
    locked: &'a HashMap<String, Version>,
}

impl Provider<'_> {
    fn usable(&self, key: &str, c: &Candidate) -> bool {
        !c.line.yanked || self.locked.get(key) == Some(&c.version)
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Pkg;
    type V = Version;
    type VS = Ranges<Version>;
    type M = String;
    type Priority = (u8, Reverse<usize>);
    type Err = ResolveError;

    fn prioritize(
        &self,
        p: &Pkg,
        range: &Ranges<Version>,
        _: &PackageResolutionStatistics,
    ) -> Self::Priority {
        match p {
            Pkg::Root => (1, Reverse(0)),
            // Fewest candidates first: the most constrained packages decide early.
            Pkg::Name(k) => {
                (0, Reverse(self.universe.versions(k).iter().filter(|c| range.contains(&c.version)).count()))
            }
        }
    }

    fn choose_version(&self, p: &Pkg, range: &Ranges<Version>) -> Result<Option<Version>, ResolveError> {
        let Pkg::Name(k) = p else {
            return Ok(Some(v(0, 0, 0)));
        };
        if let Some(locked) = self.locked.get(k) {
            if range.contains(locked) && self.universe.versions(k).iter().any(|c| &c.version == locked) {
                return Ok(Some(locked.clone()));
            }
        }
        Ok(self
            .universe
            .versions(k)
            .iter()
            .find(|c| range.contains(&c.version) && self.usable(k, c))
            .map(|c| c.version.clone()))
    }

    fn get_dependencies(
        &self,
        p: &Pkg,
        version: &Version,
    ) -> Result<Dependencies<Pkg, Ranges<Version>, String>, ResolveError> {
        let mut out: BTreeMap<Pkg, Ranges<Version>> = BTreeMap::new();
        let mut add = |name: &str, req: &VersionReq| {
            let key = name.to_lowercase();
            let r = self.universe.range(&key, req);
            let entry = out.entry(Pkg::Name(key)).or_insert_with(Ranges::full);
            *entry = entry.intersection(&r);
        };
        match p {
            Pkg::Root => {
                for (name, req) in &self.roots {
                    add(name, req);
                }
            }
            Pkg::Name(k) => {
                let Some(c) = self.universe.versions(k).iter().find(|c| &c.version == version) else {
                    return Ok(Dependencies::Unavailable(format!("{k} {version} is not in the index")));
                };
                for d in c.line.deps.iter().filter(|d| dep_counts(d)) {
                    match VersionReq::parse(&d.req) {
                        Ok(req) => add(dep_target(d), &req),
                        Err(e) => {
                            return Ok(Dependencies::Unavailable(format!(
                                "(its requirement `{}` on {} is not valid: {e})",
                                d.req, d.name
                            )))
                        }
                    }
                }
            }
        }
        Ok(Dependencies::Available(out.into_iter().collect::<DependencyConstraints<_, _>>()))
    }
}

/// Resolves `roots` (name, requirement) against `universe`, preferring the
/// `locked` versions. Returns the chosen index line per package key.
pub fn resolve(
    universe: &Universe,
    roots: &[(String, VersionReq)],
    locked: &HashMap<String, Version>,
) -> Result<BTreeMap<String, IndexLine>, ResolveError> {
    let provider = Provider { universe, roots: roots.to_vec(), locked };
    match pubgrub::resolve(&provider, Pkg::Root, v(0, 0, 0)) {
        Ok(solution) => {
            let mut out = BTreeMap::new();
            for (p, ver) in solution {
                if let Pkg::Name(k) = p {
                    let c = universe
                        .versions(&k)
                        .iter()
                        .find(|c| c.version == ver)
                        .expect("chosen from the index");
                    out.insert(k, c.line.clone());
                }
            }
            Ok(out)
        }
        Err(PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            let text = DefaultStringReporter::report(&tree)
                .replace(&format!("{ROOT_LABEL} 0.0.0"), "your request")
                .replace(ROOT_LABEL, "your request");
            let mut missing: Vec<&String> = tree
                .packages()
                .into_iter()
                .filter_map(|p| match p {
                    Pkg::Name(k) if universe.versions(k).is_empty() => Some(k),
                    _ => None,
                })
                .collect();
            missing.sort();
            let mut msg = format!("cannot find a set of versions that satisfies every requirement:\n{text}");
            for k in missing {
                msg.push_str(&format!("\nnote: the registry has no package named `{k}`"));
            }
            Err(ResolveError(msg))
        }
        Err(e) => Err(ResolveError(format!("resolution failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexDep;

    fn line(name: &str, vers: &str, deps: &[(&str, &str)], yanked: bool) -> IndexLine {
        IndexLine {
            name: name.into(),
            vers: vers.into(),
            deps: deps.iter().map(|(n, r)| IndexDep::normal(n, r)).collect(),
            cksum: "0".repeat(64),
            features: Default::default(),
            yanked,
            links: None,
            v: 1,
            features2: None,
            rust_version: None,
            pubtime: None,
            blake3: String::new(),
            size: 0,
            fmt: "tar.gz".into(),
            kind: None,
            description: None,
            license: None,
            keywords: vec![],
            repository: None,
            provenance: None,
            npm: None,
            log_index: None,
        }
    }

    fn universe(lines: Vec<IndexLine>) -> Universe {
        let mut files: HashMap<String, Option<Vec<IndexLine>>> = HashMap::new();
        for l in lines {
            files.entry(l.name.to_lowercase()).or_insert_with(|| Some(vec![])).as_mut().unwrap().push(l);
        }
        Universe::new(&files)
    }

    fn roots(r: &[(&str, &str)]) -> Vec<(String, VersionReq)> {
        r.iter().map(|(n, q)| (n.to_string(), VersionReq::parse(q).unwrap())).collect()
    }

    #[test]
    fn ranges_follow_cargo() {
        let u = universe(vec![
            line("a", "1.0.0", &[], false),
            line("a", "1.5.0-beta", &[], false),
            line("a", "1.5.0", &[], false),
            line("a", "2.0.0-rc.1", &[], false),
            line("a", "0.2.5", &[], false),
        ]);
        for (req, yes, no) in [
            ("^1.0", vec!["1.0.0", "1.5.0"], vec!["1.5.0-beta", "2.0.0-rc.1", "0.2.5"]),
            ("^0.2", vec!["0.2.5"], vec!["1.0.0"]),
            ("~1.5.0-beta", vec!["1.5.0-beta", "1.5.0"], vec!["1.0.0"]),
            ("<2", vec!["1.5.0", "0.2.5"], vec!["2.0.0-rc.1", "1.5.0-beta"]),
            (">=2.0.0-rc.1", vec!["2.0.0-rc.1"], vec!["1.5.0"]),
            ("*", vec!["1.5.0"], vec!["1.5.0-beta"]),
            ("=1.0", vec!["1.0.0"], vec!["1.5.0"]),
        ] {
            let r = u.range("a", &VersionReq::parse(req).unwrap());
            for y in yes {
                assert!(r.contains(&Version::parse(y).unwrap()), "{req} should match {y} ({r})");
            }
            for n in no {
                assert!(!r.contains(&Version::parse(n).unwrap()), "{req} should not match {n} ({r})");
            }
        }
    }

    #[test]
    fn diamond_yank_and_conflict() {
        let u = universe(vec![
            line("app", "1.0.0", &[("left", "^1"), ("right", "^1")], false),
            line("left", "1.0.0", &[("base", ">=1.1, <2")], false),
            line("right", "1.0.0", &[("base", "^1.0")], false),
            line("base", "1.0.0", &[], false),
            line("base", "1.1.0", &[], false),
            line("base", "1.2.0", &[], true),
        ]);
        let none = HashMap::new();
        let s = resolve(&u, &roots(&[("app", "*")]), &none).unwrap();
        assert_eq!(s["base"].vers, "1.1.0", "yanked 1.2.0 skipped");
        let locked = HashMap::from([("base".to_string(), Version::parse("1.2.0").unwrap())]);
        let s = resolve(&u, &roots(&[("app", "*")]), &locked).unwrap();
        assert_eq!(s["base"].vers, "1.2.0", "a locked yanked version stays");
        let err = resolve(&u, &roots(&[("app", "*"), ("base", "=1.0.0")]), &none).unwrap_err().to_string();
        assert!(err.contains("left") && err.contains("base"), "{err}");
        let err = resolve(&u, &roots(&[("nope", "^1")]), &none).unwrap_err().to_string();
        assert!(err.contains("no package named `nope`"), "{err}");
    }
}
