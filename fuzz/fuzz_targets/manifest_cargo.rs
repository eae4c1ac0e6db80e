//! Cargo.toml parsing and checking of arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cairn::archive::parse_manifest(cairn::archive::ManifestKind::Cargo, data);
});
