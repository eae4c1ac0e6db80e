//! `api/v1/deprecations.json` (SPEC section 6): every deprecated package of
//! a registry, `{lowercase name: {"deprecated", "replacement"}}`, as its
//! meta file says. An install reads this one file instead of asking a meta
//! file per package (mostly 404s); a registry without it (older, or a
//! static copy made without it) is asked package by package. So the file
//! is complete or absent: made whole from the index when missing.

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::Doc;
use crate::index::{meta, Meta};
use crate::layout::StaticRoot;

/// What the file says of a package: `None` when it is not deprecated.
fn entry(meta: &Meta) -> Option<Value> {
    let message = meta.deprecated.as_ref()?;
    let mut e = json!({ "deprecated": message });
    if let Some(r) = &meta.replacement {
        e["replacement"] = json!(r);
    }
    Some(e)
}

fn doc(root: &StaticRoot, map: Map<String, Value>) -> Doc {
    let mut bytes = serde_json::to_vec(&Value::Object(map)).expect("json serializes");
    bytes.push(b'\n');
    Doc { key: root.layout().deprecations(), bytes }
}

/// Every deprecated package of `files`, the index's meta files (path, bytes).
fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Map<String, Value> {
    let mut map = Map::new();
    for (path, bytes) in files {
        let Some(stem) = path.strip_prefix(meta::DIR).and_then(|p| p.strip_suffix(".json")) else {
            continue;
        };
        let name = stem.rsplit('/').next().unwrap_or(stem);
        if let Some(e) = Meta::parse(bytes).ok().as_ref().and_then(entry) {
            map.insert(name.to_ascii_lowercase(), e);
        }
    }
    map
}

/// The whole file, from every meta file of the index (path, bytes).
pub fn whole<'a>(root: &StaticRoot, files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Doc {
    doc(root, from_files(files))
}

/// Brings the file in line with the meta file `name` has now (`None`:
/// none), after a change of it; when there is no file yet, it is made from
/// every meta file of `index` (paths and bytes under `meta/`).
pub fn update(
    root: &StaticRoot,
    name: &str,
    now: Option<&Meta>,
    index: impl FnOnce() -> Result<Vec<(String, Vec<u8>)>>,
) -> Result<()> {
    let key = root.layout().deprecations();
    let held = root.read(&key)?.and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok());
    let map = match held {
        Some(mut map) => {
            let name = name.to_ascii_lowercase();
            match now.and_then(entry) {
                Some(e) => map.insert(name, e),
                None => map.remove(&name),
            };
            map
        }
        None => from_files(index()?.iter().map(|(p, b)| (p.as_str(), b.as_slice()))),
    };
    let Doc { key, bytes } = doc(root, map);
    root.put_doc(&key, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deprecated(message: &str) -> Meta {
        Meta { deprecated: Some(message.into()), ..Meta::default() }
    }

    #[test]
    fn the_file_follows_each_change_and_is_made_whole_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let root = StaticRoot::fs(dir.path());
        let read = |root: &StaticRoot| -> Value {
            serde_json::from_slice(&root.read(&root.layout().deprecations()).unwrap().unwrap()).unwrap()
        };
        // No file yet: made from every meta file, the change included.
        let index = vec![
            (meta::path("old"), deprecated("gone").file_bytes().unwrap()),
            (meta::path("tagged"), br#"{"tags":{"next":"2.0.0"}}"#.to_vec()),
        ];
        update(&root, "Old", Some(&deprecated("gone")), || Ok(index)).unwrap();
        assert_eq!(read(&root), json!({ "old": { "deprecated": "gone" } }));
        // Then one package at a time: the index is not read again.
        let mut m = deprecated("use b");
        m.replacement = Some("b".into());
        update(&root, "A", Some(&m), || panic!("read the index")).unwrap();
        update(&root, "old", None, || panic!("read the index")).unwrap();
        assert_eq!(read(&root), json!({ "a": { "deprecated": "use b", "replacement": "b" } }));
        let (a, c) = (m.file_bytes().unwrap(), br#"{"tags":{"next":"2.0.0"}}"#.to_vec());
        let whole = whole(&root, [(meta::path("A").as_str(), &a[..]), (meta::path("c").as_str(), &c[..])]);
        assert_eq!(serde_json::from_slice::<Value>(&whole.bytes).unwrap(), read(&root));
    }
}
