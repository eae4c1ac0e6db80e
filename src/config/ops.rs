//! Operating rules of registry.toml (SPEC section 20): storage quotas.

use serde::{Deserialize, Serialize};

/// `[quotas]`: the bytes of live versions an owner may have (0: no limit).
/// A package owned by an organisation counts toward the organisation's,
/// any other toward each of its owners'.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    pub org_bytes: u64,
    pub user_bytes: u64,
}

impl Quotas {
    /// The limit of an owner, if it has one.
    pub fn limit(&self, owner: &crate::db::quota::Owner) -> Option<u64> {
        let bytes = match owner {
            crate::db::quota::Owner::User { .. } => self.user_bytes,
            crate::db::quota::Owner::Org { .. } => self.org_bytes,
        };
        (bytes > 0).then_some(bytes)
    }
}
