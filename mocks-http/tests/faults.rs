//! The fault layer over real HTTP: what a client sees, and what the ledger says really happened.

mod support;

use plantloop_core::System;
use plantloop_core::call::{IdempotencyKey, Outcome, Request};
use plantloop_core::time::Duration;
use plantloop_mocks::fault::{Fault, FaultProfile, FaultRule, Latency};
use plantloop_mocks_http::{FaultConfig, RunningMocks};
use support::*;

/// Servers whose ERP has these fault rules (unanswered requests held for `hold_ms`).
async fn erp_with(rules: Vec<FaultRule>, hold_ms: u64) -> (RunningMocks, String) {
    let m = start_with(|c| {
        c.system_mut(System::Erp).faults = Some(FaultConfig {
            profile: FaultProfile::new(rules),
            seed: 7,
            no_answer_hold: std::time::Duration::from_millis(hold_ms),
        });
    })
    .await;
    let base = erp_with_order(&client(), &m).await;
    (m, base)
}

fn holds(entries: &[serde_json::Value]) -> usize {
    entries
        .iter()
        .filter(|e| e["posting"].get("hold_posted").is_some())
        .count()
}

#[tokio::test]
async fn server_errors_post_nothing() {
    let (m, erp) = erp_with(
        vec![FaultRule::always(Fault::EndpointErrors {
            rate: 1.0,
            status: 503,
        })],
        1_000,
    )
    .await;
    let c = client();
    let a = post(&c, format!("{erp}/quality-holds"), Some("k"), &hold()).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (503, "application/problem+json")
    );
    insta::assert_json_snapshot!("fault_server_error", a.snapshot());
    assert_eq!(
        holds(&ledger(&c, &erp).await),
        0,
        "checkers and operators are never faulted"
    );
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn throttle_answers_429_with_retry_after() {
    let rule = FaultRule::always(Fault::EndpointThrottle {
        limit_per_s: 1,
        burst: Some(1),
    });
    let (m, erp) = erp_with(vec![rule], 1_000).await;
    let c = client();
    assert_eq!(
        post(&c, format!("{erp}/quality-holds"), Some("k1"), &hold())
            .await
            .status,
        201
    );
    let a = post(&c, format!("{erp}/quality-holds"), Some("k2"), &hold()).await;
    assert_eq!((a.status, a.retry_after.as_deref()), (429, Some("1")));
    insta::assert_json_snapshot!("fault_throttled", a.snapshot());
    assert_eq!(holds(&ledger(&c, &erp).await), 1);
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn error_body_is_200_but_posts_nothing() {
    let (m, erp) = erp_with(
        vec![FaultRule::always(Fault::ErrorBody { probability: 1.0 })],
        1_000,
    )
    .await;
    let c = client();
    let a = post(&c, format!("{erp}/quality-holds"), Some("k"), &hold()).await;
    assert_eq!(a.status, 200);
    insta::assert_json_snapshot!("fault_error_body", a.snapshot());
    let req = Request::PostHold(serde_json::from_value(hold()).unwrap());
    let outcome = plantloop_mocks_http::call(&c, &erp, &IdempotencyKey("k".into()), &req).await;
    assert_eq!(
        outcome,
        Outcome::Unavailable { status: 200 },
        "a 200 without a receipt is not success"
    );
    assert_eq!(holds(&ledger(&c, &erp).await), 0);
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn ack_then_timeout_posts_but_never_answers() {
    let (m, erp) = erp_with(
        vec![FaultRule::always(Fault::AckThenTimeout {
            probability: 1.0,
        })],
        5_000,
    )
    .await;
    let c = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let req = Request::PostHold(serde_json::from_value(hold()).unwrap());
    let outcome = plantloop_mocks_http::call(&c, &erp, &IdempotencyKey("k".into()), &req).await;
    assert_eq!(outcome, Outcome::TimedOut);
    assert_eq!(
        holds(&ledger(&client(), &erp).await),
        1,
        "the posting happened"
    );
    // Shutdown ends held requests at once.
    tokio::time::timeout(std::time::Duration::from_secs(3), m.shutdown())
        .await
        .expect("prompt")
        .unwrap();
}

#[tokio::test]
async fn outage_never_answers_and_posts_nothing() {
    let (m, erp) = erp_with(vec![FaultRule::always(Fault::EndpointOutage)], 5_000).await;
    let c = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let req = Request::PostHold(serde_json::from_value(hold()).unwrap());
    let outcome = plantloop_mocks_http::call(&c, &erp, &IdempotencyKey("k".into()), &req).await;
    assert_eq!(outcome, Outcome::TimedOut);
    assert_eq!(holds(&ledger(&client(), &erp).await), 0);
    tokio::time::timeout(std::time::Duration::from_secs(3), m.shutdown())
        .await
        .expect("prompt")
        .unwrap();
}

#[tokio::test]
async fn latency_delays_the_answer_and_windows_end() {
    let rules = vec![
        FaultRule::always(Fault::EndpointLatency {
            latency: Latency::Fixed(Duration::from_millis(150)),
        }),
        // An outage long over by the time the test calls.
        FaultRule::during(
            Fault::EndpointOutage,
            Duration::ZERO,
            Duration::from_millis(1),
        ),
    ];
    let (m, erp) = erp_with(rules, 1_000).await;
    let c = client();
    let t0 = std::time::Instant::now();
    let a = post(&c, format!("{erp}/quality-holds"), Some("k"), &hold()).await;
    assert_eq!(a.status, 201);
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(150),
        "{:?}",
        t0.elapsed()
    );
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn lognormal_latency_delays_each_answer_by_the_seeded_draw() {
    use plantloop_mocks::fault::FaultInjector;
    use rand::SeedableRng;
    let profile = FaultProfile::new(vec![FaultRule::always(Fault::EndpointLatency {
        latency: Latency::LogNormal {
            median: Duration::from_millis(60),
            sigma: 0.8,
        },
    })]);
    // The server decides with the mocks' injector and the same seed: the same draws, in order.
    let mut injector = FaultInjector::new(profile.clone());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let expected: Vec<u64> = (0..5)
        .map(|_| {
            injector
                .decide(plantloop_core::time::Instant::ZERO, &mut rng)
                .delay
                .as_micros()
        })
        .collect();
    assert!(
        expected.iter().any(|&d| d != expected[0]),
        "lognormal draws differ: {expected:?}"
    );
    let (m, erp) = erp_with(profile.rules, 1_000).await;
    let c = client();
    for want_us in expected {
        let t0 = std::time::Instant::now();
        let a = get(&c, format!("{erp}/postings?reference=k")).await;
        let took = t0.elapsed();
        assert_eq!(a.status, 200);
        let want = std::time::Duration::from_micros(want_us);
        assert!(
            took >= want && took < want + std::time::Duration::from_millis(750),
            "answer after {took:?}, drawn delay {want:?}"
        );
    }
    m.shutdown().await.unwrap();
}
