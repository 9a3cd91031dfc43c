//! The run report (spec/report.md, version 1): what `plantloop run --json` writes per scenario.
//! Field names are a contract; fields may be added, never renamed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One scenario run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub passed: bool,
    pub sim: SimFigures,
    /// blake3 over the ordered record of everything that happened; same scenario + seed + version
    /// → same hash.
    pub trace_hash: String,
    pub counts: Counts,
    pub latency: Latencies,
    /// `latency` per plant (by plant id), of the calls whose source event was about that plant
    /// (master data is about none).
    #[serde(default)]
    pub latency_by_plant: BTreeMap<String, Latencies>,
    /// `latency` per workflow (`W1` … `W6`), by the type of the source event that started it.
    #[serde(default)]
    pub latency_by_workflow: BTreeMap<String, Latencies>,
    pub invariants: Vec<InvariantResult>,
    /// `expect.min` counts that were not reached (the run did not exercise what it claims to).
    #[serde(default)]
    pub shortfalls: Vec<String>,
    /// The plantloop version that produced the report.
    #[serde(default)]
    pub version: String,
}

/// Simulated and wall time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SimFigures {
    /// Simulated seconds, `duration` plus `drain`.
    pub duration_s: u64,
    /// Kernel events processed.
    pub events: u64,
    /// Wall-clock seconds the run took (not part of the trace hash).
    pub wall_s: f64,
}

/// Counts of what the run exercised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub units: u64,
    pub inspections: u64,
    pub nonconformances: u64,
    pub holds: u64,
    pub releases: u64,
    pub work_orders: u64,
    pub line_stops: u64,
    pub cost_postings: u64,
    pub master_data_records: u64,
    /// Dead letters still in the queue at the end of the run.
    pub dead_letters: u64,
    /// Dead letters replayed during the run (the engine's own probes and replays once a cause is
    /// gone); not counted in `dead_letters` once replayed.
    #[serde(default)]
    pub dead_letters_replayed: u64,
    pub retries: u64,
    pub duplicates_absorbed: u64,
    pub core_crashes: u64,
}

impl Counts {
    /// The value of a count by its report name (`holds`, `releases`, …).
    pub fn get(&self, name: &str) -> Option<u64> {
        Some(match name {
            "units" => self.units,
            "inspections" => self.inspections,
            "nonconformances" => self.nonconformances,
            "holds" => self.holds,
            "releases" => self.releases,
            "work_orders" => self.work_orders,
            "line_stops" => self.line_stops,
            "cost_postings" => self.cost_postings,
            "master_data_records" => self.master_data_records,
            "dead_letters" => self.dead_letters,
            "dead_letters_replayed" => self.dead_letters_replayed,
            "retries" => self.retries,
            "duplicates_absorbed" => self.duplicates_absorbed,
            "core_crashes" => self.core_crashes,
            _ => return None,
        })
    }
}

/// End-to-end business latency of one class: source event → effect in the target's ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassLatency {
    pub count: u64,
    pub p50_ms: u64,
    #[serde(default)]
    pub p95_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// Latency per class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latencies {
    pub critical: ClassLatency,
    pub transactional: ClassLatency,
    pub bulk: ClassLatency,
}

impl Latencies {
    pub fn by_index(&self, i: usize) -> &ClassLatency {
        match i {
            0 => &self.critical,
            1 => &self.transactional,
            _ => &self.bulk,
        }
    }
}

/// One invariant's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvariantResult {
    pub id: String,
    pub passed: bool,
    /// How many things it checked.
    pub checked: u64,
    /// What broke, each naming its ids and simulated times. At most
    /// [`crate::checker::VIOLATIONS_KEPT_MAX`] are kept; `violations_total` counts them all.
    pub violations: Vec<serde_json::Value>,
    #[serde(default)]
    pub violations_total: u64,
}
