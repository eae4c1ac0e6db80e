//! Every hostile archive kind of SPEC section 3 is refused with a 4xx JSON
//! error and leaves no blob, no commit and no derived file behind.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use serde_json::Value;
use support::Server;

const GZ: &str = "application/gzip";

fn base() -> TarballBuilder {
    TarballBuilder::new("evil", "1.0.0").file("README.md", b"hi")
}

#[test]
fn hostile_archives_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let before_files = server.static_files();
    let head = std::fs::read_to_string(server.static_root().join("index.git/refs/heads/main")).unwrap();

    let zeros = vec![0u8; 4 << 20];
    let many = (0..20_001).fold(TarballBuilder::new("evil", "1.0.0"), |b, i| b.file(&format!("f{i}"), b""));
    let cases: Vec<(&str, Vec<u8>, &str, u16)> = vec![
        ("entry outside the prefix", base().raw_file("other-1.0.0/x", b"x").gzip(), GZ, 400),
        ("absolute path", base().raw_file("/etc/passwd", b"x").gzip(), GZ, 400),
        ("dot-dot component", base().raw_file("evil-1.0.0/../../x", b"x").gzip(), GZ, 400),
        ("symlink", base().symlink("link", "/etc/passwd").gzip(), GZ, 400),
        ("hard link", base().hardlink("link", "evil-1.0.0/README.md").gzip(), GZ, 400),
        ("fifo", base().fifo("pipe").gzip(), GZ, 400),
        ("device", base().char_device("dev").gzip(), GZ, 400),
        ("duplicate path", base().file("a.txt", b"1").file("a.txt", b"2").gzip(), GZ, 400),
        ("case-folded duplicate", base().file("A.txt", b"1").file("a.txt", b"2").gzip(), GZ, 400),
        ("NFC duplicate", base().file("caf\u{e9}", b"1").file("cafe\u{301}", b"2").gzip(), GZ, 400),
        ("windows reserved file", base().file("aux.txt", b"x").gzip(), GZ, 400),
        ("non-UTF-8 path", base().raw_path_bytes(b"evil-1.0.0/\xff\xfe", b"x").gzip(), GZ, 400),
        ("PAX size disagreement", base().pax_size_mismatch("p.txt", b"hello", 3).gzip(), GZ, 400),
        (
            "missing manifest",
            TarballBuilder::new("evil", "1.0.0").no_manifest().file("x", b"x").gzip(),
            GZ,
            400,
        ),
        ("unparsable manifest", base().manifest("[package\nname=").gzip(), GZ, 400),
        (
            "name mismatch",
            base().manifest("[package]\nname = \"evil2\"\nversion = \"1.0.0\"\n").gzip(),
            GZ,
            400,
        ),
        (
            "version mismatch",
            base().manifest("[package]\nname = \"evil\"\nversion = \"1.0.1\"\n").gzip(),
            GZ,
            400,
        ),
        ("trailing bytes", base().trailing(b"garbage").gzip(), GZ, 400),
        ("content type mismatch", base().zstd(), GZ, 400),
        ("not an archive", b"just text".to_vec(), GZ, 400),
        ("compression bomb", base().file("zeros", &zeros).gzip(), GZ, 413),
        ("too many entries", many.gzip(), GZ, 413),
        ("compressed size over the limit", vec![0x1f; 11 << 20], GZ, 413),
    ];
    for (what, body, ctype, status) in cases {
        let resp = server.put("evil", "1.0.0", &token, body, ctype);
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let err: Value = resp.json().unwrap_or_else(|e| panic!("{what}: JSON error body: {e}"));
        let code = if status == 413 { "too-large" } else { "invalid" };
        assert_eq!(err["error"], code, "{what}: {err}");
        assert!(!err["message"].as_str().unwrap_or("").is_empty(), "{what}");
    }
    assert_eq!(server.static_files(), before_files, "no blob, no derived file");
    let after = std::fs::read_to_string(server.static_root().join("index.git/refs/heads/main")).unwrap();
    assert_eq!(head, after, "no commit");
    // A good archive still publishes afterwards: the refusals left no state.
    assert_eq!(server.put("evil", "1.0.0", &token, base().gzip(), GZ).status(), 201);
}

#[test]
fn bad_names_versions_and_checksums_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token.clone().unwrap();
    let body = base().gzip();
    assert_eq!(server.put("1bad", "1.0.0", &token, body.clone(), GZ).status(), 400);
    assert_eq!(server.put("evil", "1.0", &token, body.clone(), GZ).status(), 400);
    let resp = support::client()
        .put(format!("{}/api/v1/packages/evil/1.0.0", server.url))
        .bearer_auth(&token)
        .header("Content-Type", GZ)
        .header("X-Checksum-Sha256", "00".repeat(32))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().unwrap()["error"], "invalid");
    let (sha, _) = cairn::store::digests(&body);
    let resp = support::client()
        .put(format!("{}/api/v1/packages/evil/1.0.0", server.url))
        .bearer_auth(&token)
        .header("Content-Type", GZ)
        .header("X-Checksum-Sha256", &sha)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
}
