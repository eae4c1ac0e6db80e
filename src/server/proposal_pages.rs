//! Writes a package's proposal pages (`site::proposals`) after a change of
//! its proposals: the list (with the form, starting from the newest
//! version's `SKILL.md`, else `README.md`) and the changed proposal's page.
//! The rows are the truth: a failed write is logged and made again by the
//! package's next proposal change, never an error of the request.

use std::sync::Mutex;

use super::version_files::{newest, read_files, text};
use super::Request;
use crate::db::proposals;
use crate::site::proposals::{list, one, Draft};

/// One writer at a time, so pages read from the rows in one order land in it.
static WRITING: Mutex<()> = Mutex::new(());

pub async fn write(req: &Request<'_>, name: &str, changed: Option<i64>) {
    let (reg, space, name) = (req.registry(), req.space(), name.to_string());
    let written = req
        .state
        .db(move |conn| {
            let _one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
            let lines = reg.read_lines(&name)?;
            let Some(latest) = newest(&lines) else { return Ok(()) };
            let all = proposals::list(conn, &space, &name, None)?;
            let files = read_files(&reg, latest)?;
            let texts: Vec<(&str, String)> =
                files.keys().filter_map(|path| Some((path.as_str(), text(&files, path).ok()?))).collect();
            let start = ["SKILL.md", "README.md"]
                .iter()
                .find_map(|want| texts.iter().find(|(path, _)| path == want))
                .or(texts.first());
            let draft = start.map(|(path, content)| Draft {
                version: &latest.vers,
                paths: texts.iter().map(|(p, _)| *p).collect(),
                path,
                content,
            });
            let root = &reg.root;
            let pages = list(root.layout(), &latest.name, &all, draft.as_ref());
            root.put_doc(&pages.key, &pages.bytes)?;
            if let Some(p) = changed.and_then(|id| all.iter().find(|p| p.id == id)) {
                let base = match lines.iter().find(|l| l.vers == p.base_version) {
                    Some(line) => {
                        text(&read_files(&reg, line)?, &p.path).map_err(|e| anyhow::anyhow!(e.message))?
                    }
                    None => String::new(),
                };
                let diff = crate::merge::unified_diff(&p.path, &base, &p.content);
                let page = one(root.layout(), &latest.name, p, &diff);
                root.put_doc(&page.key, &page.bytes)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(error = %e.message, "writing a package's proposal pages failed; its next proposal change writes them");
    }
}
