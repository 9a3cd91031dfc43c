//! The service's configuration file (TOML), read strictly: an unknown key, a bad URL or a bad
//! duration is an error naming the file, the line and the key (`serve.toml:7: targets.erp.url: …`).
//!
//! ```toml
//! listen = "127.0.0.1:8470"
//! data = "./plantloop-data"
//!
//! [engine]
//! snapshot_every = 10000
//! sync = "full"
//!
//! [targets.erp]
//! url = "http://127.0.0.1:8480"
//! personality = "legacy"
//! call_timeout = "5s"
//! ```

use plantloop_core::engine::Config as EngineConfig;
use plantloop_core::model::System;
use plantloop_core::time::Duration;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::auth::AuthConfig;
use crate::auth::settings::RawAuth;
use crate::journal::SyncMode;
use crate::oauth::{OAuthClientConfig, RawOAuth};
use crate::tls::{RawTls, TlsConfig};

/// Where the service listens unless told otherwise.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8470";
/// Where the service keeps its journal unless told otherwise.
pub const DATA_DEFAULT: &str = "./plantloop-data";
/// Inputs between snapshots unless told otherwise: replay after a crash stays under this many.
pub const SNAPSHOT_EVERY_DEFAULT: u64 = 10_000;

/// How a target treats the core's calls, as the mocks' personalities do; it sets how the engine
/// calls it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Personality {
    /// Honours `Idempotency-Key`.
    #[default]
    Modern,
    /// Ignores `Idempotency-Key`: the engine looks before it posts.
    Legacy,
    /// Honours keys, rate-limited (50 calls/s): the engine keeps under the limit.
    Saas,
}

impl Personality {
    pub fn as_str(self) -> &'static str {
        match self {
            Personality::Modern => "modern",
            Personality::Legacy => "legacy",
            Personality::Saas => "saas",
        }
    }
}

/// The rate a SaaS target grants (the mocks' token bucket: 50 calls/s).
pub const SAAS_RATE_PER_S: u32 = 50;

/// One target system: where it is and how to call it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Base URL of its integration API (`http://127.0.0.1:8480`), without a trailing slash;
    /// `None` until configured (or until `--mocks` fills it in).
    pub url: Option<String>,
    pub personality: Personality,
    pub in_flight_max: u32,
    pub call_timeout: Duration,
    pub rate_limit_per_s: Option<u32>,
    /// OAuth 2.0 client credentials, when the target requires a bearer token.
    pub oauth: Option<OAuthClientConfig>,
    /// The HMAC key its webhooks are signed with; `None`: `POST /webhooks/{system}` refuses it.
    pub webhook_secret: Option<Secret>,
    /// Poll its event feed (`GET {url}/events?after=`) this often; `None`: no polling.
    pub poll_interval: Option<Duration>,
}

/// A secret from the configuration: never printed (`Debug` shows `Secret(..)`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// How far a webhook's signed timestamp may be from the service's clock, unless told otherwise:
/// the mocks' default tolerance.
pub const WEBHOOK_TOLERANCE_DEFAULT: Duration = Duration::from_secs(300);
/// Signatures remembered per system against replays, unless told otherwise.
pub const REPLAY_CACHE_MAX_DEFAULT: usize = 100_000;

/// Everything `plantloop serve` needs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// Per target, in [`System::ALL`] order.
    pub targets: [Target; 4],
    pub snapshot_every: u64,
    pub sync: SyncMode,
    /// The engine's limits, retries and admission.
    pub engine: EngineConfig,
    /// Who may call the gateway (`[auth]`).
    pub auth: AuthConfig,
    /// TLS, and mutual TLS with a client CA (`[tls]`); `None`: plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Webhooks older or newer than this (by their signed timestamp) are refused as stale.
    pub webhook_tolerance: Duration,
    /// Per system, the most webhook signatures remembered against replays.
    pub replay_cache_max: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        ServeConfig {
            listen: LISTEN_DEFAULT.parse().expect("a valid address"),
            data: PathBuf::from(DATA_DEFAULT),
            targets: std::array::from_fn(|i| Target {
                url: None,
                personality: Personality::Modern,
                in_flight_max: engine.targets[i].in_flight_max,
                call_timeout: engine.targets[i].call_timeout,
                rate_limit_per_s: None,
                oauth: None,
                webhook_secret: None,
                poll_interval: None,
            }),
            snapshot_every: SNAPSHOT_EVERY_DEFAULT,
            sync: SyncMode::Full,
            engine,
            auth: AuthConfig::default(),
            tls: None,
            webhook_tolerance: WEBHOOK_TOLERANCE_DEFAULT,
            replay_cache_max: REPLAY_CACHE_MAX_DEFAULT,
        }
    }
}

impl ServeConfig {
    /// One target's settings.
    pub fn target(&self, s: System) -> &Target {
        &self.targets[s.index()]
    }
    pub fn target_mut(&mut self, s: System) -> &mut Target {
        &mut self.targets[s.index()]
    }

    /// The engine configuration the targets' settings imply.
    pub fn engine_config(&self) -> EngineConfig {
        let mut e = self.engine.clone();
        for s in System::ALL {
            let t = self.target(s);
            let c = e.target_mut(s);
            c.honours_idempotency_key = t.personality != Personality::Legacy;
            c.in_flight_max = t.in_flight_max.max(1);
            c.call_timeout = t.call_timeout;
            c.rate_limit_per_s = t.rate_limit_per_s.or(match t.personality {
                Personality::Saas => Some(SAAS_RATE_PER_S),
                _ => None,
            });
        }
        e
    }

    /// Reads a configuration file, and the key and certificate files it names (a bad one is an
    /// error naming the line and key of its path).
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        let c = Self::parse(&path.display().to_string(), &text)?;
        c.check_files()?;
        Ok(c)
    }

    /// Reads every key and certificate file the configuration names, for errors before start.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        self.auth.check_files()?;
        for t in &self.targets {
            if let Some(o) = &t.oauth {
                o.client_secret.read()?;
            }
        }
        if let Some(t) = &self.tls {
            t.server_config()?;
        }
        Ok(())
    }

    /// Parses a configuration file's text; `file` names it in errors, and relative paths in it
    /// are relative to its folder. Files it names are not read ([`ServeConfig::check_files`]).
    pub fn parse(file: &str, text: &str) -> Result<ServeConfig, ConfigError> {
        let at = Locator {
            file,
            text,
            base: Path::new(file).parent().unwrap_or(Path::new("")),
        };
        let err = |span: Option<std::ops::Range<usize>>, key: String, message: String| {
            ConfigError::at(&at.place(span, key), message)
        };
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| err(e.span(), String::new(), e.message().to_owned()))?;
        let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let key = if key == "." { String::new() } else { key };
            err(inner.span(), key, inner.message().to_owned())
        })?;
        let mut c = ServeConfig::default();
        if let Some(l) = raw.listen {
            c.listen = l;
        }
        if let Some(d) = raw.data {
            c.data = d;
        }
        if let Some(e) = raw.engine {
            e.apply(&mut c);
        }
        if let Some(a) = raw.auth {
            a.apply(&at, &mut c.auth);
        }
        c.tls = raw.tls.map(|t| t.into_config(&at));
        if let Some(w) = raw.webhooks {
            set(&mut c.webhook_tolerance, w.tolerance);
            set(
                &mut c.replay_cache_max,
                w.replay_cache_max.map(|n| n as usize),
            );
        }
        for (system, t) in [
            (System::Erp, raw.targets.erp),
            (System::Qms, raw.targets.qms),
            (System::Cmms, raw.targets.cmms),
            (System::Mes, raw.targets.mes),
        ] {
            if let Some(t) = t {
                t.apply(&at, system, c.target_mut(system));
            }
        }
        Ok(c)
    }
}

/// A configuration file that cannot be used: `file:line: key: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// From 1; 0 when the error has no place in the file.
    pub line: u32,
    /// The key path at fault (`targets.erp.url`); empty for the document.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error at `place`.
    pub fn at(place: &Place, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: place.file.clone(),
            line: place.line,
            key: place.key.clone(),
            message: message.into(),
        }
    }
}

/// Where a value is in a configuration file: for errors found after parsing (a key file that
/// cannot be read names the line and key of its path).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    /// From 1; 0 for none.
    pub line: u32,
    pub key: String,
}

/// A file's name, text and folder, to turn spans into places and resolve relative paths.
pub(crate) struct Locator<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub base: &'a Path,
}

impl Locator<'_> {
    pub(crate) fn place(&self, span: Option<std::ops::Range<usize>>, key: String) -> Place {
        let line = span.map_or(0, |s| {
            self.text[..s.start.min(self.text.len())]
                .matches('\n')
                .count() as u32
                + 1
        });
        Place {
            file: self.file.to_owned(),
            line,
            key,
        }
    }

    /// `p` as given when absolute, else relative to the file's folder.
    pub(crate) fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    engine: Option<RawEngine>,
    webhooks: Option<RawWebhooks>,
    #[serde(default)]
    targets: RawTargets,
    auth: Option<RawAuth>,
    tls: Option<RawTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    #[serde(default, deserialize_with = "duration")]
    tolerance: Option<Duration>,
    #[serde(default, deserialize_with = "positive_u32")]
    replay_cache_max: Option<u32>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    erp: Option<RawTarget>,
    qms: Option<RawTarget>,
    cmms: Option<RawTarget>,
    mes: Option<RawTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default, deserialize_with = "url")]
    url: Option<String>,
    personality: Option<Personality>,
    #[serde(default, deserialize_with = "positive_u32")]
    in_flight_max: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    call_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "positive_u32")]
    rate_limit_per_s: Option<u32>,
    oauth: Option<RawOAuth>,
    #[serde(default, deserialize_with = "secret")]
    webhook_secret: Option<Secret>,
    #[serde(default, deserialize_with = "duration")]
    poll_interval: Option<Duration>,
}

impl RawTarget {
    fn apply(self, at: &Locator<'_>, system: System, t: &mut Target) {
        if let Some(o) = self.oauth {
            t.oauth = Some(o.into_config(at, system.as_str()));
        }
        if self.url.is_some() {
            t.url = self.url;
        }
        if let Some(p) = self.personality {
            t.personality = p;
        }
        if let Some(n) = self.in_flight_max {
            t.in_flight_max = n;
        }
        if let Some(d) = self.call_timeout {
            t.call_timeout = d;
        }
        if self.rate_limit_per_s.is_some() {
            t.rate_limit_per_s = self.rate_limit_per_s;
        }
        if self.webhook_secret.is_some() {
            t.webhook_secret = self.webhook_secret;
        }
        if self.poll_interval.is_some() {
            t.poll_interval = self.poll_interval;
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    snapshot_every: Option<u64>,
    sync: Option<RawSync>,
    #[serde(default, deserialize_with = "positive_u32")]
    attempts_max: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    backoff_base: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    backoff_cap: Option<Duration>,
    #[serde(default, deserialize_with = "positive_u32")]
    breaker_failures_to_open: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    breaker_open_for: Option<Duration>,
    #[serde(default, deserialize_with = "positive_u32")]
    critical_queued_max: Option<u32>,
    #[serde(default, deserialize_with = "positive_u32")]
    transactional_queued_max: Option<u32>,
    #[serde(default, deserialize_with = "positive_u32")]
    bulk_queued_max: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    dedupe_window: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    enrichment_wait: Option<Duration>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawSync {
    Full,
    Normal,
}

impl RawEngine {
    fn apply(self, c: &mut ServeConfig) {
        if let Some(n) = self.snapshot_every {
            c.snapshot_every = n;
        }
        if let Some(s) = self.sync {
            c.sync = match s {
                RawSync::Full => SyncMode::Full,
                RawSync::Normal => SyncMode::Normal,
            };
        }
        let e = &mut c.engine;
        set(&mut e.retry.attempts_max, self.attempts_max);
        set(&mut e.retry.backoff_base, self.backoff_base);
        set(&mut e.retry.backoff_cap, self.backoff_cap);
        set(
            &mut e.breaker.failures_to_open,
            self.breaker_failures_to_open,
        );
        set(&mut e.breaker.open_for, self.breaker_open_for);
        set(
            &mut e.admission.critical_queued_max,
            self.critical_queued_max,
        );
        set(
            &mut e.admission.transactional_queued_max,
            self.transactional_queued_max,
        );
        set(&mut e.admission.bulk_queued_max, self.bulk_queued_max);
        set(&mut e.dedupe_window, self.dedupe_window);
        set(&mut e.enrichment_wait, self.enrichment_wait);
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

/// `"250ms"`, `"10s"`, `"5m"`, `"2h"`, `"7d"`: a positive whole number and a unit.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit (ms, s, m, h, d)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as \"500ms\" or \"10s\""))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_mins(n),
        "h" => Duration::from_hours(n),
        "d" => Duration::from_hours(n.saturating_mul(24)),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h, d)")),
    };
    if d.is_zero() {
        return Err(format!("{s:?} must be more than zero"));
    }
    Ok(d)
}

/// A duration that may be zero (`"0s"`).
pub(crate) fn duration_or_zero<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(Some(Duration::ZERO));
    }
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn positive_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(Some(n))
}

/// A webhook secret: at least 16 bytes, so that it is not guessed.
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() < SECRET_BYTES_MIN {
        return Err(serde::de::Error::custom(format!(
            "a webhook secret needs at least {SECRET_BYTES_MIN} bytes"
        )));
    }
    Ok(Some(Secret(s.into_bytes())))
}

/// The shortest webhook secret the file may give.
pub const SECRET_BYTES_MIN: usize = 16;

/// An `http` or `https` URL with a host and no query, kept without its trailing slash.
fn url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    check_url(&s).map(Some).map_err(serde::de::Error::custom)
}

/// Checks a target's base URL; returns it without a trailing slash.
pub fn check_url(s: &str) -> Result<String, String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{s:?}: the scheme must be http or https"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("{s:?}: a base URL has no query or fragment"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(text: &str) -> ConfigError {
        ServeConfig::parse("serve.toml", text).unwrap_err()
    }

    #[test]
    fn a_full_file_sets_targets_and_engine() {
        let c = ServeConfig::parse(
            "serve.toml",
            r#"
listen = "127.0.0.1:9000"
data = "/tmp/pl"
[engine]
snapshot_every = 50
sync = "normal"
attempts_max = 3
backoff_base = "50ms"
[targets.erp]
url = "http://127.0.0.1:8480/"
personality = "legacy"
call_timeout = "2s"
[targets.cmms]
url = "https://cmms.example"
personality = "saas"
webhook_secret = "0123456789abcdef"
[targets.mes]
poll_interval = "250ms"
[webhooks]
tolerance = "1m"
replay_cache_max = 10
"#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.snapshot_every, 50);
        assert_eq!(c.sync, SyncMode::Normal);
        assert_eq!(
            c.target(System::Erp).url.as_deref(),
            Some("http://127.0.0.1:8480")
        );
        let e = c.engine_config();
        assert!(!e.target(System::Erp).honours_idempotency_key);
        assert_eq!(e.target(System::Erp).call_timeout, Duration::from_secs(2));
        assert_eq!(
            e.target(System::Cmms).rate_limit_per_s,
            Some(SAAS_RATE_PER_S)
        );
        assert_eq!(e.retry.attempts_max, 3);
        assert_eq!(e.retry.backoff_base, Duration::from_millis(50));
        assert_eq!(
            c.target(System::Cmms).webhook_secret,
            Some(Secret(b"0123456789abcdef".to_vec()))
        );
        assert_eq!(
            c.target(System::Mes).poll_interval,
            Some(Duration::from_millis(250))
        );
        assert_eq!(c.webhook_tolerance, Duration::from_secs(60));
        assert_eq!(c.replay_cache_max, 10);
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "secrets are not printed"
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = bad("listen = \"127.0.0.1:1\"\n[targets.erp]\nurl = \"ftp://x\"\n");
        assert_eq!((e.line, e.key.as_str()), (3, "targets.erp.url"), "{e}");
        assert!(
            e.to_string().starts_with("serve.toml:3: targets.erp.url: "),
            "{e}"
        );
        let e = bad("[engine]\nbackoff_base = \"10 parsecs\"\n");
        assert_eq!((e.line, e.key.as_str()), (2, "engine.backoff_base"), "{e}");
        let e = bad("[targets.erp]\nurl = \"http://x\"\ncolour = \"blue\"\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.key.starts_with("targets.erp"), "{e}");
        assert!(e.message.contains("colour"), "{e}");
        let e = bad("[targets.plm]\nurl = \"http://x\"\n");
        assert!(e.message.contains("plm"), "{e}");
        let e = bad("listen = \"nowhere\"\n");
        assert_eq!((e.line, e.key.as_str()), (1, "listen"), "{e}");
        let e = bad("[engine\n");
        assert_eq!(e.line, 1, "{e}");
        let e = bad("[targets.mes]\nin_flight_max = 0\n");
        assert_eq!(e.key, "targets.mes.in_flight_max", "{e}");
        let e = bad("[targets.cmms]\nwebhook_secret = \"short\"\n");
        assert_eq!(
            (e.line, e.key.as_str()),
            (2, "targets.cmms.webhook_secret"),
            "{e}"
        );
        let e = bad("[webhooks]\ntolerance = \"5\"\n");
        assert_eq!((e.line, e.key.as_str()), (2, "webhooks.tolerance"), "{e}");
    }

    #[test]
    fn durations_need_a_unit_and_a_positive_value() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_hours(168)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }
}
