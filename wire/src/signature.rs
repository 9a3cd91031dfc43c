//! The signature of webhook deliveries, shared by the mocks that send them (`plantloop-mocks-http`)
//! and the core that receives them (`POST /webhooks/{system}`), so the two cannot drift apart.
//!
//! `X-Plantloop-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` with
//! `X-Plantloop-Timestamp: <UNIX seconds>`. The timestamp is inside the MAC, and a receiver refuses
//! one outside its tolerance, so a captured delivery cannot be replayed later; within the
//! tolerance a receiver remembers the signatures it took (see the core's replay guard).

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-plantloop-signature";
/// Header carrying the UNIX time (seconds) the signature was made; part of the MAC.
pub const TIMESTAMP_HEADER: &str = "x-plantloop-timestamp";
/// Header carrying the delivery attempt number (1 for the first).
pub const ATTEMPT_HEADER: &str = "x-plantloop-attempt";
/// How far a signature's timestamp may be from the receiver's clock, by default.
pub const TOLERANCE_SECS_DEFAULT: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac_for(secret: &[u8], timestamp: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The value of [`SIGNATURE_HEADER`] for `body` signed at `timestamp` (UNIX seconds).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac_for(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Why a webhook delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} is malformed")]
    MalformedHeader(&'static str),
    #[error("timestamp {timestamp} is more than {tolerance_secs}s from now ({now})")]
    Stale {
        timestamp: u64,
        now: u64,
        tolerance_secs: u64,
    },
    #[error("signature does not match the body")]
    Mismatch,
}

/// A delivery whose signature checked out: what a receiver's replay guard remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedDelivery {
    /// The signed UNIX time (seconds).
    pub timestamp: u64,
    /// The MAC: one per timestamp and body, so a replayed delivery repeats it.
    pub tag: [u8; 32],
}

/// Checks a delivery against `secret` at `now` (UNIX seconds): the MAC over timestamp and body must
/// match (compared in constant time) and the timestamp must lie within `tolerance_secs` of `now`.
pub fn verify_signature_at(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    verify_delivery(secret, headers, body, now, tolerance_secs).map(|_| ())
}

/// [`verify_signature_at`], returning the signed timestamp and the MAC for a replay guard.
pub fn verify_delivery(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<SignedDelivery, SignatureError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .ok_or(SignatureError::MissingHeader(name))?
            .to_str()
            .map_err(|_| SignatureError::MalformedHeader(name))
    };
    let timestamp: u64 = header(TIMESTAMP_HEADER)?
        .trim()
        .parse()
        .map_err(|_| SignatureError::MalformedHeader(TIMESTAMP_HEADER))?;
    let tag: [u8; 32] = header(SIGNATURE_HEADER)?
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .and_then(|t| t.try_into().ok())
        .ok_or(SignatureError::MalformedHeader(SIGNATURE_HEADER))?;
    mac_for(secret, timestamp, body)
        .verify_slice(&tag)
        .map_err(|_| SignatureError::Mismatch)?;
    if timestamp.abs_diff(now) > tolerance_secs {
        return Err(SignatureError::Stale {
            timestamp,
            now,
            tolerance_secs,
        });
    }
    Ok(SignedDelivery { timestamp, tag })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ts: u64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
        h.insert(SIGNATURE_HEADER, sig.parse().unwrap());
        h
    }

    #[test]
    fn a_signature_binds_secret_body_and_time() {
        let body = br#"{"id":"e1"}"#;
        let h = headers(1_000, &sign(b"s3cret", 1_000, body));
        assert_eq!(verify_signature_at(b"s3cret", &h, body, 1_010, 300), Ok(()));
        assert_eq!(
            verify_signature_at(b"s3cret", &h, br#"{"id":"e2"}"#, 1_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature_at(b"other", &h, body, 1_010, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify_signature_at(b"s3cret", &h, body, 2_000, 300),
            Err(SignatureError::Stale { .. })
        ));
        // Moving the timestamp forward to pass the window breaks the MAC.
        let replay = headers(2_000, &sign(b"s3cret", 1_000, body));
        assert_eq!(
            verify_signature_at(b"s3cret", &replay, body, 2_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature_at(b"s3cret", &HeaderMap::new(), body, 0, 300),
            Err(SignatureError::MissingHeader(TIMESTAMP_HEADER))
        );
        let bad = headers(1_000, "sha256=zz");
        assert_eq!(
            verify_signature_at(b"s3cret", &bad, body, 1_000, 300),
            Err(SignatureError::MalformedHeader(SIGNATURE_HEADER))
        );
    }

    #[test]
    fn a_future_timestamp_beyond_the_tolerance_is_stale_too() {
        let body = b"{}";
        let h = headers(2_000, &sign(b"k", 2_000, body));
        assert!(matches!(
            verify_signature_at(b"k", &h, body, 1_000, 300),
            Err(SignatureError::Stale { .. })
        ));
        assert_eq!(verify_signature_at(b"k", &h, body, 1_800, 300), Ok(()));
    }
}
