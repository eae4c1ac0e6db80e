//! Search as static files (format: `index/search.md`, schemas in
//! `index/schema/`): content-named shards with their manifest, which the
//! search job builds (`build`), and a small delta of what changed since,
//! which each write group rewrites (`delta`). `query` is the one ranking
//! algorithm, shared by the CLI, cargo's search API, the site and the test
//! vectors in `index/search-vectors.json` that every implementation passes.

pub mod build;
pub mod delta;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub use build::run;
pub use delta::{Delta, DeltaEntry};

use crate::layout::Layout;

/// The shards' format version (`index/search.md`): 3 added the docs' kind,
/// keywords and deprecation and the filters' terms.
pub const FORMAT_VERSION: u32 = 3;

/// Field bits of a posting.
pub const EXACT_NAME: u8 = 1;
pub const NAME_TOKEN: u8 = 2;
pub const KEYWORD: u8 = 4;
pub const DESCRIPTION: u8 = 8;

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "of", "on", "or",
    "that", "the", "this", "to", "with",
];

/// A query's filter (`kind:skill`, `keyword:git`): only packages of that
/// kind, or with that keyword, match. Values are ASCII-lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Kind(String),
    Keyword(String),
}

impl Filter {
    /// The shards' term for the filter's packages (`@skill`, `#git`): never a
    /// word's term (those are alphanumeric), sharded by its value like one.
    pub fn term(&self) -> String {
        match self {
            Filter::Kind(k) => format!("@{k}"),
            Filter::Keyword(k) => format!("#{k}"),
        }
    }

    /// Whether a package of `kind` (as listed: `IndexLine::listed_kind`)
    /// with `keywords` (as published) passes.
    pub fn admits(&self, kind: Option<&str>, keywords: &[String]) -> bool {
        match self {
            Filter::Kind(k) => kind == Some(k.as_str()),
            Filter::Keyword(k) => keywords.iter().any(|w| w.to_ascii_lowercase() == *k),
        }
    }
}

/// A query's words (tokenized) and filters: each whitespace-separated
/// part `kind:…` or `keyword:…` is a filter, the rest is text.
pub fn parse_query(q: &str) -> (Vec<String>, Vec<Filter>) {
    let mut text = Vec::new();
    let mut filters = Vec::new();
    for part in q.split_whitespace() {
        let lower = part.to_ascii_lowercase();
        if let Some(k) = lower.strip_prefix("kind:") {
            filters.push(Filter::Kind(k.to_string()));
        } else if let Some(k) = lower.strip_prefix("keyword:") {
            filters.push(Filter::Keyword(k.to_string()));
        } else {
            text.push(part);
        }
    }
    (tokenize(&text.join(" ")), filters)
}

/// Lowercase alphanumeric words; `-`, `_`, `.` and spaces separate.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
}

/// The manifest: which shard holds which term prefix. Shard `i` of a
/// build is the file `{generation}-{i}.json`, where `generation` is the hash
/// of every shard of the build: names stay immutable and a reader never
/// mixes builds, while the manifest lists only the prefixes (per-shard hashes
/// would make it the largest part of every query's transfer).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub version: u32,
    pub generated_at: String,
    pub index_commit: String,
    /// Number of packages, and the mean description length (BM25's N, avgdl).
    pub docs: u64,
    pub avg_len: f64,
    pub generation: String,
    /// Term prefixes, sorted; the position is the shard's number.
    pub shards: Vec<String>,
}

impl Manifest {
    /// Shard `i` of a build: `{generation}-{i}.json`.
    pub fn shard_file(generation: &str, i: usize) -> String {
        format!("{generation}-{i}.json")
    }

    /// Whether a file of the search directory is a shard (not the manifest or the delta).
    pub fn is_shard_file(name: &str) -> bool {
        name.strip_suffix(".json")
            .and_then(|stem| stem.split_once('-'))
            .is_some_and(|(g, i)| g.len() == 16 && !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The shard file for a term: the longest prefix key of the term; a
    /// term shorter than every key under it goes to its own key's shard.
    pub fn shard_for(&self, term: &str) -> Option<String> {
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, k)| term.starts_with(k.as_str()))
            .max_by_key(|(_, k)| k.len())
            .map(|(i, _)| Manifest::shard_file(&self.generation, i))
    }
}

/// A term's postings: how many packages have it, and the best of them as
/// `(doc index in this shard, field bits, term frequency)`.
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct Postings {
    pub df: u64,
    pub p: Vec<(u32, u8, u16)>,
}

/// A package as search results show it and filters see it: name, latest
/// version, description, downloads, description length in words, kind (as
/// listed: `IndexLine::listed_kind`), keywords (as published), deprecated,
/// and the upstream it is cached from (none: published here; absent in
/// shards written before upstreams).
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct Doc(
    pub String,
    pub String,
    pub String,
    pub u64,
    pub u32,
    pub Option<String>,
    pub Vec<String>,
    pub bool,
    #[serde(default)] pub Option<String>,
);

impl Doc {
    fn admitted(&self, filters: &[Filter]) -> bool {
        filters.iter().all(|f| f.admits(self.5.as_deref(), &self.6))
    }
}

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct Shard {
    pub key: String,
    pub terms: BTreeMap<String, Postings>,
    /// For a prefix whose longer terms live in other shards: its most
    /// frequent completions, so typing a short prefix still finds packages.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub completions: BTreeMap<String, Postings>,
    pub docs: Vec<Doc>,
}

/// A package's terms: field bits and description term frequency by term.
pub type Terms = HashMap<String, (u8, u16)>;

/// Terms of one package (its latest version's name, keywords and
/// description).
pub fn package_terms(name: &str, keywords: &[String], description: &str) -> Terms {
    let mut terms = Terms::new();
    let mut add = |t: String, field: u8| {
        if t.len() > 64 {
            return;
        }
        let e = terms.entry(t).or_insert((0, 0));
        e.0 |= field;
        if field == DESCRIPTION {
            e.1 = e.1.saturating_add(1);
        }
    };
    add(crate::name::canonical(name), EXACT_NAME);
    for t in tokenize(name) {
        add(t, NAME_TOKEN);
    }
    for k in keywords {
        for t in tokenize(k) {
            add(t, KEYWORD);
        }
    }
    for t in tokenize(description) {
        if !STOPWORDS.contains(&t.as_str()) {
            add(t, DESCRIPTION);
        }
    }
    terms
}

/// `s` cut to `max` characters, with an ellipsis when cut (result descriptions).
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    pub name: String,
    pub version: String,
    pub description: String,
    pub downloads: u64,
    pub score: f64,
    /// Its kind (`library` when it declares none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The upstream a cached package comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// Runs a query on a registry's search files, read by key through `get`
/// (`None`: no such file): the manifest and the delta, then the shards the
/// query needs. The CLI reads over HTTP, the server from its static root.
pub fn search(
    l: &Layout,
    get: &mut dyn FnMut(&str) -> Result<Option<Vec<u8>>>,
    q: &str,
    limit: usize,
) -> Result<Vec<SearchResult>> {
    let manifest: Option<Manifest> = get(&l.search_manifest())?
        .map(|b| serde_json::from_slice(&b))
        .transpose()
        .context("reading the search manifest")?;
    let delta = Delta::parse(get(&l.search_delta())?.as_deref()).context("reading the search delta")?;
    let mut fetch = |file: &str| -> Result<Shard> {
        let key = l.search_shard(file);
        let bytes = get(&key)?.with_context(|| format!("the search shard {key} is missing"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("reading {key}"))
    };
    query(manifest.as_ref(), &delta, &mut fetch, q, limit)
}

/// Runs a query against the shards `fetch` returns (by file name) and the
/// delta, reading only the manifest and the shards of the query's terms
/// (none without a manifest: the delta alone answers). A package in the
/// delta is scored from its delta entry, never from the shards' older
/// copy, and a removed one not at all. The ranking: the exact name first,
/// then names starting with the query (shortest first), then BM25 over
/// name tokens, keywords and description words (the last word also
/// matched as a prefix), downloads breaking ties, then the name; a
/// deprecated package last in its tier (never the exact name's). Filters
/// keep the packages they admit; filters alone list them by downloads.
pub fn query(
    manifest: Option<&Manifest>,
    delta: &Delta,
    fetch: &mut dyn FnMut(&str) -> Result<Shard>,
    q: &str,
    limit: usize,
) -> Result<Vec<SearchResult>> {
    let (words, filters) = parse_query(q);
    if words.is_empty() && filters.is_empty() {
        return Ok(vec![]);
    }
    let joined = words.join("-");
    let shard_of = |w: &str| manifest.and_then(|m| m.shard_for(w));
    // Words need their shards; filters alone, the shards of their terms.
    let terms: Vec<String> = match words.is_empty() {
        true => filters.iter().map(Filter::term).collect(),
        false => words.clone(),
    };
    let mut shards: HashMap<String, Shard> = HashMap::new();
    for w in &terms {
        if let Some(f) = shard_of(w) {
            if let std::collections::hash_map::Entry::Vacant(slot) = shards.entry(f) {
                let shard = fetch(slot.key())?;
                slot.insert(shard);
            }
        }
    }
    // The delta's packages, with their terms.
    let fresh: Vec<(Doc, Terms)> = delta
        .packages
        .iter()
        .filter_map(|e| {
            let d = e.doc.as_ref()?;
            let words = tokenize(&d.description).len() as u32;
            let doc = Doc(
                e.name.clone(),
                d.version.clone(),
                truncate(&d.description, 120),
                d.downloads,
                words,
                d.kind.clone(),
                d.keywords.clone(),
                d.deprecated,
                d.upstream.clone(),
            );
            Some((doc, package_terms(&e.name, &d.keywords, &d.description)))
        })
        .collect();
    let replaced: std::collections::HashSet<String> =
        delta.packages.iter().map(|e| crate::name::canonical(&e.name)).collect();
    let (n, avg_len) = match manifest {
        Some(m) => (m.docs.max(1) as f64, m.avg_len),
        None => {
            let total: f64 = fresh.iter().map(|(d, _)| d.4 as f64).sum();
            (fresh.len().max(1) as f64, total / fresh.len().max(1) as f64)
        }
    };
    let (k1, b) = (1.2, 0.75);
    let score_of = |df: u64, fields: u8, tf: u16, doc_len: u32| -> f64 {
        let idf = (1.0 + (n - df as f64 + 0.5) / (df as f64 + 0.5)).ln();
        let mut s = 0.0;
        if fields & (EXACT_NAME | NAME_TOKEN) != 0 {
            s += 3.0;
        }
        if fields & KEYWORD != 0 {
            s += 2.0;
        }
        if fields & DESCRIPTION != 0 {
            let tf = tf as f64;
            let norm = 1.0 - b + b * doc_len as f64 / avg_len.max(1.0);
            s += tf * (k1 + 1.0) / (tf + k1 * norm);
        }
        idf * s
    };
    // Score by package name (docs are shard-local).
    let mut scored: HashMap<String, (Doc, f64, usize)> = HashMap::new();
    if words.is_empty() {
        // Filters alone: the packages of the filter term with the fewest
        // (its postings are the most downloaded), all of score 0.
        let postings =
            |t: &String| shard_of(t).and_then(|f| shards[&f].terms.get(t).map(|p| (&shards[&f], p)));
        let fewest = terms.iter().filter_map(postings).min_by_key(|(_, p)| p.df);
        let shard_docs =
            fewest.into_iter().flat_map(|(s, p)| p.p.iter().map(|&(i, _, _)| &s.docs[i as usize]));
        let from_shards = shard_docs.filter(|d| !replaced.contains(&crate::name::canonical(&d.0)));
        for doc in from_shards.chain(fresh.iter().map(|(d, _)| d)).filter(|d| d.admitted(&filters)) {
            scored.insert(doc.0.clone(), (doc.clone(), 0.0, 0));
        }
    }
    let add = |doc: &Doc, s: f64, word: usize, scored: &mut HashMap<String, (Doc, f64, usize)>| {
        let e = scored.entry(doc.0.clone()).or_insert((doc.clone(), 0.0, 0));
        e.1 += s;
        e.2 |= 1 << word.min(63);
    };
    for (wi, w) in words.iter().enumerate() {
        let last = wi == words.len() - 1;
        // The word being typed also matches as a prefix, at half weight.
        let weight = |t: &str| {
            if t == w {
                Some(1.0)
            } else if last && t.len() > w.len() && t.starts_with(w.as_str()) {
                Some(0.5)
            } else {
                None
            }
        };
        let shard = shard_of(w).map(|f| &shards[&f]);
        if let Some(shard) = shard {
            for (t, p) in shard.terms.iter().chain(shard.completions.iter()) {
                let Some(weight) = weight(t) else { continue };
                for &(idx, fields, tf) in &p.p {
                    let doc = &shard.docs[idx as usize];
                    if !replaced.contains(&crate::name::canonical(&doc.0)) {
                        add(doc, weight * score_of(p.df, fields, tf, doc.4), wi, &mut scored);
                    }
                }
            }
        }
        // A delta term's df is the shard's when the word's shard has the
        // term, else the number of delta packages that have it.
        for (doc, terms) in &fresh {
            for (t, &(fields, tf)) in terms {
                let Some(weight) = weight(t) else { continue };
                let known = shard.and_then(|s| s.terms.get(t).or(s.completions.get(t))).map(|p| p.df);
                let df =
                    known.unwrap_or_else(|| fresh.iter().filter(|(_, ts)| ts.contains_key(t)).count() as u64);
                add(doc, weight * score_of(df, fields, tf, doc.4), wi, &mut scored);
            }
        }
    }
    let all_words: usize = if words.len() >= 64 { usize::MAX } else { (1usize << words.len()) - 1 };
    let mut hits: Vec<(u8, bool, SearchResult)> = scored
        .into_values()
        .filter(|(doc, _, _)| doc.admitted(&filters))
        .map(|(doc, score, matched)| {
            let canon = crate::name::canonical(&doc.0);
            let tier = if joined.is_empty() {
                2 // filters alone
            } else if canon == joined {
                0
            } else if canon.starts_with(&joined) {
                1
            } else {
                2
            };
            // Packages matching every word come before those matching some.
            let coverage = (matched & all_words).count_ones() as f64 / words.len().max(1) as f64;
            // A deprecated package ranks below the others of its tier, but
            // for the exact name, which still ranks first.
            let demoted = doc.7 && tier != 0;
            let hit = SearchResult {
                name: doc.0,
                version: doc.1,
                description: doc.2,
                downloads: doc.3,
                score: score * coverage * coverage,
                kind: doc.5,
                upstream: doc.8,
            };
            (tier, demoted, hit)
        })
        .collect();
    hits.sort_by(|(ta, da, a), (tb, db, b)| {
        // Among names that start with the query, the closest (shortest) first.
        let closeness =
            if *ta == 1 && *tb == 1 { a.name.len().cmp(&b.name.len()) } else { std::cmp::Ordering::Equal };
        ta.cmp(tb)
            .then(da.cmp(db))
            .then(closeness)
            .then(b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal))
            .then(b.downloads.cmp(&a.downloads))
            .then(a.name.cmp(&b.name))
    });
    Ok(hits.into_iter().take(limit).map(|(_, _, h)| h).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(delta: &Delta, q: &str) -> Vec<String> {
        let mut no_shards = |f: &str| -> Result<Shard> { panic!("no shards without a manifest: {f}") };
        query(None, delta, &mut no_shards, q, 5).unwrap().into_iter().map(|r| r.name).collect()
    }

    /// The shared vectors' `deprecation` part: a hand-built delta queried alone.
    #[test]
    fn deprecated_packages_rank_as_the_shared_vectors_say() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../index/search-vectors.json")).unwrap();
        let part = &vectors["deprecation"];
        let delta: Delta = serde_json::from_value(part["delta"].clone()).unwrap();
        for v in part["vectors"].as_array().unwrap() {
            let q = v["query"].as_str().unwrap();
            let want: Vec<&str> = v["top"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
            let got = names(&delta, q);
            assert!(
                got.len() >= want.len() && got[..want.len()] == want[..],
                "{q:?}: want {want:?}, got {got:?}"
            );
            if want.is_empty() {
                assert!(got.is_empty(), "{q:?}: {got:?}");
            }
        }
    }

    #[test]
    fn queries_split_into_words_and_filters() {
        let (words, filters) = parse_query("Git KIND:Skill keyword:no_std  tools");
        assert_eq!(words, ["git", "tools"]);
        assert_eq!(filters, [Filter::Kind("skill".into()), Filter::Keyword("no_std".into())]);
        assert_eq!(Filter::Kind("skill".into()).term(), "@skill");
        assert!(Filter::Keyword("git".into()).admits(None, &["Git".into()]));
        assert!(!Filter::Kind("library".into()).admits(None, &[]));
    }
}
