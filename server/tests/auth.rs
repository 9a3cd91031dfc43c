//! Default deny at every route: no token, a malformed one, a bad signature, an expired token, the
//! wrong audience or issuer are 401 with `WWW-Authenticate: Bearer` and problem+json; a valid
//! token without the route's scope is 403 naming the scope; only `/health` is open.
//! Tokens signed with configured RS256 and ES256 keys are accepted, and the principal who
//! delivered an event is in its audit trail.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use plantloop_core::System;
use plantloop_server::auth::local::LocalIssuer;
use plantloop_server::auth::settings::KeyFile;
use plantloop_server::auth::{Claims, KeyKind, Scope, ScopeClaim};
use plantloop_server::config::Place;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every route but the open ones, with a request that passes once authorised, and its scope.
fn routes(base: &str) -> Vec<(reqwest::Method, String, Scope)> {
    use reqwest::Method;
    vec![
        (Method::POST, format!("{base}/events"), Scope::EventsWrite),
        (
            Method::GET,
            format!("{base}/dead-letters"),
            Scope::AdminRead,
        ),
        (
            Method::POST,
            format!("{base}/dead-letters/1/replay"),
            Scope::AdminReplay,
        ),
        (
            Method::GET,
            format!("{base}/audit?correlation=NC-1"),
            Scope::AdminRead,
        ),
        (
            Method::POST,
            format!("{base}/webhooks/erp"),
            Scope::WebhooksWrite,
        ),
        (Method::GET, format!("{base}/ready"), Scope::AdminRead),
        (Method::GET, format!("{base}/metrics"), Scope::AdminRead),
        (
            Method::GET,
            format!("{base}/no-such-route"),
            Scope::AdminRead,
        ),
    ]
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    content_type: String,
    body: Value,
}

async fn call(
    client: &reqwest::Client,
    method: &reqwest::Method,
    url: &str,
    token: Option<&str>,
) -> Answer {
    let mut rb = client
        .request(method.clone(), url)
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"specversion":"1.0","id":"a1","source":"/t","type":"com.plantloop.erp.order.released.v1","data":{"id":"PO-A1","material":"M-1","line":"P1-L9","plant":"P1","serials":{"first":1,"last":10}}}"#);
    if let Some(t) = token {
        rb = rb.header("authorization", t);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    let challenge = h("www-authenticate");
    let content_type = h("content-type").unwrap_or_default();
    let text = r.text().await.unwrap();
    Answer {
        status,
        challenge,
        content_type,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

fn refused_401(a: &Answer, what: &str, detail: &str) {
    assert_eq!(a.status, 401, "{what}: {}", a.body);
    assert_eq!(a.content_type, "application/problem+json", "{what}");
    assert!(
        a.challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer")),
        "{what}: {:?}",
        a.challenge
    );
    assert_eq!(a.body["status"], 401, "{what}");
    assert_eq!(a.body["field"], "authorization", "{what}");
    let got = a.body["detail"].as_str().unwrap_or("");
    assert!(got.contains(detail), "{what}: {got:?} lacks {detail:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_at_every_route() {
    let data = tempfile::tempdir().unwrap();
    let (plant, listener) = Plant::new(data.path(), &[]).await;
    let service = plant.start(Some(listener)).await;
    let bare = reqwest::Client::new();
    let base = plant.service_url();
    let issuer = &plant.issuer;
    let stranger = tempfile::tempdir().unwrap();
    let forger = LocalIssuer::open(stranger.path(), "plantloop", "plantloop").unwrap();
    let elsewhere = LocalIssuer::open(data.path(), "plantloop", "another-service").unwrap();
    let other_issuer = LocalIssuer::open(data.path(), "someone-else", "plantloop").unwrap();
    let t = now_s();
    let bearer = |s: String| format!("Bearer {s}");
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "no bearer token"),
        (
            "not bearer",
            Some("Basic dXNlcjpwdw==".into()),
            "not `Bearer",
        ),
        ("malformed", Some(bearer("not.a.jwt".into())), "well-formed"),
        (
            "bad signature",
            Some(bearer(forger.admin_token())),
            "signature",
        ),
        (
            "expired",
            Some(bearer(issuer.mint_at(
                "admin",
                &Scope::ALL,
                t - 7200,
                t - 3600,
            ))),
            "expired",
        ),
        (
            "wrong audience",
            Some(bearer(elsewhere.admin_token())),
            "audience",
        ),
        (
            "wrong issuer",
            Some(bearer(other_issuer.admin_token())),
            "issuer",
        ),
    ];
    for (method, url, _) in routes(&base) {
        for (what, token, detail) in &cases {
            let a = call(&bare, &method, &url, token.as_deref()).await;
            refused_401(&a, &format!("{what} at {method} {url}"), detail);
        }
    }
    // A valid token without the route's scope: 403 naming it.
    for (method, url, scope) in routes(&base) {
        let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
        let token = bearer(issuer.mint("narrow", &others, Duration::from_secs(60)));
        let a = call(&bare, &method, &url, Some(&token)).await;
        assert_eq!(a.status, 403, "{method} {url}: {}", a.body);
        assert_eq!(a.content_type, "application/problem+json");
        assert_eq!(a.body["scope"], scope.as_str(), "{}", a.body);
        assert!(
            a.body["detail"].as_str().unwrap().contains(scope.as_str()),
            "{}",
            a.body
        );
        let c = a.challenge.unwrap();
        assert!(c.contains("insufficient_scope"), "{c}");
        // With the scope, the request passes the gate (whatever the route then says).
        let token = bearer(issuer.mint("exact", &[scope], Duration::from_secs(60)));
        let a = call(&bare, &method, &url, Some(&token)).await;
        assert!(
            ![401, 403].contains(&a.status),
            "{method} {url}: {}",
            a.body
        );
    }
    // Within the leeway (30 s) an expired token still passes.
    let late = bearer(issuer.mint_at("late", &Scope::ALL, t - 100, t - 5));
    let a = call(
        &bare,
        &reqwest::Method::GET,
        &format!("{base}/dead-letters"),
        Some(&late),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // The one open route.
    let r = bare.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200, "/health");
    // Nothing refused reached the journal: only the events the scoped tokens sent.
    let (s, audit) = plant.get(format!("{base}/audit?correlation=PO-A1")).await;
    assert_eq!(s, 200, "{audit}");
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}

fn claims(sub: &str, scopes: &str) -> Claims {
    Claims {
        sub: sub.into(),
        iss: "https://idp.example".into(),
        aud: "plantloop".into(),
        exp: now_s() + 600,
        iat: None,
        scope: ScopeClaim::Text(scopes.into()),
    }
}

/// RS256 and ES256 public keys from the configuration verify tokens their private keys signed;
/// the data folder's own secret is then not trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_public_keys_verify_and_replace_the_local_secret() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (mut plant, listener) = Plant::new(data.path(), &[]).await;
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut files = vec![];
    for (name, kind, pair) in [
        ("ec.pem", KeyKind::Es256, &ec),
        ("rsa.pem", KeyKind::Rs256, &rsa),
    ] {
        let path = keys.path().join(name);
        std::fs::write(&path, pair.public_key_pem()).unwrap();
        files.push(KeyFile {
            kind,
            path,
            place: Place::default(),
        });
    }
    plant.config.auth.issuer = "https://idp.example".into();
    plant.config.auth.keys = files;
    let service = plant.start(Some(listener)).await;
    let url = format!("{}/dead-letters", plant.service_url());
    let bare = reqwest::Client::new();
    let get = |token: String| bare.get(&url).bearer_auth(token).send();
    let es = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims("ops-ec", "admin:read"),
        &EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(get(es).await.unwrap().status(), 200);
    let rs = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims("ops-rsa", "admin:read"),
        &EncodingKey::from_rsa_pem(rsa.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(get(rs).await.unwrap().status(), 200);
    // A token signed by another EC key, and one with the local secret: refused.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims("mallory", "admin:read"),
        &EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(get(forged).await.unwrap().status(), 401);
    let local = get(plant.issuer.admin_token()).await.unwrap();
    assert_eq!(local.status(), 401);
    let body: Value = local.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("HS256"), "{body}");
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}

/// The audit trail names who delivered each event: the mocks' webhooks carry tokens of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_names_who_delivered_each_event() {
    let data = tempfile::tempdir().unwrap();
    let (plant, listener) = Plant::new(data.path(), &[]).await;
    let service = plant.start(Some(listener)).await;
    plant.set_up_line().await;
    let nc = plant.raise_nc().await;
    plant
        .wait_for_keys(System::Mes, &[format!("w1/{nc}/stop")])
        .await;
    let (s, audit) = plant
        .get(format!("{}/audit?correlation={nc}", plant.service_url()))
        .await;
    assert_eq!(s, 200, "{audit}");
    let records = audit["records"].as_array().unwrap();
    assert!(!records.is_empty());
    for r in records {
        let by = r["delivered_by"].as_array().unwrap();
        let origin = by
            .iter()
            .find(|d| d["source"] == r["origin"]["source"] && d["id"] == r["origin"]["id"])
            .unwrap_or_else(|| panic!("no origin in {r}"));
        assert_eq!(origin["principal"], mock_principal(System::Qms), "{r}");
        assert_eq!(
            by.len(),
            {
                let mut all: Vec<&Value> = std::iter::once(&r["origin"])
                    .chain(r["causation"].as_array().unwrap())
                    .collect();
                all.sort_by_key(|v| v.to_string());
                all.dedup();
                all.len()
            },
            "{r}"
        );
    }
    // The disposition posted with a quality engineer's own token: the release names them.
    plant.complete_work_order(&nc).await;
    let token = plant
        .issuer
        .mint("qe-anna", &[Scope::EventsWrite], Duration::from_secs(60));
    let ev = json!({
        "specversion": "1.0", "id": "disp-1", "source": "/qms",
        "type": "com.plantloop.qms.disposition.approved.v1",
        "data": { "nc": nc, "decision": "release", "approved_by": "qe-anna" }
    });
    let r = reqwest::Client::new()
        .post(format!("{}/events", plant.service_url()))
        .bearer_auth(token)
        .header("content-type", "application/cloudevents+json")
        .body(ev.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    plant
        .wait_for_keys(System::Erp, &[format!("w3/{nc}/release")])
        .await;
    let (_, audit) = plant
        .get(format!("{}/audit?correlation={nc}", plant.service_url()))
        .await;
    let release = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == format!("w3/{nc}/release"))
        .unwrap()
        .clone();
    let by = release["delivered_by"].as_array().unwrap();
    assert!(
        by.iter().any(|d| d["principal"] == "qe-anna"),
        "the release names who approved it: {release}"
    );
    service.stop().await.unwrap();
    plant.mocks.shutdown().await.unwrap();
}
