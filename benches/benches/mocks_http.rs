//! Each mock HTTP server against a wiremock `MockServer` and a bare axum handler, side by side in one
//! run, with the same keep-alive client on loopback and `CONNECTIONS` requests in flight.
//!
//! Every figure is requests per second (criterion's elements/s). Every request is a `POST` of a JSON
//! body with `content-type` and a fresh `Idempotency-Key`, and must be answered 2xx:
//! - `mock-erp-post-hold`: the mock ERP posting a quality hold (`POST /quality-holds`);
//! - `mock-qms-record-maintenance`: the mock QMS recording maintenance facts for an open NC
//!   (`POST /nonconformances/{id}/maintenance`);
//! - `mock-cmms-create-work-order`: the mock CMMS creating an emergency work order (`POST /work-orders`);
//! - `mock-mes-dispatch-order`: the mock MES taking a production order (`POST /orders`);
//! - `wiremock-one-mock`: a wiremock `MockServer` (request recording off, so that it does not grow)
//!   with one mounted mock answering a fixed receipt, sent the ERP's request;
//! - `bare-axum-fixed-json`: an axum handler that answers a fixed JSON receipt without reading the
//!   body, sent the ERP's request (the strict baseline);
//! - `bare-axum-read-body`: the same, but the handler reads the body (`Bytes`), as any handler that
//!   uses a POST body must.
//!
//! Each mock request is parsed, validated, posted to the ledger (a new receipt, since every key is
//! new), turned into a CloudEvent where the system emits one, and answered; the systems are modern.
//!
//! The client: the servers run on a 2-worker tokio runtime; the client is one current-thread tokio
//! runtime on the bench thread driving `CONNECTIONS` raw HTTP/1.1 keep-alive connections (requests
//! preformatted but for the key, responses parsed with `httparse` and read by `content-length`).
//! A general-purpose client (reqwest) costs more CPU per request than these servers do, so on a
//! machine with few cores it would measure the client more than the servers and squeeze every ratio
//! towards 1. The same client drives all six.
//!
//! Targets (issue 3): each mock ≥ 1.3× wiremock and ≥ 80% of bare axum. Run with
//! `cargo bench -p plantloop-benches --bench mocks_http -- --warm-up-time 1 --measurement-time 3`.

/// The allocator of the `plantloop` binary, so that the figures are what its users get.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plantloop_core::System;
use serde_json::{Value, json};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Keep-alive connections per target, each with one request in flight.
const CONNECTIONS: usize = 8;

/// One kind of request to one server.
struct Target {
    addr: SocketAddr,
    /// The request up to (not including) the idempotency key's value.
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Target {
    fn new(addr: SocketAddr, path: &str, body: &Value) -> Target {
        let body = serde_json::to_vec(body).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nidempotency-key: bench/",
            body.len()
        )
        .into_bytes();
        Target { addr, head, body }
    }

    /// The request bytes with key number `n`, into `out`.
    fn request(&self, n: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.head);
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// One keep-alive connection and its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    req: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("the server listens");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::with_capacity(8192),
            req: Vec::with_capacity(1024),
        }
    }

    /// Sends request `n` of `target` and reads the whole response: (status, body).
    async fn exchange(&mut self, target: &Target, n: u64) -> (u16, &[u8]) {
        target.request(n, &mut self.req);
        self.stream.write_all(&self.req).await.expect("a write");
        self.buf.clear();
        let (status, start, len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(start) =
                resp.parse(&self.buf).expect("a valid HTTP response")
            {
                let len = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .map(|h| {
                        std::str::from_utf8(h.value)
                            .unwrap()
                            .parse::<usize>()
                            .unwrap()
                    })
                    .expect("responses carry content-length");
                break (resp.code.unwrap(), start, len);
            }
            self.fill().await;
        };
        while self.buf.len() < start + len {
            self.fill().await;
        }
        (status, &self.buf[start..start + len])
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.expect("a read");
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

thread_local! {
    static NEXT_KEY: Cell<u64> = const { Cell::new(0) };
}

fn next_key() -> u64 {
    NEXT_KEY.with(|k| {
        let n = k.get();
        k.set(n + 1);
        n
    })
}

/// `iters` requests over the connections, one in flight on each; the wall time.
async fn run(conns: &mut [Conn], target: &Target, iters: u64) -> Duration {
    let per = iters / conns.len() as u64;
    let extra = iters % conns.len() as u64;
    let start = Instant::now();
    let work = conns.iter_mut().enumerate().map(|(i, conn)| async move {
        let n = per + u64::from((i as u64) < extra);
        for _ in 0..n {
            let (status, body) = conn.exchange(target, next_key()).await;
            assert!(
                (200..300).contains(&status),
                "{status}: {}",
                String::from_utf8_lossy(body)
            );
        }
    });
    join_all(work.collect()).await;
    start.elapsed()
}

/// Polls every future on the current task until all are done (no spawning, no extra threads).
async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<Option<std::pin::Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for slot in futures.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await
}

/// A bare axum server answering `POST /quality-holds` with a fixed receipt; `read_body`: the
/// handler reads the body first.
async fn bare_axum(rt: &tokio::runtime::Runtime, read_body: bool) -> SocketAddr {
    let receipt = || {
        (
            StatusCode::CREATED,
            axum::Json(json!({ "receipt": "ERP-0000001" })),
        )
    };
    let app = if read_body {
        Router::new().route(
            "/quality-holds",
            post(move |_body: axum::body::Bytes| async move { receipt() }),
        )
    } else {
        Router::new().route("/quality-holds", post(move || async move { receipt() }))
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await
    });
    addr
}

/// Sets up one system's state through its own routes; panics on an unexpected answer.
async fn setup(addr: SocketAddr, path: &str, body: Value, expect: u16) -> Value {
    let mut c = Conn::open(addr).await;
    let (status, answer) = c.exchange(&Target::new(addr, path, &body), u64::MAX).await;
    assert_eq!(
        status,
        expect,
        "{path}: {}",
        String::from_utf8_lossy(answer)
    );
    serde_json::from_slice(answer).unwrap()
}

fn bench(c: &mut Criterion) {
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mocks = servers
        .block_on(plantloop_mocks_http::serve_all(0, &[]))
        .unwrap();
    let wiremock = servers.block_on(async {
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(method("POST"))
            .and(path("/quality-holds"))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(json!({ "receipt": "ERP-0000001" })),
            )
            .mount(&server)
            .await;
        server
    });
    let bare = servers.block_on(bare_axum(&servers, false));
    let bare_reading = servers.block_on(bare_axum(&servers, true));
    let (erp, qms, cmms, mes) = (
        mocks.addr(System::Erp),
        mocks.addr(System::Qms),
        mocks.addr(System::Cmms),
        mocks.addr(System::Mes),
    );
    let order = json!({ "id": "PO-1", "material": "M-1", "line": "P1-L1", "plant": "P1", "serials": { "first": 1, "last": 100 } });
    let hold = json!({ "id": "H-1", "order": "PO-1", "material": "M-1", "serials": { "first": 10, "last": 20 }, "nc": "NC-1" });
    let nc = client.block_on(async {
        setup(erp, "/production-orders", order.clone(), 201).await;
        setup(
            cmms,
            "/assets",
            json!({ "asset": "A-3", "station": "P1-L1-S3", "line": "P1-L1", "plant": "P1" }),
            201,
        )
        .await;
        let mut nc = Value::Null;
        for serial in 1..=3 {
            let result = json!({ "id": format!("I-{serial}"), "station": "P1-L1-S3", "serial": serial, "characteristic": "torque", "passed": false });
            nc = setup(qms, "/inspection-results", result, 201).await["nc"].clone();
        }
        nc.as_str().expect("three failures raise an NC").to_owned()
    });
    let wiremock_addr = *wiremock.address();
    let targets = [
        (
            "mock-erp-post-hold",
            Target::new(erp, "/quality-holds", &hold),
        ),
        (
            "mock-qms-record-maintenance",
            Target::new(
                qms,
                &format!("/nonconformances/{nc}/maintenance"),
                &json!({ "work_order": "WO-1", "root_cause": "worn head" }),
            ),
        ),
        (
            "mock-cmms-create-work-order",
            Target::new(
                cmms,
                "/work-orders",
                &json!({ "id": "WO-1", "asset": "A-3", "station": "P1-L1-S3", "kind": "emergency", "severity": "major", "fault": "torque failures", "nc": nc }),
            ),
        ),
        (
            "mock-mes-dispatch-order",
            Target::new(mes, "/orders", &order),
        ),
        (
            "wiremock-one-mock",
            Target::new(wiremock_addr, "/quality-holds", &hold),
        ),
        (
            "bare-axum-fixed-json",
            Target::new(bare, "/quality-holds", &hold),
        ),
        (
            "bare-axum-read-body",
            Target::new(bare_reading, "/quality-holds", &hold),
        ),
    ];
    let mut conns: Vec<Vec<Conn>> = targets
        .iter()
        .map(|(_, target)| {
            client.block_on(async {
                let mut v = Vec::with_capacity(CONNECTIONS);
                for _ in 0..CONNECTIONS {
                    v.push(Conn::open(target.addr).await);
                }
                v
            })
        })
        .collect();
    let mut group = c.benchmark_group("mocks_http");
    group.throughput(Throughput::Elements(1));
    for ((name, target), conns) in targets.iter().zip(conns.iter_mut()) {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| client.block_on(run(conns, target, iters)))
        });
    }
    group.finish();
    if interleave_wanted() {
        interleaved(&client, &targets, &mut conns);
    }
    servers.block_on(async move {
        drop(wiremock);
        mocks.shutdown().await.unwrap();
    });
}

/// Rounds of the interleaved comparison, and requests per target per round.
const ROUNDS: usize = 12;
const ROUND_REQUESTS: u64 = 3_000;

/// True when the interleaved comparison should run: not when the command line names a filter
/// (`cargo bench … -- mock-erp`), lists, tests or profiles.
fn interleave_wanted() -> bool {
    const VALUED: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--output-format",
        "--color",
        "--plotting-backend",
        "--format",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if matches!(
            a.as_str(),
            "--list" | "--test" | "--profile-time" | "--exact"
        ) || !a.starts_with('-')
        {
            return false;
        }
        if VALUED.contains(&a.as_str()) {
            args.next();
        }
    }
    true
}

/// The targets' ratios measured interleaved: every round runs each target for `ROUND_REQUESTS`
/// requests, in a rotating order, so that load from elsewhere on the machine falls on all of them
/// alike. Prints each target's median requests/s and its median per-round ratio to wiremock and
/// to both bare axum handlers (the targets for each mock: ≥ 1.3 and ≥ 0.8).
fn interleaved(
    client: &tokio::runtime::Runtime,
    targets: &[(&str, Target)],
    conns: &mut [Vec<Conn>],
) {
    let n = targets.len();
    let mut rates = vec![Vec::with_capacity(ROUNDS); n];
    for round in 0..ROUNDS {
        for k in 0..n {
            let i = (round + k) % n;
            let took = client.block_on(run(&mut conns[i], &targets[i].1, ROUND_REQUESTS));
            rates[i].push(ROUND_REQUESTS as f64 / took.as_secs_f64());
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let index = |name: &str| targets.iter().position(|(n, _)| *n == name).unwrap();
    let (wm, bare, reading) = (
        index("wiremock-one-mock"),
        index("bare-axum-fixed-json"),
        index("bare-axum-read-body"),
    );
    println!(
        "\nmocks_http interleaved: {ROUNDS} rounds x {ROUND_REQUESTS} requests per target, {CONNECTIONS} connections"
    );
    println!(
        "{:<30} {:>10} {:>12} {:>12} {:>14}",
        "target", "req/s", "x wiremock", "x bare axum", "x bare reading"
    );
    for (i, (name, _)) in targets.iter().enumerate() {
        let ratio = |j: usize| median(rates[i].iter().zip(&rates[j]).map(|(a, b)| a / b).collect());
        println!(
            "{:<30} {:>10.0} {:>12.2} {:>12.2} {:>14.2}",
            name,
            median(rates[i].clone()),
            ratio(wm),
            ratio(bare),
            ratio(reading)
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
