//! Throwaway profiling driver: one target, N requests, all on one current-thread runtime.
//! `mocks_http_profile erp|cmms|qms|mes|bare N`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use plantloop_core::System;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Target {
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
        Target { head, body }
    }
}

async fn exchange(s: &mut TcpStream, t: &Target, n: u64, buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
    let mut req = t.head.clone();
    req.extend_from_slice(n.to_string().as_bytes());
    req.extend_from_slice(b"\r\n\r\n");
    req.extend_from_slice(&t.body);
    s.write_all(&req).await.unwrap();
    buf.clear();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(start) = resp.parse(buf).unwrap() {
            let len: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            let code = resp.code.unwrap();
            while buf.len() < start + len {
                let mut chunk = [0u8; 4096];
                let k = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..k]);
            }
            return (code, buf[start..start + len].to_vec());
        }
        let mut chunk = [0u8; 4096];
        let k = s.read(&mut chunk).await.unwrap();
        assert!(k > 0);
        buf.extend_from_slice(&chunk[..k]);
    }
}

async fn setup(addr: SocketAddr, path: &str, body: Value) -> Value {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (code, b) = exchange(
        &mut s,
        &Target::new(addr, path, &body),
        u64::MAX,
        &mut vec![],
    )
    .await;
    assert!(
        (200..300).contains(&code),
        "{}",
        String::from_utf8_lossy(&b)
    );
    serde_json::from_slice(&b).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args[1].clone();
    let n: u64 = args[2].parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mocks = plantloop_mocks_http::serve_all(0, &[]).await.unwrap();
        let (erp, qms, cmms, mes) = (
            mocks.addr(System::Erp),
            mocks.addr(System::Qms),
            mocks.addr(System::Cmms),
            mocks.addr(System::Mes),
        );
        let order = json!({ "id": "PO-1", "material": "M-1", "line": "P1-L1", "plant": "P1", "serials": { "first": 1, "last": 100 } });
        let hold = json!({ "id": "H-1", "order": "PO-1", "material": "M-1", "serials": { "first": 10, "last": 20 }, "nc": "NC-1" });
        setup(erp, "/production-orders", order.clone()).await;
        setup(cmms, "/assets", json!({ "asset": "A-3", "station": "P1-L1-S3", "line": "P1-L1", "plant": "P1" })).await;
        let mut nc = Value::Null;
        for serial in 1..=3 {
            let result = json!({ "id": format!("I-{serial}"), "station": "P1-L1-S3", "serial": serial, "characteristic": "torque", "passed": false });
            nc = setup(qms, "/inspection-results", result).await["nc"].clone();
        }
        let nc = nc.as_str().unwrap().to_owned();
        let (addr, target) = match which.as_str() {
            "erp" => (erp, Target::new(erp, "/quality-holds", &hold)),
            "qms" => (qms, Target::new(qms, &format!("/nonconformances/{nc}/maintenance"), &json!({ "work_order": "WO-1", "root_cause": "worn head" }))),
            "cmms" => (cmms, Target::new(cmms, "/work-orders", &json!({ "id": "WO-1", "asset": "A-3", "station": "P1-L1-S3", "kind": "emergency", "severity": "major", "fault": "torque failures", "nc": nc }))),
            "mes" => (mes, Target::new(mes, "/orders", &order)),
            "bare" => {
                let app = Router::new().route(
                    "/quality-holds",
                    post(|| async { (StatusCode::CREATED, axum::Json(json!({ "receipt": "ERP-0000001" }))) }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                tokio::spawn(async move { axum::serve(listener, app).await });
                (addr, Target::new(addr, "/quality-holds", &hold))
            }
            other => panic!("{other}"),
        };
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = Vec::with_capacity(8192);
        for i in 0..n {
            let (code, b) = exchange(&mut s, &target, i, &mut buf).await;
            assert!((200..300).contains(&code), "{}", String::from_utf8_lossy(&b));
        }
    });
}
