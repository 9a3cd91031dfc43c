//! Webhooks in: `POST /webhooks/{system}` checks a delivery's HMAC-SHA256 signature and signed
//! timestamp exactly as the mocks make them (`plantloop-wire`'s [`signature`] module), and refuses a
//! replayed delivery, before anything reaches the journal.
//!
//! - **Signature**: the system's secret from the configuration (`targets.X.webhook_secret`); a
//!   system without one has no webhook route (404).
//! - **Staleness**: a signed timestamp more than `webhooks.tolerance` (default 300 s, the mocks'
//!   own) from the service's clock, either way, is refused.
//! - **Replays**: within the tolerance, the [`ReplayGuard`] remembers each accepted delivery's
//!   (timestamp, MAC). A sender's retry signs again with a new timestamp, so only a captured
//!   delivery sent again repeats both. The guard keeps at most `webhooks.replay_cache_max` per
//!   system: entries older than the tolerance go first (they would be stale anyway); when it is
//!   still full the oldest goes, and its timestamp becomes the *horizon*: a delivery signed at or
//!   before the horizon is refused too, because the guard can no longer tell whether it is a
//!   replay. Memory is bounded, and no replay is let through.
//!
//! [`signature`]: plantloop_wire::signature

use crate::config::{Secret, ServeConfig};
use plantloop_core::model::System;
use plantloop_wire::signature::{SignatureError, SignedDelivery, verify_delivery};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Why a delivery was refused (each answered 401).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The signature is missing, malformed, wrong, or its timestamp is out of tolerance.
    Signature(SignatureError),
    /// This exact delivery (timestamp and MAC) was taken before.
    Replayed { timestamp: u64 },
    /// Signed at or before the replay guard's horizon: it cannot be told from a replay.
    BeyondHorizon { timestamp: u64, horizon: u64 },
}

impl Refusal {
    /// A short label for metrics: `signature`, `stale`, `replayed`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Signature(SignatureError::Stale { .. }) => "stale",
            Refusal::Signature(_) => "signature",
            Refusal::Replayed { .. } | Refusal::BeyondHorizon { .. } => "replayed",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Signature(e) => write!(f, "{e}"),
            Refusal::Replayed { timestamp } => {
                write!(f, "the delivery signed at {timestamp} was received before")
            }
            Refusal::BeyondHorizon { timestamp, horizon } => write!(
                f,
                "signed at {timestamp}, not after {horizon}, the oldest time the replay guard \
                 still remembers"
            ),
        }
    }
}

/// The signatures of accepted deliveries of one system, within the tolerance; bounded.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    /// (timestamp, MAC), oldest first.
    seen: BTreeSet<(u64, [u8; 32])>,
    /// Deliveries signed at or before this are refused (see the module doc).
    horizon: u64,
}

impl ReplayGuard {
    /// Takes a verified delivery at `now` (UNIX seconds), or refuses it as a replay.
    pub fn admit(
        &mut self,
        d: SignedDelivery,
        now: u64,
        tolerance_secs: u64,
        entries_max: usize,
    ) -> Result<(), Refusal> {
        let oldest_valid = now.saturating_sub(tolerance_secs);
        while self.seen.first().is_some_and(|(t, _)| *t < oldest_valid) {
            self.seen.pop_first();
        }
        if self.horizon > 0 && d.timestamp <= self.horizon {
            return Err(Refusal::BeyondHorizon {
                timestamp: d.timestamp,
                horizon: self.horizon,
            });
        }
        if !self.seen.insert((d.timestamp, d.tag)) {
            return Err(Refusal::Replayed {
                timestamp: d.timestamp,
            });
        }
        while self.seen.len() > entries_max.max(1) {
            if let Some((t, _)) = self.seen.pop_first() {
                self.horizon = self.horizon.max(t);
            }
        }
        Ok(())
    }

    /// Signatures remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// The webhook side of the gateway: a secret and a replay guard per system.
pub struct Webhooks {
    secrets: [Option<Secret>; 4],
    guards: [Mutex<ReplayGuard>; 4],
    tolerance_secs: u64,
    entries_max: usize,
}

impl Webhooks {
    pub fn new(config: &ServeConfig) -> Webhooks {
        Webhooks {
            secrets: System::ALL.map(|s| config.target(s).webhook_secret.clone()),
            guards: Default::default(),
            tolerance_secs: config.webhook_tolerance.as_secs(),
            entries_max: config.replay_cache_max,
        }
    }

    /// True when `system` has a secret, hence a webhook route.
    pub fn accepts(&self, system: System) -> bool {
        self.secrets[system.index()].is_some()
    }

    /// Checks one delivery to `system` at `now` (UNIX seconds): signature, staleness, replay.
    /// `system` must accept webhooks ([`Webhooks::accepts`]).
    pub fn check(
        &self,
        system: System,
        headers: &axum::http::HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<(), Refusal> {
        let Some(secret) = &self.secrets[system.index()] else {
            return Err(Refusal::Signature(SignatureError::Mismatch));
        };
        let d = verify_delivery(&secret.0, headers, body, now, self.tolerance_secs)
            .map_err(Refusal::Signature)?;
        let mut guard = self.guards[system.index()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        guard.admit(d, now, self.tolerance_secs, self.entries_max)
    }
}

/// Seconds since the UNIX epoch, as webhook timestamps count.
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(timestamp: u64, tag: u8) -> SignedDelivery {
        SignedDelivery {
            timestamp,
            tag: [tag; 32],
        }
    }

    #[test]
    fn a_delivery_is_taken_once() {
        let mut g = ReplayGuard::default();
        assert_eq!(g.admit(d(100, 1), 100, 300, 10), Ok(()));
        assert_eq!(
            g.admit(d(100, 1), 101, 300, 10),
            Err(Refusal::Replayed { timestamp: 100 })
        );
        // A retry signs again: another timestamp (or body), another MAC.
        assert_eq!(g.admit(d(101, 2), 101, 300, 10), Ok(()));
    }

    #[test]
    fn entries_past_the_tolerance_are_forgotten() {
        let mut g = ReplayGuard::default();
        for t in 0..5 {
            g.admit(d(1_000 + t, t as u8), 1_000 + t, 300, 100).unwrap();
        }
        assert_eq!(g.len(), 5);
        g.admit(d(1_302, 9), 1_302, 300, 100).unwrap();
        assert_eq!(g.len(), 4, "signed at 1000 and 1001 are past the tolerance");
    }

    #[test]
    fn a_full_guard_refuses_what_it_can_no_longer_tell_from_a_replay() {
        let mut g = ReplayGuard::default();
        for t in 0..3u8 {
            g.admit(d(100 + u64::from(t), t), 103, 300, 3).unwrap();
        }
        // Full: the oldest (100) goes, and becomes the horizon.
        g.admit(d(103, 3), 103, 300, 3).unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(
            g.admit(d(100, 0), 103, 300, 3),
            Err(Refusal::BeyondHorizon {
                timestamp: 100,
                horizon: 100
            }),
            "the evicted delivery replayed is still refused"
        );
        assert_eq!(g.admit(d(104, 4), 104, 300, 3), Ok(()));
    }
}
