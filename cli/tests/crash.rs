//! Crash safety with a real process: `plantloop serve` runs as a child against mock servers
//! started here (ERP and MES legacy, sending webhooks; QMS and CMMS modern, polled), a workload
//! of NCs, completions and dispositions runs through the mocks' operator routes, and the service
//! is killed with SIGKILL at seeded random points and restarted each time. At the end every
//! event the service answered 2xx (the mocks stop delivering only then) is applied, and the
//! mocks' ledgers pass the simulator's ledger checks (`plantloop_sim::checker::check_ledgers`:
//! no duplicate postings, holds before releases, every containment, every cost posting).
//!
//! `PLANTLOOP_CRASH_KILLS` (default 20) sets the number of kills, `PLANTLOOP_CRASH_SEED` the seed
//! (printed either way).

mod support;

use plantloop_core::System;
use plantloop_core::model::{AssetId, StationId};
use plantloop_mocks::{Ledger, LedgerEntry, Personality};
use plantloop_mocks_http::{MocksConfig, RunningMocks, Subscriber, WebhookConfig};
use plantloop_server::auth::Scope;
use plantloop_server::auth::local::LocalIssuer;
use plantloop_sim::checker::{LedgerTruth, check_ledgers};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::spawn_with_lines;

/// Lines (one station, one order each) with one NC each, per round of the workload.
const LINES: usize = 4;
const SNAPSHOT_EVERY: u64 = 40;

/// SplitMix64: a seeded generator for the kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, body); `None` when the connection
/// fails (the service is down).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    ))
}

fn post(addr: SocketAddr, path: &str, body: Value) -> Value {
    let (status, b) = http(addr, "POST", path, &body.to_string()).expect("the mock answers");
    assert!((200..300).contains(&status), "POST {path}: {status} {b}");
    b
}

fn ledger(addr: SocketAddr) -> Vec<LedgerEntry> {
    let (status, b) = http(addr, "GET", "/ledger", "").expect("the mock answers");
    assert_eq!(status, 200);
    serde_json::from_value(b["entries"].clone()).expect("ledger entries")
}

fn integration_keys(addr: SocketAddr) -> Vec<String> {
    ledger(addr)
        .into_iter()
        .filter(|e| e.origin == plantloop_mocks::Origin::Integration)
        .filter_map(|e| e.key.map(|k| k.as_str().to_owned()))
        .collect()
}

/// Waits (up to 3 minutes, the service being killed meanwhile) until `addr`'s ledger holds
/// each key.
fn wait_keys(addr: SocketAddr, keys: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let have = integration_keys(addr);
        if keys.iter().all(|k| have.contains(k)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: waited for {keys:?}, have {have:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

struct Mocks {
    addr: [SocketAddr; 4],
}

impl Mocks {
    fn at(&self, s: System) -> SocketAddr {
        self.addr[s.index()]
    }
}

/// One round of the workload: lines set up, then per line an NC, its work order's completion
/// and its disposition, each waited for in the ledgers. Round `r` uses lines `r*LINES+1…`.
fn workload(m: &Mocks, round: usize) {
    let lines = round * LINES + 1..=(round + 1) * LINES;
    let (erp, qms, cmms, mes) = (
        m.at(System::Erp),
        m.at(System::Qms),
        m.at(System::Cmms),
        m.at(System::Mes),
    );
    for k in lines.clone() {
        let station = format!("P1-L{k}-S1");
        post(
            cmms,
            "/assets",
            json!({ "asset": format!("A-{k}"), "station": station, "line": format!("P1-L{k}"), "plant": "P1" }),
        );
        post(mes, "/stations", json!({ "station": station }));
    }
    let assets: Vec<String> = lines
        .clone()
        .map(|k| format!("w5/mes/asset/A-{k}/v1"))
        .collect();
    wait_keys(mes, &assets);
    for k in lines.clone() {
        post(
            erp,
            "/production-orders",
            json!({ "id": format!("PO-{k}"), "material": "M-1", "line": format!("P1-L{k}"), "plant": "P1", "serials": { "first": 1, "last": 100 } }),
        );
    }
    let dispatches: Vec<String> = lines
        .clone()
        .map(|k| format!("w6/dispatch/PO-{k}"))
        .collect();
    wait_keys(mes, &dispatches);
    let mut ncs = vec![];
    for k in lines.clone() {
        let mut nc = Value::Null;
        for serial in 10..13 {
            let b = post(
                qms,
                "/inspection-results",
                json!({ "id": format!("I-{k}-{serial}"), "station": format!("P1-L{k}-S1"), "serial": serial, "characteristic": "torque", "passed": false }),
            );
            nc = b["nc"].clone();
        }
        ncs.push(nc.as_str().expect("an NC").to_owned());
    }
    for nc in &ncs {
        wait_keys(cmms, &[format!("w1/{nc}/work-order")]);
        wait_keys(
            erp,
            &[format!("w1/{nc}/hold"), format!("w1/{nc}/order-status")],
        );
        wait_keys(mes, &[format!("w1/{nc}/stop")]);
        post(
            cmms,
            &format!("/work-orders/WO-{nc}/complete"),
            json!({
                "root_cause": "worn torque head",
                "parts": [{ "part": "HEAD", "quantity": 2, "unit_cost": 41250 }],
                "labour": [{ "technician": "T-1", "minutes": 90, "rate_per_hour": 6000 }]
            }),
        );
    }
    for nc in &ncs {
        let wo = format!("WO-{nc}");
        wait_keys(
            erp,
            &[
                format!("w2/{wo}/goods-issue/0"),
                format!("w2/{wo}/cost/parts"),
                format!("w2/{wo}/cost/labour"),
            ],
        );
        wait_keys(qms, &[format!("w2/{wo}/maintenance")]);
        post(
            qms,
            &format!("/nonconformances/{nc}/disposition"),
            json!({ "decision": "release", "approved_by": "qe-1" }),
        );
    }
    for nc in &ncs {
        wait_keys(
            erp,
            &[format!("w3/{nc}/release"), format!("w3/{nc}/order-status")],
        );
        wait_keys(mes, &[format!("w3/{nc}/resume")]);
    }
}

/// A `plantloop serve` child, up (its URLs printed).
struct Serving {
    child: Child,
    /// "recovered from the snapshot at N and M records after it" and the like.
    recovery: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config: &std::path::Path) -> Serving {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plantloop"));
    cmd.args(["serve", "--config"]).arg(config);
    let (mut child, rx) = spawn_with_lines(cmd);
    let mut recovery = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.starts_with("serving until interrupted") => break,
            Ok(l) if l.starts_with("data ") => recovery = l,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    e.read_to_string(&mut stderr).ok();
                }
                panic!("plantloop serve did not start: {stderr}");
            }
        }
    }
    Serving { child, recovery }
}

/// Records replayed after the snapshot, from the recovery line.
fn replayed(recovery: &str) -> u64 {
    let words: Vec<&str> = recovery.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1] == "records")
        .and_then(|w| w[0].parse().ok())
        .unwrap_or(0)
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The mocks, delivering webhooks to `core` with `token` (`events:write`).
async fn start_mocks(core: SocketAddr, token: String) -> RunningMocks {
    let mut mc = MocksConfig {
        base_port: 0,
        ..MocksConfig::default()
    };
    for s in System::ALL {
        let set = mc.system_mut(s);
        let webhooks = matches!(s, System::Erp | System::Mes);
        set.personality = if webhooks {
            Personality::Legacy
        } else {
            Personality::Modern
        };
        set.webhooks = WebhookConfig {
            subscribers: if webhooks {
                vec![Subscriber {
                    url: format!("http://{core}/events"),
                    secret: b"crash-test".to_vec(),
                    bearer_token: Some(token.clone()),
                }]
            } else {
                vec![]
            },
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            request_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(20),
            ..WebhookConfig::default()
        };
    }
    plantloop_mocks_http::serve(mc).await.unwrap()
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_posts_nothing_twice() {
    let kills: u32 = std::env::var("PLANTLOOP_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("PLANTLOOP_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test: {kills} kills, reproduce with PLANTLOOP_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The service trusts the data folder's secret: the mocks deliver with a token of it.
    let issuer = LocalIssuer::open(&data, "plantloop", "plantloop").unwrap();
    let token = issuer.mint("mock", &[Scope::EventsWrite], Duration::from_secs(3600));
    let core = free_port();
    let mocks = runtime.block_on(start_mocks(core, token));
    let m = Mocks {
        addr: System::ALL.map(|s| mocks.addr(s)),
    };
    let config = dir.path().join("serve.toml");
    let mut toml = format!(
        "listen = \"{core}\"\ndata = \"{}\"\n[engine]\nsnapshot_every = {SNAPSHOT_EVERY}\nbackoff_base = \"20ms\"\nbackoff_cap = \"200ms\"\n",
        data.display()
    );
    for s in System::ALL {
        let personality = if matches!(s, System::Erp | System::Mes) {
            "legacy"
        } else {
            "modern"
        };
        toml.push_str(&format!(
            "[targets.{s}]\nurl = \"http://{}\"\npersonality = \"{personality}\"\ncall_timeout = \"2s\"\n",
            m.at(s)
        ));
        if personality == "modern" {
            toml.push_str("poll_interval = \"20ms\"\n");
        }
    }
    std::fs::write(&config, toml).unwrap();

    let mut serving = serve(&config);
    // Rounds of the workload follow each other until the kills are done, so every kill lands
    // while the workload runs.
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        let addrs = m.addr;
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::Acquire) {
                workload(&Mocks { addr: addrs }, rounds);
                rounds += 1;
            }
            rounds
        })
    };
    let mut restart_ms_max = 0u128;
    let mut replayed_max = 0u64;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.between(10, 300)));
        serving.child.kill().unwrap(); // SIGKILL
        serving.child.wait().unwrap();
        let started = Instant::now();
        serving = serve(&config);
        restart_ms_max = restart_ms_max.max(started.elapsed().as_millis());
        replayed_max = replayed_max.max(replayed(&serving.recovery));
    }
    stop.store(true, Ordering::Release);
    let rounds = worker.join().expect("the workload finished");
    println!(
        "crash test: {kills} kills during {rounds} rounds of {LINES} NCs; slowest restart {restart_ms_max} ms; most records replayed after a snapshot {replayed_max}"
    );
    assert!(
        replayed_max <= 2 * SNAPSHOT_EVERY,
        "recovery replays at most about one snapshot interval: {replayed_max}"
    );

    // Every event was answered 2xx: the webhooks are all delivered, the feeds all read.
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in [System::Erp, System::Mes] {
        let stats = mocks.webhook_stats(s);
        while stats.delivered.load(Ordering::Relaxed) < stats.drained.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "{s}: webhooks left undelivered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for s in [System::Qms, System::Cmms] {
        let (_, page) = http(m.at(s), "GET", "/events?after=0", "").unwrap();
        let end = page["next"].as_u64().unwrap();
        let url = format!("http://{}", m.at(s));
        while plantloop_server::polling::load_cursor(&data, s, &url) < end {
            assert!(
                Instant::now() < deadline,
                "{s}: the feed was not read to its end"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // Judged from the ledgers, by the simulator's own checks.
    let ledgers: Vec<Ledger> = System::ALL
        .iter()
        .map(|&s| Ledger::from_entries(s, ledger(m.at(s))))
        .collect();
    let assets = (1..=rounds * LINES)
        .map(|k| {
            (
                StationId::new(format!("P1-L{k}-S1")).unwrap(),
                AssetId::new(format!("A-{k}")).unwrap(),
            )
        })
        .collect();
    let truth = LedgerTruth {
        erp: &ledgers[System::Erp.index()],
        qms: &ledgers[System::Qms.index()],
        cmms: &ledgers[System::Cmms.index()],
        mes: vec![("mes:P1".into(), &ledgers[System::Mes.index()])],
        assets,
    };
    for r in check_ledgers(&truth) {
        assert!(
            r.passed,
            "reproduce with PLANTLOOP_CRASH_SEED={seed}: {r:?}"
        );
        assert!(r.checked > 0, "{} checked nothing", r.id);
    }
    // And no idempotency key posted twice.
    for (s, l) in System::ALL.iter().zip(&ledgers) {
        let mut keys: Vec<&str> = l
            .entries()
            .iter()
            .filter(|e| e.origin == plantloop_mocks::Origin::Integration)
            .filter_map(|e| e.key.as_ref().map(|k| k.as_str()))
            .collect();
        let n = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(n, keys.len(), "{s} posted a key twice (seed {seed})");
    }
    drop(serving);
    runtime.block_on(mocks.shutdown()).unwrap();
}
