//! Security advisories (placeholder until the advisories job lands).

use anyhow::Result;

use super::Snapshot;
use crate::registry::Registry;

pub fn run(_reg: &Registry, _snap: &Snapshot) -> Result<serde_json::Value> {
    anyhow::bail!("the advisories job is not built yet")
}
