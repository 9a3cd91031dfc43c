//! Personalities (scenario `[systems]`): how a system treats idempotency keys, rate and events.
//!
//! The same domain rules run under every personality; what differs is the front desk ([`Desk`])
//! every integration call passes first, and two state-command rules:
//!
//! | | Modern | Legacy | Saas |
//! |---|---|---|---|
//! | repeated Idempotency-Key | first 2xx reply, nothing posted | **posts again** | first 2xx reply, nothing posted |
//! | key of a refused request (4xx) | free: stores nothing | free | free: stores nothing |
//! | key reused for another request | 422 | (not checked) | 422 |
//! | key stored as external reference, `LookupPosting` | yes | yes | yes |
//! | re-asserting the current state (stop a stopped station, set the current order status) | 200 no-op, the earlier receipt | **posts again** | 200 no-op |
//! | rate limit | none | none | token bucket, 429 + Retry-After |
//! | outbound events | pull or webhook | pull or webhook | webhook only |

use crate::reply::{ProblemKind, Receipt, Reply, ReplyBody};
use plantloop_core::call::{IdempotencyKey, Request};
use plantloop_core::time::{Duration, Instant};
use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};

/// How a mock system behaves towards its clients (scenario `[systems]`, default `modern`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Personality {
    /// Honours Idempotency-Key.
    #[default]
    Modern,
    /// Ignores Idempotency-Key for dedupe (a retry posts again), but stores it as the posting's
    /// external reference, so the core can look before it posts.
    Legacy,
    /// Honours Idempotency-Key, is rate-limited, and sends events by webhook only.
    Saas,
}

impl Personality {
    /// All personalities.
    pub const ALL: [Personality; 3] = [Personality::Modern, Personality::Legacy, Personality::Saas];

    /// The scenario name (`modern`, `legacy`, `saas`).
    pub fn as_str(self) -> &'static str {
        match self {
            Personality::Modern => "modern",
            Personality::Legacy => "legacy",
            Personality::Saas => "saas",
        }
    }

    /// Parses the scenario name.
    pub fn parse(s: &str) -> Option<Personality> {
        Personality::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// True when a repeated Idempotency-Key returns the first reply and posts nothing.
    pub fn honours_keys(self) -> bool {
        !matches!(self, Personality::Legacy)
    }

    /// True when re-asserting the current state posts again instead of answering a no-op.
    pub fn reposts_state(self) -> bool {
        matches!(self, Personality::Legacy)
    }

    /// True when calls are rate-limited.
    pub fn is_rate_limited(self) -> bool {
        matches!(self, Personality::Saas)
    }

    /// True when outbound events go out by webhook only (no pull feed); the HTTP layer uses it.
    pub fn webhook_only(self) -> bool {
        matches!(self, Personality::Saas)
    }
}

/// A rate limit: `per_s` calls per second on average, bursts of up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_s: u32,
    pub burst: u32,
}

impl RateLimit {
    /// The default limit of a SaaS personality: 50 calls/s, bursts of 100.
    pub const SAAS_DEFAULT: RateLimit = RateLimit {
        per_s: 50,
        burst: 100,
    };
}

/// One token, in the bucket's fixed-point units.
const TOKEN: u64 = 1_000_000;

/// A token bucket over handed-in time, in exact integer arithmetic (one token = 10⁶ units, refilled
/// at `per_s` units per microsecond), so the same calls at the same instants always get the same
/// answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate_per_s: u64,
    capacity: u64,
    units: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. A limit of 0 per second never refills; a burst of 0 is taken as 1.
    pub fn new(limit: RateLimit) -> TokenBucket {
        let capacity = u64::from(limit.burst.max(1)) * TOKEN;
        TokenBucket {
            rate_per_s: u64::from(limit.per_s),
            capacity,
            units: capacity,
            last: None,
        }
    }

    /// Takes one token at `now`, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(last) = self.last {
            let dt = now.saturating_since(last).as_micros();
            self.units = self
                .units
                .saturating_add(dt.saturating_mul(self.rate_per_s))
                .min(self.capacity);
        }
        if self.last.is_none_or(|l| now > l) {
            self.last = Some(now);
        }
        if self.units >= TOKEN {
            self.units -= TOKEN;
            Ok(())
        } else if self.rate_per_s == 0 {
            Err(Duration::MAX)
        } else {
            Err(Duration::from_micros(
                (TOKEN - self.units).div_ceil(self.rate_per_s),
            ))
        }
    }
}

/// What a system remembers about one idempotency key (kept small: one per posting).
#[derive(Clone, Debug)]
struct KeyRecord {
    /// Hash of the first request with this key (honouring personalities only).
    fingerprint: u64,
    /// The first reply (honouring personalities only).
    reply: StoredReply,
    /// The receipt of the first accepted (2xx) request with this key.
    accepted: Option<Receipt>,
}

/// A remembered reply: receipts inline, anything else boxed (rare).
#[derive(Clone, Debug)]
enum StoredReply {
    None,
    Receipt { status: u16, receipt: Receipt },
    Other(Box<Reply>),
}

impl StoredReply {
    fn new(reply: &Reply) -> StoredReply {
        match (&reply.body, reply.retry_after) {
            (ReplyBody::Receipt(r), None) => StoredReply::Receipt {
                status: reply.status,
                receipt: *r,
            },
            _ => StoredReply::Other(Box::new(reply.clone())),
        }
    }

    fn get(&self) -> Option<Reply> {
        match self {
            StoredReply::None => None,
            StoredReply::Receipt { status, receipt } => Some(Reply {
                status: *status,
                body: ReplyBody::Receipt(*receipt),
                retry_after: None,
            }),
            StoredReply::Other(r) => Some((**r).clone()),
        }
    }
}

/// The front desk every integration call passes: rate limit, lookups, idempotency keys.
#[derive(Clone, Debug)]
pub(crate) struct Desk {
    personality: Personality,
    bucket: Option<TokenBucket>,
    keys: FxHashMap<IdempotencyKey, KeyRecord>,
}

impl Desk {
    pub(crate) fn new(personality: Personality) -> Desk {
        let bucket = personality
            .is_rate_limited()
            .then(|| TokenBucket::new(RateLimit::SAAS_DEFAULT));
        Desk {
            personality,
            bucket,
            keys: FxHashMap::default(),
        }
    }

    pub(crate) fn personality(&self) -> Personality {
        self.personality
    }

    /// Replaces the rate limit (any personality; `None` removes it).
    pub(crate) fn set_rate_limit(&mut self, limit: Option<RateLimit>) {
        self.bucket = limit.map(TokenBucket::new);
    }

    /// Serves one call: throttle, answer lookups, replay repeated keys, else run `handle` and
    /// remember its reply under the key if it succeeded. A refusal stores nothing: the request
    /// posted nothing, and the same key may be sent again once its cause is gone (a confirmation
    /// refused while a hold was in force goes through after the release).
    pub(crate) fn serve(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        request: &Request,
        handle: impl FnOnce() -> Reply,
    ) -> Reply {
        if let Some(bucket) = &mut self.bucket
            && let Err(wait) = bucket.try_take(now)
        {
            return Reply::throttled(wait);
        }
        if let Request::LookupPosting { key: wanted } = request {
            return Reply::lookup(self.keys.get(wanted).and_then(|r| r.accepted));
        }
        let Some(key) = key else {
            return handle();
        };
        let honours = self.personality.honours_keys();
        let fingerprint = if honours { fingerprint(request) } else { 0 };
        if honours && let Some(rec) = self.keys.get(key) {
            if rec.fingerprint != fingerprint {
                return Reply::problem(
                    ProblemKind::KeyReuse,
                    format!("idempotency key {key} was first used for a different request"),
                    Some("Idempotency-Key"),
                );
            }
            if let Some(reply) = rec.reply.get() {
                return reply;
            }
        }
        let reply = handle();
        if !reply.is_success() {
            return reply;
        }
        let accepted = reply.receipt();
        {
            match self.keys.entry(key.clone()) {
                Entry::Occupied(mut known) => {
                    let rec = known.get_mut();
                    if rec.accepted.is_none() {
                        rec.accepted = accepted;
                    }
                }
                Entry::Vacant(new) => {
                    let reply = if honours {
                        StoredReply::new(&reply)
                    } else {
                        StoredReply::None
                    };
                    new.insert(KeyRecord {
                        fingerprint,
                        reply,
                        accepted,
                    });
                }
            }
        }
        reply
    }
}

fn fingerprint(request: &Request) -> u64 {
    let mut h = FxHasher::default();
    request.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_exactly() {
        let mut b = TokenBucket::new(RateLimit { per_s: 2, burst: 2 });
        let t0 = Instant::from_secs(10);
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        assert_eq!(b.try_take(t0), Err(Duration::from_millis(500)));
        assert_eq!(
            b.try_take(t0 + Duration::from_millis(499)),
            Err(Duration::from_millis(1))
        );
        assert!(b.try_take(t0 + Duration::from_millis(500)).is_ok());
        // never more than the burst
        let later = t0 + Duration::from_secs(3600);
        assert!(b.try_take(later).is_ok());
        assert!(b.try_take(later).is_ok());
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn personalities_parse() {
        for p in Personality::ALL {
            assert_eq!(Personality::parse(p.as_str()), Some(p));
        }
        assert_eq!(Personality::parse("cloud"), None);
    }
}
