//! Webhook deliveries (`[[webhooks]] url, secret_env`): every event POSTed
//! as its JSON to each webhook, in id order, from a thread per webhook so a
//! slow or failing receiver never delays a reply or another webhook.
//!
//! Each request carries `Cairn-Event-Id`, `Cairn-Timestamp` (unix seconds
//! when it was sent) and `Cairn-Signature: sha256=<hex>`, the lowercase hex
//! of HMAC-SHA256 keyed with the secret's bytes over the ASCII timestamp, a
//! `.`, and the body's exact bytes (see [`signed_payload`]). Signing the
//! timestamp with the body lets a receiver refuse a replayed delivery (a
//! timestamp too old, or an id it has seen).
//!
//! A delivery is acknowledged by any 2xx; anything else is retried, with
//! waits doubling from [`FIRST_RETRY`] to at most [`MAX_WAIT`], and never
//! skipped: a later event is not sent before an earlier one is
//! acknowledged. The last acknowledged id is the webhook's cursor in the
//! database, so a restart resumes after it (a delivery acknowledged just
//! before a crash may be sent once more: receivers dedupe by event id). A
//! webhook new to the database starts after the newest event: it hears of
//! the changes made from then on (`GET /api/v1/events?after=0` replays the rest).
//!
//! Several servers on one database may all have the webhook: one delivers
//! at a time, the one holding its cursor's claim (`follower.rs`, renewed
//! before every attempt).

use anyhow::{Context, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

use crate::db::events::Event;
use crate::registry::Registry;

/// The wait before the first retry of a delivery, doubled after each failure.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between two attempts of one delivery.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Starts one delivery thread per configured webhook. Fails when a
/// webhook's secret is not in the environment: an unsigned delivery would
/// be worthless to its receiver.
pub fn start(reg: &Arc<Registry>) -> Result<()> {
    for hook in &reg.config.webhooks {
        let secret = std::env::var(&hook.secret_env).ok().filter(|s| !s.is_empty()).with_context(|| {
            format!("webhook {}: ${} (its secret_env) is not set", hook.url, hook.secret_env)
        })?;
        let (reg, url) = (reg.clone(), hook.url.clone());
        std::thread::Builder::new()
            .name("cairn-webhook".into())
            .spawn(move || deliver_forever(&reg, &url, secret.as_bytes()))?;
    }
    Ok(())
}

/// The bytes the signature covers: `{timestamp}.{body}`.
pub fn signed_payload(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut payload = format!("{timestamp}.").into_bytes();
    payload.extend_from_slice(body);
    payload
}

/// `Cairn-Signature`'s value: `sha256=` and the HMAC's lowercase hex.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&signed_payload(timestamp, body));
    format!("sha256={}", crate::store::hex(&mac.finalize().into_bytes()))
}

fn deliver_forever(reg: &Registry, url: &str, secret: &[u8]) {
    let http = match reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(http) => http,
        Err(e) => return tracing::error!(error = %e, url, "webhook client failed to start; no deliveries"),
    };
    super::follower::follow(reg, url, |_, event, claim| {
        Ok(deliver(&http, url, secret, event, &|| claim.still_mine(), claim.renew))
    })
}

/// POSTs one event until the receiver acknowledges it (true), while
/// `still_mine` renews this node's claim at least every `renew` through
/// the waits; false once the claim is another node's.
fn deliver(
    http: &reqwest::blocking::Client,
    url: &str,
    secret: &[u8],
    event: &Event,
    still_mine: &dyn Fn() -> bool,
    renew: Duration,
) -> bool {
    let body = serde_json::to_vec(event).expect("an event serializes");
    let mut wait = FIRST_RETRY;
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        // Signed afresh each attempt: the timestamp is when it was sent.
        let now = chrono::Utc::now().timestamp();
        let sent = http
            .post(url)
            .header("Content-Type", "application/json")
            .header("Cairn-Event-Id", event.id)
            .header("Cairn-Event", &event.event)
            .header("Cairn-Timestamp", now)
            .header("Cairn-Signature", signature(secret, now, &body))
            .body(body.clone())
            .send();
        match sent {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => {
                tracing::warn!(status = %r.status(), url, id = event.id, attempt, "webhook refused the event")
            }
            Err(e) => tracing::warn!(error = %e, url, id = event.id, attempt, "webhook delivery failed"),
        }
        let until = std::time::Instant::now() + wait;
        loop {
            if !still_mine() {
                return false;
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(renew));
        }
        wait = (wait * 2).min(MAX_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_over_timestamp_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?");
        let payload = signed_payload(0, b"what do ya want for nothing?");
        assert_eq!(payload, b"0.what do ya want for nothing?");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let rfc = crate::store::hex(&mac.finalize().into_bytes());
        assert_eq!(rfc, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_ne!(sig, format!("sha256={rfc}"), "the timestamp is signed too");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
    }
}
