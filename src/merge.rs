//! The text work of proposals (SPEC section 19), both diffy's: the unified
//! diff a proposal shows against its base version's file, and the
//! three-way merge that composes a candidate. A conflict is kept as its
//! hunks (each side's lines and the base's), never resolved by a guess.

use serde::Serialize;

/// Conflict markers this long: a line of a real file is unlikely to be one.
const MARKER: usize = 32;

/// `path` from `old` to `new` as a unified diff (`a/`, `b/` names, three
/// lines of context); empty when they are equal.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let mut options = diffy::DiffOptions::new();
    options.set_original_filename(format!("a/{path}")).set_modified_filename(format!("b/{path}"));
    options.create_patch(old, new).to_string()
}

/// One conflicting region of a merge: what each side and their common
/// base have there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hunk {
    pub ours: String,
    pub base: String,
    pub theirs: String,
}

/// `theirs`' change of `base` applied to `ours`, or the conflicting hunks.
pub fn merge(base: &str, ours: &str, theirs: &str) -> Result<String, Vec<Hunk>> {
    let mut options = diffy::MergeOptions::new();
    options
        .set_conflict_marker_length(MARKER)
        .set_conflict_style(diffy::ConflictStyle::Diff3)
        .set_incomplete_hunk_style(diffy::IncompleteHunkStyle::Git);
    options.merge(base, ours, theirs).map_err(|marked| hunks(&marked))
}

/// The hunks of a text with diff3 conflict markers (every marker at the
/// start of a line: the `Git` style for a last line without a newline).
fn hunks(marked: &str) -> Vec<Hunk> {
    let marker = |line: &str, c: char| line.len() >= MARKER && line.chars().take(MARKER).all(|m| m == c);
    let (mut out, mut part, mut hunk) = (Vec::new(), None, Hunk::default());
    for line in marked.split_inclusive('\n') {
        if marker(line, '<') {
            part = Some(0);
        } else if part.is_some() && marker(line, '|') {
            part = Some(1);
        } else if part.is_some() && marker(line, '=') {
            part = Some(2);
        } else if part.is_some() && marker(line, '>') {
            out.push(std::mem::take(&mut hunk));
            part = None;
        } else {
            match part {
                Some(0) => hunk.ours.push_str(line),
                Some(1) => hunk.base.push_str(line),
                Some(2) => hunk.theirs.push_str(line),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "# Title\n\nintro\n\n## Usage\n\nrun it\n";

    #[test]
    fn separate_changes_merge_and_overlapping_ones_are_hunks() {
        let ours = BASE.replace("intro", "a better intro");
        let theirs = BASE.replace("run it", "run it twice");
        assert_eq!(
            merge(BASE, &ours, &theirs).unwrap(),
            "# Title\n\na better intro\n\n## Usage\n\nrun it twice\n"
        );
        let clash = BASE.replace("intro", "another intro");
        let hunks = merge(BASE, &ours, &clash).unwrap_err();
        assert_eq!(
            hunks,
            [Hunk {
                ours: "a better intro\n".into(),
                base: "intro\n".into(),
                theirs: "another intro\n".into()
            }]
        );
    }

    #[test]
    fn a_diff_names_its_file_and_shows_the_change() {
        let diff = unified_diff("SKILL.md", BASE, &BASE.replace("run it", "run it twice"));
        assert!(diff.starts_with("--- a/SKILL.md\n+++ b/SKILL.md\n@@"), "{diff}");
        assert!(diff.contains("\n-run it\n+run it twice\n"), "{diff}");
        assert_eq!(unified_diff("x", BASE, BASE), "");
    }
}
