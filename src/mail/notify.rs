//! Notifications (SPEC section 19, crates.io's publish notifications: a
//! stolen token is noticed): a thread follows the public registry's events
//! with a durable cursor of its own (`events::follower`, under [`CURSOR`];
//! of several servers, the one holding its claim) and puts a
//! mail to every owner of the package in the outbox for each publish, yank
//! and unyank; an owner change is mailed by [`owners_changed`]. Users who
//! opted out (`PATCH /api/v1/me {"notify": false}`) and users without an
//! address get none.

use anyhow::Result;
use std::sync::Arc;

use crate::db::{self, events, Conn, Space};
use crate::registry::Registry;

/// The notifications' cursor in the events' delivery table.
pub const CURSOR: &str = "mail:notifications";

pub fn start(reg: &Arc<Registry>) -> Result<()> {
    let reg = reg.clone();
    std::thread::Builder::new().name("cairn-notify".into()).spawn(move || follow(&reg))?;
    Ok(())
}

fn follow(reg: &Registry) {
    crate::events::follower::follow(reg, CURSOR, |conn, event, _| {
        mail_owners(reg, conn, event).map(|()| true)
    })
}

/// The mail of one event to the package's owners, if the event is one they hear of.
fn mail_owners(reg: &Registry, conn: &Conn, event: &events::Event) -> Result<()> {
    let (Some(version), verb) = (&event.version, event.event.as_str()) else { return Ok(()) };
    let what = match verb {
        "publish" => "published",
        "yank" => "yanked",
        "unyank" => "unyanked",
        _ => return Ok(()),
    };
    let name = &event.name;
    let subject = format!("{name} {version} was {what} on {}", reg.config.name);
    let body = format!(
        "{name} {version} was {what} on {} at {}.\n\n{}\n\nYou get this mail as an owner of {name}. \
         If you did not do this, revoke your tokens at once.\nTo stop these mails: PATCH /api/v1/me {{\"notify\": false}}, \
         or the dashboard.\n",
        reg.config.name,
        event.at,
        format_args!("{}{}", reg.config.public_url(), crate::layout::page_url(&reg.root.layout().version_page(name, version))),
    );
    send_to_owners(reg, conn, name, &subject, &body)
}

/// Mails the owners of `name` (as they are now, and `gone`, those just
/// removed) that its owners changed.
pub fn owners_changed(
    reg: &Registry,
    conn: &Conn,
    name: &str,
    added: &[String],
    gone: &[String],
) -> Result<()> {
    if reg.space != Space::Public {
        return Ok(());
    }
    let subject = format!("the owners of {name} changed on {}", reg.config.name);
    let list = |l: &[String]| if l.is_empty() { "-".to_string() } else { l.join(", ") };
    let body = format!(
        "The owners of {name} changed on {}.\nAdded: {}\nRemoved: {}\n\nTo stop these mails: PATCH /api/v1/me {{\"notify\": false}}, or the dashboard.\n",
        reg.config.name,
        list(added),
        list(gone)
    );
    send_to_owners(reg, conn, name, &subject, &body)?;
    for (login, email) in db::account::notified(conn, gone)? {
        crate::mail::outbox::send(&reg.data, Some(&login), Some(&email), &subject, &body)?;
    }
    Ok(())
}

fn send_to_owners(reg: &Registry, conn: &Conn, name: &str, subject: &str, body: &str) -> Result<()> {
    let owners = db::owners(conn, &Space::Public, name)?;
    for (login, email) in db::account::notified(conn, &owners)? {
        crate::mail::outbox::send(&reg.data, Some(&login), Some(&email), subject, body)?;
    }
    Ok(())
}
