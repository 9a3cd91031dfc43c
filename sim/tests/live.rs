//! The live run and its observations: observing never changes a run, observations agree with the
//! report, injected faults reach the trace and a replay from the trace reproduces the run.

use plantloop_core::model::{PlantId, System};
use plantloop_core::time::{Duration, Instant};
use plantloop_mocks::Posting;
use plantloop_sim::live::{Injection, LiveRun, Refusal};
use plantloop_sim::observe::{Phase, StationState, Step};
use plantloop_sim::runner::{self, RunOptions};
use plantloop_sim::scenario::{Fault, Scenario, Window};
use plantloop_sim::world::Injected;
use std::io::Write;
use std::sync::{Arc, Mutex};

fn scenario(name: &str) -> Scenario {
    Scenario::load(format!(
        "{}/../scenarios/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn at(text: &str) -> Instant {
    Instant::ZERO + Duration::parse(text).unwrap()
}

/// A trace sink the test can read afterwards.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[test]
fn observing_in_slices_does_not_change_the_run() {
    for name in ["torque-drift-containment", "fault-core-crash"] {
        let headless = runner::run(scenario(name), RunOptions::default());
        let s = scenario(name);
        let seed = s.seed;
        let mut live = LiveRun::new(s, seed, None);
        let mut slices = 0;
        while !live.is_finished() {
            live.advance(Instant::MAX, 97);
            live.observe();
            if slices % 10 == 0 {
                live.check_invariants();
            }
            slices += 1;
        }
        let report = live.report().unwrap();
        assert!(slices > 10, "{name}: {slices} slices");
        assert_eq!(report.trace_hash, headless.trace_hash, "{name}");
        assert_eq!(report.counts, headless.counts, "{name}");
        assert_eq!(report.invariants, headless.invariants, "{name}");
        assert_eq!(report.sim.events, headless.sim.events, "{name}");
    }
}

#[test]
fn observed_latencies_equal_the_reports_at_the_end() {
    for name in [
        "torque-drift-containment",
        "fault-core-crash",
        "personality-legacy",
    ] {
        let s = scenario(name);
        let seed = s.seed;
        let mut live = LiveRun::new(s, seed, None);
        // Read the ledgers piecewise, as the live view does.
        let mut t = Instant::ZERO;
        while !live.is_finished() {
            t += Duration::from_hours(3);
            live.run_until(t);
            live.observe();
        }
        let o = live.observe();
        let report = live.report().unwrap();
        for (i, c) in o.classes.iter().enumerate() {
            assert_eq!(&c.latency, report.latency.by_index(i), "{name} class {i}");
        }
        assert!(o.classes[1].latency.count > 0, "{name}");
        assert_eq!(o.phase, Phase::Ended);
        assert!(o.invariants.is_final);
        assert_eq!(o.invariants.items.len(), report.invariants.len());
    }
}

#[test]
fn a_contained_station_is_stopped_drifting_and_on_hold() {
    let s = scenario("torque-drift-containment");
    let mut live = LiveRun::new(s, 42, None);
    live.run_until(at("1d15m"));
    let o = live.observe();
    let (_, line, st) = o
        .stations()
        .find(|(_, _, s)| s.id.as_str() == "P1-L1-S3")
        .unwrap();
    assert!(st.stopped_by_mes);
    assert!(st.drifting_since.is_some());
    assert_eq!(st.state(), StationState::StoppedByMes);
    assert!(!line.running, "a stopped station halts its line");
    let held: u64 = live
        .world()
        .erp
        .ledger()
        .entries()
        .iter()
        .filter_map(|e| match &e.posting {
            Posting::HoldPosted(h) => Some(h.serials.len()),
            _ => None,
        })
        .sum();
    assert!(held > 0);
    assert_eq!(st.units_on_hold, held);
    // Every other station of the plant holds nothing.
    assert!(
        o.stations()
            .filter(|(_, _, s)| s.id.as_str() != "P1-L1-S3")
            .all(|(_, _, s)| s.units_on_hold == 0)
    );
    let tl = &o.timelines[0];
    assert_eq!(tl.station.as_str(), "P1-L1-S3");
    for step in [Step::Nc, Step::Hold, Step::WorkOrder, Step::Stop] {
        assert!(tl.at[step.index()].is_some(), "{step:?}");
    }
    assert!(tl.at[Step::Release.index()].is_none());
}

#[test]
fn the_torque_drift_timeline_closes_in_causal_order() {
    let s = scenario("torque-drift-containment");
    let mut live = LiveRun::new(s, 42, None);
    live.finish();
    let o = live.observe();
    assert_eq!(o.timelines_total, 1);
    let tl = &o.timelines[0];
    assert!(tl.asset_related && tl.closed(), "{tl:?}");
    assert_eq!(tl.reached(), Step::Resume);
    let t = |s: Step| tl.at[s.index()].unwrap();
    for s in [Step::Hold, Step::WorkOrder, Step::Stop] {
        assert!(t(Step::Nc) <= t(s), "{s:?}");
    }
    assert!(t(Step::WorkOrder) <= t(Step::Completion));
    assert!(t(Step::Completion) <= t(Step::Cost));
    assert!(t(Step::Completion) <= t(Step::Disposition));
    assert!(t(Step::Disposition) <= t(Step::Release));
    assert!(t(Step::Disposition) <= t(Step::Resume));
    // The cost shown is what ERP received for the work order, to the cent.
    let wo = tl.work_order.clone().unwrap();
    let erp: plantloop_core::Money = live
        .world()
        .erp
        .ledger()
        .entries()
        .iter()
        .filter_map(|e| match &e.posting {
            Posting::CostPosted(c) if c.work_order == wo => Some(c.amount),
            _ => None,
        })
        .sum();
    assert!(erp > plantloop_core::Money::default());
    assert_eq!(tl.cost, erp);
    assert!(tl.decision.is_some());
}

#[test]
fn event_rates_are_deltas_over_the_window() {
    let s = scenario("torque-drift-containment");
    let mut live = LiveRun::new(s, 42, None);
    live.run_until(at("12h"));
    let o1 = live.observe();
    live.run_until(at("12h5m"));
    let o2 = live.observe();
    for i in 0..3 {
        let want = (o2.classes[i].events - o1.classes[i].events) as f64 / 300.0;
        assert!(
            (o2.classes[i].events_per_s - want).abs() < 1e-12,
            "class {i}: {} vs {want}",
            o2.classes[i].events_per_s
        );
    }
    assert!(o2.classes[1].events_per_s > 0.0, "confirmations flow");
}

#[test]
fn injected_faults_reach_the_trace_and_a_replay_reproduces_the_run() {
    let s = scenario("torque-drift-containment");
    let trace = Shared::default();
    let mut live = LiveRun::new(s.clone(), 42, Some(Box::new(trace.clone())));
    live.run_until(at("6h"));
    live.inject(Injected::WanOutage {
        plant: 0,
        duration: Duration::from_hours(1),
    })
    .unwrap();
    let o = live.observe();
    assert!(o.plants[0].wan_down, "takes effect at once");
    // Mid-slice: a partial advance leaves the clock at an event, maybe with others due then.
    live.advance(at("10h"), 37);
    live.inject(Injected::CoreCrash {
        downtime: Duration::from_mins(5),
    })
    .unwrap();
    assert!(live.observe().core.down);
    for _ in 0..3 {
        live.step();
    }
    live.inject(Injected::EndpointOutage {
        system: System::Erp,
        duration: Duration::from_mins(20),
    })
    .unwrap();
    assert!(
        live.observe().systems[System::Erp.index()]
            .outage_until
            .is_some()
    );
    let injected = live.injections().to_vec();
    let hash = live.finish().trace_hash.clone();

    let text = trace.text();
    let faults: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.contains("/plantloop/sim/operator"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(faults.len(), 3);
    assert_eq!(faults[0]["type"], "com.plantloop.sim.fault.wan-outage.v1");
    assert_eq!(faults[0]["data"]["plant"], "P1");
    assert_eq!(faults[0]["data"]["for"], "1h");
    assert_eq!(faults[0]["time"], "2026-01-01T06:00:00.000Z");
    assert_eq!(faults[1]["type"], "com.plantloop.sim.fault.core-crash.v1");
    assert_eq!(
        faults[2]["type"],
        "com.plantloop.sim.fault.endpoint-outage.v1"
    );
    assert_eq!(faults[2]["data"]["system"], "erp");

    let read = Injection::from_trace(text.as_bytes(), &s).unwrap();
    assert_eq!(read, injected);
    let replay = LiveRun::replay(s.clone(), 42, &read, None).unwrap();
    assert_eq!(replay.report().unwrap().trace_hash, hash);
    assert_eq!(replay.report().unwrap().counts.core_crashes, 1);

    let plain = runner::run(s, RunOptions::default());
    assert_ne!(plain.trace_hash, hash, "the injections changed the run");
}

#[test]
fn scenario_faults_reach_the_trace_in_time_order_and_replay_skips_them() {
    let mut s = scenario("fault-wan-outage");
    s.faults.push(Fault::AlarmStorm {
        plant: PlantId::new("P1").unwrap(),
        at: at("2d"),
        events: 50,
        over: Duration::from_mins(10),
    });
    s.faults.push(Fault::EndpointThrottle {
        system: System::Erp,
        active: Window {
            start: at("12h"),
            length: Duration::from_hours(2),
        },
        limit_per_s: 5,
    });
    let trace = Shared::default();
    let mut live = LiveRun::new(s.clone(), 99, Some(Box::new(trace.clone())));
    live.run_until(at("1d"));
    live.inject(Injected::CoreCrash {
        downtime: Duration::from_mins(5),
    })
    .unwrap();
    let injected = live.injections().to_vec();
    let hash = live.finish().trace_hash.clone();
    let text = trace.text();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let scenario_faults: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["source"] == "/plantloop/sim/scenario")
        .collect();
    let kinds: Vec<&str> = scenario_faults
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "com.plantloop.sim.fault.endpoint-throttle.v1",
            "com.plantloop.sim.fault.wan-outage.v1",
            "com.plantloop.sim.fault.alarm-storm.v1"
        ],
        "in the order they begin"
    );
    assert_eq!(scenario_faults[0]["data"]["limit_per_s"], 5);
    assert_eq!(scenario_faults[0]["data"]["system"], "erp");
    assert_eq!(scenario_faults[2]["data"]["events"], 50);
    let wan = scenario_faults
        .iter()
        .find(|r| r["type"] == "com.plantloop.sim.fault.wan-outage.v1")
        .unwrap();
    assert_eq!(wan["data"]["plant"], "P1");
    assert_eq!(wan["data"]["for"], "6h");
    assert_eq!(wan["time"], "2026-01-02T01:00:00.000Z");
    // Each record is written where the fault begins: the trace stays in time order.
    let times: Vec<&str> = records
        .iter()
        .map(|r| r["time"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "trace out of order");
    // Only the operator's injection is read back for a replay, and the replay matches.
    let read = Injection::from_trace(text.as_bytes(), &s).unwrap();
    assert_eq!(read, injected);
    let replay = LiveRun::replay(s.clone(), 99, &read, None).unwrap();
    assert_eq!(replay.report().unwrap().trace_hash, hash);
    // Recording the scenario's faults is not part of the run: no trace, same hash.
    let mut quiet = LiveRun::new(s, 99, None);
    quiet.run_until(at("1d"));
    quiet
        .inject(Injected::CoreCrash {
            downtime: Duration::from_mins(5),
        })
        .unwrap();
    assert_eq!(quiet.finish().trace_hash, hash);
}

#[test]
fn injections_that_cannot_apply_are_refused_and_not_recorded() {
    let s = scenario("torque-drift-containment");
    let mut live = LiveRun::new(s, 42, None);
    live.run_until(at("2h"));
    let wan = Injected::WanOutage {
        plant: 0,
        duration: Duration::from_mins(30),
    };
    live.inject(wan.clone()).unwrap();
    assert_eq!(
        live.inject(wan.clone()),
        Err(Refusal::WanAlreadyDown("P1".into()))
    );
    assert_eq!(
        live.inject(Injected::WanOutage {
            plant: 3,
            duration: Duration::from_mins(30)
        }),
        Err(Refusal::NoSuchPlant(3))
    );
    let crash = Injected::CoreCrash {
        downtime: Duration::from_mins(1),
    };
    live.inject(crash.clone()).unwrap();
    assert_eq!(live.inject(crash.clone()), Err(Refusal::CoreAlreadyDown));
    assert_eq!(
        live.inject(Injected::EndpointOutage {
            system: System::Qms,
            duration: Duration::ZERO
        }),
        Err(Refusal::ZeroLength)
    );
    assert_eq!(live.injections().len(), 2);
    live.run_until(at("2d1h"));
    assert_eq!(live.inject(crash.clone()), Err(Refusal::Draining));
    live.finish();
    assert_eq!(live.inject(crash), Err(Refusal::Ended));
    assert_eq!(live.injections().len(), 2);
    assert_eq!(live.world().counts.injected_faults, 2);
}

#[test]
fn a_broken_fault_record_in_a_trace_names_its_line() {
    let s = scenario("torque-drift-containment");
    let trace = concat!(
        r#"{"type":"com.plantloop.mes.unit.v1","data":{}}"#,
        "\n",
        r#"{"type":"com.plantloop.sim.fault.wan-outage.v1","source":"/plantloop/sim/operator","data":{"plant":"P9","for_us":1,"at_us":0,"after_events":0}}"#,
        "\n"
    );
    let e = Injection::from_trace(trace.as_bytes(), &s).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("\"P9\""), "{e}");
    let trace = r#"{"type":"com.plantloop.sim.fault.core-crash.v1","source":"/plantloop/sim/operator","data":{"at_us":0,"after_events":0}}"#;
    let e = Injection::from_trace(trace.as_bytes(), &s).unwrap_err();
    assert!(e.message.contains("data.downtime_us"), "{e}");
}

#[test]
fn single_steps_move_one_kernel_event_at_a_time() {
    let s = scenario("torque-drift-containment");
    let mut live = LiveRun::new(s, 42, None);
    live.run_until(at("1h"));
    let before = live.world().events_processed();
    let t0 = live.now();
    assert!(live.step());
    assert_eq!(live.world().events_processed(), before + 1);
    assert!(live.now() >= t0);
    // A target in the past moves nothing backwards.
    let (now, n) = (live.now(), live.world().events_processed());
    live.run_until(at("30m"));
    assert_eq!(live.now(), now);
    assert_eq!(live.world().events_processed(), n);
    live.finish();
    assert!(!live.step(), "nothing after the end");
}
