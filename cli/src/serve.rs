//! `plantloop serve`: the integration core as a service over HTTP (`plantloop-server`), with the
//! four mock systems in-process under `--mocks`.

use crate::EXIT_BAD_INPUT;
use crate::mocks::Interrupts;
use clap::Args;
use plantloop_core::System;
use plantloop_mocks::Personality;
use plantloop_mocks_http::oauth::TOKEN_LIFETIME_DEFAULT;
use plantloop_mocks_http::{MocksConfig, OAuthSettings, RunningMocks, Subscriber, WebhookConfig};
use plantloop_server::auth::Scope;
use plantloop_server::auth::local::{ADMIN_TOKEN_LIFETIME, LocalIssuer};
use plantloop_server::config::{self, ServeConfig};
use plantloop_server::{Service, start_on};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::net::TcpListener;

#[derive(Args)]
pub struct ServeArgs {
    /// The configuration file (TOML): each target's URL and personality, the engine's limits.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data folder: journal, audit store (default ./plantloop-data, or the file's `data`).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The address to listen on (default 127.0.0.1:8470, or the file's `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Also serve the four mock systems on free loopback ports, send their events to this
    /// service by webhook and point the targets at them.
    #[arg(long)]
    mocks: bool,
}

pub fn main(args: ServeArgs) -> ExitCode {
    let mut config = match &args.config {
        Some(path) => match ServeConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        },
        None => ServeConfig::default(),
    };
    if let Some(d) = args.data {
        config.data = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if args.mocks {
        // The in-process mocks deliver with tokens of the data folder's secret.
        config.auth.trust_local_secret = true;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config, args.mocks))
}

fn mock_personality(p: config::Personality) -> Personality {
    match p {
        config::Personality::Modern => Personality::Modern,
        config::Personality::Legacy => Personality::Legacy,
        config::Personality::Saas => Personality::Saas,
    }
}

/// The four mocks on free loopback ports, each sending its events to `core` by webhook with a
/// token of its own (subject `mock-<system>`): a SaaS system's signed, to `/webhooks/{system}`
/// (scope `webhooks:write`), with the target's `webhook_secret` (one is made up and set in
/// `config` when the file gives none); the others' to `/events` (scope `events:write`).
async fn start_mocks(
    config: &mut ServeConfig,
    core: SocketAddr,
    issuer: &LocalIssuer,
) -> Result<RunningMocks, std::io::Error> {
    let mut mc = MocksConfig {
        base_port: 0,
        ..MocksConfig::default()
    };
    for s in System::ALL {
        let target = config.target_mut(s);
        let set = mc.system_mut(s);
        set.personality = mock_personality(target.personality);
        // A target configured for OAuth gets a mock that requires it, for the same client.
        if let Some(o) = &target.oauth {
            set.oauth = Some(OAuthSettings {
                client_id: o.client_id.clone(),
                client_secret: o.client_secret.read().map_err(std::io::Error::other)?,
                token_lifetime: TOKEN_LIFETIME_DEFAULT,
            });
        }
        let subject = format!("mock-{s}");
        let subscriber = if target.personality == config::Personality::Saas {
            let secret = target
                .webhook_secret
                .get_or_insert_with(|| config::Secret(made_up_secret(s)));
            Subscriber {
                url: format!("http://{core}/webhooks/{s}"),
                secret: secret.0.clone(),
                bearer_token: Some(issuer.mint(
                    &subject,
                    &[Scope::WebhooksWrite],
                    ADMIN_TOKEN_LIFETIME,
                )),
            }
        } else {
            Subscriber {
                url: format!("http://{core}/events"),
                secret: made_up_secret(s),
                bearer_token: Some(issuer.mint(
                    &subject,
                    &[Scope::EventsWrite],
                    ADMIN_TOKEN_LIFETIME,
                )),
            }
        };
        set.webhooks = WebhookConfig {
            subscribers: vec![subscriber],
            ..WebhookConfig::default()
        };
    }
    plantloop_mocks_http::serve(mc).await
}

/// A webhook secret for one run of `--mocks`: 128 bits from std's randomly keyed hasher (the
/// mocks and the service share it in memory only).
fn made_up_secret(system: System) -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for part in 0u8..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(system.as_str().as_bytes());
        h.write_u8(part);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.into_bytes()
}

async fn serve(mut config: ServeConfig, with_mocks: bool) -> ExitCode {
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: --listen {}: {e}", config.listen);
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let addr = listener.local_addr().unwrap_or(config.listen);
    if !addr.ip().is_loopback() && config.tls.is_none() {
        eprintln!(
            "warning: listening on {addr}, beyond this machine, without TLS: bearer tokens and events travel in clear (configure [tls])"
        );
    }
    let issuer = if config.auth.uses_local_secret() {
        match LocalIssuer::open(&config.data, &config.auth.issuer, &config.auth.audience) {
            Ok(i) => Some(i),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        }
    } else {
        None
    };
    let mocks = if let (true, Some(issuer)) = (with_mocks, &issuer) {
        match start_mocks(&mut config, addr, issuer).await {
            Ok(m) => {
                for s in System::ALL {
                    let token_url = m.token_url(s);
                    let t = config.target_mut(s);
                    t.url = Some(m.base_url(s));
                    if let (Some(o), Some(url)) = (&mut t.oauth, token_url) {
                        o.token_url = url;
                    }
                }
                Some(m)
            }
            Err(e) => {
                eprintln!("error: --mocks: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    // Before anything is printed: a caller that reads the URLs and at once sends SIGINT must get
    // a clean stop.
    let interrupted = match Interrupts::register() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: cannot install the signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let service = match start_on(listener, config.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(m) = mocks {
                let _ = m.shutdown().await;
            }
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    print_urls(&service, &config, mocks.is_some());
    print_auth(&service, &config, issuer.as_ref());
    println!("serving until interrupted (Ctrl-C)");
    let stop = service.stop_handle();
    tokio::spawn(async move {
        interrupted.recv().await;
        stop.stop();
    });
    let served = service.wait().await;
    if let Some(m) = mocks {
        let _ = m.shutdown().await;
    }
    match served {
        Ok(()) => {
            println!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_urls(service: &Service, config: &ServeConfig, mocks: bool) {
    let core = service.url();
    println!("core  {core}");
    println!("      POST {core}/events  (CloudEvents: structured, batched or binary)");
    println!(
        "      GET  {core}/health  {core}/ready  {core}/dead-letters  {core}/audit?correlation=ID"
    );
    println!("metrics {core}/metrics");
    for s in System::ALL {
        let t = config.target(s);
        let events_in = match (&t.webhook_secret, t.poll_interval) {
            (_, Some(every)) => format!("; events polled every {} ms", every.as_millis()),
            (Some(_), None) => format!("; signed webhooks to {core}/webhooks/{s}"),
            (None, None) => String::new(),
        };
        println!(
            "{:<5} {:<7} {}{}{}",
            s.as_str(),
            t.personality.as_str(),
            t.url.as_deref().unwrap_or("-"),
            if mocks {
                "  (mock; /ledger, /openapi.json)"
            } else {
                ""
            },
            events_in
        );
    }
    let r = service.recovery();
    let recovered = match (r.snapshot_lsn, r.replayed) {
        (None, 0) => "a new journal".to_owned(),
        (Some(lsn), n) => format!("recovered from the snapshot at {lsn} and {n} records after it"),
        (None, n) => format!("recovered by replaying {n} records"),
    };
    println!("data  {} ({recovered})", config.data.display());
}

/// How to call the service: the admin token and a curl line to paste, or whose tokens it takes.
fn print_auth(service: &Service, config: &ServeConfig, issuer: Option<&LocalIssuer>) {
    let core = service.url();
    match issuer {
        Some(issuer) => {
            println!(
                "auth  admin token (every scope, valid {} days; its secret is {}):",
                ADMIN_TOKEN_LIFETIME.as_secs() / 86_400,
                issuer.path().display()
            );
            println!("      TOKEN={}", issuer.admin_token());
            println!("      curl -H \"Authorization: Bearer $TOKEN\" {core}/dead-letters");
        }
        None => println!(
            "auth  bearer JWTs issued by {} for audience {}",
            config.auth.issuer, config.auth.audience
        ),
    }
    if let Some(t) = &config.tls {
        let mtls = if t.client_ca.is_some() {
            ", client certificates required"
        } else {
            ""
        };
        println!("tls   {}{mtls}", t.cert.path.display());
    }
}
