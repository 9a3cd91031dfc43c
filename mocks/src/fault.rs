//! Fault profiles: what goes wrong between a client and a mock system, as data, and a seeded,
//! deterministic decision per call and per outbound event.
//!
//! A [`FaultProfile`] is a list of [`FaultRule`]s, each a [`Fault`] active during an optional time
//! window (`at`, `for`: offsets from the run's origin, like a scenario's `[[fault]]`; without them,
//! always). The rules deserialize from the scenario's own shape (`kind = "endpoint-errors"`,
//! `rate = 0.3`, `at = "3d"`, `for = "2h"`, durations as strings), minus the `system` key that
//! selects the profile.
//!
//! A [`FaultInjector`] holds a profile and its state (the throttle buckets) and answers
//! [`FaultInjector::decide`] for a call and [`FaultInjector::decide_event`] for an outbound event.
//! Both are pure functions of the injector's state, `now` and the RNG handed in: the same seed and
//! the same sequence of calls give the same decisions on any machine (no float function of the
//! platform's libm is used; the lognormal draw uses an exact-arithmetic `exp`). The simulator calls
//! them in-process; the HTTP layer's tower middleware calls them per request with time measured from
//! the server's start.
//!
//! Precedence when several faults are active for one call: outage (no answer, nothing applied) >
//! throttle (429 + Retry-After, not applied) > 5xx (not applied) > ack-then-timeout (applied, the
//! reply is lost) > 200 with an error body (not applied) > pass. Latency adds up over every active
//! latency rule and applies to every answer.

use crate::personality::{RateLimit, TokenBucket};
use crate::reply::Reply;
use plantloop_core::call::Outcome;
use plantloop_core::time::{Duration, Instant};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Added latency.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Latency {
    /// The same every time (`latency = "800ms"`).
    Fixed(#[serde(with = "duration_str")] Duration),
    /// Lognormal: `median × e^(sigma·z)`, z standard normal (`latency = { median = "200ms", sigma = 0.5 }`).
    LogNormal {
        #[serde(with = "duration_str")]
        median: Duration,
        sigma: f64,
    },
}

fn default_error_status() -> u16 {
    503
}

/// One kind of fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// Every call's answer is delayed.
    EndpointLatency { latency: Latency },
    /// This share of calls is answered with a 5xx and not applied.
    EndpointErrors {
        rate: f64,
        #[serde(default = "default_error_status")]
        status: u16,
    },
    /// No answer at all (the client times out); nothing is applied.
    EndpointOutage,
    /// 429 + Retry-After above `limit_per_s` calls per second (bursts up to `burst`, default
    /// `limit_per_s`).
    EndpointThrottle {
        limit_per_s: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        burst: Option<u32>,
    },
    /// Each outbound event is delivered twice with this probability (at-least-once).
    DuplicateDelivery { probability: f64 },
    /// Outbound events are delayed by a uniform random time in `[0, window]`, so they arrive
    /// shuffled within the window.
    Reorder {
        #[serde(with = "duration_str")]
        window: Duration,
    },
    /// With this probability the call is applied but its reply is lost (the client times out).
    AckThenTimeout { probability: f64 },
    /// With this probability the call is answered 200 with an error body and not applied.
    ErrorBody { probability: f64 },
}

/// A fault and when it is active.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(flatten)]
    pub fault: Fault,
    /// Start, as an offset from the origin (default: the origin).
    #[serde(
        default,
        with = "opt_duration_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub at: Option<Duration>,
    /// How long (default: for ever).
    #[serde(
        rename = "for",
        default,
        with = "opt_duration_str",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
}

impl FaultRule {
    /// A rule active for the whole run.
    pub fn always(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            at: None,
            duration: None,
        }
    }

    /// A rule active from `at` for `duration`.
    pub fn during(fault: Fault, at: Duration, duration: Duration) -> FaultRule {
        FaultRule {
            fault,
            at: Some(at),
            duration: Some(duration),
        }
    }

    /// True when the rule is active at `now` (`at ≤ now < at + for`).
    pub fn is_active(&self, now: Instant) -> bool {
        let start = Instant::ZERO + self.at.unwrap_or(Duration::ZERO);
        now >= start && self.duration.is_none_or(|d| now < start + d)
    }
}

/// What can go wrong with one system: a list of rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultProfile {
    #[serde(default)]
    pub rules: Vec<FaultRule>,
}

/// A rule whose numbers make no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("fault rule {index}: {field}: {reason}")]
pub struct FaultError {
    pub index: usize,
    pub field: &'static str,
    pub reason: String,
}

impl FaultProfile {
    /// No faults.
    pub fn none() -> FaultProfile {
        FaultProfile::default()
    }

    /// A profile of these rules.
    pub fn new(rules: Vec<FaultRule>) -> FaultProfile {
        FaultProfile { rules }
    }

    /// Checks probabilities and rates are in [0, 1], sigma is finite and ≥ 0, throttle limits ≥ 1
    /// and error statuses are 5xx.
    pub fn validate(&self) -> Result<(), FaultError> {
        for (index, rule) in self.rules.iter().enumerate() {
            let err = |field, reason: &str| {
                Err(FaultError {
                    index,
                    field,
                    reason: reason.to_owned(),
                })
            };
            let prob_ok = |p: f64| (0.0..=1.0).contains(&p);
            match &rule.fault {
                Fault::EndpointLatency {
                    latency: Latency::LogNormal { sigma, .. },
                } if !(sigma.is_finite() && *sigma >= 0.0) => {
                    return err("sigma", "must be a finite number ≥ 0");
                }
                Fault::EndpointErrors { rate, .. } if !prob_ok(*rate) => {
                    return err("rate", "must be in [0, 1]");
                }
                Fault::EndpointErrors { status, .. } if !(500..600).contains(status) => {
                    return err("status", "must be a 5xx status");
                }
                Fault::EndpointThrottle { limit_per_s: 0, .. } => {
                    return err("limit_per_s", "must be at least 1");
                }
                Fault::EndpointThrottle { burst: Some(0), .. } => {
                    return err("burst", "must be at least 1");
                }
                Fault::DuplicateDelivery { probability }
                | Fault::AckThenTimeout { probability }
                | Fault::ErrorBody { probability }
                    if !prob_ok(*probability) =>
                {
                    return err("probability", "must be in [0, 1]");
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What happens to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum FaultAction {
    /// Served normally.
    Pass,
    /// No answer; not applied (outage).
    NoAnswer,
    /// 429 with Retry-After; not applied.
    Throttle { retry_after: Duration },
    /// A 5xx; not applied.
    ServerError { status: u16 },
    /// Applied, but the reply is lost: no answer.
    AckThenTimeout,
    /// 200 with an error body; not applied.
    ErrorBody,
}

/// The decision for one call: what happens and how much later the answer (if any) comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FaultDecision {
    pub delay: Duration,
    pub action: FaultAction,
}

/// What the client of one call experiences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// An answer arrives `after` the call.
    Answer { after: Duration, reply: Reply },
    /// No answer: the client times out at its deadline. `applied` tells whether the system
    /// processed the call (ack-then-timeout) — ground truth for tests, invisible to the client.
    NoAnswer { applied: bool },
}

impl Delivery {
    /// The engine's outcome: the reply's, or `TimedOut` when no answer comes.
    pub fn outcome(&self) -> Outcome {
        match self {
            Delivery::Answer { reply, .. } => reply.outcome(),
            Delivery::NoAnswer { .. } => Outcome::TimedOut,
        }
    }
}

impl FaultDecision {
    /// Nothing wrong, no delay.
    pub const PASS: FaultDecision = FaultDecision {
        delay: Duration::ZERO,
        action: FaultAction::Pass,
    };

    /// True when the system processes the call (pass and ack-then-timeout).
    pub fn reaches_system(&self) -> bool {
        matches!(self.action, FaultAction::Pass | FaultAction::AckThenTimeout)
    }

    /// Runs one call through this decision: `apply` is called iff the call reaches the system.
    pub fn deliver(self, apply: impl FnOnce() -> Reply) -> Delivery {
        let after = self.delay;
        match self.action {
            FaultAction::Pass => Delivery::Answer {
                after,
                reply: apply(),
            },
            FaultAction::NoAnswer => Delivery::NoAnswer { applied: false },
            FaultAction::AckThenTimeout => {
                let _lost = apply();
                Delivery::NoAnswer { applied: true }
            }
            FaultAction::Throttle { retry_after } => Delivery::Answer {
                after,
                reply: Reply::throttled(retry_after),
            },
            FaultAction::ServerError { status } => Delivery::Answer {
                after,
                reply: Reply::server_error(status),
            },
            FaultAction::ErrorBody => Delivery::Answer {
                after,
                reply: Reply::error_body(),
            },
        }
    }
}

/// The decision for one outbound event: deliver after `delay`, and a second copy after
/// `duplicate` if it is duplicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventDecision {
    pub delay: Duration,
    pub duplicate: Option<Duration>,
}

/// A fault profile with its state; decides deterministically per call and per event.
#[derive(Clone, Debug)]
pub struct FaultInjector {
    profile: FaultProfile,
    /// One bucket per rule (`Some` for throttle rules).
    buckets: Vec<Option<TokenBucket>>,
}

impl FaultInjector {
    /// An injector for `profile` (validate it first; invalid numbers are clamped).
    pub fn new(profile: FaultProfile) -> FaultInjector {
        let buckets = profile
            .rules
            .iter()
            .map(|r| match r.fault {
                Fault::EndpointThrottle { limit_per_s, burst } => {
                    Some(TokenBucket::new(RateLimit {
                        per_s: limit_per_s,
                        burst: burst.unwrap_or(limit_per_s),
                    }))
                }
                _ => None,
            })
            .collect();
        FaultInjector { profile, buckets }
    }

    /// The profile.
    pub fn profile(&self) -> &FaultProfile {
        &self.profile
    }

    /// True when no rule is active at `now` (then both decisions are trivial and draw nothing).
    pub fn is_quiet(&self, now: Instant) -> bool {
        !self.profile.rules.iter().any(|r| r.is_active(now))
    }

    /// Decides what happens to one call at `now`. Draws from `rng` once per active latency,
    /// errors, ack-then-timeout and error-body rule (in rule order), and not at all during an
    /// outage.
    pub fn decide<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) -> FaultDecision {
        let rules = &self.profile.rules;
        if rules
            .iter()
            .any(|r| matches!(r.fault, Fault::EndpointOutage) && r.is_active(now))
        {
            return FaultDecision {
                delay: Duration::ZERO,
                action: FaultAction::NoAnswer,
            };
        }
        let mut delay = Duration::ZERO;
        let mut throttle: Option<Duration> = None;
        let mut error: Option<u16> = None;
        let mut ack_lost = false;
        let mut error_body = false;
        for (rule, bucket) in rules.iter().zip(self.buckets.iter_mut()) {
            if !rule.is_active(now) {
                continue;
            }
            match &rule.fault {
                Fault::EndpointLatency { latency } => delay = delay + sample_latency(latency, rng),
                Fault::EndpointErrors { rate, status } => {
                    if chance(rng, *rate) && error.is_none() {
                        error = Some(*status);
                    }
                }
                Fault::EndpointThrottle { .. } => {
                    if let Some(b) = bucket
                        && let Err(wait) = b.try_take(now)
                    {
                        throttle = Some(throttle.map_or(wait, |t| t.max(wait)));
                    }
                }
                Fault::AckThenTimeout { probability } => ack_lost |= chance(rng, *probability),
                Fault::ErrorBody { probability } => error_body |= chance(rng, *probability),
                Fault::EndpointOutage | Fault::DuplicateDelivery { .. } | Fault::Reorder { .. } => {
                }
            }
        }
        let action = if let Some(retry_after) = throttle {
            FaultAction::Throttle { retry_after }
        } else if let Some(status) = error {
            FaultAction::ServerError { status }
        } else if ack_lost {
            FaultAction::AckThenTimeout
        } else if error_body {
            FaultAction::ErrorBody
        } else {
            FaultAction::Pass
        };
        FaultDecision { delay, action }
    }

    /// Decides the delivery of one outbound event emitted at `now`: a reorder delay uniform in
    /// `[0, window]` (the largest active window), and a duplicate with the active probability
    /// (its own delay drawn the same way).
    pub fn decide_event<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) -> EventDecision {
        let mut window = Duration::ZERO;
        let mut duplicate = false;
        for rule in self.profile.rules.iter().filter(|r| r.is_active(now)) {
            match &rule.fault {
                Fault::Reorder { window: w } => window = window.max(*w),
                Fault::DuplicateDelivery { probability } => duplicate |= chance(rng, *probability),
                _ => {}
            }
        }
        let spread = |rng: &mut R| {
            if window.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_micros(
                    rng.next_u64() % (window.as_micros().saturating_add(1)).max(1),
                )
            }
        };
        let delay = spread(rng);
        let duplicate = duplicate.then(|| spread(rng));
        EventDecision { delay, duplicate }
    }
}

/// A uniform draw in [0, 1) with 53 bits.
fn unit<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// True with probability `p` (one draw, always).
fn chance<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    unit(rng) < p
}

fn sample_latency<R: Rng + ?Sized>(latency: &Latency, rng: &mut R) -> Duration {
    match *latency {
        Latency::Fixed(d) => d,
        Latency::LogNormal { median, sigma } => {
            // Irwin–Hall: the sum of 12 uniforms minus 6 is close to a standard normal (tails cut
            // at ±6σ, fine for latency) and needs only exact arithmetic.
            let z: f64 = (0..12).map(|_| unit(rng)).sum::<f64>() - 6.0;
            let sigma = if sigma.is_finite() {
                sigma.max(0.0)
            } else {
                0.0
            };
            let us = median.as_micros() as f64 * exp_exact(sigma * z);
            Duration::from_micros(us.round() as u64)
        }
    }
}

/// `e^x` with only IEEE-exact operations (+, −, ×, ÷, round), so it gives the same bits on every
/// platform (std's `exp` may differ in the last bit between libms).
fn exp_exact(x: f64) -> f64 {
    const LN2: f64 = std::f64::consts::LN_2;
    let x = x.clamp(-700.0, 700.0);
    let k = (x / LN2).round();
    let r = x - k * LN2;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=18 {
        term *= r / f64::from(i);
        sum += term;
    }
    let pow2 = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    sum * pow2
}

/// Serde for durations as scenario strings (`"250ms"`, `"1d12h"`).
pub mod duration_str {
    use plantloop_core::time::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde for optional durations as scenario strings.
pub mod opt_duration_str {
    use plantloop_core::time::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(d),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| Duration::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_std() {
        for x in [-5.0, -1.0, -0.3, 0.0, 0.1, 0.5, 1.0, 2.5, 10.0] {
            let (a, b) = (exp_exact(x), f64::exp(x));
            assert!(((a - b) / b).abs() < 1e-14, "exp({x}): {a} vs {b}");
        }
    }

    #[test]
    fn windows_are_half_open() {
        let r = FaultRule::during(
            Fault::EndpointOutage,
            Duration::from_secs(10),
            Duration::from_secs(5),
        );
        assert!(!r.is_active(Instant::from_secs(9)));
        assert!(r.is_active(Instant::from_secs(10)));
        assert!(r.is_active(Instant::from_micros(14_999_999)));
        assert!(!r.is_active(Instant::from_secs(15)));
        assert!(FaultRule::always(Fault::EndpointOutage).is_active(Instant::MAX));
    }
}
