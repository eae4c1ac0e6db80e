//! A real Postgres for tests (Debian's `postgresql` package; tools/test.sh
//! installs it): a fresh cluster in a temporary directory, listening on
//! 127.0.0.1 and a free port with trust authentication, stopped when the
//! handle is dropped or, for a handle in a static, when the test process
//! ends. initdb and postgres refuse to run as root: as root they run as
//! the `postgres` user (runuser). Shared by the integration tests
//! (`tests/support`) and the db module's unit tests (included by path).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    /// The shell that runs the server: it stops it (immediate shutdown)
    /// when its stdin closes, so the server never outlives the test process.
    keeper: Child,
    stdin: Option<ChildStdin>,
}

/// The directory of initdb and postgres: `pg_config --bindir`, else the
/// newest `/usr/lib/postgresql/*/bin` that has both.
pub fn bin_dir() -> PathBuf {
    let has = |d: &Path| d.join("initdb").exists() && d.join("postgres").exists();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has(&dir) {
            return dir;
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path().join("bin"))).filter(|d| has(d)).collect())
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        d.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()?.parse::<u32>().ok()).unwrap_or(0)
    });
    dirs.pop()
        .expect("no Postgres server binaries (initdb, postgres): apt install postgresql (tools/test.sh does)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Postgres {
    /// Starts a new cluster and waits until it takes connections.
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// A cluster that takes TLS connections only (`ssl=on`, `hostssl` in
    /// pg_hba.conf), with a certificate for `localhost` (not 127.0.0.1)
    /// signed by a CA made here: [`Postgres::ca_file`].
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    /// The PEM file of the CA that signed a TLS cluster's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_with(tls: bool) -> Postgres {
        let bin = bin_dir();
        sweep_leftovers();
        let dir = tempfile::Builder::new().prefix("cairn-pg").tempdir().unwrap();
        let port = free_port();
        // SAFETY: geteuid(2) has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        // A CA and a server certificate for the name `localhost` (made by
        // the user that runs the server, which must own the key); then
        // plain TCP connections are refused.
        let tls_setup = match tls {
            false => String::new(),
            true => format!(
                r#"cd "{dir}"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cairn-test-ca -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.crt 2>/dev/null
chmod 600 server.key
printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\n' >data/pg_hba.conf
"#,
                dir = dir.path().display()
            ),
        };
        let ssl_options = match tls {
            false => String::new(),
            true => format!(
                "-c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
                dir = dir.path().display()
            ),
        };
        // fsync off: a test cluster is thrown away, and the disk is shared.
        let script = format!(
            r#"set -e
"{bin}/initdb" -D "{dir}/data" -U postgres -A trust -E UTF8 --locale=C >"{dir}/initdb.log" 2>&1
{tls_setup}
"{bin}/postgres" -D "{dir}/data" -p {port} -k "{dir}" -c listen_addresses=127.0.0.1 {ssl_options} \
  -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200 \
  >"{dir}/postgres.log" 2>&1 &
pid=$!
read _ || true
kill -QUIT $pid 2>/dev/null || true
wait $pid || true
"#,
            bin = bin.display(),
            dir = dir.path().display(),
        );
        let mut cmd = if root {
            let status = Command::new("chown").arg("postgres:").arg(dir.path()).status().expect("chown runs");
            assert!(status.success(), "chown postgres {}", dir.path().display());
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", &script]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        };
        let mut keeper =
            cmd.stdin(Stdio::piped()).stdout(Stdio::null()).spawn().expect("the Postgres shell starts");
        let stdin = keeper.stdin.take();
        let pg = Postgres { port, dir, keeper, stdin };
        let started = Instant::now();
        // A TLS cluster refuses the plain connection with pg_hba.conf's
        // error (28000) once it is up (57P03 while it is starting).
        let up = |e: &postgres::Error| {
            tls && e.code() == Some(&postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        };
        while started.elapsed() < Duration::from_secs(60) {
            match postgres::Client::connect(&pg.url("postgres"), postgres::NoTls) {
                Ok(_) => return pg,
                Err(e) if up(&e) => return pg,
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = |f: &str| std::fs::read_to_string(pg.dir.path().join(f)).unwrap_or_default();
        panic!(
            "Postgres never took connections on port {port}:\n{}\n{}",
            log("initdb.log"),
            log("postgres.log")
        );
    }

    /// The URL of database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The superuser's client, through the Unix socket (which a TLS
    /// cluster takes without TLS).
    pub fn client(&self, db: &str) -> postgres::Client {
        let config =
            format!("host={} port={} user=postgres dbname={db}", self.dir.path().display(), self.port);
        postgres::Client::connect(&config, postgres::NoTls).expect("connects to the test Postgres")
    }

    /// A new, empty database; returns its URL.
    pub fn create_database(&self) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        self.client("postgres").batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        self.url(&name)
    }

    /// One cluster for the whole test process (stopped when it ends).
    pub fn shared() -> &'static Postgres {
        static SHARED: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
        SHARED.get_or_init(Postgres::start)
    }
}

/// Removes the clusters of earlier runs: a cluster kept in a static for a
/// whole test binary is never dropped, so its directory outlives it. One
/// whose server is gone (no live pid in `postmaster.pid`) and that is older
/// than a start could take is left by a run that ended.
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !entry.file_name().to_string_lossy().starts_with("cairn-pg") {
            continue;
        }
        let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if old.is_none_or(|age| age < Duration::from_secs(600)) {
            continue;
        }
        let pid = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        // SAFETY: kill(2) with signal 0 only checks that the process exists.
        let alive = pid.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if !alive {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.keeper.wait();
    }
}
