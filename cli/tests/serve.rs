//! `plantloop serve` as a user runs it: `--mocks` prints every URL and closes the loop between
//! the four mock systems; SIGTERM stops it with exit 0 and a restart continues from the journal;
//! a bad configuration file exits 2 naming file, line and key.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::spawn_with_lines;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plantloop"))
}

/// A running `plantloop serve`, killed if the test ends early.
struct Serving {
    child: Child,
    lines: Vec<String>,
    rest: mpsc::Receiver<String>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    /// The URL printed on the line starting with `name`.
    fn url(&self, name: &str) -> String {
        self.lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
            .unwrap_or_else(|| panic!("no {name} URL in {:?}", self.lines))
            .to_owned()
    }

    /// The admin token printed at start (`TOKEN=…`).
    fn token(&self) -> String {
        self.lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("TOKEN="))
            .unwrap_or_else(|| panic!("no admin token in {:?}", self.lines))
            .to_owned()
    }

    /// Sends SIGTERM; returns the exit code and the lines printed after.
    fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code();
            }
            assert!(
                Instant::now() < deadline,
                "still running 10 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let after = self.rest.try_iter().collect();
        (code, after)
    }
}

fn serve(args: &[&str]) -> Serving {
    let mut cmd = bin();
    cmd.arg("serve").args(args);
    let (mut child, rx) = spawn_with_lines(cmd);
    let mut lines = vec![];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with("serving until interrupted") => break,
            Ok(l) => lines.push(l),
            Err(_) => {
                let mut stderr = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .ok();
                panic!("plantloop serve did not start: {lines:?} {stderr}");
            }
        }
    }
    Serving {
        child,
        lines,
        rest: rx,
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(url: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_as(url, method, path, body, None)
}

/// [`http`] with `Authorization: Bearer <token>`.
fn http_as(url: &str, method: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

/// Waits until `GET url path` answers a body containing `needle`.
fn wait_for(url: &str, path: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = http(url, "GET", path, "");
        if body.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url}{path} never showed {needle}: {body}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn serve_with_mocks_closes_the_loop_stops_on_sigterm_and_continues_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    // QMS as a SaaS system: its events (the NC) come by signed webhook to /webhooks/qms.
    let config = data.path().join("serve.toml");
    std::fs::write(&config, "[targets.qms]\npersonality = \"saas\"\n").unwrap();
    let config = config.to_str().unwrap();
    let s = serve(&[
        "--mocks",
        "--config",
        config,
        "--data",
        dir,
        "--listen",
        "127.0.0.1:0",
    ]);
    let core = s.url("core");
    assert!(
        s.lines
            .iter()
            .any(|l| l.starts_with("qms") && l.contains(&format!("{core}/webhooks/qms"))),
        "{:?}",
        s.lines
    );
    let (erp, qms, cmms, mes) = (s.url("erp"), s.url("qms"), s.url("cmms"), s.url("mes"));
    assert!(
        s.lines.iter().any(|l| l.contains("a new journal")),
        "{:?}",
        s.lines
    );
    assert_eq!(http(&core, "GET", "/health", "").0, 200);
    assert_eq!(
        http(&core, "GET", "/ready", "").0,
        401,
        "/ready needs a token"
    );
    assert_eq!(http_as(&core, "GET", "/ready", "", Some(&s.token())).0, 200);
    let metrics = s.url("metrics");
    assert_eq!(metrics, format!("{core}/metrics"));
    let placement = r#"{"asset":"A-3","station":"P1-L1-S3","line":"P1-L1","plant":"P1"}"#;
    assert_eq!(http(&cmms, "POST", "/assets", placement).0, 201);
    assert_eq!(
        http(&mes, "POST", "/stations", r#"{"station":"P1-L1-S3"}"#).0,
        200
    );
    wait_for(&mes, "/ledger", "w5/mes/asset/A-3/v1");
    let order = r#"{"id":"PO-1","material":"M-1","line":"P1-L1","plant":"P1","serials":{"first":1,"last":100}}"#;
    assert_eq!(http(&erp, "POST", "/production-orders", order).0, 201);
    wait_for(&mes, "/ledger", "w6/dispatch/PO-1");
    for serial in 10..13 {
        let r = format!(
            r#"{{"id":"I-{serial}","station":"P1-L1-S3","serial":{serial},"characteristic":"torque","passed":false}}"#
        );
        assert_eq!(http(&qms, "POST", "/inspection-results", &r).0, 201);
    }
    wait_for(&erp, "/ledger", "w1/NC-000001/hold");
    wait_for(&mes, "/ledger", "w1/NC-000001/stop");
    let (status, _) = http(&core, "GET", "/metrics", "");
    assert_eq!(status, 401, "/metrics needs a token");
    let (status, text) = http_as(&core, "GET", "/metrics", "", Some(&s.token()));
    assert_eq!(status, 200);
    assert!(
        text.contains("plantloop_calls_total{target=\"mes\",outcome=\"done\"}"),
        "{text}"
    );
    assert!(
        !text.contains("plantloop_webhooks_refused_total{"),
        "{text}"
    );
    let (code, after) = s.terminate();
    assert_eq!(code, Some(0), "{after:?}");

    // The journal is kept: a restart recovers it (and a new set of mocks starts empty).
    let s = serve(&["--mocks", "--data", dir, "--listen", "127.0.0.1:0"]);
    assert!(
        s.lines.iter().any(|l| l.contains("recovered")),
        "{:?}",
        s.lines
    );
    let audit = "/audit?correlation=NC-000001";
    let (status, body) = http(&s.url("core"), "GET", audit, "");
    assert_eq!(status, 401, "no token: {body}");
    // The admin token printed at start, and a curl line using it.
    assert!(
        s.lines
            .iter()
            .any(|l| l.contains("curl -H \"Authorization: Bearer $TOKEN\"")),
        "{:?}",
        s.lines
    );
    let (status, body) = http_as(&s.url("core"), "GET", audit, "", Some(&s.token()));
    assert_eq!(status, 200);
    assert!(body.contains("w1/NC-000001/hold"), "{body}");
    // The NC came from the mock QMS's webhook, under its own token.
    assert!(body.contains(r#""principal":"mock-qms""#), "{body}");
    assert_eq!(s.terminate().0, Some(0));
}

#[test]
fn a_bad_config_file_exits_2_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serve.toml");
    std::fs::write(
        &path,
        "[targets.erp]\nurl = \"http://127.0.0.1:1\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let o = bin()
        .args(["serve", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8(o.stderr).unwrap();
    let want = format!("error: {}:3: targets.erp", path.display());
    assert!(stderr.starts_with(&want), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");
    // No target URLs and no --mocks: exit 2 naming the key.
    let o = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert!(stderr.contains("targets.erp.url is not set"), "{stderr}");
    // A key file that is not there: exit 2 naming file, line and key, before anything starts.
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[auth]\nes256_public_keys = [\"idp.pem\"]\n",
    )
    .unwrap();
    let o = bin()
        .args(["serve", "--mocks", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8(o.stderr).unwrap();
    let want = format!("error: {}:3: auth.es256_public_keys[0]: ", path.display());
    assert!(stderr.starts_with(&want), "{stderr}");
    assert!(stderr.contains("idp.pem: cannot read"), "{stderr}");
}
