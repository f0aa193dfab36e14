//! One module per group of subcommands. Each turns parsed arguments into calls on the
//! library crates and prints results; none holds protocol logic.

pub mod channel;
mod channel_bucket;
pub mod demo;
mod demo_engines;
mod demo_nodes;
pub mod feed;
pub mod files;
pub mod hub;
pub mod login;
pub mod node;
mod passcode;
pub mod task;

mod access;
mod credentials;
pub mod node_status_view;
