//! Browser sessions (SPEC §9.1): the dev-login form starts a session whose cookie works
//! for the user API; state-changing cookie requests need the CSRF token and a same-origin
//! Origin; logout and expiry end the session; every response has the security headers.

use kachery_hub::HubHandle;
use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{Client, Method, StatusCode};

use crate::common::{Backend, TestEnv, TestResult, hub_origin};

on_both_backends!(
    a_session_cookie_works_for_the_user_api,
    state_changes_need_the_csrf_token,
    foreign_origins_are_refused,
    logout_ends_the_session,
    idle_and_old_sessions_expire,
    every_login_gets_a_fresh_session_id,
);

/// A browser's view of the hub: no redirects followed, one session cookie.
struct Browser {
    http: Client,
    base: String,
    cookie: String,
}

impl Browser {
    /// Signs in through the dev-login form, as a browser on a hub page would.
    async fn sign_in(hub: &HubHandle, email: &str) -> Browser {
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = hub_origin(hub);
        let response = post_form(&http, &base, "/login/dev", &[("email", email)], &base, "").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/");
        let cookie = session_cookie(response.headers());
        Browser { http, base, cookie }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
    }

    /// The CSRF token, read from the sign-out form of `/login` as a page script would.
    async fn csrf_token(&self) -> String {
        let page = self.request(Method::GET, "/login").send().await.unwrap();
        let html = page.text().await.unwrap();
        let start = html
            .find("name=\"csrf\" value=\"")
            .expect("a signed-in /login page has a sign-out form with the token")
            + "name=\"csrf\" value=\"".len();
        html[start..].split('"').next().unwrap().to_owned()
    }

    async fn me_status(&self) -> StatusCode {
        self.request(Method::GET, "/api/v1/me")
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `POST /api/v1/channels` creating `name`, with the given Origin and token.
    async fn create_channel(
        &self,
        name: &str,
        origin: Option<&str>,
        csrf: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .request(Method::POST, "/api/v1/channels")
            .json(&serde_json::json!({ "name": name }));
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send().await.unwrap()
    }
}

async fn post_form(
    http: &Client,
    base: &str,
    path: &str,
    fields: &[(&str, &str)],
    origin: &str,
    cookie: &str,
) -> reqwest::Response {
    let mut request = http
        .post(format!("{base}{path}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ORIGIN, origin)
        .body(serde_urlencoded::to_string(fields).unwrap());
    if !cookie.is_empty() {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

/// `kachery_session=<id>` from a response's Set-Cookie.
fn session_cookie(headers: &HeaderMap) -> String {
    let set_cookie = headers[SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn error_code(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn a_session_cookie_works_for_the_user_api(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let browser = Browser::sign_in(&hub, "Alice@Example.org").await;

    let login = browser
        .http
        .post(format!("{}/login/dev", browser.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ORIGIN, &browser.base)
        .body("email=bob%40example.org&return_to=%2Fnodes")
        .send()
        .await?;
    let attributes = login.headers()[SET_COOKIE].to_str()?.to_owned();
    assert_eq!(login.headers()[LOCATION], "/nodes");
    for expected in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attributes.contains(expected), "{attributes}");
    }
    // Plain HTTP on loopback: a Secure cookie would never come back.
    assert!(!attributes.contains("Secure"), "{attributes}");

    let me: serde_json::Value = browser
        .request(Method::GET, "/api/v1/me")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(me["email"], "alice@example.org");
    assert_eq!(me["devLogin"], true);

    let csrf = browser.csrf_token().await;
    let created = browser
        .create_channel("session-made", Some(&browser.base), Some(&csrf))
        .await;
    assert!(created.status().is_success(), "{:?}", created.text().await);
    let channel: serde_json::Value = browser
        .request(Method::GET, "/api/v1/channels/session-made")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(channel["owner"], "alice@example.org");

    // Without a cookie or token, the API still refuses.
    let anonymous = browser
        .http
        .get(format!("{}/api/v1/me", browser.base))
        .send()
        .await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    hub.shutdown().await?;
    Ok(())
}

async fn state_changes_need_the_csrf_token(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let browser = Browser::sign_in(&hub, "alice@example.org").await;
    let base = browser.base.clone();

    let missing = browser.create_channel("no-token", Some(&base), None).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(missing).await, "csrf_failed");

    let wrong = browser
        .create_channel("wrong-token", Some(&base), Some("not-the-token"))
        .await;
    assert_eq!(error_code(wrong).await, "csrf_failed");

    // Another session's token is no good either: tokens are bound to their session.
    let other = Browser::sign_in(&hub, "bob@example.org").await;
    let others_token = other.csrf_token().await;
    let borrowed = browser
        .create_channel("borrowed-token", Some(&base), Some(&others_token))
        .await;
    assert_eq!(error_code(borrowed).await, "csrf_failed");

    // Nothing was created by the refused requests; reads need no token.
    let list: serde_json::Value = browser
        .request(Method::GET, "/api/v1/channels")
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");

    // A form post without the field is refused the same way.
    let logout = post_form(&browser.http, &base, "/logout", &[], &base, &browser.cookie).await;
    assert_eq!(error_code(logout).await, "csrf_failed");
    assert_eq!(browser.me_status().await, StatusCode::OK);
    hub.shutdown().await?;
    Ok(())
}

async fn foreign_origins_are_refused(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let browser = Browser::sign_in(&hub, "alice@example.org").await;
    let csrf = browser.csrf_token().await;

    for origin in ["http://evil.example", "http://127.0.0.1:1"] {
        let refused = browser
            .create_channel("cross-site", Some(origin), Some(&csrf))
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_code(refused).await, "csrf_failed");
    }
    let no_origin = browser.create_channel("no-origin", None, Some(&csrf)).await;
    assert_eq!(error_code(no_origin).await, "csrf_failed");
    let referer = browser
        .request(Method::POST, "/api/v1/channels")
        .header("referer", format!("{}/channels/new", browser.base))
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({ "name": "by-referer" }))
        .send()
        .await?;
    assert!(referer.status().is_success(), "{:?}", referer.text().await);

    // Another site cannot sign a visitor in, either.
    let login = post_form(
        &browser.http,
        &browser.base,
        "/login/dev",
        &[("email", "mallory@example.org")],
        "http://evil.example",
        "",
    )
    .await;
    assert_eq!(error_code(login).await, "csrf_failed");

    // Bearer requests are exempt: no browser adds the header by itself.
    let issued: serde_json::Value = browser
        .http
        .post(format!("{}/api/v1/dev/token", browser.base))
        .json(&serde_json::json!({ "email": "bob@example.org" }))
        .send()
        .await?
        .json()
        .await?;
    let token = issued["token"].as_str().unwrap().to_owned();
    let bearer = browser
        .http
        .post(format!("{}/api/v1/channels", browser.base))
        .bearer_auth(token)
        .header(ORIGIN, "http://evil.example")
        .json(&serde_json::json!({ "name": "bearer-made" }))
        .send()
        .await?;
    assert!(bearer.status().is_success(), "{:?}", bearer.text().await);
    hub.shutdown().await?;
    Ok(())
}

async fn logout_ends_the_session(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let browser = Browser::sign_in(&hub, "alice@example.org").await;
    let other = Browser::sign_in(&hub, "alice@example.org").await;
    let csrf = browser.csrf_token().await;

    let logout = post_form(
        &browser.http,
        &browser.base,
        "/logout",
        &[("csrf", &csrf)],
        &browser.base,
        &browser.cookie,
    )
    .await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    let cleared = logout.headers()[SET_COOKIE].to_str()?;
    assert!(cleared.starts_with("kachery_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // The server forgot the session: replaying the old cookie does not work.
    assert_eq!(browser.me_status().await, StatusCode::UNAUTHORIZED);
    let page = browser
        .request(Method::GET, "/login")
        .send()
        .await?
        .text()
        .await?;
    assert!(!page.contains("signed in as"), "{page}");
    // The same user's other session is untouched.
    assert_eq!(other.me_status().await, StatusCode::OK);
    hub.shutdown().await?;
    Ok(())
}

async fn idle_and_old_sessions_expire(backend: Backend) -> TestResult {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let idle = Browser::sign_in(&hub, "idle@example.org").await;
    let old = Browser::sign_in(&hub, "old@example.org").await;
    let fresh = Browser::sign_in(&hub, "fresh@example.org").await;
    let now = kachery_client::now_ms();

    // Idle for 8 days (limit 7); signed in 31 days ago but active (limit 30).
    env.execute_sql(&format!(
        "UPDATE sessions SET last_seen_at = {} WHERE user_id = \
         (SELECT id FROM users WHERE email = 'idle@example.org')",
        now - 8 * DAY_MS
    ))
    .await;
    env.execute_sql(&format!(
        "UPDATE sessions SET created_at = {}, last_seen_at = {now} WHERE user_id = \
         (SELECT id FROM users WHERE email = 'old@example.org')",
        now - 31 * DAY_MS
    ))
    .await;

    assert_eq!(idle.me_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(old.me_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(fresh.me_status().await, StatusCode::OK);

    hub.shutdown().await?;
    Ok(())
}

async fn every_login_gets_a_fresh_session_id(backend: Backend) -> TestResult {
    let env = TestEnv::new(backend).await;
    let hub = env.spawn_hub().await;
    let browser = Browser::sign_in(&hub, "alice@example.org").await;

    // Signing in again with the old cookie attached replaces it: the id is never reused.
    let again = post_form(
        &browser.http,
        &browser.base,
        "/login/dev",
        &[("email", "alice@example.org")],
        &browser.base,
        &browser.cookie,
    )
    .await;
    let new_cookie = session_cookie(again.headers());
    assert_ne!(new_cookie, browser.cookie);
    assert_eq!(browser.me_status().await, StatusCode::UNAUTHORIZED);
    let renewed = Browser {
        cookie: new_cookie,
        ..browser
    };
    assert_eq!(renewed.me_status().await, StatusCode::OK);

    // Every response carries the security headers; HSTS only over HTTPS.
    let home = renewed.request(Method::GET, "/").send().await?;
    let headers = home.headers();
    assert!(
        headers["content-security-policy"]
            .to_str()?
            .starts_with("default-src 'self'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert!(headers.get("strict-transport-security").is_none());
    hub.shutdown().await?;
    Ok(())
}
