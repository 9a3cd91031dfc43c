//! Helpers shared by the HTTP tests: servers on loopback, a reqwest client, sample bodies.
#![allow(dead_code)]

use plantloop_core::System;
use plantloop_mocks::Personality;
use plantloop_mocks_http::{MocksConfig, RunningMocks, serve};
use serde_json::{Value, json};

/// The four servers on free loopback ports.
pub async fn start(personalities: &[(System, Personality)]) -> RunningMocks {
    plantloop_mocks_http::serve_all(0, personalities)
        .await
        .expect("servers start")
}

/// The four servers on free loopback ports, configured by `f`.
pub async fn start_with(f: impl FnOnce(&mut MocksConfig)) -> RunningMocks {
    let mut config = MocksConfig {
        base_port: 0,
        ..MocksConfig::default()
    };
    f(&mut config);
    serve(config).await.expect("servers start")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A response, reduced to what the tests compare.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Answer {
    /// The answer as a snapshot value.
    pub fn snapshot(&self) -> Value {
        let mut v =
            json!({ "status": self.status, "content-type": self.content_type, "body": self.body });
        if let Some(r) = &self.retry_after {
            v["retry-after"] = r.clone().into();
        }
        v
    }
}

pub async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Answer {
        status,
        content_type,
        retry_after,
        body,
    }
}

/// POSTs JSON with an optional Idempotency-Key.
pub async fn post(c: &reqwest::Client, url: String, key: Option<&str>, body: &Value) -> Answer {
    let mut rb = c.post(url).json(body);
    if let Some(k) = key {
        rb = rb.header("Idempotency-Key", k);
    }
    answer(rb.send().await.unwrap()).await
}

/// POSTs raw bytes as JSON.
pub async fn post_raw(c: &reqwest::Client, url: String, bytes: Vec<u8>) -> Answer {
    answer(
        c.post(url)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap(),
    )
    .await
}

pub async fn get(c: &reqwest::Client, url: String) -> Answer {
    answer(c.get(url).send().await.unwrap()).await
}

/// The ledger entries of the system at `base`.
pub async fn ledger(c: &reqwest::Client, base: &str) -> Vec<Value> {
    let a = get(c, format!("{base}/ledger")).await;
    assert_eq!(a.status, 200);
    a.body["entries"].as_array().unwrap().clone()
}

/// A ledger entry with its wall-clock time blanked, for snapshots.
pub fn timeless(mut entry: Value) -> Value {
    entry["at"] = json!(0);
    entry
}

pub fn order() -> Value {
    json!({ "id": "PO-1", "material": "M-1", "line": "P1-L1", "plant": "P1", "serials": { "first": 1, "last": 100 } })
}

pub fn hold() -> Value {
    json!({ "id": "H-1", "order": "PO-1", "material": "M-1", "serials": { "first": 10, "last": 20 }, "nc": "NC-1" })
}

/// ERP with order PO-1 released.
pub async fn erp_with_order(c: &reqwest::Client, m: &RunningMocks) -> String {
    let base = m.base_url(System::Erp);
    let a = post(c, format!("{base}/production-orders"), None, &order()).await;
    assert_eq!(a.status, 201, "{a:?}");
    base
}
