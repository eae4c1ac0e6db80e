//! Varnish (Debian's `varnish`) with the shipped configuration
//! (tools/deploy/varnish/) in front of a `cairn serve` on 127.0.0.1, which
//! purges it (`[cdn] kind = "purge"`); stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, Server};

pub struct Varnish {
    child: Option<Child>,
    pub url: String,
    port: u16,
    /// The rendered VCL and varnishd's working directory (`-n`).
    dir: PathBuf,
}

impl Varnish {
    /// `cairn serve` (rate limits off) on a new data directory `data`
    /// whose public URL is Varnish's, purging it, with Varnish in front.
    pub fn in_front(data: &Path) -> (Server, Varnish) {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        std::fs::create_dir_all(data).unwrap();
        // registry.toml first: `cairn serve` keeps it and inits around it.
        std::fs::write(
            data.join("registry.toml"),
            format!("[cdn]\nkind = \"purge\"\npurge_url = \"{url}\"\n"),
        )
        .unwrap();
        let server = Server::start_with(data, &[("CAIRN_RATE_LIMIT", "off")], &["--public-url", &url]);
        let dir = data.with_extension("varnish");
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/deploy/varnish/render.sh"))
            .arg(server.url.trim_start_matches("http://"))
            .arg(dir.join("cairn.vcl"))
            .output()
            .expect("render.sh runs");
        assert!(out.status.success(), "render.sh: {}", String::from_utf8_lossy(&out.stderr));
        let mut varnish = Varnish { child: None, url, port, dir };
        varnish.start();
        (server, varnish)
    }

    /// Starts varnishd on its port (again, after [`Varnish::stop`]: an
    /// empty cache) and waits until it answers.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "varnish runs already");
        // `-j none`: no privilege separation, so a root test's private
        // temporary directory is readable (as render.sh's nginx `user root`).
        let child = Command::new("varnishd")
            .arg("-F")
            .args(["-j", "none"])
            .args(["-a", &format!("127.0.0.1:{}", self.port)])
            .arg("-f")
            .arg(self.dir.join("cairn.vcl"))
            .arg("-n")
            .arg(self.dir.join("work"))
            .args(["-s", "malloc,64m"])
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("varnishd.log"))
                    .unwrap(),
            )
            .spawn()
            .expect("varnishd starts (apt install varnish)");
        self.child = Some(child);
        for _ in 0..200 {
            if reqwest::blocking::get(format!("{}/index/config.json", self.url))
                .is_ok_and(|r| r.status() == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("varnish at {} never answered", self.url);
    }

    /// Stops varnishd (SIGTERM: the manager stops its child); its port is closed after.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child this process started.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// A counter of `varnishstat` (e.g. `MAIN.n_purges`).
    pub fn stat(&self, counter: &str) -> u64 {
        let out = Command::new("varnishstat")
            .arg("-n")
            .arg(self.dir.join("work"))
            .args(["-1", "-f", counter])
            .output()
            .expect("varnishstat runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let line =
            text.lines().find(|l| l.starts_with(counter)).unwrap_or_else(|| panic!("no {counter}: {text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        self.stop();
    }
}
