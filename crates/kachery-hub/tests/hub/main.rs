//! Integration tests of the hub: a real server on 127.0.0.1:0, real SQLite files in
//! temporary directories, and the real kachery-client over HTTP.

mod broker;
mod common;
mod lifecycle;
mod node_api;
mod registration;
mod roles;
mod visibility;
