//! The mock servers over real HTTP on loopback, with a real client.

mod support;

use plantloop_core::System;
use plantloop_core::call::{IdempotencyKey, Outcome, Request};
use plantloop_core::{DispositionDecision, HoldId};
use plantloop_mocks::Personality;
use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn repeated_key_returns_the_first_receipt_and_posts_once() {
    let m = start(&[]).await;
    let c = client();
    let erp = erp_with_order(&c, &m).await;
    let first = post(
        &c,
        format!("{erp}/quality-holds"),
        Some("w1/NC-1/hold"),
        &hold(),
    )
    .await;
    assert_eq!(first.status, 201);
    insta::assert_json_snapshot!("post_hold_created", first.snapshot());
    let again = post(
        &c,
        format!("{erp}/quality-holds"),
        Some("w1/NC-1/hold"),
        &hold(),
    )
    .await;
    assert_eq!(
        (again.status, &again.body),
        (201, &first.body),
        "the first reply, again"
    );
    let holds: Vec<Value> = ledger(&c, &erp)
        .await
        .into_iter()
        .filter(|e| e["posting"].get("hold_posted").is_some())
        .collect();
    assert_eq!(holds.len(), 1, "one posting for one key");
    insta::assert_json_snapshot!("ledger_hold_entry", timeless(holds[0].clone()));
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn release_of_an_unheld_hold_is_409_problem_json() {
    let m = start(&[]).await;
    let c = client();
    let erp = erp_with_order(&c, &m).await;
    let before = ledger(&c, &erp).await;
    let a = post(
        &c,
        format!("{erp}/quality-holds/H-9/release"),
        Some("w3/NC-9/release"),
        &json!({ "decision": "release" }),
    )
    .await;
    assert_eq!(a.status, 409);
    assert_eq!(a.content_type, "application/problem+json");
    insta::assert_json_snapshot!("release_unheld_conflict", a.snapshot());
    // Held, released, released again: the second release conflicts too.
    assert_eq!(
        post(&c, format!("{erp}/quality-holds"), Some("k1"), &hold())
            .await
            .status,
        201
    );
    assert_eq!(
        post(
            &c,
            format!("{erp}/quality-holds/H-1/release"),
            Some("k2"),
            &json!({ "decision": "release" })
        )
        .await
        .status,
        201
    );
    let again = post(
        &c,
        format!("{erp}/quality-holds/H-1/release"),
        Some("k3"),
        &json!({ "decision": "scrap" }),
    )
    .await;
    assert_eq!(again.status, 409);
    assert_eq!(ledger(&c, &erp).await.len(), before.len() + 2);
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn schema_violations_are_422_naming_the_field() {
    let m = start(&[]).await;
    let c = client();
    let erp = erp_with_order(&c, &m).await;
    let before = ledger(&c, &erp).await;
    let mut missing = hold();
    missing.as_object_mut().unwrap().remove("nc");
    let a = post(&c, format!("{erp}/quality-holds"), Some("k"), &missing).await;
    assert_eq!((a.status, a.body["field"].as_str()), (422, Some("nc")));
    insta::assert_json_snapshot!("post_hold_missing_field", a.snapshot());

    let mut wrong_type = hold();
    wrong_type["serials"]["first"] = json!("ten");
    let a = post(&c, format!("{erp}/quality-holds"), Some("k"), &wrong_type).await;
    assert_eq!(
        (a.status, a.body["field"].as_str()),
        (422, Some("serials.first"))
    );

    let mut reversed = hold();
    reversed["serials"] = json!({ "first": 20, "last": 10 });
    let a = post(&c, format!("{erp}/quality-holds"), Some("k"), &reversed).await;
    assert_eq!((a.status, a.body["field"].as_str()), (422, Some("serials")));

    let mut bad_id = hold();
    bad_id["order"] = json!("PO 1");
    let a = post(&c, format!("{erp}/quality-holds"), Some("k"), &bad_id).await;
    assert_eq!((a.status, a.body["field"].as_str()), (422, Some("order")));

    let a = post(
        &c,
        format!("{erp}/quality-holds/H-1/release"),
        Some("k"),
        &json!({ "decision": "keep" }),
    )
    .await;
    assert_eq!(
        (a.status, a.body["field"].as_str()),
        (422, Some("decision"))
    );

    // A rule of the state machine names its field too: serials outside the order.
    let mut outside = hold();
    outside["serials"] = json!({ "first": 90, "last": 120 });
    let a = post(&c, format!("{erp}/quality-holds"), Some("k2"), &outside).await;
    assert_eq!((a.status, a.body["field"].as_str()), (422, Some("serials")));

    let a = post(
        &c,
        format!("{erp}/quality-holds"),
        Some("a key with spaces"),
        &hold(),
    )
    .await;
    assert_eq!(
        (a.status, a.body["field"].as_str()),
        (422, Some("Idempotency-Key"))
    );

    let a = get(&c, format!("{erp}/postings")).await;
    assert_eq!(
        (a.status, a.body["field"].as_str()),
        (422, Some("reference"))
    );
    assert_eq!(ledger(&c, &erp).await, before, "bad input changes nothing");
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_json_is_400_and_oversize_is_413() {
    let m = start(&[]).await;
    let c = client();
    let erp = erp_with_order(&c, &m).await;
    let before = ledger(&c, &erp).await;
    let a = post_raw(
        &c,
        format!("{erp}/quality-holds"),
        br#"{"id": "H-1", "order": "#.to_vec(),
    )
    .await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (400, "application/problem+json")
    );
    insta::assert_json_snapshot!("malformed_json", a.snapshot());

    let a = post_raw(
        &c,
        format!("{erp}/quality-holds"),
        b"[1, 2] trailing".to_vec(),
    )
    .await;
    assert_eq!(a.status, 422, "an array is JSON, but not a hold");

    let mut huge = hold();
    huge["padding"] = json!("x".repeat(plantloop_mocks_http::BODY_BYTES_MAX));
    let a = post(&c, format!("{erp}/quality-holds"), Some("k"), &huge).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (413, "application/problem+json")
    );
    insta::assert_json_snapshot!("oversize_body", a.snapshot());

    let a = answer(
        c.post(format!("{erp}/quality-holds"))
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 415);
    assert_eq!(ledger(&c, &erp).await, before, "bad input changes nothing");
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405() {
    let m = start(&[]).await;
    let c = client();
    let erp = erp_with_order(&c, &m).await;
    let before = ledger(&c, &erp).await;
    let a = post(&c, format!("{erp}/quality-holdz"), Some("k"), &hold()).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (404, "application/problem+json")
    );
    insta::assert_json_snapshot!("unknown_route", a.snapshot());
    // A route of another system is unknown here.
    let a = post(&c, format!("{erp}/work-orders"), Some("k"), &json!({})).await;
    assert_eq!(a.status, 404);
    let resp = c
        .delete(format!("{erp}/quality-holds"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("allow").map(|v| v.to_str().unwrap()),
        Some("POST")
    );
    let a = answer(resp).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (405, "application/problem+json")
    );
    insta::assert_json_snapshot!("wrong_method", a.snapshot());
    let a = get(&c, format!("{erp}/quality-holds")).await;
    assert_eq!(a.status, 405);
    assert_eq!(ledger(&c, &erp).await, before, "bad input changes nothing");
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn legacy_reposts_but_lookup_finds_the_posting() {
    let m = start(&[(System::Erp, Personality::Legacy)]).await;
    let c = client();
    let erp = erp_with_order(&c, &m).await;
    let key = "w1/NC-1/hold";
    let look = format!("{erp}/postings?reference=w1%2FNC-1%2Fhold");
    let a = get(&c, look.clone()).await;
    assert_eq!(
        (a.status, &a.body),
        (200, &json!({ "reference": key, "receipt": null }))
    );
    let first = post(&c, format!("{erp}/quality-holds"), Some(key), &hold()).await;
    assert_eq!(first.status, 201);
    let a = get(&c, look.clone()).await;
    assert_eq!(a.body["receipt"], first.body["receipt"]);
    insta::assert_json_snapshot!("lookup_found", a.snapshot());
    // Legacy ignores the key: a retry posts again (which is why the core looks first).
    let second = post(&c, format!("{erp}/quality-holds"), Some(key), &hold()).await;
    assert_eq!(second.status, 201);
    assert_ne!(second.body["receipt"], first.body["receipt"]);
    let holds = ledger(&c, &erp)
        .await
        .into_iter()
        .filter(|e| e["key"] == key)
        .count();
    assert_eq!(holds, 2);
    // The lookup still names the first accepted posting.
    assert_eq!(get(&c, look).await.body["receipt"], first.body["receipt"]);
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_side_call_maps_replies_to_outcomes() {
    let m = start(&[]).await;
    let c = client();
    let erp = erp_with_order(&c, &m).await;
    let key = IdempotencyKey("w1/NC-1/hold".into());
    let hold_req = Request::PostHold(serde_json::from_value(hold()).unwrap());
    let done = plantloop_mocks_http::call(&c, &erp, &key, &hold_req).await;
    let Outcome::Done { receipt } = &done else {
        panic!("{done:?}")
    };
    assert_eq!(
        plantloop_mocks_http::call(&c, &erp, &key, &hold_req).await,
        done
    );
    let found =
        plantloop_mocks_http::call(&c, &erp, &key, &Request::LookupPosting { key: key.clone() })
            .await;
    assert_eq!(
        found,
        Outcome::Found {
            receipt: Some(receipt.clone())
        }
    );
    let release = Request::ReleaseHold {
        hold: HoldId::new("H-2").unwrap(),
        decision: DispositionDecision::Release,
    };
    let conflict =
        plantloop_mocks_http::call(&c, &erp, &IdempotencyKey("w3/x".into()), &release).await;
    assert!(matches!(conflict, Outcome::Conflict { .. }), "{conflict:?}");
    // A request for another system is refused by this one.
    let stop = Request::ControlStation(plantloop_core::LineControl {
        station: plantloop_core::StationId::new("P1-L1-S1").unwrap(),
        action: plantloop_core::LineAction::Stop,
        reason: "NC-1".into(),
        nc: None,
    });
    let refused = plantloop_mocks_http::call(&c, &erp, &IdempotencyKey("w1/y".into()), &stop).await;
    assert!(
        matches!(refused, Outcome::Rejected { status: 404, .. }),
        "{refused:?}"
    );
    // Nobody listening: unavailable, status 0.
    let addr = m.addr(System::Erp);
    m.shutdown().await.unwrap();
    let gone = plantloop_mocks_http::call(&c, &format!("http://{addr}"), &key, &hold_req).await;
    assert_eq!(gone, Outcome::Unavailable { status: 0 });
}

#[tokio::test]
async fn the_loop_runs_over_http_across_the_four_systems() {
    let m = start(&[]).await;
    let c = client();
    let (erp, qms, cmms, mes) = (
        m.base_url(System::Erp),
        m.base_url(System::Qms),
        m.base_url(System::Cmms),
        m.base_url(System::Mes),
    );
    let placement =
        json!({ "asset": "A-3", "station": "P1-L1-S3", "line": "P1-L1", "plant": "P1" });
    assert_eq!(
        post(&c, format!("{cmms}/assets"), None, &placement)
            .await
            .status,
        201
    );
    assert_eq!(
        post(
            &c,
            format!("{mes}/stations"),
            None,
            &json!({ "station": "P1-L1-S3" })
        )
        .await
        .status,
        200
    );
    erp_with_order(&c, &m).await;
    // Three torque failures raise an NC.
    let mut nc = Value::Null;
    for serial in 10..13 {
        let r = json!({ "id": format!("I-{serial}"), "station": "P1-L1-S3", "serial": serial, "characteristic": "torque", "passed": false });
        nc = post(&c, format!("{qms}/inspection-results"), None, &r)
            .await
            .body["nc"]
            .clone();
    }
    let nc = nc
        .as_str()
        .expect("the third failure raises an NC")
        .to_owned();
    // W1: hold, work order, stop.
    let h = json!({ "id": "H-1", "order": "PO-1", "material": "M-1", "serials": { "first": 10, "last": 12 }, "nc": nc });
    assert_eq!(
        post(&c, format!("{erp}/quality-holds"), Some("w1/h"), &h)
            .await
            .status,
        201
    );
    let wo = json!({ "id": "WO-1", "asset": "A-3", "station": "P1-L1-S3", "kind": "emergency", "severity": "major", "fault": "torque", "nc": nc });
    assert_eq!(
        post(&c, format!("{cmms}/work-orders"), Some("w1/wo"), &wo)
            .await
            .status,
        201
    );
    assert_eq!(
        post(
            &c,
            format!("{mes}/stations/P1-L1-S3/stop"),
            Some("w1/stop"),
            &json!({ "reason": nc })
        )
        .await
        .status,
        201
    );
    let unit = json!({ "serial": 13, "order": "PO-1", "material": "M-1", "good": true });
    assert_eq!(
        post(&c, format!("{mes}/stations/P1-L1-S3/units"), None, &unit)
            .await
            .status,
        409,
        "a stopped station produces nothing"
    );
    // W2 and W3.
    let done = json!({ "root_cause": "worn head", "parts": [{ "part": "HEAD", "quantity": 1, "unit_cost": 41250 }], "labour": [] });
    assert_eq!(
        post(&c, format!("{cmms}/work-orders/WO-1/complete"), None, &done)
            .await
            .status,
        201
    );
    let facts = json!({ "work_order": "WO-1", "root_cause": "worn head" });
    assert_eq!(
        post(
            &c,
            format!("{qms}/nonconformances/{nc}/maintenance"),
            Some("w2/q"),
            &facts
        )
        .await
        .status,
        201
    );
    let d = json!({ "decision": "release", "approved_by": "qe" });
    assert_eq!(
        post(
            &c,
            format!("{qms}/nonconformances/{nc}/disposition"),
            None,
            &d
        )
        .await
        .status,
        201
    );
    assert_eq!(
        post(
            &c,
            format!("{erp}/quality-holds/H-1/release"),
            Some("w3/r"),
            &json!({ "decision": "release" })
        )
        .await
        .status,
        201
    );
    assert_eq!(
        post(
            &c,
            format!("{mes}/stations/P1-L1-S3/resume"),
            Some("w3/resume"),
            &json!({ "reason": "released" })
        )
        .await
        .status,
        201
    );
    assert_eq!(
        post(&c, format!("{mes}/stations/P1-L1-S3/units"), None, &unit)
            .await
            .status,
        202
    );
    let flushed = post(&c, format!("{mes}/confirmations/flush"), None, &json!({})).await;
    assert_eq!(flushed.body, json!({ "confirmations": 1 }));
    // Every system's events reached its pull feed.
    let mut types = vec![];
    for base in [&erp, &qms, &cmms, &mes] {
        let feed = poll_feed(&c, base, 1).await;
        types.extend(feed.iter().map(|e| e["type"].as_str().unwrap().to_owned()));
    }
    for t in [
        "order.released",
        "nonconformance.created",
        "workorder.created",
        "workorder.completed",
        "disposition.approved",
        "production.confirmed",
    ] {
        assert!(
            types.iter().any(|x| x.contains(t)),
            "{t} missing from {types:?}"
        );
    }
    m.shutdown().await.unwrap();
}

/// Polls a pull feed until it has at least `n` events (the dispatcher fills it asynchronously).
async fn poll_feed(c: &reqwest::Client, base: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let a = get(c, format!("{base}/events")).await;
        assert_eq!(a.status, 200, "{a:?}");
        let events = a.body["events"].as_array().unwrap().clone();
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{base}/events stayed below {n} events");
}

#[tokio::test]
async fn saas_has_no_pull_feed_and_modern_feeds_events_in_pages() {
    let m = start(&[(System::Cmms, Personality::Saas)]).await;
    let c = client();
    let a = get(&c, format!("{}/events", m.base_url(System::Cmms))).await;
    assert_eq!(a.status, 404);
    let erp = erp_with_order(&c, &m).await;
    let events = poll_feed(&c, &erp, 1).await;
    assert_eq!(events[0]["type"], "com.plantloop.erp.order.released.v1");
    plantloop_core::event::parse_event_value(events[0].clone()).expect("a valid CloudEvent");
    let a = get(&c, format!("{erp}/events?after=1")).await;
    assert_eq!(a.body, json!({ "next": 1, "events": [] }));
    let a = get(&c, format!("{erp}/events?after=x")).await;
    assert_eq!((a.status, a.body["field"].as_str()), (422, Some("after")));
    m.shutdown().await.unwrap();
}

#[tokio::test]
async fn serve_all_binds_four_ports_and_shuts_down() {
    let m = start(&[(System::Qms, Personality::Legacy)]).await;
    let c = client();
    let addrs = m.addrs();
    for (system, addr) in addrs {
        assert!(addr.ip().is_loopback());
        let a = get(&c, format!("http://{addr}/health")).await;
        assert_eq!(a.body["system"], system.as_str());
    }
    assert_eq!(
        get(&c, format!("http://{}/health", addrs[1].1)).await.body["personality"],
        "legacy"
    );
    let handle = m.shutdown_handle();
    handle.shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(5), m.wait())
        .await
        .expect("stops promptly")
        .unwrap();
    assert!(
        c.get(format!("http://{}/health", addrs[0].1))
            .send()
            .await
            .is_err()
    );
}

/// Bad input on every system: malformed JSON → 400, a schema violation → 422 naming the field,
/// oversize → 413, an unknown route → 404, all problem+json, and no ledger changes.
#[tokio::test]
async fn bad_input_is_refused_alike_by_all_four_systems() {
    let m = start(&[]).await;
    let c = client();
    erp_with_order(&c, &m).await;
    let huge = json!({ "padding": "x".repeat(plantloop_mocks_http::BODY_BYTES_MAX) });
    // (system, capability route, a body that breaks the schema, the field it must name)
    let cases = [
        (
            System::Erp,
            "/quality-holds",
            json!({ "id": "H-1", "order": "PO-1", "material": "M-1", "serials": { "first": 10, "last": 20 } }),
            "nc",
        ),
        (
            System::Erp,
            "/goods-movements",
            json!({ "kind": "teleport" }),
            "kind",
        ),
        (
            System::Qms,
            "/nonconformances/NC-1/maintenance",
            json!({ "work_order": "WO-1" }),
            "root_cause",
        ),
        (
            System::Qms,
            "/master-data",
            json!({ "key": "M-1", "version": "two" }),
            "version",
        ),
        (
            System::Cmms,
            "/work-orders",
            json!({ "id": "WO-1", "asset": "A-3", "station": "P1-L1-S3", "kind": "someday", "severity": "major", "fault": "f", "nc": null }),
            "kind",
        ),
        (System::Mes, "/stations/P1-L1-S1/stop", json!({}), "reason"),
        (
            System::Mes,
            "/orders",
            json!({ "id": "PO-1", "material": "M-1", "line": "P1-L1", "plant": "P1", "serials": { "first": "one", "last": 100 } }),
            "serials.first",
        ),
    ];
    let mut before = vec![];
    for system in System::ALL {
        before.push(ledger(&c, &m.base_url(system)).await);
    }
    for (system, route, invalid, field) in &cases {
        let url = format!("{}{route}", m.base_url(*system));
        let a = post_raw(&c, url.clone(), br#"{"id": "H-1", "#.to_vec()).await;
        assert_eq!(
            (a.status, a.content_type.as_str()),
            (400, "application/problem+json"),
            "{system} {route}: {a:?}"
        );
        let a = post(&c, url.clone(), Some("bad/1"), invalid).await;
        assert_eq!(
            (a.status, a.content_type.as_str(), a.body["field"].as_str()),
            (422, "application/problem+json", Some(*field)),
            "{system} {route}: {a:?}"
        );
        let a = post(&c, url.clone(), Some("bad/2"), &huge).await;
        assert_eq!(
            (a.status, a.content_type.as_str()),
            (413, "application/problem+json"),
            "{system} {route}: {a:?}"
        );
    }
    for system in System::ALL {
        let a = post(
            &c,
            format!("{}/no-such-capability", m.base_url(system)),
            Some("bad/3"),
            &json!({}),
        )
        .await;
        assert_eq!(
            (a.status, a.content_type.as_str(), a.body["status"].as_u64()),
            (404, "application/problem+json", Some(404)),
            "{system}"
        );
    }
    for (system, before) in System::ALL.into_iter().zip(before) {
        assert_eq!(
            ledger(&c, &m.base_url(system)).await,
            before,
            "{system}: bad input changes nothing"
        );
    }
    m.shutdown().await.unwrap();
}
