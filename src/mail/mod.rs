//! Mail to people (SPEC section 19): every message is appended to the
//! data directory's `outbox.jsonl` first (`outbox.rs`, durable, what an
//! operator reads without a mail server); with `[mail] smtp` a thread of
//! `serve` sends the outbox on in order (`deliver.rs`). `notify.rs` mails
//! a package's owners when a version of it is published, yanked or
//! unyanked, and when its owners change, unless they opted out.

pub mod deliver;
pub mod notify;
pub mod outbox;
