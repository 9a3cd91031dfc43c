//! Workflows W1–W6 as sagas keyed by their correlation (NC id, work order id, master-data key).
//!
//! A workflow never calls a target itself: it pushes [`NewCall`]s into [`Effects`], each with an
//! idempotency key derived from the correlation and the step (`w1/<nc>/hold`), so that every retry,
//! duplicate event and recovery asks for the same posting.

mod confirmations;
mod containment;
mod maintenance;
mod master_data;
mod retention;

use super::{Config, Effects, NewCall, Registry, Unprocessable};
use crate::call::{EventRef, IdempotencyKey, Request};
use crate::event::EventData;
use crate::model::*;
use crate::sabotage::EngineDefect;
use crate::time::Instant;
use confirmations::confirmation_key;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Released holds remembered for stale refusals ([`Workflows::released_since`]).
const RELEASED_RANGES_MAX: usize = 4_096;

/// The steps of the containment saga (W1) and its release (W3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Step {
    /// ERP quality hold on the suspect serials.
    Hold,
    /// ERP order status "quality interruption".
    Interrupt,
    /// CMMS emergency work order.
    WorkOrder,
    /// MES stop of the station.
    Stop,
    /// ERP release of the hold (W3).
    Release,
    /// ERP order status "resumed" (W3).
    ResumeOrder,
    /// MES resume of the station (W3).
    ResumeStation,
}

impl Step {
    fn index(self) -> usize {
        self as usize
    }
}

/// The id of an object the core creates for a correlation: `<prefix><id>`, or, when that would be
/// longer than [`ID_LEN_MAX`], `<prefix>` and a hash of `id`, so that distinct correlations never
/// share a hold or a work order.
fn derived_id(prefix: &str, id: &str) -> String {
    if prefix.len() + id.len() <= ID_LEN_MAX {
        format!("{prefix}{id}")
    } else {
        format!("{prefix}{}", &blake3::hash(id.as_bytes()).to_hex()[..32])
    }
}

/// An idempotency key, built in one allocation (keys are short).
fn key(parts: std::fmt::Arguments<'_>) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(64);
    s.write_fmt(parts).expect("writing to a String cannot fail");
    s
}

/// Who is waiting for a call to finish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Owner {
    None,
    Containment {
        nc: NcId,
        step: Step,
    },
    MasterData {
        consumer: System,
        kind: MasterDataKind,
        key: RecordKey,
        version: u64,
    },
}

/// The workflow step an unprocessable event's dead letter runs again when it is replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Retry {
    /// W1: contain the NC (its station or line's order was unknown).
    Contain(NcId),
    /// W4: open a breakdown work order (the station was unknown). `down`: MES reported the
    /// machine down (not a fault alarm).
    Breakdown {
        station: StationId,
        code: String,
        #[serde(default)]
        down: bool,
    },
    /// W6: confirm production (too many confirmations were parked behind a hold).
    Confirm(ProductionConfirmation),
}

/// What a line control or an order-status change is sequenced on. A target applies such calls in
/// the order they land, and a stop of a stopped station (or an interruption of an interrupted
/// order) is a no-op: an earlier NC's resume still in flight would undo a later NC's stop. So
/// one call at a time goes per station and per order, in the order the workflows asked.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum Gate {
    Station(StationId),
    Order(OrderId),
}

impl Gate {
    fn of(r: &Request) -> Option<Gate> {
        match r {
            Request::ControlStation(c) => Some(Gate::Station(c.station.clone())),
            Request::PostHold(h) => Some(Gate::Order(h.order.clone())),
            Request::SetOrderStatus { order, .. } => Some(Gate::Order(order.clone())),
            _ => None,
        }
    }
}

/// The call a gate lets through (until it is done or refused) and those waiting behind it.
/// A transient dead letter keeps its gate busy: it is replayed once the target answers again.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct GateQueue {
    busy: Option<IdempotencyKey>,
    waiting: VecDeque<NewCall>,
}

/// A breakdown whose station has no known asset placement yet.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct WaitingBreakdown {
    station: StationId,
    code: String,
    /// MES reported the machine down (not a fault alarm).
    down: bool,
    origin: EventRef,
}

/// A station's breakdown whose work order is open.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OpenBreakdown {
    work_order: WorkOrderId,
    /// MES reported this breakdown's down state (it may have begun with a fault alarm).
    down_seen: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
enum StepState {
    #[default]
    Idle,
    Pending,
    Done,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Containment {
    nc: Option<(Nonconformance, EventRef, LatencyClass)>,
    /// One hold per production order the suspect serials belong to (ERP holds inventory per
    /// order), in serial order; empty until the containment starts.
    holds: Vec<Hold>,
    station: Option<StationId>,
    steps: [StepState; 7],
    /// Calls of each step not yet done (a step has one call per hold or per order).
    pending: [u32; 7],
    /// ERP refused a hold: it is not in force, so nothing waits behind it.
    hold_refused: bool,
    completion: Option<EventRef>,
    disposition: Option<(Disposition, EventRef, LatencyClass)>,
    waiting_slot: Option<u64>,
    /// Confirmations parked behind this hold (they wait in [`Workflows::parked`]).
    parked: usize,
    /// Listed in [`Workflows::retired`] (see [`retention`]).
    retired: bool,
}

/// A production confirmation waiting for the release of the hold over its serials.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Parked {
    nc: NcId,
    conf: ProductionConfirmation,
    origin: EventRef,
}

impl Containment {
    fn done(&self, s: Step) -> bool {
        self.steps[s.index()] == StepState::Done
    }
    /// The holds are (about to be) in force: confirmations of their serials must wait.
    fn hold_active(&self) -> bool {
        !self.holds.is_empty() && !self.done(Step::Release) && !self.hold_refused
    }

    /// Marks `step` pending with `calls` calls outstanding.
    fn start(&mut self, step: Step, calls: u32) {
        self.steps[step.index()] = StepState::Pending;
        self.pending[step.index()] = calls;
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct MasterDataSync {
    applied: u64,
    in_flight: Option<u64>,
    pending: Option<(MasterDataRecord, EventRef)>,
}

/// The state of every workflow.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Workflows {
    containments: FxHashMap<NcId, Containment>,
    /// Per station, the contained NCs (holds set) whose release has not started: a release there
    /// resumes the station only if no other NC is listed, without walking every containment ever
    /// made (they are kept, and a long-running engine holds thousands).
    unreleased: FxHashMap<StationId, Vec<NcId>>,
    /// Per production order, the contained NCs whose release has not started: only the last of
    /// them to be released sets the order resumed.
    unreleased_orders: FxHashMap<OrderId, Vec<NcId>>,
    /// Line controls and order-status changes, one at a time per station and per order. An idle
    /// gate with nothing waiting is removed, so this holds only stations and orders in motion.
    gates: FxHashMap<Gate, GateQueue>,
    /// Breakdowns waiting for their station's asset placement, by enrichment slot.
    breakdowns_waiting: BTreeMap<u64, WaitingBreakdown>,
    /// The holds in force (posted or about to be, not yet released), by NC: what W6 confirmations
    /// are checked against, without walking every containment ever made.
    active_holds: BTreeMap<NcId, Vec<SerialRange>>,
    /// Confirmations parked behind holds, oldest first: one list for all holds, so that it keeps
    /// its capacity instead of growing anew behind every hold.
    parked: Vec<Parked>,
    /// Scratch for the confirmations a release lets go.
    #[serde(skip)]
    released: Vec<Parked>,
    /// Work orders the core created for an NC.
    work_order_nc: FxHashMap<WorkOrderId, NcId>,
    /// Work orders whose completion was already applied (a re-sent completion with a new event id
    /// must not post costs twice), and the same oldest first for [`retention`].
    completed: FxHashMap<WorkOrderId, Instant>,
    completed_order: VecDeque<(Instant, WorkOrderId)>,
    /// Closed and orphaned containments, oldest first, with when they were listed ([`retention`]).
    retired: VecDeque<(Instant, NcId)>,
    /// Open breakdown per station: W4 folds fault alarms, and the first down state, into it.
    breakdowns_open: FxHashMap<StationId, OpenBreakdown>,
    breakdown_seq: u64,
    master_data: FxHashMap<(System, MasterDataKind, RecordKey), MasterDataSync>,
    /// NCs waiting for the registry to know their station or line's order.
    waiting: BTreeMap<u64, NcId>,
    next_slot: u64,
    /// Serials of the latest released holds, with the disposition's decision and when the
    /// release completed (at most [`RELEASED_RANGES_MAX`], oldest forgotten first): a confirmation
    /// refused while one of them was still in force is sent again.
    released_ranges: VecDeque<(SerialRange, Option<DispositionDecision>, Instant)>,
    /// Scratch for building idempotency keys.
    #[serde(skip)]
    key_buf: String,
}

impl Workflows {
    /// Applies an accepted event, known from here on by `origin`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_event(
        &mut self,
        reg: &mut Registry,
        cfg: &Config,
        now: Instant,
        origin: EventRef,
        class: LatencyClass,
        data: EventData,
        fx: &mut Effects,
        stats: &mut super::Stats,
    ) {
        self.forget(cfg, now, stats);
        match data {
            EventData::OrderReleased(o) => {
                let dispatch = key(format_args!("w6/dispatch/{}", o.id));
                let per_line_max = if cfg.has_defect(EngineDefect::OrdersForgottenEarly) {
                    8
                } else {
                    cfg.orders_per_line_max
                };
                stats.orders_evicted +=
                    reg.add_order(o.clone(), now, per_line_max, cfg.retention.closed_for);
                fx.registry_grew = true;
                fx.call(
                    System::Mes,
                    class,
                    dispatch,
                    Request::DispatchOrder(o),
                    &origin,
                    vec![origin.clone()],
                    Owner::None,
                );
                self.retry_waiting(reg, cfg, now, fx);
            }
            EventData::NonconformanceCreated(nc) => {
                if !nc.asset_related {
                    return;
                }
                let c = self.containments.entry(nc.id.clone()).or_default();
                if c.nc.is_some() {
                    return; // the same NC re-sent under another event id
                }
                let id = nc.id.clone();
                c.nc = Some((nc, origin, class));
                self.try_contain(&id, reg, cfg, now, fx);
            }
            EventData::DispositionApproved(d) => {
                let id = d.nc.clone();
                let c = self.containments.entry(id.clone()).or_default();
                if c.disposition.is_none() {
                    c.disposition = Some((d, origin, class));
                    self.try_release(&id, cfg, fx);
                    self.retire_if_closed(&id, now);
                }
            }
            EventData::WorkOrderCompleted(w) => {
                self.complete_work_order(w, origin, class, now, cfg, fx)
            }
            EventData::AlarmRaised(a) => {
                if a.severity < AlarmSeverity::Fault {
                    stats.alarms_filtered += 1;
                } else {
                    self.breakdown(&a.station, &a.code, false, reg, cfg, now, origin, fx);
                }
            }
            EventData::MachineStateChanged(m) => {
                if m.state == StationState::Down {
                    let code = m.code.unwrap_or_else(|| "machine down".into());
                    self.breakdown(&m.station, &code, true, reg, cfg, now, origin, fx);
                } else if !cfg.has_defect(EngineDefect::BreakdownFoldedIntoCompleted) {
                    // MES says the machine runs again: that breakdown is over, whenever CMMS's
                    // completion of its work order arrives. The next Down is a new breakdown.
                    self.breakdowns_open.remove(&m.station);
                }
            }
            EventData::ProductionConfirmed(c) => self.confirm(c, origin, class, cfg, fx, stats),
            EventData::MasterDataPublished(r) => {
                if let MasterDataPayload::Asset(p) = &r.payload
                    && reg.apply_placement(r.version, p.clone())
                {
                    fx.registry_grew = true;
                    self.retry_waiting(reg, cfg, now, fx);
                }
                for &consumer in r.kind().consumers() {
                    self.sync_master_data(consumer, r.clone(), &origin, class, cfg, fx, stats);
                }
            }
            EventData::WorkOrderCreated(wc) => {
                if cfg.has_defect(EngineDefect::MaintenanceRecordedEarly)
                    && let Some(nc) = self.work_order_nc.get(&wc.work_order)
                {
                    let wo = &wc.work_order;
                    fx.call(
                        System::Qms,
                        class,
                        key(format_args!("w2/{wo}/maintenance")),
                        Request::RecordMaintenance {
                            nc: nc.clone(),
                            work_order: wo.clone(),
                            root_cause: "pending".into(),
                        },
                        &origin,
                        vec![origin.clone()],
                        Owner::None,
                    );
                }
            }
            EventData::DowntimeClassified(_) => {}
        }
    }

    /// Runs again the step of an unprocessable event's dead letter.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn retry(
        &mut self,
        retry: Retry,
        origin: EventRef,
        class: LatencyClass,
        reg: &Registry,
        cfg: &Config,
        now: Instant,
        fx: &mut Effects,
        stats: &mut super::Stats,
    ) {
        match retry {
            Retry::Contain(nc) => {
                if self.containments.contains_key(&nc) {
                    self.try_contain(&nc, reg, cfg, now, fx);
                }
            }
            Retry::Breakdown {
                station,
                code,
                down,
            } => self.breakdown(&station, &code, down, reg, cfg, now, origin, fx),
            Retry::Confirm(c) => self.confirm(c, origin, class, cfg, fx, stats),
        }
    }

    /// A call was refused for good (dead-lettered, not transient). A refused hold is not in force:
    /// the confirmations parked behind it go to the dead-letter queue (a replay confirms them)
    /// instead of waiting for a release that will not come.
    pub(super) fn call_refused(
        &mut self,
        owner: &Owner,
        key: &IdempotencyKey,
        request: &Request,
        fx: &mut Effects,
    ) {
        self.control_over(key, request, fx);
        let Owner::Containment {
            nc,
            step: Step::Hold,
        } = owner
        else {
            return;
        };
        let Some(c) = self.containments.get_mut(nc) else {
            return;
        };
        c.hold_refused = true;
        c.parked = 0;
        self.active_holds.remove(nc);
        let mut released = std::mem::take(&mut self.released);
        released.extend(self.parked.extract_if(.., |p| p.nc == *nc));
        for Parked { conf, origin, .. } in released.drain(..) {
            fx.unprocessable.push(Unprocessable {
                origin: origin.clone(),
                causation: vec![origin],
                class: LatencyClass::Transactional,
                detail: format!("parked behind a hold of NC {nc} that ERP refused"),
                retry: Retry::Confirm(conf),
            });
        }
        self.released = released;
    }

    pub(super) fn call_done(
        &mut self,
        owner: &Owner,
        key: &IdempotencyKey,
        request: &Request,
        cfg: &Config,
        now: Instant,
        fx: &mut Effects,
    ) {
        self.control_over(key, request, fx);
        match owner {
            Owner::None => {}
            Owner::Containment { nc, step } => {
                let Some(c) = self.containments.get_mut(nc) else {
                    return;
                };
                if *step == Step::Hold && c.hold_refused {
                    // A replayed hold went through after all: it is in force again.
                    c.hold_refused = false;
                    self.active_holds
                        .insert(nc.clone(), c.holds.iter().map(|h| h.serials).collect());
                }
                let left = &mut c.pending[step.index()];
                *left = left.saturating_sub(1);
                if *left > 0 {
                    return;
                }
                c.steps[step.index()] = StepState::Done;
                if *step == Step::Release {
                    self.resume_orders(nc, cfg, fx);
                    let Some(c) = self.containments.get_mut(nc) else {
                        return;
                    };
                    self.active_holds.remove(nc);
                    c.parked = 0;
                    let decision = c.disposition.as_ref().map(|(d, _, _)| d.decision);
                    for h in &c.holds {
                        if self.released_ranges.len() >= RELEASED_RANGES_MAX {
                            self.released_ranges.pop_front();
                        }
                        self.released_ranges.push_back((h.serials, decision, now));
                    }
                    if !cfg.has_defect(EngineDefect::HeldConfirmationsNotReplayed) {
                        // Confirmations in the dead-letter queue because this hold covered them
                        // (too many parked, or ERP refused them while it held) go again now.
                        fx.releases
                            .push((c.holds.iter().map(|h| h.serials).collect(), decision));
                    }
                    if decision == Some(DispositionDecision::Scrap) {
                        // Units this hold scrapped stay scrap whichever other hold they wait for.
                        for p in &mut self.parked {
                            if c.holds.iter().any(|h| h.serials.overlaps(&p.conf.serials)) {
                                p.conf.scrap_all();
                            }
                        }
                    }
                    let mut released = std::mem::take(&mut self.released);
                    released.extend(self.parked.extract_if(.., |p| p.nc == *nc));
                    for Parked {
                        mut conf, origin, ..
                    } in released.drain(..)
                    {
                        if decision == Some(DispositionDecision::Scrap) {
                            conf.scrap_all();
                        }
                        // Another hold may still be in force over some of these serials.
                        if let Some(other) = self.holding(&conf.serials) {
                            if let Some(k) = self.containments.get_mut(&other) {
                                k.parked += 1;
                            }
                            self.parked.push(Parked {
                                nc: other,
                                conf,
                                origin,
                            });
                            continue;
                        }
                        let key = confirmation_key(&mut self.key_buf, &conf);
                        fx.call(
                            System::Erp,
                            LatencyClass::Transactional,
                            key,
                            Request::ConfirmProduction(conf),
                            &origin,
                            vec![origin.clone()],
                            Owner::None,
                        );
                    }
                    self.released = released;
                } else {
                    self.try_release(nc, cfg, fx);
                }
                self.retire_if_closed(nc, now);
            }
            Owner::MasterData {
                consumer,
                kind,
                key,
                version,
            } => {
                let Some(s) = self.master_data.get_mut(&(*consumer, *kind, key.clone())) else {
                    return;
                };
                s.applied = s.applied.max(*version);
                s.in_flight = None;
                if let Some((r, origin)) = s.pending.take() {
                    s.in_flight = Some(r.version);
                    Self::send_master_data(*consumer, r, &origin, LatencyClass::Bulk, fx);
                }
            }
        }
    }
}
