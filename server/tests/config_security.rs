//! `[auth]` and `[tls]` in the configuration file: paths relative to the file, and a bad key or
//! certificate file (missing, not PEM, too short a secret) is an error naming file, line and key.

use plantloop_server::ServeConfig;
use plantloop_server::auth::KeyKind;

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn auth_and_tls_sections_are_read_with_paths_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serve.toml");
    write(dir.path(), "hs.secret", &"s".repeat(40));
    write(
        dir.path(),
        "serve.toml",
        "[auth]\nissuer = \"https://idp.example\"\naudience = \"line-1\"\nleeway = \"0s\"\nhs256_secret_files = [\"hs.secret\"]\n[tls]\ncert = \"c.pem\"\nkey = \"/abs/k.pem\"\n",
    );
    let c = ServeConfig::parse(
        file.to_str().unwrap(),
        &std::fs::read_to_string(&file).unwrap(),
    )
    .unwrap();
    assert_eq!(c.auth.issuer, "https://idp.example");
    assert_eq!(c.auth.audience, "line-1");
    assert_eq!(c.auth.leeway_s, 0);
    assert_eq!(c.auth.keys[0].kind, KeyKind::Hs256);
    assert_eq!(c.auth.keys[0].path, dir.path().join("hs.secret"));
    assert!(!c.auth.uses_local_secret());
    let tls = c.tls.unwrap();
    assert_eq!(tls.cert.path, dir.path().join("c.pem"));
    assert_eq!(tls.key.path, std::path::PathBuf::from("/abs/k.pem"));
    assert!(tls.client_ca.is_none());
}

#[test]
fn bad_key_files_name_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serve.toml");
    let load = |text: &str| {
        write(dir.path(), "serve.toml", text);
        ServeConfig::load(&file).unwrap_err()
    };
    let shown = file.display().to_string();

    let e = load("[auth]\nrs256_public_keys = [\"keys/missing.pem\"]\n");
    assert_eq!(
        (e.line, e.key.as_str()),
        (2, "auth.rs256_public_keys[0]"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{shown}:2: auth.rs256_public_keys[0]: ")),
        "{e}"
    );
    assert!(
        e.message.contains("missing.pem") && e.message.contains("cannot read"),
        "{e}"
    );

    write(
        dir.path(),
        "bad.pem",
        "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
    );
    let e = load("[auth]\naudience = \"x\"\n\nes256_public_keys = [\n  \"bad.pem\",\n]\n");
    assert_eq!(
        (e.line, e.key.as_str()),
        (5, "auth.es256_public_keys[0]"),
        "{e}"
    );
    assert!(
        e.message.contains("bad.pem") && e.message.contains("PEM"),
        "{e}"
    );

    write(dir.path(), "short.secret", "too short\n");
    let e = load("[auth]\nhs256_secret_files = [\"short.secret\"]\n");
    assert_eq!(e.key, "auth.hs256_secret_files[0]", "{e}");
    assert!(e.message.contains("at least 32 bytes"), "{e}");

    let e = load("[tls]\ncert = \"nowhere.pem\"\nkey = \"nowhere.key\"\n");
    assert_eq!((e.line, e.key.as_str()), (2, "tls.cert"), "{e}");

    let e = load("[auth]\nkeys = []\n");
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("keys"), "{e}");
    let e = load("[tls]\ncert = \"c.pem\"\n");
    assert!(e.message.contains("key"), "{e}");
    let e = load("[auth]\nleeway = \"soon\"\n");
    assert_eq!(e.key, "auth.leeway", "{e}");
}
