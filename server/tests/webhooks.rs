//! `POST /webhooks/{system}`: a SaaS system's events arrive only by signed webhook. Each refusal
//! (bad or missing signature, stale or future timestamp, a replayed delivery) is a 401 that never
//! reaches the journal; a good delivery is handled as `POST /events`; and the closed loop runs
//! with SaaS mocks whose webhooks go to this route.

mod support;

use plantloop_core::System;
use plantloop_mocks::Personality;
use plantloop_wire::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use serde_json::{Value, json};
use support::*;

fn order_event(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "source": "/cmms",
        "type": "com.plantloop.erp.order.released.v1",
        "data": { "id": format!("PO-W{id}"), "material": "M-1", "line": "P1-L9", "plant": "P1",
                  "serials": { "first": 1, "last": 10 } }
    }))
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// (status, field, body) of a delivery of `body` signed with `secret` at `ts`.
async fn deliver(
    plant: &Plant,
    system: &str,
    body: &[u8],
    signed: Option<(&[u8], u64)>,
    content_type: &str,
) -> (u16, Value) {
    let mut rb = plant
        .client
        .post(format!("{}/webhooks/{system}", plant.service_url()))
        .header("content-type", content_type)
        .body(body.to_vec());
    if let Some((secret, ts)) = signed {
        rb = rb
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(secret, ts, body));
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const CE: &str = "application/cloudevents+json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_401_and_never_reaches_the_journal() {
    let data = tempfile::tempdir().unwrap();
    let (plant, listener) = Plant::new(data.path(), &[(System::Cmms, Personality::Saas)]).await;
    let service = plant.start(Some(listener)).await;
    let body = order_event("1");
    let t = now();

    let refused = [
        (
            "another secret",
            Some((&b"not-the-shared-secret"[..], t)),
            SIGNATURE_HEADER,
        ),
        ("no signature", None, TIMESTAMP_HEADER),
        ("stale", Some((WEBHOOK_SECRET, t - 301)), TIMESTAMP_HEADER),
        (
            "from the future",
            Some((WEBHOOK_SECRET, t + 301)),
            TIMESTAMP_HEADER,
        ),
    ];
    for (why, signed, field) in refused {
        let (s, b) = deliver(&plant, "cmms", &body, signed, CE).await;
        assert_eq!(s, 401, "{why}: {b}");
        assert_eq!(b["field"], field, "{why}: {b}");
    }
    // A body changed after signing.
    let mut rb = plant
        .client
        .post(format!("{}/webhooks/cmms", plant.service_url()))
        .header("content-type", CE)
        .header(TIMESTAMP_HEADER, t.to_string())
        .header(SIGNATURE_HEADER, sign(WEBHOOK_SECRET, t, &body));
    rb = rb.body(order_event("2"));
    assert_eq!(rb.send().await.unwrap().status(), 401, "a tampered body");

    // None of them reached the engine: the event is new when it finally comes signed.
    let (s, b) = deliver(&plant, "cmms", &body, Some((WEBHOOK_SECRET, t)), CE).await;
    assert_eq!((s, b["result"].as_str()), (202, Some("accepted")), "{b}");
    // The same delivery again is a replay: 401, even though the engine would call it a duplicate.
    let (s, b) = deliver(&plant, "cmms", &body, Some((WEBHOOK_SECRET, t)), CE).await;
    assert_eq!(
        (s, b["field"].as_str()),
        (401, Some(SIGNATURE_HEADER)),
        "{b}"
    );
    assert!(b["detail"].as_str().unwrap().contains("before"), "{b}");
    // A sender's retry signs again with its new time: the engine's dedupe answers it.
    let (s, b) = deliver(&plant, "cmms", &body, Some((WEBHOOK_SECRET, t + 1)), CE).await;
    assert_eq!((s, b["result"].as_str()), (200, Some("duplicate")), "{b}");

    // No route for an unknown system, or for one without a secret; binary mode is unsigned.
    let (s, b) = deliver(&plant, "plm", &body, Some((WEBHOOK_SECRET, t)), CE).await;
    assert_eq!((s, b["field"].as_str()), (404, Some("system")), "{b}");
    let (s, b) = deliver(&plant, "erp", &body, Some((WEBHOOK_SECRET, t)), CE).await;
    assert_eq!((s, b["field"].as_str()), (404, Some("system")), "{b}");
    let (s, b) = deliver(
        &plant,
        "cmms",
        b"{}",
        Some((WEBHOOK_SECRET, t)),
        "application/json",
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (415, Some("content-type")), "{b}");
    // A signed but invalid event is judged like any other: 422 naming the field.
    let bad = br#"{"specversion":"1.0","id":"x","type":"nope"}"#;
    let (s, b) = deliver(&plant, "cmms", bad, Some((WEBHOOK_SECRET, t + 2)), CE).await;
    assert_eq!(s, 422, "{b}");
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}

/// The seed's containment with QMS, CMMS and ERP as SaaS systems: their events arrive only by
/// signed webhook at `/webhooks/{system}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saas_systems_close_the_loop_by_signed_webhooks() {
    let data = tempfile::tempdir().unwrap();
    let saas = [
        (System::Erp, Personality::Saas),
        (System::Qms, Personality::Saas),
        (System::Cmms, Personality::Saas),
    ];
    let (plant, listener) = Plant::new(data.path(), &saas).await;
    let service = plant.start(Some(listener)).await;
    plant.set_up_line().await;
    let nc = plant.raise_nc().await;
    for (s, keys) in w1_keys(&nc) {
        plant.wait_for_keys(s, &keys).await;
    }
    plant.complete_work_order(&nc).await;
    for (s, keys) in w2_keys(&nc) {
        plant.wait_for_keys(s, &keys).await;
    }
    assert_each_key_posted_once(&plant).await;
    for s in [System::Qms, System::Cmms] {
        assert!(
            plant
                .mocks
                .webhook_stats(s)
                .delivered
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}
