//! The command line: every subcommand and flag, with its help text. Parsing only; the work
//! happens in `commands::*`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kachery",
    version,
    about = "Share scientific data between labs through channels",
    long_about = "Share scientific data between labs through channels.\n\n\
        A hub knows people, nodes and channels and issues short-lived credentials; nodes keep \
        a local content-addressed store and move bytes through each channel's bucket.\n\n\
        Exit codes: 0 ok, 1 other failure, 2 usage or invalid URI, 3 not found, 4 denied, \
        5 integrity, 6 timeout or unavailable."
)]
pub struct Cli {
    /// Log more (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run or manage a hub
    #[command(subcommand)]
    Hub(HubCommand),

    /// Run or manage this machine's node
    #[command(subcommand)]
    Node(NodeCommand),

    /// Create channels and grant roles on a hub (needs an API token)
    #[command(subcommand)]
    Channel(ChannelCommand),

    /// Get an API token from a hub and remember it for this hub URL
    Login(LoginArgs),

    /// Add files to the local store and print their sha1:// URIs
    Store(StoreArgs),

    /// Fetch a file into the local store, through the node's channels if needed
    Load(LoadArgs),

    /// Write a file's bytes to standard output
    Cat(CatArgs),

    /// Create, append to, read and follow signed feeds
    #[command(subcommand)]
    Feed(crate::commands::feed::FeedCommand),

    /// Run a whole network (hub and two nodes) on this machine and share a file end to end
    Demo(DemoArgs),

    /// Ask a channel to run a task, or check on a task request
    #[command(subcommand)]
    Task(TaskCommand),
}

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Run the hub in the foreground
    Serve(HubServeArgs),
    /// Print the default hub configuration (TOML)
    PrintDefaultConfig,
    /// Re-encrypt channel secrets under a new master key (stop the hub first)
    #[command(
        long_about = "Re-encrypt every channel secret from the current master key \
        (master_key_file, KACHERY_HUB_MASTER_KEY, or the dev key in the data directory) to \
        the key in --new-key-file, in one transaction.\n\nStop every hub process first. \
        Afterwards, put the new key where the old one was and start the hub. If it is \
        interrupted, run it again: rows already under the new key are skipped. Bucket URLs and broker tokens issued under \
        the old key stop working; nodes fetch new ones."
    )]
    RotateKey(HubRotateKeyArgs),
}

#[derive(Debug, Args)]
pub struct HubRotateKeyArgs {
    /// Configuration file (TOML); default <data-dir>/hub.toml when it exists
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// State directory of the hub [default: ./kachery-hub-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// File holding the new master key: base64 of 32 random bytes, mode 0600
    #[arg(long)]
    pub new_key_file: PathBuf,
}

#[derive(Debug, Args)]
pub struct HubServeArgs {
    /// Configuration file (TOML); default <data-dir>/hub.toml when it exists
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long)]
    pub bind: Option<SocketAddr>,

    /// Public origin used in links and signed requests [default: http://<bind>]
    #[arg(long)]
    pub public_url: Option<String>,

    /// State directory (database, embedded bucket, dev master key) [default: ./kachery-hub-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Let anyone sign in as any e-mail; refused unless bound to loopback
    #[arg(long)]
    pub dev_login: bool,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the node daemon in the foreground
    Start(NodeStartArgs),

    /// Print this node's id (creates the key pair on first use)
    Id,

    /// Show the daemon's state: channels, effective roles, token expiry, transfers
    Status(NodeStatusArgs),

    /// Prove this node's key to the hub: print the registration link, or submit it with --api
    Register(NodeRegisterArgs),

    /// Ask to use a channel with the given roles, or change the roles asked for (needs an API token)
    Join(NodeJoinArgs),
}

#[derive(Debug, Args)]
pub struct NodeStartArgs {
    /// Hub URL; remembered in node.toml
    #[arg(long, env = "KACHERY_HUB_URL")]
    pub hub: Option<String>,

    /// E-mail of the person who owns this node; remembered in node.toml
    #[arg(long, env = "KACHERY_NODE_OWNER")]
    pub owner: Option<String>,

    /// Human-readable label shown on the hub (1–40 characters); remembered in node.toml
    #[arg(long)]
    pub label: Option<String>,

    /// Local API port on 127.0.0.1 (0 picks a free one) [default: 20431]
    #[arg(long, env = "KACHERY_NODE_PORT")]
    pub port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct NodeStatusArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Ask the daemon to reconcile with the hub first
    #[arg(long)]
    pub refresh: bool,
}

#[derive(Debug, Args)]
pub struct NodeRegisterArgs {
    /// Label to register under [default: the node's configured label]
    #[arg(long)]
    pub label: Option<String>,

    /// Submit the registration with your API token instead of printing a link
    #[arg(long)]
    pub api: bool,

    /// Print JSON
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub hub: HubAccessArgs,
}

#[derive(Debug, Args)]
pub struct NodeJoinArgs {
    /// Channel to join
    pub channel: String,

    /// Roles this node asks for, comma-separated [default: requestFiles,requestFeeds,requestTasks]
    #[arg(long)]
    pub roles: Option<String>,

    /// Passcode from the channel owner, giving its roles; repeat for several
    #[arg(long = "passcode", value_name = "PASSCODE")]
    pub passcodes: Vec<String>,

    #[command(flatten)]
    pub hub: HubAccessArgs,
}

/// How a command that acts as a person reaches the hub.
#[derive(Debug, Args, Clone)]
pub struct HubAccessArgs {
    /// Hub URL [default: the node's configured hub]
    #[arg(long = "hub", env = "KACHERY_HUB_URL")]
    pub hub_url: Option<String>,

    /// API token [default: the token `kachery login` saved for this hub]
    #[arg(long, env = "KACHERY_HUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Where a new channel's pub-sub runs. Secrets are read from files, never from flags.
#[derive(Debug, Clone, Args)]
pub struct PubsubArgs {
    /// Pub-sub backend: embedded (the hub's broker), nats or ably
    #[arg(long, default_value = "embedded", value_parser = ["embedded", "nats", "ably"])]
    pub pubsub: String,
    /// NATS server URL (nats://host:4222), repeatable; with --pubsub nats
    #[arg(long = "nats-server", value_name = "URL")]
    pub nats_servers: Vec<String>,
    /// Public key (A…) of the NATS account the channel's users belong to
    #[arg(long, value_name = "ACCOUNT")]
    pub nats_account: Option<String>,
    /// File holding the account's signing seed (SA…); stored encrypted by the hub
    #[arg(long, value_name = "PATH")]
    pub nats_seed_file: Option<std::path::PathBuf>,
    /// File holding the Ably API key (appId.keyId:secret); with --pubsub ably
    #[arg(long, value_name = "PATH")]
    pub ably_key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Create a channel owned by you, on the hub's embedded bucket and broker, or your own
    /// S3 or GCS bucket and NATS server or Ably app
    Create {
        /// Channel name: 3–40 characters, segments of letters, digits, '_' or '-' joined by '.'
        name: String,
        #[command(flatten)]
        pubsub: PubsubArgs,
        #[command(flatten)]
        bucket: ChannelBucketArgs,
        #[command(flatten)]
        hub: HubAccessArgs,
    },
    /// Grant roles on your channel to a node (replaces earlier grants to that node)
    Grant {
        /// Your channel
        channel: String,
        /// The node's 64-hex id (`kachery node id` on that machine)
        node_id: String,
        /// The e-mail of the node's owner
        owner: String,
        /// Comma-separated roles: requestFiles, provideFiles, requestFeeds, provideFeeds,
        /// requestTasks, provideTasks (use `channel revoke` to withdraw all)
        roles: String,
        #[command(flatten)]
        hub: HubAccessArgs,
    },
    /// Withdraw every role granted to a node on your channel
    Revoke {
        /// Your channel
        channel: String,
        /// The node's 64-hex id
        node_id: String,
        /// The e-mail of the node's owner
        owner: String,
        #[command(flatten)]
        hub: HubAccessArgs,
    },
    /// List the nodes of your channel with requested, granted and effective roles
    Members {
        /// Your channel
        channel: String,
        #[command(flatten)]
        hub: HubAccessArgs,
    },
    /// Mint, list or revoke passcodes that give roles on your channel
    #[command(subcommand)]
    Passcode(PasscodeCommand),
}

#[derive(Debug, Subcommand)]
pub enum PasscodeCommand {
    /// Mint a passcode; it is printed this once and stored only as a keyed hash
    Create {
        /// Your channel
        channel: String,
        /// Comma-separated roles the passcode gives
        roles: String,
        /// Start of the code, up to 16 of a-z, 0-9 and '-' [default: kachery]
        #[arg(long)]
        prefix: Option<String>,
        /// Note for yourself, shown in the passcode list
        #[arg(long)]
        label: Option<String>,
        /// Lifetime from now, e.g. 30m, 12h or 7d [default: no expiry]
        #[arg(long)]
        expires_in: Option<String>,
        /// How many memberships may enter it [default: no limit]
        #[arg(long)]
        max_uses: Option<i64>,
        #[command(flatten)]
        hub: HubAccessArgs,
    },
    /// List the passcodes of your channel: hints, uses, expiry and state
    List {
        /// Your channel
        channel: String,
        #[command(flatten)]
        hub: HubAccessArgs,
    },
    /// Revoke a passcode; nodes that entered it lose its roles at once
    Revoke {
        /// Your channel
        channel: String,
        /// The passcode's id from `kachery channel passcode list`
        id: i64,
        #[command(flatten)]
        hub: HubAccessArgs,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Hub URL
    #[arg(long, env = "KACHERY_HUB_URL")]
    pub hub: String,

    /// Sign in on another device: show a code to enter at <hub>/device
    #[arg(long)]
    pub device: bool,

    /// Print the sign-in address without trying to open a browser
    #[arg(long)]
    pub no_browser: bool,

    /// On a dev-login hub: get a token for this e-mail without a provider
    #[arg(long)]
    pub dev_email: Option<String>,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Files to add
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,

    /// Store as cache: may be evicted when the store is over its size limit
    #[arg(long)]
    pub cache: bool,

    /// Print JSON lines instead of URIs
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// sha1:// URI to fetch
    pub uri: String,

    /// Copy the file here once it is in the store; into a directory, under the URI's name
    #[arg(short = 'o', long = "dest", visible_alias = "out")]
    pub dest: Option<PathBuf>,

    /// Only ask on these channels (repeatable) [default: every channel of this node]
    #[arg(long = "channel")]
    pub channels: Vec<String>,

    /// Print JSON events instead of a progress bar
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    /// sha1:// URI to print
    pub uri: String,

    /// First byte to print
    #[arg(long)]
    pub start: Option<u64>,

    /// Byte after the last one to print
    #[arg(long)]
    pub end: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Share this file instead of generated data
    #[arg(long, conflicts_with = "size")]
    pub file: Option<PathBuf>,

    /// Bytes of seeded pseudo-random data to generate [default: 50000000, three chunks]
    #[arg(long)]
    pub size: Option<u64>,

    /// Leave the hub and nodes running and print how to use them
    #[arg(long)]
    pub keep: bool,

    /// Print one JSON object instead of the step log
    #[arg(long)]
    pub json: bool,

    /// Work here instead of a fresh temporary directory
    #[arg(long)]
    pub dir: Option<PathBuf>,

    #[command(flatten)]
    pub engines: DemoEngineArgs,
}

/// Scale-out engines for `kachery demo` instead of the embedded ones
/// (`scripts/demo-engines.sh` starts them and passes these).
#[derive(Debug, Args)]
pub struct DemoEngineArgs {
    /// Hub database, e.g. postgres://postgres@127.0.0.1:5432/test [default: SQLite in the work directory]
    #[arg(long, value_name = "URL", env = "KACHERY_DEMO_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Put the channel on this S3-compatible endpoint (path style), e.g. http://127.0.0.1:9000
    #[arg(long, value_name = "URL", env = "KACHERY_DEMO_S3_ENDPOINT")]
    pub s3_endpoint: Option<url::Url>,

    /// Bucket on the S3 endpoint
    #[arg(
        long,
        value_name = "NAME",
        env = "KACHERY_DEMO_S3_BUCKET",
        requires = "s3_endpoint"
    )]
    pub s3_bucket: Option<String>,

    /// Access key id on the S3 endpoint; the secret is read from KACHERY_DEMO_S3_SECRET
    #[arg(
        long,
        value_name = "ID",
        env = "KACHERY_DEMO_S3_ACCESS_KEY_ID",
        requires = "s3_endpoint"
    )]
    pub s3_access_key_id: Option<String>,

    /// Signing region of the S3 endpoint
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Run the channel's pub-sub on this NATS server in JWT mode, e.g. nats://127.0.0.1:4222;
    /// the account's signing seed is read from KACHERY_DEMO_NATS_SEED
    #[arg(long, value_name = "URL", env = "KACHERY_DEMO_NATS_URL")]
    pub nats_url: Option<String>,

    /// Public key (A…) of the NATS account the demo channel's users belong to
    #[arg(
        long,
        value_name = "ACCOUNT",
        env = "KACHERY_DEMO_NATS_ACCOUNT",
        requires = "nats_url"
    )]
    pub nats_account: Option<String>,
}

/// Where a new channel keeps its objects.
#[derive(Debug, Args)]
pub struct ChannelBucketArgs {
    /// Bucket backend: embedded (the hub's own), s3 or gcs [default: embedded]
    #[arg(long = "bucket", value_name = "BACKEND")]
    pub backend: Option<String>,

    /// JSON file with the bucket settings (s3: endpoint, region, bucket, prefix,
    /// pathStyle, accessKeyId, publicBaseUrl; gcs: bucket, prefix, endpoint,
    /// publicBaseUrl); see the README
    #[arg(long, value_name = "FILE", requires = "backend")]
    pub bucket_config: Option<PathBuf>,

    /// File holding the bucket secret: the S3 secret access key, or the GCS
    /// service-account key file. Read from a file so it never shows in `ps`
    #[arg(long, value_name = "FILE", requires = "backend")]
    pub bucket_secret_file: Option<PathBuf>,

    /// How nodes read: presigned (short-lived URLs from the hub) or public (the
    /// bucket's publicBaseUrl, readable by anyone knowing a hash) [default: presigned]
    #[arg(long, value_name = "MODE")]
    pub read_mode: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run a function through the node's channels and print its result JSON
    #[command(
        long_about = "Run a function through the node's channels and print its \
        result JSON.\n\nA pure calculation is answered from a channel's cache when a \
        verified result exists; otherwise a provider with a worker for the function runs \
        it. A query always asks providers and falls back to the last cached result when \
        none answers. An action runs at most once and prints nothing. Needs the \
        requestTasks role. Exit codes: 3 no provider and no cached result, 4 denied, 5 a \
        result failed verification, 6 timeout or no link, 1 the function failed."
    )]
    Run(TaskRunArgs),
    /// Show a task request started on this node (by its request id)
    Status(TaskStatusArgs),
}

#[derive(Debug, Args)]
pub struct TaskRunArgs {
    /// Function id, e.g. `lab.spikes.count`
    pub function: String,

    /// Keyword arguments as a JSON object
    #[arg(long, default_value = "{}")]
    pub kwargs: String,

    /// pure-calculation, query or action
    #[arg(long = "type", default_value = "pure-calculation")]
    pub task_type: String,

    /// Only ask on these channels (repeatable) [default: every channel of this node]
    #[arg(long = "channel")]
    pub channels: Vec<String>,

    /// Print each status change as a JSON line instead of only the result
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TaskStatusArgs {
    /// The request id shown by `task run --json`
    pub request_id: String,

    /// Wait until the request ends
    #[arg(long)]
    pub wait: bool,

    /// Print JSON
    #[arg(long)]
    pub json: bool,
}
