//! A tiny in-memory world for driving the engine in tests, in the spirit of quinn's `Pair`: fake
//! ERP / QMS / CMMS / MES targets that keep a ledger of postings, a network that delivers events and
//! replies in virtual time, and a bounded step count so that a livelock fails instead of hanging.
//!
//! Targets are "modern" (a repeated idempotency key returns the first receipt and posts nothing) or
//! "legacy" (a repeated key posts again; `LookupPosting` answers by key). A [`Policy`] decides per
//! call how it ends: done, unavailable, timed out or lost (each with or without the posting having
//! happened: ack-then-timeout), throttled, conflict, rejected; and how long the reply takes and
//! whether the network duplicates it.
//!
//! The engine runs bare or behind a [`DurableEngine`] over a [`MemoryJournal`] that the world can
//! crash after any input, before or after the journal sync; targets keep their ledgers across a
//! crash, replies in flight to the dead process are lost, and the source re-sends every event it did
//! not see acknowledged.

#![allow(dead_code)]

pub mod crash;

use plantloop_core::audit::AuditRecord;
use plantloop_core::call::{Call, CallId, IdempotencyKey, Outcome, Request};
use plantloop_core::durable::{DurableEngine, Recovery};
use plantloop_core::engine::{Ack, Config, Engine, Input};
use plantloop_core::event::{Event, EventData, MachineStateChanged};
use plantloop_core::journal::{Journal, MemoryJournal};
use plantloop_core::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

// ---- targets ------------------------------------------------------------------------------------

/// One posting a target made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    pub at: Instant,
    pub key: IdempotencyKey,
    pub request: Request,
    pub receipt: String,
}

/// A fake system of record with a ledger.
#[derive(Clone, Debug)]
pub struct Target {
    pub system: System,
    /// Posts again on a repeated key; answers `LookupPosting`.
    pub legacy: bool,
    pub ledger: Vec<Posting>,
    receipts: HashMap<IdempotencyKey, String>,
    /// Postings a modern target absorbed because their key was known.
    pub deduped: u64,
    pub lookups: u64,
}

impl Target {
    fn new(system: System) -> Target {
        Target {
            system,
            legacy: false,
            ledger: vec![],
            receipts: HashMap::new(),
            deduped: 0,
            lookups: 0,
        }
    }

    /// Applies a request as the target's books would; returns the success outcome.
    fn apply(&mut self, now: Instant, call: &Call) -> Outcome {
        if let Request::LookupPosting { key } = &call.request {
            self.lookups += 1;
            return Outcome::Found {
                receipt: self.receipts.get(key).cloned(),
            };
        }
        if !self.legacy
            && let Some(r) = self.receipts.get(&call.key)
        {
            self.deduped += 1;
            return Outcome::Done { receipt: r.clone() };
        }
        let receipt = format!("{}-{}", self.system, self.ledger.len() + 1);
        self.ledger.push(Posting {
            at: now,
            key: call.key.clone(),
            request: call.request.clone(),
            receipt: receipt.clone(),
        });
        self.receipts
            .entry(call.key.clone())
            .or_insert_with(|| receipt.clone());
        Outcome::Done { receipt }
    }

    /// Keys posted more than once (a duplicate posting).
    pub fn duplicate_keys(&self) -> Vec<String> {
        let mut n: BTreeMap<&str, u32> = BTreeMap::new();
        for p in &self.ledger {
            *n.entry(p.key.as_str()).or_default() += 1;
        }
        n.into_iter()
            .filter(|(_, c)| *c > 1)
            .map(|(k, _)| k.to_owned())
            .collect()
    }

    pub fn keys(&self) -> Vec<String> {
        self.ledger.iter().map(|p| p.key.0.to_string()).collect()
    }

    pub fn find(&self, key: &str) -> Option<&Posting> {
        self.ledger.iter().find(|p| p.key.as_str() == key)
    }

    /// Index in the ledger of the first posting with this key.
    pub fn position(&self, key: &str) -> Option<usize> {
        self.ledger.iter().position(|p| p.key.as_str() == key)
    }
}

// ---- delivery policy ------------------------------------------------------------------------------

/// How one call ends, decided by the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The target serves it (posts, or answers the lookup) and replies.
    Done,
    /// 5xx; `posted`: the target posted before failing.
    Unavailable { posted: bool },
    /// The driver reports a timeout; `posted`: ack-then-timeout.
    TimedOut { posted: bool },
    /// No reply ever comes: the engine's own deadline must fire.
    Lost { posted: bool },
    /// 429 with this Retry-After.
    Throttled(Duration),
    /// 409.
    Conflict,
    /// Another 4xx.
    Rejected(u16),
}

/// What the network does with one call: the delivery, the reply latency and, optionally, a second
/// copy of the reply after this further delay.
#[derive(Clone, Debug)]
pub struct Plan {
    pub delivery: Delivery,
    pub latency: Duration,
    pub duplicate_after: Option<Duration>,
}

impl From<Delivery> for Plan {
    fn from(delivery: Delivery) -> Plan {
        Plan {
            delivery,
            latency: Duration::from_millis(1),
            duplicate_after: None,
        }
    }
}

/// Decides per call (and the time it is made) how it ends.
pub type Policy = Box<dyn FnMut(&Call, Instant) -> Plan>;

pub fn always_done() -> Policy {
    Box::new(|_, _| Delivery::Done.into())
}

// ---- the world ------------------------------------------------------------------------------------

/// A journal the world can crash: it loses what was not synced and is opened again.
pub trait CrashJournal: Journal {
    /// Loses every record not synced, as a process crash would, and reopens.
    fn crash(self: Box<Self>) -> Box<dyn CrashJournal>;
}

impl CrashJournal for MemoryJournal {
    fn crash(mut self: Box<Self>) -> Box<dyn CrashJournal> {
        MemoryJournal::crash(&mut self);
        self
    }
}

// One world has one host: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Host {
    Plain(Engine),
    Durable {
        de: Option<DurableEngine<Box<dyn CrashJournal>>>,
        config: Config,
        seed: u64,
        snapshot_every: u64,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Net {
    Event(Event),
    Reply {
        call: CallId,
        attempt: u32,
        outcome: Outcome,
    },
}

/// When to crash a durable engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the k-th input was handled, before the journal sync: the input and its outputs are
    /// lost, its ack never reaches the source.
    BeforeSync(u64),
    /// After the k-th input was synced, before its outputs were released: the input is durable,
    /// but its calls were never made, its audit records never stored, its ack never seen.
    AfterSync(u64),
    /// After the k-th input was synced and its outputs released.
    AfterRelease(u64),
}

/// The world: an engine, four targets, a network and a source of events.
pub struct World {
    host: Host,
    pub now: Instant,
    pub targets: [Target; 4],
    pub policy: Policy,
    net: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    net_items: HashMap<usize, Net>,
    net_seq: u64,
    /// Every call the engine released, with the time it was made.
    pub calls: Vec<(Instant, Call)>,
    /// Every audit record the engine released.
    pub audit: Vec<AuditRecord>,
    /// Every (event id, ack) the source saw.
    pub acks: Vec<(String, Ack)>,
    /// When each event was first accepted (by event id).
    pub accepted_at: HashMap<String, Instant>,
    /// When each event first reached the engine (by event id), accepted or not.
    pub first_delivered: HashMap<String, Instant>,
    /// Inputs handed to the engine (not counting recovery's own `Restarted`).
    pub inputs: u64,
    pub crash_points: Vec<CrashPoint>,
    pub recoveries: Vec<Recovery>,
    /// How long the source waits before re-sending an event whose ack it did not see.
    pub resend_after: Duration,
}

pub const STEPS_MAX: u64 = 200_000;

impl World {
    pub fn new(config: Config, seed: u64) -> World {
        World::with_host(Host::Plain(Engine::new(config, seed)))
    }

    /// An engine behind a durable in-memory journal, synced after every input.
    pub fn durable(config: Config, seed: u64, snapshot_every: u64) -> World {
        World::durable_on(Box::new(MemoryJournal::new()), config, seed, snapshot_every)
    }

    /// An engine behind the given (empty) journal, synced after every input.
    pub fn durable_on(
        journal: Box<dyn CrashJournal>,
        config: Config,
        seed: u64,
        snapshot_every: u64,
    ) -> World {
        let (de, rec) = DurableEngine::open(journal, config.clone(), seed, snapshot_every)
            .expect("a fresh journal opens");
        assert_eq!(rec, Recovery::default());
        World::with_host(Host::Durable {
            de: Some(de),
            config,
            seed,
            snapshot_every,
        })
    }

    fn with_host(host: Host) -> World {
        World {
            host,
            now: Instant::ZERO,
            targets: System::ALL.map(Target::new),
            policy: always_done(),
            net: BinaryHeap::new(),
            net_items: HashMap::new(),
            net_seq: 0,
            calls: vec![],
            audit: vec![],
            acks: vec![],
            accepted_at: HashMap::new(),
            first_delivered: HashMap::new(),
            inputs: 0,
            crash_points: vec![],
            recoveries: vec![],
            resend_after: Duration::from_secs(1),
        }
    }

    pub fn set_policy(&mut self, p: impl FnMut(&Call, Instant) -> Plan + 'static) {
        self.policy = Box::new(p);
    }

    pub fn target(&self, s: System) -> &Target {
        &self.targets[s.index()]
    }
    pub fn target_mut(&mut self, s: System) -> &mut Target {
        &mut self.targets[s.index()]
    }
    pub fn erp(&self) -> &Target {
        self.target(System::Erp)
    }
    pub fn cmms(&self) -> &Target {
        self.target(System::Cmms)
    }
    pub fn mes(&self) -> &Target {
        self.target(System::Mes)
    }
    pub fn qms(&self) -> &Target {
        self.target(System::Qms)
    }

    pub fn engine(&self) -> &Engine {
        match &self.host {
            Host::Plain(e) => e,
            Host::Durable { de, .. } => de.as_ref().expect("engine open").engine(),
        }
    }

    fn engine_mut(&mut self) -> &mut Engine {
        match &mut self.host {
            Host::Plain(e) => e,
            Host::Durable { de, .. } => de.as_mut().expect("engine open").engine_mut(),
        }
    }

    /// Every posting of every target: (system, key).
    pub fn all_postings(&self) -> Vec<(System, String)> {
        let mut v: Vec<_> = self
            .targets
            .iter()
            .flat_map(|t| t.ledger.iter().map(|p| (t.system, p.key.0.to_string())))
            .collect();
        v.sort();
        v
    }

    // ---- network ------------------------------------------------------------------------------

    fn schedule(&mut self, at: Instant, item: Net) {
        self.net_seq += 1;
        let slot = self.net_seq as usize;
        self.net_items.insert(slot, item);
        self.net.push(Reverse((at, self.net_seq, slot)));
    }

    /// The source sends `e` now (and again until it is acknowledged).
    pub fn send(&mut self, e: Event) {
        self.schedule(self.now, Net::Event(e));
    }

    /// The source sends `e` after `delay`.
    pub fn send_after(&mut self, delay: Duration, e: Event) {
        self.schedule(self.now + delay, Net::Event(e));
    }

    /// Hands one input to the engine, syncing and releasing outputs; `None` when a crash swallowed
    /// the input before its ack.
    pub fn input(&mut self, input: Input) -> Option<Ack> {
        self.inputs += 1;
        let k = self.inputs;
        let now = self.now;
        let ack = match &mut self.host {
            Host::Plain(e) => e.handle(now, input),
            Host::Durable { de, .. } => {
                let de = de.as_mut().expect("engine open");
                let ack = de.handle(now, input).expect("journal append");
                if self.crash_points.contains(&CrashPoint::BeforeSync(k)) {
                    self.crash();
                    return None;
                }
                de.sync().expect("journal sync");
                if self.crash_points.contains(&CrashPoint::AfterSync(k)) {
                    self.crash();
                    return None;
                }
                ack
            }
        };
        self.release();
        if self.crash_points.contains(&CrashPoint::AfterRelease(k)) {
            self.crash();
        }
        Some(ack)
    }

    /// Throws the engine away, loses the journal's unsynced tail and recovers.
    pub fn crash(&mut self) {
        let Host::Durable {
            de,
            config,
            seed,
            snapshot_every,
        } = &mut self.host
        else {
            panic!("only a durable world can crash");
        };
        let journal = de.take().expect("engine open").into_journal().crash();
        // The audit store survives the crash; what it lacks, the engine issues again.
        let stored = self.audit.last().map_or(0, |r| r.seq);
        let (mut fresh, rec) = DurableEngine::open_after_audit(
            journal,
            config.clone(),
            *seed,
            *snapshot_every,
            stored,
        )
        .expect("recovery succeeds");
        fresh.sync().expect("journal sync");
        *de = Some(fresh);
        self.recoveries.push(rec);
        // Replies in flight to the dead process are lost; events are not (the source re-sends).
        let items = std::mem::take(&mut self.net_items);
        let heap = std::mem::take(&mut self.net);
        for Reverse((at, seq, slot)) in heap {
            if let Some(Net::Event(e)) = items.get(&slot) {
                self.net_items.insert(slot, Net::Event(e.clone()));
                self.net.push(Reverse((at, seq, slot)));
            }
        }
        self.release();
    }

    /// Polls the engine's outputs: audit records are stored, calls are delivered to the targets.
    fn release(&mut self) {
        while let Some(r) = self.engine_mut().poll_audit() {
            // The store takes the chain in order, without gaps or repeats.
            let last = self.audit.last().map_or(0, |l| l.seq);
            assert_eq!(r.seq, last + 1, "audit record out of sequence: {r:?}");
            self.audit.push(r);
        }
        while let Some(call) = self.engine_mut().poll_command() {
            self.deliver_call(call);
        }
    }

    fn deliver_call(&mut self, call: Call) {
        let now = self.now;
        let plan = (self.policy)(&call, now);
        let target = &mut self.targets[call.target.index()];
        let outcome = match plan.delivery {
            Delivery::Done => Some(target.apply(now, &call)),
            Delivery::Unavailable { posted } => {
                if posted {
                    target.apply(now, &call);
                }
                Some(Outcome::Unavailable { status: 503 })
            }
            Delivery::TimedOut { posted } => {
                if posted {
                    target.apply(now, &call);
                }
                Some(Outcome::TimedOut)
            }
            Delivery::Lost { posted } => {
                if posted {
                    target.apply(now, &call);
                }
                None
            }
            Delivery::Throttled(retry_after) => Some(Outcome::Throttled { retry_after }),
            Delivery::Conflict => Some(Outcome::Conflict {
                detail: "contradicts the target's state".into(),
            }),
            Delivery::Rejected(status) => Some(Outcome::Rejected {
                status,
                detail: "refused".into(),
            }),
        };
        if let Some(outcome) = outcome {
            let reply = |outcome| Net::Reply {
                call: call.id,
                attempt: call.attempt,
                outcome,
            };
            self.schedule(now + plan.latency, reply(outcome.clone()));
            if let Some(d) = plan.duplicate_after {
                self.schedule(now + plan.latency + d, reply(outcome));
            }
        }
        self.calls.push((now, call));
    }

    fn deliver(&mut self, item: Net) {
        match item {
            Net::Event(e) => {
                let id = e.id.clone();
                self.first_delivered.entry(id.clone()).or_insert(self.now);
                match self.input(Input::Event(e.clone())) {
                    None => self.send_after(self.resend_after, e),
                    Some(Ack::RetryAfter(d)) => {
                        self.acks.push((id, Ack::RetryAfter(d)));
                        self.send_after(d, e);
                    }
                    Some(ack) => {
                        if ack == Ack::Accepted {
                            self.accepted_at.entry(id.clone()).or_insert(self.now);
                        }
                        self.acks.push((id, ack));
                    }
                }
            }
            Net::Reply {
                call,
                attempt,
                outcome,
            } => {
                self.input(Input::Reply {
                    call,
                    attempt,
                    outcome,
                });
            }
        }
    }

    // ---- time ---------------------------------------------------------------------------------

    /// The time of the next thing to happen: a network delivery or an engine timer.
    pub fn next_time(&self) -> Option<Instant> {
        let net = self.net.peek().map(|Reverse((at, _, _))| *at);
        let timer = self.engine().poll_timeout();
        match (net, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Does the next thing; false when nothing is left.
    pub fn step(&mut self) -> bool {
        let net = self.net.peek().map(|Reverse((at, _, _))| *at);
        let timer = self.engine().poll_timeout();
        match (net, timer) {
            (Some(n), t) if t.is_none_or(|t| n <= t) => {
                let Reverse((at, _, slot)) = self.net.pop().expect("peeked");
                self.now = self.now.max(at);
                let item = self.net_items.remove(&slot).expect("scheduled");
                self.deliver(item);
                true
            }
            (_, Some(t)) => {
                self.now = self.now.max(t);
                self.input(Input::Tick);
                true
            }
            _ => false,
        }
    }

    /// Runs until nothing is left to do. Panics after `STEPS_MAX` steps (a livelock).
    pub fn settle(&mut self) -> u64 {
        self.settle_within(STEPS_MAX)
    }

    pub fn settle_within(&mut self, steps_max: u64) -> u64 {
        for n in 0..steps_max {
            if !self.step() {
                return n;
            }
        }
        panic!(
            "no quiescence after {steps_max} steps at {}: {:?}",
            self.now,
            self.engine()
        );
    }

    /// Runs everything due up to `t` (inclusive), then sets the clock to `t`.
    pub fn run_until(&mut self, t: Instant) {
        let mut n = 0;
        while self.next_time().is_some_and(|x| x <= t) {
            self.step();
            n += 1;
            assert!(n < STEPS_MAX, "livelock before {t}");
        }
        self.now = self.now.max(t);
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Calls made so far with this request name (`post_hold`, …).
    pub fn calls_named(&self, name: &str) -> Vec<&Call> {
        self.calls
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.request.name() == name)
            .collect()
    }

    /// Keys of all calls made, in order, deduplicated.
    pub fn call_keys(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![];
        for (_, c) in &self.calls {
            if !v.iter().any(|k| **k == *c.key.0) {
                v.push(c.key.0.to_string());
            }
        }
        v
    }
}

// ---- events ---------------------------------------------------------------------------------------

pub const PLANT: &str = "P1";
pub const LINE: &str = "P1-L1";
pub const S1: &str = "P1-L1-S1";
pub const S2: &str = "P1-L1-S2";

fn source(s: System) -> String {
    format!("/plants/{PLANT}/{s}")
}

pub fn event(from: System, id: &str, data: EventData) -> Event {
    Event::new(source(from), id, data)
}

pub fn asset_id(station: &str) -> String {
    format!("A-{station}")
}

/// CMMS asset master data placing asset `A-<station>` at `station` on line `P1-L1`.
pub fn asset(id: &str, station: &str, version: u64) -> Event {
    asset_at(id, station, &asset_id(station), version)
}

pub fn asset_at(id: &str, station: &str, asset: &str, version: u64) -> Event {
    let p = AssetPlacement {
        asset: AssetId::new(asset).unwrap(),
        station: StationId::new(station).unwrap(),
        line: LineId::new(LINE).unwrap(),
        plant: PlantId::new(PLANT).unwrap(),
    };
    let r = MasterDataRecord::new(
        RecordKey::new(asset).unwrap(),
        version,
        MasterDataPayload::Asset(p),
    )
    .unwrap();
    event(System::Cmms, id, EventData::MasterDataPublished(r))
}

/// ERP material master data.
pub fn material(id: &str, key: &str, version: u64, description: &str) -> Event {
    let r = MasterDataRecord::new(
        RecordKey::new(key).unwrap(),
        version,
        MasterDataPayload::Material(Material {
            id: MaterialId::new(key).unwrap(),
            description: description.into(),
            unit: "EA".into(),
        }),
    )
    .unwrap();
    event(System::Erp, id, EventData::MasterDataPublished(r))
}

pub fn order(id: &str, order: &str, first: u64, last: u64) -> Event {
    event(
        System::Erp,
        id,
        EventData::OrderReleased(ProductionOrder {
            id: OrderId::new(order).unwrap(),
            material: MaterialId::new("M-100").unwrap(),
            line: LineId::new(LINE).unwrap(),
            plant: PlantId::new(PLANT).unwrap(),
            serials: SerialRange::new(first, last).unwrap(),
        }),
    )
}

pub fn nc(id: &str, nc: &str, station: &str, first: u64, last: u64) -> Event {
    nc_with(id, nc, station, first, last, true, Severity::Major)
}

pub fn nc_with(
    id: &str,
    nc: &str,
    station: &str,
    first: u64,
    last: u64,
    asset_related: bool,
    severity: Severity,
) -> Event {
    event(
        System::Qms,
        id,
        EventData::NonconformanceCreated(Nonconformance {
            id: NcId::new(nc).unwrap(),
            station: StationId::new(station).unwrap(),
            characteristic: CharacteristicId::new("torque").unwrap(),
            serials: SerialRange::new(first, last).unwrap(),
            failures: 3,
            asset_related,
            severity,
        }),
    )
}

pub fn part(part: &str, quantity: u32, unit_cents: i64) -> SparePartUsage {
    SparePartUsage {
        part: PartId::new(part).unwrap(),
        quantity,
        unit_cost: Money::from_cents(unit_cents),
    }
}

pub fn labour(tech: &str, minutes: u32, rate_cents: i64) -> LabourEntry {
    LabourEntry {
        technician: TechnicianId::new(tech).unwrap(),
        minutes,
        rate_per_hour: Money::from_cents(rate_cents),
    }
}

/// CMMS completes work order `wo` at `station`, for `nc` if given.
pub fn completed(
    id: &str,
    wo: &str,
    station: &str,
    nc: Option<&str>,
    parts: Vec<SparePartUsage>,
    labour: Vec<LabourEntry>,
) -> Event {
    event(
        System::Cmms,
        id,
        EventData::WorkOrderCompleted(WorkOrderCompletion {
            work_order: WorkOrderId::new(wo).unwrap(),
            asset: AssetId::new(asset_id(station)).unwrap(),
            station: StationId::new(station).unwrap(),
            root_cause: "worn torque head".into(),
            parts,
            labour,
            nc: nc.map(|n| NcId::new(n).unwrap()),
        }),
    )
}

pub fn disposition(id: &str, nc: &str, decision: DispositionDecision) -> Event {
    event(
        System::Qms,
        id,
        EventData::DispositionApproved(Disposition {
            nc: NcId::new(nc).unwrap(),
            decision,
            approved_by: "QE-7".into(),
        }),
    )
}

pub fn confirmation(id: &str, order: &str, station: &str, first: u64, last: u64) -> Event {
    let serials = SerialRange::new(first, last).unwrap();
    event(
        System::Mes,
        id,
        EventData::ProductionConfirmed(ProductionConfirmation {
            order: OrderId::new(order).unwrap(),
            station: StationId::new(station).unwrap(),
            material: MaterialId::new("M-100").unwrap(),
            serials,
            good: serials.len() as u32,
            scrap: 0,
        }),
    )
}

pub fn alarm(id: &str, station: &str, severity: AlarmSeverity) -> Event {
    event(
        System::Mes,
        id,
        EventData::AlarmRaised(Alarm {
            station: StationId::new(station).unwrap(),
            code: "E-SPINDLE".into(),
            severity,
        }),
    )
}

pub fn machine_down(id: &str, station: &str) -> Event {
    event(
        System::Mes,
        id,
        EventData::MachineStateChanged(MachineStateChanged {
            station: StationId::new(station).unwrap(),
            state: StationState::Down,
            code: None,
        }),
    )
}

// ---- scenarios ------------------------------------------------------------------------------------

/// The whole closed loop in one script: master data, an order, confirmations, an NC contained (W1),
/// a confirmation parked behind its hold (W6), the repair completed (W2), the disposition released
/// (W3), a breakdown (W4) and master-data versions (W5). Events are 10 s apart, so that each lands
/// after the previous one's calls in a fault-free world, and a source re-sending an event a few
/// seconds late does not reorder the script.
pub fn closed_loop(w: &mut World) {
    for (at, e) in closed_loop_events() {
        w.send_after(at, e);
    }
}

/// The closed loop's events with the delay after the start at which each is sent.
pub fn closed_loop_events() -> Vec<(Duration, Event)> {
    let s = |n: u64| Duration::from_secs(10 * n);
    vec![
        (s(0), asset("md-1", S1, 1)),
        (s(1), asset("md-2", S2, 1)),
        (s(2), order("o-1", "O-1", 1, 100)),
        (s(3), confirmation("c-1", "O-1", S1, 1, 10)),
        (s(4), nc("nc-1", "NC-1", S1, 12, 15)),
        (s(5), confirmation("c-2", "O-1", S1, 11, 20)),
        (s(6), alarm("al-1", S2, AlarmSeverity::Fault)),
        (s(7), material("md-3", "M-100", 1, "housing")),
        (s(8), material("md-4", "M-100", 2, "housing, rev B")),
        (
            s(9),
            completed(
                "wo-1",
                "WO-NC-1",
                S1,
                Some("NC-1"),
                vec![part("TORQUE-HEAD", 2, 41_250)],
                vec![labour("T1", 40, 8_500)],
            ),
        ),
        (
            s(10),
            disposition("d-1", "NC-1", DispositionDecision::Release),
        ),
        (
            s(11),
            completed("wo-2", "WO-BD-1", S2, None, vec![], vec![]),
        ),
        (s(12), machine_down("st-1", S2)),
    ]
}

/// Every key the closed loop must post exactly once when nothing fails.
pub fn closed_loop_keys() -> Vec<(System, String)> {
    let mut v: Vec<(System, String)> = [
        (System::Mes, "w5/mes/asset/A-P1-L1-S1/v1"),
        (System::Qms, "w5/qms/asset/A-P1-L1-S1/v1"),
        (System::Mes, "w5/mes/asset/A-P1-L1-S2/v1"),
        (System::Qms, "w5/qms/asset/A-P1-L1-S2/v1"),
        (System::Mes, "w6/dispatch/O-1"),
        (System::Erp, "w6/O-1/P1-L1-S1/1..=10"),
        (System::Erp, "w1/NC-1/hold"),
        (System::Erp, "w1/NC-1/order-status"),
        (System::Cmms, "w1/NC-1/work-order"),
        (System::Mes, "w1/NC-1/stop"),
        (System::Cmms, "w4/P1-L1-S2/1"),
        (System::Mes, "w5/mes/material/M-100/v1"),
        (System::Qms, "w5/qms/material/M-100/v1"),
        (System::Mes, "w5/mes/material/M-100/v2"),
        (System::Qms, "w5/qms/material/M-100/v2"),
        (System::Qms, "w2/WO-NC-1/maintenance"),
        (System::Erp, "w2/WO-NC-1/goods-issue/0"),
        (System::Erp, "w2/WO-NC-1/cost/parts"),
        (System::Erp, "w2/WO-NC-1/cost/labour"),
        (System::Erp, "w3/NC-1/release"),
        (System::Erp, "w3/NC-1/order-status"),
        (System::Mes, "w3/NC-1/resume"),
        (System::Erp, "w6/O-1/P1-L1-S1/11..=20"),
        (System::Cmms, "w4/P1-L1-S2/2"),
    ]
    .into_iter()
    .map(|(s, k)| (s, k.to_owned()))
    .collect();
    v.sort();
    v
}

/// Safety checks on the targets' ledgers (ground truth), whatever happened on the way:
/// no key posted twice anywhere (a modern target absorbs repeats; a legacy one would show them),
/// every release after its hold and after the repair was reported, station resumes after stops,
/// master-data versions only go up per consumer and record.
pub fn check_ledgers(w: &World) {
    for t in &w.targets {
        let d = t.duplicate_keys();
        assert!(d.is_empty(), "{} posted twice: {d:?}", t.system);
    }
    let erp = w.erp();
    for (i, p) in erp.ledger.iter().enumerate() {
        if let Request::ReleaseHold { hold, .. } = &p.request {
            let held = erp.ledger[..i]
                .iter()
                .any(|q| matches!(&q.request, Request::PostHold(h) if h.id == *hold));
            assert!(held, "release of {hold} before its hold: {:?}", erp.keys());
        }
    }
    let mes = w.mes();
    for (i, p) in mes.ledger.iter().enumerate() {
        if let Request::ControlStation(c) = &p.request
            && c.action == LineAction::Resume
        {
            let stopped = mes.ledger[..i].iter().any(|q| {
                matches!(&q.request, Request::ControlStation(s)
                    if s.action == LineAction::Stop && s.station == c.station)
            });
            assert!(stopped, "resume of {} before its stop", c.station);
        }
    }
    for t in &w.targets {
        let mut seen: HashMap<(MasterDataKind, RecordKey), u64> = HashMap::new();
        for p in &t.ledger {
            if let Request::ApplyMasterData(r) = &p.request {
                let v = seen.entry((r.kind(), r.key.clone())).or_default();
                assert!(
                    r.version > *v,
                    "{}: {} v{} after v{}",
                    t.system,
                    r.key,
                    r.version,
                    v
                );
                *v = r.version;
            }
        }
    }
}

// ---- one event of every type ----------------------------------------------------------------------

/// One valid event of every event type (and of every master-data payload), each with every
/// optional CloudEvents attribute set, for round-trip, schema and ingress tests.
pub fn one_of_each() -> Vec<Event> {
    let wo = |s: &str| WorkOrderId::new(s).unwrap();
    let station = StationId::new(S1).unwrap();
    let mut v = vec![
        order("ex-order", "O-1", 1, 100),
        nc("ex-nc", "NC-1", S1, 12, 15),
        disposition("ex-disposition", "NC-1", DispositionDecision::Scrap),
        event(
            System::Cmms,
            "ex-wo-created",
            EventData::WorkOrderCreated(plantloop_core::event::WorkOrderCreated {
                work_order: wo("WO-NC-1"),
                asset: AssetId::new(asset_id(S1)).unwrap(),
                station: station.clone(),
                kind: WorkOrderKind::Emergency,
                nc: Some(NcId::new("NC-1").unwrap()),
            }),
        ),
        completed(
            "ex-wo-completed",
            "WO-NC-1",
            S1,
            Some("NC-1"),
            vec![part("TORQUE-HEAD", 2, 41_250)],
            vec![labour("T1", 40, 8_500)],
        ),
        event(
            System::Cmms,
            "ex-downtime",
            EventData::DowntimeClassified(DowntimeEvent {
                station: station.clone(),
                started_at: Instant::from_secs(60),
                ended_at: Some(Instant::from_secs(600)),
                class: Some(DowntimeClass::Breakdown),
            }),
        ),
        alarm("ex-alarm", S1, AlarmSeverity::Fault),
        machine_down("ex-down", S1),
        confirmation("ex-confirmation", "O-1", S1, 1, 10),
        asset("ex-md-asset", S1, 3),
        material("ex-md-material", "M-100", 2, "housing, rev B"),
        event(
            System::Qms,
            "ex-md-spec",
            EventData::MasterDataPublished(
                MasterDataRecord::new(
                    RecordKey::new("SPEC-torque-S1").unwrap(),
                    1,
                    MasterDataPayload::InspectionSpec(InspectionSpec {
                        characteristic: CharacteristicId::new("torque").unwrap(),
                        station,
                        lower_milli: 11_500,
                        upper_milli: 12_500,
                    }),
                )
                .unwrap(),
            ),
        ),
    ];
    for (i, e) in v.iter_mut().enumerate() {
        e.time = Some(format!("2026-03-01T06:{i:02}:00.250Z"));
        e.subject = Some(format!("subject-{i}"));
        e.correlation = Some(format!("corr-{i}"));
        e.causation = Some(format!("/plants/P1/qms#cause-{i}"));
        e.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        e.plant = Some(PlantId::new(PLANT).unwrap());
    }
    v
}

/// A v1 `nonconformance.created` CloudEvent (before `asset_related` and `severity` existed), as
/// JSON: what ingress upcasts.
pub fn nc_v1_json() -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": "nc-v1",
        "source": "/plants/P1/qms",
        "type": "com.plantloop.qms.nonconformance.created.v1",
        "data": {
            "id": "NC-7", "station": "P1-L1-S1", "characteristic": "torque",
            "first_serial": 12, "last_serial": 15, "failures": 3
        }
    })
}
