//! OSV advisory files: parse and validate arbitrary bytes; what is accepted
//! can be matched against versions without panicking.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(adv) = cairn::jobs::advisories::parse(data) {
        for v in ["0.0.0", "1.0.0", "1.2.3-rc.1", "99.0.0"] {
            let _ = adv.affects("fuzz", &semver::Version::parse(v).unwrap());
        }
    }
});
