//! npm's package.json parsing and checking (SPEC section 18) of arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cairn::archive::parse_manifest(cairn::archive::ManifestKind::Npm, data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cairn::npm::range::check(text);
    }
});
