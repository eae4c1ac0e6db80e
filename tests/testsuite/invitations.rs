//! Invitations by email (SPEC section 19) against a real SMTP server
//! (aiosmtpd, `mail.rs`): pending, listed, mailed with a link to the
//! invitation page, accepted only by an account of the invited address,
//! declined, withdrawn, expired; bad requests write nothing; the link's
//! token never reaches the log. And in chromium, the invitation page's
//! accept and the dashboard's mail opt-out.

use crate::mail::{add_user, await_mail, bodies_to, with_mail, Smtp};
use crate::support::{self, api, ok, status, Server};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

/// The token of the newest invitation mailed to `to`, from its link.
fn token_mailed_to(maildir: &Path, to: &str, public_url: &str) -> String {
    let bodies = bodies_to(maildir, to);
    let body = bodies.last().unwrap_or_else(|| panic!("no mail to {to}"));
    let at = body.find("/invitations/").unwrap_or_else(|| panic!("no link in {body}"));
    assert!(body[..at].ends_with(public_url), "the link is on the registry's public URL: {body}");
    body[at + "/invitations/".len()..].split_whitespace().next().unwrap().to_string()
}

fn members(server: &Server, token: &str) -> Vec<Value> {
    ok(api(server, Method::GET, "/orgs/acme/members", token, None))["members"].as_array().unwrap().clone()
}

fn invite(server: &Server, token: &str, body: Value) -> reqwest::blocking::Response {
    api(server, Method::POST, "/orgs/acme/members", token, Some(body))
}

#[test]
fn an_emailed_invitation_waits_until_its_invitee_accepts_or_declines() {
    let dir = tempfile::tempdir().unwrap();
    let (data, maildir, log) = (dir.path().join("data"), dir.path().join("maildir"), dir.path().join("log"));
    let smtp = Smtp::start(&maildir);
    with_mail(&data, &smtp);
    let ann = add_user(&data, "ann", "ann@example.test");
    let bob = add_user(&data, "bob", "Bob@Example.test");
    let eve = add_user(&data, "eve", "eve@example.test");
    let env = [("CAIRN_RATE_LIMIT", "off"), ("CAIRN_LOG_FORMAT", "json"), ("CAIRN_LOG", "info")];
    let server = Server::start_logged(&data, &env, &[], &log);
    let org = json!({"slug": "acme", "visibility": "private"});
    assert_eq!(status(api(&server, Method::POST, "/orgs", &ann, Some(org))), 201);

    // Bad requests: a clear 400/403/409 each, and no invitation, no mail.
    let refused = [
        (json!({"email": "not-an-address"}), 400, &ann),
        (json!({"email": "x@example.test", "login": "bob"}), 400, &ann),
        (json!({"email": "x@example.test", "role": "king"}), 400, &ann),
        (json!({"email": "ann@example.test"}), 409, &ann),
        (json!({"email": "x@example.test"}), 404, &eve),
    ];
    for (body, want, who) in refused {
        let resp = invite(&server, who, body.clone());
        assert_eq!(resp.status(), want, "{body}");
        let err: Value = resp.json().unwrap();
        assert!(err["error"].is_string() && err["message"].is_string(), "{err}");
    }
    assert_eq!(members(&server, &ann).len(), 1, "nothing pending after the refusals");

    // Pending, listed, mailed.
    let made = ok(invite(&server, &ann, json!({"email": "BOB@example.test ", "role": "admin"})));
    assert_eq!((made["email"].as_str(), made["pending"].as_bool()), (Some("bob@example.test"), Some(true)));
    let expires = made["expiresAt"].as_str().unwrap();
    let week = (chrono::Utc::now() + chrono::Duration::days(7)).format("%Y-%m-%dT%H").to_string();
    assert!(expires.starts_with(&week[..10]), "expires in 7 days: {expires}");
    let listed = members(&server, &ann);
    assert_eq!(listed.len(), 2);
    let pending = (&listed[1]["email"], &listed[1]["pending"], &listed[1]["role"]);
    assert_eq!(pending, (&json!("bob@example.test"), &json!(true), &json!("admin")));
    assert_eq!(await_mail(&maildir, 1).len(), 1);
    let token = token_mailed_to(&maildir, "bob@example.test", &server.url);
    let config = |who: &str| {
        let url = format!("{}/orgs/acme/index/config.json", server.url);
        support::client().get(url).bearer_auth(who).send().unwrap().status()
    };
    assert_eq!(config(&bob), 404, "bob is not a member yet");

    // The link is the invitation page; the API says what it offers.
    let page = server.get(&format!("/invitations/{token}"));
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("An invitation"));
    let shown = ok(server.get(&format!("/api/v1/invitations/{token}")));
    assert_eq!(
        (&shown["org"], &shown["role"], &shown["invitedBy"]),
        (&json!("acme"), &json!("admin"), &json!("ann"))
    );

    // Only an account of the invited address accepts, signed in.
    let accept = format!("/invitations/{token}/accept");
    let anonymous =
        reqwest::blocking::Client::new().post(format!("{}/api/v1{accept}", server.url)).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(status(api(&server, Method::POST, &accept, &eve, None)), 403);
    let joined = ok(api(&server, Method::POST, &accept, &bob, None));
    assert_eq!((&joined["login"], &joined["role"]), (&json!("bob"), &json!("admin")));
    let listed = members(&server, &bob);
    assert_eq!(listed.iter().filter(|m| m["pending"] == true).count(), 0);
    assert!(listed.iter().any(|m| m["login"] == "bob" && m["role"] == "admin"), "{listed:?}");
    assert_eq!(config(&bob), 200, "bob reads the private registry");
    assert_eq!(status(api(&server, Method::POST, &accept, &bob, None)), 404, "used up");

    // Declined: the invitation is gone, eve is no member.
    ok(invite(&server, &bob, json!({"email": "eve@example.test"})));
    await_mail(&maildir, 2);
    let token_eve = token_mailed_to(&maildir, "eve@example.test", &server.url);
    let declined = ok(api(&server, Method::POST, &format!("/invitations/{token_eve}/decline"), &eve, None));
    assert_eq!(declined["declined"], true);
    assert_eq!(status(api(&server, Method::GET, "/orgs/acme", &eve, None)), 404);
    assert_eq!(server.get(&format!("/api/v1/invitations/{token_eve}")).status(), 404);

    // Withdrawn by an admin; inviting again replaces the earlier link.
    ok(invite(&server, &ann, json!({"email": "carl@example.test"})));
    ok(invite(&server, &ann, json!({"email": "carl@example.test", "role": "admin"})));
    await_mail(&maildir, 4);
    let carl = bodies_to(&maildir, "carl@example.test");
    assert_eq!(carl.len(), 2);
    assert_eq!(members(&server, &ann).iter().filter(|m| m["pending"] == true).count(), 1);
    let gone = ok(api(&server, Method::DELETE, "/orgs/acme/members/carl@example.test", &ann, None));
    assert_eq!(gone["withdrawn"], true);
    let carl_token = token_mailed_to(&maildir, "carl@example.test", &server.url);
    assert_eq!(server.get(&format!("/api/v1/invitations/{carl_token}")).status(), 404);

    // Expired: seven days later (the row's expiry moved back) it is 410.
    ok(invite(&server, &ann, json!({"email": "dora@example.test"})));
    await_mail(&maildir, 5);
    let dora = token_mailed_to(&maildir, "dora@example.test", &server.url);
    let db = rusqlite::Connection::open(data.join("state.db")).unwrap();
    db.execute("UPDATE invitations SET expires_at = '2020-01-01T00:00:00Z'", []).unwrap();
    let expired = server.get(&format!("/api/v1/invitations/{dora}"));
    assert_eq!(expired.status(), 410);
    assert!(
        members(&server, &ann).iter().all(|m| m["pending"] != true),
        "an expired invitation is not pending"
    );

    // The links' tokens never reach the log; the requests did.
    drop(server);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("/api/v1/invitations/…/accept"), "the accept requests are logged");
    for secret in [&token, &token_eve, &carl_token, &dora] {
        assert!(!logged.contains(secret.as_str()), "an invitation's token is in the log");
    }
}

/// In chromium (`tools/site-test/invitation.mjs`): the invitation page
/// signed out points to the sign-in; signed in, Accept makes the member;
/// the dashboard's mail switch turns the owner's mails off and on.
#[test]
fn the_invitation_page_and_the_mail_switch_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (data, maildir) = (dir.path().join("data"), dir.path().join("maildir"));
    let smtp = Smtp::start(&maildir);
    with_mail(&data, &smtp);
    let ann = add_user(&data, "ann", "ann@example.test");
    let bob = add_user(&data, "bob", "bob@example.test");
    let server = Server::start(&data);
    let org = json!({"slug": "acme", "name": "Acme Corp"});
    assert_eq!(status(api(&server, Method::POST, "/orgs", &ann, Some(org))), 201);
    ok(invite(&server, &ann, json!({"email": "bob@example.test", "role": "admin"})));
    await_mail(&maildir, 1);
    let token = token_mailed_to(&maildir, "bob@example.test", &server.url);

    let out = std::process::Command::new("node")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test/invitation.mjs"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/site-test"))
        .env("CAIRN_URL", &server.url)
        .env("INVITATION", format!("/invitations/{token}"))
        .env("BOB_TOKEN", &bob)
        .output()
        .expect("node runs (tools/test.sh installs it, chromium and tools/site-test's packages)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser's invitation flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("invitation flow ok"), "{stdout}");

    let listed = members(&server, &ann);
    assert!(listed.iter().any(|m| m["login"] == "bob" && m["role"] == "admin"), "{listed:?}");
    // The script turned bob's mails off, then on, then off: the last stays.
    let who = ok(api(&server, Method::GET, "/whoami", &bob, None));
    assert_eq!(who["notify"], false);
}
