//! Mail (SPEC section 19) through a real SMTP server, Python's aiosmtpd
//! (its Mailbox handler, a maildir), started here: every owner of a
//! package is mailed when a version of it is published, yanked or
//! unyanked and when its owners change; an owner who opted out is not.

use crate::support;

use cairn::archive::builder::TarballBuilder;
use reqwest::Method;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{api, Server};

/// aiosmtpd on a free port, writing what it receives into a maildir.
pub struct Smtp {
    child: Child,
    pub port: u16,
}

impl Smtp {
    pub fn start(maildir: &Path) -> Smtp {
        let port = support::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("aiosmtpd runs (tools/test.sh installs it)");
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "aiosmtpd never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Smtp { child, port }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages in the maildir: (to, subject), read by Python's own parser.
fn received(maildir: &Path) -> Vec<(String, String)> {
    let script = "import mailbox, json, sys\n\
        print(json.dumps(sorted([m['To'], m['Subject']] for m in mailbox.Maildir(sys.argv[1], create=False))))";
    let out = Command::new("python3").args(["-c", script]).arg(maildir).output().unwrap();
    if !out.status.success() {
        return Vec::new(); // not made yet
    }
    serde_json::from_slice::<Vec<(String, String)>>(&out.stdout).unwrap()
}

/// The text of the messages to `to`, read by Python's own parser.
pub fn bodies_to(maildir: &Path, to: &str) -> Vec<String> {
    let script = "import mailbox, json, sys\n\
        print(json.dumps([m.get_payload(decode=True).decode() for m in mailbox.Maildir(sys.argv[1], create=False) \
        if m['To'] == sys.argv[2]]))";
    let out = Command::new("python3").args(["-c", script]).arg(maildir).arg(to).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Starts a registry that mails through `smtp`: a first start makes it,
/// then `[mail]` is set for the next.
pub fn with_mail(data: &Path, smtp: &Smtp) {
    drop(Server::start(data));
    let mail =
        format!("[mail]\nsmtp = \"smtp://127.0.0.1:{}\"\nfrom = \"cairn <cairn@example.test>\"\n", smtp.port);
    support::set_config(data, &[("[mail]\n", &mail)]);
}

/// Waits (up to 30 s) until `want` messages have arrived.
pub fn await_mail(maildir: &Path, want: usize) -> Vec<(String, String)> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let got = received(maildir);
        if got.len() >= want || Instant::now() > until {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn add_user(data: &Path, login: &str, email: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["admin", "user", "add", login, "--email", email, "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn owners_are_mailed_of_publishes_yanks_and_owner_changes_unless_they_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let (data, maildir) = (dir.path().join("data"), dir.path().join("maildir"));
    let smtp = Smtp::start(&maildir);
    with_mail(&data, &smtp);
    let ann = add_user(&data, "ann", "ann@example.test");
    let bob = add_user(&data, "bob", "bob@example.test");
    let server = Server::start(&data);

    let publish = |version: &str| {
        let body = TarballBuilder::new("mailed", version).gzip();
        assert_eq!(server.put("mailed", version, &ann, body, "application/gzip").status(), 201);
    };
    publish("1.0.0");
    let got = await_mail(&maildir, 1);
    assert_eq!(got, [("ann@example.test".to_string(), "mailed 1.0.0 was published on cairn".to_string())]);

    let add = json!({"users": ["bob"]});
    assert_eq!(api(&server, Method::PUT, "/packages/mailed/owners", &ann, Some(add)).status(), 200);
    let got = await_mail(&maildir, 3);
    let changed: Vec<&String> =
        got.iter().filter(|(_, s)| s.contains("owners of mailed changed")).map(|(to, _)| to).collect();
    assert_eq!(changed, ["ann@example.test", "bob@example.test"], "{got:?}");

    // bob opts out: the yank is mailed to ann alone.
    let me = api(&server, Method::PATCH, "/me", &bob, Some(json!({"notify": false})));
    assert_eq!(me.status(), 200);
    let who: serde_json::Value = api(&server, Method::GET, "/whoami", &bob, None).json().unwrap();
    assert_eq!(who["notify"], false);
    assert_eq!(api(&server, Method::DELETE, "/packages/mailed/1.0.0", &ann, None).status(), 200);
    let got = await_mail(&maildir, 4);
    let yanked: Vec<&String> = got.iter().filter(|(_, s)| s.contains("yanked")).map(|(to, _)| to).collect();
    assert_eq!(yanked, ["ann@example.test"], "{got:?}");
    let bad = api(&server, Method::PATCH, "/me", &bob, Some(json!({"notify": "no"})));
    assert_eq!(bad.status(), 400);

    // The outbox holds every message, sent or not, for the operator.
    let outbox = std::fs::read_to_string(data.join("outbox.jsonl")).unwrap();
    assert_eq!(outbox.lines().count(), 4, "{outbox}");
}
