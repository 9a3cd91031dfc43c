//! The service's own signing secret, for when no key is configured: 32 random bytes generated
//! into the data folder (`auth-secret`, hex, file mode 0600) on first start and kept, so tokens
//! stay valid across restarts. With it the service mints the admin token it prints at start and
//! the tokens of in-process mocks. Deleting the file revokes every token minted with it.

use super::{Claims, Scope, ScopeClaim};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The secret's file name in the data folder.
pub const SECRET_FILE: &str = "auth-secret";
/// Random bytes in a generated secret.
pub const SECRET_BYTES: usize = 32;
/// How long the admin token printed at start is valid: a long time, since a person pastes it.
pub const ADMIN_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// The subject of the admin token.
pub const ADMIN_SUBJECT: &str = "admin";

/// Signs tokens with the data folder's secret.
pub struct LocalIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    audience: String,
    path: PathBuf,
}

impl LocalIssuer {
    /// Reads the data folder's secret, or generates and writes it (mode 0600). A secret file
    /// that others may read is refused, as ssh refuses such a key.
    pub fn open(data: &Path, issuer: &str, audience: &str) -> Result<LocalIssuer, String> {
        std::fs::create_dir_all(data)
            .map_err(|e| format!("{}: cannot create the data folder: {e}", data.display()))?;
        let path = data.join(SECRET_FILE);
        let shown = path.display();
        let secret = match std::fs::read_to_string(&path) {
            Ok(text) => {
                check_private(&path)?;
                hex::decode(text.trim())
                    .ok()
                    .filter(|s| s.len() >= SECRET_BYTES)
                    .ok_or_else(|| {
                        format!("{shown}: not a secret of {SECRET_BYTES} or more bytes in hex")
                    })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = vec![0u8; SECRET_BYTES];
                getrandom::fill(&mut secret)
                    .map_err(|e| format!("{shown}: no randomness for a secret: {e}"))?;
                write_private(&path, format!("{}\n", hex::encode(&secret)).as_bytes())
                    .map_err(|e| format!("{shown}: cannot write: {e}"))?;
                secret
            }
            Err(e) => return Err(format!("{shown}: cannot read: {e}")),
        };
        Ok(LocalIssuer {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            path,
        })
    }

    /// Where the secret is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn decoding_key(&self) -> DecodingKey {
        self.decoding.clone()
    }

    /// A token for `subject` granting `scopes`, valid for `lifetime` from now.
    pub fn mint(&self, subject: &str, scopes: &[Scope], lifetime: Duration) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.mint_at(subject, scopes, now, now.saturating_add(lifetime.as_secs()))
    }

    /// A token issued at `iat` expiring at `exp` (UNIX seconds): for tests of expiry.
    pub fn mint_at(&self, subject: &str, scopes: &[Scope], iat: u64, exp: u64) -> String {
        let claims = Claims {
            sub: subject.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp,
            iat: Some(iat),
            scope: ScopeClaim::Text(
                scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with a secret of 32 bytes cannot fail")
    }

    /// The admin token: every scope, [`ADMIN_TOKEN_LIFETIME`].
    pub fn admin_token(&self) -> String {
        self.mint(ADMIN_SUBJECT, &Scope::ALL, ADMIN_TOKEN_LIFETIME)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: others may read this secret (mode {:o}): chmod 600 it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalIssuer::open(dir.path(), "plantloop", "plantloop").unwrap();
        let b = LocalIssuer::open(dir.path(), "plantloop", "plantloop").unwrap();
        let t = a.admin_token();
        let v = super::super::Verifier::new(
            vec![(super::super::KeyKind::Hs256, b.decoding_key())],
            "plantloop",
            "plantloop",
            0,
        );
        let p = v.verify(&t).unwrap();
        assert_eq!(&*p.subject, ADMIN_SUBJECT);
        assert!(Scope::ALL.iter().all(|s| p.has(*s)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join(SECRET_FILE);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = LocalIssuer::open(dir.path(), "plantloop", "plantloop")
                .err()
                .unwrap();
            assert!(e.contains("chmod 600"), "{e}");
        }
    }
}
