//! The real npm client against a registry's npm door, with a HOME, a
//! cache and an `.npmrc` of its own (nothing of the machine's npm is read
//! or written).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Npm {
    pub home: tempfile::TempDir,
    /// The door npm uses as its registry (`…/npm/`).
    pub registry: String,
}

impl Npm {
    /// npm with `registry` (a door's URL, ending in `/`) as its registry
    /// and `token` (if any) for it; more `.npmrc` lines in `extra`.
    pub fn new(registry: &str, token: Option<&str>, extra: &[String]) -> Npm {
        let home = tempfile::tempdir().unwrap();
        let nerf = registry.trim_start_matches("http:");
        let mut rc = format!("registry={registry}\nfund=false\nupdate-notifier=false\nloglevel=warn\n");
        if let Some(token) = token {
            rc.push_str(&format!("{nerf}:_authToken={token}\n"));
        }
        for line in extra {
            rc.push_str(line);
            rc.push('\n');
        }
        std::fs::write(home.path().join(".npmrc"), rc).unwrap();
        Npm { home, registry: registry.to_string() }
    }

    pub fn cache(&self) -> PathBuf {
        self.home.path().join("cache")
    }

    /// `npm ARGS` in `dir`, with this HOME and cache.
    pub fn run(&self, dir: &Path, args: &[&str]) -> Output {
        self.command(dir, args).output().expect("npm runs (apt install nodejs npm)")
    }

    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("npm");
        cmd.args(args)
            .current_dir(dir)
            .env("HOME", self.home.path())
            .env("npm_config_cache", self.cache())
            .env("npm_config_userconfig", self.home.path().join(".npmrc"))
            .env_remove("NODE_OPTIONS")
            .env_remove("npm_config_registry");
        cmd
    }

    /// `npm ARGS`, which must succeed; its stdout.
    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run(dir, args);
        assert!(
            out.status.success(),
            "npm {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `npm audit signatures`, with Sigstore's TUF lookup answered "not
    /// found" (`tools/npm-test/tuf-not-found.cjs`: this machine cannot
    /// reach it), so npm checks the registry's own keys.
    pub fn audit_signatures(&self, dir: &Path) -> Output {
        let preload = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/npm-test/tuf-not-found.cjs");
        let mut cmd = self.command(dir, &["audit", "signatures"]);
        cmd.env("NODE_OPTIONS", format!("--require {preload}"));
        cmd.output().unwrap()
    }
}

/// A package directory: `package.json` (`json`) and an `index.js`.
pub fn package(parent: &Path, json: serde_json::Value) -> PathBuf {
    let dir =
        parent.join(json["name"].as_str().unwrap().replace('/', "_")).join(json["version"].as_str().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("package.json"), serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    std::fs::write(dir.join("index.js"), format!("module.exports = {:?};\n", json["version"])).unwrap();
    std::fs::write(dir.join("README.md"), format!("# {}\n", json["name"].as_str().unwrap())).unwrap();
    dir
}

/// An empty project to install into.
pub fn project(parent: &Path, name: &str) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        format!(r#"{{"name":"{name}","version":"0.0.0","private":true}}"#),
    )
    .unwrap();
    dir
}
