//! `POST /webhooks/{system}`: a SaaS system's events arrive only by signed webhook. Each refusal
//! (bad or missing signature, stale or future timestamp, a replayed delivery) is a 401 that never
//! reaches the journal; so is a delivery without a token with `webhooks:write`; an event whose
//! `source` is another system's is a 422 that never reaches the journal either; a good delivery
//! is handled as `POST /events`; and the closed loop runs with SaaS mocks whose webhooks go to
//! this route.

mod support;

use plantloop_core::System;
use plantloop_mocks::Personality;
use plantloop_wire::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use serde_json::{Value, json};
use support::*;

fn order_event(id: &str) -> Vec<u8> {
    serde_json::to_vec(&order_from("/cmms", id)).unwrap()
}

fn order_from(source: &str, id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": source,
        "type": "com.plantloop.erp.order.released.v1",
        "data": { "id": format!("PO-W{id}"), "material": "M-1", "line": "P1-L9", "plant": "P1",
                  "serials": { "first": 1, "last": 10 } }
    })
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

/// A system's secret vouches for its own events only: on `/webhooks/cmms` an event whose `source`
/// names ERP, another system or none is 422 `field: "source"` and never reaches the journal (the
/// same event posted to `/events` afterwards is new to the engine). In a batch, only that event
/// is refused. And the signature alone is not enough: the delivery needs a token too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_another_system_is_refused_and_never_journaled() {
    let data = tempfile::tempdir().unwrap();
    let (plant, listener) = Plant::new(data.path(), &[(System::Cmms, Personality::Saas)]).await;
    let service = plant.start(Some(listener)).await;
    let t = now();
    let signed = Some((WEBHOOK_SECRET, t));

    for (i, source) in ["/erp", "/plants/P1/mes", "/cmms-test", ""]
        .iter()
        .enumerate()
    {
        let body = serde_json::to_vec(&order_from(source, &format!("s{i}"))).unwrap();
        let (s, b) = deliver(&plant, "cmms", &body, signed, CE).await;
        assert_eq!(
            (s, b["field"].as_str()),
            (422, Some("source")),
            "{source:?}: {b}"
        );
    }
    // A batch: the CMMS event goes in, the ERP one is refused at its index.
    let batch = serde_json::to_vec(&json!([
        order_from("/plants/P1/cmms", "b1"),
        order_from("/erp", "b2"),
    ]))
    .unwrap();
    let (s, b) = deliver(
        &plant,
        "cmms",
        &batch,
        Some((WEBHOOK_SECRET, t + 1)),
        "application/cloudevents-batch+json",
    )
    .await;
    assert_eq!(s, 207, "{b}");
    assert_eq!(b["results"][0]["result"], "accepted", "{b}");
    assert_eq!(b["results"][1]["status"], 422, "{b}");
    assert_eq!(b["results"][1]["field"], "source", "{b}");

    // None of the refused events reached the engine: from ERP's own route they are new.
    let events = format!("{}/events", plant.service_url());
    for id in ["s0", "b2"] {
        let r = plant
            .client
            .post(&events)
            .header("content-type", CE)
            .body(order_from("/erp", id).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{id}: {}", r.text().await.unwrap());
    }

    // Both checks: a well-signed delivery without a token is 401 at the gate, and one with a
    // token that lacks webhooks:write is 403.
    let body = order_event("t1");
    let bare = reqwest::Client::new();
    let url = format!("{}/webhooks/cmms", plant.service_url());
    let send = |token: Option<String>| {
        let mut rb = bare
            .post(&url)
            .header("content-type", CE)
            .header(TIMESTAMP_HEADER, (t + 2).to_string())
            .header(SIGNATURE_HEADER, sign(WEBHOOK_SECRET, t + 2, &body))
            .body(body.clone());
        if let Some(token) = token {
            rb = rb.bearer_auth(token);
        }
        rb.send()
    };
    let r = send(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let events_only = plant.issuer.mint(
        "mock-cmms",
        &[plantloop_server::auth::Scope::EventsWrite],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(send(Some(events_only)).await.unwrap().status(), 403);
    // The gate refused them before the replay guard saw them: the same delivery with the right
    // token is taken.
    let hooks = plant.issuer.mint(
        "mock-cmms",
        &[plantloop_server::auth::Scope::WebhooksWrite],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(send(Some(hooks)).await.unwrap().status(), 202);
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
