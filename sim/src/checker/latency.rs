//! End-to-end business latency per class, and the `slo` invariant over it.

use super::*;

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
            h[o.class.index()].record(ms);
        }
    }
    latencies_of(&h.each_ref().map(|h| &h.0))
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
