//! cargo's publish frame (u32 LE JSON length, JSON, u32 LE crate length,
//! crate) and its metadata: split, parse, turn into an index line.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok((json, krate)) = cairn::index::cargo::split_publish_frame(&body) {
        assert_eq!(json.len() + krate.len() + 8, data.len(), "the frame's parts are the whole body");
        if let Ok(meta) = serde_json::from_slice::<cairn::index::cargo::NewCrate>(&json) {
            let _ = cairn::index::cargo::index_line(&meta, "00", "00", krate.len() as u64);
        }
    }
});
