//! The API test suite: one binary, one file per feature. Every test starts the real server on
//! an ephemeral loopback port with a temporary data dir (see `helpers.rs`) and talks HTTP to it.
#![allow(clippy::unwrap_used)]

mod fake_ai;
mod helpers;

mod admin;
mod ai;
mod ai_limits;
mod api_docs;
mod auth;
mod auth_abuse;
mod auth_limits;
mod backups;
mod cli;
mod cli_admin;
mod cli_data;
mod connections;
mod conversations;
mod crisis;
mod durability;
mod errors;
mod health;
mod http_conventions;
mod lifecycle;
mod scripts;
mod sync;
