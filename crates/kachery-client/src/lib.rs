//! HTTP clients for kachery's three APIs; they move requests and responses and hold no
//! business logic.
//!
//! - [`NodeApiClient`] ([`node_api`]): a node's signed requests to the hub's node API
//!   (SPEC §11), plus the registration envelope and link (SPEC §3.3).
//! - [`HubUserClient`] ([`user_api`]): a person's calls to the hub's user API with an API
//!   token (SPEC §10, §9.3).
//! - [`LocalClient`] ([`local_api`]): the CLI's calls to a node daemon's loopback API
//!   (SPEC §13.4), whose wire types in [`local_api::types`] the daemon serves too.
//!
//! All of them fail with [`ApiError`]. Each client owns one `reqwest::Client`, so clone
//! a client to share its connection pool. Plain requests time out after 30 s
//! ([`REQUEST_TIMEOUT`]); streamed loads and file reads only bound the wait for headers.
//! Wire types of the hub APIs come from `kachery_protocol`; none are redefined here.

pub mod error;
mod http;
pub mod local_api;
pub mod node_api;
mod registration;
pub mod user_api;

pub use error::ApiError;
pub use http::{REQUEST_TIMEOUT, display_url, origin_of};
pub use local_api::LocalClient;
pub use node_api::{NodeApiClient, now_ms, registration_envelope, registration_link};
pub use user_api::HubUserClient;
