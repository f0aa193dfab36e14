//! Browser sessions (SPEC §9.1): a fresh 256-bit id at every sign-in, sent as the
//! `kachery_session` cookie and stored only as its SHA-256, with a CSRF token of its own.
//!
//! Expiry is both idle (7 days without a request) and absolute (30 days after sign-in).
//! `expires_at` in the table is the earlier of the two as of the last touch, so the purge
//! can delete by one column; the lookup checks both limits itself, because `last_seen_at`
//! is only stamped once a minute.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use url::{Host, Url};

use crate::app::AppState;
use crate::db::{DbError, NewSession, SessionRecord};
use crate::error::{ApiError, ApiResult};
use crate::time::now_ms;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kachery_session";
/// A session ends after this long without a request: 7 days.
pub const IDLE_TIMEOUT_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// A session ends this long after sign-in whatever happens: 30 days.
pub const MAX_AGE_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// `last_seen_at` is stamped at most this often, so page views stay mostly read-only.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// A live session found from the request's cookie.
#[derive(Clone)]
pub struct LiveSession {
    pub id_hash: String,
    pub record: SessionRecord,
}

impl std::fmt::Debug for LiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSession")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

/// 32 random bytes, base64url: session ids and CSRF tokens.
pub fn random_token() -> ApiResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| ApiError::internal("no randomness for a session", &error))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of `text`, lowercase hex: what the database keeps of session ids and codes.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Starts a session for `user_id` and returns the `Set-Cookie` value that carries it.
/// The id is always new, so an id planted before sign-in is never promoted (fixation).
pub async fn start(state: &AppState, user_id: i64, dev_login: bool) -> ApiResult<HeaderValue> {
    let session_id = random_token()?;
    let now = now_ms();
    let session = NewSession {
        id_hash: sha256_hex(&session_id),
        user_id,
        csrf_secret: random_token()?,
        dev_login,
        created_at: now,
        expires_at: now + IDLE_TIMEOUT_MS.min(MAX_AGE_MS),
    };
    state.db.insert_session(session).await?;
    tracing::debug!(user_id, dev_login, "session started");
    Ok(set_cookie(state, &session_id, MAX_AGE_MS / 1000))
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    set_cookie(state, "", 0)
}

fn set_cookie(state: &AppState, value: &str, max_age_secs: i64) -> HeaderValue {
    cookie(state, SESSION_COOKIE, value, "/", max_age_secs)
}

/// A `Set-Cookie` value with the session cookie's protections: HttpOnly, SameSite=Lax,
/// Secure unless the hub is plain-HTTP loopback. `value` must be base64url (or empty).
pub fn cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: i64,
) -> HeaderValue {
    let secure = if needs_secure_cookie(&state.origin) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}"
    );
    HeaderValue::from_str(&cookie).expect("cookie names, paths and values are plain ASCII")
}

/// Secure everywhere but plain-HTTP loopback, where browsers would drop a Secure cookie.
fn needs_secure_cookie(origin: &str) -> bool {
    let Ok(url) = Url::parse(origin) else {
        return true;
    };
    let is_loopback = match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    !(url.scheme() == "http" && is_loopback)
}

/// The session id the request's `Cookie` headers carry, if any.
pub fn session_id(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The value of the cookie `name` (non-empty) in the request's `Cookie` headers.
pub fn cookie_value<'h>(headers: &'h HeaderMap, wanted: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == wanted && !value.is_empty())
        .map(|(_, value)| value)
}

/// The live session of the request's cookie; an expired one is deleted and ignored.
pub async fn load(state: &AppState, headers: &HeaderMap) -> Result<Option<LiveSession>, DbError> {
    let Some(session_id) = session_id(headers) else {
        return Ok(None);
    };
    let id_hash = sha256_hex(session_id);
    let Some(record) = state.db.session(&id_hash).await? else {
        return Ok(None);
    };

    let now = now_ms();
    if is_expired(&record, now) {
        tracing::debug!(user_id = record.user_id, "session expired");
        state.db.delete_session(&id_hash).await?;
        return Ok(None);
    }
    if now - record.last_seen_at > TOUCH_INTERVAL_MS {
        let expires_at = (now + IDLE_TIMEOUT_MS).min(record.created_at + MAX_AGE_MS);
        state.db.touch_session(&id_hash, now, expires_at).await?;
    }
    Ok(Some(LiveSession { id_hash, record }))
}

fn is_expired(record: &SessionRecord, now: i64) -> bool {
    record.expires_at <= now
        || now - record.last_seen_at >= IDLE_TIMEOUT_MS
        || now - record.created_at >= MAX_AGE_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; kachery_session=xyz"),
        );
        assert_eq!(session_id(&headers), Some("xyz"));
        headers.clear();
        headers.append(header::COOKIE, HeaderValue::from_static("kachery_session="));
        assert_eq!(session_id(&headers), None);
    }

    #[test]
    fn secure_except_plain_http_loopback() {
        assert!(!needs_secure_cookie("http://127.0.0.1:8080"));
        assert!(!needs_secure_cookie("http://localhost:8080"));
        assert!(needs_secure_cookie("https://127.0.0.1:8080"));
        assert!(needs_secure_cookie("http://hub.example.org"));
    }
}
