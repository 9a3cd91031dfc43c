//! TLS and mutual TLS for the gateway (rustls with the aws-lc-rs provider, tokio-rustls).
//!
//! ```toml
//! [tls]
//! cert = "tls/server.pem"          # the certificate chain, PEM, leaf first
//! key = "tls/server.key"           # its private key, PEM (PKCS#8, PKCS#1 or SEC1)
//! client_ca = "tls/clients-ca.pem" # optional: clients must present a certificate it signed
//! ```
//!
//! [`TlsListener`] is an `axum::serve::Listener`: one task accepts TCP connections and runs each
//! handshake on its own task (at most [`HANDSHAKES_MAX`] at once, each within
//! [`HANDSHAKE_TIMEOUT`]), so a slow or silent client never holds up the others; a failed
//! handshake (a plaintext client, no client certificate under mTLS) just closes that connection.

use crate::config::{ConfigError, Locator, Place};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use toml::Spanned;

/// Handshakes in progress at once; more connections wait to be accepted.
pub const HANDSHAKES_MAX: usize = 1_024;
/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for the server to take them.
const ACCEPTED_QUEUE_MAX: usize = 64;

/// A file named in `[tls]`, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFile {
    pub path: PathBuf,
    pub place: Place,
}

/// The `[tls]` section, as read (files not opened yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert: TlsFile,
    pub key: TlsFile,
    /// With it, mutual TLS: a client without a certificate it signed is refused.
    pub client_ca: Option<TlsFile>,
}

impl TlsConfig {
    /// The rustls server configuration: the files read and checked (the key must match the
    /// certificate). Errors name the file, line and key of the path at fault.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = read_certs(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key.path).map_err(|e| {
            ConfigError::at(
                &self.key.place,
                format!("{}: no private key in PEM: {e}", self.key.path.display()),
            )
        })?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::at(&self.cert.place, e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in read_certs(ca)? {
                    roots.add(c).map_err(|e| {
                        ConfigError::at(&ca.place, format!("{}: {e}", ca.path.display()))
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| {
                            ConfigError::at(&ca.place, format!("{}: {e}", ca.path.display()))
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            ConfigError::at(
                &self.key.place,
                format!(
                    "{} does not fit {}: {e}",
                    self.key.path.display(),
                    self.cert.path.display()
                ),
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read_certs(f: &TlsFile) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let shown = f.path.display();
    let bad = |e: &dyn std::fmt::Display| ConfigError::at(&f.place, format!("{shown}: {e}"));
    // Read first, so a missing file is told apart from bad PEM.
    let bytes = std::fs::read(&f.path).map_err(|e| bad(&format!("cannot read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(&"holds no PEM certificate (BEGIN CERTIFICATE)"));
    }
    Ok(certs)
}

/// `[tls]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    cert: Spanned<PathBuf>,
    key: Spanned<PathBuf>,
    client_ca: Option<Spanned<PathBuf>>,
}

impl RawTls {
    pub(crate) fn into_config(self, at: &Locator<'_>) -> TlsConfig {
        let file = |f: Spanned<PathBuf>, key: &str| TlsFile {
            place: at.place(Some(f.span()), format!("tls.{key}")),
            path: at.path(f.get_ref()),
        };
        TlsConfig {
            cert: file(self.cert, "cert"),
            key: file(self.key, "key"),
            client_ca: self.client_ca.map(|c| file(c, "client_ca")),
        }
    }
}

/// A TCP listener whose connections are TLS, for `axum::serve`.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener`; the listener closes when this is dropped.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(ACCEPTED_QUEUE_MAX);
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(TlsListener {
            accepted,
            local,
            task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let permits = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, as axum's own loop does.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = tx.closed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(c) => c,
            // The accept task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
