//! Two hub processes on one PostgreSQL database serve the same users and nodes, share
//! browser sessions (a sign-in on one is valid on the other, a sign-out on one ends it on
//! both) and the memory of nonces, so a request replayed on the other replica is refused
//! (SPEC §11.1, §18.1), and one node-API rate limit (SPEC §21): a node spreading its
//! requests over both replicas gets no more through than from one.

use kachery_client::{HubUserClient, NodeApiClient, now_ms};
use kachery_hub::{HubConfig, HubHandle, spawn};
use kachery_protocol::SignedEnvelope;
use kachery_protocol::api_error::{ErrorBody, ErrorCode};
use kachery_protocol::node_api::{GetNodeConfigRequest, NodeConfigResponse, NodeRequest};

use crate::common::*;

/// Posts a sealed envelope to the node API of `hub` by its own address. Replicas share
/// one public URL, the origin signed into every body, so the client (which sends to the
/// origin it signs for) cannot pick the replica by itself.
async fn send_to(hub: &HubHandle, envelope: &SignedEnvelope) -> reqwest::Response {
    let url = format!("http://{}/api/node", hub.local_addr());
    reqwest::Client::new()
        .post(url)
        .json(envelope)
        .send()
        .await
        .expect("the replica answers")
}

#[tokio::test]
async fn two_hubs_on_one_postgres_database_act_as_one() -> TestResult {
    let env = TestEnv::new(Backend::Postgres).await;
    let first = env.spawn_hub().await;

    // The second replica: its own data directory, the same database, public URL and
    // master key, as replicas behind one load balancer would have.
    let replica_dir = tempfile::tempdir()?;
    std::fs::copy(
        env.path().join("master.key"),
        replica_dir.path().join("master.key"),
    )?;
    let second = spawn(HubConfig {
        data_dir: replica_dir.path().to_owned(),
        public_url: Some(first.public_url().clone()),
        ..env.config()
    })
    .await?;

    // A token minted by the first hub works on the second.
    let token = HubUserClient::new(first.public_url().clone(), None)
        .dev_token(&email("alice@example.org"))
        .await?
        .token;
    let on_first = HubUserClient::new(first.public_url().clone(), Some(token.clone()));
    let second_url = format!("http://{}", second.local_addr()).parse()?;
    let on_second = HubUserClient::new(second_url, Some(token));
    let channel = create_channel(&on_first, "lab.replicas").await;
    assert_eq!(on_second.channel(&channel).await?.name, channel);

    // A node registered through the first hub is known to the second.
    let node: NodeApiClient =
        register_node(&first, &on_first, &node_key(70), "alice@example.org").await;
    assert_eq!(on_second.nodes().await?.items.len(), 1);
    let request = NodeRequest::GetNodeConfig(GetNodeConfigRequest { known_etag: None });
    let fresh = node.seal_body(&node.body_for(request.clone(), now_ms()))?;
    let response = send_to(&second, &fresh).await;
    assert!(response.status().is_success(), "{}", response.status());
    response.json::<NodeConfigResponse>().await?;

    // A nonce spent on the first hub is a replay on the second.
    let envelope = node.seal_body(&node.body_for(request, now_ms()))?;
    node.send_raw::<NodeConfigResponse>(&envelope).await?;
    let replayed = send_to(&second, &envelope).await;
    assert!(replayed.status().is_client_error(), "{}", replayed.status());
    let body: ErrorBody = replayed.json().await?;
    assert_eq!(body.error.code, ErrorCode::ReplayedRequest);

    // Requests sent to the two replicas in turn: each replica's own bucket (burst 100,
    // 20/s) would let about 240 through; the limit they share stops the node at 200 in
    // 5 s, counting the requests above.
    let (mut accepted, mut limited) = (0, 0);
    for i in 0..300 {
        let hub = if i % 2 == 0 { &first } else { &second };
        let request = NodeRequest::GetNodeConfig(GetNodeConfigRequest { known_etag: None });
        let envelope = node.seal_body(&node.body_for(request, now_ms()))?;
        match send_to(hub, &envelope).await.status().as_u16() {
            200 => accepted += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        accepted <= 200 && limited >= 100,
        "accepted {accepted}, limited {limited}"
    );

    // A browser session opened on the first hub works on the second, and signing out on
    // the second ends it on the first.
    let origin = hub_origin(&first);
    let second_base = format!("http://{}", second.local_addr());
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let signed_in = browser
        .post(format!("{origin}/login/dev"))
        .header(reqwest::header::ORIGIN, &origin)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body("email=alice%40example.org&return_to=%2F")
        .send()
        .await?;
    let cookie = signed_in
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("kachery_session="))
        .and_then(|value| value.split(';').next())
        .expect("dev login sets the session cookie")
        .to_owned();
    let page = |base: String| {
        let browser = browser.clone();
        let cookie = cookie.clone();
        async move {
            browser
                .get(format!("{base}/nodes"))
                .header(reqwest::header::COOKIE, cookie)
                .send()
                .await
        }
    };
    let nodes_page = page(second_base.clone()).await?;
    assert_eq!(nodes_page.status(), reqwest::StatusCode::OK);
    let html = nodes_page.text().await?;
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a sign-out form") + marker.len();
    let csrf = &html[start..start + html[start..].find('"').unwrap()];
    let signed_out = browser
        .post(format!("{second_base}/logout"))
        .header(reqwest::header::COOKIE, &cookie)
        .header(reqwest::header::ORIGIN, &origin)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("csrf={csrf}"))
        .send()
        .await?;
    assert!(
        signed_out.status().is_redirection(),
        "{}",
        signed_out.status()
    );
    let after = page(origin.clone()).await?;
    assert!(
        after.status().is_redirection(),
        "the session outlived its sign-out"
    );

    second.shutdown().await?;
    first.shutdown().await?;
    Ok(())
}
