//! ../shared/fixtures/crates-io-mini served by nginx as a cargo sparse
//! registry: the upstream cairn is put in front of (SPEC section 16).
//! A copy of it, so a test may tamper with its files; stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Upstream {
    child: Option<Child>,
    pub url: String,
    /// The served copy: `index/`, `crates/{name}/{version}/download`.
    pub dir: PathBuf,
    run: PathBuf,
}

/// The fixture: real crates and their crates.io index lines.
pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/crates-io-mini")
}

/// `(name, version, sha256)` of each `.crate` the fixture holds.
pub fn manifest() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(fixture().join("MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// The SHA-256 of the fixture's `.crate` of `name` `version`.
pub fn sha256_of(name: &str, version: &str) -> String {
    let found = manifest().into_iter().find(|(n, v, _)| n == name && v == version);
    found.unwrap_or_else(|| panic!("the fixture has no {name} {version}")).2
}

impl Upstream {
    pub fn start(root: &Path) -> Upstream {
        let port = super::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let dir = root.join("upstream");
        let run = root.join("upstream.nginx");
        std::fs::create_dir_all(run.join("tmp")).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        for sub in ["index", "crates"] {
            assert!(Command::new("cp")
                .arg("-R")
                .arg(fixture().join(sub))
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        let template = std::fs::read_to_string(fixture().join("config.json.template")).unwrap();
        std::fs::write(dir.join("index/config.json"), template.replace("@BASE@", &url)).unwrap();
        let conf = format!(
            "pid {run}/nginx.pid;\nerror_log {run}/error.log;\nevents {{}}\nhttp {{\n\
             access_log {run}/access.log;\nclient_body_temp_path {run}/tmp;\nproxy_temp_path {run}/tmp;\n\
             fastcgi_temp_path {run}/tmp;\nuwsgi_temp_path {run}/tmp;\nscgi_temp_path {run}/tmp;\n\
             types {{ application/json json; }}\ndefault_type application/octet-stream;\n\
             server {{ listen 127.0.0.1:{port}; root {dir}; }}\n}}\n",
            run = run.display(),
            dir = dir.display(),
        );
        std::fs::write(run.join("nginx.conf"), conf).unwrap();
        let mut up = Upstream { child: None, url, dir, run };
        up.resume();
        up
    }

    /// Its index URL as `[[upstreams]] index` takes it.
    pub fn index(&self) -> String {
        format!("sparse+{}/index/", self.url)
    }

    /// Stops serving (connections are refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child this process started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// Serves again.
    pub fn resume(&mut self) {
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&self.run)
            .arg("-c")
            .arg(self.run.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        self.child = Some(child);
        for _ in 0..100 {
            if reqwest::blocking::get(format!("{}/index/config.json", self.url))
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the upstream at {} never answered", self.url);
    }

    /// The requests it answered so far (nginx's access log lines).
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.run.join("access.log")).unwrap_or_default();
        log.lines().map(String::from).collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}
