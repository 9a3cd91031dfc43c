//! Starting and stopping the service: the data folder, recovery, the engine thread and the
//! HTTP gateway.
//!
//! The data folder holds `journal.sqlite` (the inputs: the truth), `audit.sqlite` (the stored
//! audit chain), `engine-seed` (the seed of the engine's jitter RNG, written once: replaying
//! the journal through an engine with another seed would not rebuild the same state) and, when
//! no key is configured, `auth-secret` (the service's own token secret, mode 0600).

use crate::audit_store::AuditStore;
use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::driver::{Driver, Msg, Status};
use crate::http::{Gateway, router};
use crate::journal::SqliteJournal;
use crate::metrics::Metrics;
use crate::oauth::TokenSource;
use crate::outbound::Outbound;
use crate::polling::Poller;
use crate::tls::TlsListener;
use crate::webhooks::Webhooks;
use plantloop_core::durable::{DurableEngine, Recovery};
use plantloop_core::model::System;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The journal's file name in the data folder.
pub const JOURNAL_FILE: &str = "journal.sqlite";
/// The audit store's file name in the data folder.
pub const AUDIT_FILE: &str = "audit.sqlite";
/// The engine seed's file name in the data folder.
pub const SEED_FILE: &str = "engine-seed";

/// A running service.
pub struct Service {
    addr: SocketAddr,
    recovery: Recovery,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    engine: Option<std::thread::JoinHandle<()>>,
    engine_tx: mpsc::Sender<Msg>,
    tls: bool,
    pollers: Vec<JoinHandle<()>>,
}

/// Stops a [`Service`] from elsewhere (a signal handler); cheap to clone.
#[derive(Clone)]
pub struct StopHandle(watch::Sender<bool>);

impl StopHandle {
    /// Stops accepting requests; the service then syncs and ends.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Service {
    /// Where the gateway listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://ADDR`, or `https://ADDR` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
    /// What recovery found at start.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Waits until the service is stopped (through a [`StopHandle`]): the gateway stops accepting
    /// and finishes the requests it holds, then the engine syncs and its thread ends.
    pub async fn wait(mut self) -> Result<(), String> {
        let served = (&mut self.http)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        // A poller stopped between the engine's answer and its cursor's write only reads again.
        for p in self.pollers.drain(..) {
            p.abort();
        }
        let _ = self.engine_tx.send(Msg::Stop);
        if let Some(t) = self.engine.take() {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|_| "the engine thread panicked".to_owned())?;
        }
        served
    }

    /// Stops the service and waits for it.
    pub async fn stop(self) -> Result<(), String> {
        self.stop.send_replace(true);
        self.wait().await
    }
}

/// Opens the data folder, recovers the engine from its journal and starts serving; returns once
/// the engine is ready (`GET /ready` answers 200). Every
/// target needs a base URL. Fails (naming the file) when the journal cannot be opened, is held
/// by another process or does not recover, and when the address cannot be bound.
pub async fn start(config: ServeConfig) -> Result<Service, String> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    start_on(listener, config).await
}

/// [`start`] on a listener bound already (`config.listen` is ignored): for a caller that must
/// know the service's address before it starts, such as mocks sending it webhooks.
pub async fn start_on(listener: TcpListener, config: ServeConfig) -> Result<Service, String> {
    let mut base_urls: [String; 4] = Default::default();
    for s in System::ALL {
        base_urls[s.index()] = config.target(s).url.clone().ok_or_else(|| {
            format!(
                "targets.{}.url is not set (give it in the config file, or use --mocks)",
                s.as_str()
            )
        })?;
    }
    std::fs::create_dir_all(&config.data).map_err(|e| {
        format!(
            "{}: cannot create the data folder: {e}",
            config.data.display()
        )
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (verifier, _) = config.auth.verifier(&config.data)?;
    let tls = match &config.tls {
        Some(t) => Some(t.server_config().map_err(|e| e.to_string())?),
        None => None,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let status = Arc::new(Status::default());
    let metrics = Arc::new(Metrics::new());
    let mut tokens: [Option<Arc<TokenSource>>; 4] = Default::default();
    for s in System::ALL {
        if let Some(o) = &config.target(s).oauth {
            tokens[s.index()] = Some(Arc::new(TokenSource::new(client.clone(), o.clone())?));
        }
    }
    let outbound = Outbound::new(
        client.clone(),
        base_urls.clone(),
        tokio::runtime::Handle::current(),
        tx.clone(),
        metrics.clone(),
    )
    .with_oauth(tokens);
    // Recovery runs on the engine thread; the gateway answers /health meanwhile.
    let (recovered_tx, recovered_rx) = oneshot::channel();
    let engine = {
        let status = status.clone();
        let config = config.clone();
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name("plantloop-engine".into())
            .spawn(move || match recover(&config) {
                Ok((engine, audit, recovery)) => {
                    let clock = Clock::start(engine.engine().now());
                    let driver = Driver {
                        engine,
                        audit,
                        outbound,
                        clock,
                        status,
                        deliveries: Vec::new(),
                        metrics,
                    };
                    driver.run(rx, move |r| {
                        let _ = recovered_tx.send(r.map(|()| recovery));
                    });
                }
                Err(e) => {
                    let _ = recovered_tx.send(Err(e));
                }
            })
            .map_err(|e| format!("cannot start the engine thread: {e}"))?
    };
    let (stop, mut stopped) = watch::channel(false);
    let app = router(Gateway {
        engine: tx.clone(),
        status: status.clone(),
        auth: Arc::new(verifier),
        webhooks: Arc::new(Webhooks::new(&config)),
        metrics: metrics.clone(),
    });
    let with_tls = tls.is_some();
    let http = tokio::spawn(async move {
        use axum::serve::ListenerExt;
        let stopped = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        match tls {
            Some(tls) => {
                let listener = TlsListener::new(listener, tls)?;
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            None => {
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
        }
    });
    let mut service = Service {
        addr,
        recovery: Recovery::default(),
        stop,
        http,
        engine: Some(engine),
        engine_tx: tx.clone(),
        tls: with_tls,
        pollers: vec![],
    };
    match recovered_rx.await {
        Ok(Ok(recovery)) => {
            service.recovery = recovery;
            // Feeds are read once the engine is ready: the first events go to a recovered engine.
            for s in System::ALL {
                let Some(interval) = config.target(s).poll_interval else {
                    continue;
                };
                let poller = Poller {
                    system: s,
                    url: base_urls[s.index()].clone(),
                    interval: std::time::Duration::from_micros(interval.as_micros()),
                    data: config.data.clone(),
                    client: client.clone(),
                    engine: tx.clone(),
                    metrics: metrics.clone(),
                };
                service
                    .pollers
                    .push(tokio::spawn(poller.run(service.stop.subscribe())));
            }
            Ok(service)
        }
        Ok(Err(e)) => {
            let _ = service.stop().await;
            Err(e)
        }
        Err(_) => {
            let _ = service.stop().await;
            Err("the engine thread ended during recovery".into())
        }
    }
}

type Recovered = (DurableEngine<SqliteJournal>, AuditStore, Recovery);

fn recover(config: &ServeConfig) -> Result<Recovered, String> {
    let seed = seed(&config.data)?;
    let journal = SqliteJournal::open(config.data.join(JOURNAL_FILE), config.sync)
        .map_err(|e| e.to_string())?;
    let audit = AuditStore::open(&config.data.join(AUDIT_FILE))?;
    let stored = audit.last_seq()?;
    let (engine, recovery) = DurableEngine::open_after_audit(
        journal,
        config.engine_config(),
        seed,
        config.snapshot_every,
        stored,
    )
    .map_err(|e| format!("{}: {e}", config.data.join(JOURNAL_FILE).display()))?;
    Ok((engine, audit, recovery))
}

/// The engine seed: read from the data folder, or made and written there on first start.
fn seed(data: &Path) -> Result<u64, String> {
    let path = data.join(SEED_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{}: not a number: {:?}", path.display(), text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut h = blake3::Hasher::new_derive_key("plantloop engine seed v1");
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            h.update(&nanos.to_le_bytes());
            h.update(&std::process::id().to_le_bytes());
            let mut b = [0u8; 8];
            b.copy_from_slice(&h.finalize().as_bytes()[..8]);
            let seed = u64::from_le_bytes(b);
            let tmp = data.join(format!("{SEED_FILE}.tmp"));
            std::fs::write(&tmp, format!("{seed}\n"))
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
            Ok(seed)
        }
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
    }
}
