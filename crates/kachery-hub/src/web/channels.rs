//! `/channels/{name}` and the forms posted from it (SPEC §12). The channel's owner and
//! admins see backends with secret fingerprints, the channel test, members and grants
//! with a checkbox per role, passcodes, stats and the audit log; the owner of a member
//! node sees only their own memberships; anyone else sees name, owner and whether it is
//! deleted (SPEC §10.3). Changes go through the user-API functions.

use std::sync::Arc;

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::hub_views::{ChannelTestResponse, CreatePasscodeRequest, TestReport};
use kachery_protocol::user_api::{GrantRequest, PutSecretRequest, SecretValue};
use kachery_protocol::{Email, NodeId, RoleSet};
use serde::Deserialize;

use super::form::{self, Fields, FormErrors, RoleBox, role_boxes, role_names};
use super::{Layout, OrPage, PageResult, render, see_other, when};
use crate::app::AppState;
use crate::auth::AuthedUser;
use crate::db::ChannelRecord;
use crate::error::ApiResult;
use crate::extract::{ApiJson, SecretJson};
use crate::time::now_ms;
use crate::user_api::{
    self, admin, channel_test, find_channel, grants, is_owner_or_admin, passcodes,
};
use crate::web_auth::{BrowserSession, SessionForm};

/// Audit entries per page of the channel page.
const AUDIT_PAGE: i64 = 20;

#[derive(Template)]
#[template(path = "channel.html")]
struct ChannelPage {
    layout: Layout,
    name: String,
    owner: String,
    deleted: bool,
    created: String,
    is_owner: bool,
    /// Owner or admin: the full view.
    full: Option<FullView>,
    /// Memberships of the viewer's own nodes (a member node's owner).
    own_memberships: Vec<OwnMembership>,
    errors: FormErrors,
    minted: Option<MintedPasscode>,
    test: Option<TestView>,
    grant_node: String,
    grant_owner: String,
    grant_boxes: Vec<RoleBox>,
    mint_boxes: Vec<RoleBox>,
}

struct FullView {
    bucket_backend: String,
    read_mode: &'static str,
    pubsub_backend: String,
    secrets: Vec<SecretRow>,
    members: Vec<MemberRow>,
    other_grants: Vec<GrantRow>,
    passcodes: Vec<PasscodeRow>,
    stats: Vec<(String, String)>,
    audit: Vec<AuditRow>,
    audit_next: Option<String>,
}

struct SecretRow {
    kind: String,
    fingerprint: String,
    hint: String,
    updated: String,
}

struct MemberRow {
    node_id: String,
    short_id: String,
    owner: String,
    label: String,
    last_seen: String,
    requested: String,
    granted_boxes: Vec<RoleBox>,
    effective: String,
    ungranted: bool,
}

struct GrantRow {
    node_id: String,
    short_id: String,
    owner: String,
    granted: String,
}

struct PasscodeRow {
    id: i64,
    hint: String,
    label: String,
    roles: String,
    uses: String,
    expires: String,
    state: String,
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    target: String,
}

struct OwnMembership {
    node_label: String,
    node_id: String,
    requested: String,
    effective: String,
}

struct MintedPasscode {
    code: String,
    roles: String,
}

struct TestView {
    bucket: TestHalf,
    pubsub: TestHalf,
}

struct TestHalf {
    ok: bool,
    steps: Vec<(String, bool, u64, String)>,
}

impl From<TestReport> for TestHalf {
    fn from(report: TestReport) -> Self {
        TestHalf {
            ok: report.ok,
            steps: report
                .steps
                .into_iter()
                .map(|step| {
                    let note = step.error.or(step.warning).unwrap_or_default();
                    (step.name, step.ok, step.latency_ms, note)
                })
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ChannelQuery {
    audit: Option<String>,
}

/// What a POST handler hands back to the page besides its errors.
#[derive(Default)]
struct Extras {
    errors: FormErrors,
    minted: Option<MintedPasscode>,
    test: Option<ChannelTestResponse>,
    grant_node: String,
    grant_owner: String,
    grant_roles: Option<RoleSet>,
    mint_roles: Option<RoleSet>,
    audit_cursor: Option<String>,
}

/// `GET /channels/{name}[?audit=cursor]`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    session: BrowserSession,
    Path(name): Path<String>,
    Query(query): Query<ChannelQuery>,
) -> PageResult {
    let extras = Extras {
        audit_cursor: query.audit,
        ..Extras::default()
    };
    channel_page(&state, &session, &name, extras).await
}

async fn channel_page(
    state: &AppState,
    session: &BrowserSession,
    name: &str,
    extras: Extras,
) -> PageResult {
    let layout = Layout::signed_in(state, session);
    let user = &session.user;
    let channel = find_channel(state, name).await.or_page(&layout)?;
    let full = if is_owner_or_admin(user, &channel) {
        Some(
            full_view(state, user, &channel, extras.audit_cursor.as_deref())
                .await
                .or_page(&layout)?,
        )
    } else {
        None
    };
    let own_memberships = if full.is_none() {
        own_memberships(state, user, &channel)
            .await
            .or_page(&layout)?
    } else {
        Vec::new()
    };

    let status = if extras.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = ChannelPage {
        layout,
        name: channel.name.to_string(),
        owner: channel.owner.to_string(),
        deleted: channel.deleted,
        created: when(channel.created_at),
        is_owner: user.email == channel.owner,
        full,
        own_memberships,
        errors: extras.errors,
        minted: extras.minted,
        test: extras.test.map(|test| TestView {
            bucket: test.bucket.into(),
            pubsub: test.pubsub.into(),
        }),
        grant_node: extras.grant_node,
        grant_owner: extras.grant_owner,
        grant_boxes: role_boxes(extras.grant_roles.unwrap_or(RoleSet::REQUEST_ONLY)),
        mint_boxes: role_boxes(extras.mint_roles.unwrap_or(RoleSet::REQUEST_ONLY)),
    };
    Ok(render(status, &page))
}

async fn full_view(
    state: &AppState,
    user: &AuthedUser,
    channel: &ChannelRecord,
    audit_cursor: Option<&str>,
) -> ApiResult<FullView> {
    let secrets = state.db.secrets_of(channel.id).await?;
    let members = state.db.members_of(channel.id).await?;
    let grants = state.db.grants_of(channel.id).await?;
    let now = now_ms();
    let passcodes = state.db.passcodes_of(channel.id).await?;
    let stats = admin::channel_stats(state, user, channel.name.as_str()).await?;
    let page = admin::Page {
        limit: Some(AUDIT_PAGE),
        cursor: audit_cursor.map(str::to_owned),
    };
    let audit = admin::audit_page(state, user, channel.name.as_str(), &page).await?;

    let is_member = |grant: &crate::db::GrantRecord| {
        members
            .iter()
            .any(|member| member.node_id == grant.node_id && member.owner == grant.owner)
    };
    let other_grants = grants
        .iter()
        .filter(|grant| !is_member(grant))
        .map(|grant| GrantRow {
            node_id: grant.node_id.to_string(),
            short_id: grant.node_id.short(),
            owner: grant.owner.to_string(),
            granted: role_names(grant.granted),
        })
        .collect();
    let mut stat_rows = vec![
        ("members".to_owned(), stats.n_members.to_string()),
        ("grants".to_owned(), stats.n_grants.to_string()),
        (
            "active passcodes".to_owned(),
            stats.n_active_passcodes.to_string(),
        ),
    ];
    stat_rows.extend(
        stats
            .counters
            .into_iter()
            .map(|counter| (counter.counter, counter.value.to_string())),
    );

    Ok(FullView {
        bucket_backend: channel.bucket_backend.clone(),
        read_mode: match channel.read_mode {
            kachery_protocol::node_api::ReadMode::Presigned => "presigned",
            kachery_protocol::node_api::ReadMode::Public => "public",
        },
        pubsub_backend: channel.pubsub_backend.clone(),
        secrets: secrets
            .iter()
            .map(|secret| SecretRow {
                kind: secret.kind.to_string(),
                fingerprint: secret.fingerprint.clone(),
                hint: secret.hint.clone(),
                updated: format!("{} by {}", when(secret.updated_at), secret.updated_by),
            })
            .collect(),
        members: members
            .iter()
            .map(|member| MemberRow {
                node_id: member.node_id.to_string(),
                short_id: member.node_id.short(),
                owner: member.owner.to_string(),
                label: member.label.to_string(),
                last_seen: member.last_report_at.map_or_else(|| "never".into(), when),
                requested: role_names(member.requested),
                granted_boxes: role_boxes(member.granted),
                effective: role_names(member.effective),
                ungranted: member.granted.is_empty(),
            })
            .collect(),
        other_grants,
        passcodes: passcodes
            .iter()
            .map(|record| PasscodeRow {
                id: record.id,
                hint: record.hint.clone(),
                label: record.label.clone().unwrap_or_default(),
                roles: role_names(record.roles),
                uses: match record.max_uses {
                    Some(max) => format!("{} of {max}", record.use_count),
                    None => record.use_count.to_string(),
                },
                expires: record.expires_at.map_or_else(|| "never".into(), when),
                state: record.state(now).replace('_', " "),
            })
            .collect(),
        stats: stat_rows,
        audit: audit
            .items
            .into_iter()
            .map(|entry| AuditRow {
                at: when(entry.at),
                actor: entry.actor,
                action: entry.action,
                target: entry.target.unwrap_or_default(),
            })
            .collect(),
        audit_next: audit.next_cursor,
    })
}

async fn own_memberships(
    state: &AppState,
    user: &AuthedUser,
    channel: &ChannelRecord,
) -> ApiResult<Vec<OwnMembership>> {
    let mut rows = Vec::new();
    for node in state.db.nodes_of(&user.email).await? {
        if let Some(membership) = state
            .db
            .membership(&node.node_id, &node.owner, &channel.name)
            .await?
        {
            rows.push(OwnMembership {
                node_label: node.label.to_string(),
                node_id: node.node_id.to_string(),
                requested: role_names(membership.requested),
                effective: role_names(membership.effective),
            });
        }
    }
    Ok(rows)
}

/// `POST /channels/{name}/grants {node_id, owner, role…}`: sets a grant; no roles
/// withdraws it.
pub async fn grant(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let node_text = form::field(&form, "node_id").to_owned();
    let owner_text = form::field(&form, "owner").to_owned();
    let roles = form::roles(&form, "role");

    let mut errors = FormErrors::new();
    let node_id = NodeId::parse(&node_text)
        .map_err(|error| errors.add("grant-node", format!("Node id: {error}")))
        .ok();
    let owner = Email::parse(&owner_text)
        .map_err(|error| errors.add("grant-owner", format!("Owner: {error}")))
        .ok();
    let (Some(node_id), Some(owner)) = (node_id, owner) else {
        let extras = Extras {
            errors,
            grant_node: node_text,
            grant_owner: owner_text,
            grant_roles: Some(roles),
            ..Extras::default()
        };
        return channel_page(&state, &session, &name, extras).await;
    };

    let path = Path((name.clone(), node_id.to_string(), owner.to_string()));
    if roles.is_empty() {
        // Nothing ticked: the same as revoking; no grant to remove is fine here.
        let revoked = grants::delete(State(state.clone()), session.user.clone(), path).await;
        match revoked {
            Ok(_) => {}
            Err(error) if error.code == ErrorCode::NotFound => {}
            Err(error) => return Err(error).or_page(&layout),
        }
    } else {
        let _granted = grants::put(
            State(state.clone()),
            session.user.clone(),
            path,
            ApiJson(GrantRequest { roles }),
        )
        .await
        .or_page(&layout)?;
    }
    Ok(see_other(&format!("/channels/{name}#members")))
}

/// `POST /channels/{name}/grants/revoke {node_id, owner}`.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let path = Path((
        name.clone(),
        form::field(&form, "node_id").to_owned(),
        form::field(&form, "owner").to_owned(),
    ));
    grants::delete(State(state.clone()), session.user.clone(), path)
        .await
        .or_page(&layout)?;
    Ok(see_other(&format!("/channels/{name}#members")))
}

/// `POST /channels/{name}/passcodes {prefix, label, role…, valid_hours, max_uses}`: the
/// page comes back with the new code, shown this once.
pub async fn mint_passcode(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let roles = form::roles(&form, "role");
    let mut errors = FormErrors::new();
    let number = |field: &str, errors: &mut FormErrors, what: &str| {
        let text = form::field(&form, field);
        if text.is_empty() {
            return None;
        }
        match text.parse::<i64>() {
            Ok(value) if value > 0 => Some(value),
            _ => {
                errors.add(
                    &format!("mint-{field}"),
                    format!("{what}: enter a whole number above 0"),
                );
                None
            }
        }
    };
    let valid_hours = number("valid_hours", &mut errors, "Valid for");
    let max_uses = number("max_uses", &mut errors, "Uses");
    let request = CreatePasscodeRequest {
        prefix: Some(form::field(&form, "prefix").to_owned()).filter(|text| !text.is_empty()),
        label: Some(form::field(&form, "label").to_owned()).filter(|text| !text.is_empty()),
        roles,
        expires_at: valid_hours.map(|hours| now_ms() + hours * 3_600_000),
        max_uses,
    };

    let mut extras = Extras {
        mint_roles: Some(roles),
        ..Extras::default()
    };
    if errors.is_empty() {
        match passcodes::mint(&state, &session.user, &name, &request).await {
            Ok(created) => {
                extras.minted = Some(MintedPasscode {
                    code: created.passcode,
                    roles: role_names(created.view.roles),
                });
            }
            Err(error) if error.code == ErrorCode::ValidationFailed => {
                errors.add_api_error(&error, |_| "");
                // Field names of the API map onto the form's fields.
                errors = remap(errors);
            }
            Err(error) => return Err(error).or_page(&layout),
        }
    }
    extras.errors = errors;
    channel_page(&state, &session, &name, extras).await
}

/// The API names fields `prefix`, `roles`, …; the form's ids are `mint-prefix`, ….
fn remap(errors: FormErrors) -> FormErrors {
    let mut mapped = FormErrors::new();
    for (field, message) in errors.all() {
        let id = match field.as_str() {
            "prefix" => "mint-prefix",
            "label" => "mint-label",
            "roles" => "mint-roles",
            "maxUses" => "mint-max_uses",
            "expiresAt" => "mint-valid_hours",
            _ => "",
        };
        mapped.add(id, message.clone());
    }
    mapped
}

/// `POST /channels/{name}/passcodes/{id}/revoke`.
pub async fn revoke_passcode(
    State(state): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    SessionForm { session, .. }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    passcodes::delete(
        State(state.clone()),
        session.user.clone(),
        Path((name.clone(), id)),
    )
    .await
    .or_page(&layout)?;
    Ok(see_other(&format!("/channels/{name}#passcodes")))
}

/// `POST /channels/{name}/secrets {kind, value}`: the value is never shown again.
pub async fn replace_secret(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    SessionForm { session, form }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let kind = form::field(&form, "kind").to_owned();
    let value = SecretValue::new(form::field(&form, "value"));
    let stored = user_api::secrets::put(
        State(state.clone()),
        session.user.clone(),
        Path((name.clone(), kind)),
        SecretJson(PutSecretRequest { value }),
    )
    .await;
    match stored {
        Ok(Json(_)) => Ok(see_other(&format!("/channels/{name}#backends"))),
        Err(error)
            if matches!(
                error.code,
                ErrorCode::SecretInvalid | ErrorCode::ValidationFailed
            ) =>
        {
            let mut errors = FormErrors::new();
            errors.add("secret-value", format!("Secret: {}", error.message));
            let extras = Extras {
                errors,
                ..Extras::default()
            };
            channel_page(&state, &session, &name, extras).await
        }
        Err(error) => Err(error).or_page(&layout),
    }
}

/// `POST /channels/{name}/test`: the page with each step's result.
pub async fn test(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    SessionForm { session, .. }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let response = channel_test::test_channel(&state, &session.user, &name)
        .await
        .or_page(&layout)?;
    let extras = Extras {
        test: Some(response),
        ..Extras::default()
    };
    channel_page(&state, &session, &name, extras).await
}

/// `POST /channels/{name}/delete`: soft delete; members lose every role at once.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    SessionForm { session, .. }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    user_api::channels::delete(
        State(state.clone()),
        session.user.clone(),
        Path(name.clone()),
    )
    .await
    .or_page(&layout)?;
    Ok(see_other(&format!("/channels/{name}")))
}

/// `POST /channels/{name}/restore`.
pub async fn restore(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    SessionForm { session, .. }: SessionForm<Fields>,
) -> PageResult {
    let layout = Layout::signed_in(&state, &session);
    let _restored = user_api::channels::restore(
        State(state.clone()),
        session.user.clone(),
        Path(name.clone()),
    )
    .await
    .or_page(&layout)?;
    Ok(see_other(&format!("/channels/{name}")))
}
