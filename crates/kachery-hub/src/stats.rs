//! Per-channel usage counters (SPEC §8.1 `stats_counters`), moved only by node-API requests
//! that passed authentication and succeeded, so nobody can inflate another channel's stats.

use kachery_protocol::node_api::NodeRequest;

use crate::app::AppState;
use crate::error::error_chain;

/// The scope kind of channel counters; the scope is the channel name (never reused).
pub const CHANNEL_SCOPE: &str = "channel";

/// Counts one successful node-API request against its channel, if it names one. A failed
/// count is logged and never fails the request it describes.
pub async fn count_node_request(state: &AppState, request: &NodeRequest) {
    let (channel, counters): (_, Vec<(&str, i64)>) = match request {
        NodeRequest::GetPubsubCredential(get) => (&get.channel, vec![("pubsubCredentials", 1)]),
        NodeRequest::CreateUploadUrls(create) => (
            &create.channel,
            vec![
                ("uploadUrlCalls", 1),
                ("uploadUrlItems", create.items.len() as i64),
            ],
        ),
        NodeRequest::CreateDownloadUrls(create) => (
            &create.channel,
            vec![
                ("downloadUrlCalls", 1),
                ("downloadUrlItems", create.keys.len() as i64),
            ],
        ),
        NodeRequest::ReportCorruptObject(report) => (&report.channel, vec![("corruptReports", 1)]),
        _ => return,
    };
    if let Err(error) = state
        .db
        .bump_counters(CHANNEL_SCOPE, channel.as_str(), &counters)
        .await
    {
        tracing::warn!(%channel, error = %error_chain(&error), "failed to count a node request");
    }
}
