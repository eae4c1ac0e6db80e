//! Index files: parse arbitrary bytes; what parses must write back to
//! bytes that parse to the same lines.
#![no_main]
use cairn::index::IndexLine;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(lines) = IndexLine::parse_file(data) {
        let again = IndexLine::parse_file(&IndexLine::file_bytes(&lines)).expect("written lines parse");
        assert_eq!(
            IndexLine::file_bytes(&again),
            IndexLine::file_bytes(&lines),
            "a line changes on a round trip"
        );
    }
});
