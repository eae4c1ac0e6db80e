//! A real OpenID provider on 127.0.0.1: oauth2-mock-server (discovery,
//! JWKS, the authorization code flow with PKCE), through
//! tools/oidc-test/provider.mjs, with control routes to set the claims of
//! the next sign-in, mint CI identity tokens and rotate the signing key.
//! Stopped when dropped.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Provider {
    child: Child,
    /// The issuer: `http://127.0.0.1:{port}`.
    pub url: String,
}

impl Provider {
    pub fn start() -> Provider {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/oidc-test");
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .arg(super::free_port().to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node starts (tools/test.sh installs tools/oidc-test)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("the provider prints its issuer").unwrap();
        let url = first.strip_prefix("listening ").expect("listening {issuer}").to_string();
        std::thread::spawn(move || for _ in lines {});
        Provider { child, url }
    }

    fn control(&self, what: &str, body: Value) -> Value {
        let resp = super::client().post(format!("{}/control/{what}", self.url)).json(&body).send().unwrap();
        assert!(resp.status().is_success(), "control/{what}: {}", resp.status());
        resp.json().unwrap()
    }

    /// The claims of the next sign-ins' tokens (`sub`, `preferred_username`, `groups`, …).
    pub fn user(&self, claims: Value) {
        self.control("user", json!({ "claims": claims }));
    }

    /// A JWT this provider signs, with `claims` over `iss`, `iat`, `nbf`,
    /// `exp` (`expires_in` seconds from now; negative: expired).
    pub fn mint(&self, claims: Value, expires_in: i64) -> String {
        let doc = self.control("mint", json!({ "claims": claims, "expiresIn": expires_in }));
        doc["jwt"].as_str().unwrap().to_string()
    }

    /// A new signing key, used from now on; its `kid`.
    pub fn rotate(&self) -> String {
        self.control("rotate", json!({}))["kid"].as_str().unwrap().to_string()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
