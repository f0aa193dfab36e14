//! How a load fails: [`LoadError`], one variant per SPEC §15.4 error code, each naming
//! what the user can act on (the URI, the channels tried, the missing role).

use kachery_protocol::node_api::ErrorDetails;
use kachery_protocol::{ChannelName, FileUri, Role};

/// Why [`crate::FileExchange::load`] could not deliver a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// No bucket copy and no provider claimed the file within the no-claim timeout.
    #[error("no provider on channel(s) {} has {uri}", list(channels_tried))]
    NotFound {
        uri: FileUri,
        channels_tried: Vec<ChannelName>,
    },

    /// The file is not in any bucket and no channel lets this node ask for it.
    #[error(
        "no channel grants this node the {missing_role} role needed to request files \
         (channels: {}); ask a channel owner to grant it",
        list(channels)
    )]
    Denied {
        missing_role: Role,
        channels: Vec<ChannelName>,
    },

    /// The node has no channel it may use; `requested` lists the channels the caller
    /// narrowed the load to (empty when it did not).
    #[error("{}", no_channels_message(requested))]
    NoChannels { requested: Vec<ChannelName> },

    /// Downloaded bytes failed verification twice, or a manifest does not describe the
    /// file. Nothing unverified was kept.
    #[error("integrity check failed for {uri}: {detail}")]
    Integrity { uri: FileUri, detail: String },

    /// Providers claimed the file but failed or stalled through every attempt.
    #[error("gave up on {uri} after {attempts} provider attempt(s): {detail}")]
    Timeout {
        uri: FileUri,
        attempts: u32,
        detail: String,
    },

    /// The hub or every channel link is unreachable right now.
    #[error("file exchange unavailable: {detail}")]
    Unavailable { detail: String },

    /// The local store failed; the chain says why.
    #[error("local store failed to {action}")]
    Store {
        action: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl LoadError {
    /// The stable error code of SPEC §15.4 (`store` for local store failures).
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::NotFound { .. } => "not_found",
            LoadError::Denied { .. } | LoadError::NoChannels { .. } => "denied",
            LoadError::Integrity { .. } => "integrity",
            LoadError::Timeout { .. } => "timeout",
            LoadError::Unavailable { .. } => "unavailable",
            LoadError::Store { .. } => "store",
        }
    }

    /// The process exit code of SPEC §2.2 for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            LoadError::NotFound { .. } => 3,
            LoadError::Denied { .. } | LoadError::NoChannels { .. } => 4,
            LoadError::Integrity { .. } => 5,
            LoadError::Timeout { .. } | LoadError::Unavailable { .. } => 6,
            LoadError::Store { .. } => 1,
        }
    }

    /// Machine-readable details for the local API's `error{code, message, details}`.
    pub fn details(&self) -> ErrorDetails {
        let mut details = ErrorDetails::new();
        let names = |channels: &[ChannelName]| {
            serde_json::Value::from(channels.iter().map(|c| c.to_string()).collect::<Vec<_>>())
        };
        match self {
            LoadError::NotFound {
                uri,
                channels_tried,
            } => {
                details.insert("uri".into(), uri.to_string().into());
                details.insert("channels".into(), names(channels_tried));
            }
            LoadError::Denied {
                missing_role,
                channels,
            } => {
                details.insert("missingRole".into(), missing_role.name().into());
                details.insert("channels".into(), names(channels));
            }
            LoadError::NoChannels { requested } => {
                details.insert("channels".into(), names(requested));
            }
            LoadError::Integrity { uri, .. } => {
                details.insert("uri".into(), uri.to_string().into());
            }
            LoadError::Timeout { uri, attempts, .. } => {
                details.insert("uri".into(), uri.to_string().into());
                details.insert("attempts".into(), (*attempts).into());
            }
            LoadError::Unavailable { .. } | LoadError::Store { .. } => {}
        }
        details
    }

    pub(crate) fn store(
        action: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        LoadError::Store {
            action,
            source: Box::new(source),
        }
    }
}

fn list(channels: &[ChannelName]) -> String {
    if channels.is_empty() {
        return "(none)".to_owned();
    }
    channels
        .iter()
        .map(ChannelName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn no_channels_message(requested: &[ChannelName]) -> String {
    if requested.is_empty() {
        "this node has no channel with effective roles: join one with \
         `kachery node join CHANNEL` and ask its owner to grant requestFiles"
            .to_owned()
    } else {
        format!(
            "this node has no effective roles on channel(s) {}: check the names with \
             `kachery node status` or drop --channel",
            list(requested)
        )
    }
}

#[cfg(test)]
mod tests {
    use kachery_protocol::Sha1Hash;

    use super::*;

    #[test]
    fn not_found_names_every_channel_and_maps_to_exit_3() {
        let uri = FileUri::new(Sha1Hash::of(b"x"), None, None);
        let channels = vec![
            ChannelName::parse("lab.one").unwrap(),
            ChannelName::parse("lab.two").unwrap(),
        ];
        let error = LoadError::NotFound {
            uri,
            channels_tried: channels,
        };
        assert!(
            error.to_string().contains("channel(s) lab.one, lab.two"),
            "{error}"
        );
        assert_eq!((error.code(), error.exit_code()), ("not_found", 3));
    }
}
