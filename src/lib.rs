//! cairn: a static-index, content-addressed package registry.
//! See ARCHITECTURE.md for the map of these modules.

pub mod access_log;
pub mod archive;
pub mod audit;
pub mod cdn;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod derive;
pub mod effect;
pub mod events;
pub mod fsck;
pub mod fsutil;
pub mod identity;
pub mod index;
pub mod jobs;
pub mod layout;
pub mod log;
pub mod mem;
pub mod merge;
pub mod migrate;
pub mod name;
pub mod npm;
pub mod outbox;
pub mod package_files;
pub mod proposal_pages;
pub mod publish;
pub mod registry;
pub mod search;
pub mod server;
pub mod sign;
pub mod site;
pub mod store;
pub mod upstream;
pub mod words;
