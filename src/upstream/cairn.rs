//! A cairn registry as an upstream (SPEC section 16), verified as the CLI
//! verifies it before anything of it is cached: its signing key, name and
//! log keys are pinned at first contact (a file per upstream in the data
//! directory: each node pins for itself, as each client does); every line
//! it serves is checked against its log (the leaf its `logIndex` names
//! binds the line's digest, under a checkpoint signed with the pinned key
//! and consistent with the one verified before); every blob against its
//! minisign signature.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::client::trust::LogKeys;
use crate::client::verify::Expected;
use crate::index::IndexLine;
use crate::layout::Layout;
use crate::log::leaf::Leaf;
use crate::log::note::PublicKey;
use crate::log::verify::{self, Fetch};

/// What is pinned of a cairn upstream at first contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pin {
    pub pubkey: String,
    pub name: String,
    pub log: Option<LogKeys>,
}

/// A cairn upstream: its pin, its static root's URL, where its last
/// verified checkpoint is kept.
#[derive(Debug, Clone)]
pub struct Cairn {
    pub pin: Pin,
    base: String,
    kept: PathBuf,
}

/// The cairn registry whose `config.json` this is, pinned (`None`: no
/// cairn registry, a plain cargo sparse one). `Err` when it presents other
/// keys than at first contact.
pub fn from_config(
    config: &serde_json::Value,
    pins: &Path,
    upstream: &str,
    index_url: &str,
) -> Result<Option<Cairn>, String> {
    let (Some(pubkey), Some(name)) = (config["pubkey"].as_str(), config["name"].as_str()) else {
        return Ok(None);
    };
    let log = serde_json::from_value(config["log"].clone()).ok();
    let now = Pin { pubkey: pubkey.to_string(), name: name.to_string(), log };
    let path = pins.join(format!("{upstream}.pin.json"));
    match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Pin>(&b).ok()) {
        Some(pinned) if pinned != now => {
            return Err(format!(
            "it presents other keys than at first contact (pinned: key {}, name {}; now: key {}, name {}): \
                 nothing of it is cached; if its operator confirms the new key, remove {} to pin it again",
            pinned.pubkey,
            pinned.name,
            now.pubkey,
            now.name,
            path.display()
        ))
        }
        Some(_) => {}
        None => {
            let bytes = serde_json::to_vec_pretty(&now).expect("a pin serializes");
            std::fs::create_dir_all(pins)
                .and_then(|_| crate::fsutil::write_atomic(&path, &bytes))
                .map_err(|e| format!("pinning its keys in {}: {e}", path.display()))?;
        }
    }
    let base = index_url.trim_end_matches('/').trim_end_matches("/index").to_string();
    Ok(Some(Cairn { pin: now, base, kept: pins.join(format!("{upstream}.checkpoint")) }))
}

/// The upstream's static files, fetched from a blocking thread.
struct Files<'a> {
    http: &'a reqwest::Client,
    handle: tokio::runtime::Handle,
    base: &'a str,
}

impl Fetch for Files<'_> {
    fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}{}", self.base, crate::layout::url(key));
        self.handle.block_on(async {
            let resp = self.http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
            let resp = resp.error_for_status().map_err(|e| format!("{url}: {e}"))?;
            Ok(resp.bytes().await.map_err(|e| format!("{url}: {e}"))?.to_vec())
        })
    }
}

/// How old the upstream's newest cosignature may be, as a client allows.
const MAX_AGE: u64 = 86_400;

impl Cairn {
    /// Checks each raw line against the upstream's log (on a blocking thread).
    pub fn check_lines(
        &self,
        http: &reqwest::Client,
        handle: tokio::runtime::Handle,
        raw: &[&[u8]],
    ) -> Result<(), String> {
        let Some(keys) = &self.pin.log else { return Ok(()) };
        let trust = verify::Trust {
            note: PublicKey::parse(&keys.key).map_err(|e| e.to_string())?,
            time: PublicKey::parse(&keys.time_key).map_err(|e| e.to_string())?,
            witnesses: Vec::new(),
            quorum: 0,
            max_age: MAX_AGE,
        };
        let files = Files { http, handle, base: &self.base };
        let layout = Layout::public();
        let bytes = files.get(&layout.log_checkpoint())?;
        let now = verify::checkpoint(&bytes, &trust, crate::log::note::now()).map_err(|e| e.to_string())?;
        if let Some(kept) =
            std::fs::read(&self.kept).ok().and_then(|b| tlog_tiles::Checkpoint::from_bytes(&b).ok())
        {
            verify::consistent(&now.checkpoint, &kept, &files, &layout).map_err(|e| e.to_string())?;
        }
        let lines: Vec<IndexLine> = raw
            .iter()
            .map(|r| serde_json::from_slice(r).map_err(|e| format!("not an index line: {e}")))
            .collect::<Result<_, _>>()?;
        let indexes: Vec<u64> = lines
            .iter()
            .map(|l| l.log_index.ok_or_else(|| format!("{} {} names no entry of its log", l.name, l.vers)))
            .collect::<Result<_, _>>()?;
        let texts = verify::leaves(&now.checkpoint, &indexes, &files, &layout).map_err(|e| e.to_string())?;
        for ((line, raw), text) in lines.iter().zip(raw).zip(texts) {
            let leaf = Leaf::parse(&text).map_err(|e| e.to_string())?;
            if !leaf.is_entry_of(line, raw) {
                return Err(format!(
                    "split view: its line of {} {} is not the one its log recorded",
                    line.name, line.vers
                ));
            }
        }
        crate::fsutil::write_atomic(&self.kept, &now.body)
            .map_err(|e| format!("{}: {e}", self.kept.display()))
    }

    /// Checks a blob against its signature by the pinned key, over its
    /// name, version and SHA-256.
    pub fn check_blob(
        &self,
        bytes: &[u8],
        minisig: &str,
        name: &str,
        version: &str,
        sha256: &str,
    ) -> Result<(), String> {
        let trust =
            crate::client::trust::Trust { pubkey: self.pin.pubkey.clone(), name: self.pin.name.clone() };
        let want =
            Expected { name: name.into(), version: version.into(), sha256: sha256.into(), blake3: None };
        crate::client::verify::verify(bytes, minisig, &trust, &want).map_err(|e| e.to_string())
    }
}
