//! Retention: the engine's tables stay bounded as history grows, and nothing an open workflow
//! needs is forgotten (engine/workflows/retention.rs, `RetentionPolicy`).

mod support;

use plantloop_core::audit::AuditAction;
use plantloop_core::engine::{Config, DeadLetterReason};
use plantloop_core::time::Duration;
use plantloop_core::*;
use support::*;

/// Short retention, so that a test shows it in a few simulated days.
fn short() -> Config {
    let mut c = Config::default();
    c.retention.closed_for = Duration::from_hours(24);
    c.retention.containments_closed_max = 5;
    c.retention.completions_max = 5;
    c.retention.dead_letters_max = 3;
    c
}

fn plant(config: Config) -> World {
    let mut w = World::new(config, 7);
    w.send(asset("md-1", S1, 1));
    w.send(asset("md-2", S2, 1));
    w.send(order("o-1", "O-1", 1, 1_000));
    w.settle();
    w
}

/// NC `n` at S1, repaired and released.
fn full_loop(w: &mut World, n: u32) {
    let id = format!("NC-{n}");
    let serial = u64::from(n) + 10;
    w.send(nc(&format!("nc-{n}"), &id, S1, serial, serial));
    w.settle();
    w.send(completed(
        &format!("wo-{n}"),
        &format!("WO-{id}"),
        S1,
        Some(&id),
        vec![part("TORQUE-HEAD", 1, 1_000)],
        vec![labour("T1", 30, 6_000)],
    ));
    w.send(disposition(
        &format!("d-{n}"),
        &id,
        DispositionDecision::Release,
    ));
    w.settle();
}

#[test]
fn closed_containments_and_completions_are_forgotten_and_an_open_one_is_kept() {
    let mut w = plant(short());
    // An NC at S2 that stays open for the whole test: contained, never repaired or dispositioned.
    w.send(nc("nc-open", "NC-OPEN", S2, 1, 1));
    w.settle();
    for n in 0..30 {
        full_loop(&mut w, n);
        w.run_for(Duration::from_hours(6));
    }
    let f = w.engine().footprint();
    let s = w.engine().stats();
    // Within a day (four loops) of closed ones plus the count limit, and the open one.
    assert!(f.containments <= 1 + 5, "{f:?}");
    assert!(f.work_order_links <= 1 + 5, "{f:?}");
    assert!(f.completions <= 5, "{f:?}");
    assert!(s.containments_forgotten >= 24, "{s:?}");
    assert!(s.completions_forgotten >= 24, "{s:?}");
    // Every loop posted its release exactly once.
    for n in 0..30 {
        assert!(
            w.erp().find(&format!("w3/NC-{n}/release")).is_some(),
            "NC-{n}"
        );
    }
    assert!(w.erp().duplicate_keys().is_empty());
    // The open containment was not forgotten: its repair and disposition still release it.
    w.send(completed(
        "wo-open",
        "WO-NC-OPEN",
        S2,
        Some("NC-OPEN"),
        vec![],
        vec![labour("T1", 30, 6_000)],
    ));
    w.send(disposition(
        "d-open",
        "NC-OPEN",
        DispositionDecision::Release,
    ));
    w.settle();
    assert!(w.erp().find("w3/NC-OPEN/release").is_some());
    assert!(w.mes().find("w3/NC-OPEN/resume").is_some());
}

#[test]
fn a_completion_sent_again_within_retention_posts_no_cost_twice() {
    let mut w = plant(short());
    full_loop(&mut w, 1);
    w.run_for(Duration::from_hours(12));
    // CMMS sends the same completion again under a new event id.
    w.send(completed(
        "wo-1-again",
        "WO-NC-1",
        S1,
        Some("NC-1"),
        vec![part("TORQUE-HEAD", 1, 1_000)],
        vec![labour("T1", 30, 6_000)],
    ));
    w.settle();
    let costs = w.calls_named("post_cost").len();
    assert_eq!(costs, 2, "parts and labour, once each");
}

#[test]
fn a_full_dead_letter_queue_forgets_its_oldest_refusal_and_the_audit_keeps_it() {
    let mut w = plant(short());
    w.set_policy(|c, _| {
        if c.request.name() == "post_cost" {
            Delivery::Conflict.into()
        } else {
            Delivery::Done.into()
        }
    });
    for n in 0..10 {
        w.send(completed(
            &format!("wo-{n}"),
            &format!("WO-BD-{n}"),
            S2,
            None,
            vec![],
            vec![labour("T1", 30, 6_000)],
        ));
        w.settle();
    }
    let letters: Vec<u64> = w.engine().dead_letters().map(|d| d.id).collect();
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert!(
        (w.engine().dead_letters()).all(|d| matches!(d.reason, DeadLetterReason::Refused { .. })),
    );
    // The newest three stay.
    let newest: Vec<u64> = {
        let mut all: Vec<u64> = (w.audit.iter())
            .filter(|r| r.action == AuditAction::DeadLettered)
            .map(|r| r.seq)
            .collect();
        all.sort();
        all
    };
    assert_eq!(newest.len(), 10, "every refusal stays in the audit log");
    assert_eq!(w.engine().stats().dead_letters_evicted, 7);
    assert!(letters.windows(2).all(|p| p[0] < p[1]));
}
