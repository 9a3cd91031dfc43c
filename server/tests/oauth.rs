//! Outbound OAuth 2.0 end to end: the mock ERP requires client-credentials tokens that live one
//! second; the service fetches one, refreshes it as it runs out and, when the ERP revokes every
//! token mid-run, gets a new one on the 401. The closed loop posts everything exactly once and
//! nothing is dead-lettered.

mod support;

use plantloop_core::System;
use plantloop_mocks::Personality;
use plantloop_mocks_http::OAuthSettings;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

fn settings() -> OAuthSettings {
    OAuthSettings {
        client_id: "plantloop-core".into(),
        client_secret: "s3cret-of-the-core".into(),
        token_lifetime: Duration::from_secs(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_fetches_refreshes_and_renews_revoked_tokens_without_posting_twice() {
    let data = tempfile::tempdir().unwrap();
    let (plant, listener) = Plant::with_oauth(data.path(), &[], &[(System::Erp, settings())]).await;
    let service = plant.start(Some(listener)).await;
    plant.set_up_line().await;
    let nc = plant.raise_nc().await;
    for (s, k) in w1_keys(&nc) {
        plant.wait_for_keys(s, &k).await;
    }
    let first = plant.mocks.tokens_issued(System::Erp);
    assert!(first >= 1, "the core asked for a token");

    // The token runs out: the core refreshes it before the next calls.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    plant.complete_work_order(&nc).await;
    for (s, k) in w2_keys(&nc) {
        plant.wait_for_keys(s, &k).await;
    }
    let second = plant.mocks.tokens_issued(System::Erp);
    assert!(second > first, "refreshed: {first} → {second}");

    // The ERP revokes every token while the core still holds one: the 401 gets a new token and
    // the call goes through in the same attempt.
    plant.mocks.revoke_tokens(System::Erp);
    plant.approve_disposition(&nc).await;
    for (s, k) in w3_keys(&nc) {
        plant.wait_for_keys(s, &k).await;
    }
    assert!(plant.mocks.tokens_issued(System::Erp) > second);

    ends_clean(plant, service).await;
}

/// Each key posted once, nothing dead-lettered; then both sides stop.
async fn ends_clean(plant: Plant, service: plantloop_server::Service) {
    assert_each_key_posted_once(&plant).await;
    let (s, dl) = plant
        .get(format!("{}/dead-letters", plant.service_url()))
        .await;
    assert_eq!(s, 200);
    assert_eq!(dl["dead_letters"], json!([]), "nothing dead-lettered");
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}

/// The sum of the samples of `metric` whose labels include each of `labels`.
fn sample(metrics: &str, metric: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The 401 path on its own: a legacy ERP (which would post a repeated call twice) requires
/// hour-long tokens and revokes them while the core holds one. Each of W2's three ERP calls
/// meets the 401, the token is dropped, one fresh token is fetched, and each call goes once more
/// within the same attempt: the engine sees no failure (no `unavailable` outcome, no retry), each
/// posting lands once, nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_renewed_within_the_attempt_and_nothing_posts_twice() {
    let data = tempfile::tempdir().unwrap();
    let hour = OAuthSettings {
        token_lifetime: Duration::from_secs(3600),
        ..settings()
    };
    let (plant, listener) = Plant::with_oauth(
        data.path(),
        &[(System::Erp, Personality::Legacy)],
        &[(System::Erp, hour)],
    )
    .await;
    let service = plant.start(Some(listener)).await;
    plant.set_up_line().await;
    let nc = plant.raise_nc().await;
    for (s, k) in w1_keys(&nc) {
        plant.wait_for_keys(s, &k).await;
    }
    assert_eq!(
        plant.mocks.tokens_issued(System::Erp),
        1,
        "one token so far"
    );
    let metrics_url = format!("{}/metrics", plant.service_url());
    let (_, before) = plant.get(metrics_url.clone()).await;
    let before = before.as_str().unwrap().to_owned();
    let erp = "target=\"erp\"";

    plant.mocks.revoke_tokens(System::Erp);
    plant.complete_work_order(&nc).await;
    for (s, k) in w2_keys(&nc) {
        plant.wait_for_keys(s, &k).await;
    }
    assert_eq!(
        plant.mocks.tokens_issued(System::Erp),
        2,
        "one fresh token for every call the revocation refused"
    );
    let (_, after) = plant.get(metrics_url).await;
    let after = after.as_str().unwrap();
    for (metric, labels) in [
        ("plantloop_retries_total", vec![erp]),
        (
            "plantloop_calls_total",
            vec![erp, "outcome=\"unavailable\""],
        ),
    ] {
        assert_eq!(
            sample(after, metric, &labels),
            sample(&before, metric, &labels),
            "{metric} {labels:?}: the 401s never reached the engine\n{after}"
        );
    }
    assert_eq!(
        sample(after, "plantloop_calls_total", &[erp, "outcome=\"done\""])
            - sample(&before, "plantloop_calls_total", &[erp, "outcome=\"done\""]),
        3.0,
        "W2's three ERP calls, each answered once\n{after}"
    );
    ends_clean(plant, service).await;
}

/// The mock's side: the token route's refusals (RFC 6749 §5.2) and 401 on a capability route
/// without a valid token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_refuses_calls_and_clients_it_does_not_know() {
    let data = tempfile::tempdir().unwrap();
    let (plant, _listener) =
        Plant::with_oauth(data.path(), &[], &[(System::Erp, settings())]).await;
    let c = reqwest::Client::new();
    let erp = plant.url(System::Erp);
    let token_url = plant.mocks.token_url(System::Erp).unwrap();
    assert!(plant.mocks.token_url(System::Qms).is_none());
    let form = |body: &str| {
        c.post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
    };
    let answer = |r: reqwest::Response| async move {
        let s = r.status().as_u16();
        (s, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (s, b) = answer(
        form("grant_type=client_credentials&client_id=plantloop-core&client_secret=wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (401, Some("invalid_client")));
    let (s, b) = answer(form("grant_type=password").send().await.unwrap()).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (s, b) = answer(form("").send().await.unwrap()).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    // HTTP Basic client authentication.
    let r = c
        .post(&token_url)
        .basic_auth("plantloop-core", Some("s3cret-of-the-core"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let (s, b) = answer(r).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["token_type"], "Bearer");
    assert_eq!(b["expires_in"], 1);
    let token = b["access_token"].as_str().unwrap().to_owned();

    let stop = |token: Option<&str>| {
        let mut rb = c
            .post(format!("{erp}/production-orders/PO-9/status"))
            .header("idempotency-key", "k-1")
            .json(&json!({ "status": "in_progress" }));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    let r = stop(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(stop(Some("made-up")).await.unwrap().status(), 401);
    // A valid token passes the check (the order is unknown to ERP: a business answer).
    let r = stop(Some(&token)).await.unwrap();
    assert_ne!(r.status(), 401);
    // It expires.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(stop(Some(&token)).await.unwrap().status(), 401);
    // Operator and checker routes need no token.
    let r = c.get(format!("{erp}/ledger")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    plant.mocks.shutdown().await.unwrap();
}
