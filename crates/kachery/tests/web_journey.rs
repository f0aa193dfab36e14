//! The hub's web site in a real headless Chromium (SPEC §12): a real OpenID Connect
//! provider (panva's `oidc-provider`, `tests/web/oidc-provider.mjs`, with its sign-in and
//! consent forms), a real hub process signing in only through it, and a real node daemon;
//! then `tests/web/journey.js` (playwright-core driving `/usr/bin/chromium`) signs in at
//! the provider, registers the node from the link `kachery node register` printed, creates
//! and joins a channel, grants roles, mints and enters a passcode, runs the channel test
//! and signs out. Screenshots of every page land in `target/journey/`. Afterwards the node
//! itself must hold the roles the pages gave it.
//!
//! Needs Node.js, `npm ci` in `tests/web`, and the Debian `chromium` package; `.ci/run`
//! installs them. Without them the test fails and says what is missing.

mod common;
#[path = "../../kachery-hub/tests/oidc/provider.rs"]
mod oidc_provider;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use oidc_provider::OidcProvider;

const CHANNEL: &str = "journey.lab";

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// `target/journey/`, emptied first so every screenshot in it is from this run.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/journey");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the screenshot directory can be made");
    dir
}

fn check_prerequisites() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run .ci/run, or `apt-get install chromium`"
    );
    for package in ["playwright-core", "oidc-provider"] {
        assert!(
            web_dir().join("node_modules").join(package).exists(),
            "{package} is missing: run .ci/run, or `npm ci` in {}",
            web_dir().display()
        );
    }
}

#[test]
fn a_person_manages_a_node_and_a_channel_through_the_web_site() {
    check_prerequisites();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let hub_bind = format!("127.0.0.1:{}", free_port());
    let redirect_uri = format!("http://{hub_bind}/login/oidc/mock/callback");
    let provider = OidcProvider::spawn(
        &web_dir(),
        "oidc-provider.mjs",
        &[
            ("REDIRECT_URI", &redirect_uri),
            ("CLIENT_ID", OIDC_CLIENT_ID),
            ("CLIENT_SECRET", OIDC_CLIENT_SECRET),
        ],
    );
    let hub = start_oidc_hub_at(dir.path(), &provider.issuer, &hub_bind);
    let node = start_node(&dir.path().join("node"), &hub.url, ALICE, "journey-node");

    let printed = node.run(&["node", "register", "--json"]).ok();
    let registration: serde_json::Value =
        serde_json::from_str(&printed.stdout).expect("register --json prints JSON");
    let link = registration["link"].as_str().expect("a link").to_owned();
    let node_id = node.node_id();

    let output = Command::new("node")
        .arg(web_dir().join("journey.js"))
        .env("HUB_URL", &hub.url)
        .env("REGISTER_LINK", &link)
        .env("NODE_ID", &node_id)
        .env("OWNER", ALICE)
        .env("OIDC_ISSUER", &provider.issuer)
        .env("CHANNEL", CHANNEL)
        .env("SCREENSHOT_DIR", screenshot_dir())
        .current_dir(web_dir())
        .output()
        .expect("node (Node.js) runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the journey failed (screenshots in target/journey)\nstdout: {stdout}\nstderr: {stderr}\nhub log:\n{}",
        hub.process.log_text()
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
            .expect("the journey ends with a JSON summary");
    assert_eq!(summary["ok"], true);

    // What the pages decided reaches the real node: a link with requestFiles (granted)
    // and provideFiles (by passcode).
    node.wait_for_link(CHANNEL);
    let status = node.status();
    let link_status = status["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|link| link["channel"] == CHANNEL)
        .expect("the node has a link on the channel")
        .clone();
    assert_eq!(
        link_status["effectiveRoles"],
        serde_json::json!(["requestFiles", "provideFiles"]),
        "{status:#}"
    );
}
