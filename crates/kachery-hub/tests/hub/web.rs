//! The web site's rules, checked over real HTTP with a cookie session (SPEC §12, §10.3):
//! another person's node and channel refused for reading and writing, an expired
//! registration link refused with the failed check shown, a form error beside its field,
//! a good link registering the node on Confirm, and a channel on a real S3 server and a
//! real nats-server made from the form, whose "test channel" passes. The full browser journey is in
//! `crates/kachery/tests/web_journey.rs`.

use kachery_bucket::s3_test_server::S3TestServer;
use kachery_client::{now_ms, registration_envelope, registration_link};
use kachery_hub::HubHandle;
use kachery_protocol::Label;
use kachery_pubsub::nats::test_server::NatsTestServer;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};

use crate::common::*;

on_both_backends!(
    another_users_node_and_channel_are_refused_on_pages,
    an_expired_registration_link_is_refused_with_its_check_shown,
    a_good_registration_link_registers_on_confirm,
    a_form_error_is_shown_beside_its_field,
    a_channel_on_s3_and_nats_is_created_from_the_form_and_passes_its_test,
);

/// A browser without JavaScript: one session cookie, no redirects followed.
struct Browser {
    http: reqwest::Client,
    origin: String,
    cookie: String,
}

impl Browser {
    async fn sign_in(hub: &HubHandle, email: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let origin = hub_origin(hub);
        let response = http
            .post(format!("{origin}/login/dev"))
            .header(ORIGIN, &origin)
            .header(CONTENT_TYPE, FORM)
            .body(encode(&[("email", email), ("return_to", "/")]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with("kachery_session="))
            .expect("dev login sets the session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Self {
            http,
            origin,
            cookie,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.origin))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token (read from the start page).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String, String) {
        let (_, home) = self.get("/").await;
        let csrf = csrf_of(&home);
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let response = self
            .http
            .post(format!("{}{path}", self.origin))
            .header(COOKIE, &self.cookie)
            .header(ORIGIN, &self.origin)
            .header(CONTENT_TYPE, FORM)
            .body(encode(&form))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, location, response.text().await.unwrap())
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

fn encode(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a csrf field") + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

async fn another_users_node_and_channel_are_refused_on_pages(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = sign_in(&hub, "alice@example.org").await;
    let channel = create_channel(&alice, "lab.private").await;
    let node = register_node(&hub, &alice, &node_key(60), "alice@example.org").await;
    let node_path = format!("/nodes/{}", node.node_id());
    alice
        .join(node.node_id(), &channel, roles("requestFiles"))
        .await?;

    let owner = Browser::sign_in(&hub, "alice@example.org").await;
    let (status, page) = owner.get(&format!("/channels/{channel}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Members and grants") && page.contains("test node"));

    let mallory = Browser::sign_in(&hub, "mallory@example.org").await;
    let (status, _) = mallory.get(&node_path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = mallory
        .post(&format!("{node_path}/rename"), &[("label", "mine now")])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The channel page shows mallory only its name, owner and state.
    let (status, page) = mallory.get(&format!("/channels/{channel}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("alice@example.org"));
    assert!(!page.contains("Members and grants") && !page.contains("test node"));
    let (status, _, _) = mallory
        .post(
            &format!("/channels/{channel}/grants"),
            &[
                ("node_id", &node.node_id().to_string()),
                ("owner", "alice@example.org"),
                ("role", "provideFiles"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = mallory
        .post(
            &format!("/channels/{channel}/passcodes"),
            &[("role", "requestFiles")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = mallory
        .post(&format!("/channels/{channel}/delete"), &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!alice.channel(&channel).await?.deleted);

    // A form without the session's token changes nothing.
    let response = reqwest::Client::new()
        .post(format!("{}{node_path}/rename", hub_origin(&hub)))
        .header(COOKIE, &owner.cookie)
        .header(ORIGIN, hub_origin(&hub))
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("label", "forged")]))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    hub.shutdown().await?;
    Ok(())
}

async fn an_expired_registration_link_is_refused_with_its_check_shown(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let key = node_key(61);
    let two_hours_ago = now_ms() - 2 * 60 * 60 * 1000;
    let envelope = registration_envelope(
        &key,
        email("alice@example.org"),
        Label::parse("old link")?,
        &hub_origin(&hub),
        two_hours_ago,
    )?;
    let link = registration_link(&hub_origin(&hub), &envelope);
    let path = link.strip_prefix(&hub_origin(&hub)).unwrap();

    let alice = Browser::sign_in(&hub, "alice@example.org").await;
    let (status, page) = alice.get(path).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("failed") && page.contains("120 minutes old"),
        "{page}"
    );
    assert!(!page.contains("Confirm registration"));

    let req = path.split("req=").nth(1).unwrap();
    let (status, _, page) = alice.post("/nodes/register", &[("req", req)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("role=\"alert\""));
    let api = sign_in(&hub, "alice@example.org").await;
    assert!(api.nodes().await?.items.is_empty());
    hub.shutdown().await?;
    Ok(())
}

async fn a_good_registration_link_registers_on_confirm(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let key = node_key(62);
    let envelope = registration_envelope(
        &key,
        email("alice@example.org"),
        Label::parse("fresh link")?,
        &hub_origin(&hub),
        now_ms(),
    )?;
    let link = registration_link(&hub_origin(&hub), &envelope);
    let path = link.strip_prefix(&hub_origin(&hub)).unwrap();

    // Bob may look, but every check up to the owner passes and the owner check fails.
    let bob = Browser::sign_in(&hub, "bob@example.org").await;
    let (status, page) = bob.get(path).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("you are signed in as bob@example.org"),
        "{page}"
    );

    let alice = Browser::sign_in(&hub, "alice@example.org").await;
    let (status, page) = alice.get(path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("badge ok\">passed").count(), 5, "{page}");
    let req = path.split("req=").nth(1).unwrap();
    let (status, location, _) = alice.post("/nodes/register", &[("req", req)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/nodes/{}", node_id(&key)));

    // The same link again: the nonce check fails.
    let (status, page) = alice.get(path).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("already used"), "{page}");
    hub.shutdown().await?;
    Ok(())
}

async fn a_form_error_is_shown_beside_its_field(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let alice = Browser::sign_in(&hub, "alice@example.org").await;

    let (status, _, page) = alice
        .post(
            "/channels/new",
            &[("name", "x"), ("bucket_backend", "embedded")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"name-error\""), "{page}");
    assert!(page.contains("aria-invalid=\"true\""));
    assert!(page.contains("role=\"alert\"") && page.contains("href=\"#name\""));

    // Dev login with an address the hub refuses: the form again, not JSON.
    let refused = reqwest::Client::new()
        .post(format!("{}/login/dev", hub_origin(&hub)))
        .header(ORIGIN, hub_origin(&hub))
        .header(CONTENT_TYPE, FORM)
        .body(encode(&[("email", "alice@localhost"), ("return_to", "/")]))
        .send()
        .await?;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = refused.text().await?;
    assert!(page.contains("id=\"email-error\"") && page.contains("value=\"alice@localhost\""));
    assert!(page.contains("/static/kachery.css"), "{page}");

    // Taken names come back beside the same field; the typed name is kept.
    let (status, location, _) = alice
        .post(
            "/channels/new",
            &[
                ("name", "lab.taken"),
                ("bucket_backend", "embedded"),
                ("pubsub_backend", "embedded"),
            ],
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/channels/lab.taken")
    );
    let (status, _, page) = alice
        .post(
            "/channels/new",
            &[
                ("name", "lab.taken"),
                ("bucket_backend", "embedded"),
                ("pubsub_backend", "embedded"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"name-error\"") && page.contains("value=\"lab.taken\""));
    hub.shutdown().await?;
    Ok(())
}

async fn a_channel_on_s3_and_nats_is_created_from_the_form_and_passes_its_test(
    backend: Backend,
) -> TestResult {
    let env = TestEnv::new(backend).await;
    let dir = tempfile::tempdir()?;
    let s3 = S3TestServer::spawn(
        dir.path().to_owned(),
        "127.0.0.1:0".parse()?,
        &["form-bucket"],
        "form-access-key",
        "form-secret-key-0123456789",
    )
    .await?;
    let nats = NatsTestServer::start();
    let hub = env.spawn_hub().await;
    let alice = Browser::sign_in(&hub, "alice@example.org").await;
    let bucket_config = serde_json::json!({
        "endpoint": s3.endpoint.as_str(),
        "region": "us-east-1",
        "bucket": "form-bucket",
        "pathStyle": true,
        "accessKeyId": "form-access-key",
        "allowHttp": true,
    })
    .to_string();
    let fields = |bucket_secret: &'static str| {
        vec![
            ("name", "lab.engines"),
            ("bucket_backend", "s3"),
            ("bucket_config", bucket_config.as_str()),
            ("bucket_secret", bucket_secret),
            ("read_mode", "presigned"),
            ("pubsub_backend", "nats"),
            ("nats_servers", nats.url.as_str()),
            ("nats_account", nats.account.as_str()),
            ("pubsub_secret", nats.signing_seed.as_str()),
        ]
    };

    // Without the bucket's secret the form comes back with the error beside that field,
    // the settings kept and no secret echoed.
    let (status, _, page) = alice.post("/channels/new", &fields("")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("id=\"bucket_secret-error\""), "{page}");
    assert!(
        page.contains("form-access-key"),
        "the settings are kept: {page}"
    );
    assert!(!page.contains(&nats.signing_seed), "a secret was echoed");

    let (status, location, _) = alice
        .post("/channels/new", &fields("form-secret-key-0123456789"))
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/channels/lab.engines")
    );
    let (status, page) = alice.get("/channels/lab.engines").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("s3SecretAccessKey") && page.contains("natsAccountSeed"));
    assert!(!page.contains("form-secret-key-0123456789") && !page.contains(&nats.signing_seed));

    // The channel test uploads to s3s-fs (which checks every signature) and sends a probe
    // through nats-server with credentials the hub minted.
    let (status, _, page) = alice.post("/channels/lab.engines/test", &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let results = page
        .split("id=\"test-results\"")
        .nth(1)
        .and_then(|rest| rest.split("id=\"members\"").next())
        .expect("the page shows the test results");
    assert!(!results.contains("failed"), "{results}");
    assert_eq!(results.matches("passed").count(), 2, "{results}");
    hub.shutdown().await?;
    Ok(())
}
