//! The `[auth]` section: which keys sign the bearer tokens the gateway accepts, whose tokens they
//! are (issuer) and for whom (audience).
//!
//! ```toml
//! [auth]
//! issuer = "https://login.example.com/"
//! audience = "plantloop"
//! leeway = "30s"
//! rs256_public_keys = ["keys/idp-rsa.pem"]
//! ```
//!
//! Key files are named, not inlined, so no secret lives in the configuration file; a relative
//! path is relative to the configuration file's folder. They are read when the service starts
//! (and by `ServeConfig::load`, so a bad one stops `plantloop serve` before it binds anything);
//! an unreadable file or bad PEM is an error naming the file, line and key of the path.
//! With no key configured the service signs with a secret of its own ([`super::local`]).

use super::Verifier;
use super::local::LocalIssuer;
use crate::config::{ConfigError, Locator, Place};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The issuer and audience of the tokens the service mints itself, and the default of both.
pub const ISSUER_AUDIENCE_DEFAULT: &str = "plantloop";
/// Clock skew allowed on `exp` and `nbf` unless configured.
pub const LEEWAY_S_DEFAULT: u64 = 30;
/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash's size).
pub const HS256_SECRET_BYTES_MIN: usize = 32;

/// How a configured key verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A shared secret (HMAC-SHA256): the whole file's bytes, a trailing newline trimmed.
    Hs256,
    /// An RSA public key, PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`).
    Rs256,
    /// A P-256 public key, PEM (`BEGIN PUBLIC KEY`).
    Es256,
}

impl KeyKind {
    pub fn algorithm(self) -> Algorithm {
        match self {
            KeyKind::Hs256 => Algorithm::HS256,
            KeyKind::Rs256 => Algorithm::RS256,
            KeyKind::Es256 => Algorithm::ES256,
        }
    }
}

/// A key file named in the configuration, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    pub kind: KeyKind,
    pub path: PathBuf,
    pub place: Place,
}

/// The `[auth]` section, as read (files not opened yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
    pub keys: Vec<KeyFile>,
    /// Trust the data folder's own secret even though keys are configured (`--mocks` does, so
    /// that the in-process mocks can deliver events).
    pub trust_local_secret: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: ISSUER_AUDIENCE_DEFAULT.into(),
            audience: ISSUER_AUDIENCE_DEFAULT.into(),
            leeway_s: LEEWAY_S_DEFAULT,
            keys: vec![],
            trust_local_secret: false,
        }
    }
}

impl AuthConfig {
    /// Whether the service signs with (and trusts) the secret in its data folder.
    pub fn uses_local_secret(&self) -> bool {
        self.keys.is_empty() || self.trust_local_secret
    }

    /// The verifier of the configured keys, and the local issuer when the data folder's secret
    /// is used (created there on first use).
    pub fn verifier(&self, data: &Path) -> Result<(Verifier, Option<LocalIssuer>), String> {
        let mut keys = Vec::with_capacity(self.keys.len() + 1);
        for k in &self.keys {
            keys.push((k.kind, load_key(k).map_err(|e| e.to_string())?));
        }
        let local = if self.uses_local_secret() {
            let l = LocalIssuer::open(data, &self.issuer, &self.audience)?;
            keys.push((KeyKind::Hs256, l.decoding_key()));
            Some(l)
        } else {
            None
        };
        let v = Verifier::new(keys, &self.issuer, &self.audience, self.leeway_s);
        Ok((v, local))
    }

    /// Reads every key file, for errors before start.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        self.keys.iter().try_for_each(|k| load_key(k).map(|_| ()))
    }
}

/// Reads one key file.
fn load_key(k: &KeyFile) -> Result<DecodingKey, ConfigError> {
    let shown = k.path.display();
    let bytes = std::fs::read(&k.path)
        .map_err(|e| ConfigError::at(&k.place, format!("{shown}: cannot read: {e}")))?;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        ConfigError::at(&k.place, format!("{shown}: not {what}: {e}"))
    };
    match k.kind {
        KeyKind::Hs256 => {
            let secret = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let secret = secret.strip_suffix(b"\r").unwrap_or(secret);
            if secret.len() < HS256_SECRET_BYTES_MIN {
                return Err(ConfigError::at(
                    &k.place,
                    format!(
                        "{shown}: an HS256 secret needs at least {HS256_SECRET_BYTES_MIN} bytes, this one has {}",
                        secret.len()
                    ),
                ));
            }
            Ok(DecodingKey::from_secret(secret))
        }
        KeyKind::Rs256 => {
            DecodingKey::from_rsa_pem(&bytes).map_err(|e| bad("an RSA public key in PEM", &e))
        }
        KeyKind::Es256 => {
            DecodingKey::from_ec_pem(&bytes).map_err(|e| bad("an EC public key in PEM", &e))
        }
    }
}

/// `[auth]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    #[serde(default, deserialize_with = "non_empty")]
    issuer: Option<String>,
    #[serde(default, deserialize_with = "non_empty")]
    audience: Option<String>,
    #[serde(default, deserialize_with = "crate::config::duration_or_zero")]
    leeway: Option<plantloop_core::time::Duration>,
    #[serde(default)]
    hs256_secret_files: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    rs256_public_keys: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    es256_public_keys: Vec<Spanned<PathBuf>>,
}

impl RawAuth {
    pub(crate) fn apply(self, at: &Locator<'_>, c: &mut AuthConfig) {
        if let Some(i) = self.issuer {
            c.issuer = i;
        }
        if let Some(a) = self.audience {
            c.audience = a;
        }
        if let Some(l) = self.leeway {
            c.leeway_s = l.as_micros() / 1_000_000;
        }
        for (kind, key, files) in [
            (
                KeyKind::Hs256,
                "hs256_secret_files",
                self.hs256_secret_files,
            ),
            (KeyKind::Rs256, "rs256_public_keys", self.rs256_public_keys),
            (KeyKind::Es256, "es256_public_keys", self.es256_public_keys),
        ] {
            for (i, f) in files.into_iter().enumerate() {
                let place = at.place(Some(f.span()), format!("auth.{key}[{i}]"));
                c.keys.push(KeyFile {
                    kind,
                    path: at.path(f.get_ref()),
                    place,
                });
            }
        }
    }
}

fn non_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(Some(s))
}
