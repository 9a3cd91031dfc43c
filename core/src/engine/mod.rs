//! The integration engine: a deterministic state machine in the style of quinn-proto.
//!
//! # Driving it
//! Methods fall in three groups, and a driver calls them in this order, repeatedly:
//! 1. **Inputs** — [`Engine::handle`] with the current time and one [`Input`]: an event from a
//!    system of record, the reply to a call, a timer tick, a restart marker or an operator action.
//!    The returned [`Ack`] says whether an event was accepted, recognised as a duplicate, or pushed
//!    back (the source must retry after the given delay: nothing is dropped).
//! 2. **Outputs** — [`Engine::poll_command`] until `None` (calls to make, each with its idempotency
//!    key and deadline) and [`Engine::poll_audit`] (audit records to store). A durable driver
//!    releases outputs only after the inputs that caused them are synced to the journal.
//! 3. **Timers** — [`Engine::poll_timeout`]: the driver calls `handle(now, Input::Tick)` once `now`
//!    reaches it (or earlier; a tick with nothing due is harmless).
//!
//! The engine never reads a clock, sleeps, does I/O or uses a global RNG: the jitter RNG is seeded at
//! construction and is part of the state, so replaying the same inputs gives the same state.
//!
//! # Outbox
//! Each call belongs to one target and one latency class. Per target there is one queue per class;
//! dispatch always drains critical first, then transactional, then bulk, within the target's
//! in-flight limit, circuit breaker and rate limits. Transient failures are retried with exponential
//! backoff and jitter; non-retryable ones (409, other 4xx) and calls out of retries go to the
//! dead-letter queue with the reason.
//!
//! A 429 pauses the target until its Retry-After and halves the target's congestion window (the
//! calls allowed in flight, at most `in_flight_max`), once per round: replies to calls sent before
//! the last cut do not cut it again. Each window's worth of answered calls widens it by one (AIMD,
//! as TCP does), so a throttled SaaS target settles near the rate it grants instead of receiving
//! `in_flight_max` calls after every pause, nearly all of them refused.

mod config;
mod dead_letters;
mod dedupe;
mod outbox;
mod registry;
mod workflows;

pub use config::*;
pub use dead_letters::{DeadLetter, DeadLetterReason};
pub use registry::Registry;
pub use workflows::Step;

use crate::audit::{AuditAction, AuditRecord, ChainHead};
use crate::call::{Call, CallId, EventRef, IdempotencyKey, Outcome, Request};
use crate::event::Event;
use crate::model::{DispositionDecision, LatencyClass, SerialRange, System};
use crate::sabotage::EngineDefect;
use crate::time::{Duration, Instant};
use dedupe::SeenEvents;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;
use workflows::{Owner, Retry, Workflows};

/// One input to the engine.
// Events dominate the input mix, so boxing them would cost an allocation per input for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// An event from a system of record, validated by [`crate::event::parse_event`].
    Event(Event),
    /// How one attempt of a call ended.
    Reply {
        call: CallId,
        attempt: u32,
        outcome: Outcome,
    },
    /// Timers may be due.
    Tick,
    /// The engine was rebuilt from its journal: calls that were in flight may or may not have
    /// reached their targets and are sent again (looking first where keys are not honoured).
    Restarted,
    /// An operator puts a dead letter back in the outbox once its cause is fixed.
    ReplayDeadLetter(u64),
}

/// The engine's answer to an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ack {
    /// The event was accepted and will be applied (it may still end in the dead-letter queue).
    Accepted,
    /// The event was seen before (same source and id) and was not applied again.
    Duplicate,
    /// The outbox is too full for this event's class: send it again after this delay.
    RetryAfter(Duration),
    /// A non-event input was taken into account.
    Done,
    /// A reply or operator action named something the engine does not know (a stale reply).
    Ignored,
}

/// Counters for reports and the live view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub events_accepted: u64,
    pub duplicates_absorbed: u64,
    pub pushbacks: u64,
    pub calls_started: u64,
    pub calls_done: u64,
    pub attempts: u64,
    pub retries: u64,
    pub lookups: u64,
    pub throttled: u64,
    /// Congestion-window halvings after 429s (at most one per round of calls).
    #[serde(default)]
    pub window_cuts: u64,
    pub timeouts: u64,
    pub stale_replies: u64,
    pub dead_letters: u64,
    pub dead_letters_replayed: u64,
    /// Dead letters the engine replayed by itself once their cause was gone: a released hold
    /// over a confirmation, master data an event waited for (a subset of `dead_letters_replayed`).
    #[serde(default)]
    pub dead_letters_auto_replayed: u64,
    /// Confirmations refused for a hold that was released meanwhile, sent again.
    #[serde(default)]
    pub confirmations_resent: u64,
    /// Production orders the registry forgot (beyond `orders_per_line_max` per line).
    #[serde(default)]
    pub orders_evicted: u64,
    /// Closed or orphaned containments forgotten (`retention`).
    #[serde(default)]
    pub containments_forgotten: u64,
    /// Applied completions forgotten (`retention`).
    #[serde(default)]
    pub completions_forgotten: u64,
    /// Final refusals dropped from a full dead-letter queue (their audit records stay).
    #[serde(default)]
    pub dead_letters_evicted: u64,
    pub breaker_opens: u64,
    pub alarms_filtered: u64,
    pub confirmations_parked: u64,
    pub master_data_superseded: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    Queued,
    InFlight { deadline: Instant, lookup: bool },
    Backoff,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CallState {
    target: System,
    class: LatencyClass,
    key: IdempotencyKey,
    request: Request,
    origin: EventRef,
    causation: Vec<EventRef>,
    owner: Owner,
    /// The number of the latest send (0 before the first). Every send gets its own number, so a
    /// late or duplicated reply never passes for the reply to a later send.
    attempt: u32,
    /// Transient failures so far: the retry budget used, and the backoff exponent.
    failures: u32,
    phase: Phase,
    /// The next attempt must look before it posts.
    needs_lookup: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct TargetState {
    queues: [VecDeque<CallId>; 3],
    in_flight: u32,
    consecutive_failures: u32,
    /// Open until then; at or after it, one probe is let through.
    breaker_open_until: Option<Instant>,
    probe_in_flight: bool,
    /// Honour Retry-After.
    paused_until: Instant,
    /// Congestion window: calls allowed in flight, between 1 and `in_flight_max` (a state saved
    /// before windows existed reads as "wide open").
    #[serde(default = "window_wide_open")]
    window: u32,
    /// Answered calls since the window last widened.
    #[serde(default)]
    window_acks: u32,
    /// When the window was last halved; a 429 to a call sent before then does not halve it again.
    #[serde(default)]
    window_cut_at: Instant,
    /// Rate limit: start of the current one-second window and calls sent in it.
    window_start: Instant,
    window_calls: u32,
    /// Dead letters of transient failures, waiting for the target to answer again.
    parked_dead_letters: Vec<u64>,
    probe_scheduled: bool,
}

fn window_wide_open() -> u32 {
    u32::MAX
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Timer {
    /// Kept in [`Engine::deadlines`], not in the heap.
    CallDeadline {
        call: CallId,
        attempt: u32,
    },
    BackoffOver {
        call: CallId,
        attempt: u32,
    },
    TargetWake {
        target: System,
    },
    DeadLetterProbe {
        target: System,
    },
    EnrichmentExpired {
        nc_slot: u64,
    },
}

/// Entries per engine table ([`Engine::footprint`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Footprint {
    pub containments: usize,
    pub work_order_links: usize,
    pub completions: usize,
    pub dead_letters: usize,
    /// Production orders remembered, over all lines.
    pub orders: usize,
    pub dedupe_entries: usize,
    pub open_calls: usize,
    pub timers: usize,
}

/// The health of one target as the engine sees it, for reports and the live view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetHealth {
    pub queued: [u32; 3],
    pub in_flight: u32,
    /// The congestion window: calls allowed in flight now (halved by 429s, widened by answers).
    pub window: u32,
    pub breaker_open: bool,
    pub parked_dead_letters: u32,
}

/// The integration engine. See the module documentation for how to drive it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Engine {
    config: Config,
    rng: ChaCha8Rng,
    next_call: u64,
    calls: FxHashMap<CallId, CallState>,
    targets: [TargetState; 4],
    queued: [u32; 3],
    timers: BinaryHeap<Reverse<(Instant, u64, Timer)>>,
    timer_seq: u64,
    /// No timer or deadline is due before this (a lower bound, exact after each firing), so that
    /// most inputs skip looking at the timers at all. Not state: zero after a restore.
    #[serde(skip)]
    next_due: Instant,
    /// Deadlines of sends, per target, as (at, seq, call, attempt). A target's deadlines only grow
    /// (now + its fixed call timeout), so a FIFO keeps them in order and a send costs O(1) rather
    /// than a heap push and pop. They fire in (at, seq) order together with `timers`.
    deadlines: [VecDeque<(Instant, u64, CallId, u32)>; 4],
    outbox: VecDeque<Call>,
    audit_out: VecDeque<AuditRecord>,
    chain: ChainHead,
    dead_letters: BTreeMap<u64, DeadLetter>,
    next_dead_letter: u64,
    /// Dead letters of events that could not be applied for want of master data (an NC's or a
    /// breakdown's station unknown): replayed as soon as the registry can place them.
    awaiting_master_data: BTreeSet<u64>,
    /// Events accepted within the dedupe window, by source and id.
    seen: SeenEvents,
    registry: Registry,
    workflows: Workflows,
    stats: Stats,
    now: Instant,
    /// Scratch space for what a workflow step produces, kept to save an allocation per step.
    #[serde(skip)]
    fx: Effects,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("now", &self.now)
            .field("calls", &self.calls.len())
            .field("dead_letters", &self.dead_letters.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A fresh engine. `seed` seeds the jitter RNG; the same seed and inputs give the same state.
    pub fn new(config: Config, seed: u64) -> Engine {
        let targets = std::array::from_fn(|i| TargetState {
            window: config.targets[i].in_flight_max.max(1),
            ..TargetState::default()
        });
        Engine {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_call: 1,
            calls: FxHashMap::default(),
            targets,
            queued: [0; 3],
            timers: BinaryHeap::new(),
            timer_seq: 0,
            next_due: Instant::ZERO,
            deadlines: Default::default(),
            outbox: VecDeque::new(),
            audit_out: VecDeque::new(),
            chain: ChainHead::default(),
            dead_letters: BTreeMap::new(),
            next_dead_letter: 1,
            awaiting_master_data: BTreeSet::new(),
            seen: SeenEvents::default(),
            registry: Registry::default(),
            workflows: Workflows::default(),
            stats: Stats::default(),
            now: Instant::ZERO,
            fx: Effects::default(),
        }
    }

    // ---- getters -------------------------------------------------------------------------------

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// The context registry (asset placements, production orders) as master data built it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
    /// How many entries each of the engine's tables holds: what grows with the plant's history,
    /// to show that retention keeps it flat.
    pub fn footprint(&self) -> Footprint {
        let w = &self.workflows;
        Footprint {
            containments: w.containments_len(),
            work_order_links: w.work_order_links_len(),
            completions: w.completions_len(),
            dead_letters: self.dead_letters.len(),
            orders: self.registry.orders_len(),
            dedupe_entries: self.seen.len(),
            open_calls: self.calls.len(),
            timers: self.timers.len(),
        }
    }
    /// The dead-letter queue, oldest first.
    pub fn dead_letters(&self) -> impl Iterator<Item = &DeadLetter> {
        self.dead_letters.values()
    }
    /// Calls waiting in the outbox per latency class (not yet sent).
    pub fn queued(&self) -> [u32; 3] {
        self.queued
    }
    /// Calls not yet finished (queued, in flight or backing off).
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }
    pub fn target_health(&self, s: System) -> TargetHealth {
        let t = &self.targets[s.index()];
        TargetHealth {
            queued: std::array::from_fn(|i| t.queues[i].len() as u32),
            in_flight: t.in_flight,
            window: t.window.min(self.config.targets[s.index()].in_flight_max),
            breaker_open: t.breaker_open_until.is_some(),
            parked_dead_letters: t.parked_dead_letters.len() as u32,
        }
    }
    /// The time of the latest input.
    pub fn now(&self) -> Instant {
        self.now
    }
    /// True when nothing is left to do: no open call, no timer that could create work.
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.outbox.is_empty()
    }

    // ---- inputs --------------------------------------------------------------------------------

    /// Takes one input at time `now`, which must not go backwards: debug builds assert it, and a
    /// release build treats an earlier `now` as the latest one seen. Fires due timers first.
    pub fn handle(&mut self, now: Instant, input: Input) -> Ack {
        debug_assert!(
            now >= self.now,
            "time went backwards: {now:?} after {:?}",
            self.now
        );
        self.now = self.now.max(now);
        self.fire_timers();
        let ack = match input {
            Input::Event(e) => self.handle_event(e),
            Input::Reply {
                call,
                attempt,
                outcome,
            } => self.handle_reply(call, attempt, outcome),
            Input::Tick => Ack::Done,
            Input::Restarted => {
                self.restart();
                Ack::Done
            }
            Input::ReplayDeadLetter(id) => {
                if self.replay_dead_letter(id) {
                    Ack::Done
                } else {
                    Ack::Ignored
                }
            }
        };
        self.pump();
        ack
    }

    fn handle_event(&mut self, e: Event) -> Ack {
        let origin = EventRef::new(&e.source, &e.id);
        self.seen.expire(
            self.now,
            self.config.dedupe_window,
            self.config.dedupe_entries_max,
        );
        let dedupe = !self.config.has_defect(EngineDefect::NoIngressDedupe);
        let probe = self.seen.probe(&origin);
        if probe.seen {
            if dedupe {
                self.stats.duplicates_absorbed += 1;
                return Ack::Duplicate;
            }
            // The defect: a redelivered event is applied again.
            self.seen.insert_unindexed(self.now, &origin);
        } else if !self.admits(e.class) {
            self.stats.pushbacks += 1;
            return Ack::RetryAfter(self.config.retry_after(e.class));
        } else {
            self.seen.insert(probe, self.now, &origin);
        }
        self.stats.events_accepted += 1;
        let mut fx = std::mem::take(&mut self.fx);
        self.workflows.apply_event(
            &mut self.registry,
            &self.config,
            self.now,
            origin,
            e.class,
            e.data,
            &mut fx,
            &mut self.stats,
        );
        self.apply_effects(&mut fx);
        self.fx = fx;
        Ack::Accepted
    }

    fn admits(&self, class: LatencyClass) -> bool {
        let a = &self.config.admission;
        let non_critical = self.queued[1] + self.queued[2];
        match class {
            LatencyClass::Critical => self.queued[0] < a.critical_queued_max,
            LatencyClass::Transactional => non_critical < a.transactional_queued_max,
            LatencyClass::Bulk => non_critical < a.bulk_queued_max,
        }
    }

    fn handle_reply(&mut self, id: CallId, attempt: u32, outcome: Outcome) -> Ack {
        let Some(st) = self.calls.get_mut(&id) else {
            self.stats.stale_replies += 1;
            return Ack::Ignored;
        };
        let current = st.attempt == attempt && matches!(st.phase, Phase::InFlight { .. });
        if !current {
            // A late reply to an attempt already given up on. A success still counts: the posting
            // happened, and the key makes the pending attempt harmless.
            self.stats.stale_replies += 1;
            if let Outcome::Done { receipt } = outcome {
                self.finish_in_any_phase(id, receipt, AuditAction::Posted);
                return Ack::Done;
            }
            return Ack::Ignored;
        }
        let Phase::InFlight { lookup, deadline } = st.phase else {
            unreachable!("checked above")
        };
        let target = st.target;
        self.end_flight(target);
        match &outcome {
            Outcome::Throttled { .. } => {
                let timeout = self.config.targets[target.index()].call_timeout;
                let sent_at = deadline.saturating_sub(timeout);
                self.window_halve(target, sent_at);
            }
            Outcome::Unavailable { .. } | Outcome::TimedOut => {}
            _ => self.window_widen(target),
        }
        match outcome {
            Outcome::Done { receipt } => self.finish(id, receipt, AuditAction::Posted),
            Outcome::Found {
                receipt: Some(receipt),
            } if lookup => self.finish(id, receipt, AuditAction::FoundExisting),
            Outcome::Found { .. } if lookup => {
                // Not there: post now, ahead of the queue.
                self.calls.get_mut(&id).expect("present").needs_lookup = false;
                self.requeue(id, true);
                self.breaker_success(target);
            }
            Outcome::Found { .. } => {
                self.dead_letter_call(
                    id,
                    DeadLetterReason::Refused {
                        status: 200,
                        detail: "a lookup reply to a posting".into(),
                    },
                );
            }
            Outcome::Throttled { retry_after } => {
                self.stats.throttled += 1;
                let t = &mut self.targets[target.index()];
                // A throttled probe is over: the next one goes once the pause ends.
                t.probe_in_flight = false;
                t.paused_until = t.paused_until.max(self.now + retry_after);
                let wake = t.paused_until;
                self.set_timer(wake, Timer::TargetWake { target });
                self.requeue(id, true);
            }
            o @ (Outcome::Unavailable { .. } | Outcome::TimedOut) => self.transient_failure(id, o),
            Outcome::Conflict { detail } => {
                self.breaker_success(target);
                let timeout = self.config.targets[target.index()].call_timeout;
                if self.requeue_if_released(id, deadline.saturating_sub(timeout)) {
                    return Ack::Done;
                }
                self.dead_letter_call(
                    id,
                    DeadLetterReason::Refused {
                        status: 409,
                        detail,
                    },
                )
            }
            Outcome::Rejected { status, detail } => {
                self.breaker_success(target);
                self.dead_letter_call(id, DeadLetterReason::Refused { status, detail })
            }
        }
        Ack::Done
    }

    fn restart(&mut self) {
        let mut ids: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::InFlight { .. }))
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        for t in &mut self.targets {
            t.in_flight = 0;
            t.probe_in_flight = false;
        }
        for id in ids {
            let honours = {
                let st = &self.calls[&id];
                self.config.target(st.target).honours_idempotency_key
            };
            self.calls.get_mut(&id).expect("present").needs_lookup = !honours;
            self.requeue(id, true);
        }
        self.outbox.clear();
    }

    // ---- outputs -------------------------------------------------------------------------------

    /// The next call to make, if any.
    pub fn poll_command(&mut self) -> Option<Call> {
        self.outbox.pop_front()
    }

    /// The next audit record to store, if any.
    pub fn poll_audit(&mut self) -> Option<AuditRecord> {
        self.audit_out.pop_front()
    }

    /// When the engine next wants `Input::Tick`, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timer().map(|(at, _, _)| at)
    }

    /// Drops unpolled outputs; used by recovery, whose replayed outputs were released before.
    pub fn discard_outputs(&mut self) {
        self.discard_outputs_keeping_audit_after(u64::MAX);
    }

    /// Drops unpolled calls, and the unpolled audit records up to sequence number `seq`. Recovery
    /// uses it to re-issue the audit records a driver had not stored when it crashed: they are
    /// the same records, since the same inputs produce them. (Calls in flight at the crash are
    /// sent again by [`Input::Restarted`] instead.)
    pub fn discard_outputs_keeping_audit_after(&mut self, seq: u64) {
        self.outbox.clear();
        self.audit_out.retain(|r| r.seq > seq);
    }

    // ---- timers --------------------------------------------------------------------------------

    fn set_timer(&mut self, at: Instant, t: Timer) {
        self.next_due = self.next_due.min(at);
        self.timer_seq += 1;
        self.timers.push(Reverse((at, self.timer_seq, t)));
    }

    /// The earliest timer: (at, seq, `None` for the heap or the target whose deadline it is).
    fn next_timer(&self) -> Option<(Instant, u64, Option<usize>)> {
        let mut best = self
            .timers
            .peek()
            .map(|Reverse((at, seq, _))| (*at, *seq, None));
        for (i, q) in self.deadlines.iter().enumerate() {
            if let Some(&(at, seq, _, _)) = q.front()
                && best.is_none_or(|(b_at, b_seq, _)| (at, seq) < (b_at, b_seq))
            {
                best = Some((at, seq, Some(i)));
            }
        }
        best
    }

    fn fire_timers(&mut self) {
        if self.now < self.next_due {
            return;
        }
        // Most due deadlines belong to sends answered long ago. Such a deadline can never fire
        // (a send's attempt number is never reused), so it leaves now, without the ordered walk.
        for q in &mut self.deadlines {
            while let Some(&(at, _, call, attempt)) = q.front() {
                if at > self.now || Self::in_flight(&self.calls, call, attempt) {
                    break;
                }
                q.pop_front();
            }
        }
        while let Some((at, _, source)) = self.next_timer() {
            if at > self.now {
                self.next_due = at;
                return;
            }
            let timer = match source {
                None => self.timers.pop().expect("peeked").0.2,
                Some(i) => {
                    let (_, _, call, attempt) = self.deadlines[i].pop_front().expect("peeked");
                    Timer::CallDeadline { call, attempt }
                }
            };
            match timer {
                Timer::CallDeadline { call, attempt } => {
                    if Self::in_flight(&self.calls, call, attempt) {
                        self.stats.timeouts += 1;
                        let target = self.calls[&call].target;
                        self.end_flight(target);
                        self.transient_failure(call, Outcome::TimedOut);
                    }
                }
                Timer::BackoffOver { call, attempt } => {
                    if (self.calls.get(&call))
                        .is_some_and(|st| st.attempt == attempt && st.phase == Phase::Backoff)
                    {
                        self.requeue(call, false);
                    }
                }
                Timer::TargetWake { .. } => {}
                Timer::DeadLetterProbe { target } => {
                    let t = &mut self.targets[target.index()];
                    t.probe_scheduled = false;
                    if t.in_flight == 0 && !t.parked_dead_letters.is_empty() {
                        let id = t.parked_dead_letters.remove(0);
                        self.replay_dead_letter(id);
                    }
                    if !self.targets[target.index()].parked_dead_letters.is_empty() {
                        self.schedule_probe(target);
                    }
                }
                Timer::EnrichmentExpired { nc_slot } => {
                    let mut fx = std::mem::take(&mut self.fx);
                    self.workflows.enrichment_expired(nc_slot, &mut fx);
                    self.apply_effects(&mut fx);
                    self.fx = fx;
                }
            }
        }
        self.next_due = Instant::MAX;
    }

    /// True while `attempt` of `call` waits for its reply.
    fn in_flight(calls: &FxHashMap<CallId, CallState>, call: CallId, attempt: u32) -> bool {
        calls
            .get(&call)
            .is_some_and(|s| s.attempt == attempt && matches!(s.phase, Phase::InFlight { .. }))
    }

    /// Applies and empties `fx`.
    fn apply_effects(&mut self, fx: &mut Effects) {
        for c in fx.calls.drain(..) {
            self.enqueue(c);
        }
        for Unprocessable {
            origin,
            causation,
            class,
            detail,
            retry,
        } in fx.unprocessable.drain(..)
        {
            let dl = DeadLetter {
                id: self.next_dead_letter,
                at: self.now,
                reason: DeadLetterReason::Unprocessable { detail },
                origin,
                target: None,
                key: None,
                request: None,
                class,
                owner: Owner::None,
                causation,
                retry: Some(retry),
            };
            self.next_dead_letter += 1;
            let awaits = match &dl.retry {
                Some(Retry::Contain(_)) => true,
                Some(Retry::Breakdown { .. }) => !self
                    .config
                    .has_defect(EngineDefect::BreakdownBeforePlacementLost),
                _ => false,
            };
            if awaits {
                self.awaiting_master_data.insert(dl.id);
            }
            self.record_dead_letter(dl);
        }
        for (at, slot) in fx.enrichment_timers.drain(..) {
            self.set_timer(at, Timer::EnrichmentExpired { nc_slot: slot });
        }
        let releases = std::mem::take(&mut fx.releases);
        for (ranges, decision) in releases {
            self.replay_held_confirmations(&ranges, decision);
        }
        if std::mem::take(&mut fx.registry_grew) {
            self.replay_awaiting_master_data();
        }
    }
}

/// A call a workflow wants made.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NewCall {
    target: System,
    class: LatencyClass,
    key: IdempotencyKey,
    request: Request,
    origin: EventRef,
    causation: Vec<EventRef>,
    owner: Owner,
    needs_lookup: bool,
}

/// An event a workflow could not apply, for the dead-letter queue.
#[derive(Clone, Debug)]
struct Unprocessable {
    origin: EventRef,
    causation: Vec<EventRef>,
    class: LatencyClass,
    detail: String,
    retry: Retry,
}

impl NewCall {
    fn new(
        target: System,
        class: LatencyClass,
        key: impl Into<Arc<str>>,
        request: Request,
        origin: &EventRef,
        causation: Vec<EventRef>,
        owner: Owner,
    ) -> NewCall {
        NewCall {
            target,
            class,
            key: IdempotencyKey(key.into()),
            request,
            origin: origin.clone(),
            causation,
            owner,
            needs_lookup: false,
        }
    }
}

/// What a workflow step produced, applied by the engine afterwards.
#[derive(Clone, Debug, Default)]
struct Effects {
    calls: Vec<NewCall>,
    unprocessable: Vec<Unprocessable>,
    enrichment_timers: Vec<(Instant, u64)>,
    /// Holds released (their serials) with the disposition's decision: dead-lettered
    /// confirmations under them go again.
    releases: Vec<(Vec<SerialRange>, Option<DispositionDecision>)>,
    /// The registry learnt a placement or an order: events waiting for master data may apply.
    registry_grew: bool,
}

impl Effects {
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        target: System,
        class: LatencyClass,
        key: impl Into<Arc<str>>,
        request: Request,
        origin: &EventRef,
        causation: Vec<EventRef>,
        owner: Owner,
    ) {
        self.calls.push(NewCall::new(
            target, class, key, request, origin, causation, owner,
        ));
    }
}
