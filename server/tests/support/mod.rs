//! A plant in a box for the service's tests: the four mock systems on free loopback ports, their
//! webhooks pointed at the service's `/events` (a SaaS system's at `/webhooks/{system}`, signed
//! with [`WEBHOOK_SECRET`]), the service on a data folder, and helpers that
//! play the operators (release an order, fail inspections, complete a work order, approve a
//! disposition) and read the mocks' ledgers.
#![allow(dead_code)]

use plantloop_core::System;
use plantloop_mocks::Personality;
use plantloop_mocks_http::{MocksConfig, OAuthSettings, RunningMocks, Subscriber, WebhookConfig};
use plantloop_server::auth::Scope;
use plantloop_server::auth::local::LocalIssuer;
use plantloop_server::config::{self, ServeConfig};
use plantloop_server::oauth::{ClientSecret, OAuthClientConfig};
use plantloop_server::{Service, start_on};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;

pub const STATION: &str = "P1-L1-S3";
pub const ORDER: &str = "PO-1";
/// The secret SaaS mocks sign their webhooks with, and the service checks them with.
pub const WEBHOOK_SECRET: &[u8] = b"plantloop-test-webhook-secret";

/// Mocks whose events go to `service` (by webhook), and the service's configuration.
pub struct Plant {
    pub mocks: RunningMocks,
    pub service_addr: SocketAddr,
    pub config: ServeConfig,
    /// Sends the admin token (every scope) with each request.
    pub client: reqwest::Client,
    /// Signs tokens the service trusts (the data folder's secret).
    pub issuer: LocalIssuer,
}

/// The principal of the mock `system`'s webhook deliveries.
pub fn mock_principal(system: System) -> String {
    format!("mock-{}", system.as_str())
}

fn personality(p: Personality) -> config::Personality {
    match p {
        Personality::Modern => config::Personality::Modern,
        Personality::Legacy => config::Personality::Legacy,
        Personality::Saas => config::Personality::Saas,
    }
}

impl Plant {
    /// Binds the service's address, starts the mocks with webhooks to it, and configures the
    /// service (data in `data`) to call them.
    pub async fn new(data: &Path, personalities: &[(System, Personality)]) -> (Plant, TcpListener) {
        Self::configured(data, personalities, false, &[]).await
    }

    /// [`Plant::new`] where the systems in `oauth` require client-credentials tokens, and the
    /// service is configured to get them.
    pub async fn with_oauth(
        data: &Path,
        personalities: &[(System, Personality)],
        oauth: &[(System, OAuthSettings)],
    ) -> (Plant, TcpListener) {
        Self::configured(data, personalities, false, oauth).await
    }

    /// [`Plant::new`], but with `poll` the service reads the event feeds of the systems that are
    /// not SaaS every 20 ms, and they send no webhooks.
    pub async fn with(
        data: &Path,
        personalities: &[(System, Personality)],
        poll: bool,
    ) -> (Plant, TcpListener) {
        Self::configured(data, personalities, poll, &[]).await
    }

    /// [`Plant::new`] with polling ([`Plant::with`]) and OAuth ([`Plant::with_oauth`]).
    pub async fn configured(
        data: &Path,
        personalities: &[(System, Personality)],
        poll: bool,
        oauth: &[(System, OAuthSettings)],
    ) -> (Plant, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service_addr = listener.local_addr().unwrap();
        let issuer = LocalIssuer::open(data, "plantloop", "plantloop").unwrap();
        let mut mc = MocksConfig {
            base_port: 0,
            ..MocksConfig::default()
        };
        for s in System::ALL {
            let set = mc.system_mut(s);
            if let Some((_, p)) = personalities.iter().find(|(x, _)| *x == s) {
                set.personality = *p;
            }
            let (url, scope) = if set.personality == Personality::Saas {
                (
                    format!("http://{service_addr}/webhooks/{s}"),
                    Scope::WebhooksWrite,
                )
            } else {
                (format!("http://{service_addr}/events"), Scope::EventsWrite)
            };
            let polled = poll && set.personality != Personality::Saas;
            set.webhooks = WebhookConfig {
                subscribers: if polled {
                    vec![]
                } else {
                    vec![Subscriber {
                        url,
                        secret: WEBHOOK_SECRET.to_vec(),
                        bearer_token: Some(issuer.mint(
                            &mock_principal(s),
                            &[scope],
                            Duration::from_secs(3600),
                        )),
                    }]
                },
                backoff_initial: Duration::from_millis(20),
                backoff_max: Duration::from_millis(200),
                poll_interval: Duration::from_millis(20),
                ..WebhookConfig::default()
            };
            set.oauth = oauth.iter().find(|(x, _)| *x == s).map(|(_, o)| o.clone());
        }
        let mocks = plantloop_mocks_http::serve(mc).await.unwrap();
        let mut config = ServeConfig {
            data: data.to_path_buf(),
            listen: service_addr,
            snapshot_every: 7,
            ..ServeConfig::default()
        };
        for s in System::ALL {
            let t = config.target_mut(s);
            t.url = Some(mocks.base_url(s));
            if let Some((_, p)) = personalities.iter().find(|(x, _)| *x == s) {
                t.personality = personality(*p);
            }
            if t.personality == config::Personality::Saas {
                t.webhook_secret = Some(config::Secret(WEBHOOK_SECRET.to_vec()));
            } else if poll {
                t.poll_interval = Some(plantloop_core::Duration::from_millis(20));
            }
            t.call_timeout = plantloop_core::Duration::from_secs(2);
            if let Some((_, o)) = oauth.iter().find(|(x, _)| *x == s) {
                t.oauth = Some(OAuthClientConfig {
                    token_url: mocks.token_url(s).unwrap(),
                    client_id: o.client_id.clone(),
                    client_secret: ClientSecret::Value(o.client_secret.clone()),
                    scope: None,
                });
            }
        }
        config.engine.retry.backoff_base = plantloop_core::Duration::from_millis(20);
        config.engine.retry.backoff_cap = plantloop_core::Duration::from_millis(200);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", issuer.admin_token()).parse().unwrap(),
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .default_headers(headers)
            .build()
            .unwrap();
        (
            Plant {
                mocks,
                service_addr,
                config,
                client,
                issuer,
            },
            listener,
        )
    }

    /// Starts the service on `listener` (the first start) or on its address again (a restart).
    pub async fn start(&self, listener: Option<TcpListener>) -> Service {
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(self.service_addr).await.unwrap(),
        };
        start_on(listener, self.config.clone()).await.unwrap()
    }

    pub fn url(&self, s: System) -> String {
        self.mocks.base_url(s)
    }

    pub fn service_url(&self) -> String {
        format!("http://{}", self.service_addr)
    }

    pub async fn post(&self, url: String, body: Value) -> (u16, Value) {
        let r = self.client.post(url).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, url: String) -> (u16, Value) {
        let r = self.client.get(url).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Integration postings of `system`'s ledger as (idempotency key, posting kind).
    pub async fn postings(&self, system: System) -> Vec<(String, String)> {
        let (status, body) = self.get(format!("{}/ledger", self.url(system))).await;
        assert_eq!(status, 200);
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["origin"] == "integration")
            .map(|e| {
                let kind = e["posting"]
                    .as_object()
                    .and_then(|o| o.keys().next().cloned())
                    .or_else(|| e["posting"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                (e["key"].as_str().unwrap_or("").to_owned(), kind)
            })
            .collect()
    }

    /// Waits until `system`'s ledger holds a posting under each key.
    pub async fn wait_for_keys(&self, system: System, keys: &[String]) {
        for _ in 0..500 {
            let have = self.postings(system).await;
            if keys.iter().all(|k| have.iter().any(|(h, _)| h == k)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let have = self.postings(system).await;
        panic!("{system}: waited for {keys:?}, the ledger holds {have:?}");
    }

    /// The asset at the station, the station in MES, and order PO-1 (serials 1–100) released.
    pub async fn set_up_line(&self) {
        let placement =
            json!({ "asset": "A-3", "station": STATION, "line": "P1-L1", "plant": "P1" });
        let (s, b) = self
            .post(format!("{}/assets", self.url(System::Cmms)), placement)
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .post(
                format!("{}/stations", self.url(System::Mes)),
                json!({ "station": STATION }),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        // The asset's placement must reach the core before the NC that needs it: wait for the
        // master data to be applied in MES.
        self.wait_for_keys(System::Mes, &["w5/mes/asset/A-3/v1".into()])
            .await;
        let order = json!({ "id": ORDER, "material": "M-1", "line": "P1-L1", "plant": "P1", "serials": { "first": 1, "last": 100 } });
        let (s, b) = self
            .post(
                format!("{}/production-orders", self.url(System::Erp)),
                order,
            )
            .await;
        assert_eq!(s, 201, "{b}");
        self.wait_for_keys(System::Mes, &[format!("w6/dispatch/{ORDER}")])
            .await;
    }

    /// Three torque failures at the station: QMS raises an NC. Returns its id.
    pub async fn raise_nc(&self) -> String {
        let mut nc = Value::Null;
        for serial in 10..13 {
            let r = json!({ "id": format!("I-{serial}"), "station": STATION, "serial": serial, "characteristic": "torque", "passed": false });
            let (s, b) = self
                .post(format!("{}/inspection-results", self.url(System::Qms)), r)
                .await;
            assert_eq!(s, 201, "{b}");
            nc = b["nc"].clone();
        }
        nc.as_str()
            .expect("the third failure raises an NC")
            .to_owned()
    }

    /// The technician completes the NC's work order with one part and one labour entry.
    pub async fn complete_work_order(&self, nc: &str) {
        let done = json!({
            "root_cause": "worn torque head",
            "parts": [{ "part": "HEAD", "quantity": 2, "unit_cost": 41250 }],
            "labour": [{ "technician": "T-1", "minutes": 90, "rate_per_hour": 6000 }]
        });
        let (s, b) = self
            .post(
                format!("{}/work-orders/WO-{nc}/complete", self.url(System::Cmms)),
                done,
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }

    /// The quality engineer approves a release disposition.
    pub async fn approve_disposition(&self, nc: &str) {
        let d = json!({ "decision": "release", "approved_by": "qe-1" });
        let (s, b) = self
            .post(
                format!("{}/nonconformances/{nc}/disposition", self.url(System::Qms)),
                d,
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
}

/// The W1 keys per target of the NC.
pub fn w1_keys(nc: &str) -> [(System, Vec<String>); 3] {
    [
        (
            System::Erp,
            vec![format!("w1/{nc}/hold"), format!("w1/{nc}/order-status")],
        ),
        (System::Cmms, vec![format!("w1/{nc}/work-order")]),
        (System::Mes, vec![format!("w1/{nc}/stop")]),
    ]
}

/// The W2 keys of the NC's work order.
pub fn w2_keys(nc: &str) -> [(System, Vec<String>); 2] {
    let wo = format!("WO-{nc}");
    [
        (
            System::Erp,
            vec![
                format!("w2/{wo}/goods-issue/0"),
                format!("w2/{wo}/cost/parts"),
                format!("w2/{wo}/cost/labour"),
            ],
        ),
        (System::Qms, vec![format!("w2/{wo}/maintenance")]),
    ]
}

/// The W3 keys of the NC.
pub fn w3_keys(nc: &str) -> [(System, Vec<String>); 2] {
    [
        (
            System::Erp,
            vec![format!("w3/{nc}/release"), format!("w3/{nc}/order-status")],
        ),
        (System::Mes, vec![format!("w3/{nc}/resume")]),
    ]
}

/// Asserts that no ledger holds two integration postings under one key.
pub async fn assert_each_key_posted_once(plant: &Plant) {
    for s in System::ALL {
        let postings = plant.postings(s).await;
        let mut keys: Vec<&str> = postings.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "{s} posted a key twice: {postings:?}");
    }
}

/// The sum of the samples of `name` (`name{…} value` lines) whose labels contain each of
/// `labels` (`target="erp"`), from a Prometheus text exposition.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name && labels.iter().all(|x| rest.contains(x)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

impl Plant {
    /// The service's `GET /metrics` text.
    pub async fn metrics(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.service_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        r.text().await.unwrap()
    }
}
