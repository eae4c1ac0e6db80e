//! Search as static shards (format: `index/search.md`, schemas in
//! `index/schema/`). The build side turns every package into terms and
//! writes content-named shards, then the manifest; the query side
//! (`query`) is the one ranking algorithm, shared by the CLI and the test
//! vectors in `index/search-vectors.json` that every implementation passes.

use anyhow::Result;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::stats::Totals;
use super::Snapshot;
use crate::fsutil::write_atomic;
use crate::index::IndexLine;
use crate::registry::Registry;

/// Field bits of a posting.
pub const EXACT_NAME: u8 = 1;
pub const NAME_TOKEN: u8 = 2;
pub const KEYWORD: u8 = 4;
pub const DESCRIPTION: u8 = 8;

/// Postings kept per term, best first by static rank: a query needs the top
/// results, and this bounds a shard's size whatever the term's frequency.
const MAX_POSTINGS: usize = 300;
/// Target size of a shard's JSON before compression.
const SHARD_BUDGET: usize = 60 * 1024;
/// Completions kept for a prefix whose terms are split over longer shards.
const MAX_COMPLETIONS: usize = 24;
const MAX_KEY_LEN: usize = 4;
/// Shards no manifest names are removed after this long, so a reader with
/// a cached manifest (max-age 60) never misses one.
const SHARD_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

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
    /// The shard file for a term: the longest prefix key of the term; a
    /// term shorter than every key under it goes to its own key's shard.
    pub fn shard_for(&self, term: &str) -> Option<String> {
        self.shards
            .iter()
            .enumerate()
            .filter(|(_, k)| term.starts_with(k.as_str()))
            .max_by_key(|(_, k)| k.len())
            .map(|(i, _)| format!("{}-{i}.json", self.generation))
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

/// One posting while building: global doc id.
#[derive(Clone, Copy)]
struct Hit {
    doc: u32,
    fields: u8,
    tf: u16,
}

/// Terms of one package with their fields.
fn package_terms(line: &IndexLine) -> HashMap<String, (u8, u16)> {
    let mut terms: HashMap<String, (u8, u16)> = HashMap::new();
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
    add(crate::name::canonical(&line.name), EXACT_NAME);
    for t in tokenize(&line.name) {
        add(t, NAME_TOKEN);
    }
    for k in &line.keywords {
        for t in tokenize(k) {
            add(t, KEYWORD);
        }
    }
    for t in tokenize(line.description.as_deref().unwrap_or("")) {
        if !STOPWORDS.contains(&t.as_str()) {
            add(t, DESCRIPTION);
        }
    }
    terms
}

/// Static rank of a posting, for capping: name hits first, then downloads.
fn static_rank(h: &Hit, downloads: &[u64]) -> (u8, u64) {
    let name = h.fields & (EXACT_NAME | NAME_TOKEN) != 0;
    let kw = h.fields & KEYWORD != 0;
    (u8::from(name) * 2 + u8::from(kw), downloads[h.doc as usize])
}

/// Builds the shards and the manifest from the snapshot, writes shards
/// (content-named) and then the manifest, and removes shards no manifest
/// has named for a while.
pub fn run(reg: &Registry, snap: &Snapshot, totals: &Totals) -> Result<serde_json::Value> {
    let started = std::time::Instant::now();
    // One document per package: its latest version's metadata.
    let docs: Vec<Doc> = snap
        .packages
        .par_iter()
        .map(|p| {
            let desc = p.latest.description.clone().unwrap_or_default();
            let len = tokenize(&desc).len() as u32;
            Doc(p.name.clone(), p.latest.vers.clone(), truncate(&desc, 120), p.downloads(totals), len)
        })
        .collect();
    let downloads: Vec<u64> = docs.iter().map(|d| d.3).collect();
    let avg_len = docs.iter().map(|d| d.4 as f64).sum::<f64>() / docs.len().max(1) as f64;

    // term -> hits, built in parallel and merged.
    let index: HashMap<String, Vec<Hit>> = snap
        .packages
        .par_iter()
        .enumerate()
        .fold(HashMap::new, |mut acc: HashMap<String, Vec<Hit>>, (doc, p)| {
            for (term, (fields, tf)) in package_terms(&p.latest) {
                acc.entry(term).or_default().push(Hit { doc: doc as u32, fields, tf });
            }
            acc
        })
        .reduce(HashMap::new, |mut a, b| {
            for (k, mut v) in b {
                a.entry(k).or_default().append(&mut v);
            }
            a
        });
    let mut terms: Vec<(String, u64, Vec<Hit>)> = index
        .into_par_iter()
        .map(|(term, mut hits)| {
            let df = hits.len() as u64;
            hits.sort_unstable_by(|a, b| {
                static_rank(b, &downloads).cmp(&static_rank(a, &downloads)).then(a.doc.cmp(&b.doc))
            });
            hits.truncate(MAX_POSTINGS);
            (term, df, hits)
        })
        .collect();
    terms.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));

    // Assign terms to prefix keys: split a prefix while its estimated size
    // is over budget.
    let groups = split_groups(&terms);
    let shards: Vec<(String, Shard)> =
        groups.par_iter().map(|g| (g.key.clone(), build_shard(g, &terms, &docs))).collect();

    let dir = reg.static_root.join("api/v1/search");
    let encoded: Vec<Vec<u8>> =
        shards.par_iter().map(|(_, shard)| serde_json::to_vec(shard)).collect::<Result<_, _>>()?;
    let mut hasher = blake3::Hasher::new();
    for bytes in &encoded {
        hasher.update(blake3::hash(bytes).as_bytes());
    }
    let generation = hasher.finalize().to_hex()[..16].to_string();
    // Shards first (an unchanged build finds them there already)...
    encoded.par_iter().enumerate().try_for_each(|(i, bytes)| -> Result<()> {
        let path = dir.join(format!("{generation}-{i}.json"));
        if !path.exists() {
            crate::fsutil::write_replace(&path, bytes)?;
        }
        Ok(())
    })?;
    crate::fsutil::sync_filesystem(&reg.static_root)?;
    // ...the manifest that points at them last.
    let manifest = Manifest {
        version: 2,
        generated_at: crate::db::now(),
        index_commit: snap.head.clone(),
        docs: docs.len() as u64,
        avg_len,
        generation,
        shards: shards.iter().map(|(k, _)| k.clone()).collect(),
    };
    write_atomic(&dir.join("manifest.json"), &serde_json::to_vec(&manifest)?)?;
    let removed = remove_unnamed_shards(&dir, &manifest)?;
    Ok(json!({
        "packages": docs.len(),
        "terms": terms.len(),
        "shards": encoded.len(),
        "largestShardBytes": encoded.iter().map(Vec::len).max(),
        "removedShards": removed,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

struct Group {
    key: String,
    /// Range of `terms` (sorted) this shard holds.
    terms: Vec<usize>,
    /// Completions for a key whose longer terms went to other shards.
    completions: Vec<usize>,
}

/// Rough JSON size of a term's entry plus its docs.
fn term_cost(t: &(String, u64, Vec<Hit>)) -> usize {
    t.0.len() + 16 + t.2.len() * 70
}

fn split_groups(terms: &[(String, u64, Vec<Hit>)]) -> Vec<Group> {
    let mut out = Vec::new();
    let all: Vec<usize> = (0..terms.len()).collect();
    split(terms, &all, String::new(), &mut out);
    out
}

fn split(terms: &[(String, u64, Vec<Hit>)], ids: &[usize], key: String, out: &mut Vec<Group>) {
    let cost: usize = ids.iter().map(|&i| term_cost(&terms[i])).sum();
    let key_chars = key.chars().count();
    if cost <= SHARD_BUDGET || key_chars >= MAX_KEY_LEN {
        out.push(Group { key, terms: ids.to_vec(), completions: vec![] });
        return;
    }
    // Terms equal to the key stay here; the rest split by their next char.
    let mut here = Vec::new();
    let mut by_next: BTreeMap<char, Vec<usize>> = BTreeMap::new();
    for &i in ids {
        match terms[i].0[key.len()..].chars().next() {
            None => here.push(i),
            Some(c) => by_next.entry(c).or_default().push(i),
        }
    }
    let mut completions: Vec<usize> = ids.iter().copied().filter(|i| terms[*i].0.len() > key.len()).collect();
    completions.sort_by_key(|&i| std::cmp::Reverse(terms[i].1));
    completions.truncate(MAX_COMPLETIONS);
    out.push(Group { key: key.clone(), terms: here, completions });
    for (c, sub) in by_next {
        split(terms, &sub, format!("{key}{c}"), out);
    }
}

fn build_shard(g: &Group, terms: &[(String, u64, Vec<Hit>)], docs: &[Doc]) -> Shard {
    let mut local: HashMap<u32, u32> = HashMap::new();
    let mut shard_docs = Vec::new();
    let mut postings = |hits: &[Hit], cap: usize| -> Vec<(u32, u8, u16)> {
        hits.iter()
            .take(cap)
            .map(|h| {
                let idx = *local.entry(h.doc).or_insert_with(|| {
                    shard_docs.push(docs[h.doc as usize].clone());
                    (shard_docs.len() - 1) as u32
                });
                (idx, h.fields, h.tf)
            })
            .collect()
    };
    let mut shard = Shard { key: g.key.clone(), ..Default::default() };
    for &i in &g.terms {
        let (term, df, hits) = &terms[i];
        shard.terms.insert(term.clone(), Postings { df: *df, p: postings(hits, MAX_POSTINGS) });
    }
    for &i in &g.completions {
        let (term, df, hits) = &terms[i];
        shard.completions.insert(term.clone(), Postings { df: *df, p: postings(hits, 20) });
    }
    shard.docs = shard_docs;
    shard
}

/// Removes shards of other generations once they are older than the grace time.
fn remove_unnamed_shards(dir: &Path, manifest: &Manifest) -> Result<usize> {
    let current = format!("{}-", manifest.generation);
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "manifest.json" || name.starts_with(&current) || !name.ends_with(".json") {
            continue;
        }
        let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
        if age > SHARD_GRACE {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
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

/// Runs a query against the shards `fetch` returns (by file name), reading
/// only the manifest and the shards of the query's terms. The ranking:
/// the exact name first, then names starting with the query (shortest
/// first), then BM25
/// over name tokens, keywords and description words (the last word also
/// matched as a prefix), downloads breaking ties, then the name.
pub fn query(
    manifest: &Manifest,
    fetch: &mut dyn FnMut(&str) -> Result<Shard>,
    q: &str,
    limit: usize,
) -> Result<Vec<SearchResult>> {
    let words = tokenize(q);
    if words.is_empty() {
        return Ok(vec![]);
    }
    let joined = words.join("-");
    let mut shards: HashMap<String, Shard> = HashMap::new();
    let mut files: Vec<String> = Vec::new();
    for w in &words {
        if let Some(f) = manifest.shard_for(w) {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    for f in &files {
        shards.insert(f.clone(), fetch(f)?);
    }
    let n = manifest.docs.max(1) as f64;
    let (k1, b) = (1.2, 0.75);
    // Score by package name (docs are shard-local).
    let mut scored: HashMap<String, (Doc, f64, usize)> = HashMap::new();
    let add = |doc: &Doc, s: f64, word: usize, scored: &mut HashMap<String, (Doc, f64, usize)>| {
        let e = scored.entry(doc.0.clone()).or_insert((doc.clone(), 0.0, 0));
        e.1 += s;
        e.2 |= 1 << word.min(63);
    };
    for (wi, w) in words.iter().enumerate() {
        let Some(file) = manifest.shard_for(w) else { continue };
        let shard = &shards[&file];
        let mut matches: Vec<(&Postings, f64)> = Vec::new();
        if let Some(p) = shard.terms.get(w) {
            matches.push((p, 1.0));
        }
        if wi == words.len() - 1 {
            // The word being typed also matches as a prefix, at half weight.
            for (t, p) in shard.terms.iter().chain(shard.completions.iter()) {
                if t.len() > w.len() && t.starts_with(w.as_str()) {
                    matches.push((p, 0.5));
                }
            }
        }
        for (p, weight) in matches {
            let idf = (1.0 + (n - p.df as f64 + 0.5) / (p.df as f64 + 0.5)).ln();
            for &(idx, fields, tf) in &p.p {
                let doc = &shard.docs[idx as usize];
                let mut s = 0.0;
                if fields & (EXACT_NAME | NAME_TOKEN) != 0 {
                    s += 3.0;
                }
                if fields & KEYWORD != 0 {
                    s += 2.0;
                }
                if fields & DESCRIPTION != 0 {
                    let tf = tf as f64;
                    let norm = 1.0 - b + b * doc.4 as f64 / manifest.avg_len.max(1.0);
                    s += tf * (k1 + 1.0) / (tf + k1 * norm);
                }
                add(doc, weight * idf * s, wi, &mut scored);
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
