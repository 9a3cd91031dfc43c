//! TLS and mutual TLS with certificates made here (rcgen): a client trusting the CA is served; a
//! plaintext client is not; under mTLS a client without a certificate, or with one the CA did not
//! sign, is refused and one with a certificate the CA signed is served.

use plantloop_core::System;
use plantloop_server::config::{Place, ServeConfig};
use plantloop_server::tls::{TlsConfig, TlsFile};
use plantloop_server::{Service, start_on};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    /// A leaf certificate for `names`, signed by the CA: (certificate PEM, key PEM).
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn file(dir: &Path, name: &str, text: &str) -> TlsFile {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    TlsFile {
        path,
        place: Place::default(),
    }
}

async fn start(data: &Path, tls: TlsConfig) -> Service {
    let mut config = ServeConfig {
        data: data.to_path_buf(),
        tls: Some(tls),
        ..ServeConfig::default()
    };
    for s in System::ALL {
        config.target_mut(s).url = Some("http://127.0.0.1:9".into());
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(listener, config).await.unwrap()
}

/// A client trusting `ca`, presenting `identity` (certificate PEM, key PEM) if given.
fn client(ca: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_a_client_that_trusts_the_ca_and_refuses_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("test CA");
    let (cert, key) = pki.leaf(&["localhost", "127.0.0.1"]);
    let tls = TlsConfig {
        cert: file(dir.path(), "server.pem", &cert),
        key: file(dir.path(), "server.key", &key),
        client_ca: None,
    };
    let service = start(&dir.path().join("data"), tls).await;
    let url = service.url();
    assert!(url.starts_with("https://"), "{url}");
    let c = client(&pki.ca.pem(), None);
    let r = c.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The gate still applies over TLS.
    let r = c.get(format!("{url}/dead-letters")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Plain HTTP to the TLS port gets no answer.
    let plain = format!("http://{}/health", service.addr());
    let r = reqwest::Client::new().get(plain).send().await;
    assert!(r.is_err(), "plaintext was answered: {r:?}");
    // A client that does not trust the CA refuses the server.
    let other = Pki::new("another CA");
    let r = client(&other.ca.pem(), None)
        .get(format!("{url}/health"))
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
    service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate_the_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let servers = Pki::new("server CA");
    let clients = Pki::new("client CA");
    let (cert, key) = servers.leaf(&["localhost", "127.0.0.1"]);
    let tls = TlsConfig {
        cert: file(dir.path(), "server.pem", &cert),
        key: file(dir.path(), "server.key", &key),
        client_ca: Some(file(dir.path(), "clients.pem", &clients.ca.pem())),
    };
    let service = start(&dir.path().join("data"), tls).await;
    let health = format!("{}/health", service.url());
    let ca = servers.ca.pem();

    let r = client(&ca, None).get(&health).send().await;
    assert!(r.is_err(), "served without a client certificate: {r:?}");

    let stranger = Pki::new("stranger CA");
    let (c, k) = stranger.leaf(&["mallory"]);
    let r = client(&ca, Some((&c, &k))).get(&health).send().await;
    assert!(
        r.is_err(),
        "served a certificate the CA did not sign: {r:?}"
    );

    let (c, k) = clients.leaf(&["edge-agent-1"]);
    let r = client(&ca, Some((&c, &k)))
        .get(&health)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    service.stop().await.unwrap();
}

/// A bad certificate or key file is an error naming the file.
#[test]
fn bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("test CA");
    let (cert, _) = pki.leaf(&["localhost"]);
    let (_, other_key) = pki.leaf(&["other"]);
    let at = |key: &str| Place {
        file: "serve.toml".into(),
        line: 7,
        key: key.into(),
    };
    let tls = |cert: TlsFile, key: TlsFile| TlsConfig {
        cert,
        key,
        client_ca: None,
    };
    let mut good_cert = file(dir.path(), "c.pem", &cert);
    good_cert.place = at("tls.cert");
    let mut missing = file(dir.path(), "k.pem", "");
    missing.path = dir.path().join("nowhere.pem");
    missing.place = at("tls.key");
    let e = tls(good_cert.clone(), missing).server_config().unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (7, "tls.key"), "{e}");
    assert!(e.to_string().contains("nowhere.pem"), "{e}");
    let mut not_pem = file(dir.path(), "bad.pem", "hello");
    not_pem.place = at("tls.cert");
    let mut key = file(dir.path(), "o.key", &other_key);
    key.place = at("tls.key");
    let e = tls(not_pem, key.clone()).server_config().unwrap_err();
    assert_eq!(e.key, "tls.cert", "{e}");
    assert!(e.message.contains("bad.pem"), "{e}");
    // A key that does not fit the certificate.
    let e = tls(good_cert, key).server_config().unwrap_err();
    assert_eq!(e.key, "tls.key", "{e}");
}
