//! Archive inspection (SPEC section 3) of arbitrary bytes, as both kinds of
//! manifest: it must answer (accept or refuse), never panic or hang.
#![no_main]
use cairn::archive::{inspect, Limits, ManifestKind};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for kind in [ManifestKind::Cairn, ManifestKind::Cargo] {
        let _ = inspect(data, "fuzz", "1.0.0", None, kind, &limits);
    }
});
