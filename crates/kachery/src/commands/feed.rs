//! `kachery feed create|append|read|watch` (SPEC §16): thin calls on the daemon's feed
//! routes. The daemon holds the feed keys and verifies everything it receives; this module
//! only parses arguments and prints messages, one JSON line each.

use std::collections::HashSet;

use anyhow::Context;
use clap::{Args, Subcommand};
use kachery_client::LocalClient;
use kachery_client::local_api::feeds::{MAX_WAIT_MS, ReadQuery, ReadResponse};
use kachery_protocol::uri::{FeedUri, KacheryUri};
use kachery_protocol::{ChannelName, NodeId};
use serde_json::Value;

use crate::commands::access;
use crate::exit::Failure;

#[derive(Debug, Subcommand)]
pub enum FeedCommand {
    /// Create a feed owned by this node and print its feed:// URI
    #[command(
        long_about = "Create a feed owned by this node and print its feed:// URI.\n\n\
        The feed's private key stays in the node directory (feeds/<feedId>.pem, 0600); only \
        this node can append. With --name, running it again prints the same feed."
    )]
    Create(FeedCreateArgs),

    /// Sign and append JSON objects to a subfeed of a feed this node owns; prints the
    /// subfeed's new message count
    Append(FeedAppendArgs),

    /// Print a subfeed's messages, one JSON object per line
    #[command(
        long_about = "Print a subfeed's messages, one JSON object per line.\n\n\
        Messages of other nodes' feeds are fetched through the node's channels (from the \
        owner, any node holding a verified copy, or the bucket) and verified before they \
        are kept. Without --follow, stops once --wait-ms pass without news; exits 3 when \
        nothing at all was found, 4 when the node has requestFeeds on no channel. Refused \
        messages (gap, fork, bad signature) are reported on stderr."
    )]
    Read(FeedReadArgs),

    /// Follow several subfeeds at once, one JSON line per message naming its subfeed
    Watch(FeedWatchArgs),
}

#[derive(Debug, Args)]
pub struct FeedCreateArgs {
    /// A local name; the same name gives the same feed
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct FeedAppendArgs {
    /// Feed id or feed:// URI
    pub feed: String,
    /// Subfeed name
    pub subfeed: String,
    /// Messages: each a JSON object
    #[arg(required = true)]
    pub messages: Vec<String>,
}

#[derive(Debug, Args)]
pub struct FeedReadArgs {
    /// feed://<feedId>/<subfeed>
    pub uri: String,
    /// First message number to print
    #[arg(long, default_value_t = 0)]
    pub position: u64,
    /// Keep printing new messages until interrupted
    #[arg(long)]
    pub follow: bool,
    /// Without --follow: stop after this long without a new message (ms)
    #[arg(long, default_value_t = 2_000)]
    pub wait_ms: u64,
    /// Follow on this channel only [default: every channel with requestFeeds]
    #[arg(long)]
    pub channel: Option<String>,
    /// Print number and timestamp with each message: {"messageNumber","timestamp","message"}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FeedWatchArgs {
    /// feed://<feedId>/<subfeed> URIs to follow
    #[arg(required = true)]
    pub uris: Vec<String>,
    /// First message number of every subfeed
    #[arg(long, default_value_t = 0)]
    pub position: u64,
}

pub async fn run(command: FeedCommand) -> anyhow::Result<()> {
    let daemon = daemon()?;
    match command {
        FeedCommand::Create(args) => {
            let created = daemon.create_feed(args.name.as_deref()).await?;
            println!("{}", created.uri);
            Ok(())
        }
        FeedCommand::Append(args) => append(&daemon, args).await,
        FeedCommand::Read(args) => read(&daemon, args).await,
        FeedCommand::Watch(args) => watch(&daemon, args).await,
    }
}

fn daemon() -> anyhow::Result<LocalClient> {
    access::local_daemon()?.ok_or_else(|| {
        Failure::unavailable("the node daemon is not running; start it with `kachery node start`")
            .into()
    })
}

async fn append(daemon: &LocalClient, args: FeedAppendArgs) -> anyhow::Result<()> {
    let feed_id = match KacheryUri::parse(&args.feed) {
        Ok(KacheryUri::Feed(uri)) => {
            if let Some(named) = uri
                .subfeed
                .as_deref()
                .filter(|named| *named != args.subfeed)
            {
                return Err(Failure::usage(format!(
                    "{:?} names subfeed {named:?} but the SUBFEED argument is {:?}; give the \
                     feed as feed://<feedId> and the subfeed once",
                    args.feed, args.subfeed
                ))
                .into());
            }
            uri.feed_id
        }
        _ => NodeId::parse(&args.feed).map_err(|_| {
            Failure::usage(format!(
                "{:?} is neither a feed id nor a feed:// URI",
                args.feed
            ))
        })?,
    };
    let mut messages = Vec::with_capacity(args.messages.len());
    for (idx, text) in args.messages.iter().enumerate() {
        let message: Value = serde_json::from_str(text)
            .map_err(|err| Failure::usage(format!("message {} is not JSON: {err}", idx + 1)))?;
        if !message.is_object() {
            return Err(Failure::usage(format!("message {} is not a JSON object", idx + 1)).into());
        }
        messages.push(message);
    }
    let appended = daemon
        .append_feed_messages(&feed_id, &args.subfeed, messages)
        .await
        .context("failed to append")?;
    println!("{}", appended.message_count);
    Ok(())
}

/// A `feed://<feedId>/<subfeed>` URI; the subfeed is required here.
fn subfeed_uri(text: &str) -> anyhow::Result<(NodeId, String)> {
    match KacheryUri::parse(text) {
        Ok(KacheryUri::Feed(FeedUri {
            feed_id,
            subfeed: Some(subfeed),
        })) => Ok((feed_id, subfeed)),
        Ok(_) => Err(Failure::usage(format!(
            "{text:?} names no subfeed: expected feed://<feedId>/<subfeed>"
        ))
        .into()),
        Err(err) => Err(Failure::usage(err.to_string()).into()),
    }
}

async fn read(daemon: &LocalClient, args: FeedReadArgs) -> anyhow::Result<()> {
    let (feed_id, subfeed) = subfeed_uri(&args.uri)?;
    let channel = match &args.channel {
        Some(name) => {
            Some(ChannelName::parse(name).map_err(|err| Failure::usage(err.to_string()))?)
        }
        None => None,
    };
    let wait_ms = if args.follow {
        MAX_WAIT_MS
    } else {
        args.wait_ms.min(MAX_WAIT_MS)
    };
    let mut query = ReadQuery {
        position: args.position,
        max: None,
        wait_ms,
        channel,
    };
    let mut reported = HashSet::new();
    loop {
        let response = daemon
            .read_feed_messages(&feed_id, &subfeed, &query)
            .await
            .context("failed to read the subfeed")?;
        report_rejections(&response, &mut reported);
        if response.messages.is_empty() && !args.follow {
            if response.message_count == 0 && query.position == 0 {
                return Err(Failure::new(
                    crate::exit::FailureKind::NotFound,
                    format!(
                        "no messages of {} within {} ms: the subfeed is empty, or its owner and \
                     every replica are offline and nothing is in the bucket yet",
                        args.uri, wait_ms
                    ),
                )
                .into());
            }
            return Ok(());
        }
        for message in &response.messages {
            let line = if args.json {
                serde_json::to_string(message).expect("messages serialize")
            } else {
                serde_json::to_string(&message.message).expect("messages serialize")
            };
            print_line(&line)?;
            query.position = message.message_number + 1;
        }
    }
}

async fn watch(daemon: &LocalClient, args: FeedWatchArgs) -> anyhow::Result<()> {
    let mut subfeeds = Vec::new();
    for text in &args.uris {
        subfeeds.push((text.clone(), subfeed_uri(text)?));
    }
    let mut follows = tokio::task::JoinSet::new();
    for (uri, (feed_id, subfeed)) in subfeeds {
        let daemon = daemon.clone();
        let position = args.position;
        follows.spawn(async move {
            let mut query = ReadQuery {
                position,
                max: None,
                wait_ms: MAX_WAIT_MS,
                channel: None,
            };
            let mut reported = HashSet::new();
            loop {
                let response = daemon
                    .read_feed_messages(&feed_id, &subfeed, &query)
                    .await?;
                report_rejections(&response, &mut reported);
                for message in &response.messages {
                    let line = serde_json::json!({
                        "uri": uri,
                        "messageNumber": message.message_number,
                        "message": message.message,
                    });
                    print_line(&line.to_string())?;
                    query.position = message.message_number + 1;
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(joined) = follows.join_next().await {
        joined.context("a watch task failed")??;
    }
    Ok(())
}

fn print_line(line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

/// Prints each refusal once on stderr; they never stop the read.
fn report_rejections(response: &ReadResponse, reported: &mut HashSet<(i64, Option<u64>, String)>) {
    for rejection in &response.rejections {
        let key = (
            rejection.at,
            rejection.message_number,
            rejection.code.clone(),
        );
        if reported.insert(key) {
            let number = rejection
                .message_number
                .map_or_else(String::new, |number| format!(" {number}"));
            eprintln!(
                "kachery: warning: rejected message{number} ({}) from {}: {}",
                rejection.code, rejection.source, rejection.detail
            );
        }
    }
}
