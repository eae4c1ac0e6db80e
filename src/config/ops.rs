//! Operating rules of registry.toml (SPEC section 20): storage quotas and
//! retention rules.

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

/// A `[[retention]]` rule: which prereleases of a registry go (`cairn
/// admin retention`, the `retention_interval` timer). A prerelease goes
/// when it is older than `prereleases_older_than` (if set) and not among
/// its package's `keep_last_prereleases` newest (if set).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// The organisation whose packages it covers (a private one's
    /// registry); absent: the public registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// An age: `"30d"`, `"12h"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prereleases_older_than: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last_prereleases: Option<usize>,
}

impl Retention {
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(age) = &self.prereleases_older_than {
            super::age_seconds(age)?;
        }
        anyhow::ensure!(
            self.prereleases_older_than.is_some() || self.keep_last_prereleases.is_some(),
            "a [[retention]] rule needs prereleases_older_than or keep_last_prereleases"
        );
        Ok(())
    }
}
