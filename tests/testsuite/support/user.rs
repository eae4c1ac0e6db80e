//! A user of the CLI, isolated, and publishing through the API.

use cairn::archive::builder::TarballBuilder;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::Server;

/// An isolated user: HOME, config and cache directories of its own.
pub struct User {
    pub home: tempfile::TempDir,
}

impl User {
    pub fn new() -> User {
        User { home: tempfile::tempdir().unwrap() }
    }

    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cairn"));
        c.args(args)
            .current_dir(cwd)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("CAIRN_LOG", "warn")
            .env_remove("CAIRN_REGISTRY")
            .env_remove("CAIRN_TOKEN")
            .env_remove("CAIRN_CONFIG_DIR")
            .env_remove("CAIRN_CACHE_DIR")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        self.command(cwd, args).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args);
        assert!(
            out.status.success(),
            "cairn {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and asserts exit code 1; returns stderr.
    pub fn fails(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "cairn {args:?} should fail with 1:\n{err}");
        err
    }

    pub fn credentials(&self) -> PathBuf {
        self.home.path().join("config/cairn/credentials.toml")
    }
}

pub fn publish(server: &Server, name: &str, version: &str, deps: &[(&str, &str)]) -> String {
    let mut manifest = format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n\n[dependencies]\n");
    for (n, r) in deps {
        manifest.push_str(&format!("{n} = \"{r}\"\n"));
    }
    let bytes = TarballBuilder::new(name, version)
        .manifest(manifest)
        .file("README.md", format!("{name} {version}").as_bytes())
        .gzip();
    let resp = server.put(name, version, server.token.as_ref().unwrap(), bytes.clone(), "application/gzip");
    assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    cairn::store::digests(&bytes).0
}

/// The packages unpacked in a project's `cairn_packages/`, sorted.
pub fn installed(project: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(project.join("cairn_packages"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|n| !n.starts_with('.'));
    v.sort();
    v
}
