//! OAuth 2.0 client credentials (RFC 6749 §4.4), as SaaS ERPs require of an integration: a mock
//! told to require it serves `POST /oauth/token` and answers its capability routes only with a
//! bearer token it issued and that has not expired (401 problem+json otherwise).
//!
//! The token route takes `grant_type=client_credentials` form-encoded, the client authenticated
//! by HTTP Basic or by `client_id` and `client_secret` in the form, and answers
//! `{"access_token", "token_type": "Bearer", "expires_in"}`; errors are RFC 6749 §5.2 JSON
//! (`invalid_request`, `invalid_client`, `unsupported_grant_type`). Tokens are opaque random
//! strings, remembered until they expire (at most [`TOKENS_MAX`]).

use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The token route's path.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Tokens remembered at once; the soonest to expire is forgotten first.
pub const TOKENS_MAX: usize = 10_000;
/// How long a token lives unless configured.
pub const TOKEN_LIFETIME_DEFAULT: Duration = Duration::from_secs(3600);

/// The one client a mock knows, and how long its tokens live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthSettings {
    pub client_id: String,
    pub client_secret: String,
    pub token_lifetime: Duration,
}

impl OAuthSettings {
    /// A client `plantloop` with a random secret.
    pub fn generated() -> OAuthSettings {
        OAuthSettings {
            client_id: "plantloop".into(),
            client_secret: random_token(),
            token_lifetime: TOKEN_LIFETIME_DEFAULT,
        }
    }
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    // Without OS randomness the mock still works; its tokens are then guessable, which a mock
    // may afford.
    if getrandom::fill(&mut b).is_err() {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b[..16].copy_from_slice(&n.to_le_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The tokens one mock issued.
#[derive(Debug)]
pub struct TokenStore {
    settings: OAuthSettings,
    tokens: Mutex<HashMap<String, Instant>>,
    issued: AtomicU64,
}

impl TokenStore {
    pub fn new(settings: OAuthSettings) -> TokenStore {
        TokenStore {
            settings,
            tokens: Mutex::new(HashMap::new()),
            issued: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    fn issue(&self) -> String {
        self.issued.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let token = random_token();
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        t.retain(|_, until| *until > now);
        if t.len() >= TOKENS_MAX
            && let Some(oldest) = t.iter().min_by_key(|(_, u)| **u).map(|(k, _)| k.clone())
        {
            t.remove(&oldest);
        }
        t.insert(token.clone(), now + self.settings.token_lifetime);
        token
    }

    /// True for a token issued here that has not expired.
    pub fn is_valid(&self, token: &str) -> bool {
        let t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        t.get(token).is_some_and(|until| *until > Instant::now())
    }

    /// Forgets every token issued (as a key rotation or a revocation would): the next call with
    /// one gets 401.
    pub fn revoke_all(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = (
        status,
        axum::Json(serde_json::json!({ "error": error, "error_description": description })),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"plantloop-mock\""),
        );
    }
    r
}

/// The client named by HTTP Basic (RFC 6749 §2.3.1: id and secret form-urlencoded first).
fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

/// `POST /oauth/token`.
pub async fn token_route(
    State(store): State<Arc<TokenStore>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only client_credentials is supported",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            );
        }
    }
    let client = basic_client(&headers).or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });
    let s = store.settings();
    let known = client.is_some_and(|(id, secret)| {
        id == s.client_id && constant_time_eq(secret.as_bytes(), s.client_secret.as_bytes())
    });
    if !known {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    }
    let token = store.issue();
    let mut r = axum::Json(serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": s.token_lifetime.as_secs().max(1),
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware over the capability routes: a valid bearer token or 401 problem+json.
pub async fn require_token(
    State(store): State<Arc<TokenStore>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let why = match token {
        None => "no bearer token: get one at POST /oauth/token (client credentials)",
        Some(t) if store.is_valid(t) => return next.run(request).await,
        Some(_) => "the token is unknown or expired: get a new one at POST /oauth/token",
    };
    let mut r = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Missing or invalid bearer token",
        why,
    )
    .with_field("authorization")
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"plantloop-mock\", error=\"invalid_token\""),
    );
    r
}
