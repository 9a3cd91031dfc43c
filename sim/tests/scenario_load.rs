//! The scenario loader against the spec: the full example, defaults, every kind of bad input with
//! its exact line and key, files on disk, and writing back.

use plantloop_core::model::{LatencyClass, System};
use plantloop_core::money::Money;
use plantloop_core::time::{Duration, Instant};
use plantloop_sim::scenario::*;

/// The example of `spec/scenario.md`, verbatim.
const SPEC_EXAMPLE: &str = r##"[scenario]
name = "torque-drift-containment"   # required; unique within a suite
description = "Repeated torque failures at one station must be contained and repaired."
seed = 42                           # default seed; the CLI's --seed overrides it
duration = "7d"                     # simulated time during which plants run and faults fire
drain = "1d"                        # then: no new faults, plants idle, retries converge (default "1d")

[systems]                           # personalities; each defaults to "modern"
erp = "legacy"                      # modern: honours Idempotency-Key · legacy: ignores it, so the core
cmms = "modern"                     #   must look before it posts · saas: rate-limited, events by webhook only
qms = "saas"
mes = "modern"

[[plant]]
id = "P1"                           # station ids are derived: P1-L1-S1 … P1-L{lines}-S{stations_per_line}
lines = 2
stations_per_line = 6
cycle_time = "60s"                  # mean processing time of one unit at one station
inspection = { sample_rate = 1.0, defect_rate = 0.001 }
machines = { mtbf = "200h", mttr = "40m" }   # random breakdowns (workflow W4)
orders = { size = 500, material = "ASSY-100" }
maintenance = { labor_rate = 85.0, parts = [ { part = "TORQUE-HEAD", unit_cost = 412.50 } ] }

[[drift]]                           # an asset-related defect pattern (tool wear), cleared by repair
station = "P1-L1-S3"
at = "1d"
defect_rate = 0.25

[[fault]]                           # the plant loses its link to the core; its edge buffers
kind = "wan-outage"
plant = "P1"
at = "2d"
for = "6h"

[[fault]]
kind = "endpoint-errors"            # the system answers 5xx to this share of calls
system = "erp"                      # erp | qms | cmms | mes
at = "3d"
for = "2h"
rate = 0.3

[[fault]]
kind = "endpoint-outage"            # the system does not answer at all (timeouts)
system = "qms"
at = "5d"
for = "1h"

[[fault]]
kind = "endpoint-throttle"          # 429 with Retry-After above this call rate (a SaaS API limit)
system = "erp"
limit_per_s = 5                     # no at/for: the whole run

[[fault]]
kind = "endpoint-latency"
system = "cmms"
latency = "800ms"                   # added to every call during the window (whole run if no at/for)

[[fault]]
kind = "duplicate-delivery"         # the system's outbound events arrive twice (at-least-once)
system = "qms"
probability = 0.2

[[fault]]
kind = "reorder"                    # the system's outbound events arrive shuffled within a window
system = "cmms"
window = "30s"

[[fault]]
kind = "core-crash"                 # the integration core dies and restarts from its journal
at = "4d"
downtime = "5m"

[[fault]]
kind = "alarm-storm"                # a burst of machine alarms (mostly noise) from one plant
plant = "P1"
at = "1d12h"
events = 50000
over = "10m"

[[masterdata]]                      # a bulk master-data release to sync (workflow W5)
at = "12h"
kind = "material"                   # material | asset | inspection-spec
count = 20000

[expect]
invariants = ["all"]                # or a list of invariant ids (spec/report.md)
slo = { critical_p99 = "5s", transactional_p99 = "2m", bulk_p99 = "4h" }
min = { nonconformances = 1, holds = 1, releases = 1, work_orders = 1 }   # the run really exercised the loop
"##;

fn d(s: &str) -> Duration {
    Duration::parse(s).unwrap()
}

fn at(s: &str) -> Instant {
    Instant::ZERO + d(s)
}

fn window(start: &str, length: &str) -> Window {
    Window {
        start: at(start),
        length: d(length),
    }
}

#[test]
fn the_spec_example_parses_to_the_expected_values() {
    let s = Scenario::from_str(SPEC_EXAMPLE, "spec.toml").unwrap();
    assert_eq!(s.name, "torque-drift-containment");
    assert_eq!(
        s.description,
        "Repeated torque failures at one station must be contained and repaired."
    );
    assert_eq!(s.seed, 42);
    assert_eq!(s.duration, d("7d"));
    assert_eq!(s.drain, d("1d"));
    assert_eq!(
        s.systems,
        Systems {
            erp: Personality::Legacy,
            qms: Personality::Saas,
            cmms: Personality::Modern,
            mes: Personality::Modern
        }
    );
    assert_eq!(s.systems.get(System::Qms), Personality::Saas);

    assert_eq!(s.plants.len(), 1);
    let p = &s.plants[0];
    assert_eq!(p.id.as_str(), "P1");
    assert_eq!((p.lines, p.stations_per_line), (2, 6));
    assert_eq!(p.cycle_time, d("60s"));
    assert_eq!(
        p.inspection,
        Inspection {
            sample_rate: 1.0,
            defect_rate: 0.001
        }
    );
    assert_eq!(
        p.machines,
        Some(Machines {
            mtbf: d("200h"),
            mttr: d("40m")
        })
    );
    assert_eq!(p.orders.size, 500);
    assert_eq!(p.orders.material.as_str(), "ASSY-100");
    assert_eq!(p.maintenance.labor_rate, Money::from_cents(8_500));
    assert_eq!(p.maintenance.parts.len(), 1);
    assert_eq!(p.maintenance.parts[0].part.as_str(), "TORQUE-HEAD");
    assert_eq!(p.maintenance.parts[0].unit_cost, Money::from_cents(41_250));
    let stations: Vec<String> = p.station_ids().map(|s| s.to_string()).collect();
    assert_eq!(stations.len(), 12);
    assert_eq!(stations[0], "P1-L1-S1");
    assert_eq!(stations[11], "P1-L2-S6");

    assert_eq!(s.drifts.len(), 1);
    assert_eq!(s.drifts[0].station.as_str(), "P1-L1-S3");
    assert_eq!(s.drifts[0].at, at("1d"));
    assert_eq!(s.drifts[0].defect_rate, 0.25);

    let p1 = p.id.clone();
    let whole = window("0s", "7d");
    assert_eq!(
        s.faults,
        vec![
            Fault::WanOutage {
                plant: p1.clone(),
                active: window("2d", "6h")
            },
            Fault::EndpointErrors {
                system: System::Erp,
                active: window("3d", "2h"),
                rate: 0.3
            },
            Fault::EndpointOutage {
                system: System::Qms,
                active: window("5d", "1h")
            },
            Fault::EndpointThrottle {
                system: System::Erp,
                active: whole,
                limit_per_s: 5
            },
            Fault::EndpointLatency {
                system: System::Cmms,
                active: whole,
                latency: d("800ms")
            },
            Fault::DuplicateDelivery {
                system: System::Qms,
                active: whole,
                probability: 0.2
            },
            Fault::Reorder {
                system: System::Cmms,
                active: whole,
                window: d("30s")
            },
            Fault::CoreCrash {
                at: at("4d"),
                downtime: d("5m")
            },
            Fault::AlarmStorm {
                plant: p1,
                at: at("1d12h"),
                events: 50_000,
                over: d("10m")
            },
        ]
    );
    let kinds: Vec<&str> = s.faults.iter().map(Fault::kind).collect();
    assert_eq!(kinds, FAULT_KINDS);
    assert_eq!(s.faults[7].window(), window("4d", "5m"));

    assert_eq!(
        s.masterdata,
        vec![MasterData {
            at: at("12h"),
            kind: MasterDataKind::Material,
            count: 20_000
        }]
    );

    assert_eq!(s.expect.invariants, Invariants::All);
    assert_eq!(s.expect.slo.p99(LatencyClass::Critical), Some(d("5s")));
    assert_eq!(s.expect.slo.p99(LatencyClass::Transactional), Some(d("2m")));
    assert_eq!(s.expect.slo.p99(LatencyClass::Bulk), Some(d("4h")));
    let min: Vec<(Count, u64)> = s.expect.min.iter().map(|(c, n)| (*c, *n)).collect();
    assert_eq!(
        min,
        vec![
            (Count::Nonconformances, 1),
            (Count::Holds, 1),
            (Count::Releases, 1),
            (Count::WorkOrders, 1)
        ]
    );
}

const MINIMAL: &str = r#"[scenario]
name = "min"
duration = "7d"

[[plant]]
id = "P1"
lines = 2
stations_per_line = 6
cycle_time = "60s"
"#;

#[test]
fn defaults_fill_what_a_minimal_file_leaves_out() {
    let s = Scenario::from_str(MINIMAL, "min.toml").unwrap();
    assert_eq!(s.seed, 0);
    assert_eq!(s.description, "");
    assert_eq!(s.drain, d("1d"));
    assert_eq!(s.systems, Systems::default());
    assert!(
        System::ALL
            .iter()
            .all(|&sys| s.systems.get(sys) == Personality::Modern)
    );
    let p = &s.plants[0];
    assert_eq!(
        p.inspection,
        Inspection {
            sample_rate: 1.0,
            defect_rate: 0.0
        }
    );
    assert_eq!(p.machines, None);
    assert_eq!(
        (p.orders.size, p.orders.material.as_str()),
        (500, "ASSY-100")
    );
    assert_eq!(p.maintenance, Maintenance::default());
    assert!(s.drifts.is_empty() && s.faults.is_empty() && s.masterdata.is_empty());
    assert_eq!(s.expect, Expect::default());
    assert!(s.expect.invariants.includes(InvariantId::CostCapture));
    assert_eq!(s.expect.slo, Slo::default());
}

#[test]
fn explicit_lists_and_windows_resolve() {
    let text = format!(
        "{MINIMAL}
[[fault]]
kind = \"wan-outage\"
plant = \"P1\"
at = \"6d\"

[[fault]]
kind = \"endpoint-outage\"
system = \"mes\"
for = \"1h\"

[expect]
invariants = [\"containment\", \"slo\"]
min = {{ units = 100 }}
"
    );
    let s = Scenario::from_str(&text, "x.toml").unwrap();
    assert_eq!(s.faults[0].window(), window("6d", "1d"));
    assert_eq!(s.faults[1].window(), window("0s", "1h"));
    assert_eq!(
        s.expect.invariants,
        Invariants::Only(vec![InvariantId::Containment, InvariantId::Slo])
    );
    assert!(!s.expect.invariants.includes(InvariantId::CostCapture));
    assert_eq!(s.expect.min.get(&Count::Units), Some(&100));
}

/// Loads `text` and asserts the error's line and key, and that its message contains `message`.
#[track_caller]
fn check(text: &str, line: u32, key: &str, message: &str) {
    let e = match Scenario::from_str(text, "bad.toml") {
        Ok(_) => panic!("loaded, expected an error at line {line} key {key}:\n{text}"),
        Err(e) => e,
    };
    assert_eq!(
        (e.file.as_str(), e.line, e.key.as_str()),
        ("bad.toml", line, key),
        "{e}\n{text}"
    );
    assert!(
        e.message.contains(message),
        "message {:?} lacks {message:?}",
        e.message
    );
}

/// The minimal file with `extra` appended (so its first line is line 11).
fn plus(extra: &str) -> String {
    format!("{MINIMAL}\n{extra}")
}

/// The minimal file with plant line `n` (1-based within the file) replaced.
fn replace_line(n: usize, with: &str) -> String {
    let mut lines: Vec<&str> = MINIMAL.lines().collect();
    lines[n - 1] = with;
    lines.join("\n") + "\n"
}

#[test]
fn unknown_keys_are_errors_everywhere() {
    check(
        &format!("colour = \"red\"\n{MINIMAL}"),
        1,
        "colour",
        "unknown key",
    );
    check(
        &plus("[expects]\ninvariants = [\"all\"]"),
        11,
        "expects",
        "did you mean `expect`",
    );
    check(
        &replace_line(3, "duraton = \"7d\""),
        3,
        "scenario.duraton",
        "did you mean `duration`",
    );
    check(
        &replace_line(9, "cycletime = \"60s\""),
        9,
        "plant[0].cycletime",
        "did you mean `cycle_time`",
    );
    check(
        &replace_line(9, "cycle_time = \"60s\"\nshift = 3"),
        10,
        "plant[0].shift",
        "expected one of: id, lines",
    );
    check(
        &plus("inspection = { sample_rate = 1.0, defect_rte = 0.1 }"),
        11,
        "plant[0].inspection.defect_rte",
        "did you mean `defect_rate`",
    );
    check(
        &plus("machines = { mtbf = \"1h\", mttr = \"1m\", mtbr = \"1h\" }"),
        11,
        "plant[0].machines.mtbr",
        "unknown key",
    );
    check(
        &plus("orders = { size = 5, sku = \"X\" }"),
        11,
        "plant[0].orders.sku",
        "unknown key",
    );
    check(
        &plus("maintenance = { labour_rate = 85.0 }"),
        11,
        "plant[0].maintenance.labour_rate",
        "did you mean `labor_rate`",
    );
    check(
        &plus(
            "maintenance = { parts = [ { part = \"A\", unit_cost = 1.0 },\n  { part = \"B\", cost = 2.0 } ] }",
        ),
        12,
        "plant[0].maintenance.parts[1].cost",
        "unknown key",
    );
    check(
        &plus("[expect]\nslo = { critical_p95 = \"5s\" }"),
        12,
        "expect.slo.critical_p95",
        "did you mean `critical_p99`",
    );
    check(
        &plus("[expect]\nmin = { widgets = 1 }"),
        12,
        "expect.min.widgets",
        "unknown key",
    );
    check(
        &plus("[systems]\ncrm = \"modern\""),
        12,
        "systems.crm",
        "expected one of: erp, qms, cmms, mes",
    );
    // A key that belongs to another fault kind.
    check(
        &plus("[[fault]]\nkind = \"core-crash\"\nat = \"1d\"\ndowntime = \"5m\"\nfor = \"1h\""),
        15,
        "fault[0].for",
        "unknown key",
    );
}

#[test]
fn bad_values_name_their_line_and_key() {
    let fault = |body: &str| plus(&format!("[[fault]]\n{body}"));
    // Durations.
    check(
        &fault("kind = \"wan-outage\"\nplant = \"P1\"\nat = \"2d\"\nfor = \"6x\""),
        15,
        "fault[0].for",
        "invalid duration \"6x\": expected",
    );
    check(
        &replace_line(3, "duration = 7"),
        3,
        "scenario.duration",
        "expected a duration string",
    );
    check(
        &replace_line(9, "cycle_time = \"0s\""),
        9,
        "plant[0].cycle_time",
        "longer than 0s",
    );
    // Rates.
    check(
        &fault("kind = \"endpoint-errors\"\nsystem = \"erp\"\nrate = 1.5"),
        14,
        "fault[0].rate",
        "1.5 is out of range",
    );
    check(
        &fault("kind = \"duplicate-delivery\"\nsystem = \"qms\"\nprobability = -0.1"),
        14,
        "fault[0].probability",
        "out of range",
    );
    check(
        &plus("inspection = { sample_rate = nan }"),
        11,
        "plant[0].inspection.sample_rate",
        "not a finite number",
    );
    // Cross-references.
    check(
        &plus("[[drift]]\nstation = \"P1-L3-S1\"\ndefect_rate = 0.2"),
        12,
        "drift[0].station",
        "unknown station \"P1-L3-S1\"",
    );
    check(
        &plus("[[drift]]\nstation = \"P1-L01-S1\"\ndefect_rate = 0.2"),
        12,
        "drift[0].station",
        "P1-L1-S1 … P1-L2-S6",
    );
    check(
        &fault("kind = \"wan-outage\"\nplant = \"P9\""),
        13,
        "fault[0].plant",
        "unknown plant \"P9\"",
    );
    check(
        &fault("kind = \"alarm-storm\"\nplant = \"P2\"\nat = \"1d\"\nevents = 5\nover = \"1m\""),
        13,
        "fault[0].plant",
        "unknown plant",
    );
    check(
        &fault("kind = \"endpoint-outage\"\nsystem = \"crm\""),
        13,
        "fault[0].system",
        "unknown system \"crm\"",
    );
    check(
        &plus("[systems]\nerp = \"ancient\""),
        12,
        "systems.erp",
        "unknown personality \"ancient\"",
    );
    // Kinds and ids.
    check(
        &fault("kind = \"wan-outtage\"\nplant = \"P1\""),
        12,
        "fault[0].kind",
        "did you mean \"wan-outage\"",
    );
    check(
        &fault("kind = \"meteor\""),
        12,
        "fault[0].kind",
        "expected one of: wan-outage, endpoint-errors",
    );
    check(
        &fault("plant = \"P1\""),
        11,
        "fault[0].kind",
        "missing required key",
    );
    check(
        &plus("[expect]\ninvariants = [\"containment\", \"no-dupes\"]"),
        12,
        "expect.invariants[1]",
        "unknown invariant \"no-dupes\"",
    );
    check(
        &plus("[expect]\ninvariants = [\"all\", \"slo\"]"),
        12,
        "expect.invariants[0]",
        "must stand alone",
    );
    check(
        &plus("[expect]\ninvariants = [\"slo\", \"slo\"]"),
        12,
        "expect.invariants[1]",
        "duplicate invariant",
    );
    check(
        &plus("[[masterdata]]\nat = \"1h\"\nkind = \"recipes\"\ncount = 5"),
        13,
        "masterdata[0].kind",
        "unknown master-data kind",
    );
    // Plants.
    check(
        &plus("[[plant]]\nid = \"P1\"\nlines = 1\nstations_per_line = 1\ncycle_time = \"1s\""),
        12,
        "plant[1].id",
        "duplicate plant id \"P1\" (also plant[0])",
    );
    check(
        "[scenario]\nname = \"x\"\nduration = \"1d\"\n",
        1,
        "plant",
        "at least one [[plant]]",
    );
    check(
        &replace_line(5, "[plant]"),
        5,
        "plant",
        "expected an array of tables ([[plant]])",
    );
    check(
        &replace_line(7, "lines = \"2\""),
        7,
        "plant[0].lines",
        "expected an integer, found string \"2\"",
    );
    check(
        &replace_line(7, "lines = 2.0"),
        7,
        "plant[0].lines",
        "expected an integer, found float",
    );
    check(
        &replace_line(7, "lines = 65"),
        7,
        "plant[0].lines",
        "65 is out of range: expected 1 to 64",
    );
    check(
        &replace_line(6, "id = \"P 1\""),
        6,
        "plant[0].id",
        "not allowed",
    );
    check(
        &replace_line(8, "stations_per_line = 0"),
        8,
        "plant[0].stations_per_line",
        "out of range",
    );
    check(
        &plus("maintenance = { parts = [ { part = \"A\", unit_cost = 1.005 } ] }"),
        11,
        "plant[0].maintenance.parts[0].unit_cost",
        "at most two decimals",
    );
    check(
        &plus("maintenance = { labor_rate = -1 }"),
        11,
        "plant[0].maintenance.labor_rate",
        "negative",
    );
    check(
        &plus(
            "maintenance = { parts = [ { part = \"A\", unit_cost = 1 }, { part = \"A\", unit_cost = 2 } ] }",
        ),
        11,
        "plant[0].maintenance.parts[1].part",
        "duplicate part",
    );
    check(
        &plus("machines = { mtbf = \"1h\" }"),
        11,
        "plant[0].machines.mttr",
        "missing required key",
    );
    // The [scenario] table.
    check(
        &replace_line(2, ""),
        1,
        "scenario.name",
        "missing required key",
    );
    check(
        &replace_line(2, "name = \"\""),
        2,
        "scenario.name",
        "must not be empty",
    );
    check(
        &replace_line(2, "name = \"two words\""),
        2,
        "scenario.name",
        "' ' not allowed",
    );
    check(
        &replace_line(2, "name = 42"),
        2,
        "scenario.name",
        "expected a string, found integer 42",
    );
    check(
        &replace_line(3, "duration = \"7d\"\nseed = -1"),
        4,
        "scenario.seed",
        "out of range",
    );
    check(
        &replace_line(3, "duration = \"500d\""),
        3,
        "scenario.duration",
        "longer than the maximum",
    );
    check(
        &MINIMAL.replace("[scenario]\n", ""),
        1,
        "name",
        "unknown key",
    );
    // Windows and bounds.
    check(
        &fault("kind = \"wan-outage\"\nplant = \"P1\"\nat = \"6d\"\nfor = \"2d\""),
        15,
        "fault[0].for",
        "ends after the scenario duration 7d",
    );
    check(
        &fault("kind = \"endpoint-outage\"\nsystem = \"qms\"\nat = \"7d\""),
        14,
        "fault[0].at",
        "not before the scenario duration",
    );
    check(
        &fault("kind = \"core-crash\"\nat = \"6d23h\"\ndowntime = \"2h\""),
        14,
        "fault[0].downtime",
        "ends after",
    );
    check(
        &fault("kind = \"core-crash\"\ndowntime = \"2h\""),
        11,
        "fault[0].at",
        "missing required key",
    );
    check(
        &fault(
            "kind = \"alarm-storm\"\nplant = \"P1\"\nat = \"1d\"\nevents = 2000000\nover = \"1m\"",
        ),
        15,
        "fault[0].events",
        "out of range",
    );
    check(
        &fault("kind = \"endpoint-throttle\"\nsystem = \"erp\"\nlimit_per_s = 0"),
        14,
        "fault[0].limit_per_s",
        "out of range",
    );
    check(
        &plus("[[masterdata]]\nat = \"1h\"\nkind = \"asset\"\ncount = 0"),
        14,
        "masterdata[0].count",
        "out of range",
    );
    check(
        &plus("[[drift]]\nstation = \"P1-L1-S1\"\nat = \"8d\"\ndefect_rate = 0.2"),
        13,
        "drift[0].at",
        "not before",
    );
    // Syntax errors still name a line and, as best it can, a key.
    check(&replace_line(7, "lines = 2 2"), 7, "plant[0].lines", "");
    check(
        &replace_line(2, "name = \"unterminated"),
        2,
        "scenario.name",
        "",
    );
    check(
        &replace_line(7, "id = \"P2\""),
        7,
        "plant[0].id",
        "duplicate key",
    );
}

#[test]
fn errors_display_as_file_line_key_message() {
    let text = plus("[[fault]]\nkind = \"wan-outage\"\nplant = \"P1\"\nat = \"2d\"\nfor = \"6x\"");
    let e = Scenario::from_str(&text, "scenarios/x.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "scenarios/x.toml:15: fault[0].for: invalid duration \"6x\": expected e.g. \"250ms\", \"45s\", \"30m\", \"6h\", \"14d\", \"1d12h\""
    );
}

#[test]
fn load_reads_files_and_names_them_in_errors() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scenario_load");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("spec.toml");
    std::fs::write(&good, SPEC_EXAMPLE).unwrap();
    assert_eq!(
        Scenario::load(&good).unwrap(),
        Scenario::from_str(SPEC_EXAMPLE, "other").unwrap()
    );

    let missing = dir.join("missing.toml");
    let e = Scenario::load(&missing).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (1, "(file)"));
    assert!(
        e.file.ends_with("missing.toml") && e.message.starts_with("cannot read"),
        "{e}"
    );

    let latin1 = dir.join("latin1.toml");
    std::fs::write(
        &latin1,
        b"[scenario]\nname = \"x\"\ndescription = \"caf\xe9\"\n",
    )
    .unwrap();
    let e = Scenario::load(&latin1).unwrap_err();
    assert_eq!((e.line, e.message.as_str()), (3, "not valid UTF-8"));

    let huge = dir.join("huge.toml");
    std::fs::write(&huge, "#".repeat(SCENARIO_BYTES_MAX + 1)).unwrap();
    assert!(
        Scenario::load(&huge)
            .unwrap_err()
            .message
            .contains("larger than")
    );
}

#[test]
fn writing_back_round_trips() {
    for text in [SPEC_EXAMPLE, MINIMAL] {
        let s = Scenario::from_str(text, "a.toml").unwrap();
        let written = s.to_toml_string();
        let back =
            Scenario::from_str(&written, "b.toml").unwrap_or_else(|e| panic!("{e}\n{written}"));
        assert_eq!(back, s);
        assert_eq!(
            back.to_toml_string(),
            written,
            "the canonical form is a fixed point"
        );
        s.validate().unwrap();
    }
    // Awkward strings and numbers survive too.
    let mut s = Scenario::from_str(SPEC_EXAMPLE, "a.toml").unwrap();
    s.description = "quote \" backslash \\ newline \n tab \t bell \u{7} é".into();
    s.plants[0].inspection.defect_rate = 1e-7;
    s.plants[0].inspection.sample_rate = 1.0 / 3.0;
    s.expect.invariants = Invariants::Only(vec![InvariantId::AuditChain, InvariantId::Containment]);
    s.expect.slo = Slo::default();
    s.expect.min.clear();
    let back = Scenario::from_str(&s.to_toml_string(), "b.toml").unwrap();
    assert_eq!(back, s);
}

#[test]
fn validate_catches_what_code_can_build_but_files_cannot_hold() {
    let mut s = Scenario::from_str(SPEC_EXAMPLE, "a.toml").unwrap();
    s.plants.push(s.plants[0].clone());
    let e = s.validate().unwrap_err();
    assert_eq!(e.key, "plant[1].id");
    let mut s = Scenario::from_str(SPEC_EXAMPLE, "a.toml").unwrap();
    s.seed = u64::MAX;
    assert_eq!(s.validate().unwrap_err().key, "scenario.seed");
    let mut s = Scenario::from_str(SPEC_EXAMPLE, "a.toml").unwrap();
    s.drain = Duration::from_micros(1_500);
    assert!(
        s.validate().is_err(),
        "sub-millisecond durations cannot be written"
    );
}

// ---------------------------------------------------------------------------------------------
// Mutations of valid files: loading never panics, every error is located, every success round-trips.

mod mutations {
    use super::{MINIMAL, SPEC_EXAMPLE};
    use plantloop_sim::scenario::Scenario;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Edit {
        /// Overwrite the byte at (position modulo length) with one of a set of troublesome bytes.
        Byte(usize, u8),
        DeleteLine(usize),
        DuplicateLine(usize, usize),
        /// Swap the values (`= …`) of two lines.
        SwapValues(usize, usize),
        Truncate(usize),
    }

    const BYTES: &[u8] = b"\n\"'[]{}=,.#-_ 0192aZ\\\t\x00\x7f";

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            3 => (any::<usize>(), prop::sample::select(BYTES)).prop_map(|(i, b)| Edit::Byte(i, b)),
            2 => any::<usize>().prop_map(Edit::DeleteLine),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::DuplicateLine(a, b)),
            3 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapValues(a, b)),
            1 => any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(text: &str, edit: &Edit) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        match *edit {
            Edit::Byte(i, b) => {
                let mut bytes = text.as_bytes().to_vec();
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] = b;
                }
                return String::from_utf8_lossy(&bytes).into_owned();
            }
            Edit::Truncate(i) => {
                let cut = i % (text.len() + 1);
                let cut = (0..=cut)
                    .rev()
                    .find(|&c| text.is_char_boundary(c))
                    .unwrap_or(0);
                return text[..cut].to_owned();
            }
            _ if lines.is_empty() => {}
            Edit::DeleteLine(i) => {
                let n = lines.len();
                lines.remove(i % n);
            }
            Edit::DuplicateLine(from, to) => {
                let n = lines.len();
                let line = lines[from % n].clone();
                lines.insert(to % (n + 1), line);
            }
            Edit::SwapValues(a, b) => {
                let n = lines.len();
                let (a, b) = (a % n, b % n);
                if let (Some((ka, va)), Some((kb, vb))) =
                    (lines[a].split_once('='), lines[b].split_once('='))
                {
                    let (na, nb) = (format!("{ka}={vb}"), format!("{kb}={va}"));
                    lines[a] = na;
                    lines[b] = nb;
                }
            }
        }
        lines.join("\n") + "\n"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn mutated_files_load_or_fail_with_a_located_error(
            base in prop::sample::select(vec![SPEC_EXAMPLE, MINIMAL]),
            edits in prop::collection::vec(edit(), 1..6),
        ) {
            let mut text = base.to_owned();
            for e in &edits {
                text = apply(&text, e);
            }
            match Scenario::from_str(&text, "mutant.toml") {
                Err(e) => {
                    let lines = text.split('\n').count() as u32;
                    prop_assert_eq!(e.file.as_str(), "mutant.toml");
                    prop_assert!(e.line >= 1 && e.line <= lines.max(1), "line {} of {}: {}", e.line, lines, e);
                    prop_assert!(!e.key.is_empty(), "{}", e);
                    prop_assert!(!e.message.is_empty(), "{}", e);
                }
                Ok(s) => {
                    let written = s.to_toml_string();
                    let back = Scenario::from_str(&written, "written.toml");
                    prop_assert_eq!(back.as_ref(), Ok(&s), "{}", written);
                }
            }
        }
    }
}

#[test]
fn nothing_is_silently_ignored() {
    // A zero drain would fail `no-lost-events` on any run with a call in flight at its end.
    check(
        &MINIMAL.replace("duration = \"7d\"", "duration = \"7d\"\ndrain = \"0s\""),
        4,
        "scenario.drain",
        "must be longer than 0s",
    );
    // Objectives that no invariant judges; an empty table sets none and is fine.
    check(
        &plus("[expect]\ninvariants = [\"containment\"]\nslo = { bulk_p99 = \"4h\" }"),
        13,
        "expect.slo",
        "\"slo\" is not among expect.invariants",
    );
    Scenario::from_str(
        &plus("[expect]\ninvariants = [\"containment\"]\nslo = {}"),
        "ok.toml",
    )
    .unwrap();
    // A fault window past the end is an error, not cut short.
    check(
        &plus("[[fault]]\nkind = \"endpoint-outage\"\nsystem = \"qms\"\nat = \"6d\"\nfor = \"2d\""),
        15,
        "fault[0].for",
        "ends after the scenario duration",
    );
}

#[test]
fn name_line_finds_the_name_key() {
    assert_eq!(plantloop_sim::scenario::name_line(MINIMAL), Some(2));
    assert_eq!(
        plantloop_sim::scenario::name_line(&format!("# c\n\n{MINIMAL}")),
        Some(4)
    );
    assert_eq!(plantloop_sim::scenario::name_line("not toml ["), None);
}

/// `[network]`, `[service]` and a plant's `wan` (issue 13): defaults, values, round trip.
#[test]
fn network_and_service_load_with_defaults_and_round_trip() {
    let s = Scenario::from_str(MINIMAL, "min.toml").unwrap();
    assert_eq!(s.network, Network::default());
    assert_eq!(s.network.lan, LatencyDist::new(d("2ms"), d("10ms")));
    assert_eq!(s.network.wan, LatencyDist::new(d("40ms"), d("200ms")));
    assert_eq!(s.service, [Service::default(); 4]);
    assert_eq!(s.plants[0].wan, None);
    assert_eq!(s.wan(0), s.network.wan);
    assert!(s.network.wan.sigma() > 0.0, "the default WAN has a spread");

    let text = plus(
        r#"wan = { median = "120ms", p99 = "900ms" }

[network]
lan = { median = "1ms", p99 = "1ms" }
wan = { median = "30ms", p99 = "400ms" }

[service]
erp = { median = "80ms", p99 = "2s", concurrency = 4 }
mes = { concurrency = 1 }
"#,
    );
    let s = Scenario::from_str(&text, "net.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.plants[0].wan,
        Some(LatencyDist::new(d("120ms"), d("900ms")))
    );
    assert_eq!(s.wan(0), LatencyDist::new(d("120ms"), d("900ms")));
    assert_eq!(s.network.lan.sigma(), 0.0, "p99 = median is a constant");
    let erp = s.service[System::Erp.index()];
    assert_eq!(
        (erp.time, erp.concurrency),
        (LatencyDist::new(d("80ms"), d("2s")), 4)
    );
    let mes = s.service[System::Mes.index()];
    assert_eq!((mes.time, mes.concurrency), (Service::TIME_DEFAULT, 1));
    assert_eq!(s.service[System::Qms.index()], Service::default());
    let written = s.to_toml_string();
    let back = Scenario::from_str(&written, "b.toml").unwrap_or_else(|e| panic!("{e}\n{written}"));
    assert_eq!(back, s);
    assert_eq!(back.to_toml_string(), written);
    s.validate().unwrap();
}

#[test]
fn bad_network_and_service_keys_name_their_line_and_key() {
    // p99 below the median.
    check(
        &plus("[network]\nwan = { median = \"40ms\", p99 = \"10ms\" }\n"),
        12,
        "network.wan.p99",
        "below the median",
    );
    check(
        &plus("[service]\nerp = { median = \"40ms\", p99 = \"10ms\" }\n"),
        12,
        "service.erp.p99",
        "below the median",
    );
    check(
        &plus("wan = { median = \"1s\", p99 = \"500ms\" }\n"),
        11,
        "plant[0].wan.p99",
        "below the median",
    );
    // A concurrency of 0, and above the bound.
    check(
        &plus("[service]\ncmms = { concurrency = 0 }\n"),
        12,
        "service.cmms.concurrency",
        "out of range",
    );
    check(
        &plus("[service]\ncmms = { concurrency = 10001 }\n"),
        12,
        "service.cmms.concurrency",
        "out of range",
    );
    // An unknown system.
    check(
        &plus("[service]\ncrm = { concurrency = 2 }\n"),
        12,
        "service.crm",
        "unknown key",
    );
    // Unknown keys, missing halves, zero and overlong latencies.
    check(
        &plus("[network]\nwan = { median = \"40ms\", p95 = \"90ms\" }\n"),
        12,
        "network.wan.p95",
        "unknown key",
    );
    check(
        &plus("[network]\nmpls = { median = \"40ms\", p99 = \"90ms\" }\n"),
        12,
        "network.mpls",
        "unknown key",
    );
    check(
        &plus("[network]\nlan = { median = \"4ms\" }\n"),
        12,
        "network.lan.p99",
        "missing required key",
    );
    check(
        &plus("[service]\nqms = { p99 = \"4s\" }\n"),
        12,
        "service.qms.p99",
        "together",
    );
    check(
        &plus("[network]\nlan = { median = \"0s\", p99 = \"4ms\" }\n"),
        12,
        "network.lan.median",
        "longer than 0s",
    );
    check(
        &plus("[network]\nlan = { median = \"4ms\", p99 = \"2h\" }\n"),
        12,
        "network.lan.p99",
        "maximum",
    );
}
