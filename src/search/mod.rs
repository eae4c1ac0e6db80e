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

/// Field bits of a posting.
pub const EXACT_NAME: u8 = 1;
pub const NAME_TOKEN: u8 = 2;
pub const KEYWORD: u8 = 4;
pub const DESCRIPTION: u8 = 8;

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "is", "it", "of", "on", "or",
    "that", "the", "this", "to", "with",
];

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

/// A package as search results show it: name, latest version, description,
/// downloads, description length in words.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct Doc(pub String, pub String, pub String, pub u64, pub u32);

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
/// matched as a prefix), downloads breaking ties, then the name.
pub fn query(
    manifest: Option<&Manifest>,
    delta: &Delta,
    fetch: &mut dyn FnMut(&str) -> Result<Shard>,
    q: &str,
    limit: usize,
) -> Result<Vec<SearchResult>> {
    let words = tokenize(q);
    if words.is_empty() {
        return Ok(vec![]);
    }
    let joined = words.join("-");
    let shard_of = |w: &str| manifest.and_then(|m| m.shard_for(w));
    let mut shards: HashMap<String, Shard> = HashMap::new();
    for w in &words {
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
            let doc =
                Doc(e.name.clone(), d.version.clone(), truncate(&d.description, 120), d.downloads, words);
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
    let mut hits: Vec<(u8, SearchResult)> = scored
        .into_values()
        .map(|(doc, score, matched)| {
            let canon = crate::name::canonical(&doc.0);
            let tier = if canon == joined {
                0
            } else if canon.starts_with(&joined) {
                1
            } else {
                2
            };
            // Packages matching every word come before those matching some.
            let coverage = (matched & all_words).count_ones() as f64 / words.len() as f64;
            let hit = SearchResult {
                name: doc.0,
                version: doc.1,
                description: doc.2,
                downloads: doc.3,
                score: score * coverage * coverage,
            };
            (tier, hit)
        })
        .collect();
    hits.sort_by(|(ta, a), (tb, b)| {
        // Among names that start with the query, the closest (shortest) first.
        let closeness =
            if *ta == 1 && *tb == 1 { a.name.len().cmp(&b.name.len()) } else { std::cmp::Ordering::Equal };
        ta.cmp(tb)
            .then(closeness)
            .then(b.score.partial_cmp(&a.score).unwrap_or(std::cmp::Ordering::Equal))
            .then(b.downloads.cmp(&a.downloads))
            .then(a.name.cmp(&b.name))
    });
    Ok(hits.into_iter().take(limit).map(|(_, h)| h).collect())
}
