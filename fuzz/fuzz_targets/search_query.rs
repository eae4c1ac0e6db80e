//! Search queries of arbitrary text against a small delta (no shards):
//! tokenizing, scoring and ranking must not panic, and never return more
//! than asked.
#![no_main]
use cairn::search::{query, Delta};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else { return };
    let delta: Delta = serde_json::from_str(include_str!("../seeds/delta.json")).unwrap();
    let mut no_shards = |_: &str| -> anyhow::Result<cairn::search::Shard> { anyhow::bail!("no shards") };
    let hits = query(None, &delta, &mut no_shards, q, 5).expect("a query over the delta alone answers");
    assert!(hits.len() <= 5);
});
