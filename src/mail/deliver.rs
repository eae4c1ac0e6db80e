//! Sends the outbox on (`[mail] smtp`): a thread reads `outbox.jsonl` after
//! the byte offset kept in `outbox.sent`, sends each message that has an
//! address, and moves the offset past it (written atomically) only once
//! the server accepted it; a refusal or an unreachable server is retried
//! with backoff, so a message is sent at least once and in order.

use anyhow::{Context, Result};
use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::registry::Registry;

/// The offset file beside the outbox.
const SENT: &str = "outbox.sent";
/// How often the outbox is looked at when nothing is due.
const LOOK_AGAIN: Duration = Duration::from_millis(500);
/// The longest wait between retries of a failing server.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Starts the sender when `[mail] smtp` names a server; a URL or sender
/// that cannot be used fails `serve` at once.
pub fn start(reg: &Arc<Registry>) -> Result<()> {
    let Some(url) = reg.config.mail.smtp.clone() else { return Ok(()) };
    let transport = SmtpTransport::from_url(&url).with_context(|| format!("[mail] smtp = {url:?}"))?.build();
    let from = sender(reg)?;
    let data = reg.data.clone();
    std::thread::Builder::new().name("cairn-mail".into()).spawn(move || {
        let mut backoff = Duration::from_secs(1);
        loop {
            match send_due(&data, &transport, &from) {
                Ok(0) => std::thread::sleep(LOOK_AGAIN),
                Ok(_) => backoff = Duration::from_secs(1),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), retry_in = ?backoff, "sending mail failed; retried");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    })?;
    Ok(())
}

/// `[mail] from`, else `cairn@{host of the public URL}`.
fn sender(reg: &Registry) -> Result<Mailbox> {
    let from = match &reg.config.mail.from {
        Some(from) => from.clone(),
        None => {
            let url = reg.config.public_url();
            let host =
                url.split("://").nth(1).unwrap_or(&url).split(['/', ':']).next().unwrap_or("localhost");
            format!("cairn <cairn@{host}>")
        }
    };
    from.parse().with_context(|| format!("[mail] from = {from:?} is not an address"))
}

/// Sends every complete message after the offset; returns how many lines it went past.
fn send_due(data: &Path, transport: &SmtpTransport, from: &Mailbox) -> Result<usize> {
    let (outbox, sent) = (data.join(super::outbox::FILE), data.join(SENT));
    let offset: usize = std::fs::read_to_string(&sent).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let bytes = match std::fs::read(&outbox) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).context("reading the outbox"),
    };
    let mut at = offset.min(bytes.len());
    let mut done = 0;
    // Only whole lines: one being appended waits for its newline.
    while let Some(end) = bytes[at..].iter().position(|b| *b == b'\n') {
        let line = &bytes[at..at + end];
        if let Some(message) = message(line, from)? {
            transport.send(&message).context("the SMTP server refused the message")?;
        }
        at += end + 1;
        done += 1;
        write_offset(&sent, at)?;
    }
    Ok(done)
}

fn write_offset(path: &Path, at: usize) -> Result<()> {
    crate::fsutil::write_atomic(path, at.to_string().as_bytes()).context("recording the sent offset")
}

/// The mail of one outbox line; `None` for a line without an address.
fn message(line: &[u8], from: &Mailbox) -> Result<Option<Message>> {
    #[derive(serde::Deserialize)]
    struct Line {
        to: Option<String>,
        subject: String,
        body: String,
    }
    let Ok(line) = serde_json::from_slice::<Line>(line) else {
        tracing::warn!("an outbox line is not a message; skipped");
        return Ok(None);
    };
    let Some(to) = line.to.and_then(|to| to.parse::<Mailbox>().ok()) else { return Ok(None) };
    let message = Message::builder().from(from.clone()).to(to).subject(line.subject).body(line.body)?;
    Ok(Some(message))
}
