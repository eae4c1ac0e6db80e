//! What of an upstream's index file cairn serves: its lines byte for byte,
//! less the versions still in their cooldown (`min_age`).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;

/// What cairn reads of an upstream's line (the rest it keeps as bytes).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct UpstreamLine {
    pub name: String,
    pub vers: String,
    pub cksum: String,
    #[serde(default)]
    pub pubtime: Option<String>,
}

/// Each non-empty line of an upstream's index file for `name`, raw and
/// read; a line that is not an index line of `name` makes the file no
/// index file of it.
pub fn parse<'f>(name: &str, file: &'f [u8]) -> Result<Vec<(&'f [u8], UpstreamLine)>> {
    let key = crate::name::canonical(name);
    let mut out = Vec::new();
    for raw in file.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
        let line: UpstreamLine = serde_json::from_slice(raw)
            .with_context(|| format!("not an index line: {}", String::from_utf8_lossy(raw)))?;
        if crate::name::canonical(&line.name) != key {
            bail!("a line of {} in the index file of {name}", line.name);
        }
        let hex = line.cksum.len() == 64 && line.cksum.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            bail!("{} {}: cksum {:?} is not a SHA-256", line.name, line.vers, line.cksum);
        }
        out.push((raw, line));
    }
    Ok(out)
}

/// The file cairn serves: the lines whose version is at least `min_age`
/// seconds old at `now` (by `pubtime`, else by when cairn first saw it,
/// `first_seen`), each byte for byte with its newline.
pub fn offered(
    lines: &[(&[u8], UpstreamLine)],
    min_age: i64,
    first_seen: &HashMap<String, i64>,
    now: i64,
) -> Vec<u8> {
    let mut out = Vec::new();
    for (raw, line) in lines {
        let published = line
            .pubtime
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
            .or_else(|| first_seen.get(&line.vers).copied())
            .unwrap_or(now);
        if min_age == 0 || now - published >= min_age {
            out.extend_from_slice(raw);
            out.push(b'\n');
        }
    }
    out
}

/// How many of a file's newest versions [`ahead`] reads the dependencies of.
const AHEAD_VERSIONS: usize = 2;

/// The names a resolver that just read this file will most likely ask for
/// next: the dependencies but dev-dependencies (optional ones too: cargo
/// asks for them to know their features; none of another registry) of its
/// newest versions that are not yanked, as the index names them
/// (`package` for a renamed one).
pub fn ahead(lines: &[(&[u8], UpstreamLine)]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Line {
        #[serde(default)]
        deps: Vec<Dep>,
        #[serde(default)]
        yanked: bool,
    }
    #[derive(serde::Deserialize)]
    struct Dep {
        name: String,
        #[serde(default)]
        package: Option<String>,
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        registry: Option<String>,
    }
    let mut newest: Vec<(semver::Version, Line)> = lines
        .iter()
        .filter_map(|(raw, l)| {
            Some((semver::Version::parse(&l.vers).ok()?, serde_json::from_slice::<Line>(raw).ok()?))
        })
        .filter(|(_, l)| !l.yanked)
        .collect();
    newest.sort_by(|a, b| b.0.cmp(&a.0));
    let mut names: Vec<String> = newest
        .into_iter()
        .take(AHEAD_VERSIONS)
        .flat_map(|(_, l)| l.deps)
        .filter(|d| d.registry.is_none() && d.kind.as_deref() != Some("dev"))
        .map(|d| d.package.unwrap_or(d.name).to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ahead_are_the_newest_versions_required_dependencies() {
        let sum = "ab".repeat(32);
        let dep = |name: &str, extra: &str| {
            let kind = if extra.contains("kind") { "" } else { r#","kind":"normal""# };
            let optional = if extra.contains("optional") { "" } else { r#","optional":false"# };
            format!(r#"{{"name":"{name}","req":"^1"{kind}{optional}{extra}}}"#)
        };
        let line = |v: &str, deps: &[String], yanked: bool| {
            format!(
                r#"{{"name":"foo","vers":"{v}","cksum":"{sum}","yanked":{yanked},"deps":[{}]}}"#,
                deps.join(",")
            )
        };
        let file = [
            line("0.9.0", &[dep("old", "")], false),
            line("1.0.0", &[dep("serde", ""), dep("dev-only", r#","kind":"dev""#)], false),
            line(
                "1.1.0",
                &[dep("Libc", ""), dep("opt", r#","optional":true"#), dep("x", r#","package":"real-x""#)],
                false,
            ),
            line("1.2.0", &[dep("yanked-dep", "")], true),
        ]
        .join("\n");
        let lines = parse("foo", file.as_bytes()).unwrap();
        assert_eq!(ahead(&lines), ["libc", "opt", "real-x", "serde"]);
    }

    #[test]
    fn lines_stay_byte_for_byte_and_young_ones_wait() {
        let sum = "ab".repeat(32);
        let file = format!(
            "{{\"name\": \"Foo\", \"vers\": \"1.0.0\", \"cksum\": \"{sum}\", \"pubtime\": \"2020-01-01T00:00:00Z\"}}\n\
             {{\"name\":\"foo\",\"vers\":\"1.1.0\",\"cksum\":\"{sum}\"}}\n"
        );
        let lines = parse("foo", file.as_bytes()).unwrap();
        assert_eq!(offered(&lines, 0, &HashMap::new(), 1_000), file.as_bytes());
        let now = chrono::DateTime::parse_from_rfc3339("2020-01-02T00:00:00Z").unwrap().timestamp();
        let seen: HashMap<String, i64> = [("1.1.0".to_string(), now - 10)].into();
        let kept = offered(&lines, 3600, &seen, now);
        assert_eq!(kept, file.lines().next().map(|l| format!("{l}\n")).unwrap().as_bytes());
        assert!(parse("bar", file.as_bytes()).is_err(), "another package's lines are refused");
        assert!(parse("foo", b"{\"name\":\"foo\",\"vers\":\"1\",\"cksum\":\"x\"}\n").is_err());
    }
}
