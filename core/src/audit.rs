//! The hash-chained audit log: which source event initiated each posting, through which causes.
//!
//! Each record's hash covers its content and the previous record's hash, so removing, reordering or
//! editing a record breaks the chain at that point. The engine emits records; the driver stores them.

use crate::call::{EventRef, IdempotencyKey};
use crate::model::System;
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// What an audit record attests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum AuditAction {
    /// The target confirmed the posting.
    Posted,
    /// A lookup found the posting already made (look before post).
    FoundExisting,
    /// The call went to the dead-letter queue.
    DeadLettered,
    /// A dead letter was put back in the outbox.
    Replayed,
}

impl AuditAction {
    /// The name the hash covers (the variant's name, as `{:?}` prints it).
    pub fn name(self) -> &'static str {
        match self {
            AuditAction::Posted => "Posted",
            AuditAction::FoundExisting => "FoundExisting",
            AuditAction::DeadLettered => "DeadLettered",
            AuditAction::Replayed => "Replayed",
        }
    }
}

/// One link of the audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// From 1, without gaps.
    pub seq: u64,
    pub at: Instant,
    pub action: AuditAction,
    pub target: System,
    /// The request's short name (`post_hold`, …).
    pub request: Cow<'static, str>,
    pub key: IdempotencyKey,
    /// The target's document number, for postings.
    pub receipt: Option<String>,
    /// Why it went to the dead-letter queue, for dead letters.
    pub reason: Option<String>,
    /// The source event that initiated the chain of effects.
    pub origin: EventRef,
    /// Every event that advanced the workflow to this step, oldest first (the origin included).
    pub causation: Vec<EventRef>,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev_hash: Digest,
    /// blake3 of this record's content and `prev_hash`.
    pub hash: Digest,
}

/// The version of the layout [`AuditRecord::compute_hash`] hashes.
const HASH_LAYOUT: u8 = 1;

/// A link's BLAKE3 hash: 32 bytes, written (in JSON, traces and `Display`) as 64 lower-case hex
/// digits. Kept raw, so that linking a record costs no allocation and no hex round trip.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

/// The hash the chain starts from (all zero).
pub const GENESIS: Digest = Digest([0; 32]);

impl Digest {
    /// The 64 lower-case hex digits.
    pub fn to_hex(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 64];
        for (pair, b) in hex.chunks_exact_mut(2).zip(&self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        hex
    }

    /// Reads 64 lower-case hex digits.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        let b = hex.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(Digest(out))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.to_hex()).expect("hex digits are ASCII"))
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = Cow::<'de, str>::deserialize(d)?;
        Digest::from_hex(&hex)
            .ok_or_else(|| serde::de::Error::custom("a hash is 64 lower-case hex digits"))
    }
}

impl AuditRecord {
    /// A record with neither receipt nor reason, for [`ChainHead::link`] to number and hash.
    pub(crate) fn unlinked(
        at: Instant,
        action: AuditAction,
        target: System,
        request: Cow<'static, str>,
        key: IdempotencyKey,
        origin: EventRef,
        causation: Vec<EventRef>,
    ) -> AuditRecord {
        AuditRecord {
            seq: 0,
            at,
            action,
            target,
            request,
            key,
            receipt: None,
            reason: None,
            origin,
            causation,
            prev_hash: GENESIS,
            hash: GENESIS,
        }
    }

    /// The hash of everything but `hash` itself.
    pub fn compute_hash(&self) -> Digest {
        self.compute_hash_with(&mut Vec::new())
    }

    /// [`AuditRecord::compute_hash`] with a scratch buffer. The record is laid out compactly and
    /// unambiguously, then hashed in one go: a layout version byte; `seq` and `at` as little-endian
    /// u64; the action and the target as one byte each; every text as its LEB128 length and UTF-8
    /// bytes (`request`, `key`, then `receipt` and `reason` each behind a present/absent byte, then
    /// the origin's source and id); the number of causes and each cause's source and id; and a zero
    /// byte and the previous hash's 32 bytes. (Layout 1 also allowed a previous hash that was not
    /// 64 hex digits, as text behind a marker byte; since hashes are [`Digest`]s there is none.)
    fn compute_hash_with(&self, buf: &mut Vec<u8>) -> Digest {
        #[inline]
        fn uleb(buf: &mut Vec<u8>, mut n: u64) {
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    buf.push(byte);
                    return;
                }
                buf.push(byte | 0x80);
            }
        }
        #[inline]
        fn text(buf: &mut Vec<u8>, s: &str) {
            uleb(buf, s.len() as u64);
            buf.extend_from_slice(s.as_bytes());
        }
        #[inline]
        fn optional(buf: &mut Vec<u8>, s: Option<&str>) {
            match s {
                None => buf.push(0),
                Some(s) => {
                    buf.push(1);
                    text(buf, s);
                }
            }
        }
        buf.clear();
        buf.push(HASH_LAYOUT);
        buf.extend_from_slice(&self.seq.to_le_bytes());
        buf.extend_from_slice(&self.at.as_micros().to_le_bytes());
        buf.push(self.action as u8);
        buf.push(self.target.index() as u8);
        text(buf, &self.request);
        text(buf, self.key.as_str());
        optional(buf, self.receipt.as_deref());
        optional(buf, self.reason.as_deref());
        text(buf, self.origin.source());
        text(buf, self.origin.id());
        uleb(buf, self.causation.len() as u64);
        for e in &self.causation {
            text(buf, e.source());
            text(buf, e.id());
        }
        buf.push(0);
        buf.extend_from_slice(&self.prev_hash.0);
        Digest(*blake3::hash(buf).as_bytes())
    }
}

/// Where a chain fails to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq}: {reason}")]
pub struct ChainError {
    pub seq: u64,
    pub reason: String,
}

/// Verifies a whole chain from the genesis: sequence without gaps, each `prev_hash` the previous
/// record's `hash`, each `hash` recomputed.
pub fn verify_chain<'a>(
    records: impl IntoIterator<Item = &'a AuditRecord>,
) -> Result<u64, ChainError> {
    let mut prev = GENESIS;
    let mut expect_seq = 1;
    for r in records {
        if r.seq != expect_seq {
            return Err(ChainError {
                seq: r.seq,
                reason: format!("expected sequence {expect_seq}"),
            });
        }
        if r.prev_hash != prev {
            return Err(ChainError {
                seq: r.seq,
                reason: "prev_hash does not match the previous record".into(),
            });
        }
        if r.compute_hash() != r.hash {
            return Err(ChainError {
                seq: r.seq,
                reason: "hash does not match the record's content".into(),
            });
        }
        prev = r.hash;
        expect_seq += 1;
    }
    Ok(expect_seq - 1)
}

/// The engine's end of the chain: the last sequence number and hash.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ChainHead {
    pub seq: u64,
    pub hash: Digest,
    #[serde(skip)]
    buf: Vec<u8>,
}

impl ChainHead {
    /// Fills in `seq`, `prev_hash` and `hash` and advances the head.
    pub fn link(&mut self, mut r: AuditRecord) -> AuditRecord {
        self.seq += 1;
        r.seq = self.seq;
        r.prev_hash = self.hash;
        r.hash = r.compute_hash_with(&mut self.buf);
        self.hash = r.hash;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> AuditRecord {
        AuditRecord {
            seq: 0,
            at: Instant::from_secs(i),
            action: AuditAction::Posted,
            target: System::Erp,
            request: "post_hold".into(),
            key: IdempotencyKey(format!("k{i}").into()),
            receipt: Some(format!("R{i}")),
            reason: None,
            origin: EventRef::new("/qms", format!("e{i}")),
            causation: vec![],
            prev_hash: GENESIS,
            hash: GENESIS,
        }
    }

    #[test]
    fn action_names_are_the_variant_names() {
        for a in [
            AuditAction::Posted,
            AuditAction::FoundExisting,
            AuditAction::DeadLettered,
            AuditAction::Replayed,
        ] {
            assert_eq!(a.name(), format!("{a:?}"));
        }
    }

    #[test]
    fn a_chain_verifies_and_an_edit_breaks_it() {
        let mut head = ChainHead::default();
        let mut chain: Vec<_> = (1..=5).map(|i| head.link(rec(i))).collect();
        assert_eq!(verify_chain(&chain), Ok(5));
        chain[2].receipt = Some("forged".into());
        assert_eq!(verify_chain(&chain).unwrap_err().seq, 3);
        chain[2].receipt = Some("R3".into());
        chain.remove(1);
        assert_eq!(verify_chain(&chain).unwrap_err().seq, 3);
    }

    #[test]
    fn every_field_is_covered_and_absent_differs_from_empty() {
        let mut head = ChainHead::default();
        let base = head.link(rec(1));
        type Edit = Box<dyn Fn(&mut AuditRecord)>;
        let edits: Vec<Edit> = vec![
            Box::new(|r| r.seq += 1),
            Box::new(|r| r.at = Instant::from_secs(99)),
            Box::new(|r| r.action = AuditAction::FoundExisting),
            Box::new(|r| r.target = System::Mes),
            Box::new(|r| r.request = "post_cost".into()),
            Box::new(|r| r.key = IdempotencyKey("k2".into())),
            Box::new(|r| r.receipt = None),
            Box::new(|r| r.receipt = Some(String::new())),
            Box::new(|r| r.reason = Some(String::new())),
            Box::new(|r| r.origin = EventRef::new(r.origin.source(), "other")),
            Box::new(|r| r.causation.push(r.origin.clone())),
            Box::new(|r| r.prev_hash = Digest([0xff; 32])),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut r = base.clone();
            edit(&mut r);
            assert_ne!(r.compute_hash(), base.hash, "edit {i} is not covered");
        }
        // Moving bytes between neighbouring texts changes the hash too.
        let mut a = base.clone();
        a.request = "ab".into();
        a.key = IdempotencyKey("c".into());
        let mut b = base.clone();
        b.request = "a".into();
        b.key = IdempotencyKey("bc".into());
        assert_ne!(a.compute_hash(), b.compute_hash());
    }

    #[test]
    fn a_digest_reads_and_writes_as_lower_case_hex() {
        let raw = *blake3::hash(b"x").as_bytes();
        let hex = blake3::hash(b"x").to_hex();
        assert_eq!(Digest(raw).to_string(), hex.as_str());
        assert_eq!(Digest::from_hex(&hex), Some(Digest(raw)));
        assert_eq!(GENESIS.to_string(), "0".repeat(64));
        assert_eq!(Digest::from_hex(&"A".repeat(64)), None, "lower case only");
        assert_eq!(Digest::from_hex("abc"), None);
        let json = serde_json::to_string(&Digest(raw)).unwrap();
        assert_eq!(json, format!("\"{hex}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), Digest(raw));
        let err = serde_json::from_str::<Digest>("\"not hex\"").unwrap_err();
        assert!(
            err.to_string().contains("64 lower-case hex digits"),
            "{err}"
        );
    }
}
