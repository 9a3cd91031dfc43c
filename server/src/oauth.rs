//! Outbound OAuth 2.0: a target that requires client-credentials tokens (as SaaS ERPs do) gets
//! calls with `Authorization: Bearer`, from a token fetched and refreshed here.
//!
//! ```toml
//! [targets.erp.oauth]
//! token_url = "https://login.example.com/oauth2/token"
//! client_id = "plantloop"
//! client_secret_file = "secrets/erp-client-secret"
//! scope = "integration"          # optional
//! ```
//!
//! A small client over the service's own reqwest rather than the `oauth2` crate: that crate's
//! HTTP integration is built on reqwest 0.12 (a second HTTP and TLS stack in the binary), and
//! the one grant needed is a form POST and a JSON answer (RFC 6749 §4.4).
//!
//! [`TokenSource::token`] hands out the cached token until shortly before it expires
//! ([`refresh_margin`]), then one caller fetches a new one while the others wait for it (one
//! fetch, not one per call). A call answered 401 drops the token it used
//! ([`TokenSource::invalidate`]) and is sent once more with a fresh one (`outbound.rs`); a 401
//! is never a refusal of the request, so nothing is dead-lettered for an expired token, and
//! since the target refused it, nothing was posted.

use crate::config::{ConfigError, Locator, Place};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use toml::Spanned;

/// The lifetime assumed for a token whose answer has no `expires_in`.
pub const EXPIRES_IN_DEFAULT: Duration = Duration::from_secs(60);
/// How long a token request may take.
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client secret: read from a file named in the configuration, or given in code.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientSecret {
    File { path: PathBuf, place: Place },
    Value(String),
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientSecret::File { path, .. } => write!(f, "File({})", path.display()),
            ClientSecret::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

impl ClientSecret {
    /// The secret (a file's content without its trailing newline).
    pub fn read(&self) -> Result<String, ConfigError> {
        match self {
            ClientSecret::Value(v) => Ok(v.clone()),
            ClientSecret::File { path, place } => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::at(place, format!("{}: cannot read: {e}", path.display()))
                })?;
                let secret = text.trim_end_matches(['\n', '\r']);
                if secret.is_empty() {
                    return Err(ConfigError::at(
                        place,
                        format!("{}: the file is empty", path.display()),
                    ));
                }
                Ok(secret.to_owned())
            }
        }
    }
}

/// One target's client credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClientConfig {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: ClientSecret,
    /// Sent as `scope` when given.
    pub scope: Option<String>,
}

/// `[targets.<system>.oauth]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOAuth {
    #[serde(deserialize_with = "token_url")]
    token_url: String,
    client_id: String,
    client_secret_file: Spanned<PathBuf>,
    scope: Option<String>,
}

fn token_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let u = reqwest::Url::parse(&s)
        .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(serde::de::Error::custom(format!(
            "{s:?}: the scheme must be http or https"
        )));
    }
    Ok(s)
}

impl RawOAuth {
    pub(crate) fn into_config(self, at: &Locator<'_>, target: &str) -> OAuthClientConfig {
        let f = self.client_secret_file;
        OAuthClientConfig {
            token_url: self.token_url,
            client_id: self.client_id,
            client_secret: ClientSecret::File {
                place: at.place(
                    Some(f.span()),
                    format!("targets.{target}.oauth.client_secret_file"),
                ),
                path: at.path(f.get_ref()),
            },
            scope: self.scope,
        }
    }
}

/// How long before a token's end a new one is fetched: a fifth of its life, at most 30 s, so a
/// call never leaves with a token about to expire in flight.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(30))
}

struct Cached {
    token: Arc<str>,
    refresh_at: Instant,
}

/// Fetches, caches and refreshes one target's access token.
pub struct TokenSource {
    http: reqwest::Client,
    config: OAuthClientConfig,
    secret: String,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
    expires_in: Option<u64>,
}

impl TokenSource {
    /// A source for `config`; reads the client secret now.
    pub fn new(http: reqwest::Client, config: OAuthClientConfig) -> Result<TokenSource, String> {
        let secret = config.client_secret.read().map_err(|e| e.to_string())?;
        Ok(TokenSource {
            http,
            config,
            secret,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    /// A token valid for a while yet: the cached one, or a new one.
    pub async fn token(&self) -> Result<Arc<str>, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - refresh_margin(lifetime),
        });
        Ok(token)
    }

    /// Drops `stale` (a token a target refused with 401) if it is still the cached one.
    pub async fn invalidate(&self, stale: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &*c.token == stale) {
            *cached = None;
        }
    }

    async fn fetch(&self) -> Result<(Arc<str>, Duration), String> {
        let form = {
            let mut f = form_urlencoded::Serializer::new(String::new());
            f.append_pair("grant_type", "client_credentials");
            if let Some(s) = &self.config.scope {
                f.append_pair("scope", s);
            }
            f.finish()
        };
        let url = &self.config.token_url;
        let r = self
            .http
            .post(url)
            .basic_auth(&self.config.client_id, Some(&self.secret))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .timeout(TOKEN_REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = r.status();
        let body = r.bytes().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{url}: {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        let a: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| format!("{url}: not a token answer: {e}"))?;
        if !a.token_type.eq_ignore_ascii_case("bearer") || a.access_token.is_empty() {
            return Err(format!(
                "{url}: a token of type {:?} is not a bearer token",
                a.token_type
            ));
        }
        let lifetime = a
            .expires_in
            .map_or(EXPIRES_IN_DEFAULT, Duration::from_secs)
            .max(Duration::from_secs(1));
        Ok((a.access_token.into(), lifetime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_a_fifth_of_its_life_early_at_most_30_s() {
        assert_eq!(
            refresh_margin(Duration::from_secs(1)),
            Duration::from_millis(200)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
    }
}
