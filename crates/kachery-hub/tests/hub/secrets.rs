//! Channel secrets (SPEC §8.2, §10.3): write-only values, encrypted rows bound to their
//! channel, master-key rotation, and no value in any response, row or log line.
//!
//! Secrets go through plain HTTP here (the client has no call for them yet), which also
//! lets the tests keep every response body to search.

use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kachery_hub::keys::{DEV_MASTER_KEY_FILE, MasterKey};
use kachery_hub::vault::{Vault, VaultError};
use kachery_hub::{HubHandle, rotate_master_key};
use kachery_protocol::api_error::ErrorCode;
use kachery_protocol::user_api::{SecretKind, SecretView};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::*;

on_both_backends!(
    the_owner_sets_secrets_and_views_show_only_fingerprint_and_hint,
    others_can_neither_set_nor_see_secrets,
    a_ciphertext_moved_to_another_channel_does_not_decrypt,
    rotation_moves_every_secret_to_the_new_master_key,
    secret_values_never_reach_logs_responses_or_rows,
);

const S3_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY-s3-value-one";
const S3_KEY_2: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY-s3-value-two";
const ABLY_KEY: &str = "appId.keyId:ably-secret-value-three";
const ABLY_ONE: &str = "appId.keyId:ably-secret-value-one";
const ABLY_TWO: &str = "appId.keyId:ably-secret-value-two";

/// A user with a bearer token, speaking raw HTTP and keeping every response body.
struct RawUser {
    http: reqwest::Client,
    hub: url::Url,
    token: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl RawUser {
    async fn sign_in(hub: &HubHandle, address: &str, bodies: &Arc<Mutex<Vec<String>>>) -> Self {
        let http = reqwest::Client::new();
        let response: Value = http
            .post(hub.public_url().join("/api/v1/dev/token").unwrap())
            .json(&json!({ "email": address }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            http,
            hub: hub.public_url().clone(),
            token: response["token"].as_str().unwrap().to_owned(),
            bodies: bodies.clone(),
        }
    }

    /// Sends `body` to `path`; returns the status and the JSON reply.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.hub.join(path).unwrap())
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        self.bodies.lock().unwrap().push(text.clone());
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value)
    }

    async fn put_secret(&self, channel: &str, kind: &str, value: &str) -> (u16, Value) {
        let path = format!("/api/v1/channels/{channel}/secrets/{kind}");
        self.call(reqwest::Method::PUT, &path, Some(json!({ "value": value })))
            .await
    }

    async fn view(&self, channel: &str) -> Value {
        let path = format!("/api/v1/channels/{channel}");
        let (status, view) = self.call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{view}");
        view
    }

    async fn create(&self, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, "/api/v1/channels", Some(body))
            .await
    }
}

/// Settings of an S3 bucket nobody serves: enough for the hub to accept an S3 secret
/// (it builds the backend without any network I/O).
fn s3_bucket() -> Value {
    json!({
        "backend": "s3",
        "config": {
            "endpoint": "http://127.0.0.1:9", "region": "us-east-1", "bucket": "lab-keys",
            "pathStyle": true, "accessKeyId": "AKIDEXAMPLE", "allowHttp": true,
        },
    })
}

fn no_bodies() -> Arc<Mutex<Vec<String>>> {
    Arc::new(Mutex::new(Vec::new()))
}

fn fingerprint(value: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(value.as_bytes())[..4])
}

/// The master key a dev-login test hub generated in its data directory.
fn dev_master_key(env: &TestEnv) -> MasterKey {
    MasterKey::read_file(&env.path().join(DEV_MASTER_KEY_FILE)).unwrap()
}

/// A vault over a second connection to the test hub's database.
async fn open_vault(env: &TestEnv, master_key: &MasterKey) -> (Vault, ChannelIds) {
    let url = env.config().database_url();
    let backend = kachery_hub::db::Backend::of_url(&url).unwrap();
    let db = backend.open(&url).await.unwrap();
    (
        Vault::for_master_key(master_key, db.clone()),
        ChannelIds(db),
    )
}

/// Finds channel row ids by name.
struct ChannelIds(Arc<dyn kachery_hub::db::HubDb>);

impl ChannelIds {
    async fn channel_id(&self, name: &str) -> i64 {
        self.0
            .channel(&channel_name(name))
            .await
            .unwrap()
            .unwrap()
            .id
    }
}

/// Runs `sql` on the test hub's database and returns the first column of each row as
/// text; for statements without rows, an empty list.
async fn raw_sql(env: &TestEnv, backend: Backend, sql: &str) -> Vec<String> {
    let url = env.config().database_url();
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match backend {
        Backend::Sqlite => {
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let query = sqlx::query_scalar::<_, String>(sql);
            query.fetch_all(&mut connection).await.unwrap()
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            let query = sqlx::query_scalar::<_, String>(sql);
            query.fetch_all(&mut connection).await.unwrap()
        }
    }
}

/// Every byte of every file under `dir`, for searching the SQLite database (with its WAL).
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path.display().to_string(), bytes));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Asserts no stored byte and no row of the secrets or audit tables holds any of `values`.
async fn assert_not_stored(env: &TestEnv, backend: Backend, values: &[&str]) {
    let rows = raw_sql(
        env,
        backend,
        "SELECT ciphertext || ' ' || xnonce || ' ' || fingerprint || ' ' || hint \
         FROM channel_secrets UNION ALL SELECT details FROM audit_log",
    )
    .await;
    assert!(!rows.is_empty());
    for value in values {
        assert!(
            rows.iter().all(|row| !row.contains(value)),
            "{value} in a row"
        );
    }
    if backend == Backend::Sqlite {
        for (path, bytes) in files_under(env.path()) {
            for value in values {
                assert!(!contains(&bytes, value.as_bytes()), "{value} in {path}");
            }
        }
    }
}

async fn the_owner_sets_secrets_and_views_show_only_fingerprint_and_hint(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let bodies = no_bodies();
    let alice = RawUser::sign_in(&hub, "alice@example.org", &bodies).await;
    let (status, _) = alice.create(json!({ "name": "lab.keys" })).await;
    assert_eq!(status, 201);

    // Set: the reply is the masked view and nothing else.
    let (status, reply) = alice.put_secret("lab.keys", "ablyApiKey", ABLY_ONE).await;
    assert_eq!(status, 200, "{reply}");
    let view: SecretView = serde_json::from_value(reply.clone())?;
    assert_eq!(view.kind, SecretKind::AblyApiKey);
    assert_eq!(view.fingerprint, fingerprint(ABLY_ONE));
    assert_eq!(view.hint, "…-one");
    assert_eq!(view.updated_by.as_str(), "alice@example.org");
    let mut keys: Vec<_> = reply.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["fingerprint", "hint", "kind", "updatedAt", "updatedBy"]
    );

    // The channel view lists it the same way, through our client too.
    let client = sign_in(&hub, "alice@example.org").await;
    let channel = client.channel(&channel_name("lab.keys")).await?;
    assert_eq!(channel.secrets, Some(vec![view.clone()]));

    // Replace: a new fingerprint, and the audit log records both fingerprints.
    let (status, reply) = alice.put_secret("lab.keys", "ablyApiKey", ABLY_TWO).await;
    assert_eq!(status, 200);
    assert_eq!(reply["fingerprint"], fingerprint(ABLY_TWO));
    let audit = raw_sql(
        &env,
        backend,
        "SELECT action || ' ' || details FROM audit_log WHERE action LIKE 'secret.%' ORDER BY id",
    )
    .await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit[0].starts_with("secret.set "));
    assert!(audit[1].starts_with("secret.rotate "));
    assert!(audit[1].contains(&fingerprint(ABLY_ONE)) && audit[1].contains(&fingerprint(ABLY_TWO)));

    // Bad kinds and values are refused without echoing the value.
    let (status, reply) = alice.put_secret("lab.keys", "awsKey", ABLY_ONE).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let (status, reply) = alice
        .put_secret("lab.keys", "ablyApiKey", "too-short")
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (422, Some("secret_invalid"))
    );
    assert!(!reply.to_string().contains("too-short"));

    // Neither the database rows nor the database files hold a value.
    assert_not_stored(&env, backend, &[ABLY_ONE, ABLY_TWO]).await;
    hub.shutdown().await?;
    Ok(())
}

async fn others_can_neither_set_nor_see_secrets(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let bodies = no_bodies();
    let alice = RawUser::sign_in(&hub, "alice@example.org", &bodies).await;
    let bob = RawUser::sign_in(&hub, "bob@example.org", &bodies).await;
    let admin = RawUser::sign_in(&hub, "admin@example.org", &bodies).await;
    alice.create(json!({ "name": "lab.shared" })).await;
    alice.put_secret("lab.shared", "ablyApiKey", ABLY_KEY).await;

    // Bob owns a member node, so he sees backend kinds, but never secrets.
    let bob_client = sign_in(&hub, "bob@example.org").await;
    let bob_node = register_node(&hub, &bob_client, &node_key(40), "bob@example.org").await;
    bob_client
        .join(
            bob_node.node_id(),
            &channel_name("lab.shared"),
            roles("requestFiles"),
        )
        .await?;
    let view = bob.view("lab.shared").await;
    assert!(view.get("bucket").is_some());
    assert!(view.get("secrets").is_none(), "{view}");

    // Neither bob nor an admin may set one.
    for user in [&bob, &admin] {
        let (status, reply) = user.put_secret("lab.shared", "ablyApiKey", S3_KEY).await;
        assert_eq!(status, 403);
        assert_eq!(reply["error"]["code"], "not_owner");
    }

    // The admin sees fingerprints and hints (SPEC §10.3), and they are unchanged.
    let view = admin.view("lab.shared").await;
    assert_eq!(view["secrets"][0]["fingerprint"], fingerprint(ABLY_KEY));
    let anyone = sign_in(&hub, "carol@example.org").await;
    let carol_view = anyone.channel(&channel_name("lab.shared")).await?;
    assert!(carol_view.secrets.is_none() && carol_view.bucket.is_none());

    // A deleted channel takes no new secrets.
    let (status, _) = alice
        .call(reqwest::Method::DELETE, "/api/v1/channels/lab.shared", None)
        .await;
    assert_eq!(status, 204);
    let (status, reply) = alice.put_secret("lab.shared", "ablyApiKey", ABLY_KEY).await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (404, Some("channel_not_found"))
    );
    let refused = code_of(anyone.channel(&channel_name("no.such")).await);
    assert_eq!(refused, ErrorCode::ChannelNotFound);
    hub.shutdown().await?;
    Ok(())
}

async fn a_ciphertext_moved_to_another_channel_does_not_decrypt(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let bodies = no_bodies();
    let alice = RawUser::sign_in(&hub, "alice@example.org", &bodies).await;

    // Secrets given at creation are stored with the channel.
    let (status, view) = alice
        .create(json!({
            "name": "lab.first",
            "bucket": s3_bucket(),
            "secrets": { "s3SecretAccessKey": S3_KEY, "ablyApiKey": ABLY_KEY },
        }))
        .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["secrets"].as_array().unwrap().len(), 2);
    let (status, _) = alice
        .create(json!({
            "name": "lab.second",
            "bucket": s3_bucket(),
            "secrets": { "s3SecretAccessKey": S3_KEY_2 },
        }))
        .await;
    assert_eq!(status, 201);

    let (vault, lookup) = open_vault(&env, &dev_master_key(&env)).await;
    let first = lookup.channel_id("lab.first").await;
    let second = lookup.channel_id("lab.second").await;
    let kind = SecretKind::S3SecretAccessKey;
    assert_eq!(vault.decrypt(first, kind).await?.expose(), S3_KEY);
    assert_eq!(vault.decrypt(second, kind).await?.expose(), S3_KEY_2);
    assert_eq!(
        vault.decrypt(first, SecretKind::AblyApiKey).await?.expose(),
        ABLY_KEY
    );
    assert!(matches!(
        vault.decrypt(first, SecretKind::NatsAccountSeed).await,
        Err(VaultError::Missing { .. })
    ));

    // Copy the first channel's S3 row over the second's: the bytes are intact, but they
    // are bound to channel `first`, so they must not decrypt as `second`'s.
    raw_sql(
        &env,
        backend,
        &format!(
            "UPDATE channel_secrets SET \
             ciphertext = (SELECT ciphertext FROM channel_secrets \
                           WHERE channel_id = {first} AND kind = 's3SecretAccessKey'), \
             xnonce = (SELECT xnonce FROM channel_secrets \
                       WHERE channel_id = {first} AND kind = 's3SecretAccessKey') \
             WHERE channel_id = {second} AND kind = 's3SecretAccessKey'"
        ),
    )
    .await;
    let moved = vault.decrypt(second, kind).await;
    assert!(
        matches!(moved, Err(VaultError::Inauthentic { channel_id, .. }) if channel_id == second),
        "{moved:?}"
    );
    // Moved to another kind of the same channel: refused as well.
    raw_sql(
        &env,
        backend,
        &format!(
            "UPDATE channel_secrets SET \
             ciphertext = (SELECT ciphertext FROM channel_secrets \
                           WHERE channel_id = {first} AND kind = 's3SecretAccessKey'), \
             xnonce = (SELECT xnonce FROM channel_secrets \
                       WHERE channel_id = {first} AND kind = 's3SecretAccessKey') \
             WHERE channel_id = {first} AND kind = 'ablyApiKey'"
        ),
    )
    .await;
    assert!(matches!(
        vault.decrypt(first, SecretKind::AblyApiKey).await,
        Err(VaultError::Inauthentic { .. })
    ));
    assert_eq!(vault.decrypt(first, kind).await?.expose(), S3_KEY);
    hub.shutdown().await?;
    Ok(())
}

/// Writes a new master key file (mode 0600) and returns it loaded.
fn new_key_file(dir: &Path, seed: u8) -> (std::path::PathBuf, MasterKey) {
    use base64::Engine;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let path = dir.join(format!("new-{seed}.key"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode([seed; 32]);
    writeln!(file, "{text}").unwrap();
    let key = MasterKey::read_file(&path).unwrap();
    (path, key)
}

async fn rotation_moves_every_secret_to_the_new_master_key(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let addr = hub.local_addr();
    let bodies = no_bodies();
    let alice = RawUser::sign_in(&hub, "alice@example.org", &bodies).await;
    alice
        .create(json!({
            "name": "lab.rotate",
            "bucket": s3_bucket(),
            "secrets": { "ablyApiKey": ABLY_KEY, "s3SecretAccessKey": S3_KEY },
        }))
        .await;
    let before = alice.view("lab.rotate").await["secrets"].clone();
    hub.shutdown().await?;

    // Rotate with the hub stopped.
    let key_dir = tempfile::tempdir()?;
    let old_key = dev_master_key(&env);
    let (new_path, new_key) = new_key_file(key_dir.path(), 77);
    let report = rotate_master_key(&env.config(), &new_key).await?;
    assert_eq!((report.n_reencrypted, report.n_already_new), (2, 0));
    assert_ne!(report.old_key_id, report.new_key_id);

    // The new key decrypts, the old one no longer does.
    let (new_vault, lookup) = open_vault(&env, &new_key).await;
    let channel_id = lookup.channel_id("lab.rotate").await;
    let kind = SecretKind::S3SecretAccessKey;
    assert_eq!(new_vault.decrypt(channel_id, kind).await?.expose(), S3_KEY);
    let ably = new_vault
        .decrypt(channel_id, SecretKind::AblyApiKey)
        .await?;
    assert_eq!(ably.expose(), ABLY_KEY);
    let (old_vault, _) = open_vault(&env, &old_key).await;
    assert!(matches!(
        old_vault.decrypt(channel_id, kind).await,
        Err(VaultError::WrongKey { .. })
    ));
    let rotations = raw_sql(
        &env,
        backend,
        "SELECT actor FROM audit_log WHERE action = 'secret.rekey'",
    )
    .await;
    assert_eq!(rotations.len(), 2);

    // Running it again before the swap finds nothing left to do; the same key is refused.
    let again = rotate_master_key(&env.config(), &new_key).await?;
    assert_eq!((again.n_reencrypted, again.n_already_new), (0, 2));
    let same = rotate_master_key(&env.config(), &old_key).await;
    assert!(matches!(same, Err(kachery_hub::RotateKeyError::SameKey(_))));

    // Swap the key in and restart: views are unchanged and new secrets use the new key.
    std::fs::copy(&new_path, env.path().join(DEV_MASTER_KEY_FILE))?;
    let hub = env.spawn_hub_at(addr).await;
    let alice = RawUser::sign_in(&hub, "alice@example.org", &bodies).await;
    assert_eq!(alice.view("lab.rotate").await["secrets"], before);
    let (status, _) = alice
        .put_secret("lab.rotate", "natsAccountSeed", S3_KEY_2)
        .await;
    assert_eq!(status, 200);
    let seed = new_vault
        .decrypt(channel_id, SecretKind::NatsAccountSeed)
        .await?;
    assert_eq!(seed.expose(), S3_KEY_2);
    hub.shutdown().await?;
    Ok(())
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// Where this thread's log lines go while a test captures them.
    static CAPTURE: RefCell<Option<LogBuffer>> = const { RefCell::new(None) };
}

/// Writes each line to the buffer of the thread that logs it, if that thread captures.
struct ThreadCapture;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ThreadCapture {
    type Writer = Box<dyn std::io::Write>;

    fn make_writer(&'a self) -> Self::Writer {
        match CAPTURE.with(|capture| capture.borrow().clone()) {
            Some(buffer) => Box::new(buffer),
            None => Box::new(std::io::sink()),
        }
    }
}

/// Stops the capture on drop.
struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|capture| capture.borrow_mut().take());
    }
}

/// Captures every log line of this thread at TRACE into `buffer` until the guard drops.
///
/// One global subscriber, installed once, filters per event on whether the logging
/// thread captures. A scoped subscriber per test (`set_default`) is not enough: tracing
/// caches each call site's interest process-wide, and a call site first reached by a
/// test without a subscriber can stay disabled for the capturing test.
fn capture_logs(buffer: &LogBuffer) -> CaptureGuard {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{Layer, fmt};

    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // A dynamic filter: asked at every event, never cached per call site.
        let capturing = tracing_subscriber::filter::dynamic_filter_fn(|_, _| {
            CAPTURE.with(|capture| capture.borrow().is_some())
        });
        let layer = fmt::layer()
            .with_ansi(false)
            .with_span_events(fmt::format::FmtSpan::FULL)
            .with_writer(ThreadCapture)
            .with_filter(capturing);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test installs a global subscriber");
    });
    CAPTURE.with(|capture| *capture.borrow_mut() = Some(buffer.clone()));
    CaptureGuard
}

/// Captures the hub's logs at TRACE while secrets are set at creation, set, replaced,
/// refused, shown and rotated, then searches the logs, every response body and the
/// database for each value. The capture is this test's thread: the hub's tasks run on
/// it (`#[tokio::test]` is single-threaded); only sqlx's SQLite worker threads, which see
/// nothing but ciphertext, are outside it.
async fn secret_values_never_reach_logs_responses_or_rows(backend: Backend) -> TestResult {
    let logs = LogBuffer::default();
    let _capture = capture_logs(&logs);

    let values = [
        "created-with-the-channel-0001",
        "set-by-put-0002-xxxxxxxxxx",
        "replaced-by-put-0003-xxxxxx",
        "misplaced-in-the-body-0004",
        "misplaced-at-creation-0005",
        "short-0006",
    ];
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let addr = hub.local_addr();
    let bodies = no_bodies();
    let alice = RawUser::sign_in(&hub, "alice@example.org", &bodies).await;
    let admin = RawUser::sign_in(&hub, "admin@example.org", &bodies).await;

    let (status, _) = alice
        .create(json!({
            "name": "lab.quiet",
            "bucket": s3_bucket(),
            "secrets": { "natsAccountSeed": values[0], "s3SecretAccessKey": values[1] },
        }))
        .await;
    assert_eq!(status, 201);
    let (status, _) = alice
        .put_secret("lab.quiet", "s3SecretAccessKey", values[2])
        .await;
    assert_eq!(status, 200);

    // Refusals: a value of the wrong shape, a map in the wrong place, a short value, a
    // non-owner, an unknown kind at creation.
    let path = "/api/v1/channels/lab.quiet/secrets/ablyApiKey";
    let wrong_shape = json!({ "value": { "nested": values[3] } });
    let (status, _) = alice
        .call(reqwest::Method::PUT, path, Some(wrong_shape))
        .await;
    assert_eq!(status, 422);
    let (status, _) = alice
        .create(json!({ "name": "lab.loud", "secrets": values[4] }))
        .await;
    assert_eq!(status, 422);
    let (status, _) = alice
        .create(json!({ "name": "lab.loud", "secrets": { "sshKey": values[4] } }))
        .await;
    assert_eq!(status, 422);
    let (status, _) = alice.put_secret("lab.quiet", "ablyApiKey", values[5]).await;
    assert_eq!(status, 422);
    let (status, _) = admin.put_secret("lab.quiet", "ablyApiKey", values[1]).await;
    assert_eq!(status, 403);

    // Views by the owner and the admin, and the list.
    alice.view("lab.quiet").await;
    admin.view("lab.quiet").await;
    alice
        .call(reqwest::Method::GET, "/api/v1/channels", None)
        .await;
    hub.shutdown().await?;

    // Rotation, then a hub on the new key serving the view again.
    let key_dir = tempfile::tempdir()?;
    let (new_path, new_key) = new_key_file(key_dir.path(), 99);
    let report = rotate_master_key(&env.config(), &new_key).await?;
    assert_eq!(report.n_reencrypted, 2);
    std::fs::copy(&new_path, env.path().join(DEV_MASTER_KEY_FILE))?;
    let hub = env.spawn_hub_at(addr).await;
    let alice = RawUser::sign_in(&hub, "alice@example.org", &bodies).await;
    let view = alice.view("lab.quiet").await;
    assert_eq!(view["secrets"].as_array().unwrap().len(), 2);
    let (vault, lookup) = open_vault(&env, &new_key).await;
    let channel_id = lookup.channel_id("lab.quiet").await;
    let decrypted = vault
        .decrypt(channel_id, SecretKind::S3SecretAccessKey)
        .await?;
    assert_eq!(decrypted.expose(), values[2]);
    tracing::debug!(secret = ?decrypted, "a redacted secret in a log line");
    hub.shutdown().await?;

    // The capture worked: it holds the hub's own lines about these very secrets.
    let logs = String::from_utf8(logs.0.lock().unwrap().clone())?;
    assert!(
        logs.contains("channel secret set"),
        "no hub logs captured: {}",
        &logs[..logs.len().min(3000)]
    );
    assert!(logs.contains(&fingerprint(values[2])));
    assert!(logs.contains("re-encrypted"));
    assert!(logs.contains("SecretString(<redacted>)"));

    let bodies = bodies.lock().unwrap().join("\n");
    assert!(bodies.contains(&fingerprint(values[2])));
    for value in values {
        assert!(!logs.contains(value), "{value} reached the logs");
        assert!(!bodies.contains(value), "{value} reached a response");
    }
    assert_not_stored(&env, backend, &values).await;
    Ok(())
}
