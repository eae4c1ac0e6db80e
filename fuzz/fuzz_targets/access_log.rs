//! Access-log lines (combined format) for the stats job.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cairn::access_log::parse_line(data);
});
