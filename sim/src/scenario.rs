//! The scenario file (`spec/scenario.md`, version 1): strict loading into validated types, and
//! writing back.
//!
//! # Strictness
//! Loading walks toml's spanned document tree ([`toml::de::DeTable`]) by hand rather than through
//! serde, so that every error carries the file, the 1-based line and the key path, e.g.
//! `scenarios/x.toml:14: fault[2].for: invalid duration "6x": …`. Array indices in key paths are
//! 0-based (`fault[2]` is the third `[[fault]]`). Unknown keys are errors everywhere, inline tables
//! included, with a "did you mean" hint for near misses. Loading never panics; it stops at the first
//! error, checking sections in the order `scenario`, `systems`, `plant`, `drift`, `fault`,
//! `masterdata`, `expect`.
//!
//! # Decisions the spec leaves open
//! - Never silently ignored: `drain` must be positive, and an `expect.slo` table needs `"slo"`
//!   among `expect.invariants` (both exit-2 errors naming the key).
//! - Required: `scenario.name`, `scenario.duration`, at least one `[[plant]]` with `id`, `lines`,
//!   `stations_per_line` and `cycle_time`.
//! - Defaults: `seed` 0, `description` empty, `drain` `"1d"`, every personality `"modern"`;
//!   `inspection` `{ sample_rate = 1.0, defect_rate = 0.0 }` (each key on its own); no `machines`
//!   table means no random breakdowns; `orders` `{ size = 500, material = "ASSY-100" }`;
//!   `maintenance` `{ labor_rate = 0.0, parts = [] }`; drift `at` `"0s"`; `expect.invariants`
//!   `["all"]`; an absent `expect.slo` class is not checked; `expect.min` counts default to 0.
//! - `scenario.name` is 1–128 characters of `[A-Za-z0-9._-]`, starting with a letter or digit: it
//!   names reproducer files and JUnit test cases.
//! - Windows: a fault's `at` (default `"0s"`) must lie before `duration`, `for` (default: the rest
//!   of `duration`) must be positive, and `at + for` must not pass `duration`; the same holds for
//!   `core-crash` (`at + downtime`) and `alarm-storm` (`at + over`). Faults never reach into the
//!   drain phase. Drift and master-data `at` must lie before `duration`.
//! - `expect.min` accepts every count name of the run report (`spec/report.md`), not only the four
//!   of the example.
//! - Every list and number has a named bound (`*_MAX` below).
//!
//! # Writing back
//! [`Scenario::to_toml_string`] writes the canonical form (spec key order, every window explicit);
//! loading it gives an equal [`Scenario`]. The explorer uses it to write minimal reproducers.

use plantloop_core::model::{
    ID_LEN_MAX, LatencyClass, MaterialId, PartId, PlantId, StationId, System,
};
use plantloop_core::money::Money;
use plantloop_core::time::{Duration, Instant};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Largest scenario file accepted, in bytes.
pub const SCENARIO_BYTES_MAX: usize = 1 << 20;
/// Longest `scenario.name`, in bytes.
pub const NAME_LEN_MAX: usize = 128;
/// Longest `scenario.description`, in bytes.
pub const DESCRIPTION_LEN_MAX: usize = 4096;
/// Largest seed: TOML integers are signed 64-bit.
pub const SEED_MAX: u64 = i64::MAX as u64;
/// Longest simulated `duration`.
pub const DURATION_MAX: Duration = Duration::from_hours(400 * 24);
/// Longest `drain`.
pub const DRAIN_MAX: Duration = Duration::from_hours(30 * 24);
/// Most `[[plant]]` tables.
pub const PLANTS_MAX: usize = 64;
/// Most lines per plant.
pub const LINES_MAX: u32 = 64;
/// Most stations per line.
pub const STATIONS_PER_LINE_MAX: u32 = 64;
/// Largest production order, in units.
pub const ORDER_SIZE_MAX: u32 = 1_000_000;
/// Most spare parts listed per plant.
pub const PARTS_MAX: usize = 64;
/// Most `[[drift]]` tables.
pub const DRIFTS_MAX: usize = 1024;
/// Most `[[fault]]` tables.
pub const FAULTS_MAX: usize = 1024;
/// Most `[[masterdata]]` tables.
pub const MASTERDATA_MAX: usize = 256;
/// Largest master-data release (`count`).
pub const MASTERDATA_COUNT_MAX: u32 = 1_000_000;
/// Largest alarm storm (`events`).
pub const ALARM_STORM_EVENTS_MAX: u32 = 1_000_000;
/// Highest `endpoint-throttle` `limit_per_s`.
pub const THROTTLE_LIMIT_PER_S_MAX: u32 = 100_000;
/// Largest `expect.min` count.
pub const MIN_COUNT_MAX: u64 = 1 << 40;

/// Why a scenario file could not be used: where (file, 1-based line, key path) and what.
///
/// Displays as `file:line: key: message`, the form the CLI prints before exiting with code 2.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}")]
pub struct ScenarioError {
    /// The file name as given to the loader.
    pub file: String,
    /// 1-based line; 1 for problems with the file as a whole.
    pub line: u32,
    /// Key path such as `fault[2].for` (0-based indices), or `(document)` / `(file)`.
    pub key: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

/// How a mock system of record behaves toward the core (`[systems]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Personality {
    /// Honours `Idempotency-Key`.
    #[default]
    Modern,
    /// Ignores `Idempotency-Key`: the core must look before it posts.
    Legacy,
    /// Rate-limited; emits events by webhook only.
    Saas,
}

impl Personality {
    /// Every personality, in spec order.
    pub const ALL: [Personality; 3] = [Personality::Modern, Personality::Legacy, Personality::Saas];

    /// The name used in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            Personality::Modern => "modern",
            Personality::Legacy => "legacy",
            Personality::Saas => "saas",
        }
    }

    /// The personality named `s`, if any.
    pub fn parse(s: &str) -> Option<Personality> {
        Personality::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Personality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The personality of each system (`[systems]`); absent systems are modern.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Systems {
    /// ERP personality.
    pub erp: Personality,
    /// QMS personality.
    pub qms: Personality,
    /// CMMS personality.
    pub cmms: Personality,
    /// MES personality.
    pub mes: Personality,
}

impl Systems {
    /// The personality of `system`.
    pub fn get(&self, system: System) -> Personality {
        match system {
            System::Erp => self.erp,
            System::Qms => self.qms,
            System::Cmms => self.cmms,
            System::Mes => self.mes,
        }
    }

    fn get_mut(&mut self, system: System) -> &mut Personality {
        match system {
            System::Erp => &mut self.erp,
            System::Qms => &mut self.qms,
            System::Cmms => &mut self.cmms,
            System::Mes => &mut self.mes,
        }
    }
}

/// Inspection of processed units (`inspection = { … }`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inspection {
    /// Share of units inspected, in [0, 1].
    pub sample_rate: f64,
    /// Share of units defective at baseline (before any drift), in [0, 1].
    pub defect_rate: f64,
}

impl Default for Inspection {
    fn default() -> Self {
        Inspection {
            sample_rate: 1.0,
            defect_rate: 0.0,
        }
    }
}

/// Random breakdowns of every station (`machines = { … }`, workflow W4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machines {
    /// Mean time between failures (exponential), positive.
    pub mtbf: Duration,
    /// Mean time to repair (exponential).
    pub mttr: Duration,
}

/// Production orders the plant works through (`orders = { … }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orders {
    /// Units per order, 1..=[`ORDER_SIZE_MAX`].
    pub size: u32,
    /// The material produced.
    pub material: MaterialId,
}

impl Default for Orders {
    fn default() -> Self {
        Orders {
            size: 500,
            material: MaterialId::new("ASSY-100").expect("valid default material"),
        }
    }
}

/// One spare part and its cost (`parts = [ { part, unit_cost } ]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartCost {
    /// The part number.
    pub part: PartId,
    /// Cost of one unit, exact, non-negative.
    pub unit_cost: Money,
}

/// Costs of maintenance work in this plant (`maintenance = { … }`, workflow W2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Labour cost per hour, exact, non-negative.
    pub labor_rate: Money,
    /// Spare parts used by repairs, unique by part number.
    pub parts: Vec<PartCost>,
}

/// One `[[plant]]`: its topology and physical behaviour.
#[derive(Clone, Debug, PartialEq)]
pub struct PlantSpec {
    /// Plant id, unique in the scenario.
    pub id: PlantId,
    /// Number of lines, 1..=[`LINES_MAX`].
    pub lines: u32,
    /// Stations on each line, 1..=[`STATIONS_PER_LINE_MAX`].
    pub stations_per_line: u32,
    /// Mean processing time of one unit at one station, positive.
    pub cycle_time: Duration,
    /// Inspection sampling and baseline defect rate.
    pub inspection: Inspection,
    /// Random breakdowns; `None`: machines never fail on their own.
    pub machines: Option<Machines>,
    /// Production orders.
    pub orders: Orders,
    /// Maintenance costs.
    pub maintenance: Maintenance,
}

impl PlantSpec {
    /// The id of station `station` (1-based) on line `line` (1-based): `P1-L2-S3`.
    ///
    /// # Panics
    /// If the id is invalid, which a loaded scenario rules out for its own lines and stations.
    pub fn station_id(&self, line: u32, station: u32) -> StationId {
        derive_station_id(&self.id, line, station)
            .expect("station ids of a validated plant are valid")
    }

    /// Every station id of the plant, line by line: `P1-L1-S1`, `P1-L1-S2`, ….
    pub fn station_ids(&self) -> impl Iterator<Item = StationId> + '_ {
        (1..=self.lines)
            .flat_map(move |l| (1..=self.stations_per_line).map(move |s| self.station_id(l, s)))
    }

    /// Whether `station` is one of this plant's derived station ids.
    pub fn has_station(&self, station: &str) -> bool {
        parse_station(station).is_some_and(|(plant, l, s)| {
            plant == self.id.as_str()
                && (1..=self.lines).contains(&l)
                && (1..=self.stations_per_line).contains(&s)
        })
    }
}

fn derive_station_id(plant: &PlantId, line: u32, station: u32) -> Result<StationId, String> {
    StationId::new(format!("{plant}-L{line}-S{station}")).map_err(|e| e.reason)
}

/// Splits `P1-L2-S3` into (`P1`, 2, 3); `None` unless it is exactly in derived form (no leading
/// zeros, no sign).
fn parse_station(s: &str) -> Option<(&str, u32, u32)> {
    let number = |t: &str| -> Option<u32> {
        if t.is_empty() || t.starts_with('0') || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (rest, station) = s.rsplit_once("-S")?;
    let (plant, line) = rest.rsplit_once("-L")?;
    Some((plant, number(line)?, number(station)?))
}

/// An asset-related defect pattern (`[[drift]]`): from `at`, the station's defect rate is
/// `defect_rate` until the station is repaired.
#[derive(Clone, Debug, PartialEq)]
pub struct Drift {
    /// A derived station id of one of the plants.
    pub station: StationId,
    /// When the drift starts, before the scenario's `duration`.
    pub at: Instant,
    /// Defect rate while drifting, in [0, 1].
    pub defect_rate: f64,
}

/// When a fault is active: from `start` for `length` (keys `at` and `for`), within the run's
/// `duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Start, offset from the start of the simulation.
    pub start: Instant,
    /// Length; positive.
    pub length: Duration,
}

impl Window {
    /// The first instant after the window.
    pub fn end(&self) -> Instant {
        self.start + self.length
    }

    /// Whether `t` lies in [start, end).
    pub fn contains(&self, t: Instant) -> bool {
        self.start <= t && t < self.end()
    }
}

/// The `kind` strings of `[[fault]]`, in spec order.
pub const FAULT_KINDS: [&str; 9] = [
    "wan-outage",
    "endpoint-errors",
    "endpoint-outage",
    "endpoint-throttle",
    "endpoint-latency",
    "duplicate-delivery",
    "reorder",
    "core-crash",
    "alarm-storm",
];

/// One `[[fault]]`: a variant per `kind`, with that kind's fields. Windows are resolved: a fault
/// without `at`/`for` is active over the whole `duration`.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// `wan-outage`: the plant loses its link to the core; its edge buffers.
    WanOutage {
        /// The plant cut off.
        plant: PlantId,
        /// When.
        active: Window,
    },
    /// `endpoint-errors`: the system answers 5xx to a share of calls.
    EndpointErrors {
        /// The failing system.
        system: System,
        /// When.
        active: Window,
        /// Share of calls answered 5xx, in [0, 1].
        rate: f64,
    },
    /// `endpoint-outage`: the system does not answer at all (timeouts).
    EndpointOutage {
        /// The silent system.
        system: System,
        /// When.
        active: Window,
    },
    /// `endpoint-throttle`: 429 with Retry-After above a call rate (a SaaS API limit).
    EndpointThrottle {
        /// The throttling system.
        system: System,
        /// When.
        active: Window,
        /// Calls per second allowed, 1..=[`THROTTLE_LIMIT_PER_S_MAX`].
        limit_per_s: u32,
    },
    /// `endpoint-latency`: added latency on every call.
    EndpointLatency {
        /// The slow system.
        system: System,
        /// When.
        active: Window,
        /// Added to every call; positive.
        latency: Duration,
    },
    /// `duplicate-delivery`: the system's outbound events arrive twice (at-least-once).
    DuplicateDelivery {
        /// The emitting system.
        system: System,
        /// When.
        active: Window,
        /// Chance that an event is delivered twice, in [0, 1].
        probability: f64,
    },
    /// `reorder`: the system's outbound events arrive shuffled within a time window.
    Reorder {
        /// The emitting system.
        system: System,
        /// When.
        active: Window,
        /// Events within this span may overtake each other (key `window`); positive.
        window: Duration,
    },
    /// `core-crash`: the integration core dies and restarts from its journal.
    CoreCrash {
        /// When it dies.
        at: Instant,
        /// How long it stays down; positive.
        downtime: Duration,
    },
    /// `alarm-storm`: a burst of machine alarms (mostly noise) from one plant.
    AlarmStorm {
        /// The plant sending them.
        plant: PlantId,
        /// When the burst starts.
        at: Instant,
        /// How many alarms, 1..=[`ALARM_STORM_EVENTS_MAX`].
        events: u32,
        /// Spread over this span.
        over: Duration,
    },
}

impl Fault {
    /// The `kind` string of the fault.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::WanOutage { .. } => FAULT_KINDS[0],
            Fault::EndpointErrors { .. } => FAULT_KINDS[1],
            Fault::EndpointOutage { .. } => FAULT_KINDS[2],
            Fault::EndpointThrottle { .. } => FAULT_KINDS[3],
            Fault::EndpointLatency { .. } => FAULT_KINDS[4],
            Fault::DuplicateDelivery { .. } => FAULT_KINDS[5],
            Fault::Reorder { .. } => FAULT_KINDS[6],
            Fault::CoreCrash { .. } => FAULT_KINDS[7],
            Fault::AlarmStorm { .. } => FAULT_KINDS[8],
        }
    }

    /// When the fault is active (for a crash: while the core is down; for a storm: while alarms
    /// arrive).
    pub fn window(&self) -> Window {
        match *self {
            Fault::WanOutage { active, .. }
            | Fault::EndpointErrors { active, .. }
            | Fault::EndpointOutage { active, .. }
            | Fault::EndpointThrottle { active, .. }
            | Fault::EndpointLatency { active, .. }
            | Fault::DuplicateDelivery { active, .. }
            | Fault::Reorder { active, .. } => active,
            Fault::CoreCrash { at, downtime } => Window {
                start: at,
                length: downtime,
            },
            Fault::AlarmStorm { at, over, .. } => Window {
                start: at,
                length: over,
            },
        }
    }

    /// The system the fault targets, for the endpoint and delivery faults.
    pub fn system(&self) -> Option<System> {
        match *self {
            Fault::EndpointErrors { system, .. }
            | Fault::EndpointOutage { system, .. }
            | Fault::EndpointThrottle { system, .. }
            | Fault::EndpointLatency { system, .. }
            | Fault::DuplicateDelivery { system, .. }
            | Fault::Reorder { system, .. } => Some(system),
            _ => None,
        }
    }

    /// The plant the fault targets, for `wan-outage` and `alarm-storm`.
    pub fn plant(&self) -> Option<&PlantId> {
        match self {
            Fault::WanOutage { plant, .. } | Fault::AlarmStorm { plant, .. } => Some(plant),
            _ => None,
        }
    }
}

/// What a `[[masterdata]]` release contains (workflow W5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MasterDataKind {
    /// Item masters.
    Material,
    /// Asset hierarchy.
    Asset,
    /// Inspection specifications.
    InspectionSpec,
}

impl MasterDataKind {
    /// Every kind, in spec order.
    pub const ALL: [MasterDataKind; 3] = [
        MasterDataKind::Material,
        MasterDataKind::Asset,
        MasterDataKind::InspectionSpec,
    ];

    /// The name used in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            MasterDataKind::Material => "material",
            MasterDataKind::Asset => "asset",
            MasterDataKind::InspectionSpec => "inspection-spec",
        }
    }

    /// The kind named `s`, if any.
    pub fn parse(s: &str) -> Option<MasterDataKind> {
        MasterDataKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A bulk master-data release to sync (`[[masterdata]]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterData {
    /// When it is published, before `duration`.
    pub at: Instant,
    /// What it contains.
    pub kind: MasterDataKind,
    /// How many records, 1..=[`MASTERDATA_COUNT_MAX`].
    pub count: u32,
}

/// The invariant ids of `spec/report.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InvariantId {
    /// `no-duplicate-postings`
    NoDuplicatePostings,
    /// `hold-before-release`
    HoldBeforeRelease,
    /// `containment`
    Containment,
    /// `no-production-while-stopped`
    NoProductionWhileStopped,
    /// `cost-capture`
    CostCapture,
    /// `no-lost-events`
    NoLostEvents,
    /// `causal-order`
    CausalOrder,
    /// `audit-chain`
    AuditChain,
    /// `master-data-monotonic`
    MasterDataMonotonic,
    /// `repairs`
    Repairs,
    /// `inventory-accuracy`
    InventoryAccuracy,
    /// `order-status`
    OrderStatus,
    /// `no-stranded-events`
    NoStrandedEvents,
    /// `slo`
    Slo,
}

impl InvariantId {
    /// Every invariant, in report order.
    pub const ALL: [InvariantId; 14] = [
        InvariantId::NoDuplicatePostings,
        InvariantId::HoldBeforeRelease,
        InvariantId::Containment,
        InvariantId::NoProductionWhileStopped,
        InvariantId::CostCapture,
        InvariantId::NoLostEvents,
        InvariantId::CausalOrder,
        InvariantId::AuditChain,
        InvariantId::MasterDataMonotonic,
        InvariantId::Repairs,
        InvariantId::InventoryAccuracy,
        InvariantId::OrderStatus,
        InvariantId::NoStrandedEvents,
        InvariantId::Slo,
    ];

    /// The id as the report and scenario files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            InvariantId::NoDuplicatePostings => "no-duplicate-postings",
            InvariantId::HoldBeforeRelease => "hold-before-release",
            InvariantId::Containment => "containment",
            InvariantId::NoProductionWhileStopped => "no-production-while-stopped",
            InvariantId::CostCapture => "cost-capture",
            InvariantId::NoLostEvents => "no-lost-events",
            InvariantId::CausalOrder => "causal-order",
            InvariantId::AuditChain => "audit-chain",
            InvariantId::MasterDataMonotonic => "master-data-monotonic",
            InvariantId::Repairs => "repairs",
            InvariantId::InventoryAccuracy => "inventory-accuracy",
            InvariantId::OrderStatus => "order-status",
            InvariantId::NoStrandedEvents => "no-stranded-events",
            InvariantId::Slo => "slo",
        }
    }

    /// The invariant named `s`, if any.
    pub fn parse(s: &str) -> Option<InvariantId> {
        InvariantId::ALL.into_iter().find(|i| i.as_str() == s)
    }
}

impl fmt::Display for InvariantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which invariants a run checks (`expect.invariants`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Invariants {
    /// `["all"]`: every invariant (the default).
    #[default]
    All,
    /// An explicit list, without duplicates, in file order.
    Only(Vec<InvariantId>),
}

impl Invariants {
    /// Whether `id` is checked.
    pub fn includes(&self, id: InvariantId) -> bool {
        match self {
            Invariants::All => true,
            Invariants::Only(ids) => ids.contains(&id),
        }
    }
}

/// Latency objectives per class (`expect.slo`); `None`: not checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slo {
    /// `critical_p99`.
    pub critical_p99: Option<Duration>,
    /// `transactional_p99`.
    pub transactional_p99: Option<Duration>,
    /// `bulk_p99`.
    pub bulk_p99: Option<Duration>,
}

impl Slo {
    /// The p99 objective of `class`.
    pub fn p99(&self, class: LatencyClass) -> Option<Duration> {
        match class {
            LatencyClass::Critical => self.critical_p99,
            LatencyClass::Transactional => self.transactional_p99,
            LatencyClass::Bulk => self.bulk_p99,
        }
    }
}

/// The counts of the run report (`spec/report.md`, `counts`), usable in `expect.min`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Count {
    /// `units`
    Units,
    /// `inspections`
    Inspections,
    /// `nonconformances`
    Nonconformances,
    /// `holds`
    Holds,
    /// `releases`
    Releases,
    /// `work_orders`
    WorkOrders,
    /// `line_stops`
    LineStops,
    /// `cost_postings`
    CostPostings,
    /// `master_data_records`
    MasterDataRecords,
    /// `dead_letters`
    DeadLetters,
    /// `dead_letters_replayed`
    DeadLettersReplayed,
    /// `retries`
    Retries,
    /// `duplicates_absorbed`
    DuplicatesAbsorbed,
    /// `core_crashes`
    CoreCrashes,
}

impl Count {
    /// Every count, in report order.
    pub const ALL: [Count; 14] = [
        Count::Units,
        Count::Inspections,
        Count::Nonconformances,
        Count::Holds,
        Count::Releases,
        Count::WorkOrders,
        Count::LineStops,
        Count::CostPostings,
        Count::MasterDataRecords,
        Count::DeadLetters,
        Count::DeadLettersReplayed,
        Count::Retries,
        Count::DuplicatesAbsorbed,
        Count::CoreCrashes,
    ];

    /// The name as the report spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Count::Units => "units",
            Count::Inspections => "inspections",
            Count::Nonconformances => "nonconformances",
            Count::Holds => "holds",
            Count::Releases => "releases",
            Count::WorkOrders => "work_orders",
            Count::LineStops => "line_stops",
            Count::CostPostings => "cost_postings",
            Count::MasterDataRecords => "master_data_records",
            Count::DeadLetters => "dead_letters",
            Count::DeadLettersReplayed => "dead_letters_replayed",
            Count::Retries => "retries",
            Count::DuplicatesAbsorbed => "duplicates_absorbed",
            Count::CoreCrashes => "core_crashes",
        }
    }

    /// The count named `s`, if any.
    pub fn parse(s: &str) -> Option<Count> {
        Count::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What a run must show to pass (`[expect]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// Invariants checked.
    pub invariants: Invariants,
    /// Latency objectives.
    pub slo: Slo,
    /// Minimum counts, proving the run really exercised the loop; absent counts have no minimum.
    pub min: BTreeMap<Count, u64>,
}

/// A validated scenario file.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// `scenario.name`: unique within a suite.
    pub name: String,
    /// `scenario.description`.
    pub description: String,
    /// `scenario.seed`: the default seed, which the CLI's `--seed` overrides.
    pub seed: u64,
    /// `scenario.duration`: simulated time during which plants run and faults fire; positive.
    pub duration: Duration,
    /// `scenario.drain`: then no new faults, plants idle, retries converge.
    pub drain: Duration,
    /// `[systems]`.
    pub systems: Systems,
    /// `[[plant]]`, at least one, unique ids.
    pub plants: Vec<PlantSpec>,
    /// `[[drift]]`.
    pub drifts: Vec<Drift>,
    /// `[[fault]]`.
    pub faults: Vec<Fault>,
    /// `[[masterdata]]`.
    pub masterdata: Vec<MasterData>,
    /// `[expect]`.
    pub expect: Expect,
}

impl Scenario {
    /// Loads and validates the scenario file at `path`; errors name the path as given.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let whole = |message: String| ScenarioError {
            file: file.clone(),
            line: 1,
            key: "(file)".into(),
            message,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| whole(format!("cannot read: {e}")))?
            .len();
        if len > SCENARIO_BYTES_MAX as u64 {
            return Err(whole(format!(
                "file of {len} bytes is larger than {SCENARIO_BYTES_MAX}"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| whole(format!("cannot read: {e}")))?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let line = 1 + good.iter().filter(|&&b| b == b'\n').count() as u32;
                return Err(ScenarioError {
                    file,
                    line,
                    key: "(document)".into(),
                    message: "not valid UTF-8".into(),
                });
            }
        };
        Scenario::from_str(&text, &file)
    }

    /// Parses and validates scenario text; `file` names it in errors.
    #[allow(clippy::should_implement_trait)] // takes the file name too
    pub fn from_str(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let doc = Doc::new(file, text);
        if text.len() > SCENARIO_BYTES_MAX {
            return Err(doc.err(
                0..0,
                "(file)",
                format!("{} bytes is larger than {SCENARIO_BYTES_MAX}", text.len()),
            ));
        }
        let root = DeTable::parse(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            doc.err(
                span.clone(),
                key_at(text, span.start),
                e.message().to_owned(),
            )
        })?;
        let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
        parse_scenario(&doc, &root)
    }

    /// Validates a scenario built in code (by the explorer, say) exactly as the loader would,
    /// by writing it out and loading it back. Errors name the file `(generated)`.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let back = Scenario::from_str(&self.to_toml_string(), "(generated)")?;
        if &back != self {
            return Err(ScenarioError {
                file: "(generated)".into(),
                line: 1,
                key: "(document)".into(),
                message: "does not survive writing and loading (a duration below 1 ms, or a NaN?)"
                    .into(),
            });
        }
        Ok(())
    }

    /// The plant with id `id`.
    pub fn plant(&self, id: &str) -> Option<&PlantSpec> {
        self.plants.iter().find(|p| p.id.as_str() == id)
    }

    /// Whether `station` is a derived station id of one of the plants.
    pub fn has_station(&self, station: &str) -> bool {
        self.plants.iter().any(|p| p.has_station(station))
    }

    /// The canonical TOML form: spec key order, windows explicit, defaults written out. Loading it
    /// gives a scenario equal to `self` when `self` is valid (see [`Scenario::validate`]).
    pub fn to_toml_string(&self) -> String {
        let mut o = String::new();
        self.write_toml(&mut o)
            .expect("writing to a String cannot fail");
        o
    }

    fn write_toml(&self, o: &mut String) -> fmt::Result {
        writeln!(o, "[scenario]")?;
        writeln!(o, "name = {}", quote(&self.name))?;
        if !self.description.is_empty() {
            writeln!(o, "description = {}", quote(&self.description))?;
        }
        writeln!(o, "seed = {}", self.seed)?;
        writeln!(o, "duration = \"{}\"", self.duration)?;
        writeln!(o, "drain = \"{}\"", self.drain)?;

        writeln!(o, "\n[systems]")?;
        for s in System::ALL {
            writeln!(o, "{s} = \"{}\"", self.systems.get(s))?;
        }

        for p in &self.plants {
            writeln!(o, "\n[[plant]]")?;
            writeln!(o, "id = {}", quote(p.id.as_str()))?;
            writeln!(o, "lines = {}", p.lines)?;
            writeln!(o, "stations_per_line = {}", p.stations_per_line)?;
            writeln!(o, "cycle_time = \"{}\"", p.cycle_time)?;
            writeln!(
                o,
                "inspection = {{ sample_rate = {}, defect_rate = {} }}",
                float(p.inspection.sample_rate),
                float(p.inspection.defect_rate)
            )?;
            if let Some(m) = p.machines {
                writeln!(
                    o,
                    "machines = {{ mtbf = \"{}\", mttr = \"{}\" }}",
                    m.mtbf, m.mttr
                )?;
            }
            writeln!(
                o,
                "orders = {{ size = {}, material = {} }}",
                p.orders.size,
                quote(p.orders.material.as_str())
            )?;
            let parts: Vec<String> = p
                .maintenance
                .parts
                .iter()
                .map(|pc| {
                    format!(
                        "{{ part = {}, unit_cost = {} }}",
                        quote(pc.part.as_str()),
                        pc.unit_cost
                    )
                })
                .collect();
            writeln!(
                o,
                "maintenance = {{ labor_rate = {}, parts = [{}] }}",
                p.maintenance.labor_rate,
                parts.join(", ")
            )?;
        }

        for d in &self.drifts {
            writeln!(o, "\n[[drift]]")?;
            writeln!(o, "station = {}", quote(d.station.as_str()))?;
            writeln!(o, "at = \"{}\"", at_text(d.at))?;
            writeln!(o, "defect_rate = {}", float(d.defect_rate))?;
        }

        for f in &self.faults {
            writeln!(o, "\n[[fault]]")?;
            writeln!(o, "kind = \"{}\"", f.kind())?;
            if let Some(plant) = f.plant() {
                writeln!(o, "plant = {}", quote(plant.as_str()))?;
            }
            if let Some(system) = f.system() {
                writeln!(o, "system = \"{system}\"")?;
            }
            match f {
                Fault::CoreCrash { at, downtime } => {
                    writeln!(o, "at = \"{}\"", at_text(*at))?;
                    writeln!(o, "downtime = \"{downtime}\"")?;
                }
                Fault::AlarmStorm {
                    at, events, over, ..
                } => {
                    writeln!(o, "at = \"{}\"", at_text(*at))?;
                    writeln!(o, "events = {events}")?;
                    writeln!(o, "over = \"{over}\"")?;
                }
                _ => {
                    let w = f.window();
                    writeln!(o, "at = \"{}\"", at_text(w.start))?;
                    writeln!(o, "for = \"{}\"", w.length)?;
                }
            }
            match f {
                Fault::EndpointErrors { rate, .. } => writeln!(o, "rate = {}", float(*rate))?,
                Fault::EndpointThrottle { limit_per_s, .. } => {
                    writeln!(o, "limit_per_s = {limit_per_s}")?
                }
                Fault::EndpointLatency { latency, .. } => writeln!(o, "latency = \"{latency}\"")?,
                Fault::DuplicateDelivery { probability, .. } => {
                    writeln!(o, "probability = {}", float(*probability))?
                }
                Fault::Reorder { window, .. } => writeln!(o, "window = \"{window}\"")?,
                _ => {}
            }
        }

        for m in &self.masterdata {
            writeln!(o, "\n[[masterdata]]")?;
            writeln!(o, "at = \"{}\"", at_text(m.at))?;
            writeln!(o, "kind = \"{}\"", m.kind.as_str())?;
            writeln!(o, "count = {}", m.count)?;
        }

        writeln!(o, "\n[expect]")?;
        match &self.expect.invariants {
            Invariants::All => writeln!(o, "invariants = [\"all\"]")?,
            Invariants::Only(ids) => {
                let ids: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
                writeln!(o, "invariants = [{}]", ids.join(", "))?;
            }
        }
        let slo: Vec<String> = LatencyClass::ALL
            .into_iter()
            .filter_map(|c| {
                self.expect
                    .slo
                    .p99(c)
                    .map(|d| format!("{}_p99 = \"{d}\"", c.as_str()))
            })
            .collect();
        writeln!(o, "slo = {{ {} }}", slo.join(", "))?;
        let min: Vec<String> = self
            .expect
            .min
            .iter()
            .map(|(c, n)| format!("{} = {n}", c.as_str()))
            .collect();
        writeln!(o, "min = {{ {} }}", min.join(", "))?;
        Ok(())
    }
}

/// An instant as a scenario offset (`"1d12h"`).
fn at_text(at: Instant) -> Duration {
    at.saturating_since(Instant::ZERO)
}

/// A TOML float that reads back bit for bit (`1.0`, `0.001`, `1e-7`).
fn float(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'E', 'n', 'i']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

// ---------------------------------------------------------------------------------------------
// Loading: a hand walk over toml's spanned tree.

type Val<'i> = Spanned<DeValue<'i>>;
type Res<T> = Result<T, ScenarioError>;

/// The text being loaded, for turning byte offsets into lines.
struct Doc<'s> {
    file: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> Doc<'s> {
    fn new(file: &'s str, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Doc { file, line_starts }
    }

    fn line(&self, offset: usize) -> u32 {
        self.line_starts.partition_point(|&s| s <= offset).max(1) as u32
    }

    fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ScenarioError {
        let key = key.into();
        ScenarioError {
            file: self.file.to_owned(),
            line: self.line(span.start),
            key: if key.is_empty() {
                "(document)".into()
            } else {
                key
            },
            message: message.into(),
        }
    }
}

/// Best-effort key path of a syntax error at `offset`: the enclosing table header plus the key on
/// the line, e.g. `fault[1].at`.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut header = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut key = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        let on_error_line = offset < pos + line.len() || pos + line.len() == text.len();
        if t.starts_with('[') {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if on_error_line && !plain {
                // A broken header: name it as written.
                return t.chars().take(40).collect();
            }
            if t.starts_with("[[") {
                let n = counts.entry(name.to_owned()).or_insert(0);
                header = format!("{name}[{n}]");
                *n += 1;
            } else {
                header = name.to_owned();
            }
        } else if on_error_line && let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && !k.contains(['"', '\'', '{', '[', '#']) {
                key = k.to_owned();
            }
        }
        if on_error_line {
            break;
        }
        pos += line.len();
    }
    match (header.is_empty(), key.is_empty()) {
        (true, true) => "(document)".into(),
        (true, false) => key,
        (false, true) => header,
        (false, false) => format!("{header}.{key}"),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The closest of `candidates` to `word`, if it is a plausible typo.
fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    if word.chars().count() > 64 {
        return None;
    }
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min()
        .map(|(_, c)| c)
}

fn one_of(candidates: &[&str]) -> String {
    candidates.join(", ")
}

/// A value with its key path.
#[derive(Clone, Copy)]
struct Field<'a, 'i, 's> {
    doc: &'a Doc<'s>,
    path: &'a str,
    v: &'a Val<'i>,
}

/// A table whose keys have been checked against an allowed list.
struct Table<'a, 'i, 's> {
    doc: &'a Doc<'s>,
    path: String,
    span: Range<usize>,
    map: &'a DeTable<'i>,
    /// Key paths, kept alive for the `Field`s handed out.
    paths: Vec<(&'a str, String)>,
}

impl<'a, 'i, 's> Field<'a, 'i, 's> {
    fn err(&self, message: impl Into<String>) -> ScenarioError {
        self.doc.err(self.v.span(), self.path, message)
    }

    fn wrong(&self, expected: &str) -> ScenarioError {
        self.err(format!(
            "expected {expected}, found {}",
            describe(self.v.get_ref())
        ))
    }

    fn str(&self) -> Res<&'a str> {
        match self.v.get_ref() {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.wrong("a string")),
        }
    }

    /// An integer in [lo, hi].
    fn int(&self, lo: u64, hi: u64) -> Res<u64> {
        let DeValue::Integer(i) = self.v.get_ref() else {
            return Err(self.wrong("an integer"));
        };
        let n = i128::from_str_radix(i.as_str(), i.radix())
            .map_err(|_| self.err("integer out of range"))?;
        if n < lo as i128 || n > hi as i128 {
            return Err(self.err(format!("{n} is out of range: expected {lo} to {hi}")));
        }
        Ok(n as u64)
    }

    fn u32(&self, lo: u32, hi: u32) -> Res<u32> {
        self.int(lo as u64, hi as u64).map(|n| n as u32)
    }

    /// A number (integer or float), finite.
    fn number(&self) -> Res<f64> {
        let v = match self.v.get_ref() {
            DeValue::Float(f) => f
                .as_str()
                .parse::<f64>()
                .map_err(|_| self.err("invalid float"))?,
            DeValue::Integer(i) => {
                let n = i64::from_str_radix(i.as_str(), i.radix())
                    .map_err(|_| self.err("integer out of range"))?;
                if n.unsigned_abs() > 1 << 53 {
                    return Err(self.err("integer too large to be exact as a number"));
                }
                n as f64
            }
            _ => return Err(self.wrong("a number")),
        };
        if !v.is_finite() {
            return Err(self.err(format!("{v} is not a finite number")));
        }
        Ok(v)
    }

    /// A probability or rate in [0, 1].
    fn rate(&self) -> Res<f64> {
        let v = self.number()?;
        if !(0.0..=1.0).contains(&v) {
            return Err(self.err(format!("{v} is out of range: expected a number in [0, 1]")));
        }
        Ok(v)
    }

    fn duration(&self) -> Res<Duration> {
        let s = self
            .str()
            .map_err(|_| self.wrong("a duration string such as \"45s\" or \"1d12h\""))?;
        Duration::parse(s).map_err(|e| self.err(e.to_string()))
    }

    fn positive_duration(&self) -> Res<Duration> {
        let d = self.duration()?;
        if d.is_zero() {
            return Err(self.err("must be longer than 0s"));
        }
        Ok(d)
    }

    /// A non-negative amount of money, exact to the cent.
    fn money(&self) -> Res<Money> {
        let v = self.number()?;
        let m = Money::from_config_f64(v).map_err(|e| self.err(e.to_string()))?;
        if m < Money::ZERO {
            return Err(self.err(format!("{m} is negative")));
        }
        Ok(m)
    }

    fn table(&self, allowed: &[&str]) -> Res<Table<'a, 'i, 's>> {
        match self.v.get_ref() {
            DeValue::Table(map) => {
                Table::new(self.doc, self.path.to_owned(), self.v.span(), map, allowed)
            }
            _ => Err(self.wrong("a table")),
        }
    }

    /// An array, with its elements' key paths (`path[i]`); at most `len_max` elements.
    fn array(&self, len_max: usize, what: &str) -> Res<Vec<(String, &'a Val<'i>)>> {
        let DeValue::Array(items) = self.v.get_ref() else {
            return Err(self.wrong("an array"));
        };
        if items.len() > len_max {
            let extra = &items[len_max];
            return Err(self.doc.err(
                extra.span(),
                format!("{}[{len_max}]", self.path),
                format!("more than {len_max} {what}"),
            ));
        }
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("{}[{i}]", self.path), v))
            .collect())
    }
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) if s.chars().count() <= 40 => format!("string {s:?}"),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(f) => format!("float {f}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        other => other.type_str().to_owned(),
    }
}

impl<'a, 'i, 's> Table<'a, 'i, 's> {
    fn new(
        doc: &'a Doc<'s>,
        path: String,
        span: Range<usize>,
        map: &'a DeTable<'i>,
        allowed: &[&str],
    ) -> Res<Self> {
        let mut keys: Vec<_> = map.iter().map(|(k, _)| k).collect();
        keys.sort_by_key(|k| k.span().start);
        if let Some(k) = keys
            .into_iter()
            .find(|k| !allowed.contains(&k.get_ref().as_ref()))
        {
            let name: &str = k.get_ref();
            let mut hint = String::new();
            if let Some(s) = suggest(name, allowed) {
                hint = format!(" (did you mean `{s}`?)");
            }
            if !allowed.is_empty() {
                hint.push_str(&format!("; expected one of: {}", one_of(allowed)));
            }
            return Err(doc.err(k.span(), join(&path, name), format!("unknown key{hint}")));
        }
        let paths = map
            .iter()
            .map(|(k, _)| (k.get_ref().as_ref(), join(&path, k.get_ref())))
            .collect();
        Ok(Table {
            doc,
            path,
            span,
            map,
            paths,
        })
    }

    fn path_of(&self, key: &str) -> &str {
        self.paths
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, p)| p.as_str())
            .unwrap_or("")
    }

    fn get(&self, key: &str) -> Option<Field<'_, 'i, 's>> {
        self.map.get(key).map(|v| Field {
            doc: self.doc,
            path: self.path_of(key),
            v,
        })
    }

    fn req(&self, key: &str) -> Res<Field<'_, 'i, 's>> {
        self.get(key).ok_or_else(|| {
            self.doc.err(
                self.span.clone(),
                join(&self.path, key),
                "missing required key",
            )
        })
    }

    /// Ordered (key span start) entries, for tables whose keys are data (`[systems]`, `min`).
    fn entries(&self) -> Vec<(&str, Field<'_, 'i, 's>)> {
        let mut e: Vec<_> = self.map.iter().collect();
        e.sort_by_key(|(k, _)| k.span().start);
        e.into_iter()
            .map(|(k, v)| {
                let k: &str = k.get_ref();
                (
                    k,
                    Field {
                        doc: self.doc,
                        path: self.path_of(k),
                        v,
                    },
                )
            })
            .collect()
    }
}

const TOP_KEYS: [&str; 7] = [
    "scenario",
    "systems",
    "plant",
    "drift",
    "fault",
    "masterdata",
    "expect",
];
const SCENARIO_KEYS: [&str; 5] = ["name", "description", "seed", "duration", "drain"];
const SYSTEM_KEYS: [&str; 4] = ["erp", "qms", "cmms", "mes"];
const PLANT_KEYS: [&str; 8] = [
    "id",
    "lines",
    "stations_per_line",
    "cycle_time",
    "inspection",
    "machines",
    "orders",
    "maintenance",
];
const DRIFT_KEYS: [&str; 3] = ["station", "at", "defect_rate"];
const MASTERDATA_KEYS: [&str; 3] = ["at", "kind", "count"];
const EXPECT_KEYS: [&str; 3] = ["invariants", "slo", "min"];
const SLO_KEYS: [&str; 3] = ["critical_p99", "transactional_p99", "bulk_p99"];

fn parse_scenario(doc: &Doc<'_>, root: &Val<'_>) -> Res<Scenario> {
    let root = Field {
        doc,
        path: "",
        v: root,
    }
    .table(&TOP_KEYS)?;

    let head = root.req("scenario")?.table(&SCENARIO_KEYS)?;
    let name_field = head.req("name")?;
    let name = name_field.str()?;
    check_name(name).map_err(|m| name_field.err(m))?;
    let description = match head.get("description") {
        Some(f) => {
            let d = f.str()?;
            if d.len() > DESCRIPTION_LEN_MAX {
                return Err(f.err(format!("longer than {DESCRIPTION_LEN_MAX} bytes")));
            }
            d.to_owned()
        }
        None => String::new(),
    };
    let seed = head
        .get("seed")
        .map(|f| f.int(0, SEED_MAX))
        .transpose()?
        .unwrap_or(0);
    let duration_field = head.req("duration")?;
    let duration = duration_field.positive_duration()?;
    if duration > DURATION_MAX {
        return Err(duration_field.err(format!("longer than the maximum {DURATION_MAX}")));
    }
    let drain = match head.get("drain") {
        Some(f) => {
            // A zero drain leaves no time for retries to converge: every run with a call in
            // flight at the end would fail `no-lost-events`.
            let d = f.positive_duration()?;
            if d > DRAIN_MAX {
                return Err(f.err(format!("longer than the maximum {DRAIN_MAX}")));
            }
            d
        }
        None => Duration::from_hours(24),
    };
    let run = Run { duration };

    let mut systems = Systems::default();
    if let Some(f) = root.get("systems") {
        let t = f.table(&SYSTEM_KEYS)?;
        for (key, f) in t.entries() {
            let system = System::parse(key).expect("keys were checked");
            let s = f.str()?;
            *systems.get_mut(system) = Personality::parse(s).ok_or_else(|| {
                f.err(format!(
                    "unknown personality {s:?}; expected one of: modern, legacy, saas"
                ))
            })?;
        }
    }

    let mut plants: Vec<PlantSpec> = Vec::new();
    if let Some(f) = root.get("plant") {
        for (path, v) in array_of_tables(&f, PLANTS_MAX, "plants")? {
            let (plant, id_span) = parse_plant(doc, &path, v)?;
            if let Some(first) = plants.iter().position(|q| q.id == plant.id) {
                let message = format!(
                    "duplicate plant id {:?} (also plant[{first}])",
                    plant.id.as_str()
                );
                return Err(doc.err(id_span, join(&path, "id"), message));
            }
            plants.push(plant);
        }
    }
    if plants.is_empty() {
        return Err(doc.err(0..0, "plant", "a scenario needs at least one [[plant]]"));
    }
    let scenario_plants = Plants(&plants);

    let drifts = match root.get("drift") {
        Some(f) => array_of_tables(&f, DRIFTS_MAX, "drifts")?
            .iter()
            .map(|(path, v)| parse_drift(doc, path, v, &run, &scenario_plants))
            .collect::<Res<Vec<_>>>()?,
        None => Vec::new(),
    };

    let faults = match root.get("fault") {
        Some(f) => array_of_tables(&f, FAULTS_MAX, "faults")?
            .iter()
            .map(|(path, v)| parse_fault(doc, path, v, &run, &scenario_plants))
            .collect::<Res<Vec<_>>>()?,
        None => Vec::new(),
    };

    let masterdata = match root.get("masterdata") {
        Some(f) => array_of_tables(&f, MASTERDATA_MAX, "master-data releases")?
            .iter()
            .map(|(path, v)| parse_masterdata(doc, path, v, &run))
            .collect::<Res<Vec<_>>>()?,
        None => Vec::new(),
    };

    let expect = match root.get("expect") {
        Some(f) => parse_expect(&f)?,
        None => Expect::default(),
    };

    Ok(Scenario {
        name: name.to_owned(),
        description,
        seed,
        duration,
        drain,
        systems,
        plants,
        drifts,
        faults,
        masterdata,
        expect,
    })
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > NAME_LEN_MAX {
        return Err(format!("longer than {NAME_LEN_MAX} bytes"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or a digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "character {c:?} not allowed: use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// The run's time frame, for checking windows.
struct Run {
    duration: Duration,
}

impl Run {
    /// `at` as an instant strictly before the end of `duration`.
    fn start(&self, f: &Field<'_, '_, '_>) -> Res<Instant> {
        let d = f.duration()?;
        if d >= self.duration {
            return Err(f.err(format!(
                "{d} is not before the scenario duration {}",
                self.duration
            )));
        }
        Ok(Instant::ZERO + d)
    }

    /// Checks that `start + length` stays within `duration`; the error points at `f` (the length).
    fn fits(&self, start: Instant, length: Duration, f: &Field<'_, '_, '_>) -> Res<()> {
        let end = start + length;
        if end > Instant::ZERO + self.duration {
            return Err(f.err(format!(
                "window {} + {length} ends after the scenario duration {}",
                at_text(start),
                self.duration
            )));
        }
        Ok(())
    }
}

/// The scenario's plants, for cross-references.
struct Plants<'p>(&'p [PlantSpec]);

impl Plants<'_> {
    fn resolve(&self, f: &Field<'_, '_, '_>) -> Res<PlantId> {
        let id = f.str()?;
        match self.0.iter().find(|p| p.id.as_str() == id) {
            Some(p) => Ok(p.id.clone()),
            None => {
                let ids: Vec<&str> = self.0.iter().map(|p| p.id.as_str()).collect();
                Err(f.err(format!(
                    "unknown plant {id:?}; the scenario's plants are: {}",
                    one_of(&ids)
                )))
            }
        }
    }
}

fn array_of_tables<'a, 'i, 's>(
    f: &Field<'a, 'i, 's>,
    len_max: usize,
    what: &str,
) -> Res<Vec<(String, &'a Val<'i>)>> {
    if !matches!(f.v.get_ref(), DeValue::Array(_)) {
        return Err(f.wrong(&format!("an array of tables ([[{}]])", f.path)));
    }
    f.array(len_max, what)
}

/// A plant and the span of its `id` value (for the duplicate check).
fn parse_plant(doc: &Doc<'_>, path: &str, v: &Val<'_>) -> Res<(PlantSpec, Range<usize>)> {
    let t = Field { doc, path, v }.table(&PLANT_KEYS)?;
    let id_field = t.req("id")?;
    let id = PlantId::new(id_field.str()?).map_err(|e| id_field.err(e.reason))?;
    let lines = t.req("lines")?.u32(1, LINES_MAX)?;
    let stations_per_line = t.req("stations_per_line")?.u32(1, STATIONS_PER_LINE_MAX)?;
    // The longest derived station id must be a valid id too.
    derive_station_id(&id, lines, stations_per_line).map_err(|reason| {
        id_field.err(format!("derived station ids such as \"{id}-L{lines}-S{stations_per_line}\" are invalid: {reason} (ids are at most {ID_LEN_MAX} bytes)"))
    })?;
    let cycle_time = t.req("cycle_time")?.positive_duration()?;

    let mut inspection = Inspection::default();
    if let Some(f) = t.get("inspection") {
        let it = f.table(&["sample_rate", "defect_rate"])?;
        if let Some(f) = it.get("sample_rate") {
            inspection.sample_rate = f.rate()?;
        }
        if let Some(f) = it.get("defect_rate") {
            inspection.defect_rate = f.rate()?;
        }
    }

    let machines = match t.get("machines") {
        Some(f) => {
            let mt = f.table(&["mtbf", "mttr"])?;
            Some(Machines {
                mtbf: mt.req("mtbf")?.positive_duration()?,
                mttr: mt.req("mttr")?.duration()?,
            })
        }
        None => None,
    };

    let mut orders = Orders::default();
    if let Some(f) = t.get("orders") {
        let ot = f.table(&["size", "material"])?;
        if let Some(f) = ot.get("size") {
            orders.size = f.u32(1, ORDER_SIZE_MAX)?;
        }
        if let Some(f) = ot.get("material") {
            orders.material = MaterialId::new(f.str()?).map_err(|e| f.err(e.reason))?;
        }
    }

    let mut maintenance = Maintenance::default();
    if let Some(f) = t.get("maintenance") {
        let mt = f.table(&["labor_rate", "parts"])?;
        if let Some(f) = mt.get("labor_rate") {
            maintenance.labor_rate = f.money()?;
        }
        if let Some(f) = mt.get("parts") {
            for (ppath, pv) in f.array(PARTS_MAX, "parts")? {
                let pt = Field {
                    doc,
                    path: &ppath,
                    v: pv,
                }
                .table(&["part", "unit_cost"])?;
                let part_field = pt.req("part")?;
                let part = PartId::new(part_field.str()?).map_err(|e| part_field.err(e.reason))?;
                if maintenance.parts.iter().any(|p| p.part == part) {
                    return Err(part_field.err(format!("duplicate part {:?}", part.as_str())));
                }
                let unit_cost = pt.req("unit_cost")?.money()?;
                maintenance.parts.push(PartCost { part, unit_cost });
            }
        }
    }

    let plant = PlantSpec {
        id,
        lines,
        stations_per_line,
        cycle_time,
        inspection,
        machines,
        orders,
        maintenance,
    };
    Ok((plant, id_field.v.span()))
}

fn parse_drift(
    doc: &Doc<'_>,
    path: &str,
    v: &Val<'_>,
    run: &Run,
    plants: &Plants<'_>,
) -> Res<Drift> {
    let t = Field { doc, path, v }.table(&DRIFT_KEYS)?;
    let sf = t.req("station")?;
    let s = sf.str()?;
    if !plants.0.iter().any(|p| p.has_station(s)) {
        let examples: Vec<String> = plants
            .0
            .iter()
            .map(|p| {
                format!(
                    "{}-L1-S1 … {}",
                    p.id,
                    p.station_id(p.lines, p.stations_per_line)
                )
            })
            .collect();
        return Err(sf.err(format!(
            "unknown station {s:?}; the scenario's stations are {}",
            examples.join(", ")
        )));
    }
    let station = StationId::new(s).map_err(|e| sf.err(e.reason))?;
    let at = match t.get("at") {
        Some(f) => run.start(&f)?,
        None => Instant::ZERO,
    };
    let defect_rate = t.req("defect_rate")?.rate()?;
    Ok(Drift {
        station,
        at,
        defect_rate,
    })
}

fn parse_system(f: &Field<'_, '_, '_>) -> Res<System> {
    let s = f.str()?;
    System::parse(s).ok_or_else(|| {
        f.err(format!(
            "unknown system {s:?}; expected one of: erp, qms, cmms, mes"
        ))
    })
}

fn parse_fault(
    doc: &Doc<'_>,
    path: &str,
    v: &Val<'_>,
    run: &Run,
    plants: &Plants<'_>,
) -> Res<Fault> {
    let any = Field { doc, path, v };
    // Read `kind` first: it decides which keys are allowed.
    let DeValue::Table(map) = v.get_ref() else {
        return Err(any.wrong("a table"));
    };
    let kind_path = join(path, "kind");
    let kind_field = match map.get("kind") {
        Some(kv) => Field {
            doc,
            path: &kind_path,
            v: kv,
        },
        None => {
            return Err(doc.err(
                v.span(),
                kind_path,
                format!(
                    "missing required key; expected one of: {}",
                    one_of(&FAULT_KINDS)
                ),
            ));
        }
    };
    let kind = kind_field.str()?;
    let allowed: &[&str] = match kind {
        "wan-outage" => &["kind", "plant", "at", "for"],
        "endpoint-errors" => &["kind", "system", "at", "for", "rate"],
        "endpoint-outage" => &["kind", "system", "at", "for"],
        "endpoint-throttle" => &["kind", "system", "at", "for", "limit_per_s"],
        "endpoint-latency" => &["kind", "system", "at", "for", "latency"],
        "duplicate-delivery" => &["kind", "system", "at", "for", "probability"],
        "reorder" => &["kind", "system", "at", "for", "window"],
        "core-crash" => &["kind", "at", "downtime"],
        "alarm-storm" => &["kind", "plant", "at", "events", "over"],
        _ => {
            let hint = match suggest(kind, &FAULT_KINDS) {
                Some(s) => format!("did you mean {s:?}?"),
                None => format!("expected one of: {}", one_of(&FAULT_KINDS)),
            };
            return Err(kind_field.err(format!("unknown fault kind {kind:?}; {hint}")));
        }
    };
    let t = any.table(allowed)?;
    let window = || -> Res<Window> {
        let start = match t.get("at") {
            Some(f) => run.start(&f)?,
            None => Instant::ZERO,
        };
        match t.get("for") {
            Some(f) => {
                let length = f.positive_duration()?;
                run.fits(start, length, &f)?;
                Ok(Window { start, length })
            }
            None => Ok(Window {
                start,
                length: (Instant::ZERO + run.duration) - start,
            }),
        }
    };
    let system = || parse_system(&t.req("system")?);
    Ok(match kind {
        "wan-outage" => Fault::WanOutage {
            plant: plants.resolve(&t.req("plant")?)?,
            active: window()?,
        },
        "endpoint-errors" => Fault::EndpointErrors {
            system: system()?,
            active: window()?,
            rate: t.req("rate")?.rate()?,
        },
        "endpoint-outage" => Fault::EndpointOutage {
            system: system()?,
            active: window()?,
        },
        "endpoint-throttle" => Fault::EndpointThrottle {
            system: system()?,
            active: window()?,
            limit_per_s: t.req("limit_per_s")?.u32(1, THROTTLE_LIMIT_PER_S_MAX)?,
        },
        "endpoint-latency" => Fault::EndpointLatency {
            system: system()?,
            active: window()?,
            latency: t.req("latency")?.positive_duration()?,
        },
        "duplicate-delivery" => Fault::DuplicateDelivery {
            system: system()?,
            active: window()?,
            probability: t.req("probability")?.rate()?,
        },
        "reorder" => Fault::Reorder {
            system: system()?,
            active: window()?,
            window: t.req("window")?.positive_duration()?,
        },
        "core-crash" => {
            let at = run.start(&t.req("at")?)?;
            let df = t.req("downtime")?;
            let downtime = df.positive_duration()?;
            run.fits(at, downtime, &df)?;
            Fault::CoreCrash { at, downtime }
        }
        "alarm-storm" => {
            let plant = plants.resolve(&t.req("plant")?)?;
            let at = run.start(&t.req("at")?)?;
            let events = t.req("events")?.u32(1, ALARM_STORM_EVENTS_MAX)?;
            let of = t.req("over")?;
            let over = of.duration()?;
            run.fits(at, over, &of)?;
            Fault::AlarmStorm {
                plant,
                at,
                events,
                over,
            }
        }
        _ => unreachable!("kinds were matched above"),
    })
}

fn parse_masterdata(doc: &Doc<'_>, path: &str, v: &Val<'_>, run: &Run) -> Res<MasterData> {
    let t = Field { doc, path, v }.table(&MASTERDATA_KEYS)?;
    let at = run.start(&t.req("at")?)?;
    let kf = t.req("kind")?;
    let k = kf.str()?;
    let kind = MasterDataKind::parse(k).ok_or_else(|| {
        kf.err(format!(
            "unknown master-data kind {k:?}; expected one of: material, asset, inspection-spec"
        ))
    })?;
    let count = t.req("count")?.u32(1, MASTERDATA_COUNT_MAX)?;
    Ok(MasterData { at, kind, count })
}

fn parse_expect(f: &Field<'_, '_, '_>) -> Res<Expect> {
    let t = f.table(&EXPECT_KEYS)?;
    let mut expect = Expect::default();
    if let Some(f) = t.get("invariants") {
        let items = f.array(InvariantId::ALL.len() + 1, "invariants")?;
        let mut ids = Vec::new();
        let mut all = false;
        for (path, v) in &items {
            let item = Field {
                doc: f.doc,
                path,
                v,
            };
            let s = item.str()?;
            if s == "all" {
                if items.len() > 1 {
                    return Err(item.err("\"all\" must stand alone"));
                }
                all = true;
                continue;
            }
            let id = InvariantId::parse(s).ok_or_else(|| {
                let names: Vec<&str> = InvariantId::ALL.iter().map(|i| i.as_str()).collect();
                item.err(format!(
                    "unknown invariant {s:?}; expected \"all\" or one of: {}",
                    one_of(&names)
                ))
            })?;
            if ids.contains(&id) {
                return Err(item.err(format!("duplicate invariant {s:?}")));
            }
            ids.push(id);
        }
        expect.invariants = if all {
            Invariants::All
        } else {
            Invariants::Only(ids)
        };
    }
    if let Some(f) = t.get("slo") {
        let st = f.table(&SLO_KEYS)?;
        let get = |k: &str| st.get(k).map(|f| f.positive_duration()).transpose();
        expect.slo = Slo {
            critical_p99: get("critical_p99")?,
            transactional_p99: get("transactional_p99")?,
            bulk_p99: get("bulk_p99")?,
        };
        // An objective that no invariant judges would be ignored without a word.
        if expect.slo != Slo::default() && !expect.invariants.includes(InvariantId::Slo) {
            return Err(f.err(
                "latency objectives given, but \"slo\" is not among expect.invariants; add it there or remove this table",
            ));
        }
    }
    if let Some(f) = t.get("min") {
        let names: Vec<&str> = Count::ALL.iter().map(|c| c.as_str()).collect();
        let mt = f.table(&names)?;
        for (key, f) in mt.entries() {
            let count = Count::parse(key).expect("keys were checked");
            expect.min.insert(count, f.int(0, MIN_COUNT_MAX)?);
        }
    }
    Ok(expect)
}

/// The 1-based line of `scenario.name` in a scenario file's text, for errors found across files
/// (two files of one suite with one name); `None` if the text does not parse or has no name.
pub fn name_line(text: &str) -> Option<u32> {
    let root = DeTable::parse(text).ok()?;
    let DeValue::Table(head) = root.get_ref().get("scenario")?.get_ref() else {
        return None;
    };
    let name = head.get("name")?;
    Some(Doc::new("", text).line(name.span().start))
}
