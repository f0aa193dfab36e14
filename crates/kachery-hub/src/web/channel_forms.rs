//! `/channels/new` and `/channels/join?node=…`: creating a channel (name, bucket and
//! pub-sub backends with their settings, read mode, and each backend's secret, which is
//! never echoed) and joining one with a node (requested roles, optional passcode).
//! Refusals come back beside the field they are about.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::node_api::ReadMode;
use kachery_protocol::user_api::{
    BucketSettings, CreateChannelRequest, JoinChannelRequest, NatsSettings, PubsubSettings,
    SecretKind, SecretValue,
};
use kachery_protocol::{ChannelName, RoleSet};
use serde::Deserialize;

use super::form::{self, Fields, FormErrors, RoleBox, role_boxes};
use super::{Layout, OrPage, PageResult, render, see_other};
use crate::app::AppState;
use crate::extract::{ApiJson, SecretJson};
use crate::user_api;
use crate::web_auth::{BrowserSession, SessionForm};

#[derive(Template)]
#[template(path = "channel_new.html")]
struct NewChannelPage {
    layout: Layout,
    errors: FormErrors,
    /// What was typed, shown again after a refusal (secrets never are).
    values: ChannelFormValues,
}

#[derive(Debug, Clone, Default)]
struct ChannelFormValues {
    name: String,
    bucket_backend: String,
    bucket_config: String,
    public_reads: bool,
    pubsub_backend: String,
    nats_servers: String,
    nats_account: String,
}

impl ChannelFormValues {
    fn read(form: &Fields) -> Self {
        let text = |key: &str| form::field(form, key).trim().to_owned();
        Self {
            name: text("name"),
            bucket_backend: text("bucket_backend"),
            bucket_config: text("bucket_config"),
            public_reads: form::field(form, "read_mode") == "public",
            pubsub_backend: text("pubsub_backend"),
            nats_servers: text("nats_servers"),
            nats_account: text("nats_account"),
        }
    }
}

/// The secret a backend needs, if any: the kind is implied by the backend chosen.
fn secret_kind_of(backend: &str) -> Option<SecretKind> {
    match backend {
        "s3" => Some(SecretKind::S3SecretAccessKey),
        "gcs" => Some(SecretKind::GcsServiceAccount),
        "nats" => Some(SecretKind::NatsAccountSeed),
        "ably" => Some(SecretKind::AblyApiKey),
        _ => None,
    }
}

#[derive(Template)]
#[template(path = "channel_join.html")]
struct JoinPage {
    layout: Layout,
    errors: FormErrors,
    nodes: Vec<(String, String, bool)>,
    channel: String,
    boxes: Vec<RoleBox>,
}

/// `GET /channels/new`.
pub async fn new_page(State(state): State<Arc<AppState>>, session: BrowserSession) -> PageResult {
    let page = NewChannelPage {
        layout: Layout::signed_in(&state, &session),
        errors: FormErrors::new(),
        values: ChannelFormValues::default(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// `POST /channels/new {name, bucket_backend, bucket_config, bucket_secret, read_mode,
/// pubsub_backend, nats_servers, nats_account, pubsub_secret}`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let values = ChannelFormValues::read(&form);
    let mut errors = FormErrors::new();

    let name = ChannelName::parse(&values.name)
        .map_err(|error| errors.add("name", format!("Name: {error}")))
        .ok();
    let bucket_config = match values.bucket_backend.as_str() {
        "" | "embedded" => None,
        _ if values.bucket_config.is_empty() => {
            errors.add(
                "bucket_config",
                "Bucket settings: required for an S3 or GCS bucket",
            );
            None
        }
        _ => serde_json::from_str::<serde_json::Value>(&values.bucket_config)
            .ok()
            .filter(serde_json::Value::is_object)
            .or_else(|| {
                errors.add("bucket_config", "Bucket settings: not a JSON object");
                None
            }),
    };
    let nats = (values.pubsub_backend == "nats").then(|| NatsSettings {
        servers: values
            .nats_servers
            .split(',')
            .map(str::trim)
            .filter(|server| !server.is_empty())
            .map(str::to_owned)
            .collect(),
        account: values.nats_account.clone(),
    });
    let mut secrets = BTreeMap::new();
    for (backend, field) in [
        (&values.bucket_backend, "bucket_secret"),
        (&values.pubsub_backend, "pubsub_secret"),
    ] {
        let value = form::field(&form, field);
        match secret_kind_of(backend) {
            Some(kind) if !value.is_empty() => {
                secrets.insert(kind, SecretValue::new(value));
            }
            Some(_) => errors.add(field, "Secret: required for this backend"),
            None if !value.is_empty() => {
                errors.add(
                    field,
                    "Secret: the embedded backend takes none; leave it empty",
                );
            }
            None => {}
        }
    }

    let page = |errors: FormErrors| NewChannelPage {
        layout: layout.clone(),
        errors,
        values: values.clone(),
    };
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page(errors)));
    };

    let request = CreateChannelRequest {
        name: name.clone(),
        bucket: Some(BucketSettings {
            backend: values.bucket_backend.clone(),
            config: bucket_config,
            read_mode: if values.public_reads {
                ReadMode::Public
            } else {
                ReadMode::Presigned
            },
        }),
        pubsub: Some(PubsubSettings {
            backend: values.pubsub_backend.clone(),
            nats,
        }),
        secrets,
    };
    let created = user_api::channels::create(
        State(state.clone()),
        session.user.clone(),
        SecretJson(request),
    )
    .await;
    match created {
        Ok(_) => Ok(see_other(&format!("/channels/{name}"))),
        Err(error) => {
            let field = match error.code {
                ErrorCode::ChannelExists => "name",
                ErrorCode::SecretInvalid
                    if ["s3SecretAccessKey", "gcsServiceAccount"]
                        .iter()
                        .any(|kind| error.message.contains(kind)) =>
                {
                    "bucket_secret"
                }
                ErrorCode::SecretInvalid => "pubsub_secret",
                _ if error.message.contains("nats.account") => "nats_account",
                _ if error.message.contains("nats") || error.message.contains("NATS") => {
                    "nats_servers"
                }
                _ if error.message.contains("readMode") => "read_mode",
                _ if error.message.contains("pubsub") => "pubsub_backend",
                _ if error.message.contains("bucket") => "bucket_config",
                ErrorCode::ValidationFailed => "",
                _ => return Err(error).or_page(&layout),
            };
            let mut errors = FormErrors::new();
            errors.add(field, error.message);
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page(errors)))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct JoinQuery {
    node: Option<String>,
    channel: Option<String>,
}

/// `GET /channels/join[?node=…&channel=…]`: the request roles are preselected.
pub async fn join_page(
    State(state): State<Arc<AppState>>,
    session: BrowserSession,
    Query(query): Query<JoinQuery>,
) -> PageResult {
    let selected = query.node.unwrap_or_default();
    let channel = query.channel.unwrap_or_default();
    join_form(
        &state,
        &session,
        FormErrors::new(),
        &selected,
        channel,
        RoleSet::REQUEST_ONLY,
    )
    .await
}

async fn join_form(
    state: &AppState,
    session: &BrowserSession,
    errors: FormErrors,
    selected: &str,
    channel: String,
    roles: RoleSet,
) -> PageResult {
    let layout = Layout::signed_in(state, session);
    let nodes = state
        .db
        .nodes_of(&session.user.email)
        .await
        .map_err(crate::error::ApiError::from)
        .or_page(&layout)?
        .into_iter()
        .map(|node| {
            let id = node.node_id.to_string();
            let chosen = id == selected;
            (
                id,
                format!("{} ({})", node.label, node.node_id.short()),
                chosen,
            )
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = JoinPage {
        layout,
        errors,
        nodes,
        channel,
        boxes: role_boxes(roles),
    };
    Ok(render(status, &page))
}

/// `POST /channels/join {node, channel, role…, passcode}`.
pub async fn join(
    State(state): State<Arc<AppState>>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let node_id = form::field(&form, "node").to_owned();
    let channel_text = form::field(&form, "channel").to_owned();
    let roles = form::roles(&form, "role");
    let passcode = form::field(&form, "passcode").to_owned();
    let mut errors = FormErrors::new();

    if node_id.is_empty() {
        errors.add("node", "Node: choose one of your nodes");
    }
    let channel = ChannelName::parse(&channel_text)
        .map_err(|error| errors.add("channel", format!("Channel: {error}")))
        .ok();
    if roles.is_empty() {
        errors.add("roles", "Roles: request at least one role");
    }
    let Some(channel) = channel.filter(|_| errors.is_empty()) else {
        return join_form(&state, &session, errors, &node_id, channel_text, roles).await;
    };

    let request = JoinChannelRequest {
        channel,
        requested_roles: roles,
        passcodes: if passcode.is_empty() {
            Vec::new()
        } else {
            vec![passcode]
        },
    };
    let joined = user_api::memberships::join(
        State(state.clone()),
        session.user.clone(),
        axum::extract::Path(node_id.clone()),
        ApiJson(request),
    )
    .await;
    match joined {
        Ok(_) => Ok(see_other(&format!("/nodes/{node_id}"))),
        Err(error) => {
            let field = match error.code {
                ErrorCode::ChannelNotFound | ErrorCode::AlreadyMember => "channel",
                ErrorCode::InvalidPasscode | ErrorCode::RateLimited => "passcode",
                ErrorCode::NotFound | ErrorCode::ValidationFailed => "node",
                _ => return Err(error).or_page(&layout),
            };
            errors.add(field, error.message);
            join_form(&state, &session, errors, &node_id, channel_text, roles).await
        }
    }
}
