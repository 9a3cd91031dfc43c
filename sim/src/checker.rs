//! The invariant checker (spec/report.md). It judges a finished run from ground truth only: the
//! mock systems' ledgers, the plant's physical record and what each source system emitted. It never
//! asks the engine what it believes it did; the one thing it reads from the core is its dead-letter
//! queue and audit log, which are outputs an operator sees.

use crate::report::{ClassLatency, InvariantResult, Latencies};
use crate::scenario::{InvariantId, Scenario};
use crate::world::World;
use plantloop_core::Money;
use plantloop_core::audit::{AuditAction, verify_chain};
use plantloop_core::call::IdempotencyKey;
use plantloop_core::model::*;
use plantloop_core::time::{Duration, Instant};
use plantloop_mocks::{Ledger, LedgerEntry, Origin, Posting};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Value, json};

/// At most this many violations are kept per invariant; the total is still counted.
pub const VIOLATIONS_KEPT_MAX: usize = 20;

fn secs(t: Instant) -> f64 {
    (t.as_millis() as f64) / 1000.0
}

/// Collects one invariant's verdict.
struct Verdict {
    id: InvariantId,
    checked: u64,
    violations: Vec<Value>,
    total: u64,
}

impl Verdict {
    fn new(id: InvariantId) -> Self {
        Verdict {
            id,
            checked: 0,
            violations: Vec::new(),
            total: 0,
        }
    }
    fn check(&mut self) {
        self.checked += 1;
    }
    fn violate(&mut self, v: Value) {
        self.total += 1;
        if self.violations.len() < VIOLATIONS_KEPT_MAX {
            self.violations.push(v);
        }
    }
    fn done(self) -> InvariantResult {
        InvariantResult {
            id: self.id.as_str().to_owned(),
            passed: self.total == 0,
            checked: self.checked,
            violations: self.violations,
            violations_total: self.total,
        }
    }
}

/// Every ledger of the run with a name for reports (`erp`, `qms`, `cmms`, `mes:P1`, …).
fn ledgers(w: &World) -> Vec<(String, &Ledger)> {
    let mut v = vec![
        ("erp".to_owned(), w.erp.ledger()),
        ("qms".to_owned(), w.qms.ledger()),
        ("cmms".to_owned(), w.cmms.ledger()),
    ];
    for (i, m) in w.mes.iter().enumerate() {
        v.push((format!("mes:{}", w.plant.plants[i].id), m.ledger()));
    }
    v
}

fn integration(l: &Ledger) -> impl Iterator<Item = &LedgerEntry> {
    l.entries()
        .iter()
        .filter(|e| e.origin == Origin::Integration)
}

/// The business identity of a posting: two postings with the same identity are one posting made
/// twice.
fn identity(p: &Posting) -> Option<String> {
    Some(match p {
        Posting::HoldPosted(h) => format!("hold for nc {} on order {}", h.nc, h.order),
        Posting::HoldReleased { hold, .. } => format!("release of {hold}"),
        Posting::OrderStatusSet {
            order, to, reason, ..
        } => format!("status {to:?} of {order} ({reason})"),
        Posting::GoodsMoved(g) => format!(
            "{:?} {} of {} for {}",
            g.kind,
            g.quantity,
            g.material,
            g.work_order
                .as_ref()
                .map(|w| w.to_string())
                .or(g.order.as_ref().map(|o| o.to_string()))
                .unwrap_or_default()
        ),
        Posting::CostPosted(c) => format!("{:?} cost of {}", c.kind, c.work_order),
        Posting::ProductionConfirmed(c) => {
            format!("confirmation of {} {} {}", c.order, c.station, c.serials)
        }
        Posting::WorkOrderCreated(w) => match &w.nc {
            Some(nc) => format!("work order for nc {nc}"),
            None => format!("work order {}", w.id),
        },
        Posting::StationStopped { station, reason } => format!("stop of {station} ({reason})"),
        Posting::StationResumed { station, reason } => format!("resume of {station} ({reason})"),
        Posting::OrderDispatched { order, .. } => format!("dispatch of {order}"),
        Posting::MaintenanceRecorded { nc, work_order, .. } => {
            format!("maintenance {work_order} on {nc}")
        }
        Posting::MasterDataApplied { kind, key, version } => {
            format!("{} {key} v{version}", kind.as_str())
        }
        _ => return None,
    })
}

/// Judges every invariant the scenario selects.
pub fn check(w: &World, latency: &Latencies) -> Vec<InvariantResult> {
    let sel = &w.scenario.expect.invariants;
    let mut out = Vec::new();
    type Check = fn(&World, &Latencies) -> Verdict;
    let all: [(InvariantId, Check); 14] = [
        (InvariantId::NoDuplicatePostings, |w, _| {
            no_duplicate_postings(w)
        }),
        (InvariantId::HoldBeforeRelease, |w, _| {
            hold_before_release(w)
        }),
        (InvariantId::Containment, |w, _| containment(w)),
        (InvariantId::NoProductionWhileStopped, |w, _| {
            no_production_while_stopped(w)
        }),
        (InvariantId::CostCapture, |w, _| cost_capture(w)),
        (InvariantId::NoLostEvents, |w, _| no_lost_events(w)),
        (InvariantId::CausalOrder, |w, _| causal_order(w)),
        (InvariantId::AuditChain, |w, _| audit_chain(w)),
        (InvariantId::MasterDataMonotonic, |w, _| {
            master_data_monotonic(w)
        }),
        (InvariantId::Repairs, |w, _| repairs(w)),
        (InvariantId::InventoryAccuracy, |w, _| inventory_accuracy(w)),
        (InvariantId::OrderStatus, |w, _| order_status(w)),
        (InvariantId::NoStrandedEvents, |w, _| no_stranded_events(w)),
        (InvariantId::Slo, |w, l| slo(&w.scenario, l)),
    ];
    for (id, f) in all {
        if sel.includes(id) {
            out.push(f(w, latency).done());
        }
    }
    out
}

fn no_duplicate_postings(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::NoDuplicatePostings);
    for (name, l) in ledgers(w) {
        let mut seen: FxHashMap<String, Vec<Instant>> = FxHashMap::default();
        for e in integration(l) {
            if let Some(id) = identity(&e.posting) {
                v.check();
                seen.entry(id).or_default().push(e.at);
            }
        }
        let mut dups: Vec<_> = seen.into_iter().filter(|(_, t)| t.len() > 1).collect();
        dups.sort_by_key(|(_, t)| t[0]);
        for (id, times) in dups {
            v.violate(json!({
                "system": name,
                "posting": id,
                "count": times.len(),
                "at_s": times.iter().map(|t| secs(*t)).collect::<Vec<_>>(),
            }));
        }
    }
    v
}

/// NC id → when each related fact landed, from the ledgers.
struct NcFacts {
    disposition_at: FxHashMap<NcId, Instant>,
    /// Work orders per NC with creation and completion times.
    work_orders: FxHashMap<NcId, Vec<(WorkOrderId, Instant, Option<Instant>)>>,
}

fn nc_facts(w: &World) -> NcFacts {
    let mut disposition_at = FxHashMap::default();
    for e in w.qms.ledger().entries() {
        if let Posting::DispositionApproved(d) = &e.posting {
            disposition_at.entry(d.nc.clone()).or_insert(e.at);
        }
    }
    let mut work_orders: FxHashMap<NcId, Vec<(WorkOrderId, Instant, Option<Instant>)>> =
        FxHashMap::default();
    let mut completed: FxHashMap<WorkOrderId, Instant> = FxHashMap::default();
    for e in w.cmms.ledger().entries() {
        if let Posting::WorkOrderCompleted(c) = &e.posting {
            completed.entry(c.work_order.clone()).or_insert(e.at);
        }
    }
    for e in w.cmms.ledger().entries() {
        if let Posting::WorkOrderCreated(wo) = &e.posting
            && let Some(nc) = &wo.nc
        {
            work_orders.entry(nc.clone()).or_default().push((
                wo.id.clone(),
                e.at,
                completed.get(&wo.id).copied(),
            ));
        }
    }
    NcFacts {
        disposition_at,
        work_orders,
    }
}

impl NcFacts {
    /// The work orders of `nc` created by `at` and not completed by then.
    fn open_work_orders(&self, nc: &NcId, at: Instant) -> Vec<String> {
        self.work_orders
            .get(nc)
            .map(|wos| {
                wos.iter()
                    .filter(|(_, created, done)| *created <= at && done.is_none_or(|d| d > at))
                    .map(|(id, _, _)| id.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn hold_before_release(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::HoldBeforeRelease);
    let facts = nc_facts(w);
    let mut held: FxHashMap<HoldId, Instant> = FxHashMap::default();
    // When the core posted each NC's first hold.
    let mut held_at: FxHashMap<&NcId, Instant> = FxHashMap::default();
    for e in w.erp.ledger().entries() {
        match &e.posting {
            Posting::HoldPosted(h) => {
                held.entry(h.id.clone()).or_insert(e.at);
                if e.origin == Origin::Integration {
                    held_at.entry(&h.nc).or_insert(e.at);
                }
            }
            Posting::HoldReleased { hold, nc, .. } => {
                v.check();
                let hold_at = held.get(hold).copied();
                let disp_at = facts.disposition_at.get(nc).copied();
                let open = facts.open_work_orders(nc, e.at);
                let ok = hold_at.is_some_and(|h| h <= e.at)
                    && disp_at.is_some_and(|d| d <= e.at)
                    && open.is_empty();
                if !ok {
                    v.violate(json!({
                        "hold": hold.as_str(),
                        "nc": nc.as_str(),
                        "release_at_s": secs(e.at),
                        "hold_at_s": hold_at.map(secs),
                        "disposition_at_s": disp_at.map(secs),
                        "open_work_orders": open,
                    }));
                }
            }
            _ => {}
        }
    }
    // A station goes back to production like inventory does: not while an NC that the core
    // contained there (its first hold posted) awaits its disposition or the completion of its
    // work orders, even when another NC's release would resume it. A resume that the core sent
    // before it knew of this NC can still land after its hold: it is excused when this NC's own
    // stop (a line control whose reason names the NC) lands after it, as the core can do no more.
    let stops = stop_intervals(w);
    let mut stops_for: FxHashMap<(&StationId, &str), Vec<Instant>> = FxHashMap::default();
    for m in &w.mes {
        for e in integration(m.ledger()) {
            if let Posting::StationStopped { station, reason } = &e.posting {
                for word in reason.split_whitespace() {
                    stops_for.entry((station, word)).or_default().push(e.at);
                }
            }
        }
    }
    for e in w.qms.ledger().entries() {
        let Posting::NcCreated(nc) = &e.posting else {
            continue;
        };
        let Some(&held) = held_at.get(&nc.id) else {
            continue;
        };
        v.check();
        let disp_at = facts.disposition_at.get(&nc.id).copied();
        // Not repaired until CMMS has its work orders, all complete.
        let repaired_at = facts.work_orders.get(&nc.id).and_then(|wos| {
            wos.iter().try_fold(Instant::ZERO, |last, (_, _, done)| {
                done.map(|d| last.max(d))
            })
        });
        let ready_at = disp_at
            .zip(repaired_at)
            .map_or(Instant::MAX, |(d, r)| d.max(r));
        let intervals = stops.get(&nc.station).map_or(&[][..], Vec::as_slice);
        let resumed = intervals
            .iter()
            .map(|&(_, to)| to)
            .filter(|&to| to > held && to < ready_at)
            .max();
        let own_stops = stops_for
            .get(&(&nc.station, nc.id.as_str()))
            .map_or(&[][..], Vec::as_slice);
        let stopped_again = |after: Instant| own_stops.iter().any(|&at| at > after);
        if let Some(resume_at) = resumed.filter(|&r| !stopped_again(r)) {
            let open = facts.open_work_orders(&nc.id, resume_at);
            v.violate(json!({
                "station": nc.station.as_str(),
                "nc": nc.id.as_str(),
                "resume_at_s": secs(resume_at),
                "hold_at_s": secs(held),
                "disposition_at_s": disp_at.map(secs),
                "open_work_orders": open,
            }));
        }
    }
    v
}

fn containment(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::Containment);
    let ncs: Vec<(&Nonconformance, Instant)> = w
        .qms
        .ledger()
        .entries()
        .iter()
        .filter_map(|e| match &e.posting {
            Posting::NcCreated(nc) if nc.asset_related => Some((nc, e.at)),
            _ => None,
        })
        .collect();
    let holds: Vec<&Hold> = integration(w.erp.ledger())
        .filter_map(|e| match &e.posting {
            Posting::HoldPosted(h) => Some(h),
            _ => None,
        })
        .collect();
    let wos: Vec<&MaintenanceWorkOrder> = integration(w.cmms.ledger())
        .filter_map(|e| match &e.posting {
            Posting::WorkOrderCreated(wo) => Some(&**wo),
            _ => None,
        })
        .collect();
    let stops = stop_intervals(w);
    let mut releases_of: FxHashMap<&NcId, Instant> = FxHashMap::default();
    for e in integration(w.erp.ledger()) {
        if let Posting::HoldReleased { nc, .. } = &e.posting {
            releases_of.entry(nc).or_insert(e.at);
        }
    }
    for (nc, at) in &ncs {
        v.check();
        // One hold per production order (ERP holds per order), together covering the serials.
        let mut mine: Vec<&Hold> = holds.iter().filter(|h| h.nc == nc.id).copied().collect();
        mine.sort_by_key(|h| h.serials.first());
        let n_holds = mine.len();
        let mut orders: Vec<&OrderId> = mine.iter().map(|h| &h.order).collect();
        orders.sort();
        orders.dedup();
        let one_per_order = orders.len() == n_holds;
        let covered = covers_all(&mine, &nc.serials);
        let asset = w
            .plant
            .station_index(&nc.station)
            .map(|s| w.plant.stations[s].asset.clone());
        let n_wos = wos
            .iter()
            .filter(|wo| {
                wo.nc.as_ref() == Some(&nc.id)
                    && wo.kind == WorkOrderKind::Emergency
                    && Some(&wo.asset) == asset.as_ref()
            })
            .count();
        // MES had the station stopped at some time while the NC was open (from its creation to
        // the first release of its holds): a stop already in force for another NC at the same
        // station counts, as it physically keeps the station stopped.
        let released_at = releases_of.get(&nc.id).copied().unwrap_or(Instant::MAX);
        let stopped = stops
            .get(&nc.station)
            .is_some_and(|iv| iv.iter().any(|&(from, to)| from <= released_at && to > *at));
        let stops = usize::from(stopped);
        if n_holds == 0 || !one_per_order || !covered || n_wos != 1 || stops != 1 {
            v.violate(json!({
                "nc": nc.id.as_str(),
                "station": nc.station.as_str(),
                "nc_at_s": secs(*at),
                "serials": nc.serials.to_string(),
                "holds": n_holds,
                "hold_orders": orders.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
                "holds_cover_serials": covered,
                "emergency_work_orders": n_wos,
                "station_stopped_while_open": stops == 1,
            }));
        }
    }
    v
}

/// Whether `holds`, sorted by first serial, together cover every serial of `want`.
fn covers_all(holds: &[&Hold], want: &SerialRange) -> bool {
    let mut next = want.first();
    for h in holds {
        if h.serials.first() > next {
            break;
        }
        if h.serials.last() >= next {
            if h.serials.last() >= want.last() {
                return true;
            }
            next = h.serials.last() + 1;
        }
    }
    false
}

/// Per station, the intervals during which MES had it stopped, from MES's ledger.
fn stop_intervals(w: &World) -> FxHashMap<StationId, Vec<(Instant, Instant)>> {
    let mut out: FxHashMap<StationId, Vec<(Instant, Instant)>> = FxHashMap::default();
    for m in &w.mes {
        let mut open: FxHashMap<StationId, Instant> = FxHashMap::default();
        for e in m.ledger().entries() {
            match &e.posting {
                Posting::StationStopped { station, .. } => {
                    open.entry(station.clone()).or_insert(e.at);
                }
                Posting::StationResumed { station, .. } => {
                    if let Some(from) = open.remove(station) {
                        out.entry(station.clone()).or_default().push((from, e.at));
                    }
                }
                _ => {}
            }
        }
        for (s, from) in open {
            out.entry(s).or_default().push((from, Instant::MAX));
        }
    }
    out
}

fn no_production_while_stopped(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::NoProductionWhileStopped);
    let stops = stop_intervals(w);
    for st in &w.plant.stations {
        let Some(intervals) = stops.get(&st.id) else {
            continue;
        };
        for &(from, to) in intervals {
            v.check();
            for sp in st.all_spans() {
                if sp.last_at > from && sp.first_at < to {
                    v.violate(json!({
                        "station": st.id.as_str(),
                        "stopped_at_s": secs(from),
                        "resumed_at_s": if to == Instant::MAX { None } else { Some(secs(to)) },
                        "produced_from_s": secs(sp.first_at),
                        "produced_until_s": secs(sp.last_at),
                        "units_in_span": sp.units,
                    }));
                    break;
                }
            }
        }
    }
    v
}

fn cost_capture(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::CostCapture);
    let mut erp_cost: FxHashMap<(WorkOrderId, CostKind), Money> = FxHashMap::default();
    let mut erp_parts: FxHashMap<(WorkOrderId, String), u64> = FxHashMap::default();
    for e in integration(w.erp.ledger()) {
        match &e.posting {
            Posting::CostPosted(c) => {
                let m = erp_cost.entry((c.work_order.clone(), c.kind)).or_default();
                *m = *m + c.amount;
            }
            Posting::GoodsMoved(g) if g.kind == MovementKind::GoodsIssue => {
                if let Some(wo) = &g.work_order {
                    *erp_parts
                        .entry((wo.clone(), g.material.to_string()))
                        .or_default() += u64::from(g.quantity);
                }
            }
            _ => {}
        }
    }
    for e in w.cmms.ledger().entries() {
        let Posting::WorkOrderCompleted(c) = &e.posting else {
            continue;
        };
        v.check();
        let want_parts = c.parts_cost();
        let want_labour = c.labour_cost();
        let got_parts = erp_cost
            .get(&(c.work_order.clone(), CostKind::Parts))
            .copied()
            .unwrap_or_default();
        let got_labour = erp_cost
            .get(&(c.work_order.clone(), CostKind::Labour))
            .copied()
            .unwrap_or_default();
        let mut want_qty: FxHashMap<String, u64> = FxHashMap::default();
        for p in &c.parts {
            *want_qty.entry(p.part.to_string()).or_default() += u64::from(p.quantity);
        }
        let qty_ok = want_qty.iter().all(|(part, q)| {
            erp_parts
                .get(&(c.work_order.clone(), part.clone()))
                .copied()
                .unwrap_or(0)
                == *q
        });
        if want_parts != got_parts || want_labour != got_labour || !qty_ok {
            v.violate(json!({
                "work_order": c.work_order.as_str(),
                "completed_at_s": secs(e.at),
                "cmms_parts": want_parts.to_string(),
                "erp_parts": got_parts.to_string(),
                "cmms_labour": want_labour.to_string(),
                "erp_labour": got_labour.to_string(),
                "goods_issues_match": qty_ok,
            }));
        }
    }
    v
}

fn no_lost_events(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::NoLostEvents);
    let dead: FxHashSet<String> = w
        .engine()
        .map(|e| e.dead_letters().map(|d| d.origin.to_string()).collect())
        .unwrap_or_default();
    let mut unacked: Vec<(&plantloop_core::call::EventRef, &crate::world::Emitted)> =
        w.emitted.iter().filter(|(_, e)| !e.acked).collect();
    unacked.sort_by(|(ra, ea), (rb, eb)| (ea.at, *ra).cmp(&(eb.at, *rb)));
    v.checked += w.emitted.len() as u64;
    for (r, e) in unacked {
        v.violate(json!({
            "event": r.to_string(),
            "type": e.event_type,
            "emitted_at_s": secs(e.at),
            "where": if e.buffered { "edge buffer" } else { "not acknowledged by the core" },
        }));
    }
    // Every production confirmation MES emitted reached ERP, or sits in the dead-letter queue.
    let confirmed: FxHashSet<(OrderId, u64, u64)> = integration(w.erp.ledger())
        .filter_map(|e| match &e.posting {
            Posting::ProductionConfirmed(c) => {
                Some((c.order.clone(), c.serials.first(), c.serials.last()))
            }
            _ => None,
        })
        .collect();
    for (r, c) in &w.confirmations_emitted {
        v.check();
        if !confirmed.contains(&(c.order.clone(), c.serials.first(), c.serials.last()))
            && !dead.contains(&r.to_string())
        {
            v.violate(json!({
                "event": r.to_string(),
                "confirmation": format!("{} {} {}", c.order, c.station, c.serials),
                "where": "emitted by MES, neither in ERP nor in the dead-letter queue",
            }));
        }
    }
    // Every approved disposition of a contained NC released its holds in ERP, or the release
    // sits in the dead-letter queue: the disposition event was applied, not just acknowledged.
    let mut holds_of: FxHashMap<&NcId, Vec<&HoldId>> = FxHashMap::default();
    let mut released: FxHashSet<&HoldId> = FxHashSet::default();
    for e in integration(w.erp.ledger()) {
        match &e.posting {
            Posting::HoldPosted(h) => holds_of.entry(&h.nc).or_default().push(&h.id),
            Posting::HoldReleased { hold, .. } => {
                released.insert(hold);
            }
            _ => {}
        }
    }
    let release_dead: FxHashSet<HoldId> = w
        .engine()
        .map(|e| {
            e.dead_letters()
                .filter_map(|d| match &d.request {
                    Some(plantloop_core::call::Request::ReleaseHold { hold, .. }) => {
                        Some(hold.clone())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for e in w.qms.ledger().entries() {
        let Posting::DispositionApproved(d) = &e.posting else {
            continue;
        };
        let Some(holds) = holds_of.get(&d.nc) else {
            continue;
        };
        v.check();
        let open: Vec<&str> = holds
            .iter()
            .filter(|h| !released.contains(**h) && !release_dead.contains(**h))
            .map(|h| h.as_str())
            .collect();
        if !open.is_empty() {
            v.violate(json!({
                "nc": d.nc.as_str(),
                "disposition_at_s": secs(e.at),
                "holds_not_released": open,
                "where": "disposition approved, hold neither released nor in the dead-letter queue",
            }));
        }
    }
    if let Some(engine) = w.engine() {
        for d in engine.dead_letters() {
            v.check();
            if d.reason.is_transient() {
                v.violate(json!({
                    "dead_letter": d.id,
                    "origin": d.origin.to_string(),
                    "reason": d.reason.describe(),
                    "at_s": secs(d.at),
                    "where": "transient failure still in the dead-letter queue after drain",
                }));
            }
        }
    } else {
        v.violate(json!({ "where": "the core is down at the end of the run" }));
    }
    v
}

fn causal_order(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::CausalOrder);
    // ERP: release after hold; "resumed" after "quality interruption".
    let mut held: FxHashSet<HoldId> = FxHashSet::default();
    let mut interrupted: FxHashSet<OrderId> = FxHashSet::default();
    for e in integration(w.erp.ledger()) {
        match &e.posting {
            Posting::HoldPosted(h) => {
                held.insert(h.id.clone());
            }
            Posting::HoldReleased { hold, nc, .. } => {
                v.check();
                if !held.contains(hold) {
                    v.violate(json!({ "correlation": nc.as_str(), "effect": "release", "before": "hold", "hold": hold.as_str(), "at_s": secs(e.at) }));
                }
            }
            Posting::OrderStatusSet { order, to, .. } => match to {
                OrderStatus::QualityInterruption => {
                    interrupted.insert(order.clone());
                }
                OrderStatus::Resumed => {
                    v.check();
                    if !interrupted.contains(order) {
                        v.violate(json!({ "correlation": order.as_str(), "effect": "order resumed", "before": "quality interruption", "at_s": secs(e.at) }));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    // MES: resume after stop.
    for m in &w.mes {
        let mut stopped: FxHashSet<StationId> = FxHashSet::default();
        for e in integration(m.ledger()) {
            match &e.posting {
                Posting::StationStopped { station, .. } => {
                    stopped.insert(station.clone());
                }
                Posting::StationResumed { station, reason } => {
                    v.check();
                    if !stopped.remove(station) {
                        v.violate(json!({ "correlation": reason, "station": station.as_str(), "effect": "resume", "before": "stop", "at_s": secs(e.at) }));
                    }
                }
                _ => {}
            }
        }
    }
    // CMMS completion before QMS maintenance record; creation before completion.
    let mut created: FxHashSet<WorkOrderId> = FxHashSet::default();
    let mut completed: FxHashMap<WorkOrderId, Instant> = FxHashMap::default();
    for e in w.cmms.ledger().entries() {
        match &e.posting {
            Posting::WorkOrderCreated(wo) => {
                created.insert(wo.id.clone());
            }
            Posting::WorkOrderCompleted(c) => {
                v.check();
                if !created.contains(&c.work_order) {
                    v.violate(json!({ "correlation": c.work_order.as_str(), "effect": "completion", "before": "creation", "at_s": secs(e.at) }));
                }
                completed.entry(c.work_order.clone()).or_insert(e.at);
            }
            _ => {}
        }
    }
    for e in integration(w.qms.ledger()) {
        if let Posting::MaintenanceRecorded { nc, work_order, .. } = &e.posting {
            v.check();
            if completed.get(work_order).is_none_or(|t| *t > e.at) {
                v.violate(json!({ "correlation": nc.as_str(), "work_order": work_order.as_str(), "effect": "maintenance recorded in QMS", "before": "work order completed in CMMS", "at_s": secs(e.at) }));
            }
        }
    }
    v
}

fn audit_chain(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::AuditChain);
    v.checked += w.audit.len() as u64;
    if let Err(e) = verify_chain(&w.audit) {
        v.violate(json!({ "audit_seq": e.seq, "reason": e.reason }));
    }
    let mut audited: FxHashMap<&IdempotencyKey, &plantloop_core::call::EventRef> =
        FxHashMap::default();
    for r in &w.audit {
        if matches!(r.action, AuditAction::Posted | AuditAction::FoundExisting) {
            audited.entry(&r.key).or_insert(&r.origin);
        }
    }
    for (name, l) in ledgers(w) {
        for e in integration(l) {
            let Some(key) = &e.key else { continue };
            v.check();
            match audited.get(key) {
                Some(origin) if w.emitted.contains_key(origin) => {}
                found => v.violate(json!({
                    "system": name,
                    "key": key.as_str(),
                    "receipt": e.receipt.to_string(),
                    "at_s": secs(e.at),
                    "problem": if found.is_some() { "audit origin is not an event any source emitted" } else { "no audit record for this posting" },
                })),
            }
        }
    }
    v
}

fn master_data_monotonic(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::MasterDataMonotonic);
    let mut newest: FxHashMap<(MasterDataKind, RecordKey), u64> = FxHashMap::default();
    for l in [w.erp.ledger(), w.cmms.ledger(), w.qms.ledger()] {
        for e in l.entries() {
            if let Posting::MasterDataPublished { kind, key, version } = &e.posting {
                let n = newest.entry((*kind, key.clone())).or_default();
                *n = (*n).max(*version);
            }
        }
    }
    let mut consumers: Vec<(String, System, &Ledger)> =
        vec![("qms".into(), System::Qms, w.qms.ledger())];
    for (i, m) in w.mes.iter().enumerate() {
        consumers.push((
            format!("mes:{}", w.plant.plants[i].id),
            System::Mes,
            m.ledger(),
        ));
    }
    for (name, system, l) in consumers {
        let mut applied: FxHashMap<(MasterDataKind, RecordKey), u64> = FxHashMap::default();
        for e in integration(l) {
            if let Posting::MasterDataApplied { kind, key, version } = &e.posting {
                v.check();
                let cur = applied.entry((*kind, key.clone())).or_default();
                if *version < *cur {
                    v.violate(json!({ "consumer": name, "kind": kind.as_str(), "key": key.as_str(), "applied": version, "after": *cur, "at_s": secs(e.at) }));
                }
                *cur = (*cur).max(*version);
            }
        }
        let mut missing: Vec<_> = newest
            .iter()
            .filter(|((kind, _), _)| kind.consumers().contains(&system))
            .filter(|(k, ver)| applied.get(k).copied().unwrap_or(0) != **ver)
            .collect();
        missing.sort();
        v.checked += newest.len() as u64;
        for ((kind, key), ver) in missing {
            v.violate(json!({
                "consumer": name,
                "kind": kind.as_str(),
                "key": key.as_str(),
                "newest": ver,
                "ends_on": applied.get(&(*kind, key.clone())).copied(),
            }));
        }
    }
    v
}

/// One hold document in ERP's ledger: posted at `from`, released at `until` if it was.
struct HoldWindow<'a> {
    hold: &'a Hold,
    from: Instant,
    until: Option<Instant>,
}

impl HoldWindow<'_> {
    fn in_force_at(&self, at: Instant) -> bool {
        self.from <= at && self.until.is_none_or(|u| u > at)
    }
}

/// Every hold in ERP's ledger (any origin; the first posting and first release of each hold id),
/// by production order.
fn hold_windows(w: &World) -> FxHashMap<&OrderId, Vec<HoldWindow<'_>>> {
    let mut by_order: FxHashMap<&OrderId, Vec<HoldWindow<'_>>> = FxHashMap::default();
    let mut index: FxHashMap<&HoldId, (&OrderId, usize)> = FxHashMap::default();
    for e in w.erp.ledger().entries() {
        match &e.posting {
            Posting::HoldPosted(h) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(&h.id) {
                    let list = by_order.entry(&h.order).or_default();
                    slot.insert((&h.order, list.len()));
                    list.push(HoldWindow {
                        hold: h,
                        from: e.at,
                        until: None,
                    });
                }
            }
            Posting::HoldReleased { hold, .. } => {
                if let Some(&(order, i)) = index.get(hold) {
                    let window = &mut by_order.get_mut(order).expect("indexed")[i];
                    window.until.get_or_insert(e.at);
                }
            }
            _ => {}
        }
    }
    by_order
}

/// Per NC, whether the core released its hold: NCs at a station whose hold was never released
/// (or never posted) are open and may keep the station stopped.
fn open_ncs_by_station(w: &World) -> FxHashMap<&StationId, Vec<&NcId>> {
    let released: FxHashSet<&NcId> = integration(w.erp.ledger())
        .filter_map(|e| match &e.posting {
            Posting::HoldReleased { nc, .. } => Some(nc),
            _ => None,
        })
        .collect();
    let mut open: FxHashMap<&StationId, Vec<&NcId>> = FxHashMap::default();
    for e in w.qms.ledger().entries() {
        if let Posting::NcCreated(nc) = &e.posting
            && nc.asset_related
            && !released.contains(&nc.id)
        {
            open.entry(&nc.station).or_default().push(&nc.id);
        }
    }
    open
}

/// `repairs`: the plant gets repaired. Every breakdown the plant had is answered by exactly one
/// breakdown work order in CMMS; at the end no station is down without a technician sent after
/// it broke, and none is left stopped unless an NC there is still open.
fn repairs(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::Repairs);
    let mut breakdown_wos: FxHashMap<&StationId, Vec<(&WorkOrderId, Instant)>> =
        FxHashMap::default();
    for e in integration(w.cmms.ledger()) {
        if let Posting::WorkOrderCreated(wo) = &e.posting
            && wo.kind == WorkOrderKind::Breakdown
            && wo.nc.is_none()
        {
            breakdown_wos
                .entry(&wo.station)
                .or_default()
                .push((&wo.id, e.at));
        }
    }
    let open = open_ncs_by_station(w);
    for st in &w.plant.stations {
        let wos = breakdown_wos.get(&st.id).map_or(&[][..], Vec::as_slice);
        if !st.breakdown_log.is_empty() || !wos.is_empty() {
            v.check();
            if wos.len() != st.breakdown_log.len() {
                v.violate(json!({
                    "station": st.id.as_str(),
                    "breakdowns": st.breakdown_log.len(),
                    "breakdowns_at_s": st.breakdown_log.iter().map(|(d, _)| secs(*d)).collect::<Vec<_>>(),
                    "breakdown_work_orders": wos.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
                    "work_orders_at_s": wos.iter().map(|(_, at)| secs(*at)).collect::<Vec<_>>(),
                    "problem": "each breakdown needs exactly one breakdown work order",
                }));
            }
        }
        if st.down {
            v.check();
            let down_at = st.breakdown_log.last().map_or(Instant::ZERO, |(d, _)| *d);
            if !st.technicians_sent.iter().any(|t| *t >= down_at) {
                v.violate(json!({
                    "station": st.id.as_str(),
                    "down_since_s": secs(down_at),
                    "problem": "down at the end of the drain and no technician was sent",
                }));
            }
        }
        if st.stopped {
            v.check();
            if !open.contains_key(&st.id) {
                v.violate(json!({
                    "station": st.id.as_str(),
                    "problem": "stopped at the end of the drain while no open NC keeps it stopped",
                }));
            }
        }
    }
    v
}

/// The serials of `a` not in `b`, both sorted by first serial; `b` may overlap itself.
fn serials_missing(a: &[SerialRange], b: &[SerialRange]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for r in a {
        let mut next = r.first();
        while j < b.len() && b[j].last() < next {
            j += 1;
        }
        let mut k = j;
        while next <= r.last() {
            match b.get(k) {
                Some(c) if c.first() <= r.last() => {
                    if c.first() > next {
                        out.push((next, c.first() - 1));
                    }
                    next = next.max(c.last().saturating_add(1));
                    if c.last() == u64::MAX {
                        break;
                    }
                    k += 1;
                }
                _ => {
                    out.push((next, r.last()));
                    break;
                }
            }
        }
    }
    out
}

/// `inventory-accuracy`: every unit the plant produced is confirmed to ERP exactly once (held
/// units after their release, units of a scrapped hold as scrap), ERP has no confirmation of a
/// unit the plant did not make, and no goods movement posted on inventory under an active hold.
fn inventory_accuracy(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::InventoryAccuracy);
    // Holds over time, and how each NC was dispositioned.
    let decision: FxHashMap<&NcId, DispositionDecision> = (w.qms.ledger().entries().iter())
        .filter_map(|e| match &e.posting {
            Posting::DispositionApproved(d) => Some((&d.nc, d.decision)),
            _ => None,
        })
        .collect();
    let holds = hold_windows(w);
    let no_holds = Vec::new();
    let holds_of = |order: &OrderId| holds.get(order).unwrap_or(&no_holds);
    // When MES reported each batch: units reported before a scrapped hold's release existed while
    // it was held, and are the ones the disposition scrapped.
    let reported_at: FxHashMap<(&OrderId, u64), Instant> = (w.confirmations_emitted.iter())
        .filter_map(|(r, c)| Some(((&c.order, c.serials.first()), w.emitted.get(r)?.at)))
        .collect();
    let mut confirmed: FxHashMap<&OrderId, Vec<SerialRange>> = FxHashMap::default();
    for e in integration(w.erp.ledger()) {
        let (order, serials) = match &e.posting {
            Posting::ProductionConfirmed(c) => {
                confirmed.entry(&c.order).or_default().push(c.serials);
                // Units of a scrapped hold, confirmed after that hold, are scrap.
                let reported = reported_at.get(&(&c.order, c.serials.first())).copied();
                for hw in holds_of(&c.order) {
                    let h = hw.hold;
                    let overlap = overlap_len(&h.serials, &c.serials);
                    let existed_while_held =
                        reported.is_some_and(|r| hw.until.is_none_or(|u| r < u));
                    if overlap > 0
                        && hw.from <= e.at
                        && existed_while_held
                        && decision.get(&h.nc) == Some(&DispositionDecision::Scrap)
                        && u64::from(c.good) > c.serials.len() - overlap
                    {
                        v.violate(json!({
                            "order": c.order.as_str(),
                            "serials": c.serials.to_string(),
                            "good": c.good,
                            "scrap": c.scrap,
                            "hold": h.id.as_str(),
                            "nc": h.nc.as_str(),
                            "at_s": secs(e.at),
                            "problem": "units of a scrapped hold confirmed as good",
                        }));
                    }
                }
                (&c.order, c.serials)
            }
            Posting::GoodsMoved(g) => match (&g.order, g.serials) {
                (Some(o), Some(s)) => (o, s),
                _ => continue,
            },
            _ => continue,
        };
        v.check();
        let in_force = holds_of(order)
            .iter()
            .find(|hw| hw.in_force_at(e.at) && hw.hold.serials.overlaps(&serials));
        if let Some(hw) = in_force {
            v.violate(json!({
                "order": order.as_str(),
                "serials": serials.to_string(),
                "hold": hw.hold.id.as_str(),
                "at_s": secs(e.at),
                "problem": "goods movement posted on held inventory",
            }));
        }
    }
    // Produced against confirmed, per order.
    let mut produced: FxHashMap<&OrderId, Vec<SerialRange>> = FxHashMap::default();
    for l in &w.plant.lines {
        for (o, r) in &l.produced {
            produced.entry(o).or_default().push(*r);
        }
    }
    let mut orders: Vec<&OrderId> = produced.keys().chain(confirmed.keys()).copied().collect();
    orders.sort();
    orders.dedup();
    let empty = Vec::new();
    for order in orders {
        v.check();
        let mut made = produced.get(order).unwrap_or(&empty).clone();
        made.sort_by_key(|r| r.first());
        let mut got = confirmed.get(order).unwrap_or(&empty).clone();
        got.sort_by_key(|r| r.first());
        let twice: Vec<String> = got
            .windows(2)
            .filter(|p| p[1].first() <= p[0].last())
            .map(|p| format!("{} and {}", p[0], p[1]))
            .collect();
        let missing = serials_missing(&made, &got);
        let extra = serials_missing(&got, &made);
        if !twice.is_empty() || !missing.is_empty() || !extra.is_empty() {
            let show = |v: &[(u64, u64)]| {
                v.iter()
                    .take(5)
                    .map(|(a, b)| format!("{a}..={b}"))
                    .collect::<Vec<_>>()
            };
            v.violate(json!({
                "order": order.as_str(),
                "produced": made.iter().map(|r| r.len()).sum::<u64>(),
                "not_confirmed": show(&missing),
                "not_confirmed_units": missing.iter().map(|(a, b)| b - a + 1).sum::<u64>(),
                "confirmed_not_produced": show(&extra),
                "confirmed_twice": twice.into_iter().take(5).collect::<Vec<_>>(),
            }));
        }
    }
    v
}

fn overlap_len(a: &SerialRange, b: &SerialRange) -> u64 {
    let (lo, hi) = (a.first().max(b.first()), a.last().min(b.last()));
    if lo > hi { 0 } else { hi - lo + 1 }
}

/// `order-status`: no order is set resumed or in progress while a hold covers it, and every
/// order interrupted for quality ends resumed or completed unless a hold on it is still active.
fn order_status(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::OrderStatus);
    let holds = hold_windows(w);
    let mut interrupted: Vec<&OrderId> = Vec::new();
    for e in integration(w.erp.ledger()) {
        let Posting::OrderStatusSet { order, to, .. } = &e.posting else {
            continue;
        };
        match to {
            OrderStatus::QualityInterruption => interrupted.push(order),
            OrderStatus::Resumed | OrderStatus::InProgress => {
                v.check();
                let in_force = holds
                    .get(order)
                    .and_then(|l| l.iter().find(|hw| hw.in_force_at(e.at)));
                if let Some(hw) = in_force {
                    v.violate(json!({
                        "order": order.as_str(),
                        "status": format!("{to:?}"),
                        "at_s": secs(e.at),
                        "hold": hw.hold.id.as_str(),
                        "hold_at_s": secs(hw.from),
                        "problem": "order set going while a hold covers it",
                    }));
                }
            }
            _ => {}
        }
    }
    interrupted.sort();
    interrupted.dedup();
    for order in interrupted {
        v.check();
        let still_held = holds
            .get(order)
            .is_some_and(|l| l.iter().any(|hw| hw.until.is_none()));
        let status = w.erp.order(order).map(|r| r.status);
        if !still_held && status == Some(OrderStatus::QualityInterruption) {
            v.violate(json!({
                "order": order.as_str(),
                "status": "QualityInterruption",
                "problem": "interrupted for quality and never resumed, though no hold covers it any more",
            }));
        }
    }
    v
}

/// `no-stranded-events`: nothing waits forever. After the drain no dead letter remains that a
/// replay would now apply: no event set aside for want of an asset placement that CMMS has since
/// published, and no confirmation set aside behind a hold that has since been released.
fn no_stranded_events(w: &World) -> Verdict {
    let mut v = Verdict::new(InvariantId::NoStrandedEvents);
    let Some(engine) = w.engine() else {
        return v; // no-lost-events reports a core that is down at the end
    };
    // Stations whose asset placement CMMS published, and when first.
    let mut placed_at: FxHashMap<&StationId, Instant> = FxHashMap::default();
    for e in w.cmms.ledger().entries() {
        if let Posting::MasterDataPublished {
            kind: MasterDataKind::Asset,
            key,
            ..
        } = &e.posting
            && let Some(st) = w
                .plant
                .stations
                .iter()
                .find(|s| s.asset.as_str() == key.as_str())
        {
            placed_at.entry(&st.id).or_insert(e.at);
        }
    }
    let holds = hold_windows(w);
    let confirmations: FxHashMap<String, &ProductionConfirmation> =
        (w.confirmations_emitted.iter())
            .map(|(r, c)| (r.to_string(), c))
            .collect();
    for d in engine.dead_letters() {
        let origin = d.origin.to_string();
        if let Some(c) = confirmations.get(&origin) {
            v.check();
            let held = holds.get(&c.order).is_some_and(|l| {
                l.iter()
                    .any(|hw| hw.until.is_none() && hw.hold.serials.overlaps(&c.serials))
            });
            if !held && w.erp.order(&c.order).is_some() {
                v.violate(json!({
                    "dead_letter": d.id,
                    "event": origin,
                    "confirmation": format!("{} {} {}", c.order, c.station, c.serials),
                    "reason": d.reason.describe(),
                    "problem": "no hold covers these serials any more; a replay would confirm them",
                }));
            }
            continue;
        }
        let Some(station) = w.emitted.get(&d.origin).and_then(|e| e.station.as_ref()) else {
            continue;
        };
        if !matches!(
            d.reason,
            plantloop_core::engine::DeadLetterReason::Unprocessable { .. }
        ) {
            continue;
        }
        v.check();
        if let Some(at) = placed_at.get(station) {
            v.violate(json!({
                "dead_letter": d.id,
                "event": origin,
                "station": station.as_str(),
                "placement_published_at_s": secs(*at),
                "reason": d.reason.describe(),
                "problem": "set aside for want of master data that has since arrived",
            }));
        }
    }
    v
}

fn slo(s: &Scenario, l: &Latencies) -> Verdict {
    let mut v = Verdict::new(InvariantId::Slo);
    for c in LatencyClass::ALL {
        let Some(limit) = s.expect.slo.p99(c) else {
            continue;
        };
        v.check();
        let got: &ClassLatency = l.by_index(c.index());
        if Duration::from_millis(got.p99_ms) > limit {
            v.violate(json!({ "class": c.as_str(), "p99_ms": got.p99_ms, "slo_ms": limit.as_millis(), "count": got.count }));
        }
    }
    v
}

/// End-to-end business latency per class: source event emitted → first effect in a target ledger.
///
/// A production confirmation of serials under a quality hold may not reach ERP before the hold is
/// released (W6): that wait is the business rule, not the core's latency, so such a confirmation
/// is measured from the release that let it through.
pub fn latencies(w: &World) -> Latencies {
    let mut h: [hdrhistogram::Histogram<u64>; 3] = std::array::from_fn(|_| {
        hdrhistogram::Histogram::new_with_bounds(1, 1_000 * 86_400 * 365, 3).expect("valid bounds")
    });
    let mut hold_serials: FxHashMap<&HoldId, SerialRange> = FxHashMap::default();
    let mut releases: Vec<(SerialRange, Instant)> = Vec::new();
    for e in w.erp.ledger().entries() {
        match &e.posting {
            Posting::HoldPosted(h) => {
                hold_serials.insert(&h.id, h.serials);
            }
            Posting::HoldReleased { hold, .. } => {
                if let Some(r) = hold_serials.get(hold) {
                    releases.push((*r, e.at));
                }
            }
            _ => {}
        }
    }
    let allowed_from = |e: &LedgerEntry, emitted: Instant| -> Instant {
        let Posting::ProductionConfirmed(c) = &e.posting else {
            return emitted;
        };
        releases
            .iter()
            .filter(|(r, at)| *at >= emitted && *at <= e.at && r.overlaps(&c.serials))
            .map(|(_, at)| *at)
            .max()
            .unwrap_or(emitted)
    };
    for (_, l) in ledgers(w) {
        let mut seen: FxHashSet<&IdempotencyKey> = FxHashSet::default();
        for e in integration(l) {
            let Some(key) = &e.key else { continue };
            if !seen.insert(key) {
                continue;
            }
            let Some(o) = w.key_origins.get(key) else {
                continue;
            };
            let Some(em) = w.emitted.get(&o.origin) else {
                continue;
            };
            let ms =
                e.at.saturating_since(allowed_from(e, em.at))
                    .as_millis()
                    .max(1);
            let _ = h[o.class.index()].record(ms);
        }
    }
    latencies_of(&h)
}

/// The report's latency figures from one histogram (milliseconds) per class, in
/// [`LatencyClass::index`] order.
pub(crate) fn latencies_of(h: &[hdrhistogram::Histogram<u64>; 3]) -> Latencies {
    let one = |h: &hdrhistogram::Histogram<u64>| {
        if h.is_empty() {
            ClassLatency::default()
        } else {
            ClassLatency {
                count: h.len(),
                p50_ms: h.value_at_quantile(0.5),
                p99_ms: h.value_at_quantile(0.99),
                max_ms: h.max(),
            }
        }
    };
    Latencies {
        critical: one(&h[0]),
        transactional: one(&h[1]),
        bulk: one(&h[2]),
    }
}
