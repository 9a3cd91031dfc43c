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

mod load;
mod write;

pub use load::name_line;
use load::{Doc, key_at, parse_scenario};
use plantloop_core::model::{
    ID_LEN_MAX, LatencyClass, MaterialId, PartId, PlantId, StationId, System,
};
use plantloop_core::money::Money;
use plantloop_core::time::{Duration, Instant};
use std::collections::BTreeMap;
use std::fmt;
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
/// Longest latency `median` or `p99` of a link or a service time.
pub const LATENCY_MAX: Duration = Duration::from_hours(1);
/// Most calls one system serves at once (`[service]` `concurrency`).
pub const CONCURRENCY_MAX: u32 = 10_000;

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

/// A latency distribution: log-normal from its median and its 99th percentile (`{ median, p99 }`).
/// `p99 == median` is a constant. Draws are capped at [`LatencyDist::DRAW_CAP_P99S`] × `p99`, so
/// a run stays bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyDist {
    /// Half of all draws are shorter; positive, at most [`LATENCY_MAX`].
    pub median: Duration,
    /// 99% of draws are shorter; at least `median`, at most [`LATENCY_MAX`].
    pub p99: Duration,
}

impl LatencyDist {
    /// Draws never exceed this many `p99`s.
    pub const DRAW_CAP_P99S: u64 = 10;
    /// The 99th percentile of the standard normal distribution.
    const Z_99: f64 = 2.326_347_874_040_841;

    /// The distribution with this median and p99.
    pub const fn new(median: Duration, p99: Duration) -> LatencyDist {
        LatencyDist { median, p99 }
    }

    /// The log-normal shape σ: `ln(p99 / median) / z₀.₉₉`; 0 for a constant.
    pub fn sigma(&self) -> f64 {
        if self.p99 <= self.median || self.median.is_zero() {
            return 0.0;
        }
        crate::kernel::ln(self.p99.as_micros() as f64 / self.median.as_micros() as f64) / Self::Z_99
    }

    /// The longest draw.
    pub fn cap(&self) -> Duration {
        self.p99.saturating_mul(Self::DRAW_CAP_P99S)
    }
}

impl fmt::Display for LatencyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{ median = \"{}\", p99 = \"{}\" }}",
            self.median, self.p99
        )
    }
}

/// The links between the systems and the core (`[network]`): one-way latencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    /// Between the core and a system beside it (ERP, QMS, CMMS). Default median 2 ms, p99 10 ms.
    pub lan: LatencyDist,
    /// A plant's WAN link (MES and the edge), unless the plant sets its own `wan`. Default median
    /// 40 ms, p99 200 ms.
    pub wan: LatencyDist,
}

impl Network {
    /// The default LAN latency.
    pub const LAN_DEFAULT: LatencyDist =
        LatencyDist::new(Duration::from_millis(2), Duration::from_millis(10));
    /// The default WAN latency.
    pub const WAN_DEFAULT: LatencyDist =
        LatencyDist::new(Duration::from_millis(40), Duration::from_millis(200));
}

impl Default for Network {
    fn default() -> Self {
        Network {
            lan: Network::LAN_DEFAULT,
            wan: Network::WAN_DEFAULT,
        }
    }
}

/// How one system of record serves calls (`[service]`): how long a call takes there and how
/// many it serves at once; the others wait in its queue, first come first served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service {
    /// Service time of one call. Default median 15 ms, p99 150 ms.
    pub time: LatencyDist,
    /// Calls served at once, 1..=[`CONCURRENCY_MAX`]. Default 32.
    pub concurrency: u32,
}

impl Service {
    /// The default service time.
    pub const TIME_DEFAULT: LatencyDist =
        LatencyDist::new(Duration::from_millis(15), Duration::from_millis(150));
    /// The default concurrency.
    pub const CONCURRENCY_DEFAULT: u32 = 32;
}

impl Default for Service {
    fn default() -> Self {
        Service {
            time: Service::TIME_DEFAULT,
            concurrency: Service::CONCURRENCY_DEFAULT,
        }
    }
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
    /// This plant's WAN latency (key `wan`); `None`: `[network]`'s `wan`.
    pub wan: Option<LatencyDist>,
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
    /// `latency_min`: p99 latencies a class must at least reach, proving the run really loaded
    /// the systems (a contention scenario's bulk class); absent classes have no minimum.
    pub latency_min: Slo,
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
    /// `[network]`: link latencies.
    pub network: Network,
    /// `[service]`: service time and concurrency per system, in [`System::index`] order.
    pub service: [Service; 4],
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

    /// The WAN latency of plant `i` (its own `wan`, else `[network]`'s).
    pub fn wan(&self, i: usize) -> LatencyDist {
        self.plants[i].wan.unwrap_or(self.network.wan)
    }
}
