//! Starting and stopping the four servers.

use crate::app::{Shared, app};
use crate::fault::{FaultConfig, FaultLayer};
use crate::oauth::{OAuthSettings, TOKEN_PATH, TokenStore};
use crate::webhook::{Dispatcher, EventSource, WebhookConfig, WebhookStats};
use axum::Router;
use plantloop_core::{PlantId, StationId, System};
use plantloop_mocks::cmms::Cmms;
use plantloop_mocks::erp::Erp;
use plantloop_mocks::mes::{Mes, MesConfig};
use plantloop_mocks::qms::{NcRule, Qms};
use plantloop_mocks::{Personality, SystemOfRecord};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The port `plantloop mocks` starts from by default (ERP; QMS, CMMS and MES follow).
pub const BASE_PORT_DEFAULT: u16 = 8480;

/// One system's server settings.
#[derive(Clone, Debug, Default)]
pub struct SystemSettings {
    pub personality: Personality,
    /// Faults on the capability routes and on outbound events; `None`: none.
    pub faults: Option<FaultConfig>,
    /// Webhook subscribers and delivery bounds.
    pub webhooks: WebhookConfig,
    /// Require OAuth 2.0 client-credentials tokens on the capability routes (`--auth`).
    pub oauth: Option<OAuthSettings>,
}

/// Settings of all four servers.
#[derive(Clone, Debug)]
pub struct MocksConfig {
    /// The address to bind (default 127.0.0.1).
    pub host: IpAddr,
    /// ERP binds this port, QMS the next, then CMMS, then MES; 0 binds four free ports.
    pub base_port: u16,
    /// Per system, in [`System::ALL`] order (index with [`System::index`]).
    pub systems: [SystemSettings; 4],
    /// QMS's NC detection rule.
    pub nc_rule: NcRule,
    /// The plant the MES runs, its settings and initial stations (more via `POST /stations`).
    pub mes_plant: PlantId,
    pub mes_config: MesConfig,
    pub mes_stations: Vec<StationId>,
}

impl Default for MocksConfig {
    fn default() -> Self {
        MocksConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: BASE_PORT_DEFAULT,
            systems: Default::default(),
            nc_rule: NcRule::default(),
            mes_plant: PlantId::new("P1").expect("a valid id"),
            mes_config: MesConfig::default(),
            mes_stations: vec![],
        }
    }
}

impl MocksConfig {
    /// The settings of one system.
    pub fn system_mut(&mut self, system: System) -> &mut SystemSettings {
        &mut self.systems[system.index()]
    }
}

/// Stops the servers it was taken from; cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    /// Asks every server to stop: no new connections, held requests end, webhook retries stop.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// The four running servers.
pub struct RunningMocks {
    addrs: [SocketAddr; 4],
    stats: [Arc<WebhookStats>; 4],
    tokens: [Option<Arc<TokenStore>>; 4],
    shutdown: ShutdownHandle,
    tasks: Vec<JoinHandle<io::Result<()>>>,
}

impl RunningMocks {
    /// Where `system` listens.
    pub fn addr(&self, system: System) -> SocketAddr {
        self.addrs[system.index()]
    }

    /// `http://ADDR` of `system`.
    pub fn base_url(&self, system: System) -> String {
        format!("http://{}", self.addr(system))
    }

    /// Every system with its address, in [`System::ALL`] order.
    pub fn addrs(&self) -> [(System, SocketAddr); 4] {
        System::ALL.map(|s| (s, self.addr(s)))
    }

    /// `http://ADDR/oauth/token` of `system`, when it requires tokens.
    pub fn token_url(&self, system: System) -> Option<String> {
        self.tokens[system.index()]
            .as_ref()
            .map(|_| format!("{}{TOKEN_PATH}", self.base_url(system)))
    }

    /// Forgets every token `system` issued: its next call with one is refused with 401 (a
    /// revocation, or a token that expired sooner than it said).
    pub fn revoke_tokens(&self, system: System) {
        if let Some(t) = &self.tokens[system.index()] {
            t.revoke_all();
        }
    }

    /// Tokens `system` issued so far (0 when it requires none).
    pub fn tokens_issued(&self, system: System) -> u64 {
        self.tokens[system.index()]
            .as_ref()
            .map_or(0, |t| t.issued())
    }

    /// The webhook counters of `system`.
    pub fn webhook_stats(&self, system: System) -> &WebhookStats {
        &self.stats[system.index()]
    }

    /// A handle that stops the servers from elsewhere (a signal handler, say).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Waits until the servers stop (after a [`ShutdownHandle::shutdown`]); returns the first error.
    pub async fn wait(self) -> io::Result<()> {
        let mut first = Ok(());
        for t in self.tasks {
            let r = t.await.unwrap_or_else(|e| Err(io::Error::other(e)));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Stops the servers and waits for them.
    pub async fn shutdown(self) -> io::Result<()> {
        self.shutdown.shutdown();
        self.wait().await
    }
}

/// Serves the four mocks on `127.0.0.1:base_port..=base_port+3` (ERP, QMS, CMMS, MES; `base_port`
/// 0 binds four free ports) with the given personalities (the others modern), no faults and no
/// webhook subscribers. This is `plantloop mocks`.
pub async fn serve_all(
    base_port: u16,
    personalities: &[(System, Personality)],
) -> io::Result<RunningMocks> {
    let mut config = MocksConfig {
        base_port,
        ..MocksConfig::default()
    };
    for &(system, personality) in personalities {
        config.system_mut(system).personality = personality;
    }
    serve(config).await
}

/// Serves the four mocks as configured.
pub async fn serve(config: MocksConfig) -> io::Result<RunningMocks> {
    let (tx, rx) = watch::channel(false);
    let shutdown = ShutdownHandle(Arc::new(tx));
    // One client for every dispatcher: connections to subscribers are pooled.
    let client = reqwest::Client::builder()
        .build()
        .map_err(io::Error::other)?;
    let mut listeners = vec![];
    for system in System::ALL {
        let port = if config.base_port == 0 {
            0
        } else {
            config
                .base_port
                .checked_add(system.index() as u16)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("base port {} + 3 exceeds 65535", config.base_port),
                    )
                })?
        };
        let listener = TcpListener::bind((config.host, port)).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{system}: cannot bind {}:{port}: {e}", config.host),
            )
        })?;
        listeners.push(listener);
    }
    let settings = |s: System| &config.systems[s.index()];
    let tokens: [Option<Arc<TokenStore>>; 4] = System::ALL.map(|s| {
        settings(s)
            .oauth
            .clone()
            .map(|o| Arc::new(TokenStore::new(o)))
    });
    let mut started: Vec<(SocketAddr, Arc<WebhookStats>, JoinHandle<io::Result<()>>)> = vec![];
    for (system, listener) in System::ALL.into_iter().zip(listeners) {
        let set = settings(system);
        let (router, stats) = match system {
            System::Erp => system_app(
                Erp::new(set.personality),
                crate::operator::erp(),
                set,
                tokens[system.index()].clone(),
                &client,
                &rx,
            ),
            System::Qms => system_app(
                Qms::new(set.personality, config.nc_rule),
                crate::operator::qms(),
                set,
                tokens[system.index()].clone(),
                &client,
                &rx,
            ),
            System::Cmms => system_app(
                Cmms::new(set.personality),
                crate::operator::cmms(),
                set,
                tokens[system.index()].clone(),
                &client,
                &rx,
            ),
            System::Mes => system_app(
                Mes::new(
                    set.personality,
                    config.mes_plant.clone(),
                    config.mes_config,
                    config.mes_stations.clone(),
                ),
                crate::operator::mes(),
                set,
                tokens[system.index()].clone(),
                &client,
                &rx,
            ),
        };
        let addr = listener.local_addr()?;
        let task = tokio::spawn(run(listener, router, rx.clone()));
        started.push((addr, stats, task));
    }
    let mut addrs = [SocketAddr::from(([0, 0, 0, 0], 0)); 4];
    let mut stats = vec![];
    let mut tasks = vec![];
    for (i, (addr, s, t)) in started.into_iter().enumerate() {
        addrs[i] = addr;
        stats.push(s);
        tasks.push(t);
    }
    let stats: [Arc<WebhookStats>; 4] = stats
        .try_into()
        .unwrap_or_else(|_| unreachable!("four systems"));
    Ok(RunningMocks {
        addrs,
        stats,
        tokens,
        shutdown,
        tasks,
    })
}

/// The application of one system and its dispatcher.
fn system_app<M: SystemOfRecord + Send + 'static>(
    machine: M,
    operator: Router<Arc<Shared<M>>>,
    settings: &SystemSettings,
    oauth: Option<Arc<TokenStore>>,
    client: &reqwest::Client,
    shutdown: &watch::Receiver<bool>,
) -> (Router, Arc<WebhookStats>) {
    let webhook_only = machine.personality().webhook_only();
    let dispatched = !settings.webhooks.subscribers.is_empty();
    let shared = Arc::new(Shared::new(machine, !webhook_only, dispatched));
    let faults = settings
        .faults
        .as_ref()
        .filter(|f| !f.profile.rules.is_empty());
    // Without subscribers there is no dispatcher: every state change moves its events into the
    // pull feed, or (webhook-only) leaves them in the outbox, with nowhere to go.
    let stats = match &shared.wake {
        None => Arc::new(WebhookStats::default()),
        Some(wake) => {
            let s = shared.clone();
            let source: EventSource = Arc::new(move || s.next_event());
            let d = Dispatcher::spawn(
                source,
                wake.clone(),
                settings.webhooks.clone(),
                faults,
                client.clone(),
                shutdown.clone(),
            );
            d.stats().clone()
        }
    };
    let layer = faults.map(|f| FaultLayer::new(f.clone(), shutdown.clone()));
    (app(shared, operator, layer, oauth), stats)
}

async fn run(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}
