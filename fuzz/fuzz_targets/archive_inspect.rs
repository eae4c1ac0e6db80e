//! Archive inspection (SPEC section 3) of arbitrary bytes, as every kind of
//! manifest (cairn.toml, Cargo.toml, npm's package.json): it must answer (accept or refuse), never panic or hang.
#![no_main]
use cairn::archive::{inspect, Limits, ManifestKind};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for kind in [ManifestKind::Cairn, ManifestKind::Cargo, ManifestKind::Npm] {
        let _ = inspect(data, "fuzz", "1.0.0", None, kind, &limits);
    }
});
