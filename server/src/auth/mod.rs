//! Who may call the gateway: every route but `/health` needs a bearer JWT, and each
//! route a scope (default deny: a route not named in [`gate::scope_for`] needs `admin:read`).
//!
//! - [`Scope`] — the four scopes a token can grant;
//! - [`Verifier`] — checks a token's signature (HS256 secrets, RS256 or ES256 public keys),
//!   issuer, audience and expiry, and yields its [`Principal`];
//! - [`settings`] — the `[auth]` section of the configuration and the key files it names;
//! - [`local`] — the secret generated into the data folder when no key is configured, and the
//!   tokens minted with it (the admin token printed at start, the mocks' webhook tokens);
//! - [`gate`] — the axum middleware that refuses with 401 or 403 problem+json.

pub mod gate;
pub mod local;
pub mod settings;

pub use settings::{AuthConfig, KeyKind};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What a token may do. Written in tokens as a space-separated `scope` claim (RFC 9068).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `POST /events`.
    EventsWrite,
    /// `POST /webhooks/{system}` (systems that send events by webhook only).
    WebhooksWrite,
    /// Reading operator routes: `GET /ready`, `GET /metrics`, `GET /dead-letters`, `GET /audit`,
    /// and any route not given another scope.
    AdminRead,
    /// `POST /dead-letters/{id}/replay`.
    AdminReplay,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::EventsWrite,
        Scope::WebhooksWrite,
        Scope::AdminRead,
        Scope::AdminReplay,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::WebhooksWrite => "webhooks:write",
            Scope::AdminRead => "admin:read",
            Scope::AdminReplay => "admin:replay",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller a valid token names: its `sub` and the scopes it grants (unknown scopes ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub subject: Arc<str>,
    scopes: u8,
}

impl Principal {
    pub fn new(subject: &str, scopes: &[Scope]) -> Principal {
        Principal {
            subject: subject.into(),
            scopes: scopes.iter().fold(0, |b, s| b | s.bit()),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & scope.bit() != 0
    }
}

/// The claims plantloop reads and writes; `exp`, `iss`, `aud` and `sub` are required.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Space-separated scopes (a JSON array of them is accepted too).
    #[serde(default)]
    pub scope: ScopeClaim,
}

/// `"events:write admin:read"` or `["events:write", "admin:read"]`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScopeClaim {
    #[default]
    None,
    Text(String),
    List(Vec<String>),
}

impl ScopeClaim {
    pub fn scopes(&self) -> Vec<Scope> {
        match self {
            ScopeClaim::None => vec![],
            ScopeClaim::Text(t) => t.split_whitespace().filter_map(Scope::parse).collect(),
            ScopeClaim::List(l) => l.iter().filter_map(|s| Scope::parse(s)).collect(),
        }
    }
}

/// Why a token was refused (401). The text is what the problem's `detail` says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no bearer token: send `Authorization: Bearer <JWT>`")]
    Missing,
    #[error("the Authorization header is not `Bearer <JWT>`")]
    NotBearer,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm {0} is not accepted (configured keys: {1})")]
    Algorithm(String, String),
    #[error("the token's signature does not match any configured key")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's audience is not this service's ({0})")]
    Audience(String),
    #[error("the token's issuer is not the configured one ({0})")]
    Issuer(String),
    #[error("the token lacks the claim {0}")]
    MissingClaim(String),
    #[error("the token's claims are malformed: {0}")]
    Claims(String),
}

/// One key a token may be signed with.
#[derive(Clone)]
struct TrustedKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Checks bearer tokens against the configured keys, issuer and audience.
pub struct Verifier {
    keys: Vec<TrustedKey>,
    issuer: String,
    audience: String,
    leeway_s: u64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_s", &self.leeway_s)
            .finish()
    }
}

impl Verifier {
    /// A verifier trusting `keys` (each with its algorithm), for tokens from `issuer` to
    /// `audience`, with `leeway_s` seconds of clock skew on `exp` and `nbf`.
    pub fn new(
        keys: Vec<(KeyKind, DecodingKey)>,
        issuer: &str,
        audience: &str,
        leeway_s: u64,
    ) -> Verifier {
        Verifier {
            keys: keys
                .into_iter()
                .map(|(kind, key)| TrustedKey {
                    algorithm: kind.algorithm(),
                    key,
                })
                .collect(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway_s,
        }
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.leeway = self.leeway_s;
        v.validate_nbf = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v
    }

    /// The principal of a bearer token, or why it is refused. A token is accepted when one key
    /// of its header's algorithm verifies it; `alg: none` and unconfigured algorithms never are.
    pub fn verify(&self, token: &str) -> Result<Principal, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        let candidates: Vec<&TrustedKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .collect();
        if candidates.is_empty() {
            let mut have: Vec<String> = self
                .keys
                .iter()
                .map(|k| format!("{:?}", k.algorithm))
                .collect();
            have.dedup();
            return Err(Refusal::Algorithm(
                format!("{:?}", header.alg),
                have.join(", "),
            ));
        }
        let validation = self.validation(header.alg);
        let mut last = Refusal::Signature;
        for k in candidates {
            match jsonwebtoken::decode::<Claims>(token, &k.key, &validation) {
                Ok(data) => {
                    let c = data.claims;
                    if c.sub.is_empty() {
                        return Err(Refusal::MissingClaim("sub".into()));
                    }
                    return Ok(Principal::new(&c.sub, &c.scope.scopes()));
                }
                Err(e) => {
                    last = self.refusal(e.kind());
                    // Another key of the same algorithm may still verify it.
                    if last != Refusal::Signature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn refusal(&self, kind: &ErrorKind) -> Refusal {
        match kind {
            ErrorKind::InvalidSignature => Refusal::Signature,
            ErrorKind::ExpiredSignature => Refusal::Expired,
            ErrorKind::ImmatureSignature => Refusal::NotYetValid,
            ErrorKind::InvalidAudience => Refusal::Audience(self.audience.clone()),
            ErrorKind::InvalidIssuer => Refusal::Issuer(self.issuer.clone()),
            ErrorKind::MissingRequiredClaim(c) => Refusal::MissingClaim(c.clone()),
            ErrorKind::InvalidClaimFormat(c) => Refusal::Claims(c.clone()),
            ErrorKind::Json(e) => Refusal::Claims(e.to_string()),
            // A key that cannot check this token (wrong family, bad key material) does not
            // verify it.
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidAlgorithm => Refusal::Signature,
            _ => Refusal::Malformed,
        }
    }
}
