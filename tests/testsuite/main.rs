//! The integration tests, one binary (as cargo's own tests/testsuite): the support
//! code is compiled once, and each area is a module. Run one area with
//! `cargo test --test testsuite crash::`.

mod support;

mod accounts;
mod advisories;
mod cargo;
mod cdn;
mod cli;
mod crash;
mod deprecate;
mod events;
mod faults;
mod feeds;
mod flaky;
mod fsck;
mod generated;
mod hostile;
mod identity;
mod invitations;
mod jobs;
mod log;
mod mail;
mod native_crates;
mod npm;
mod ops;
mod orgs;
mod postgres;
mod project;
mod proposals;
mod publish;
mod remotes;
mod retention;
mod s3;
mod schemas;
mod serving;
mod site;
mod site_search;
mod stats;
mod upstreams;
mod writers;
