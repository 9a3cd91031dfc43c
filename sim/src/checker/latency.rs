//! End-to-end business latency per class, and the `slo` invariant over it.

use super::*;
use std::collections::BTreeMap;

pub(super) fn slo(s: &Scenario, l: &Latencies) -> Verdict {
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
pub fn latencies(w: &GroundTruth) -> Latencies {
    figures(w, false).classes
}

/// Latency per class, and per plant and per workflow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyFigures {
    /// Per class (the report's `latency`).
    pub classes: Latencies,
    /// Per plant id, per class (`latency_by_plant`).
    pub by_plant: BTreeMap<String, Latencies>,
    /// Per workflow `W1` … `W6`, per class (`latency_by_workflow`).
    pub by_workflow: BTreeMap<String, Latencies>,
}

/// The workflow (`W1` … `W6`) a source event of this type starts.
pub fn workflow_of(event_type: &str) -> Option<&'static str> {
    Some(match event_type {
        "qms.nonconformance.created" => "W1",
        "cmms.workorder.completed" | "cmms.workorder.created" => "W2",
        "qms.disposition.approved" => "W3",
        "mes.alarm.raised" | "mes.machine.state-changed" | "cmms.downtime.classified" => "W4",
        "masterdata.record.published" => "W5",
        "mes.production.confirmed" | "erp.order.released" => "W6",
        _ => return None,
    })
}

/// Latencies (ms) of one group, per class, sorted at the end.
#[derive(Default)]
struct Group([Vec<u64>; 3]);

impl Group {
    /// Exact nearest-rank percentiles.
    fn figures(mut self) -> Latencies {
        let one = |v: &mut Vec<u64>| {
            if v.is_empty() {
                return ClassLatency::default();
            }
            v.sort_unstable();
            let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
            ClassLatency {
                count: v.len() as u64,
                p50_ms: rank(0.5),
                p95_ms: rank(0.95),
                p99_ms: rank(0.99),
                max_ms: v[v.len() - 1],
            }
        };
        let [c, t, b] = &mut self.0;
        Latencies {
            critical: one(c),
            transactional: one(t),
            bulk: one(b),
        }
    }
}

/// Latency per class, plant and workflow, from the ledgers (see [`latencies`]).
pub fn latency_figures(w: &GroundTruth) -> LatencyFigures {
    figures(w, true)
}

/// Latency per class, and per plant and workflow too when `breakdowns`.
fn figures(w: &GroundTruth, breakdowns: bool) -> LatencyFigures {
    let mut plants: Vec<Group> = (0..w.plant.plants.len())
        .map(|_| Group::default())
        .collect();
    let mut workflows: [Group; 6] = Default::default();
    let mut h: [LatencyHistogram; 3] = std::array::from_fn(|_| LatencyHistogram::new());
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
    for (_, l) in ledgers(&w.ledger_truth()) {
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
            let c = o.class.index();
            h[c].record(ms);
            if !breakdowns {
                continue;
            }
            if let Some(g) = em.plant.and_then(|p| plants.get_mut(p as usize)) {
                g.0[c].push(ms);
            }
            if let Some(wf) = workflow_of(em.event_type) {
                let i = (wf.as_bytes()[1] - b'1') as usize;
                workflows[i].0[c].push(ms);
            }
        }
    }
    LatencyFigures {
        classes: latencies_of(&h.each_ref().map(|h| &h.0)),
        by_plant: plants
            .into_iter()
            .enumerate()
            .filter(|(_, g)| g.0.iter().any(|v| !v.is_empty()))
            .map(|(i, g)| (w.plant.plants[i].id.to_string(), g.figures()))
            .collect(),
        by_workflow: workflows
            .into_iter()
            .enumerate()
            .filter(|(_, g)| g.0.iter().any(|v| !v.is_empty()))
            .map(|(i, g)| (format!("W{}", i + 1), g.figures()))
            .collect(),
    }
}

/// End-to-end latency in milliseconds, 1 ms to a year at 3 significant digits (a longer one is not
/// recorded). It starts sized for an hour and grows when a longer latency comes: most runs never
/// need the megabytes a year's range takes, and the figures are the same either way.
pub(crate) struct LatencyHistogram(pub hdrhistogram::Histogram<u64>);

impl LatencyHistogram {
    const YEAR_MS: u64 = 1_000 * 86_400 * 365;

    pub fn new() -> Self {
        let mut h =
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid bounds");
        h.auto(true);
        LatencyHistogram(h)
    }

    pub fn record(&mut self, ms: u64) {
        if ms <= Self::YEAR_MS {
            let _ = self.0.record(ms);
        }
    }
}

/// The report's latency figures from one histogram (milliseconds) per class, in
/// [`LatencyClass::index`] order.
pub(crate) fn latencies_of(h: &[&hdrhistogram::Histogram<u64>; 3]) -> Latencies {
    let one = |h: &hdrhistogram::Histogram<u64>| {
        if h.is_empty() {
            ClassLatency::default()
        } else {
            ClassLatency {
                count: h.len(),
                p50_ms: h.value_at_quantile(0.5),
                p95_ms: h.value_at_quantile(0.95),
                p99_ms: h.value_at_quantile(0.99),
                max_ms: h.max(),
            }
        }
    };
    Latencies {
        critical: one(h[0]),
        transactional: one(h[1]),
        bulk: one(h[2]),
    }
}
