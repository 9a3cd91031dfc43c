//! Workflows W1–W6 as sagas keyed by their correlation (NC id, work order id, master-data key).
//!
//! A workflow never calls a target itself: it pushes [`NewCall`]s into [`Effects`], each with an
//! idempotency key derived from the correlation and the step (`w1/<nc>/hold`), so that every retry,
//! duplicate event and recovery asks for the same posting.

use super::{Config, Effects, NewCall, Registry, Unprocessable};
use crate::call::{EventRef, IdempotencyKey, Request};
use crate::event::EventData;
use crate::model::*;
use crate::sabotage::EngineDefect;
use crate::time::Instant;
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

/// `w6/<order>/<station>/<first>..=<last>`, the key of a production confirmation: the hottest
/// key, so written into `buf` (reused) without the formatting machinery.
fn confirmation_key<'b>(buf: &'b mut String, c: &ProductionConfirmation) -> &'b str {
    let mut digits = itoa::Buffer::new();
    buf.clear();
    buf.push_str("w6/");
    buf.push_str(c.order.as_str());
    buf.push('/');
    buf.push_str(c.station.as_str());
    buf.push('/');
    buf.push_str(digits.format(c.serials.first()));
    buf.push_str("..=");
    buf.push_str(digits.format(c.serials.last()));
    buf
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

/// The `n`-th (0-based) of several keys of one step: the first keeps the plain form, so a
/// containment within one order looks as it always did.
fn nth(base: String, n: usize) -> String {
    if n == 0 {
        base
    } else {
        format!("{base}/{}", n + 1)
    }
}

/// The placement of an NC's station and the holds its suspect serials need, once the registry
/// knows both.
fn containable(
    reg: &Registry,
    nc: &Nonconformance,
) -> Option<(AssetPlacement, Vec<(ProductionOrder, SerialRange)>)> {
    let p = reg.placement(&nc.station)?;
    let ranges = reg.hold_ranges(&p.line, nc.serials);
    (!ranges.is_empty()).then(|| (p.clone(), ranges))
}

/// The dead letter of a breakdown whose station's placement never came.
fn unplaced_breakdown(b: WaitingBreakdown) -> Unprocessable {
    Unprocessable {
        origin: b.origin.clone(),
        causation: vec![b.origin],
        class: LatencyClass::Critical,
        detail: format!("station {} has no known asset placement", b.station),
        retry: Retry::Breakdown {
            station: b.station,
            code: b.code,
            down: b.down,
        },
    }
}

/// Lists `nc` among the unreleased NCs of `at` (a station or a production order).
fn list_unreleased<K: Eq + std::hash::Hash + Clone>(
    index: &mut FxHashMap<K, Vec<NcId>>,
    at: &K,
    nc: &NcId,
) {
    index.entry(at.clone()).or_default().push(nc.clone());
}

/// Takes `nc` off the unreleased NCs of `at`. True when another NC is still listed there: the
/// station or order stays held for it.
fn unlist_unreleased<K: Eq + std::hash::Hash>(
    index: &mut FxHashMap<K, Vec<NcId>>,
    at: &K,
    nc: &NcId,
) -> bool {
    let Some(ncs) = index.get_mut(at) else {
        return false;
    };
    ncs.retain(|other| other != nc);
    let others = !ncs.is_empty();
    if !others {
        index.remove(at);
    }
    others
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
    /// must not post costs twice).
    completed: FxHashMap<WorkOrderId, Instant>,
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
        match data {
            EventData::OrderReleased(o) => {
                let dispatch = key(format_args!("w6/dispatch/{}", o.id));
                let per_line_max = if cfg.has_defect(EngineDefect::OrdersForgottenEarly) {
                    8
                } else {
                    cfg.orders_per_line_max
                };
                stats.orders_evicted += reg.add_order(o.clone(), per_line_max);
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

    fn try_contain(
        &mut self,
        id: &NcId,
        reg: &Registry,
        cfg: &Config,
        now: Instant,
        fx: &mut Effects,
    ) {
        let c = self.containments.get_mut(id).expect("containment exists");
        let Some((nc, origin, class)) = c.nc.clone() else {
            return;
        };
        if !c.holds.is_empty() {
            return;
        }
        let Some((placement, ranges)) = containable(reg, &nc) else {
            if c.waiting_slot.is_none() {
                let slot = self.next_slot;
                self.next_slot += 1;
                c.waiting_slot = Some(slot);
                self.waiting.insert(slot, id.clone());
                fx.enrichment_timers.push((now + cfg.enrichment_wait, slot));
            }
            return;
        };
        if let Some(slot) = c.waiting_slot.take() {
            self.waiting.remove(&slot);
        }
        let holds: Vec<Hold> = ranges
            .iter()
            .enumerate()
            .map(|(i, (order, serials))| {
                let prefix = if i == 0 {
                    "H-".to_owned()
                } else {
                    format!("H{}-", i + 1)
                };
                Hold {
                    id: HoldId::new(derived_id(&prefix, id.as_str()))
                        .expect("derived ids are valid"),
                    order: order.id.clone(),
                    material: order.material.clone(),
                    serials: *serials,
                    nc: id.clone(),
                }
            })
            .collect();
        let wo = WorkOrderId::new(derived_id("WO-", id.as_str())).expect("derived ids are valid");
        self.work_order_nc.insert(wo.clone(), id.clone());
        self.active_holds
            .insert(id.clone(), holds.iter().map(|h| h.serials).collect());
        c.holds = holds.clone();
        c.station = Some(nc.station.clone());
        list_unreleased(&mut self.unreleased, &nc.station, id);
        for h in &holds {
            list_unreleased(&mut self.unreleased_orders, &h.order, id);
        }
        let mut gated = Vec::with_capacity(holds.len() + 1);
        let causes = vec![origin.clone()];
        let own = |step| Owner::Containment {
            nc: id.clone(),
            step,
        };
        let n = holds.len() as u32;
        c.start(Step::Hold, n);
        c.start(Step::Interrupt, n);
        c.start(Step::WorkOrder, 1);
        c.start(Step::Stop, 1);
        for (i, hold) in holds.into_iter().enumerate() {
            let order = hold.order.clone();
            fx.call(
                System::Erp,
                class,
                nth(key(format_args!("w1/{id}/hold")), i),
                Request::PostHold(hold),
                &origin,
                causes.clone(),
                own(Step::Hold),
            );
            gated.push(NewCall::new(
                System::Erp,
                class,
                nth(key(format_args!("w1/{id}/order-status")), i),
                Request::SetOrderStatus {
                    order,
                    status: OrderStatus::QualityInterruption,
                    reason: format!("NC {id}"),
                },
                &origin,
                causes.clone(),
                own(Step::Interrupt),
            ));
        }
        fx.call(
            System::Cmms,
            class,
            key(format_args!("w1/{id}/work-order")),
            Request::CreateWorkOrder(MaintenanceWorkOrder {
                id: wo,
                asset: placement.asset.clone(),
                station: nc.station.clone(),
                kind: if cfg.has_defect(EngineDefect::WorkOrderAsBreakdown) {
                    WorkOrderKind::Breakdown
                } else {
                    WorkOrderKind::Emergency
                },
                severity: nc.severity,
                fault: format!(
                    "NC {id}: {} {} failures at {} (serials {})",
                    nc.failures, nc.characteristic, nc.station, nc.serials
                ),
                nc: Some(id.clone()),
            }),
            &origin,
            causes.clone(),
            own(Step::WorkOrder),
        );
        gated.push(NewCall::new(
            System::Mes,
            class,
            key(format_args!("w1/{id}/stop")),
            Request::ControlStation(LineControl {
                station: nc.station.clone(),
                action: LineAction::Stop,
                reason: format!("NC {id}"),
            }),
            &origin,
            causes,
            own(Step::Stop),
        ));
        for call in gated {
            self.control(cfg, fx, call);
        }
    }

    /// Every hold of `id` is released: the orders no other NC holds are set resumed.
    fn resume_orders(&mut self, id: &NcId, cfg: &Config, fx: &mut Effects) {
        let Some(c) = self.containments.get_mut(id) else {
            return;
        };
        let (Some((_, nc_origin, _)), Some((_, d_origin, class)), Some(completion)) =
            (&c.nc, &c.disposition, &c.completion)
        else {
            return;
        };
        let causes = vec![nc_origin.clone(), completion.clone(), d_origin.clone()];
        // An order another NC still holds stays interrupted: the last release resumes it.
        let unreleased_orders = &mut self.unreleased_orders;
        let calls: Vec<NewCall> = (c.holds.iter().enumerate())
            .filter(|(_, hold)| {
                !unlist_unreleased(unreleased_orders, &hold.order, id)
                    || cfg.has_defect(EngineDefect::OrderResumedUnderOtherHold)
            })
            .map(|(i, hold)| {
                NewCall::new(
                    System::Erp,
                    *class,
                    nth(key(format_args!("w3/{id}/order-status")), i),
                    Request::SetOrderStatus {
                        order: hold.order.clone(),
                        status: OrderStatus::Resumed,
                        reason: format!("NC {id} dispositioned"),
                    },
                    d_origin,
                    causes.clone(),
                    Owner::Containment {
                        nc: id.clone(),
                        step: Step::ResumeOrder,
                    },
                )
            })
            .collect();
        if calls.is_empty() {
            c.steps[Step::ResumeOrder.index()] = StepState::Done;
        } else {
            c.start(Step::ResumeOrder, calls.len() as u32);
        }
        for call in calls {
            self.control(cfg, fx, call);
        }
    }

    /// Sends a line control or order-status change through its gate: at once when nothing is in
    /// motion for that station or order, else after the calls before it.
    fn control(&mut self, cfg: &Config, fx: &mut Effects, call: NewCall) {
        let gate = if cfg.has_defect(EngineDefect::ControlsUnsequenced) {
            None
        } else {
            Gate::of(&call.request)
        };
        let Some(gate) = gate else {
            fx.calls.push(call);
            return;
        };
        let q = self.gates.entry(gate).or_default();
        if q.busy.is_some() {
            q.waiting.push_back(call);
        } else {
            q.busy = Some(call.key.clone());
            fx.calls.push(call);
        }
    }

    /// The call with `key` is over (done or refused for good): its gate lets the next one go.
    fn control_over(&mut self, key: &IdempotencyKey, request: &Request, fx: &mut Effects) {
        let Some(gate) = Gate::of(request) else {
            return;
        };
        let Some(q) = self.gates.get_mut(&gate) else {
            return;
        };
        if q.busy.as_ref() != Some(key) {
            return;
        }
        match q.waiting.pop_front() {
            Some(next) => {
                q.busy = Some(next.key.clone());
                fx.calls.push(next);
            }
            None => {
                self.gates.remove(&gate);
            }
        }
    }

    /// Tries again the NCs waiting for enrichment (their expiry timers are already set).
    fn retry_waiting(&mut self, reg: &Registry, cfg: &Config, now: Instant, fx: &mut Effects) {
        if !self.breakdowns_waiting.is_empty() {
            let ready: Vec<u64> = (self.breakdowns_waiting.iter())
                .filter(|(_, b)| reg.placement(&b.station).is_some())
                .map(|(slot, _)| *slot)
                .collect();
            for slot in ready {
                let b = self.breakdowns_waiting.remove(&slot).expect("listed");
                self.breakdown(&b.station, &b.code, b.down, reg, cfg, now, b.origin, fx);
            }
        }
        if self.waiting.is_empty() {
            return;
        }
        let ids: Vec<NcId> = self.waiting.values().cloned().collect();
        for id in ids {
            self.try_contain(&id, reg, cfg, now, fx);
        }
    }

    /// Whether an unprocessable event's step could now be applied: the master data it waited
    /// for has arrived.
    pub(super) fn retry_ready(&self, retry: &Retry, reg: &Registry) -> bool {
        match retry {
            Retry::Contain(nc) => (self.containments.get(nc))
                .and_then(|c| c.nc.as_ref())
                .is_some_and(|(nc, _, _)| containable(reg, nc).is_some()),
            Retry::Breakdown { station, .. } => reg.placement(station).is_some(),
            Retry::Confirm(_) => false,
        }
    }

    pub(super) fn enrichment_expired(&mut self, slot: u64, fx: &mut Effects) {
        if let Some(b) = self.breakdowns_waiting.remove(&slot) {
            fx.unprocessable.push(unplaced_breakdown(b));
            return;
        }
        let Some(id) = self.waiting.remove(&slot) else {
            return;
        };
        let Some(c) = self.containments.get_mut(&id) else {
            return;
        };
        c.waiting_slot = None;
        if let Some((nc, origin, class)) = &c.nc {
            fx.unprocessable.push(Unprocessable {
                origin: origin.clone(),
                causation: vec![origin.clone()],
                class: *class,
                detail: format!(
                    "NC {id}: station {} has no known asset placement or production order",
                    nc.station
                ),
                retry: Retry::Contain(id.clone()),
            });
        }
    }

    fn try_release(&mut self, id: &NcId, cfg: &Config, fx: &mut Effects) {
        let Some(c) = self.containments.get_mut(id) else {
            return;
        };
        if cfg.has_defect(EngineDefect::ReleaseWithoutDisposition)
            && let Some((nc, origin, class)) = &c.nc
        {
            // The defect: make up an approval and a completion that never came.
            c.disposition.get_or_insert_with(|| {
                let d = Disposition {
                    nc: nc.id.clone(),
                    decision: DispositionDecision::Release,
                    approved_by: "nobody".into(),
                };
                (d, origin.clone(), *class)
            });
            c.completion.get_or_insert_with(|| origin.clone());
        }
        let ready = c.nc.is_some()
            && c.disposition.is_some()
            && c.completion.is_some()
            && [Step::Hold, Step::Interrupt, Step::WorkOrder, Step::Stop]
                .iter()
                .all(|s| c.done(*s))
            && c.steps[Step::Release.index()] == StepState::Idle;
        if !ready {
            return;
        }
        let n = c.holds.len() as u32;
        let (Some((_, nc_origin, _)), Some((d, d_origin, class)), Some(station), Some(completion)) =
            (&c.nc, &c.disposition, &c.station, &c.completion)
        else {
            return;
        };
        let (decision, d_origin, class, station) =
            (d.decision, d_origin.clone(), *class, station.clone());
        let causes = vec![nc_origin.clone(), completion.clone(), d_origin.clone()];
        c.start(Step::Release, n);
        // A station stop is shared by every containment at that station: only the last one to be
        // released resumes it, or an earlier release would restart a station whose other NC is
        // still open.
        let station_still_contained = unlist_unreleased(&mut self.unreleased, &station, id)
            && !cfg.has_defect(EngineDefect::ResumeWhileContained);
        if station_still_contained {
            c.steps[Step::ResumeStation.index()] = StepState::Done;
        } else {
            c.start(Step::ResumeStation, 1);
        }
        let own = |step| Owner::Containment {
            nc: id.clone(),
            step,
        };
        let mut gated = Vec::with_capacity(c.holds.len() + 1);
        for (i, hold) in c.holds.iter().enumerate() {
            fx.call(
                System::Erp,
                class,
                nth(key(format_args!("w3/{id}/release")), i),
                Request::ReleaseHold {
                    hold: hold.id.clone(),
                    decision,
                },
                &d_origin,
                causes.clone(),
                own(Step::Release),
            );
        }
        if !station_still_contained {
            gated.push(NewCall::new(
                System::Mes,
                class,
                key(format_args!("w3/{id}/resume")),
                Request::ControlStation(LineControl {
                    station,
                    action: LineAction::Resume,
                    reason: format!("NC {id} dispositioned"),
                }),
                &d_origin,
                causes,
                own(Step::ResumeStation),
            ));
        }
        for call in gated {
            self.control(cfg, fx, call);
        }
    }

    fn complete_work_order(
        &mut self,
        w: WorkOrderCompletion,
        origin: EventRef,
        class: LatencyClass,
        now: Instant,
        cfg: &Config,
        fx: &mut Effects,
    ) {
        if self.completed.contains_key(&w.work_order) {
            return;
        }
        self.completed.insert(w.work_order.clone(), now);
        if (self.breakdowns_open.get(&w.station)).is_some_and(|b| b.work_order == w.work_order) {
            self.breakdowns_open.remove(&w.station);
        }
        let nc =
            w.nc.clone()
                .or_else(|| self.work_order_nc.get(&w.work_order).cloned());
        let wo = &w.work_order;
        let causes = vec![origin.clone()];
        if let Some(nc) = &nc {
            fx.call(
                System::Qms,
                class,
                key(format_args!("w2/{wo}/maintenance")),
                Request::RecordMaintenance {
                    nc: nc.clone(),
                    work_order: wo.clone(),
                    root_cause: w.root_cause.clone(),
                },
                &origin,
                causes.clone(),
                Owner::None,
            );
        }
        for (i, p) in w.parts.iter().enumerate() {
            let Ok(material) = MaterialId::new(p.part.as_str()) else {
                continue;
            };
            fx.call(
                System::Erp,
                class,
                key(format_args!("w2/{wo}/goods-issue/{i}")),
                Request::PostGoodsMovement(GoodsMovement {
                    kind: MovementKind::GoodsIssue,
                    material,
                    quantity: p.quantity,
                    order: None,
                    work_order: Some(wo.clone()),
                    serials: None,
                }),
                &origin,
                causes.clone(),
                Owner::None,
            );
        }
        for (kind, amount) in [
            (CostKind::Parts, w.parts_cost()),
            (CostKind::Labour, w.labour_cost()),
        ] {
            if amount == crate::Money::ZERO
                || (kind == CostKind::Parts && cfg.has_defect(EngineDefect::PartsCostDropped))
            {
                continue;
            }
            let name = match kind {
                CostKind::Parts => "parts",
                CostKind::Labour => "labour",
            };
            fx.call(
                System::Erp,
                class,
                key(format_args!("w2/{wo}/cost/{name}")),
                Request::PostCost(CostPosting {
                    work_order: wo.clone(),
                    kind,
                    amount,
                }),
                &origin,
                causes.clone(),
                Owner::None,
            );
        }
        if let Some(nc) = nc {
            let c = self.containments.entry(nc.clone()).or_default();
            c.completion = Some(origin);
            self.try_release(&nc, cfg, fx);
        }
    }

    /// W4 for a down state (`down`) or a fault alarm at `station`. MES reports a machine down
    /// only when it goes down, so a second down state is a new breakdown even while the first's
    /// work order is open (its machine-up may still be on its way); alarms, and the down state of a
    /// breakdown an alarm opened, fold into the open one.
    #[allow(clippy::too_many_arguments)]
    fn breakdown(
        &mut self,
        station: &StationId,
        code: &str,
        down: bool,
        reg: &Registry,
        cfg: &Config,
        now: Instant,
        origin: EventRef,
        fx: &mut Effects,
    ) {
        let folded = cfg.has_defect(EngineDefect::BreakdownFoldedIntoCompleted);
        if let Some(open) = self.breakdowns_open.get_mut(station)
            && (!down || !open.down_seen || folded)
        {
            open.down_seen |= down;
            return;
        }
        let Some(p) = reg.placement(station) else {
            let b = WaitingBreakdown {
                station: station.clone(),
                code: code.to_owned(),
                down,
                origin,
            };
            if cfg.has_defect(EngineDefect::BreakdownBeforePlacementLost) {
                fx.unprocessable.push(unplaced_breakdown(b));
            } else if down || !(self.breakdowns_waiting.values()).any(|w| w.station == *station) {
                // Wait for the placement like an NC does (alarms fold into a breakdown already
                // waiting); after `enrichment_wait` it goes to the dead-letter queue, replayed
                // once the placement arrives.
                let slot = self.next_slot;
                self.next_slot += 1;
                self.breakdowns_waiting.insert(slot, b);
                fx.enrichment_timers.push((now + cfg.enrichment_wait, slot));
            }
            return;
        };
        self.breakdown_seq += 1;
        let n = self.breakdown_seq;
        let Ok(wo) = WorkOrderId::new(format!("WO-BD-{n}")) else {
            return;
        };
        self.breakdowns_open.insert(
            station.clone(),
            OpenBreakdown {
                work_order: wo.clone(),
                down_seen: down,
            },
        );
        fx.call(
            System::Cmms,
            LatencyClass::Critical,
            key(format_args!("w4/{station}/{n}")),
            Request::CreateWorkOrder(MaintenanceWorkOrder {
                id: wo,
                asset: p.asset.clone(),
                station: station.clone(),
                kind: WorkOrderKind::Breakdown,
                severity: Severity::Major,
                fault: code.chars().take(200).collect(),
                nc: None,
            }),
            &origin,
            vec![origin.clone()],
            Owner::None,
        );
    }

    fn confirm(
        &mut self,
        c: ProductionConfirmation,
        origin: EventRef,
        class: LatencyClass,
        cfg: &Config,
        fx: &mut Effects,
        stats: &mut super::Stats,
    ) {
        if let Some(nc) = self.holding(&c.serials) {
            let k = self
                .containments
                .get_mut(&nc)
                .expect("an active hold has its containment");
            if k.parked >= cfg.parked_per_hold_max {
                fx.unprocessable.push(Unprocessable {
                    origin: origin.clone(),
                    causation: vec![origin],
                    class,
                    detail: format!(
                        "more than {} confirmations parked behind one hold",
                        cfg.parked_per_hold_max
                    ),
                    retry: Retry::Confirm(c),
                });
            } else {
                stats.confirmations_parked += 1;
                k.parked += 1;
                self.parked.push(Parked {
                    nc,
                    conf: c,
                    origin,
                });
            }
            return;
        }
        let key = confirmation_key(&mut self.key_buf, &c);
        fx.call(
            System::Erp,
            class,
            key,
            Request::ConfirmProduction(c),
            &origin,
            vec![origin.clone()],
            Owner::None,
        );
    }

    /// The containment whose hold is in force over any of `serials`; the one with the smallest NC
    /// id when several are, so that the choice does not depend on hash-map order.
    fn holding(&self, serials: &SerialRange) -> Option<NcId> {
        let (nc, _) = self
            .active_holds
            .iter()
            .find(|(_, held)| held.iter().any(|h| h.overlaps(serials)))?;
        debug_assert!(self.containments.get(nc).is_some_and(|k| k.hold_active()));
        Some(nc.clone())
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

    #[allow(clippy::too_many_arguments)] // the saga's context, passed apart for the borrow checker
    fn sync_master_data(
        &mut self,
        consumer: System,
        r: MasterDataRecord,
        origin: &EventRef,
        class: LatencyClass,
        cfg: &Config,
        fx: &mut Effects,
        stats: &mut super::Stats,
    ) {
        let s = self
            .master_data
            .entry((consumer, r.kind(), r.key.clone()))
            .or_default();
        let newest = s
            .applied
            .max(s.in_flight.unwrap_or(0))
            .max(s.pending.as_ref().map_or(0, |(p, _)| p.version));
        let stuck = newest > 0 && cfg.has_defect(EngineDefect::MasterDataStuckOnFirst);
        if r.version <= newest || stuck {
            stats.master_data_superseded += 1;
            return;
        }
        if s.in_flight.is_some() {
            if s.pending.is_some() {
                stats.master_data_superseded += 1;
            }
            s.pending = Some((r, origin.clone()));
            return;
        }
        s.in_flight = Some(r.version);
        Self::send_master_data(consumer, r, origin, class, fx);
    }

    fn send_master_data(
        consumer: System,
        r: MasterDataRecord,
        origin: &EventRef,
        class: LatencyClass,
        fx: &mut Effects,
    ) {
        let owner = Owner::MasterData {
            consumer,
            kind: r.kind(),
            key: r.key.clone(),
            version: r.version,
        };
        let key = key(format_args!(
            "w5/{consumer}/{}/{}/v{}",
            r.kind().as_str(),
            r.key,
            r.version
        ));
        fx.call(
            consumer,
            class,
            key,
            Request::ApplyMasterData(r),
            origin,
            vec![origin.clone()],
            owner,
        );
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

    /// Whether a hold over any of `serials` was released after `at` (and none is in force now):
    /// the decision of the latest such release.
    pub(super) fn released_since(
        &self,
        serials: &SerialRange,
        at: Instant,
    ) -> Option<Option<DispositionDecision>> {
        if self.holding(serials).is_some() {
            return None;
        }
        (self.released_ranges.iter().rev())
            .find(|(r, _, done)| *done >= at && r.overlaps(serials))
            .map(|(_, d, _)| *d)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_key_is_the_formatted_one() {
        for (first, last) in [(0, 0), (1, 10), (999, 1_000_000), (u64::MAX - 1, u64::MAX)] {
            let c = ProductionConfirmation {
                order: OrderId::new("O-1").unwrap(),
                station: StationId::new("P1-L1-S1").unwrap(),
                material: MaterialId::new("M-1").unwrap(),
                serials: SerialRange::new(first, last).unwrap(),
                good: 1,
                scrap: 0,
            };
            assert_eq!(
                confirmation_key(&mut String::new(), &c),
                format!("w6/{}/{}/{}", c.order, c.station, c.serials)
            );
        }
    }
}
