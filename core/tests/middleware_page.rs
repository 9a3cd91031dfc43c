//! `docs/middleware.md` is the contract a team implements when it brings its own middleware. This
//! test runs the reference core through the closed loop and checks it against the page: every call
//! it makes matches a row of the page's table of calls (target, call, idempotency key), every row is
//! used, and the rules the page states (hold range, labour rounding, upcast defaults, W4 triggers)
//! are what the core does.

mod support;

use plantloop_core::call::Request;
use plantloop_core::engine::Config;
use plantloop_core::event::{EventData, parse_event};
use plantloop_core::*;
use support::*;

fn page() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/middleware.md");
    std::fs::read_to_string(path).expect("docs/middleware.md exists")
}

/// One row of the page's table of calls.
#[derive(Debug)]
struct Row {
    workflow: String,
    targets: Vec<String>,
    call: String,
    key: String,
}

/// The table after the `middleware-calls` marker.
fn rows(page: &str) -> Vec<Row> {
    let start = page
        .find("<!-- middleware-calls")
        .expect("the page marks its table of calls");
    let mut out = Vec::new();
    for line in page[start..].lines().skip(1) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells[0] == "workflow" || cells[0].starts_with("---") {
            continue;
        }
        let ticked = |s: &str| s.split('`').nth(1).expect("a `quoted` cell").to_owned();
        out.push(Row {
            workflow: cells[0].to_owned(),
            targets: cells[1]
                .split(',')
                .map(|t| t.trim().to_lowercase())
                .collect(),
            call: ticked(cells[2]),
            key: ticked(cells[3]),
        });
    }
    assert!(out.len() >= 10, "the table of calls was not found: {out:?}");
    out
}

/// Whether `key` matches `pattern`, where `{name}` stands for one or more characters other than `/`.
fn matches(pattern: &str, key: &str) -> bool {
    match pattern.find('{') {
        None => pattern == key,
        Some(open) => {
            let close = pattern[open..].find('}').expect("closed placeholder") + open;
            let (lit, rest) = (&pattern[..open], &pattern[close + 1..]);
            let Some(tail) = key.strip_prefix(lit) else {
                return false;
            };
            (1..=tail.len())
                .take_while(|&n| !tail[..n].contains('/'))
                .any(|n| matches(rest, &tail[n..]))
        }
    }
}

#[test]
fn the_pattern_matcher_works() {
    assert!(matches("w1/{nc}/hold", "w1/NC-1/hold"));
    assert!(!matches("w1/{nc}/hold", "w1/NC-1/hold/2"));
    assert!(!matches("w1/{nc}/hold", "w1//hold"));
    assert!(matches(
        "w6/{order}/{station}/{first}..={last}",
        "w6/O-1/P1-L1-S1/1..=10"
    ));
}

#[test]
fn every_call_of_the_closed_loop_is_a_row_of_the_page_and_every_row_is_used() {
    let rows = rows(&page());
    let mut w = World::new(Config::default(), 11);
    closed_loop(&mut w);
    w.settle();
    let mut used = vec![false; rows.len()];
    for (_, call) in &w.calls {
        if !call.request.is_posting() {
            continue;
        }
        let target = call.target.as_str().to_owned();
        let name = call.request.name();
        let key = &call.key.0;
        let row = rows
            .iter()
            .position(|r| r.targets.contains(&target) && r.call == name && matches(&r.key, key));
        let Some(i) = row else {
            panic!("docs/middleware.md has no row for {target} `{name}` with key {key}");
        };
        assert!(
            key.starts_with(&rows[i].workflow.to_lowercase()),
            "{key} is filed under {}",
            rows[i].workflow
        );
        used[i] = true;
    }
    let unused: Vec<&Row> = rows
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(r, _)| r)
        .collect();
    assert!(unused.is_empty(), "rows the core never used: {unused:?}");
}

#[test]
fn the_hold_runs_from_the_first_suspect_serial_to_the_end_of_each_order_that_built_a_suspect_serial()
 {
    let mut w = World::new(Config::default(), 3);
    w.send(asset("md-1", S1, 1));
    w.send(order("o-1", "O-1", 1, 100));
    w.send(order("o-2", "O-2", 101, 200));
    w.send(order("o-3", "O-3", 201, 300));
    // Suspect serials straddle O-1 and O-2; O-3 built none of them.
    w.send(nc("nc-1", "NC-1", S1, 95, 105));
    w.settle();
    let holds: Vec<(String, String, u64, u64)> = w
        .calls
        .iter()
        .filter_map(|(_, c)| match &c.request {
            Request::PostHold(h) => Some((
                c.key.0.to_string(),
                h.id.as_str().to_owned(),
                h.serials.first(),
                h.serials.last(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        holds,
        [
            ("w1/NC-1/hold".into(), "H-NC-1".into(), 95, 100),
            ("w1/NC-1/hold/2".into(), "H2-NC-1".into(), 101, 200),
        ]
    );
}

#[test]
fn labour_is_rounded_half_up_to_the_cent_per_entry() {
    // 85.00/h for 40 min = 56.666… → 56.67; 0.30/h for 1 min = 0.5 cent → 0.01.
    assert_eq!(
        Money::from_cents(8_500).per_hour_for_minutes(40),
        Money::from_cents(5_667)
    );
    assert_eq!(
        Money::from_cents(30).per_hour_for_minutes(1),
        Money::from_cents(1)
    );
    assert_eq!(
        Money::from_cents(29).per_hour_for_minutes(1),
        Money::from_cents(0)
    );
    // Per entry, then summed: two entries of 0.5 cent are 2 cents, not 1.
    let mut w = World::new(Config::default(), 5);
    w.send(asset("md-1", S1, 1));
    w.send(completed(
        "wo-1",
        "WO-X",
        S1,
        None,
        vec![],
        vec![labour("T1", 1, 30), labour("T2", 1, 30)],
    ));
    w.settle();
    let labour_cost: Vec<i64> = w
        .calls
        .iter()
        .filter_map(|(_, c)| match &c.request {
            Request::PostCost(p) if p.kind == CostKind::Labour => Some(p.amount.cents()),
            _ => None,
        })
        .collect();
    assert_eq!(labour_cost, [2]);
}

#[test]
fn a_v1_nonconformance_is_upcast_asset_related_and_major() {
    let v1 = nc_v1_json();
    let e = parse_event(v1.to_string().as_bytes()).unwrap();
    let EventData::NonconformanceCreated(nc) = e.data else {
        panic!("{:?}", e.data)
    };
    assert!(nc.asset_related);
    assert_eq!(nc.severity, Severity::Major);
    assert_eq!((nc.serials.first(), nc.serials.last()), (12, 15));
}

#[test]
fn only_down_states_and_fault_alarms_open_a_breakdown_work_order_one_per_open_breakdown() {
    let mut w = World::new(Config::default(), 9);
    w.send(asset("md-1", S1, 1));
    w.send(alarm("a-1", S1, AlarmSeverity::Info));
    w.send(alarm("a-2", S1, AlarmSeverity::Warning));
    w.settle();
    assert!(w.calls_named("create_work_order").is_empty());
    w.send(alarm("a-3", S1, AlarmSeverity::Fault));
    w.send(machine_down("m-1", S1));
    w.settle();
    let wos = w.calls_named("create_work_order");
    assert_eq!(wos.len(), 1, "one breakdown work order while one is open");
    let Request::CreateWorkOrder(wo) = &wos[0].request else {
        unreachable!()
    };
    assert_eq!(
        (wo.kind, wo.severity),
        (WorkOrderKind::Breakdown, Severity::Major)
    );
    assert_eq!(wo.id.as_str(), "WO-BD-1");
}
