//! The bucket part of `kachery channel create`: backend, settings file, secret file and
//! read mode turned into a create request. The hub checks the settings; this only reads
//! the files and refuses what cannot be sent.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use kachery_protocol::ChannelName;
use kachery_protocol::node_api::ReadMode;
use kachery_protocol::user_api::{BucketSettings, CreateChannelRequest, SecretKind, SecretValue};

use crate::cli::ChannelBucketArgs;
use crate::exit::Failure;

/// The create request for channel `name` with the bucket `args` describe.
pub fn create_request(
    name: ChannelName,
    args: &ChannelBucketArgs,
) -> anyhow::Result<CreateChannelRequest> {
    let read_mode = match args.read_mode.as_deref() {
        None | Some("presigned") => ReadMode::Presigned,
        Some("public") => ReadMode::Public,
        Some(other) => {
            return Err(Failure::usage(format!(
                "--read-mode {other:?} is unknown; use presigned or public"
            ))
            .into());
        }
    };
    let backend = args.backend.clone().unwrap_or_default();
    let secret_kind = match backend.as_str() {
        "" | "embedded" => None,
        "s3" => Some(SecretKind::S3SecretAccessKey),
        "gcs" => Some(SecretKind::GcsServiceAccount),
        other => {
            return Err(Failure::usage(format!(
                "--bucket {other:?} is unknown; use embedded, s3 or gcs"
            ))
            .into());
        }
    };

    let config = match &args.bucket_config {
        Some(path) => Some(read_json(path)?),
        None if secret_kind.is_some() => {
            return Err(Failure::usage(format!(
                "--bucket {backend} needs --bucket-config FILE with the bucket settings"
            ))
            .into());
        }
        None => None,
    };
    let mut secrets = BTreeMap::new();
    match (secret_kind, &args.bucket_secret_file) {
        (Some(kind), Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read the bucket secret {}", path.display()))?;
            // A trailing newline from `echo` or an editor is not part of an S3 key.
            let value = match kind {
                SecretKind::S3SecretAccessKey => text.trim().to_owned(),
                _ => text,
            };
            secrets.insert(kind, SecretValue::new(value));
        }
        (Some(kind), None) => {
            return Err(Failure::usage(format!(
                "--bucket {backend} needs --bucket-secret-file FILE holding the {kind}"
            ))
            .into());
        }
        (None, Some(_)) => {
            return Err(
                Failure::usage("--bucket-secret-file is only for s3 and gcs buckets").into(),
            );
        }
        (None, None) => {}
    }

    Ok(CreateChannelRequest {
        name,
        bucket: Some(BucketSettings {
            backend,
            config,
            read_mode,
        }),
        pubsub: None,
        secrets,
    })
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the bucket settings {}", path.display()))?;
    serde_json::from_str(&text).map_err(|error| {
        Failure::usage(format!(
            "bucket settings {} are not JSON: {error}",
            path.display()
        ))
        .into()
    })
}
