//! The search job's build side: every package into terms, the terms into
//! prefix shards of bounded size, written content-named, then the manifest
//! that names them.

use anyhow::Result;
use rayon::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

use super::{
    package_terms, tokenize, truncate, Doc, Filter, Manifest, Postings, Shard, EXACT_NAME, KEYWORD,
    NAME_TOKEN,
};
use crate::db::downloads::Totals;
use crate::jobs::Snapshot;
use crate::layout::StaticRoot;
use crate::registry::Registry;

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

/// One posting while building: global doc id.
#[derive(Clone, Copy)]
struct Hit {
    doc: u32,
    fields: u8,
    tf: u16,
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
    let origins = crate::db::upstream::origins(&reg.db()?, &reg.space)?;
    let docs: Vec<Doc> = snap
        .packages
        .par_iter()
        .map(|p| {
            let l = &p.latest;
            let desc = l.description.clone().unwrap_or_default();
            let len = tokenize(&desc).len() as u32;
            let deprecated = p.meta.as_ref().is_some_and(|m| m.is_deprecated());
            let (kind, keywords) = (l.listed_kind(), l.keywords.clone());
            Doc(
                p.name.clone(),
                l.vers.clone(),
                truncate(&desc, 120),
                p.downloads(totals),
                len,
                kind,
                keywords,
                deprecated,
                origins.get(&crate::name::canonical(&p.name)).and_then(|o| o.upstream.clone()),
            )
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
            let l = &p.latest;
            for (term, (fields, tf)) in
                package_terms(&l.name, &l.keywords, l.description.as_deref().unwrap_or(""))
            {
                acc.entry(term).or_default().push(Hit { doc: doc as u32, fields, tf });
            }
            // The filters' terms, ranked by downloads alone (no field bits).
            let filters = l.listed_kind().map(Filter::Kind).into_iter();
            for f in filters.chain(l.listed_keywords().into_iter().map(Filter::Keyword)) {
                acc.entry(f.term()).or_default().push(Hit { doc: doc as u32, fields: 0, tf: 0 });
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

    let encoded: Vec<Vec<u8>> =
        shards.par_iter().map(|(_, shard)| serde_json::to_vec(shard)).collect::<Result<_, _>>()?;
    let mut hasher = blake3::Hasher::new();
    for bytes in &encoded {
        hasher.update(blake3::hash(bytes).as_bytes());
    }
    let generation = hasher.finalize().to_hex()[..16].to_string();
    let (root, l) = (&reg.root, reg.root.layout());
    // Shards first (an unchanged build finds them there already)...
    encoded.par_iter().enumerate().try_for_each(|(i, bytes)| -> Result<()> {
        let key = l.search_shard(&Manifest::shard_file(&generation, i));
        if !root.exists(&key) {
            root.put(&key, bytes)?;
        }
        Ok(())
    })?;
    root.sync()?;
    // ...the manifest that points at them last.
    let manifest = Manifest {
        version: super::FORMAT_VERSION,
        generated_at: crate::db::now(),
        index_commit: snap.head.clone(),
        docs: docs.len() as u64,
        avg_len,
        generation,
        shards: shards.iter().map(|(k, _)| k.clone()).collect(),
    };
    root.put_durable(&l.search_manifest(), &serde_json::to_vec(&manifest)?)?;
    let removed = remove_unnamed_shards(root, &manifest)?;
    Ok(json!({
        "packages": docs.len(),
        "terms": terms.len(),
        "shards": encoded.len(),
        "largestShardBytes": encoded.iter().map(Vec::len).max(),
        "removedShards": removed,
        "seconds": started.elapsed().as_secs_f64(),
    }))
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
    // A filter's term is never a word being typed: no completion.
    let typed = |i: &usize| terms[*i].0.len() > key.len() && !terms[*i].0.starts_with(['@', '#']);
    let mut completions: Vec<usize> = ids.iter().copied().filter(typed).collect();
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
fn remove_unnamed_shards(root: &StaticRoot, manifest: &Manifest) -> Result<usize> {
    let l = root.layout();
    let mut removed = 0;
    for name in root.list(&l.search_dir())? {
        if !Manifest::is_shard_file(&name) || name.starts_with(&format!("{}-", manifest.generation)) {
            continue;
        }
        let key = l.search_shard(&name);
        if root.age(&key)?.is_some_and(|age| age > SHARD_GRACE) {
            root.remove(&key)?;
            removed += 1;
        }
    }
    Ok(removed)
}
