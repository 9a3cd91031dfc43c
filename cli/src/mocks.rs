//! `plantloop mocks`: the four mock systems of record over HTTP until interrupted.

use crate::EXIT_BAD_INPUT;
use clap::Args;
use plantloop_core::System;
use plantloop_mocks::Personality;
use plantloop_mocks_http::{BASE_PORT_DEFAULT, MocksConfig, OAuthSettings, RunningMocks};
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct MocksArgs {
    /// ERP listens on 127.0.0.1:P, QMS on P+1, CMMS on P+2, MES on P+3 (0: four free ports).
    #[arg(long, value_name = "P", default_value_t = BASE_PORT_DEFAULT)]
    base_port: u16,
    /// A system's personality, e.g. `erp=legacy`; systems erp, qms, cmms, mes; kinds modern,
    /// legacy, saas (default modern). Repeat for several systems.
    #[arg(long = "personality", value_name = "SYSTEM=KIND", value_parser = parse_personality)]
    personalities: Vec<(System, Personality)>,
    /// Require OAuth 2.0 client-credentials tokens on the integration routes: each system serves
    /// POST /oauth/token for the client printed at start (tokens live an hour).
    #[arg(long)]
    auth: bool,
}

/// Parses `SYSTEM=KIND`; clap names the flag in its error.
fn parse_personality(s: &str) -> Result<(System, Personality), String> {
    let (system, kind) = s
        .split_once('=')
        .ok_or_else(|| format!("expected SYSTEM=KIND, e.g. erp=legacy, got {s:?}"))?;
    let names = |all: &mut dyn Iterator<Item = &'static str>| all.collect::<Vec<_>>().join(", ");
    let system = System::parse(system.trim()).ok_or_else(|| {
        format!(
            "unknown system {system:?} (one of {})",
            names(&mut System::ALL.iter().map(|s| s.as_str()))
        )
    })?;
    let kind = Personality::parse(kind.trim()).ok_or_else(|| {
        format!(
            "unknown personality {kind:?} (one of {})",
            names(&mut Personality::ALL.iter().map(|p| p.as_str()))
        )
    })?;
    Ok((system, kind))
}

/// Checks what clap cannot: each system at most once, and room for four ports.
fn validate(args: &MocksArgs) -> Result<(), String> {
    for (i, (system, _)) in args.personalities.iter().enumerate() {
        if args.personalities[..i].iter().any(|(s, _)| s == system) {
            return Err(format!("--personality: {system} is given more than once"));
        }
    }
    if args.base_port > u16::MAX - 3 {
        return Err(format!(
            "--base-port {}: the four servers need ports up to P+3 ≤ 65535",
            args.base_port
        ));
    }
    Ok(())
}

pub fn main(args: MocksArgs) -> ExitCode {
    if let Err(e) = validate(&args) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_BAD_INPUT);
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
    runtime.block_on(serve(args))
}

async fn serve(args: MocksArgs) -> ExitCode {
    let mut config = MocksConfig {
        base_port: args.base_port,
        ..MocksConfig::default()
    };
    for &(system, personality) in &args.personalities {
        config.system_mut(system).personality = personality;
    }
    let oauth = args.auth.then(OAuthSettings::generated);
    for s in System::ALL {
        config.system_mut(s).oauth = oauth.clone();
    }
    let mocks = match plantloop_mocks_http::serve(config).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: --base-port {}: {e}", args.base_port);
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // Register the signal handlers before printing the URLs: a caller that reads them and at once
    // sends SIGINT must get a clean stop, not the default disposition (killed by the signal).
    let interrupted = match Interrupts::register() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: cannot install the signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = mocks.shutdown_handle();
    tokio::spawn(async move {
        interrupted.recv().await;
        handle.shutdown();
    });
    print_urls(&mocks, &args.personalities);
    if let Some(o) = &oauth {
        println!(
            "auth  POST <url>/oauth/token  grant_type=client_credentials client_id={} client_secret={}",
            o.client_id, o.client_secret
        );
    }
    println!("serving until interrupted (Ctrl-C); OpenAPI at <url>/openapi.json");
    match mocks.wait().await {
        Ok(()) => {
            // Stdout may be gone by now (a closed pipe): that is no reason to fail.
            let _ = writeln!(std::io::stdout(), "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: a mock server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_urls(mocks: &RunningMocks, personalities: &[(System, Personality)]) {
    for (system, _) in mocks.addrs() {
        let personality = personalities
            .iter()
            .find(|(s, _)| *s == system)
            .map_or(Personality::default(), |(_, p)| *p);
        println!(
            "{:<5}{:<8}{}",
            system.as_str(),
            personality.as_str(),
            mocks.base_url(system)
        );
    }
}

/// Ctrl-C (SIGINT) and, on Unix, SIGTERM: registered when built, so none is missed afterwards.
pub(crate) struct Interrupts {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Interrupts {
    pub(crate) fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Interrupts {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Interrupts {})
        }
    }

    /// Resolves on the first of the signals.
    pub(crate) async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personalities_parse_and_name_what_is_wrong() {
        assert_eq!(
            parse_personality("erp=legacy"),
            Ok((System::Erp, Personality::Legacy))
        );
        assert_eq!(
            parse_personality("mes=saas"),
            Ok((System::Mes, Personality::Saas))
        );
        let e = parse_personality("plm=modern").unwrap_err();
        assert!(e.contains("unknown system \"plm\""), "{e}");
        let e = parse_personality("qms=vintage").unwrap_err();
        assert!(e.contains("unknown personality \"vintage\""), "{e}");
        assert!(
            parse_personality("erp")
                .unwrap_err()
                .contains("SYSTEM=KIND")
        );
    }

    #[test]
    fn a_system_twice_or_no_room_for_four_ports_is_refused() {
        let args = |base_port, personalities| MocksArgs {
            base_port,
            personalities,
            auth: false,
        };
        let twice = vec![
            (System::Erp, Personality::Legacy),
            (System::Erp, Personality::Saas),
        ];
        let e = validate(&args(8480, twice)).unwrap_err();
        assert!(e.starts_with("--personality: erp"), "{e}");
        let e = validate(&args(65533, vec![])).unwrap_err();
        assert!(e.starts_with("--base-port 65533"), "{e}");
        assert_eq!(validate(&args(65532, vec![])), Ok(()));
    }
}
