//! `POST /events` over HTTP in each mode, the operator routes, and bad input at every route:
//! every refusal is problem+json naming the attribute or field, and nothing refused is applied.

mod support;

use plantloop_core::System;
use serde_json::{Value, json};
use support::*;

const NC_TYPE: &str = "com.plantloop.qms.nonconformance.created.v2";

fn order_event(id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "/test-erp",
        "type": "com.plantloop.erp.order.released.v1",
        "data": { "id": format!("PO-{id}"), "material": "M-1", "line": "P1-L9", "plant": "P1",
                  "serials": { "first": 1, "last": 10 } }
    })
}

fn nc_event(id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": "/test-qms", "type": NC_TYPE,
        "data": { "id": format!("NC-T{id}"), "station": "P9-L1-S1", "characteristic": "torque",
                  "serials": { "first": 1, "last": 2 }, "failures": 3, "asset_related": false,
                  "severity": "minor" }
    })
}

struct Answer {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Value,
}

async fn send(rb: reqwest::RequestBuilder) -> Answer {
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let text = r.text().await.unwrap();
    Answer {
        status,
        content_type,
        retry_after,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn is_problem(a: &Answer, status: u16, field: Option<&str>) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.content_type, "application/problem+json", "{}", a.body);
    assert_eq!(a.body["status"], status, "{}", a.body);
    assert_eq!(a.body["field"].as_str(), field, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_each_mode_and_bad_input_at_every_route() {
    let data = tempfile::tempdir().unwrap();
    let (plant, listener) = Plant::new(data.path(), &[]).await;
    let service = plant.start(Some(listener)).await;
    let c = &plant.client;
    let events = format!("{}/events", plant.service_url());
    let structured = |body: Vec<u8>| {
        c.post(&events)
            .header("content-type", "application/cloudevents+json")
            .body(body)
    };

    // Structured: accepted, then the same source + id is a duplicate.
    let e1 = serde_json::to_vec(&order_event("1")).unwrap();
    let a = send(structured(e1.clone())).await;
    assert_eq!(
        (a.status, a.body["result"].as_str()),
        (202, Some("accepted")),
        "{}",
        a.body
    );
    let a = send(structured(e1)).await;
    assert_eq!(
        (a.status, a.body["result"].as_str()),
        (200, Some("duplicate"))
    );
    // Structured refusals name the attribute or field.
    let mut no_source = order_event("2");
    no_source.as_object_mut().unwrap().remove("source");
    is_problem(
        &send(structured(serde_json::to_vec(&no_source).unwrap())).await,
        422,
        Some("source"),
    );
    let mut bad_data = order_event("3");
    bad_data["data"]["serials"]["first"] = json!("one");
    is_problem(
        &send(structured(serde_json::to_vec(&bad_data).unwrap())).await,
        422,
        Some("data.serials.first"),
    );
    let mut bad_type = order_event("4");
    bad_type["type"] = json!("com.plantloop.erp.order.released.v9");
    is_problem(
        &send(structured(serde_json::to_vec(&bad_type).unwrap())).await,
        422,
        Some("type"),
    );
    is_problem(&send(structured(b"{\"id\":".to_vec())).await, 400, None);
    let huge = json!({ "pad": "x".repeat(300 * 1024) });
    is_problem(
        &send(structured(serde_json::to_vec(&huge).unwrap())).await,
        413,
        None,
    );
    let a = send(
        c.post(&events)
            .header("content-type", "text/plain")
            .body("hi"),
    )
    .await;
    is_problem(&a, 415, Some("content-type"));
    let a = send(c.post(&events).json(&order_event("5"))).await;
    is_problem(&a, 415, Some("content-type"));

    // Batched: a bad event is reported by its index; the others are judged on their own.
    let batch = json!([order_event("6"), { "specversion": "1.0" }, order_event("1")]);
    let a = send(
        c.post(&events)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&batch).unwrap()),
    )
    .await;
    assert_eq!(a.status, 207, "{}", a.body);
    let r = a.body["results"].as_array().unwrap();
    assert_eq!(
        (r[0]["index"].as_u64(), r[0]["status"].as_u64()),
        (Some(0), Some(202))
    );
    assert_eq!(
        (r[1]["status"].as_u64(), r[1]["field"].as_str()),
        (Some(422), Some("id"))
    );
    assert_eq!(
        (r[2]["status"].as_u64(), r[2]["result"].as_str()),
        (Some(200), Some("duplicate"))
    );
    let all_bad = json!([{ "specversion": "0.3" }]);
    let a = send(
        c.post(&events)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&all_bad).unwrap()),
    )
    .await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (422, "application/problem+json")
    );
    assert_eq!(a.body["results"][0]["field"], "specversion");
    for (body, status) in [("{}", 422), ("[", 400), ("[]", 422)] {
        let a = send(
            c.post(&events)
                .header("content-type", "application/cloudevents-batch+json")
                .body(body),
        )
        .await;
        assert_eq!(
            (a.status, a.content_type.as_str()),
            (status, "application/problem+json"),
            "{body}"
        );
    }

    // Binary: attributes in ce-* headers, data in the body.
    let data = serde_json::to_vec(&order_event("7")["data"]).unwrap();
    let binary = |id: &str, ty: Option<&str>| {
        let mut rb = c
            .post(&events)
            .header("content-type", "application/json")
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/test-erp");
        if let Some(t) = ty {
            rb = rb.header("ce-type", t);
        }
        rb.body(data.clone())
    };
    let a = send(binary("7", Some("com.plantloop.erp.order.released.v1"))).await;
    assert_eq!(a.status, 202, "{}", a.body);
    is_problem(&send(binary("8", None)).await, 422, Some("type"));
    let a = send(
        c.post(&events)
            .header("ce-specversion", "1.0")
            .header("ce-id", "9")
            .header("ce-source", "/test-erp")
            .header("ce-type", "com.plantloop.erp.order.released.v1")
            .header("content-type", "application/json")
            .body("not json"),
    )
    .await;
    is_problem(&a, 400, Some("data"));

    // Operator routes.
    let base = plant.service_url();
    let a = send(c.get(format!("{base}/audit"))).await;
    is_problem(&a, 422, Some("correlation"));
    let a = send(c.get(format!("{base}/audit?correlation=nothing"))).await;
    assert_eq!((a.status, &a.body["records"]), (200, &json!([])));
    is_problem(
        &send(c.post(format!("{base}/dead-letters/x/replay"))).await,
        422,
        Some("id"),
    );
    is_problem(
        &send(c.post(format!("{base}/dead-letters/999/replay"))).await,
        404,
        Some("id"),
    );
    is_problem(&send(c.get(format!("{base}/nowhere"))).await, 404, None);
    is_problem(&send(c.get(&events)).await, 405, None);
    assert_eq!(send(c.get(format!("{base}/health"))).await.status, 200);
    assert_eq!(send(c.get(format!("{base}/ready"))).await.status, 200);

    // Nothing refused reached the engine: only the three accepted orders were dispatched.
    let mut want: Vec<String> = ["1", "6", "7"]
        .iter()
        .map(|i| format!("w6/dispatch/PO-{i}"))
        .collect();
    plant.wait_for_keys(System::Mes, &want).await;
    let mut got: Vec<String> = plant
        .postings(System::Mes)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("w6/"))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_latency_class_pushes_back_with_retry_after() {
    let data = tempfile::tempdir().unwrap();
    let (mut plant, listener) = Plant::new(data.path(), &[]).await;
    plant.config.engine.admission.critical_queued_max = 0;
    let service = plant.start(Some(listener)).await;
    let events = format!("{}/events", plant.service_url());
    let a = send(
        plant
            .client
            .post(&events)
            .header("content-type", "application/cloudevents+json")
            .body(serde_json::to_vec(&nc_event("1")).unwrap()),
    )
    .await;
    is_problem(&a, 429, Some("latencyclass"));
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    let batch = json!([nc_event("2"), order_event("3")]);
    let a = send(
        plant
            .client
            .post(&events)
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&batch).unwrap()),
    )
    .await;
    assert_eq!(
        (a.status, a.retry_after.as_deref()),
        (207, Some("1")),
        "{}",
        a.body
    );
    assert_eq!(a.body["results"][0]["status"], 429);
    assert_eq!(a.body["results"][1]["status"], 202);
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}

/// Concurrent requests share journal syncs: each is answered after a sync that covers it, and
/// there are fewer syncs than requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_sync() {
    let data = tempfile::tempdir().unwrap();
    let (plant, listener) = Plant::new(data.path(), &[]).await;
    let service = plant.start(Some(listener)).await;
    let base = plant.service_url();
    let ready = |v: &Value| (v["inputs"].as_u64().unwrap(), v["syncs"].as_u64().unwrap());
    let (_, before) = plant.get(format!("{base}/ready")).await;
    let requests = 200;
    let mut tasks = vec![];
    for i in 0..requests {
        let c = plant.client.clone();
        let url = format!("{base}/events");
        let body = serde_json::to_vec(&nc_event(&format!("g{i}"))).unwrap();
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .header("content-type", "application/cloudevents+json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    let (_, after) = plant.get(format!("{base}/ready")).await;
    let (inputs, syncs) = (
        ready(&after).0 - ready(&before).0,
        ready(&after).1 - ready(&before).1,
    );
    assert!(inputs >= requests, "{inputs} inputs for {requests} events");
    assert!(
        syncs < requests,
        "{syncs} syncs for {requests} concurrent events"
    );
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}
