//! `createUploadUrls`, `createDownloadUrls` and `reportCorruptObject`: presigned access
//! to a channel's bucket, and cleanup of objects that fail verification (SPEC §7.3, §7.5).
//!
//! Keys are only ever built by `BucketKey` constructors from validated fields, or parsed
//! and checked to belong to the request's channel.

use std::sync::Arc;

use axum::Json;
use kachery_bucket::{BucketBackend, BucketError, ReadMethod};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::bucket_key::{BucketKey, ObjectKind};
use kachery_protocol::limits::{MAX_BLOB_UPLOAD_BYTES, MAX_ITEMS_PER_CALL, PRESIGNED_URL_TTL_MS};
use kachery_protocol::node_api::{
    CreateDownloadUrlsRequest, CreateUploadUrlsRequest, DownloadUrls, DownloadUrlsResponse,
    ReadMode, ReportCorruptObjectRequest, ReportCorruptObjectResponse, UploadItem,
    UploadUrlsResponse,
};
use kachery_protocol::{ChannelName, Role, Sha1Hash};

use super::VerifiedRequest;
use super::credentials::effective_membership;
use crate::app::AppState;
use crate::db::ChannelRecord;
use crate::error::{ApiError, ApiResult};

/// Largest feed segment upload: 4 MiB.
const MAX_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Largest feed head or task result record: 4 KiB.
const MAX_RECORD_BYTES: u64 = 4 * 1024;
/// Most messages in one feed segment.
const MAX_SEGMENT_MESSAGES: u64 = 1_000;
/// How far back `object.corrupt` looks for the nodes that were issued upload URLs.
const UPLOADER_LOOKBACK_MS: i64 = 24 * 60 * 60 * 1000;

// FIXME: the 20,000 upload items per node per minute limit (SPEC §21) is not enforced.
pub async fn upload_urls(
    state: &AppState,
    request: &VerifiedRequest,
    create: &CreateUploadUrlsRequest,
) -> ApiResult<Json<UploadUrlsResponse>> {
    check_item_count(create.items.len())?;
    let membership = state
        .db
        .membership(&request.node.node_id, &request.node.owner, &create.channel)
        .await?;
    let effective = membership
        .as_ref()
        .map(|found| found.effective)
        .unwrap_or_default();

    // Every item is checked before anything is signed: one bad item refuses the batch.
    let mut planned = Vec::with_capacity(create.items.len());
    for (item_idx, item) in create.items.iter().enumerate() {
        let (role, key, size, max_size) = plan_upload(&create.channel, item)?;
        if !effective.contains(role) {
            return Err(ApiError::new(
                ErrorCode::MissingRole,
                format!(
                    "item {item_idx} needs role {role} in {}, but this node's effective roles are {effective}",
                    create.channel
                ),
            )
            .with_detail("role", role.name())
            .with_detail("item", item_idx));
        }
        if size > max_size {
            return Err(ApiError::validation(format!(
                "item {item_idx} is {size} bytes; this kind of object is at most {max_size} bytes"
            )));
        }
        planned.push((key, size));
    }
    let Some(membership) = membership else {
        return Ok(Json(UploadUrlsResponse {
            uploads: Vec::new(),
        }));
    };

    let bucket = bucket_of(state, &membership.channel).await?;
    let expires_at = request.now + PRESIGNED_URL_TTL_MS;
    let mut uploads = Vec::with_capacity(planned.len());
    for (key, size) in &planned {
        uploads.push(
            bucket
                .presign_put(key, *size, expires_at)
                .map_err(presign_failed)?,
        );
    }

    if !planned.is_empty() {
        let keys: Vec<&str> = planned.iter().map(|(key, _)| key.as_str()).collect();
        let total_bytes: u64 = planned.iter().map(|(_, size)| size).sum();
        let audit = request
            .actor()
            .audit("credential.upload", request.now, request.request_id.clone())
            .channel(membership.channel.id)
            .target(request.node.node_id)
            .details(
                serde_json::json!({ "keys": keys, "bytes": total_bytes, "expiresAt": expires_at }),
            );
        state.db.append_audit(audit).await?;
    }
    Ok(Json(UploadUrlsResponse { uploads }))
}

/// The role, key, declared size and size cap of one upload item (SPEC §11.2).
fn plan_upload(channel: &ChannelName, item: &UploadItem) -> ApiResult<(Role, BucketKey, u64, u64)> {
    Ok(match item {
        UploadItem::File { sha1, size } => (
            Role::ProvideFiles,
            BucketKey::blob(channel, sha1),
            *size,
            MAX_BLOB_UPLOAD_BYTES,
        ),
        UploadItem::TaskPayload { sha1, size } => (
            Role::ProvideTasks,
            BucketKey::blob(channel, sha1),
            *size,
            MAX_BLOB_UPLOAD_BYTES,
        ),
        UploadItem::FeedSegment {
            feed_id,
            subfeed_hash,
            start,
            end,
            size,
        } => {
            if end <= start || end - start > MAX_SEGMENT_MESSAGES {
                return Err(ApiError::validation(format!(
                    "feed segment {start}-{end} must hold 1 to {MAX_SEGMENT_MESSAGES} messages"
                )));
            }
            let key = BucketKey::feed_segment(channel, feed_id, subfeed_hash, *start, *end);
            (Role::ProvideFeeds, key, *size, MAX_SEGMENT_BYTES)
        }
        UploadItem::FeedHead {
            feed_id,
            subfeed_hash,
            size,
        } => {
            let key = BucketKey::feed_head(channel, feed_id, subfeed_hash);
            (Role::ProvideFeeds, key, *size, MAX_RECORD_BYTES)
        }
        UploadItem::TaskResult { task_hash, size } => (
            Role::ProvideTasks,
            BucketKey::task_result(channel, task_hash),
            *size,
            MAX_RECORD_BYTES,
        ),
    })
}

pub async fn download_urls(
    state: &AppState,
    request: &VerifiedRequest,
    create: &CreateDownloadUrlsRequest,
) -> ApiResult<Json<DownloadUrlsResponse>> {
    check_item_count(create.keys.len())?;
    let membership = effective_membership(state, request, &create.channel).await?;
    for key in &create.keys {
        check_key_channel(key, &create.channel)?;
    }
    if membership.channel.read_mode == ReadMode::Public {
        return Err(ApiError::validation(format!(
            "channel {} is public-read: read objects at the readBase of getNodeConfig",
            create.channel
        )));
    }

    let bucket = bucket_of(state, &membership.channel).await?;
    let expires_at = request.now + PRESIGNED_URL_TTL_MS;
    let mut downloads = Vec::with_capacity(create.keys.len());
    for key in &create.keys {
        downloads.push(DownloadUrls {
            key: key.clone(),
            get: bucket
                .presign_get(key, ReadMethod::Get, expires_at)
                .map_err(presign_failed)?,
            head: bucket
                .presign_get(key, ReadMethod::Head, expires_at)
                .map_err(presign_failed)?,
        });
    }
    Ok(Json(DownloadUrlsResponse { downloads }))
}

// FIXME: reports are only limited by the node-wide rate; a per-node limit on corrupt
// reports (SPEC §11.2) would bound the hub's verification reads.
pub async fn report_corrupt(
    state: &AppState,
    request: &VerifiedRequest,
    report: &ReportCorruptObjectRequest,
) -> ApiResult<Json<ReportCorruptObjectResponse>> {
    let membership = effective_membership(state, request, &report.channel).await?;
    let kind = check_key_channel(&report.key, &report.channel)?;
    let ObjectKind::Blob(expected_sha1) = kind else {
        // FIXME: feed segments, heads and task records are not verified by the hub yet;
        // readers still reject them, but the bad object stays until replaced.
        return Ok(Json(ReportCorruptObjectResponse { deleted: false }));
    };

    let bucket = bucket_of(state, &membership.channel).await?;
    let bytes = match bucket.get(&report.key, MAX_BLOB_UPLOAD_BYTES).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(Json(ReportCorruptObjectResponse { deleted: false })),
        // FIXME: whole large blobs left by the original kachery exceed one chunk and are
        // not verified here; matters only for legacy channels.
        Err(BucketError::ObjectTooLarge { .. }) => {
            return Ok(Json(ReportCorruptObjectResponse { deleted: false }));
        }
        Err(error) => {
            return Err(ApiError::internal(
                "failed to read a reported object",
                &error,
            ));
        }
    };
    if Sha1Hash::of(&bytes) == expected_sha1 {
        tracing::debug!(key = %report.key, "reported object verifies; kept");
        return Ok(Json(ReportCorruptObjectResponse { deleted: false }));
    }

    let deleted = bucket
        .delete(&report.key)
        .await
        .map_err(|error| ApiError::internal("failed to delete a corrupt object", &error))?;
    let since = request.now - UPLOADER_LOOKBACK_MS;
    let uploaders = state
        .db
        .uploaders_of(membership.channel.id, report.key.as_str(), since)
        .await?;
    let audit = request
        .actor()
        .audit("object.corrupt", request.now, request.request_id.clone())
        .channel(membership.channel.id)
        .target(&report.key)
        .details(serde_json::json!({
            "size": bytes.len(),
            "deleted": deleted,
            "uploadersLast24h": uploaders,
        }));
    state.db.append_audit(audit).await?;
    tracing::warn!(key = %report.key, n_uploaders = uploaders.len(), "deleted a corrupt object");
    Ok(Json(ReportCorruptObjectResponse { deleted }))
}

fn check_item_count(n_items: usize) -> ApiResult<()> {
    if n_items > MAX_ITEMS_PER_CALL {
        return Err(ApiError::bad_request(format!(
            "{n_items} items in one call; send at most {MAX_ITEMS_PER_CALL} per call"
        )));
    }
    Ok(())
}

/// The key's object kind, if the key lies in `channel`.
fn check_key_channel(key: &BucketKey, channel: &ChannelName) -> ApiResult<ObjectKind> {
    let (key_channel, kind) =
        BucketKey::parse(key.as_str()).map_err(|error| ApiError::validation(error.to_string()))?;
    if &key_channel != channel {
        return Err(ApiError::validation(format!(
            "key {key} belongs to channel {key_channel}, not {channel}"
        )));
    }
    Ok(kind)
}

/// The channel's bucket; a failure is the hub's or the channel owner's, never the node's.
async fn bucket_of(state: &AppState, channel: &ChannelRecord) -> ApiResult<Arc<dyn BucketBackend>> {
    state
        .backends
        .buckets
        .bucket_for(state.db.as_ref(), state.vault.cipher(), channel)
        .await
        .map_err(|error| ApiError::internal("the channel's bucket is not usable", &error))
}

fn presign_failed(error: BucketError) -> ApiError {
    ApiError::internal("failed to presign a bucket request", &error)
}
