//! Stateful mock ERP, QMS, CMMS and MES systems of record, as pure state machines with ledgers,
//! personalities and fault profiles.
//!
//! The mocks stand in for the systems the integration core connects. They keep the domain rules
//! of the real systems (a hold can only be released once, held serials cannot be confirmed, a work
//! order completes once, master data never goes back a version), so that a bug in the core shows up
//! as a refused call or as a wrong **ledger** — and the invariant checker judges a run from ledgers
//! only.
//!
//! # Determinism
//! Nothing here does I/O, reads a clock, spawns, sleeps or draws from a global RNG. Time comes in as
//! `now: Instant` with every call; randomness (fault profiles only) comes from an RNG the caller
//! hands in. The same calls at the same instants give the same replies, ledgers and events, bit for
//! bit. The simulator drives the mocks in-process; `mocks-http` wraps the same types in axum servers.
//!
//! # Shape of every system
//! [`erp::Erp`], [`qms::Qms`], [`cmms::Cmms`] and [`mes::Mes`] share one shape (the trait
//! [`SystemOfRecord`] names it, and each type also has the methods inherently):
//! - **integration API** — `apply(now, key, &Request) -> Reply`: what the core asks. The reply is an
//!   HTTP-like status with a receipt or a problem; [`Reply::outcome`] maps it onto the engine's
//!   [`Outcome`](plantloop_core::call::Outcome). A request for another system gets 404;
//!   `LookupPosting` is answered by every system.
//! - **operator API** — inherent methods named after what the plant or people do
//!   (`release_order`, `record_inspection`, `complete_work`, `unit_completed`, …). They return
//!   `Result<_, OperatorError>`; the HTTP layer maps [`OperatorError::status`].
//! - **outputs** — `poll_event() -> Option<Event>` drains the outbox (CloudEvents, source `/erp`,
//!   `/qms`, `/cmms`, `/plants/{plant}/mes`, ids a per-source counter); `ledger()` is every posting.
//! - **queries** — getters for the state a checker or the plant model needs (`is_stopped`,
//!   `hold`, `work_order`, …).
//!
//! The front desk every `apply` passes first (rate limit, idempotency keys, lookups) is set by the
//! [`Personality`]; see [`personality`] for the table of what each one does.
//!
//! # Status codes
//! 201 a new posting · 200 a lookup, a no-op (the state already is what was asked, or the same
//! master-data version again) or a repeated key whose first reply was 200 · 404 a request for
//! another system · 409 the request contradicts the state (an unknown hold/order/NC/station, an
//! invalid transition, held serials, an older master-data version) · 422 a field's value is wrong
//! (`field` names it) or a key reused for another request · 429 rate-limited.
//!
//! # Faults
//! [`fault`] holds fault profiles (latency, 5xx, outage, throttle, duplicated/reordered events,
//! ack-then-timeout, 200 with an error body) as data, and a seeded `decide` that both the simulator
//! and the HTTP layer's tower middleware use.

pub mod cmms;
mod common;
pub mod erp;
pub mod fault;
pub mod ledger;
pub mod mes;
pub mod personality;
pub mod qms;
pub mod reply;

pub use common::HeldRecord;
pub use ledger::{Ledger, LedgerEntry, Origin, Posting, PostingKind};
pub use personality::{Personality, RateLimit, TokenBucket};
pub use reply::{Problem, ProblemKind, Receipt, Reply, ReplyBody};

use plantloop_core::System;
use plantloop_core::call::{IdempotencyKey, Request};
use plantloop_core::event::Event;
use plantloop_core::time::Instant;

/// What the four mock systems have in common, for drivers that hold them side by side.
pub trait SystemOfRecord {
    /// Which system this is.
    fn system(&self) -> System;
    /// Its personality.
    fn personality(&self) -> Personality;
    /// The CloudEvents `source` of its events.
    fn source(&self) -> &str;
    /// Serves one integration call at `now`, with the request's Idempotency-Key if it had one.
    fn apply(&mut self, now: Instant, key: Option<&IdempotencyKey>, request: &Request) -> Reply;
    /// The next outbound event, oldest first.
    fn poll_event(&mut self) -> Option<Event>;
    /// Events emitted and not yet polled.
    fn pending_events(&self) -> usize;
    /// Every posting so far.
    fn ledger(&self) -> &Ledger;
    /// Replaces the rate limit (`None`: unlimited). SaaS systems start with
    /// [`RateLimit::SAAS_DEFAULT`], the others unlimited.
    fn set_rate_limit(&mut self, limit: Option<RateLimit>);
}

/// Why an operator-API call was refused. Nothing was posted or emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// The object does not exist.
    #[error("{what} {id} does not exist")]
    Unknown { what: &'static str, id: String },
    /// An object with this id already exists.
    #[error("{what} {id} already exists")]
    Duplicate { what: &'static str, id: String },
    /// The object's state does not allow it (a work order not open, an NC already dispositioned…).
    #[error("{what} {id}: {reason}")]
    State {
        what: &'static str,
        id: String,
        reason: String,
    },
    /// A value is invalid.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl OperatorError {
    /// The HTTP status for this error: 409 for an unknown object, a duplicate or a state conflict
    /// (the operator acted on state it could not see), 422 for an invalid value.
    pub fn status(&self) -> u16 {
        match self {
            OperatorError::Unknown { .. }
            | OperatorError::Duplicate { .. }
            | OperatorError::State { .. } => reply::CONFLICT,
            OperatorError::Invalid { .. } => reply::UNPROCESSABLE,
        }
    }

    pub(crate) fn unknown(what: &'static str, id: impl std::fmt::Display) -> OperatorError {
        OperatorError::Unknown {
            what,
            id: id.to_string(),
        }
    }

    pub(crate) fn state(
        what: &'static str,
        id: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> OperatorError {
        OperatorError::State {
            what,
            id: id.to_string(),
            reason: reason.into(),
        }
    }
}

/// Implements [`SystemOfRecord`] and the same methods inherently, for a system struct with fields
/// `desk`, `ledger` and `outbox` and a method `handle(&mut self…)`.
macro_rules! system_of_record {
    ($ty:ty, $system:expr) => {
        impl $ty {
            /// Which system this is.
            pub fn system(&self) -> plantloop_core::System {
                $system
            }
            /// Its personality.
            pub fn personality(&self) -> $crate::Personality {
                self.desk.personality()
            }
            /// The CloudEvents `source` of its events.
            pub fn source(&self) -> &str {
                self.outbox.source()
            }
            /// The next outbound event, oldest first.
            pub fn poll_event(&mut self) -> Option<plantloop_core::event::Event> {
                self.outbox.pop()
            }
            /// Events emitted and not yet polled.
            pub fn pending_events(&self) -> usize {
                self.outbox.len()
            }
            /// Events emitted so far, polled or not.
            pub fn events_emitted(&self) -> u64 {
                self.outbox.emitted()
            }
            /// Every posting so far.
            pub fn ledger(&self) -> &$crate::Ledger {
                &self.ledger
            }
            /// True when events go out by webhook only (the HTTP layer offers no pull feed).
            pub fn webhook_only(&self) -> bool {
                self.desk.personality().webhook_only()
            }
            /// Replaces the rate limit (`None`: unlimited).
            pub fn set_rate_limit(&mut self, limit: Option<$crate::RateLimit>) {
                self.desk.set_rate_limit(limit);
            }
        }

        impl $crate::SystemOfRecord for $ty {
            fn system(&self) -> plantloop_core::System {
                <$ty>::system(self)
            }
            fn personality(&self) -> $crate::Personality {
                <$ty>::personality(self)
            }
            fn source(&self) -> &str {
                <$ty>::source(self)
            }
            fn apply(
                &mut self,
                now: plantloop_core::time::Instant,
                key: Option<&plantloop_core::call::IdempotencyKey>,
                request: &plantloop_core::call::Request,
            ) -> $crate::Reply {
                <$ty>::apply(self, now, key, request)
            }
            fn poll_event(&mut self) -> Option<plantloop_core::event::Event> {
                <$ty>::poll_event(self)
            }
            fn pending_events(&self) -> usize {
                <$ty>::pending_events(self)
            }
            fn ledger(&self) -> &$crate::Ledger {
                <$ty>::ledger(self)
            }
            fn set_rate_limit(&mut self, limit: Option<$crate::RateLimit>) {
                <$ty>::set_rate_limit(self, limit)
            }
        }
    };
}
pub(crate) use system_of_record;
