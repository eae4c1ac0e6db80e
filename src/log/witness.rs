//! C2SP tlog-witness: the witness side (`add-checkpoint`, answered by
//! `cairn witness`) and the registry side (each new checkpoint submitted to
//! the configured witnesses, their cosignatures published with it).
//!
//! A witness follows logs named by their note verifier keys (a log key's
//! name is its origin), keeps the latest size and root hash it cosigned per
//! origin in `{dir}/state/`, and cosigns (tlog-cosignature/v1) only a
//! checkpoint consistent with it. Check and update happen under one lock,
//! so two requests never roll the witness back.

use anyhow::{anyhow, bail, Context, Result};
use base64::prelude::{Engine, BASE64_STANDARD};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tlog_tiles::{Checkpoint, Hash};

use super::note::{self, Key, PublicKey, ALG_COSIGN, ALG_NOTE};
use super::Log;
use crate::config::WitnessConfig;
use crate::layout::StaticRoot;

/// The answer to an `add-checkpoint`: status, content type, body.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

fn answer(status: u16, body: impl Into<Vec<u8>>) -> Answer {
    Answer { status, content_type: "text/plain; charset=utf-8", body: body.into() }
}

pub struct Witness {
    key: Key,
    logs: Vec<PublicKey>,
    state: PathBuf,
    lock: Mutex<()>,
}

impl Witness {
    /// Opens the witness in `dir` (its key made on first use, named
    /// `name`; a key made before keeps its name), following the logs whose
    /// note keys are `logs`.
    pub fn open(dir: &Path, name: &str, logs: &[String]) -> Result<Witness> {
        std::fs::create_dir_all(dir.join("state"))?;
        let path = dir.join("witness.key");
        let key = if path.exists() {
            Key::load(&path)?
        } else {
            let key = Key::generate(name, ALG_COSIGN)?;
            key.save(&path)?;
            key
        };
        let logs = logs.iter().map(|l| PublicKey::parse(l)).collect::<Result<Vec<_>>>()?;
        if let Some(bad) = logs.iter().find(|l| l.alg != ALG_NOTE) {
            bail!("{} is not a log's note key (type 0x01)", bad.name);
        }
        Ok(Witness { key, logs, state: dir.join("state"), lock: Mutex::new(()) })
    }

    /// The witness a mirror keeps of its source, if `cairn mirror --witness`
    /// made one (in `{data}/witness/`): it follows the log the mirrored
    /// `index/config.json` names, so the source can list the mirror among
    /// its `[log] witnesses`.
    pub fn of_mirror(data: &Path, root: &StaticRoot) -> Result<Option<Witness>> {
        let dir = Witness::mirror_dir(data);
        if !dir.join("witness.key").exists() {
            return Ok(None);
        }
        let config = root.read(&root.layout().index_file("config.json"))?.context("no index/config.json")?;
        let config: serde_json::Value = serde_json::from_slice(&config)?;
        let key = config["log"]["key"].as_str().context("the mirrored config.json names no log")?;
        Ok(Some(Witness::open(&dir, "", &[key.to_string()])?))
    }

    /// Where a mirror keeps the witness of its source.
    pub fn mirror_dir(data: &Path) -> PathBuf {
        data.join("witness")
    }

    pub fn vkey(&self) -> String {
        self.key.vkey()
    }

    fn state_path(&self, origin: &str) -> PathBuf {
        self.state.join(&super::leaf::digest(origin.as_bytes())[..32])
    }

    /// The latest (size, root hash) cosigned for `origin`.
    fn latest(&self, origin: &str) -> Result<Option<(u64, Hash)>> {
        let Ok(text) = std::fs::read_to_string(self.state_path(origin)) else {
            return Ok(None);
        };
        let (size, hash) = text.trim_end().split_once(' ').context("a witness state line")?;
        Ok(Some((size.parse()?, Hash::parse_hash(hash)?)))
    }

    /// `POST /add-checkpoint` with `body`.
    pub fn add_checkpoint(&self, body: &[u8]) -> Answer {
        let Some((old, proof, note_bytes)) = parse_request(body) else {
            return answer(400, "malformed add-checkpoint request\n");
        };
        let Ok(note_text) = signed_note::Note::from_bytes(note_bytes) else {
            return answer(400, "malformed checkpoint\n");
        };
        let Ok(checkpoint) = Checkpoint::from_bytes(note_text.text()) else {
            return answer(400, "malformed checkpoint\n");
        };
        let Some(log) = self.logs.iter().find(|l| l.name == checkpoint.origin()) else {
            return answer(404, format!("unknown log {}\n", checkpoint.origin()));
        };
        // The log's signature; the time key is not this witness's business.
        if note::verify(note_bytes, log, None, &[]).is_err() {
            return answer(403, "no valid signature by the log's key\n");
        }
        if old > checkpoint.size() {
            return answer(400, "old size is larger than the checkpoint's\n");
        }
        let _guard = self.lock.lock().unwrap();
        let latest = match self.latest(checkpoint.origin()) {
            Ok(l) => l,
            Err(e) => return answer(500, format!("{e:#}\n")),
        };
        let known = latest.map_or(0, |(size, _)| size);
        if old != known {
            return Answer {
                status: 409,
                content_type: "text/x.tlog.size",
                body: format!("{known}\n").into(),
            };
        }
        if checkpoint.size() == 0 && *checkpoint.hash() != tlog_tiles::EMPTY_HASH {
            return answer(422, "a checkpoint of size 0 must have the empty tree's hash\n");
        }
        let consistent = match latest {
            // The empty tree is consistent with every tree.
            None | Some((0, _)) => proof.is_empty(),
            Some((size, hash)) if size == checkpoint.size() => proof.is_empty() && hash == *checkpoint.hash(),
            Some((size, hash)) => {
                tlog_tiles::check_tree(&proof, checkpoint.size(), *checkpoint.hash(), size, hash).is_ok()
            }
        };
        if !consistent {
            tracing::warn!(
                origin = checkpoint.origin(),
                old,
                size = checkpoint.size(),
                "refused an inconsistent checkpoint"
            );
            return answer(422, "the checkpoint is not consistent with the one cosigned before\n");
        }
        let persist = || -> Result<Vec<u8>> {
            let line = format!("{} {}\n", checkpoint.size(), checkpoint.hash());
            crate::fsutil::write_atomic(&self.state_path(checkpoint.origin()), line.as_bytes())?;
            Ok(note::cosign(note_text.text(), &self.key, note::now())?.to_bytes())
        };
        match persist() {
            Ok(sig) => Answer { status: 200, content_type: "text/plain; charset=utf-8", body: sig },
            Err(e) => answer(500, format!("{e:#}\n")),
        }
    }
}

/// `old N\n`, proof lines, an empty line, then the checkpoint.
fn parse_request(body: &[u8]) -> Option<(u64, Vec<Hash>, &[u8])> {
    let at = body.windows(2).position(|w| w == b"\n\n")?;
    let head = std::str::from_utf8(&body[..at]).ok()?;
    let mut lines = head.split('\n');
    let old = lines.next()?.strip_prefix("old ")?;
    if old.len() > 1 && old.starts_with('0') {
        return None;
    }
    let proof = lines.map(|l| Hash::parse_hash(l).ok()).collect::<Option<Vec<_>>>()?;
    (proof.len() <= 63).then_some((old.parse().ok()?, proof, &body[at + 2..]))
}

impl Log {
    /// Submits the current checkpoint to each witness (from the size it
    /// last cosigned, which a 409 tells) and publishes the cosignatures it
    /// returns. The caller holds the writer lock. Returns how many cosigned.
    pub fn submit(&self, root: &StaticRoot, witnesses: &[WitnessConfig]) -> Result<usize> {
        let l = root.layout();
        let Some(checkpoint) = root.read(&l.log_checkpoint())? else {
            return Ok(0);
        };
        let body = signed_note::Note::from_bytes(&checkpoint).map_err(|e| anyhow!("log/checkpoint: {e}"))?;
        let size = Checkpoint::from_bytes(body.text()).map_err(|e| anyhow!("log/checkpoint: {e}"))?.size();
        let http =
            reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
        let mut cosigned = Vec::new();
        for w in witnesses {
            let key = PublicKey::parse(&w.key)?;
            let url = format!("{}/add-checkpoint", w.url.trim_end_matches('/'));
            let mut old = 0;
            for _ in 0..2 {
                if old > size {
                    tracing::error!(witness = %w.url, witnessed = old, size, "a witness cosigned a larger tree of this log than it has: the log was rolled back or forked");
                    break;
                }
                // From the empty tree, or to the same tree, no proof is needed.
                let proof =
                    if old == 0 || old == size { Vec::new() } else { self.consistency_proof(size, old)? };
                let mut req = format!("old {old}\n");
                for h in proof {
                    req.push_str(&format!("{}\n", BASE64_STANDARD.encode(h.0)));
                }
                req.push('\n');
                let mut bytes = req.into_bytes();
                bytes.extend_from_slice(&checkpoint);
                let resp =
                    http.post(&url).body(bytes).send().with_context(|| format!("submitting to {url}"))?;
                match resp.status().as_u16() {
                    200 => {
                        let text = resp.text()?;
                        cosigned.extend(
                            text.lines()
                                .filter_map(|line| signed_note::Signature::from_bytes(line.as_bytes()).ok())
                                .filter(|s| s.name() == key.name && s.id() == key.id),
                        );
                        break;
                    }
                    409 => old = resp.text()?.trim().parse().context("a 409 names the witness's size")?,
                    s => {
                        tracing::warn!(witness = %w.url, status = s, body = %resp.text().unwrap_or_default(), "a witness refused the checkpoint");
                        break;
                    }
                }
            }
        }
        let n = cosigned.len();
        if n > 0 {
            self.add_cosignatures(root, body.text(), cosigned)?;
        }
        Ok(n)
    }
}
