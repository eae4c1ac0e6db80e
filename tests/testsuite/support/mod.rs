//! Shared test support: the real `cairn` binary on 127.0.0.1 with a fresh
//! data directory, stopped (kill -9) when dropped.

#![allow(dead_code)]

pub mod hook;
pub mod mixed;
pub mod npm;
pub mod oidc;
pub mod pg;
pub mod s3;
pub mod upstream;
pub mod user;
pub mod varnish;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    pub child: Child,
    pub url: String,
    /// The admin API's base URL, when started with `--admin-listen`.
    pub admin_url: Option<String>,
    pub data: PathBuf,
    pub token: Option<String>,
    pub pubkey: String,
}

impl Server {
    /// Starts `cairn serve` on a free port over `data` (created on first start).
    pub fn start(data: &Path) -> Server {
        Server::start_with_env(data, &[("CAIRN_RATE_LIMIT", "off")])
    }

    pub fn start_with_env(data: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with(data, env, &[])
    }

    pub fn start_with(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::spawn(data, env, args, Stdio::inherit())
    }

    /// As [`Server::start_with`], its stderr (its log) written to `log`.
    pub fn start_logged(data: &Path, env: &[(&str, &str)], args: &[&str], log: &Path) -> Server {
        Server::spawn(data, env, args, std::fs::File::create(log).unwrap().into())
    }

    fn spawn(data: &Path, env: &[(&str, &str)], args: &[&str], stderr: Stdio) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.arg("serve");
        if !args.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.arg("--data")
            .arg(data)
            .args(args)
            .env_remove("CAIRN_PUBLIC_URL")
            .env("CAIRN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cairn starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut token, mut pubkey, mut admin_url) = (None, None, None, None);
        // The public key line comes last.
        while pubkey.is_none() {
            let line = lines.next().expect("serve prints its address").unwrap();
            if let Some(u) = line.strip_prefix("listening on ") {
                url = Some(u.to_string());
            } else if let Some(u) = line.strip_prefix("admin api on ") {
                admin_url = Some(u.to_string());
            } else if let Some(k) = line.strip_prefix("public key: ") {
                pubkey = Some(k.to_string());
            } else if let Some((_, t)) = line.split_once("(shown once): ") {
                token = Some(t.to_string());
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let server = Server {
            child,
            url: url.unwrap(),
            admin_url,
            data: data.to_path_buf(),
            token,
            pubkey: pubkey.unwrap(),
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        for _ in 0..100 {
            if reqwest::blocking::get(format!("{}/api/v1/health", self.url)).is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server at {} never became healthy", self.url);
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn static_root(&self) -> PathBuf {
        self.data.join("static")
    }

    /// Creates a user through the admin CLI and returns its token.
    pub fn add_user(&self, login: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["admin", "user", "add", login, "--data"])
            .arg(&self.data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).unwrap();
        assert_eq!(token.lines().count(), 1, "the token alone on stdout");
        token.trim().to_string()
    }

    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        reqwest::blocking::get(format!("{}{path}", self.url)).unwrap()
    }

    pub fn put(
        &self,
        name: &str,
        version: &str,
        token: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> reqwest::blocking::Response {
        client()
            .put(format!("{}/api/v1/packages/{name}/{version}", self.url))
            .bearer_auth(token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .unwrap()
    }

    /// Every file under the static root except temporaries, relative paths.
    pub fn static_files(&self) -> Vec<String> {
        let root = self.static_root();
        let mut v: Vec<String> = walkdir::WalkDir::new(&root)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned())
            .filter(|p| !p.starts_with("index.git/") && !p.contains("/.tmp-"))
            // Summaries and the search shards follow on their own schedule.
            .filter(|p| {
                p != "api/v1/health.json" && p != "api/v1/recent.json" && !p.starts_with("api/v1/search/")
            })
            .collect();
        v.sort();
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An API call with a bearer token and an optional JSON body.
pub fn api(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> reqwest::blocking::Response {
    let mut req = client().request(method, format!("{}/api/v1{path}", server.url)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().unwrap()
}

/// The status of a call, asserting that an error carries the JSON error body.
pub fn status(resp: reqwest::blocking::Response) -> u16 {
    let code = resp.status().as_u16();
    if code >= 400 {
        let doc: serde_json::Value = resp.json().expect("an error has a JSON body");
        assert!(doc["error"].is_string() && doc["message"].is_string(), "{doc}");
    }
    code
}

/// The JSON body of a call that must succeed.
pub fn ok(resp: reqwest::blocking::Response) -> serde_json::Value {
    let code = resp.status();
    let text = resp.text().unwrap();
    assert!(code.is_success(), "{code}: {text}");
    serde_json::from_str(&text).unwrap()
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// `git` with the repository-independent settings tests rely on.
pub fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs")
}

/// Edits `registry.toml` in a data directory: each `(from, to)` must be
/// there (so a renamed key fails the test) and is replaced.
pub fn set_config(data: &Path, edits: &[(&str, &str)]) {
    let path = data.join("registry.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "registry.toml lacks {from:?}: {text}");
        text = text.replace(from, to);
    }
    std::fs::write(&path, text).unwrap();
}

/// Polls `done` every 200 ms until it holds; panics with `what()` after 20 s
/// (for what a server does on a timer).
pub fn eventually(mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{}", what());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The shared search test vectors, `index/search-vectors.json`.
pub fn search_vectors() -> serde_json::Value {
    read_json(Path::new(env!("CARGO_MANIFEST_DIR")).join("index/search-vectors.json"))
}

/// Publishes the search vectors' corpus, one version each.
pub fn publish_corpus(server: &Server) {
    let token = server.token.clone().unwrap();
    for p in search_vectors()["corpus"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let manifest = format!(
            "[package]\nname = {name:?}\nversion = \"1.0.0\"\ndescription = {:?}\nkeywords = {}\nkind = {:?}\n",
            p["description"].as_str().unwrap(),
            p["keywords"],
            p["kind"].as_str().unwrap_or("library"),
        );
        let body = cairn::archive::builder::TarballBuilder::new(name, "1.0.0").manifest(manifest).gzip();
        let resp = server.put(name, "1.0.0", &token, body, "application/gzip");
        assert_eq!(resp.status(), 201, "{name}: {}", resp.text().unwrap());
    }
}

/// A JSON file, parsed; panics naming the file.
pub fn read_json(path: PathBuf) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// The schema of a file under the static root, by its path.
pub fn schema_for(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split('/').collect();
    Some(match parts.as_slice() {
        ["index", "config.json"] => "index-config",
        ["index", "advisories", ..] => return None, // OSV, validated when added
        ["index", "meta", ..] => "meta",
        ["index", ..] => "index-line",
        ["api", "v1", "health.json"] => "health",
        ["api", "v1", "recent.json"] => "recent",
        ["api", "v1", "stats.json"] => "stats",
        ["api", "v1", "listings", _, _] => "listing",
        ["api", "v1", "kinds" | "keywords", _, _] => "listing",
        ["api", "v1", "users", _] => "user",
        ["api", "v1", "search", "manifest.json"] => "search-manifest",
        ["api", "v1", "search", "delta.json"] => "search-delta",
        ["api", "v1", "search", _] => "search-shard",
        ["api", "v1", "deprecations.json"] => "deprecations",
        ["api", "v1", "advisories", "index.json"] => "advisories-index",
        ["api", "v1", "advisories", "all.json"] => "advisories-all",
        ["api", "v1", "packages", _] => "package",
        ["api", "v1", "packages", _, "owners.json"] => "owners",
        ["api", "v1", "packages", _, "stats.json"] => "package-stats",
        ["api", "v1", "packages", _, "advisories.json"] => "advisories-package",
        ["api", "v1", "packages", _, "dependents.json"] => "dependents",
        ["api", "v1", "packages", _, _] => "version",
        _ => return None,
    })
}

/// Validates every JSON file under a static root's `index/` and `api/`
/// against its schema. Returns the failures (a file without a schema, not
/// JSON, not matching, or a temporary file left behind) and how many files
/// each schema checked.
pub fn validate_static_tree(root: &Path) -> (Vec<String>, std::collections::BTreeMap<&'static str, usize>) {
    let mut validators = std::collections::HashMap::new();
    let mut failures = Vec::new();
    let mut checked = std::collections::BTreeMap::new();
    for top in ["index", "api"] {
        for entry in walkdir::WalkDir::new(root.join(top)).into_iter().flatten() {
            if !entry.file_type().is_file() {
                continue;
            }
            let rel = entry.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.contains("/.tmp-") {
                failures.push(format!("{rel}: a temporary file left behind"));
                continue;
            }
            // READMEs and their rendering are not JSON (readme.html is
            // checked by tests/testsuite/publish.rs and the sanitiser's own tests).
            if rel.ends_with("/readme.md") || rel.ends_with("/readme.html") {
                continue;
            }
            let Some(schema) = schema_for(&rel) else {
                if !rel.starts_with("index/advisories/") {
                    failures.push(format!("{rel}: no schema"));
                }
                continue;
            };
            let text = std::fs::read_to_string(entry.path()).unwrap();
            // Index files hold one document per line.
            let docs: Vec<Result<serde_json::Value, _>> = if schema == "index-line" {
                text.lines().map(serde_json::from_str).collect()
            } else {
                vec![serde_json::from_str(&text)]
            };
            let v = validators.entry(schema).or_insert_with(|| self::schema(schema));
            for doc in docs {
                match doc {
                    Ok(doc) => failures.extend(
                        v.iter_errors(&doc)
                            .map(|e| format!("{rel} ({schema}): {e} at {}", e.instance_path())),
                    ),
                    Err(e) => failures.push(format!("{rel}: not JSON: {e}")),
                }
            }
            *checked.entry(schema).or_default() += 1;
        }
    }
    (failures, checked)
}

/// The validator of `index/schema/{name}.schema.json`.
pub fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("index/schema/{name}.schema.json"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}")))
            .unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"))
}

/// Asserts that `doc` matches `index/schema/{name}.schema.json`.
pub fn validate(name: &str, doc: &serde_json::Value) {
    let errors: Vec<String> =
        schema(name).iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{doc:#}");
}

/// One HTTP/1.1 request as a test's proxy reads it.
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads the next request of a keep-alive connection; `None` when the client closed it.
pub fn read_request(reader: &mut impl std::io::BufRead) -> std::io::Result<Option<Request>> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(None);
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("GET").to_string(), parts.next().unwrap_or("/").to_string());
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let Some((k, v)) = h.trim_end().split_once(':') else { break };
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        if k.eq_ignore_ascii_case("content-length") {
            len = v.parse().unwrap_or(0);
        }
        headers.push((k, v));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { method, path, headers, body }))
}

/// A free port on 127.0.0.1 (bound and released: a test starts its server on it next).
/// A port no one listens on, for a server the test starts later (nginx,
/// a public URL). Taken below the kernel's ephemeral range (32768 and up on
/// Linux), where every `127.0.0.1:0` of the other tests' servers lands, so
/// none of them can take it in the meantime.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Spread by process, so two runs at once rarely meet either.
    let base = 20_000 + (std::process::id() % 40) * 300;
    loop {
        let port = (base + NEXT.fetch_add(1, Ordering::Relaxed) % 300) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// nginx (Debian's package) with the shipped configuration
/// (tools/deploy/nginx/) over a data directory's static root, proxying to
/// `upstream`; stopped when dropped.
pub struct Nginx {
    child: Child,
    pub url: String,
    pub run_dir: PathBuf,
}

impl Nginx {
    /// `cairn serve` (rate limits off) on `data` with nginx in front, whose
    /// URL is the registry's public URL (so `dl` and `api` name nginx).
    pub fn in_front(data: &Path) -> (Server, Nginx) {
        let port = free_port();
        let public = format!("http://127.0.0.1:{port}");
        let server = Server::start_with(data, &[("CAIRN_RATE_LIMIT", "off")], &["--public-url", &public]);
        let nginx = Nginx::start(data, port, &server.url);
        (server, nginx)
    }

    pub fn start(data: &Path, port: u16, upstream: &str) -> Nginx {
        Nginx::start_with(data, port, upstream, None)
    }

    /// With `tls` (a certificate and key in PEM, [`Tls::self_signed`]) it
    /// listens with TLS and HTTP/2 (render.sh's TLS_CERT and TLS_KEY).
    pub fn start_with(data: &Path, port: u16, upstream: &str, tls: Option<&Tls>) -> Nginx {
        let run_dir = data.with_extension("nginx");
        let upstream = upstream.trim_start_matches("http://");
        let mut render = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/deploy/nginx/render.sh"));
        if let Some(tls) = tls {
            render.env("TLS_CERT", &tls.cert).env("TLS_KEY", &tls.key);
        }
        let out = render
            .arg(data)
            .arg(format!("127.0.0.1:{port}"))
            .arg(upstream)
            .arg(&run_dir)
            .arg("1")
            .output()
            .expect("render.sh runs");
        assert!(out.status.success(), "render.sh: {}", String::from_utf8_lossy(&out.stderr));
        let conf = run_dir.join("nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&run_dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts (apt install nginx-light)");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let nginx = Nginx { child, url, run_dir };
        // Only whether it answers (cargo, through curl, checks the certificate).
        let client = reqwest::blocking::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
        for _ in 0..100 {
            if client.get(format!("{}/index/config.json", nginx.url)).send().is_ok_and(|r| r.status() == 200)
            {
                return nginx;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx at {} never answered", nginx.url);
    }
}

/// A self-signed certificate for 127.0.0.1 (made with openssl), in PEM.
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    pub fn self_signed(dir: &Path) -> Tls {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        Tls { cert, key }
    }
}

impl Drop for Nginx {
    /// SIGTERM: the master stops its workers (a SIGKILL would orphan them).
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of a child this process started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Makes the anonymous bucket of the registry in `data` (started once, so
/// its registry.toml exists) refill once an hour instead of every 2 s, so a
/// test that spends it sees the same statuses however slowly it runs.
pub fn slow_anonymous_refill(data: &Path) {
    let path = data.join("registry.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("[rate_limit.anonymous]").expect("registry.toml names the anonymous quota");
    let (head, tail) = text.split_at(at);
    let tail = tail.replacen("per_seconds = 2\n", "per_seconds = 3600\n", 1);
    assert!(tail.contains("per_seconds = 3600"), "{text}");
    std::fs::write(&path, format!("{head}{tail}")).unwrap();
}
