//! An S3-compatible server for the tests on 127.0.0.1, with one bucket,
//! stopped when dropped: moto's (PyPI `moto[server]`, Python, objects in
//! memory) or s3s-fs (crates.io, Rust, objects in files), both installed
//! by tools/test.sh; and a client that reads objects back with their headers.

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, ObjectStore};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct S3 {
    child: Child,
    /// s3s-fs's directory.
    _files: Option<tempfile::TempDir>,
    pub endpoint: String,
    pub bucket: String,
    store: Box<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
}

/// moto takes any credentials; the server and the tests use these.
pub const ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "cairn-test"),
    ("AWS_SECRET_ACCESS_KEY", "cairn-test-secret"),
    ("AWS_REGION", "us-east-1"),
    ("CAIRN_RATE_LIMIT", "off"),
];

/// An object as the bucket holds it.
pub struct Object {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
}

/// Which S3 server.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Moto,
    S3sFs,
}

impl S3 {
    /// moto's server.
    pub fn start() -> S3 {
        S3::start_kind(Kind::Moto)
    }

    pub fn start_kind(kind: Kind) -> S3 {
        match kind {
            Kind::Moto => S3::start_moto(),
            Kind::S3sFs => S3::start_s3s_fs(),
        }
    }

    /// s3s-fs, with the tests' credentials; a directory is a bucket.
    fn start_s3s_fs() -> S3 {
        let port = super::free_port();
        let files = tempfile::Builder::new().prefix("cairn-s3s").tempdir().unwrap();
        let bucket = "cairn".to_string();
        std::fs::create_dir(files.path().join(&bucket)).unwrap();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ENV[0].1, "--secret-key", ENV[1].1])
            .arg(files.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts (cargo install s3s-fs --version 0.14.1 --features binary)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let up = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "s3s-fs at {endpoint} never listened");
        S3::with_client(child, Some(files), endpoint, bucket)
    }

    fn start_moto() -> S3 {
        let port = super::free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto's server starts (pip install 'moto[server]')");
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = "cairn".to_string();
        // moto creates a bucket on a plain PUT of its name.
        let mut made = false;
        for _ in 0..200 {
            if reqwest::blocking::Client::new()
                .put(format!("{endpoint}/{bucket}"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                made = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(made, "moto at {endpoint} never made the bucket");
        S3::with_client(child, None, endpoint, bucket)
    }

    fn with_client(child: Child, files: Option<tempfile::TempDir>, endpoint: String, bucket: String) -> S3 {
        let store = AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_bucket_name(&bucket)
            .with_region(ENV[2].1)
            .with_access_key_id(ENV[0].1)
            .with_secret_access_key(ENV[1].1)
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        S3 { child, _files: files, endpoint, bucket, store: Box::new(store), runtime }
    }

    /// The `[storage]` table of a registry in this bucket under `prefix`.
    pub fn storage_toml(&self, prefix: &str) -> String {
        format!(
            "[storage]\nkind = \"s3\"\nbucket = \"{}\"\nprefix = \"{prefix}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n",
            self.bucket, self.endpoint
        )
    }

    /// The object at `key` (the full key, prefix included).
    pub fn get(&self, key: &str) -> Option<Object> {
        self.runtime.block_on(async {
            let got = match self.store.get(&ObjectPath::from(key)).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return None,
                Err(e) => panic!("reading {key}: {e}"),
            };
            let attr = |a: &Attribute| got.attributes.get(a).map(|v| v.to_string());
            let (content_type, cache_control) =
                (attr(&Attribute::ContentType), attr(&Attribute::CacheControl));
            let bytes = got.bytes().await.unwrap().to_vec();
            Some(Object { bytes, content_type, cache_control })
        })
    }

    /// Every key under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        use futures_util::TryStreamExt;
        self.runtime.block_on(async {
            let p = ObjectPath::from(prefix);
            let listed: Vec<_> = self.store.list(Some(&p)).try_collect().await.unwrap();
            let mut keys: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
            keys.sort();
            keys
        })
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
