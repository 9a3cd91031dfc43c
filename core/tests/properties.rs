//! Properties of the whole engine under random interleavings: the closed loop's events sent in a
//! random order, some of them twice; every call answered by a random fault (5xx or timeout with or
//! without the posting made, a reply lost, a 429, a 409 or 422), with a random latency that
//! reorders replies, some replies duplicated; random crashes of the engine (before the sync,
//! between the sync and the release of outputs, after the release); modern or legacy targets.
//!
//! Safety, whatever happens: no key is posted twice in any target's books; no hold is released
//! before it was posted or before the repair was reported and the disposition approved; no station
//! resumes before it was stopped; master data never goes back; the audit chain verifies.
//!
//! Liveness, once the faults stop (the random faults are finite) and an operator replays what is
//! left in the dead-letter queue: every event is acknowledged, every call the engine ever started
//! is posted exactly once and audited once, the release happens, nothing is left open.

mod support;

use plantloop_core::audit::{AuditAction, verify_chain};
use plantloop_core::call::Request;
use plantloop_core::engine::{Ack, Config, Input};
use plantloop_core::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use support::*;

/// How one call ends, before the faults stop.
#[derive(Clone, Debug)]
struct Fault {
    delivery: Delivery,
    latency_ms: u64,
    duplicate_after_ms: Option<u64>,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![
        6 => Just(Delivery::Done),
        2 => any::<bool>().prop_map(|posted| Delivery::Unavailable { posted }),
        2 => any::<bool>().prop_map(|posted| Delivery::TimedOut { posted }),
        2 => any::<bool>().prop_map(|posted| Delivery::Lost { posted }),
        1 => (1..5_000u64).prop_map(|ms| Delivery::Throttled(Duration::from_millis(ms))),
        1 => Just(Delivery::Conflict),
        1 => Just(Delivery::Rejected(422)),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    (
        delivery(),
        prop_oneof![3 => 1..50u64, 1 => 50..15_000u64],
        prop::option::weighted(0.15, 0..5_000u64),
    )
        .prop_map(|(delivery, latency_ms, duplicate_after_ms)| Fault {
            delivery,
            latency_ms,
            duplicate_after_ms,
        })
}

fn crash_point() -> impl Strategy<Value = CrashPoint> {
    (0..3u8, 1..120u64).prop_map(|(kind, k)| match kind {
        0 => CrashPoint::BeforeSync(k),
        1 => CrashPoint::AfterSync(k),
        _ => CrashPoint::AfterRelease(k),
    })
}

#[derive(Clone, Debug)]
struct Case {
    legacy: bool,
    seed: u64,
    /// Send times of the events, in ms after the start (the script's order is lost).
    send_ms: Vec<u64>,
    /// Events the network delivers a second time, this much later.
    duplicates: Vec<(prop::sample::Index, u64)>,
    faults: Vec<Fault>,
    crashes: Vec<CrashPoint>,
    snapshot_every: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let n = closed_loop_events().len();
    (
        any::<bool>(),
        any::<u64>(),
        prop::collection::vec(0..60_000u64, n),
        prop::collection::vec((any::<prop::sample::Index>(), 0..30_000u64), 0..5),
        prop::collection::vec(fault(), 0..80),
        prop::collection::vec(crash_point(), 0..3),
        prop_oneof![Just(0u64), 1..8u64],
    )
        .prop_map(
            |(legacy, seed, send_ms, duplicates, faults, crashes, snapshot_every)| Case {
                legacy,
                seed,
                send_ms,
                duplicates,
                faults,
                crashes,
                snapshot_every,
            },
        )
}

fn run(c: &Case) -> World {
    let mut config = Config::default();
    for t in &mut config.targets {
        t.honours_idempotency_key = !c.legacy;
    }
    let mut w = World::durable(config, c.seed, c.snapshot_every);
    for t in &mut w.targets {
        t.legacy = c.legacy;
    }
    let mut faults = c.faults.clone().into_iter();
    w.set_policy(move |_, _| match faults.next() {
        Some(f) => Plan {
            delivery: f.delivery,
            latency: Duration::from_millis(f.latency_ms),
            duplicate_after: f.duplicate_after_ms.map(Duration::from_millis),
        },
        None => Delivery::Done.into(),
    });
    w.crash_points = c.crashes.clone();
    let events = closed_loop_events();
    for ((_, e), ms) in events.iter().zip(&c.send_ms) {
        w.send_after(Duration::from_millis(*ms), e.clone());
    }
    for (i, later) in &c.duplicates {
        let k = i.index(events.len());
        w.send_after(
            Duration::from_millis(c.send_ms[k] + later),
            events[k].1.clone(),
        );
    }
    w.settle();
    w
}

/// Safety: what the targets' books and the audit log show, faults or not.
fn check_safety(w: &World) -> Result<(), TestCaseError> {
    check_ledgers(w);
    prop_assert_eq!(verify_chain(&w.audit), Ok(w.audit.len() as u64));
    // A release only after the repair was reported and the disposition approved.
    for p in &w.erp().ledger {
        if matches!(p.request, Request::ReleaseHold { .. }) {
            for cause in ["wo-1", "d-1"] {
                let sent = w.first_delivered.get(cause).copied();
                prop_assert!(
                    sent.is_some_and(|t| t <= p.at),
                    "release at {} before {cause} reached the core ({sent:?})",
                    p.at
                );
            }
        }
    }
    Ok(())
}

/// The operator replays every dead letter until none is left. Each replay that fails again
/// uses up a fault, and there are at most 80, so this ends well within the bound.
fn drain(w: &mut World) {
    for _ in 0..100 {
        let ids: Vec<u64> = w.engine().dead_letters().map(|d| d.id).collect();
        if ids.is_empty() {
            return;
        }
        for id in ids {
            w.input(Input::ReplayDeadLetter(id));
        }
        w.settle();
    }
}

fn check_liveness(w: &World) -> Result<(), TestCaseError> {
    let e = w.engine();
    prop_assert!(e.is_idle(), "{:?}", e);
    let left: Vec<_> = e.dead_letters().map(|d| d.reason.describe()).collect();
    prop_assert!(left.is_empty(), "dead letters left: {:?}", left);
    // Every event of the script reached the engine and was acknowledged.
    let acked: BTreeSet<&str> = w
        .acks
        .iter()
        .filter(|(_, a)| matches!(a, Ack::Accepted | Ack::Duplicate))
        .map(|(id, _)| id.as_str())
        .collect();
    prop_assert_eq!(acked.len(), closed_loop_events().len(), "{:?}", acked);
    // Every call the engine started is posted exactly once, and audited exactly once.
    let called: BTreeSet<(System, String)> = w
        .calls
        .iter()
        .map(|(_, c)| (c.target, c.key.0.to_string()))
        .collect();
    let posted: BTreeSet<(System, String)> = w.all_postings().into_iter().collect();
    prop_assert_eq!(&called, &posted);
    for (system, key) in &posted {
        let audited = w
            .audit
            .iter()
            .filter(|r| {
                r.key.as_str() == key
                    && r.target == *system
                    && matches!(r.action, AuditAction::Posted | AuditAction::FoundExisting)
            })
            .count();
        prop_assert_eq!(audited, 1, "{} {}", system, key);
    }
    // The closed loop's release happened, whatever the order of events.
    prop_assert!(w.erp().find("w3/NC-1/release").is_some());
    prop_assert!(w.mes().find("w3/NC-1/resume").is_some());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_interleavings_never_post_twice_or_release_early_and_converge(c in case()) {
        let mut w = run(&c);
        check_safety(&w)?;
        drain(&mut w);
        check_safety(&w)?;
        check_liveness(&w)?;
    }
}
