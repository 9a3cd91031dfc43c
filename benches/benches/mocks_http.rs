//! The mock HTTP servers against a wiremock `MockServer` and a bare axum handler, side by side in one
//! run, with keep-alive reqwest clients on loopback and `CONCURRENCY` requests in flight.
//!
//! Every figure is requests per second (criterion's elements/s), for the same request bytes: a
//! `POST /quality-holds` with a JSON hold and an `Idempotency-Key` header.
//! - `mocks_http/mock-erp-post-hold`: the mock ERP (modern) posting a hold, a unique key per request,
//!   so every request parses, validates, posts to the ledger and answers a new receipt.
//! - `mocks_http/mock-erp-lookup`: the mock ERP answering `GET /postings?reference=…` (a cheap read).
//! - `mocks_http/wiremock-one-mock`: a wiremock `MockServer` (request recording off, so that it does
//!   not grow) with one mounted mock answering a fixed receipt.
//! - `mocks_http/bare-axum-fixed-json`: an axum handler that ignores the body and returns a fixed JSON.
//!
//! Targets: mock ≥ 1.3× wiremock and ≥ 80% of bare axum. Run with
//! `cargo bench -p plantloop-benches --bench mocks_http -- --warm-up-time 1 --measurement-time 4`.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plantloop_core::System;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Requests in flight at once, each on its own keep-alive connection.
const CONCURRENCY: usize = 8;

/// What one request does.
#[derive(Clone)]
enum Target {
    /// POST the hold with a fresh Idempotency-Key, expecting 201.
    PostHold { url: String },
    /// GET a URL, expecting 200.
    Get { url: String },
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

fn hold_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "H-1", "order": "PO-1", "material": "M-1", "serials": { "first": 10, "last": 20 }, "nc": "NC-1"
    }))
    .unwrap()
}

async fn send(client: &reqwest::Client, target: &Target, body: &[u8]) {
    let resp = match target {
        Target::PostHold { url } => {
            let key = format!("bench/{}", NEXT_KEY.fetch_add(1, Ordering::Relaxed));
            client
                .post(url)
                .header("content-type", "application/json")
                .header("idempotency-key", key)
                .body(body.to_vec())
                .send()
                .await
        }
        Target::Get { url } => client.get(url).send().await,
    };
    let resp = resp.expect("the server answers");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("a body");
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
}

/// `iters` requests from `CONCURRENCY` workers sharing one keep-alive client; the wall time.
async fn run(client: &reqwest::Client, target: &Target, iters: u64) -> Duration {
    let body: Arc<[u8]> = hold_body().into();
    let start = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY as u64)
        .map(|w| {
            let n = iters / CONCURRENCY as u64 + u64::from(w < iters % CONCURRENCY as u64);
            let (client, target, body) = (client.clone(), target.clone(), body.clone());
            tokio::spawn(async move {
                for _ in 0..n {
                    send(&client, &target, &body).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("a worker finishes");
    }
    start.elapsed()
}

async fn bare_axum() -> String {
    let app = Router::new().route(
        "/quality-holds",
        post(|| async {
            (
                StatusCode::CREATED,
                axum::Json(json!({ "receipt": "ERP-0000001" })),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/quality-holds", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let (mocks, wiremock, bare) = rt.block_on(async {
        let mocks = plantloop_mocks_http::serve_all(0, &[]).await.unwrap();
        let erp = mocks.base_url(System::Erp);
        let order = json!({ "id": "PO-1", "material": "M-1", "line": "P1-L1", "plant": "P1", "serials": { "first": 1, "last": 100 } });
        let r = client.post(format!("{erp}/production-orders")).json(&order).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let wiremock = MockServer::builder().disable_request_recording().start().await;
        Mock::given(method("POST"))
            .and(path("/quality-holds"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "receipt": "ERP-0000001" })))
            .mount(&wiremock)
            .await;
        (mocks, wiremock, bare_axum().await)
    });
    let erp = mocks.base_url(System::Erp);
    let targets = [
        (
            "mock-erp-post-hold",
            Target::PostHold {
                url: format!("{erp}/quality-holds"),
            },
        ),
        (
            "mock-erp-lookup",
            Target::Get {
                url: format!("{erp}/postings?reference=bench%2F1"),
            },
        ),
        (
            "wiremock-one-mock",
            Target::PostHold {
                url: format!("{}/quality-holds", wiremock.uri()),
            },
        ),
        ("bare-axum-fixed-json", Target::PostHold { url: bare }),
    ];
    let mut group = c.benchmark_group("mocks_http");
    group.throughput(Throughput::Elements(1));
    for (name, target) in &targets {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| rt.block_on(run(&client, target, iters)))
        });
    }
    group.finish();
    rt.block_on(async move {
        drop(wiremock);
        mocks.shutdown().await.unwrap();
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
