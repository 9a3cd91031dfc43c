//! Fault profiles: determinism, precedence, windows, and the scenario's TOML shape.

mod common;

use common::*;
use plantloop_core::call::{Outcome, Request};
use plantloop_core::time::{Duration, Instant};
use plantloop_mocks::erp::Erp;
use plantloop_mocks::fault::*;
use plantloop_mocks::{Personality, PostingKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn mixed() -> FaultProfile {
    FaultProfile::new(vec![
        FaultRule::always(Fault::EndpointLatency {
            latency: Latency::LogNormal {
                median: Duration::from_millis(200),
                sigma: 0.6,
            },
        }),
        FaultRule::during(
            Fault::EndpointErrors {
                rate: 0.3,
                status: 503,
            },
            secs(100),
            secs(100),
        ),
        FaultRule::during(Fault::EndpointOutage, secs(300), secs(50)),
        FaultRule::during(
            Fault::EndpointThrottle {
                limit_per_s: 5,
                burst: None,
            },
            secs(400),
            secs(100),
        ),
        FaultRule::always(Fault::AckThenTimeout { probability: 0.05 }),
        FaultRule::always(Fault::ErrorBody { probability: 0.02 }),
        FaultRule::always(Fault::DuplicateDelivery { probability: 0.2 }),
        FaultRule::always(Fault::Reorder { window: secs(30) }),
    ])
}

fn run(seed: u64) -> (Vec<FaultDecision>, Vec<EventDecision>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut inj = FaultInjector::new(mixed());
    let mut calls = Vec::new();
    let mut events = Vec::new();
    for i in 0..6_000u64 {
        let now = Instant::from_millis(i * 100);
        calls.push(inj.decide(now, &mut rng));
        events.push(inj.decide_event(now, &mut rng));
    }
    (calls, events)
}

#[test]
fn the_same_seed_gives_the_same_decisions() {
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn decisions_follow_the_windows_and_rates() {
    let (calls, _) = run(7);
    let at = |i: usize| Instant::from_millis(i as u64 * 100);
    let in_window = |i: usize, from: u64, to: u64| at(i) >= t(from) && at(i) < t(to);
    let mut errors = 0;
    let mut error_window = 0;
    for (i, d) in calls.iter().enumerate() {
        if in_window(i, 300, 350) {
            assert_eq!(d.action, FaultAction::NoAnswer, "outage at {i}");
        } else {
            assert_ne!(d.action, FaultAction::NoAnswer);
        }
        if matches!(d.action, FaultAction::ServerError { status: 503 }) {
            assert!(in_window(i, 100, 200));
            errors += 1;
        }
        if in_window(i, 100, 200) {
            error_window += 1;
        }
        if !in_window(i, 400, 500) {
            assert!(!matches!(d.action, FaultAction::Throttle { .. }));
        }
    }
    let share = errors as f64 / error_window as f64;
    assert!((0.24..0.36).contains(&share), "5xx share {share}");
    // Throttle at 10 calls/s against a limit of 5/s: about half are refused after the burst.
    let throttled = (4000..5000)
        .filter(|&i| matches!(calls[i].action, FaultAction::Throttle { .. }))
        .count();
    assert!((440..=520).contains(&throttled), "throttled {throttled}");
}

#[test]
fn lognormal_latency_centres_on_the_median() {
    let (calls, _) = run(11);
    let mut delays: Vec<u64> = calls
        .iter()
        .filter(|d| d.action != FaultAction::NoAnswer)
        .map(|d| d.delay.as_micros())
        .collect();
    delays.sort_unstable();
    let median = delays[delays.len() / 2];
    assert!((180_000..220_000).contains(&median), "median {median}");
    assert!(delays[0] > 0 && *delays.last().unwrap() < 200_000 * 40);
}

#[test]
fn event_decisions_duplicate_and_spread_within_the_window() {
    let (_, events) = run(3);
    let dups = events.iter().filter(|e| e.duplicate.is_some()).count();
    assert!((1000..1400).contains(&dups), "duplicates {dups}");
    assert!(
        events
            .iter()
            .all(|e| e.delay <= secs(30) && e.duplicate.is_none_or(|d| d <= secs(30)))
    );
    assert!(events.iter().any(|e| e.delay > secs(20)));
}

#[test]
fn ack_then_timeout_posts_but_the_reply_is_lost() {
    let mut erp = Erp::new(Personality::Legacy);
    erp.release_order(t(0), order("PO-1", 1, 100)).unwrap();
    let req = Request::PostHold(hold("H-1", "PO-1", 1, 10));
    let k = key("W1/NC-1/hold");
    let lost = FaultDecision {
        delay: Duration::ZERO,
        action: FaultAction::AckThenTimeout,
    };
    let d = lost.deliver(|| erp.apply(t(1), Some(&k), &req));
    assert_eq!(d, Delivery::NoAnswer { applied: true });
    assert_eq!(d.outcome(), Outcome::TimedOut);
    assert_eq!(erp.ledger().count(PostingKind::HoldPosted), 1);
    // The core must look before it posts again to a legacy system.
    let found = FaultDecision::PASS
        .deliver(|| erp.apply(t(2), Some(&k), &Request::LookupPosting { key: k.clone() }));
    assert!(matches!(
        found.outcome(),
        Outcome::Found { receipt: Some(_) }
    ));
}

#[test]
fn faults_that_do_not_reach_the_system_post_nothing() {
    let mut erp = Erp::new(Personality::Modern);
    erp.release_order(t(0), order("PO-1", 1, 100)).unwrap();
    let req = Request::PostHold(hold("H-1", "PO-1", 1, 10));
    for action in [
        FaultAction::NoAnswer,
        FaultAction::Throttle {
            retry_after: secs(2),
        },
        FaultAction::ServerError { status: 502 },
        FaultAction::ErrorBody,
    ] {
        let d = FaultDecision {
            delay: Duration::from_millis(5),
            action,
        };
        assert!(!d.reaches_system());
        let out = d.deliver(|| erp.apply(t(1), None, &req)).outcome();
        let expected = match action {
            FaultAction::NoAnswer => Outcome::TimedOut,
            FaultAction::Throttle { .. } => Outcome::Throttled {
                retry_after: secs(2),
            },
            FaultAction::ServerError { .. } => Outcome::Unavailable { status: 502 },
            _ => Outcome::Unavailable { status: 200 },
        };
        assert_eq!(out, expected);
    }
    assert_eq!(erp.ledger().count(PostingKind::HoldPosted), 0);
}

#[test]
fn profiles_read_the_scenario_fault_shape() {
    let text = r#"
        [[rules]]
        kind = "endpoint-errors"
        at = "3d"
        for = "2h"
        rate = 0.3

        [[rules]]
        kind = "endpoint-outage"
        at = "5d"
        for = "1h"

        [[rules]]
        kind = "endpoint-throttle"
        limit_per_s = 5

        [[rules]]
        kind = "endpoint-latency"
        latency = "800ms"

        [[rules]]
        kind = "endpoint-latency"
        latency = { median = "200ms", sigma = 0.5 }

        [[rules]]
        kind = "duplicate-delivery"
        probability = 0.2

        [[rules]]
        kind = "reorder"
        window = "30s"

        [[rules]]
        kind = "ack-then-timeout"
        probability = 0.01

        [[rules]]
        kind = "error-body"
        probability = 0.01
    "#;
    let p: FaultProfile = toml::from_str(text).unwrap();
    p.validate().unwrap();
    assert_eq!(p.rules.len(), 9);
    assert_eq!(
        p.rules[0],
        FaultRule::during(
            Fault::EndpointErrors {
                rate: 0.3,
                status: 503
            },
            Duration::parse("3d").unwrap(),
            Duration::parse("2h").unwrap()
        )
    );
    assert_eq!(
        p.rules[3].fault,
        Fault::EndpointLatency {
            latency: Latency::Fixed(Duration::from_millis(800))
        }
    );
    // And back.
    let again: FaultProfile = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
    assert_eq!(again, p);
    let json: FaultProfile = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(json, p);
}

#[test]
fn invalid_profiles_are_refused() {
    for (fault, field) in [
        (
            Fault::EndpointErrors {
                rate: 1.5,
                status: 503,
            },
            "rate",
        ),
        (
            Fault::EndpointErrors {
                rate: 0.5,
                status: 404,
            },
            "status",
        ),
        (
            Fault::EndpointThrottle {
                limit_per_s: 0,
                burst: None,
            },
            "limit_per_s",
        ),
        (
            Fault::DuplicateDelivery { probability: -0.1 },
            "probability",
        ),
        (
            Fault::EndpointLatency {
                latency: Latency::LogNormal {
                    median: secs(1),
                    sigma: f64::NAN,
                },
            },
            "sigma",
        ),
    ] {
        let e = FaultProfile::new(vec![FaultRule::always(fault)])
            .validate()
            .unwrap_err();
        assert_eq!(e.field, field);
    }
    let bad: Result<FaultProfile, _> =
        toml::from_str("[[rules]]\nkind = \"endpoint-outage\"\nat = \"soon\"");
    assert!(bad.is_err());
    let unknown: Result<FaultProfile, _> = toml::from_str("[[rules]]\nkind = \"meteor\"");
    assert!(unknown.is_err());
}

#[test]
fn a_quiet_profile_draws_nothing() {
    let mut inj = FaultInjector::new(FaultProfile::new(vec![FaultRule::during(
        Fault::EndpointErrors {
            rate: 1.0,
            status: 500,
        },
        secs(10),
        secs(10),
    )]));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let before = rng.clone();
    assert!(inj.is_quiet(t(5)));
    assert_eq!(inj.decide(t(5), &mut rng), FaultDecision::PASS);
    assert_eq!(rng, before);
    assert_eq!(
        inj.decide(t(10), &mut rng).action,
        FaultAction::ServerError { status: 500 }
    );
}

#[test]
fn fixed_latencies_add_up_and_apply_to_every_answer() {
    let fixed = |ms| {
        FaultRule::always(Fault::EndpointLatency {
            latency: Latency::Fixed(Duration::from_millis(ms)),
        })
    };
    let mut inj = FaultInjector::new(FaultProfile::new(vec![
        fixed(800),
        fixed(50),
        FaultRule::always(Fault::EndpointErrors {
            rate: 0.5,
            status: 502,
        }),
    ]));
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let decisions: Vec<FaultDecision> = (0..200).map(|i| inj.decide(t(i), &mut rng)).collect();
    assert!(
        decisions
            .iter()
            .all(|d| d.delay == Duration::from_millis(850)),
        "fixed latency is the same every time, errors included"
    );
    let errors = decisions
        .iter()
        .filter(|d| d.action == FaultAction::ServerError { status: 502 })
        .count();
    assert!((70..130).contains(&errors), "5xx share {errors}/200");
}
