//! `plantloop mocks` (spec/cli.md): four servers on P..P+3, their URLs printed, bad flags exit 2
//! naming the flag, and a clean stop on Ctrl-C (SIGINT); with `--auth`, integration calls need a
//! token from the client printed at start.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::spawn_with_lines;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plantloop"))
}

/// A running `plantloop mocks`, killed if the test ends early.
struct Mocks {
    child: Child,
    /// (system, personality, base URL) as printed, in ERP, QMS, CMMS, MES order.
    printed: Vec<(String, String, String)>,
    /// The lines printed after the URLs.
    rest: mpsc::Receiver<String>,
}

impl Drop for Mocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Started {
    Serving(Mocks),
    /// It exited before printing four URLs: its code and stderr.
    Exited(Option<i32>, String),
}

/// Starts `plantloop mocks ARGS` and reads the four URL lines it prints.
fn start(args: &[&str]) -> Started {
    let mut cmd = bin();
    cmd.arg("mocks").args(args);
    let (mut child, rx) = spawn_with_lines(cmd);
    let mut printed = vec![];
    let deadline = Instant::now() + Duration::from_secs(20);
    while printed.len() < 4 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let cols: Vec<&str> = line.split_whitespace().collect();
                if let [system, personality, url] = cols[..]
                    && url.starts_with("http://")
                {
                    printed.push((system.into(), personality.into(), url.into()));
                }
            }
            Err(_) => {
                let mut stderr = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .ok();
                let code = child.wait().unwrap().code();
                return Started::Exited(code, stderr);
            }
        }
    }
    Started::Serving(Mocks {
        child,
        printed,
        rest: rx,
    })
}

fn serving(args: &[&str]) -> Mocks {
    match start(args) {
        Started::Serving(m) => m,
        Started::Exited(code, stderr) => panic!("exited {code:?}: {stderr}"),
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req.push_str("content-type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Sends SIGINT (what Ctrl-C sends) and waits for the exit code.
fn interrupt(mut m: Mocks) -> Option<i32> {
    let pid = m.child.id().to_string();
    let ok = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = m.child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "still running 10 s after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_four_systems_with_openapi_and_capabilities_until_interrupted() {
    let m = serving(&["--base-port", "0", "--personality", "erp=legacy"]);
    let systems: Vec<&str> = m.printed.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(systems, ["erp", "qms", "cmms", "mes"]);
    let personalities: Vec<&str> = m.printed.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(personalities, ["legacy", "modern", "modern", "modern"]);
    for (system, personality, url) in &m.printed {
        let (status, body) = http(url, "GET", "/openapi.json", &[], "");
        assert_eq!(status, 200, "{system}");
        let doc = json(&body);
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{system}: {doc}"
        );
        let (status, body) = http(url, "GET", "/health", &[], "");
        assert_eq!(status, 200);
        let health = json(&body);
        assert_eq!(
            (health["system"].as_str(), health["personality"].as_str()),
            (Some(system.as_str()), Some(personality.as_str()))
        );
    }
    // A capability route: ERP posts a quality hold on a released order, and the legacy lookup finds it.
    let erp = &m.printed[0].2;
    let order = r#"{"id":"PO-1","material":"M-1","line":"P1-L1","plant":"P1","serials":{"first":1,"last":100}}"#;
    assert_eq!(http(erp, "POST", "/production-orders", &[], order).0, 201);
    let hold = r#"{"id":"H-1","order":"PO-1","material":"M-1","serials":{"first":10,"last":20},"nc":"NC-1"}"#;
    let (status, body) = http(
        erp,
        "POST",
        "/quality-holds",
        &[("idempotency-key", "w1/NC-1/hold")],
        hold,
    );
    assert_eq!(status, 201, "{body}");
    let receipt = json(&body)["receipt"].clone();
    assert!(receipt.as_str().unwrap().starts_with("ERP-"), "{receipt}");
    let (status, body) = http(erp, "GET", "/postings?reference=w1%2FNC-1%2Fhold", &[], "");
    assert_eq!((status, json(&body)["receipt"].clone()), (200, receipt));
    // MES stops a station it was told about.
    let mes = &m.printed[3].2;
    assert_eq!(
        http(mes, "POST", "/stations", &[], r#"{"station":"P1-L1-S1"}"#).0,
        200
    );
    let (status, body) = http(
        mes,
        "POST",
        "/stations/P1-L1-S1/stop",
        &[("idempotency-key", "w1/NC-1/stop")],
        r#"{"reason":"NC-1"}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(interrupt(m), Some(0), "a clean stop on Ctrl-C");
}

#[test]
fn with_auth_integration_calls_need_a_token_from_the_printed_client() {
    let m = serving(&["--base-port", "0", "--auth"]);
    // auth  POST <url>/oauth/token  grant_type=client_credentials client_id=ID client_secret=SECRET
    let deadline = Instant::now() + Duration::from_secs(10);
    let auth = loop {
        let line = m
            .rest
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("an auth line");
        if line.starts_with("auth ") {
            break line;
        }
    };
    let field = |name: &str| {
        auth.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {auth:?}"))
            .to_owned()
    };
    let (id, secret) = (field("client_id"), field("client_secret"));
    let form = [("content-type", "application/x-www-form-urlencoded")];
    for (system, _, url) in &m.printed {
        // A capability route without a token, or with one the system did not issue: 401.
        // (Every system serves the legacy lookup, `GET /postings`.)
        let lookup = |token: Option<&str>| {
            let bearer = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = bearer
                .iter()
                .map(|b| ("authorization", b.as_str()))
                .collect();
            http(url, "GET", "/postings?reference=k-1", &headers, "")
        };
        let (status, body) = lookup(None);
        assert_eq!(status, 401, "{system}: {body}");
        assert_eq!(json(&body)["field"], "authorization", "{system}: {body}");
        assert_eq!(lookup(Some("made-up")).0, 401, "{system}");
        // The token route refuses a wrong secret, and issues a token for the printed client.
        let wrong = format!("grant_type=client_credentials&client_id={id}&client_secret=nope");
        let (status, body) = http(url, "POST", "/oauth/token", &form, &wrong);
        assert_eq!(status, 401, "{system}: {body}");
        assert_eq!(json(&body)["error"], "invalid_client");
        let right = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
        let (status, body) = http(url, "POST", "/oauth/token", &form, &right);
        assert_eq!(status, 200, "{system}: {body}");
        let token = json(&body)["access_token"].as_str().unwrap().to_owned();
        assert_eq!(json(&body)["expires_in"], 3600, "{body}");
        let (status, body) = lookup(Some(&token));
        assert_eq!(status, 200, "{system}: {body}");
        assert_eq!(json(&body)["receipt"], serde_json::Value::Null, "{body}");
    }
    // With a token, a posting lands; the operator routes need none.
    let erp = &m.printed[0].2;
    let order = r#"{"id":"PO-1","material":"M-1","line":"P1-L1","plant":"P1","serials":{"first":1,"last":100}}"#;
    assert_eq!(http(erp, "POST", "/production-orders", &[], order).0, 201);
    let right = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let (_, body) = http(erp, "POST", "/oauth/token", &form, &right);
    let bearer = format!("Bearer {}", json(&body)["access_token"].as_str().unwrap());
    let hold = r#"{"id":"H-1","order":"PO-1","material":"M-1","serials":{"first":10,"last":20},"nc":"NC-1"}"#;
    let key = ("idempotency-key", "w1/NC-1/hold");
    assert_eq!(http(erp, "POST", "/quality-holds", &[key], hold).0, 401);
    let (status, body) = http(
        erp,
        "POST",
        "/quality-holds",
        &[key, ("authorization", &bearer)],
        hold,
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(interrupt(m), Some(0));
}

#[test]
fn the_base_port_places_erp_qms_cmms_mes_on_consecutive_ports() {
    // The OS hands out a free port; its three neighbours may be taken, so try a few.
    for _ in 0..20 {
        let base = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base > u16::MAX - 3 {
            continue;
        }
        match start(&["--base-port", &base.to_string()]) {
            Started::Serving(m) => {
                let urls: Vec<String> = m.printed.iter().map(|p| p.2.clone()).collect();
                let expected: Vec<String> = (0..4)
                    .map(|i| format!("http://127.0.0.1:{}", base + i))
                    .collect();
                assert_eq!(urls, expected);
                let (status, body) = http(&urls[2], "GET", "/health", &[], "");
                assert_eq!(
                    (status, json(&body)["system"].clone()),
                    (200, "cmms".into())
                );
                assert_eq!(interrupt(m), Some(0));
                return;
            }
            Started::Exited(code, stderr) => {
                assert_eq!(code, Some(2), "{stderr}");
                assert!(stderr.contains("cannot bind"), "{stderr}");
            }
        }
    }
    panic!("found no four free consecutive ports in 20 tries");
}

#[test]
fn a_port_in_use_exits_2_naming_the_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let Started::Exited(code, stderr) = start(&["--base-port", &port]) else {
        panic!("served on a port in use");
    };
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("--base-port {port}")), "{stderr}");
    assert!(stderr.contains("erp: cannot bind"), "{stderr}");
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, needles) in [
        (
            vec!["--personality", "plm=modern"],
            vec!["--personality", "unknown system \"plm\""],
        ),
        (
            vec!["--personality", "erp=vintage"],
            vec!["--personality", "unknown personality \"vintage\""],
        ),
        (
            vec!["--personality", "erp"],
            vec!["--personality", "SYSTEM=KIND"],
        ),
        (
            vec!["--personality", "erp=legacy", "--personality", "erp=saas"],
            vec!["--personality", "erp is given more than once"],
        ),
        (vec!["--base-port", "70000"], vec!["--base-port"]),
        (vec!["--base-port", "65534"], vec!["--base-port 65534"]),
        (vec!["--bogus"], vec!["--bogus"]),
    ] {
        let o = bin().arg("mocks").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: {n:?} not in {stderr}");
        }
    }
}
