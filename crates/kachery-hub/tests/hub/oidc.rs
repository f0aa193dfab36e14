//! Sign-in through OpenID Connect against a real provider on loopback (SPEC §9.1): the
//! happy path, and each refusal — unverified e-mail, wrong state, a replayed callback, a
//! domain outside `allowed_domains` — leaves the browser signed out.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use kachery_hub::{HubConfig, HubHandle, OidcProviderConfig, spawn};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};

use crate::common::{Backend, TestEnv, TestResult, hub_origin};
use crate::oidc_provider::OidcProvider;

on_both_backends!(
    a_verified_email_signs_in_and_returns,
    an_unverified_email_is_refused,
    a_wrong_state_is_refused,
    a_replayed_callback_is_refused,
    a_domain_outside_allowed_domains_is_refused,
);

/// A hub without dev login, offering the provider as `mock`.
async fn spawn_oidc_hub(env: &TestEnv, provider: &OidcProvider, allowed: &[&str]) -> HubHandle {
    let key_path = env.path().join("master.key");
    std::fs::write(&key_path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = HubConfig {
        dev_login: false,
        master_key_file: Some(key_path),
        allowed_domains: allowed.iter().map(|domain| domain.to_string()).collect(),
        oidc: vec![OidcProviderConfig {
            name: "mock".to_owned(),
            issuer: provider.issuer.clone(),
            client_id: "kachery-test-hub".to_owned(),
            client_secret_file: None,
            label: Some("Test provider".to_owned()),
            client_secret: Some("test-client-secret".to_owned()),
        }],
        ..env.config()
    };
    spawn(config).await.expect("the OIDC test hub starts")
}

/// A browser that follows nothing by itself and keeps the hub's cookies.
struct Browser {
    http: Client,
    hub: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(hub: &HubHandle) -> Self {
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            http,
            hub: hub_origin(hub),
            cookies: BTreeMap::new(),
        }
    }

    /// GETs `url`, sending the hub's cookies to the hub only and storing what it sets.
    async fn get(&mut self, url: &str) -> reqwest::Response {
        let mut request = self.http.get(url);
        let to_hub = url.starts_with(&self.hub);
        if to_hub && !self.cookies.is_empty() {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request = request.header(COOKIE, header.join("; "));
        }
        let response = request.send().await.unwrap();
        if to_hub {
            for set_cookie in response.headers().get_all(SET_COOKIE) {
                let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        response
    }

    /// Starts a sign-in and returns the provider's callback URL for this account.
    async fn sign_in_at_provider(&mut self, email: &str, verified: bool) -> String {
        let start = format!("{}/login/oidc/mock?return_to=%2Fnodes", self.hub);
        let to_provider = self.get(&start).await;
        assert_eq!(to_provider.status(), StatusCode::SEE_OTHER);
        let authorize = location(&to_provider);
        assert!(
            authorize.contains("code_challenge_method=S256"),
            "{authorize}"
        );
        assert!(authorize.contains("nonce="), "{authorize}");

        let subject = format!("sub-{email}");
        let authorize = OidcProvider::authorize_as(&authorize, &subject, email, verified);
        let back = self.get(&authorize).await;
        assert!(back.status().is_redirection(), "{:?}", back.text().await);
        location(&back)
    }

    fn has_session(&self) -> bool {
        self.cookies.contains_key("kachery_session")
    }

    async fn me(&mut self) -> serde_json::Value {
        let url = format!("{}/api/v1/me", self.hub);
        self.get(&url).await.json().await.unwrap()
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn a_verified_email_signs_in_and_returns(backend: Backend) -> TestResult {
    let provider = OidcProvider::start();
    let env = TestEnv::new(backend).await;
    let hub = spawn_oidc_hub(&env, &provider, &[]).await;
    let mut browser = Browser::new(&hub);

    let login_page = browser
        .get(&format!("{}/login", browser.hub))
        .await
        .text()
        .await?;
    assert!(login_page.contains("/login/oidc/mock?"), "{login_page}");
    assert!(login_page.contains("Test provider"), "{login_page}");
    assert!(
        !login_page.contains("/login/dev"),
        "no dev form without dev login"
    );

    let callback = browser.sign_in_at_provider("Alice@Example.org", true).await;
    assert!(callback.starts_with(&format!("{}/login/oidc/mock/callback?", browser.hub)));
    let signed_in = browser.get(&callback).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed_in), "/nodes");
    assert!(browser.has_session());
    assert!(!browser.cookies.contains_key("kachery_oidc_state"));
    let me = browser.me().await;
    assert_eq!(me["email"], "alice@example.org");
    assert_eq!(me["admin"], false);

    // Admins come from the config, whatever the provider says.
    let mut admin = Browser::new(&hub);
    let callback = admin.sign_in_at_provider("admin@example.org", true).await;
    admin.get(&callback).await;
    assert_eq!(admin.me().await["admin"], true);

    // A return_to off this hub is ignored.
    let mut wanderer = Browser::new(&hub);
    let start = format!(
        "{}/login/oidc/mock?return_to=https%3A%2F%2Fevil.example%2F",
        wanderer.hub
    );
    let to_provider = wanderer.get(&start).await;
    let authorize = OidcProvider::authorize_as(&location(&to_provider), "w", "w@example.org", true);
    let back = wanderer.get(&authorize).await;
    let signed_in = wanderer.get(&location(&back)).await;
    assert_eq!(location(&signed_in), "/");
    hub.shutdown().await?;
    Ok(())
}

async fn an_unverified_email_is_refused(backend: Backend) -> TestResult {
    let provider = OidcProvider::start();
    let env = TestEnv::new(backend).await;
    let hub = spawn_oidc_hub(&env, &provider, &[]).await;
    let mut browser = Browser::new(&hub);

    let callback = browser
        .sign_in_at_provider("mallory@example.org", false)
        .await;
    let refused = browser.get(&callback).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!browser.has_session());
    let body: serde_json::Value = refused.json().await?;
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not verified")
    );
    hub.shutdown().await?;
    Ok(())
}

async fn a_wrong_state_is_refused(backend: Backend) -> TestResult {
    let provider = OidcProvider::start();
    let env = TestEnv::new(backend).await;
    let hub = spawn_oidc_hub(&env, &provider, &[]).await;
    let mut browser = Browser::new(&hub);

    let callback = browser.sign_in_at_provider("alice@example.org", true).await;
    let mut url = url::Url::parse(&callback)?;
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(key, value)| {
            let value = if key == "state" {
                format!("{value}x")
            } else {
                value.into_owned()
            };
            (key.into_owned(), value)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);

    // The state no longer matches the one this browser started with.
    let tampered = browser.get(url.as_str()).await;
    assert_eq!(tampered.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(tampered).await, "csrf_failed");

    // A state the hub never issued, even if the browser's cookie agrees.
    let state = url
        .query_pairs()
        .find(|(key, _)| key == "state")
        .unwrap()
        .1
        .into_owned();
    browser
        .cookies
        .insert("kachery_oidc_state".to_owned(), state);
    let unknown = browser.get(url.as_str()).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(!browser.has_session());

    // Another browser cannot finish this browser's sign-in.
    let mut other = Browser::new(&hub);
    let hijack = other.get(&callback).await;
    assert_eq!(error_code(hijack).await, "csrf_failed");
    assert!(!other.has_session());
    hub.shutdown().await?;
    Ok(())
}

async fn a_replayed_callback_is_refused(backend: Backend) -> TestResult {
    let provider = OidcProvider::start();
    let env = TestEnv::new(backend).await;
    let hub = spawn_oidc_hub(&env, &provider, &[]).await;
    let mut browser = Browser::new(&hub);

    let callback = browser.sign_in_at_provider("alice@example.org", true).await;
    let state_cookie = browser.cookies["kachery_oidc_state"].clone();
    let first = browser.get(&callback).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let first_session = browser.cookies["kachery_session"].clone();

    // The same code and state again, with the state cookie put back: the flow is spent.
    browser
        .cookies
        .insert("kachery_oidc_state".to_owned(), state_cookie);
    let replayed = browser.get(&callback).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    assert!(replayed.headers().get(SET_COOKIE).is_none());
    assert_eq!(browser.cookies["kachery_session"], first_session);
    hub.shutdown().await?;
    Ok(())
}

async fn a_domain_outside_allowed_domains_is_refused(backend: Backend) -> TestResult {
    let provider = OidcProvider::start();
    let env = TestEnv::new(backend).await;
    let hub = spawn_oidc_hub(&env, &provider, &["example.org"]).await;

    let mut outsider = Browser::new(&hub);
    let callback = outsider.sign_in_at_provider("eve@example.net", true).await;
    let refused = outsider.get(&callback).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!outsider.has_session());

    let mut insider = Browser::new(&hub);
    let callback = insider.sign_in_at_provider("alice@example.org", true).await;
    assert_eq!(insider.get(&callback).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(insider.me().await["email"], "alice@example.org");
    hub.shutdown().await?;
    Ok(())
}
