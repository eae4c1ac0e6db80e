//! Each test reads like a line of SPEC section 3.

use super::builder::TarballBuilder;
use super::*;

fn pkg() -> TarballBuilder {
    TarballBuilder::new("foo", "1.0.0")
}

fn check(body: &[u8]) -> Result<Inspected, ArchiveError> {
    inspect(body, "foo", "1.0.0", None, ManifestKind::Cairn, &Limits::default())
}

fn check_cargo(body: &[u8]) -> Result<Inspected, ArchiveError> {
    inspect(body, "foo", "1.0.0", None, ManifestKind::Cargo, &Limits::default())
}

fn check_with(body: &[u8], limits: &Limits) -> Result<Inspected, ArchiveError> {
    inspect(body, "foo", "1.0.0", None, ManifestKind::Cairn, limits)
}

fn err(body: &[u8]) -> ArchiveError {
    check(body).expect_err("archive should be rejected")
}

fn manifest_err(toml: &str) -> ArchiveError {
    err(&pkg().manifest(toml).gzip())
}

/// Bytes that gzip and zstd cannot shrink much (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---- acceptance -----------------------------------------------------------

#[test]
fn accepts_minimal_cairn_package() {
    let ok = check(&pkg().gzip()).unwrap();
    assert_eq!(ok.format, Format::TarGz);
    assert_eq!(ok.manifest.name, "foo");
    assert_eq!(ok.manifest.version, "1.0.0");
    assert_eq!(ok.manifest.description.as_deref(), Some("A test package"));
    assert_eq!(ok.manifest.license.as_deref(), Some("MIT"));
    assert_eq!(ok.entries, 1);
    assert!(ok.unpacked_size >= 3 * 512);
    assert!(ok.readme.is_none());
}

#[test]
fn accepts_zstd_package() {
    let ok = check(&pkg().file("src/lib.rs", b"fn main() {}").zstd()).unwrap();
    assert_eq!(ok.format, Format::TarZst);
    assert_eq!(ok.entries, 2);
}

#[test]
fn accepts_full_cairn_manifest() {
    let toml = r#"
[package]
name = "foo"
version = "1.0.0"
kind = "skill"
description = "Reviews diffs"
license = "MIT"
keywords = ["review", "git"]
repository = "https://example.org/acme/foo"

[dependencies]
http-utils = "^1.0"
zeta = { version = ">=0.2, <0.4" }
"#;
    let m = check(&pkg().manifest(toml).gzip()).unwrap().manifest;
    assert_eq!(m.kind.as_deref(), Some("skill"));
    assert_eq!(m.keywords, ["review", "git"]);
    assert_eq!(m.repository.as_deref(), Some("https://example.org/acme/foo"));
    assert_eq!(
        m.dependencies,
        vec![
            Dependency { name: "http-utils".into(), req: "^1.0".into() },
            Dependency { name: "zeta".into(), req: ">=0.2, <0.4".into() },
        ]
    );
}

#[test]
fn accepts_cargo_toml_package() {
    let toml = r#"
[package]
name = "foo"
version = "1.0.0"
edition = "2021"
description = "A crate"
license = "MIT OR Apache-2.0"
keywords = ["a", "b"]
repository = "https://example.org/foo"
links = "z"
rust-version = "1.70"

[dependencies]
serde = "1"
renamed = { version = "0.3", package = "real-name", features = ["x"] }
"#;
    let body = pkg().manifest_kind(ManifestKind::Cargo).manifest(toml).file("src/lib.rs", b"").gzip();
    let m = check_cargo(&body).unwrap().manifest;
    assert_eq!(m.name, "foo");
    assert_eq!(m.kind, None);
    assert_eq!(m.links.as_deref(), Some("z"));
    assert_eq!(m.rust_version.as_deref(), Some("1.70"));
    assert_eq!(m.license.as_deref(), Some("MIT OR Apache-2.0"));
    assert_eq!(
        m.dependencies,
        vec![
            Dependency { name: "renamed".into(), req: "0.3".into() },
            Dependency { name: "serde".into(), req: "1".into() },
        ]
    );
}

#[test]
fn accepts_default_cargo_manifest_from_builder() {
    let body = pkg().manifest_kind(ManifestKind::Cargo).zstd();
    assert_eq!(check_cargo(&body).unwrap().manifest.version, "1.0.0");
}

#[test]
fn accepts_directory_entries_and_long_paths() {
    let long = format!("{}/deep.txt", "d".repeat(120));
    let ok = check(&pkg().top_dir().dir("src").file("src/lib.rs", b"").file(&long, b"x").gzip()).unwrap();
    assert_eq!(ok.entries, 5);
}

#[test]
fn accepts_names_that_merely_contain_reserved_words() {
    check(&pkg().file("console.rs", b"").file("auxiliary/x", b"").file("com10", b"").gzip()).unwrap();
}

#[test]
fn accepts_content_type_aliases_and_no_claim() {
    let gz = pkg().gzip();
    let zst = pkg().zstd();
    for (body, ct) in [
        (&gz, "application/gzip"),
        (&gz, "application/x-gzip"),
        (&gz, "application/x-tar+gzip"),
        (&gz, "Application/GZIP; charset=binary"),
        (&gz, "application/octet-stream"),
        (&zst, "application/zstd"),
        (&zst, "application/octet-stream"),
    ] {
        inspect(body, "foo", "1.0.0", Some(ct), ManifestKind::Cairn, &Limits::default())
            .unwrap_or_else(|e| panic!("{ct}: {e}"));
    }
}

#[test]
fn accepts_zero_padding_after_tar_end_marker() {
    check(&pkg().tar_trailing(&[0u8; 10 * 512]).gzip()).unwrap();
}

#[test]
fn accepts_build_metadata_matching_exactly() {
    let body = TarballBuilder::new("foo", "1.0.0+build.5").gzip();
    inspect(&body, "foo", "1.0.0+build.5", None, ManifestKind::Cairn, &Limits::default()).unwrap();
}

#[test]
fn extracts_readme_md_by_default() {
    let ok = check(&pkg().file("README.md", b"# foo\n").gzip()).unwrap();
    assert_eq!(ok.readme.as_deref(), Some(&b"# foo\n"[..]));
}

#[test]
fn extracts_readme_declared_in_manifest() {
    let toml = "[package]\nname = \"foo\"\nversion = \"1.0.0\"\nreadme = \"docs/intro.md\"\n";
    let ok =
        check(&pkg().manifest(toml).file("README.md", b"not this").file("docs/intro.md", b"intro").gzip())
            .unwrap();
    assert_eq!(ok.readme.as_deref(), Some(&b"intro"[..]));
    assert_eq!(ok.manifest.readme.as_deref(), Some("docs/intro.md"));
}

#[test]
fn extracts_declared_readme_that_precedes_the_manifest() {
    // The builder writes the manifest first, so omit it and add it by hand last.
    let toml = "[package]\nname = \"foo\"\nversion = \"1.0.0\"\nreadme = \"./INTRO.md\"\n";
    let body =
        pkg().no_manifest().file("INTRO.md", b"intro first").file("cairn.toml", toml.as_bytes()).zstd();
    let ok = check(&body).unwrap();
    assert_eq!(ok.readme.as_deref(), Some(&b"intro first"[..]));
}

#[test]
fn readme_is_none_when_absent() {
    let toml = "[package]\nname = \"foo\"\nversion = \"1.0.0\"\nreadme = \"GONE.md\"\n";
    assert!(check(&pkg().gzip()).unwrap().readme.is_none());
    assert!(check(&pkg().manifest(toml).gzip()).unwrap().readme.is_none());
}

#[test]
fn cargo_readme_false_means_no_readme() {
    let toml = "[package]\nname = \"foo\"\nversion = \"1.0.0\"\nreadme = false\n";
    let body = pkg().manifest_kind(ManifestKind::Cargo).manifest(toml).file("README.md", b"ignored").gzip();
    assert!(check_cargo(&body).unwrap().readme.is_none());
}

#[test]
fn builder_is_deterministic() {
    let b = pkg().file("a", b"1").symlink("l", "a");
    assert_eq!(b.gzip(), b.clone().gzip());
    assert_eq!(b.zstd(), b.zstd());
    assert_eq!(b.tar().len() % 512, 0);
}

#[test]
fn limits_deserialize_with_defaults() {
    let l: Limits = toml::from_str("max_entries = 7").unwrap();
    assert_eq!(l, Limits { max_entries: 7, ..Limits::default() });
    let d = Limits::default();
    assert_eq!(d.max_compressed, 10 * 1024 * 1024);
    assert_eq!(d.max_unpacked, 512 * 1024 * 1024);
    assert_eq!(d.max_ratio, 100);
    assert_eq!(d.ratio_after, 1024 * 1024);
    assert_eq!(d.max_entries, 20_000);
}

#[test]
fn format_names_and_media_types() {
    assert_eq!(Format::TarGz.ext(), "tar.gz");
    assert_eq!(Format::TarZst.ext(), "tar.zst");
    assert_eq!(Format::TarGz.content_type(), "application/gzip");
    assert_eq!(Format::TarZst.content_type(), "application/zstd");
}

#[test]
fn only_size_rejections_are_too_large() {
    assert!(ArchiveError::CompressedTooLarge { size: 2, max: 1 }.is_too_large());
    assert!(ArchiveError::UnpackedTooLarge { max: 1 }.is_too_large());
    assert!(ArchiveError::RatioTooHigh { max_ratio: 1 }.is_too_large());
    assert!(ArchiveError::TooManyEntries { max: 1 }.is_too_large());
    assert!(!ArchiveError::UnknownFormat.is_too_large());
    assert!(!ArchiveError::SymlinkEntry { path: "x".into() }.is_too_large());
}

// ---- format ---------------------------------------------------------------

#[test]
fn rejects_unknown_format() {
    assert!(matches!(err(&pkg().tar()), ArchiveError::UnknownFormat));
    assert!(matches!(err(b""), ArchiveError::UnknownFormat));
    assert!(matches!(err(b"PK\x03\x04zip"), ArchiveError::UnknownFormat));
}

#[test]
fn rejects_content_type_mismatch() {
    let gz = pkg().gzip();
    let zst = pkg().zstd();
    for (body, ct) in [
        (&gz, "text/plain"),
        (&gz, "application/zstd"),
        (&zst, "application/gzip"),
        (&zst, "application/x-tar"),
    ] {
        let e = inspect(body, "foo", "1.0.0", Some(ct), ManifestKind::Cairn, &Limits::default()).unwrap_err();
        assert!(matches!(e, ArchiveError::ContentTypeMismatch { .. }), "{ct}: {e:?}");
    }
}

#[test]
fn rejects_corrupt_compressed_stream() {
    let mut body = pkg().file("a", &noise(4096)).gzip();
    body.truncate(body.len() / 2);
    assert!(matches!(err(&body), ArchiveError::Corrupt { .. }));
    let mut body = pkg().file("a", &noise(4096)).zstd();
    body.truncate(body.len() / 2);
    assert!(matches!(err(&body), ArchiveError::Corrupt { .. }));
}

#[test]
fn rejects_corrupt_tar_header() {
    let mut tar = pkg().tar();
    tar[0] ^= 0x55; // breaks the header checksum
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &tar).unwrap();
    assert!(matches!(err(&enc.finish().unwrap()), ArchiveError::Corrupt { .. }));
}

// ---- sizes ----------------------------------------------------------------

#[test]
fn rejects_compressed_size_over_limit() {
    let limits = Limits { max_compressed: 64, ..Limits::default() };
    assert!(matches!(
        check_with(&pkg().gzip(), &limits).unwrap_err(),
        ArchiveError::CompressedTooLarge { max: 64, .. }
    ));
}

#[test]
fn rejects_gzip_bomb() {
    let body = pkg().file("bomb", &vec![0u8; 8 << 20]).gzip();
    assert!(body.len() < 64 * 1024);
    assert!(matches!(err(&body), ArchiveError::RatioTooHigh { max_ratio: 100 }));
}

#[test]
fn rejects_zstd_bomb() {
    let body = pkg().file("bomb", &vec![0u8; 8 << 20]).zstd();
    assert!(matches!(err(&body), ArchiveError::RatioTooHigh { max_ratio: 100 }));
}

#[test]
fn accepts_high_ratio_below_ratio_threshold() {
    // 512 KiB of zeros compresses far beyond 100:1 but stays under 1 MiB.
    check(&pkg().file("zeros", &vec![0u8; 512 * 1024]).gzip()).unwrap();
}

#[test]
fn rejects_unpacked_size_over_limit() {
    let limits = Limits { max_unpacked: 64 * 1024, ..Limits::default() };
    let body = pkg().file("big", &noise(100 * 1024)).gzip();
    assert!(matches!(check_with(&body, &limits).unwrap_err(), ArchiveError::UnpackedTooLarge { max: 65536 }));
}

#[test]
fn rejects_too_many_entries() {
    let limits = Limits { max_entries: 3, ..Limits::default() };
    let body = pkg().file("a", b"").file("b", b"").file("c", b"").gzip();
    assert!(matches!(check_with(&body, &limits).unwrap_err(), ArchiveError::TooManyEntries { max: 3 }));
    let body = pkg().file("a", b"").file("b", b"").gzip();
    check_with(&body, &limits).unwrap();
}

#[test]
fn rejects_oversized_manifest() {
    let toml = format!("[package]\nname = \"foo\"\nversion = \"1.0.0\"\n#{}\n", "x".repeat(2 << 20));
    assert!(matches!(err(&pkg().manifest(toml).gzip()), ArchiveError::ManifestTooLarge { .. }));
}

// ---- trailing data --------------------------------------------------------

#[test]
fn rejects_trailing_bytes_after_gzip_stream() {
    assert!(matches!(
        err(&pkg().trailing(b"junk").gzip()),
        ArchiveError::TrailingCompressedBytes { count: 4 }
    ));
}

#[test]
fn rejects_second_gzip_member() {
    let second = pkg().file("hidden", b"smuggled").gzip();
    assert!(matches!(err(&pkg().trailing(&second).gzip()), ArchiveError::TrailingCompressedBytes { .. }));
}

#[test]
fn rejects_trailing_bytes_after_zstd_frame() {
    assert!(matches!(err(&pkg().trailing(b"\0").zstd()), ArchiveError::TrailingCompressedBytes { count: 1 }));
}

#[test]
fn rejects_second_zstd_frame() {
    let second = pkg().file("hidden", b"smuggled").zstd();
    assert!(matches!(err(&pkg().trailing(&second).zstd()), ArchiveError::TrailingCompressedBytes { .. }));
}

#[test]
fn rejects_nonzero_data_after_tar_end_marker() {
    let hidden = TarballBuilder::new("foo", "1.0.0").no_manifest().file("hidden", b"x").tar();
    assert!(matches!(err(&pkg().tar_trailing(&hidden).gzip()), ArchiveError::TrailingTarData));
}

// ---- paths ----------------------------------------------------------------

#[test]
fn rejects_entries_outside_prefix() {
    for path in ["other.txt", "foo-1.0.1/x", "foo-1.0.0x/y", "foo-1.0.0"] {
        assert!(
            matches!(err(&pkg().raw_file(path, b"").gzip()), ArchiveError::OutsidePrefix { .. }),
            "{path}"
        );
    }
}

#[test]
fn rejects_prefix_spelled_differently_from_request() {
    // The request says `foo`; an archive under `Foo-1.0.0/` is refused.
    let body = TarballBuilder::new("Foo", "1.0.0").gzip();
    assert!(matches!(err(&body), ArchiveError::OutsidePrefix { .. }));
}

#[test]
fn rejects_absolute_paths() {
    assert!(matches!(err(&pkg().raw_file("/etc/passwd", b"").gzip()), ArchiveError::AbsolutePath { .. }));
}

#[test]
fn rejects_parent_dir_components() {
    for path in ["foo-1.0.0/../escape", "../foo-1.0.0/x", "foo-1.0.0/a/../../b"] {
        assert!(
            matches!(err(&pkg().raw_file(path, b"").gzip()), ArchiveError::ParentDirComponent { .. }),
            "{path}"
        );
    }
}

#[test]
fn rejects_current_dir_and_empty_components() {
    for path in ["foo-1.0.0/./x", "./foo-1.0.0/x", "foo-1.0.0//x", "foo-1.0.0/x/"] {
        assert!(
            matches!(err(&pkg().raw_file(path, b"").gzip()), ArchiveError::NonCanonicalPath { .. }),
            "{path}"
        );
    }
}

#[test]
fn rejects_windows_reserved_names() {
    for path in ["con", "Aux.txt", "src/lpt9.log", "COM1", "nul.tar.gz", "prn/x"] {
        assert!(
            matches!(err(&pkg().file(path, b"").gzip()), ArchiveError::WindowsReservedName { .. }),
            "{path}"
        );
    }
}

#[test]
fn rejects_windows_forbidden_characters() {
    for (path, bad) in [
        ("a:b", ':'),
        ("a\\b", '\\'),
        ("what?", '?'),
        ("star*", '*'),
        ("x<y>", '<'),
        ("pipe|", '|'),
        ("q\"", '"'),
        ("bell\u{7}", '\u{7}'),
        ("new\nline", '\n'),
    ] {
        match err(&pkg().file(path, b"").gzip()) {
            ArchiveError::ForbiddenCharacter { ch, .. } => assert_eq!(ch, bad, "{path:?}"),
            other => panic!("{path:?}: {other:?}"),
        }
    }
}

#[test]
fn rejects_non_utf8_paths() {
    assert!(matches!(
        err(&pkg().raw_path_bytes(b"foo-1.0.0/caf\xe9", b"").gzip()),
        ArchiveError::NonUtf8Path { .. }
    ));
}

#[test]
fn rejects_duplicate_paths() {
    assert!(matches!(err(&pkg().file("a", b"1").file("a", b"2").gzip()), ArchiveError::DuplicatePath { .. }));
    // A second copy of the manifest cannot override the first.
    assert!(matches!(err(&pkg().file("cairn.toml", b"").gzip()), ArchiveError::DuplicatePath { .. }));
    // A directory and a file with the same name.
    assert!(matches!(err(&pkg().dir("a").file("a", b"").gzip()), ArchiveError::DuplicatePath { .. }));
}

#[test]
fn rejects_paths_equal_after_case_folding() {
    assert!(matches!(
        err(&pkg().file("readme.md", b"1").file("README.md", b"2").gzip()),
        ArchiveError::PathCollision { .. }
    ));
    assert!(matches!(err(&pkg().file("CAIRN.TOML", b"").gzip()), ArchiveError::PathCollision { .. }));
}

#[test]
fn rejects_paths_equal_after_nfc_normalization() {
    // "é" precomposed (U+00E9) and decomposed (e + U+0301).
    assert!(matches!(
        err(&pkg().file("caf\u{e9}", b"1").file("cafe\u{301}", b"2").gzip()),
        ArchiveError::PathCollision { .. }
    ));
    // Combined: decomposed and upper case.
    assert!(matches!(
        err(&pkg().file("caf\u{e9}", b"1").file("CAFE\u{301}", b"2").gzip()),
        ArchiveError::PathCollision { .. }
    ));
}

// ---- entry types ----------------------------------------------------------

#[test]
fn rejects_symlink_entries() {
    assert!(matches!(err(&pkg().symlink("link", "/etc/passwd").gzip()), ArchiveError::SymlinkEntry { .. }));
}

#[test]
fn rejects_hard_link_entries() {
    assert!(matches!(
        err(&pkg().hardlink("link", "foo-1.0.0/cairn.toml").gzip()),
        ArchiveError::HardLinkEntry { .. }
    ));
}

#[test]
fn rejects_fifo_entries() {
    assert!(matches!(err(&pkg().fifo("pipe").gzip()), ArchiveError::SpecialFileEntry { kind: "fifo", .. }));
}

#[test]
fn rejects_device_entries() {
    assert!(matches!(
        err(&pkg().char_device("tty").gzip()),
        ArchiveError::SpecialFileEntry { kind: "character device", .. }
    ));
    assert!(matches!(
        err(&pkg().raw_entry(b"foo-1.0.0/sda", tar::EntryType::Block, b"").gzip()),
        ArchiveError::SpecialFileEntry { kind: "block device", .. }
    ));
}

#[test]
fn rejects_unsupported_entry_types() {
    for ty in [tar::EntryType::GNUSparse, tar::EntryType::XGlobalHeader, tar::EntryType::Continuous] {
        assert!(
            matches!(
                err(&pkg().raw_entry(b"foo-1.0.0/odd", ty, b"").gzip()),
                ArchiveError::UnsupportedEntryType { .. }
            ),
            "{ty:?}"
        );
    }
}

#[test]
fn rejects_pax_size_mismatch() {
    assert!(matches!(
        err(&pkg().pax_size_mismatch("a", b"hello", 0).gzip()),
        ArchiveError::PaxSizeMismatch { header: 5, .. }
    ));
    // A matching PAX size is fine.
    check(&pkg().pax_size_mismatch("a", b"hello", 5).gzip()).unwrap();
    // Unparsable PAX size.
    assert!(matches!(
        err(&pkg().file("a", b"hi").pax_last("size", "two").gzip()),
        ArchiveError::PaxSizeMismatch { .. }
    ));
}

// ---- manifest -------------------------------------------------------------

#[test]
fn rejects_missing_manifest() {
    assert!(matches!(
        err(&pkg().no_manifest().file("src/lib.rs", b"").gzip()),
        ArchiveError::MissingManifest { .. }
    ));
    // A Cargo.toml is not a cairn.toml.
    assert!(matches!(
        err(&pkg().manifest_kind(ManifestKind::Cargo).gzip()),
        ArchiveError::MissingManifest { .. }
    ));
    // Nested one level too deep.
    let toml = pkg().default_manifest();
    assert!(matches!(
        err(&pkg().no_manifest().file("sub/cairn.toml", toml.as_bytes()).gzip()),
        ArchiveError::MissingManifest { .. }
    ));
}

#[test]
fn rejects_unparsable_manifest() {
    for toml in [
        "this is not toml",
        "[package]\nname = \"foo\"\n",
        "[package]\nname = \"foo\"\nversion = 1\n",
        "name = \"foo\"\nversion = \"1.0.0\"\n",
    ] {
        assert!(
            matches!(manifest_err(toml), ArchiveError::InvalidManifest { file: "cairn.toml", .. }),
            "{toml}"
        );
    }
    let body = pkg()
        .manifest_kind(ManifestKind::Cargo)
        .manifest("[package]\nname = \"foo\"\nversion = \"1.0.0\"\nkeywords = \"a\"\n")
        .gzip();
    assert!(matches!(
        check_cargo(&body).unwrap_err(),
        ArchiveError::InvalidManifest { file: "Cargo.toml", .. }
    ));
}

#[test]
fn rejects_non_utf8_manifest() {
    let body = pkg().no_manifest().file("cairn.toml", b"[package]\nname = \"\xff\"\n").gzip();
    assert!(matches!(err(&body), ArchiveError::InvalidManifest { .. }));
}

#[test]
fn rejects_workspace_inherited_version() {
    let toml = "[package]\nname = \"foo\"\nversion.workspace = true\n";
    let body = pkg().manifest_kind(ManifestKind::Cargo).manifest(toml).gzip();
    match check_cargo(&body).unwrap_err() {
        ArchiveError::WorkspaceInherited { field } => assert_eq!(field, "package.version"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_manifest_name_mismatch() {
    assert!(matches!(
        manifest_err("[package]\nname = \"bar\"\nversion = \"1.0.0\"\n"),
        ArchiveError::NameMismatch { .. }
    ));
    // Exact spelling: `Foo` is not `foo`.
    assert!(matches!(
        manifest_err("[package]\nname = \"Foo\"\nversion = \"1.0.0\"\n"),
        ArchiveError::NameMismatch { .. }
    ));
}

#[test]
fn rejects_manifest_version_mismatch() {
    for version in ["1.0.1", "1.0.0-rc.1", "1.0.0+build"] {
        assert!(
            matches!(
                manifest_err(&format!("[package]\nname = \"foo\"\nversion = \"{version}\"\n")),
                ArchiveError::VersionMismatch { .. }
            ),
            "{version}"
        );
    }
}

#[test]
fn rejects_invalid_manifest_version() {
    assert!(matches!(
        manifest_err("[package]\nname = \"foo\"\nversion = \"1.0\"\n"),
        ArchiveError::InvalidVersion { .. }
    ));
}

#[test]
fn rejects_long_description() {
    let toml =
        format!("[package]\nname = \"foo\"\nversion = \"1.0.0\"\ndescription = \"{}\"\n", "é".repeat(1025));
    assert!(matches!(manifest_err(&toml), ArchiveError::DescriptionTooLong { chars: 1025, .. }));
    // Exactly 1024 characters (2048 bytes) is fine.
    let toml = toml.replace(&"é".repeat(1025), &"é".repeat(1024));
    check(&pkg().manifest(toml).gzip()).unwrap();
}

#[test]
fn rejects_too_many_keywords() {
    let toml =
        "[package]\nname = \"foo\"\nversion = \"1.0.0\"\nkeywords = [\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"]\n";
    assert!(matches!(manifest_err(toml), ArchiveError::TooManyKeywords { count: 6, max: 5 }));
}

#[test]
fn rejects_long_keyword() {
    let toml =
        format!("[package]\nname = \"foo\"\nversion = \"1.0.0\"\nkeywords = [\"{}\"]\n", "k".repeat(21));
    assert!(matches!(manifest_err(&toml), ArchiveError::KeywordTooLong { max: 20, .. }));
}

#[test]
fn kinds_and_keywords_are_path_safe_words() {
    let with = |kind: &str, keywords: &str| {
        format!("[package]\nname = \"foo\"\nversion = \"1.0.0\"\nkind = {kind:?}\nkeywords = {keywords}\n")
    };
    for (kind, keywords) in [
        ("../x", "[]"),
        ("", "[]"),
        ("-x", "[]"),
        (&*"k".repeat(33), "[]"),
        ("skill", "[\"a/b\"]"),
        ("skill", "[\"_x\"]"),
        ("skill", "[\"a b\"]"),
        ("skill", "[\"é\"]"),
    ] {
        assert!(
            matches!(manifest_err(&with(kind, keywords)), ArchiveError::NotAWord { .. }),
            "{kind} {keywords}"
        );
    }
    check(&pkg().manifest(with("Skill", "[\"Git\", \"no_std\", \"a-b\", \"0x\"]")).gzip()).unwrap();
    assert!(crate::archive::is_word(&"k".repeat(32)));
}

#[test]
fn rejects_invalid_dependency_requirement() {
    let toml = "[package]\nname = \"foo\"\nversion = \"1.0.0\"\n[dependencies]\nbar = \"not a req\"\n";
    match manifest_err(toml) {
        ArchiveError::InvalidDependencyRequirement { name, req, .. } => {
            assert_eq!((name.as_str(), req.as_str()), ("bar", "not a req"))
        }
        other => panic!("{other:?}"),
    }
}
