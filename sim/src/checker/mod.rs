//! The invariant checker (spec/report.md). It judges a run from a [`GroundTruth`] only: the mock
//! systems' ledgers, the plant's physical record and what each source system emitted, plus the
//! core's dead-letter queue and audit log as an operator sees them, copied out. It cannot ask the
//! engine what it believes it did: the type gives it no way to reach the engine. It verifies the
//! audit chain with its own code, from the documented layout.

mod audit_chain;
mod ground_truth;
mod latency;
mod outcomes;
mod postings;

use crate::report::{ClassLatency, InvariantResult, Latencies};
use crate::scenario::{InvariantId, Scenario};
pub use ground_truth::{DeadLetterCopy, GroundTruth, LedgerTruth};
use latency::slo;
pub use latency::{LatencyFigures, latencies, latency_figures, workflow_of};
pub(crate) use latency::{LatencyHistogram, latencies_of};
use outcomes::*;
use plantloop_core::Money;
use plantloop_core::audit::AuditAction;
use plantloop_core::call::IdempotencyKey;
use plantloop_core::model::*;
use plantloop_core::time::{Duration, Instant};
use plantloop_mocks::{Ledger, LedgerEntry, Origin, Posting};
use postings::*;
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
fn ledgers<'a>(w: &LedgerTruth<'a>) -> Vec<(String, &'a Ledger)> {
    let mut v = vec![
        ("erp".to_owned(), w.erp),
        ("qms".to_owned(), w.qms),
        ("cmms".to_owned(), w.cmms),
    ];
    v.extend(w.mes.iter().cloned());
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
        Posting::StationStopped {
            station,
            nc,
            reason,
        } => match nc {
            Some(nc) => format!("stop of {station} for nc {nc}"),
            None => format!("stop of {station} ({reason})"),
        },
        Posting::StationResumed {
            station,
            nc,
            reason,
        } => match nc {
            Some(nc) => format!("resume of {station} for nc {nc}"),
            None => format!("resume of {station} ({reason})"),
        },
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
pub fn check(w: &GroundTruth, latency: &Latencies) -> Vec<InvariantResult> {
    let sel = &w.scenario.expect.invariants;
    let mut out = Vec::new();
    type Check = fn(&GroundTruth, &Latencies) -> Verdict;
    let all: [(InvariantId, Check); 14] = [
        (InvariantId::NoDuplicatePostings, |w, _| {
            no_duplicate_postings(&w.ledger_truth())
        }),
        (InvariantId::HoldBeforeRelease, |w, _| {
            hold_before_release(&w.ledger_truth())
        }),
        (InvariantId::Containment, |w, _| {
            containment(&w.ledger_truth())
        }),
        (InvariantId::NoProductionWhileStopped, |w, _| {
            no_production_while_stopped(w)
        }),
        (InvariantId::CostCapture, |w, _| {
            cost_capture(&w.ledger_truth())
        }),
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
        (InvariantId::Slo, |w, l| slo(w.scenario, l)),
    ];
    for (id, f) in all {
        if sel.includes(id) {
            out.push(f(w, latency).done());
        }
    }
    out
}

/// The invariants that need the ledgers alone — no duplicate
/// postings, holds before releases, containment and cost capture — judged from a
/// [`LedgerTruth`], such as mock servers' ledgers fetched over HTTP.
pub fn check_ledgers(w: &LedgerTruth) -> Vec<InvariantResult> {
    vec![
        no_duplicate_postings(w).done(),
        hold_before_release(w).done(),
        containment(w).done(),
        cost_capture(w).done(),
    ]
}

/// Per station, the intervals during which MES had it stopped, from MES's ledger.
fn stop_intervals(w: &LedgerTruth) -> FxHashMap<StationId, Vec<(Instant, Instant)>> {
    let mut out: FxHashMap<StationId, Vec<(Instant, Instant)>> = FxHashMap::default();
    for (_, m) in &w.mes {
        let mut open: FxHashMap<StationId, Instant> = FxHashMap::default();
        for e in m.entries() {
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
