//! Outbound CloudEvents webhooks: signed, retried until acknowledged, duplicated by a fault.

mod support;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use plantloop_core::System;
use plantloop_mocks::Personality;
use plantloop_mocks::fault::{Fault, FaultProfile, FaultRule};
use plantloop_mocks_http::webhook::{ATTEMPT_HEADER, SignatureError, verify_signature};
use plantloop_mocks_http::{FaultConfig, RunningMocks, Subscriber, WebhookConfig};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const SECRET: &[u8] = b"whsec-test";

/// A webhook receiver that fails its first `failures` deliveries with 500.
#[derive(Default)]
struct Receiver {
    failures: AtomicU32,
    seen: Mutex<Vec<(HeaderMap, Bytes)>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.seen.lock().unwrap().push((headers.clone(), body.clone()));
    if r.failures.load(Ordering::SeqCst) > 0 {
        r.failures.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    match verify_signature(SECRET, &headers, &body) {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::UNAUTHORIZED,
    }
}

async fn receiver(failures: u32) -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver {
        failures: AtomicU32::new(failures),
        ..Receiver::default()
    });
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

/// Servers whose ERP (SaaS: events by webhook only) delivers to `url`.
async fn erp_delivering_to(url: &str, faults: Option<FaultProfile>) -> RunningMocks {
    start_with(|c| {
        let erp = c.system_mut(System::Erp);
        erp.personality = Personality::Saas;
        erp.webhooks = WebhookConfig {
            subscribers: vec![Subscriber {
                url: url.to_owned(),
                secret: SECRET.to_vec(),
                bearer_token: None,
            }],
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            request_timeout: Duration::from_secs(2),
            ..WebhookConfig::default()
        };
        erp.faults = faults.map(FaultConfig::new);
    })
    .await
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt() {
    let (r, url) = receiver(2).await;
    let m = erp_delivering_to(&url, None).await;
    let c = client();
    assert_eq!(
        get(&c, format!("{}/events", m.base_url(System::Erp)))
            .await
            .status,
        404,
        "SaaS: webhook only"
    );
    erp_with_order(&c, &m).await;
    let stats = || m.webhook_stats(System::Erp);
    wait_for("delivery", || stats().delivered.load(Ordering::SeqCst) == 1).await;
    assert_eq!(stats().attempts.load(Ordering::SeqCst), 3);
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for (i, (headers, body)) in seen.iter().enumerate() {
        assert_eq!(headers["content-type"], "application/cloudevents+json");
        assert_eq!(headers[ATTEMPT_HEADER], (i + 1).to_string());
        assert_eq!(body, &seen[0].1, "every attempt carries the same event");
        assert_eq!(verify_signature(SECRET, headers, body), Ok(()));
    }
    let event = plantloop_core::event::parse_event(&seen[2].1).expect("a valid CloudEvent");
    assert_eq!(event.source, "/erp");
    assert_eq!(
        event.event_type(),
        plantloop_core::event::EventType::OrderReleased
    );
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tampered_body_or_a_wrong_secret_is_rejected() {
    let (r, url) = receiver(0).await;
    let m = erp_delivering_to(&url, None).await;
    erp_with_order(&client(), &m).await;
    wait_for("delivery", || !r.seen.lock().unwrap().is_empty()).await;
    let (headers, body) = r.seen.lock().unwrap()[0].clone();
    assert_eq!(verify_signature(SECRET, &headers, &body), Ok(()));
    let tampered = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("PO-1", "PO-2");
    assert_ne!(tampered.as_bytes(), &body[..]);
    assert_eq!(
        verify_signature(SECRET, &headers, tampered.as_bytes()),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(b"another secret", &headers, &body),
        Err(SignatureError::Mismatch)
    );
    let mut unsigned = headers.clone();
    unsigned.remove(plantloop_mocks_http::webhook::SIGNATURE_HEADER);
    assert!(matches!(
        verify_signature(SECRET, &unsigned, &body),
        Err(SignatureError::MissingHeader(_))
    ));
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn duplicate_delivery_fault_sends_each_event_twice() {
    let (r, url) = receiver(0).await;
    let faults = FaultProfile::new(vec![FaultRule::always(Fault::DuplicateDelivery {
        probability: 1.0,
    })]);
    let m = erp_delivering_to(&url, Some(faults)).await;
    erp_with_order(&client(), &m).await;
    wait_for("two deliveries", || r.seen.lock().unwrap().len() == 2).await;
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0].1, seen[1].1,
        "the same event, twice (receivers dedupe by id)"
    );
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn reorder_fault_shuffles_deliveries_but_loses_none() {
    let (r, url) = receiver(0).await;
    let faults = FaultProfile::new(vec![FaultRule::always(Fault::Reorder {
        window: plantloop_core::time::Duration::from_millis(400),
    })]);
    let m = erp_delivering_to(&url, Some(faults)).await;
    let c = client();
    let erp = m.base_url(System::Erp);
    let n = 8;
    for i in 1..=n {
        let order = serde_json::json!({ "id": format!("PO-{i}"), "material": "M-1", "line": "P1-L1", "plant": "P1", "serials": { "first": 1, "last": 100 } });
        assert_eq!(
            support::post(&c, format!("{erp}/production-orders"), None, &order)
                .await
                .status,
            201
        );
    }
    wait_for("every delivery", || r.seen.lock().unwrap().len() == n).await;
    let ids: Vec<String> = r
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| plantloop_core::event::parse_event(body).unwrap().id)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| {
        id.rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    sorted.dedup();
    assert_eq!(sorted.len(), n, "each event once: {ids:?}");
    assert_ne!(
        ids, sorted,
        "delivered in emission order despite the reorder fault"
    );
    m.shutdown().await.unwrap();
}
