//! The engine's tunables. Every queue, retry and wait has a named bound here.

use crate::model::{LatencyClass, System};
use crate::time::Duration;
use serde::{Deserialize, Serialize};

/// How the engine treats one target system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetConfig {
    /// False for a "legacy" target that posts again on a repeated Idempotency-Key: every attempt
    /// after an ambiguous failure then starts with a lookup (look before post).
    pub honours_idempotency_key: bool,
    /// Calls in flight to this target at once.
    pub in_flight_max: u32,
    /// An attempt with no reply after this long counts as timed out.
    pub call_timeout: Duration,
    /// Calls per second the core allows itself towards this target (a known SaaS limit), if any.
    /// A 429's Retry-After is honoured in every case.
    pub rate_limit_per_s: Option<u32>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            honours_idempotency_key: true,
            in_flight_max: 64,
            call_timeout: Duration::from_secs(10),
            rate_limit_per_s: None,
        }
    }
}

/// Retries with exponential backoff, a cap and jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Backoff before the second attempt; doubles per attempt.
    pub backoff_base: Duration,
    /// Backoff never exceeds this (before jitter halves it at most).
    pub backoff_cap: Duration,
    /// Attempts before a call goes to the dead-letter queue ("out of retries"). Throttling does not
    /// count as an attempt.
    pub attempts_max: u32,
}

/// The per-target circuit breaker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerPolicy {
    /// Consecutive transient failures that open the breaker.
    pub failures_to_open: u32,
    /// How long it stays open before one probe call is let through (half-open).
    pub open_for: Duration,
}

/// Ingress admission: how many calls may wait in the outbox before events of a class are pushed
/// back. Critical has its own reserved capacity and never competes with the others; transactional
/// and bulk share, and bulk is pushed back first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdmissionPolicy {
    /// Reserved for critical calls.
    pub critical_queued_max: u32,
    /// Transactional events are pushed back when this many non-critical calls wait.
    pub transactional_queued_max: u32,
    /// Bulk events are pushed back when this many non-critical calls wait (lower than transactional).
    pub bulk_queued_max: u32,
    /// The Retry-After hint returned with a push-back, per class.
    pub retry_after: [Duration; 3],
}

/// How long the engine remembers finished work, and how much of it (see the engine's
/// `workflows/retention.rs`). Nothing an open workflow needs is ever forgotten.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Closed containments and applied completions are remembered this long at least (unless
    /// the counts below are exceeded): a re-sent NC, disposition or completion within it is
    /// recognised. Keep it at or above `dedupe_window`. A production order is remembered until
    /// its line's next order is this old (an NC's suspect serials reach back less far).
    pub closed_for: Duration,
    /// At most this many closed containments are remembered (about 1 KB each).
    pub containments_closed_max: usize,
    /// At most this many applied completions are remembered (about 100 bytes each).
    pub completions_max: usize,
    /// At most this many dead letters are kept; beyond it the oldest final refusal is forgotten
    /// (its audit record stays).
    pub dead_letters_max: usize,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            closed_for: Duration::from_hours(24 * 30),
            containments_closed_max: 100_000,
            completions_max: 1_000_000,
            dead_letters_max: 100_000,
        }
    }
}

/// Everything the engine needs besides its inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Indexed by [`System::index`].
    pub targets: [TargetConfig; 4],
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
    pub admission: AdmissionPolicy,
    /// Events are recognised as duplicates for this long after first seen.
    pub dedupe_window: Duration,
    /// At most this many event ids are remembered; the oldest are forgotten first. Each costs about
    /// 100 bytes plus its id (the source is shared).
    pub dedupe_entries_max: usize,
    /// An NC whose station is not yet in the registry waits this long for master data, then goes to
    /// the dead-letter queue.
    pub enrichment_wait: Duration,
    /// While a target has dead letters from transient failures, one of them is retried this often as
    /// a probe; a success replays them all.
    pub dead_letter_probe_every: Duration,
    /// At most this many production confirmations are parked behind one hold.
    pub parked_per_hold_max: usize,
    /// At most this many production orders are remembered per line, the oldest forgotten first.
    /// An NC's suspect serials must lie in remembered orders to be held: the default covers
    /// days of production even with orders of a few units (each costs about 100 bytes).
    pub orders_per_line_max: usize,
    /// What finished work is remembered, and for how long.
    pub retention: RetentionPolicy,
    /// A deliberate defect (feature `sabotage` only; see [`crate::sabotage`]).
    #[cfg(feature = "sabotage")]
    #[serde(default)]
    pub defect: Option<crate::sabotage::EngineDefect>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            targets: std::array::from_fn(|_| TargetConfig::default()),
            retry: RetryPolicy {
                backoff_base: Duration::from_millis(200),
                backoff_cap: Duration::from_secs(60),
                attempts_max: 12,
            },
            breaker: BreakerPolicy {
                failures_to_open: 5,
                open_for: Duration::from_secs(5),
            },
            admission: AdmissionPolicy {
                critical_queued_max: 20_000,
                transactional_queued_max: 50_000,
                bulk_queued_max: 10_000,
                retry_after: [
                    Duration::from_secs(1),
                    Duration::from_secs(5),
                    Duration::from_secs(30),
                ],
            },
            dedupe_window: Duration::from_hours(24 * 7),
            dedupe_entries_max: 4_000_000,
            enrichment_wait: Duration::from_hours(1),
            dead_letter_probe_every: Duration::from_mins(5),
            parked_per_hold_max: 100_000,
            orders_per_line_max: 4_096,
            retention: RetentionPolicy::default(),
            #[cfg(feature = "sabotage")]
            defect: None,
        }
    }
}

impl Config {
    /// Whether the deliberate defect `d` is on: always `false` without the `sabotage` feature.
    #[inline]
    pub fn has_defect(&self, d: crate::sabotage::EngineDefect) -> bool {
        #[cfg(feature = "sabotage")]
        {
            self.defect == Some(d)
        }
        #[cfg(not(feature = "sabotage"))]
        {
            let _ = d;
            false
        }
    }
    pub fn target(&self, s: System) -> &TargetConfig {
        &self.targets[s.index()]
    }
    pub fn target_mut(&mut self, s: System) -> &mut TargetConfig {
        &mut self.targets[s.index()]
    }
    /// The push-back hint for a class.
    pub fn retry_after(&self, c: LatencyClass) -> Duration {
        self.admission.retry_after[c.index()]
    }
}
