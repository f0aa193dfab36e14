//! `kachery login` end to end (SPEC §9.3): a hub whose only sign-in is a real OpenID
//! Connect provider on loopback; the test plays the browser (following the hub's and the
//! provider's redirects and approving), the CLI saves the token, and the CLI then
//! registers a node and creates a channel with it.

mod common;

#[path = "../../kachery-hub/tests/oidc/provider.rs"]
mod oidc_provider;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{BIN, start_node, start_oidc_hub};
use oidc_provider::OidcProvider;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};

const OWNER: &str = "carol@example.org";

#[test]
fn login_through_the_browser_then_register_and_create() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start();
    let hub = start_oidc_hub(dir.path(), &provider.issuer);
    let node = start_node(&dir.path().join("carol"), &hub.url, OWNER, "carol-node");

    // The CLI prints the address to open, then waits for the browser's approval.
    let mut login = Command::new(BIN)
        .args(["login", "--hub", &hub.url, "--no-browser"])
        .env("KACHERY_HOME", &node.home)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(login.stderr.take().unwrap());
    let mut authorize_url = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(url) = line.trim().strip_prefix("http") {
            authorize_url = format!("http{url}");
            break;
        }
        line.clear();
    }
    assert!(
        authorize_url.contains("/cli/authorize?port="),
        "{authorize_url}"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(approve_in_browser(&hub.url, &authorize_url));

    let status = login.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "kachery login failed: {rest}");
    assert!(rest.contains(&format!("as {OWNER}")), "{rest}");

    let credentials = node.home.join("cli/credentials.toml");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&credentials).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The saved token works for the user API, from the CLI.
    node.run(&["node", "register", "--api"]).ok();
    node.run(&["channel", "create", "login.made"]).ok();
    node.run(&["node", "join", "login.made", "--roles", "requestFiles"])
        .ok();
    let members = node.run(&["channel", "members", "login.made"]).ok();
    assert!(members.stdout.contains(OWNER), "{}", members.stdout);

    // Without the saved token the same command is refused.
    std::fs::remove_file(&credentials).unwrap();
    let refused = node.run(&["channel", "members", "login.made"]);
    assert_ne!(refused.code, 0);
}

/// Opens the CLI's address like a browser would: the hub sends it to sign in, the
/// provider straight back, then the Approve form posts and redirects to the CLI.
async fn approve_in_browser(hub_url: &str, authorize_url: &str) {
    let hub_url = hub_url.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut url = authorize_url.to_owned();
    let mut approve_page = None;

    for _ in 0..10 {
        let response = send(&http, hub_url, &mut cookies, http.get(&url), &url).await;
        if !response.status().is_redirection() {
            let page = response.text().await.unwrap();
            if page.contains("action=\"/cli/authorize\"") {
                approve_page = Some(page);
                break;
            }
            // The sign-in page: follow its provider button.
            let start = page
                .split("href=\"")
                .find(|rest| rest.starts_with("/login/oidc/"))
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no sign-in link on {url}: {page}"))
                .replace("&amp;", "&");
            url = format!("{hub_url}{start}");
            continue;
        }
        let next = response.headers()[LOCATION].to_str().unwrap().to_owned();
        url = if next.starts_with('/') {
            format!("{hub_url}{next}")
        } else if next.starts_with(hub_url) {
            next
        } else {
            // The provider's authorize endpoint: sign in as the node's owner.
            OidcProvider::authorize_as(&next, "carol-subject", OWNER, true)
        };
    }
    let page = approve_page.expect("the Approve page is reached");

    let fields: Vec<(String, String)> = page
        .split("<input type=\"hidden\" ")
        .skip(1)
        .map(|input| {
            let attribute = |name: &str| {
                input
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap()
                    .to_owned()
            };
            (attribute("name"), attribute("value"))
        })
        .chain([("decision".to_owned(), "approve".to_owned())])
        .collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let post_url = format!("{hub_url}/cli/authorize");
    let request = http
        .post(&post_url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ORIGIN, hub_url)
        .body(body);
    let approved = send(&http, hub_url, &mut cookies, request, &post_url).await;
    if approved.status() != reqwest::StatusCode::SEE_OTHER {
        let status = approved.status();
        panic!(
            "Approve answered {status}: {}",
            approved.text().await.unwrap()
        );
    }
    let to_cli = approved.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(to_cli.starts_with("http://127.0.0.1:"), "{to_cli}");
    let delivered = http.get(&to_cli).send().await.unwrap();
    assert!(delivered.status().is_success());
}

/// Sends with the hub's cookies (to the hub only) and keeps the ones it sets.
async fn send(
    _http: &reqwest::Client,
    hub_url: &str,
    cookies: &mut BTreeMap<String, String>,
    mut request: reqwest::RequestBuilder,
    url: &str,
) -> reqwest::Response {
    let to_hub = url.starts_with(hub_url);
    if to_hub && !cookies.is_empty() {
        let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        request = request.header(COOKIE, header.join("; "));
    }
    let response = request.send().await.unwrap();
    if to_hub {
        for set_cookie in response.headers().get_all(SET_COOKIE) {
            let pair = set_cookie.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    response
}
