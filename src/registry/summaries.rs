//! `recent.json` and `health.json`, the summaries every write group and
//! job ends with, and the home and status pages made from them.

use anyhow::Result;
use serde_json::json;

use super::Registry;
use crate::db;
use crate::derive::{self, Recent};

impl Registry {
    /// `recent.json` and `health.json` (naming `index_commit`, the last
    /// commit whose effects are all made), from the database.
    pub fn write_summaries(&self, conn: &db::Conn, index_commit: &str) -> Result<()> {
        let recent: Vec<Recent> = db::recent_versions(conn, &self.space, 100)?
            .into_iter()
            .map(|r| Recent { name: r.name, version: r.vers, published_at: r.published_at })
            .collect();
        let (packages, versions) = db::space_counts(conn, &self.space)?;
        self.write_summary_files(&recent, packages as u64, versions as u64, index_commit)
    }

    /// Writes `recent.json` (newest first, at most 100) and `health.json`.
    pub fn write_summary_files(
        &self,
        recent: &[Recent],
        packages: u64,
        versions: u64,
        head: &str,
    ) -> Result<()> {
        let recent_doc = json!({
            "generatedAt": db::now(),
            "publishes": recent.iter().take(100).map(|r| json!({
                "name": r.name, "version": r.version, "publishedAt": r.published_at,
            })).collect::<Vec<_>>(),
        });
        let l = self.root.layout();
        self.root.put(&l.recent(), &derive::to_bytes(&recent_doc))?;
        let health = json!({
            "status": "ok",
            "generatedAt": db::now(),
            "indexCommit": head,
            "packages": packages,
            "versions": versions,
            "lastPublishAt": recent.first().map(|r| r.published_at.clone()),
            "version": env!("CARGO_PKG_VERSION"),
        });
        self.root.put(&l.health(), &derive::to_bytes(&health))?;
        let entries: Vec<derive::feed::Entry> = recent
            .iter()
            .take(100)
            .map(|r| derive::feed::Entry {
                name: &r.name,
                version: &r.version,
                published: &r.published_at,
                summary: None,
            })
            .collect();
        let title = format!("Latest publishes on {}", self.config.name);
        let feed =
            derive::feed::feed(l, &self.config.name, l.feed_updates(), &title, &l.home_page(), &entries);
        self.root.put_doc(&feed.key, &feed.bytes)?;
        crate::site::write_home(&self.root, recent, &health)?;
        // All at once, after the derived files health.json vouches for
        // (the caller synced those): on a bucket one round trip, not one
        // per file.
        Ok(self.root.sync()?)
    }
}
