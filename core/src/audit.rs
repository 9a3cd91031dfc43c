//! The hash-chained audit log: which source event initiated each posting, through which causes.
//!
//! Each record's hash covers its content and the previous record's hash, so removing, reordering or
//! editing a record breaks the chain at that point. The engine emits records; the driver stores them.

use crate::call::{EventRef, IdempotencyKey};
use crate::model::System;
use crate::time::Instant;
use serde::{Deserialize, Serialize};

/// What an audit record attests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    pub request: String,
    pub key: IdempotencyKey,
    /// The target's document number, for postings.
    pub receipt: Option<String>,
    /// Why it went to the dead-letter queue, for dead letters.
    pub reason: Option<String>,
    /// The source event that initiated the chain of effects.
    pub origin: EventRef,
    /// Every event that advanced the workflow to this step, oldest first (the origin included).
    pub causation: Vec<EventRef>,
    /// Hash of the previous record (all zero for the first), hex.
    pub prev_hash: String,
    /// blake3 of this record's content and `prev_hash`, hex.
    pub hash: String,
}

/// The hash the chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditRecord {
    /// The hash of everything but `hash` itself.
    pub fn compute_hash(&self) -> String {
        self.compute_hash_with(&mut Vec::new())
    }

    /// [`AuditRecord::compute_hash`] with a scratch buffer: the fields, each prefixed with its
    /// length, are laid out in `buf` and hashed in one go.
    fn compute_hash_with(&self, buf: &mut Vec<u8>) -> String {
        buf.clear();
        let mut field = |b: &[u8]| {
            buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
            buf.extend_from_slice(b);
        };
        field(&self.seq.to_le_bytes());
        field(&self.at.as_micros().to_le_bytes());
        field(self.action.name().as_bytes());
        field(self.target.as_str().as_bytes());
        field(self.request.as_bytes());
        field(self.key.as_str().as_bytes());
        field(self.receipt.as_deref().unwrap_or("\u{0}").as_bytes());
        field(self.reason.as_deref().unwrap_or("\u{0}").as_bytes());
        for e in std::iter::once(&self.origin).chain(&self.causation) {
            field(e.source.as_bytes());
            field(e.id.as_bytes());
        }
        field(self.prev_hash.as_bytes());
        blake3::hash(buf).to_hex().to_string()
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
    let mut prev = GENESIS.to_owned();
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
        prev.clone_from(&r.hash);
        expect_seq += 1;
    }
    Ok(expect_seq - 1)
}

/// The engine's end of the chain: the last sequence number and hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ChainHead {
    pub seq: u64,
    pub hash: String,
    #[serde(skip)]
    buf: Vec<u8>,
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS.to_owned(),
            buf: Vec::new(),
        }
    }
}

impl ChainHead {
    /// Fills in `seq`, `prev_hash` and `hash` and advances the head.
    pub fn link(&mut self, mut r: AuditRecord) -> AuditRecord {
        self.seq += 1;
        r.seq = self.seq;
        r.prev_hash = std::mem::take(&mut self.hash);
        r.hash = r.compute_hash_with(&mut self.buf);
        self.hash.clone_from(&r.hash);
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
            key: IdempotencyKey(format!("k{i}")),
            receipt: Some(format!("R{i}")),
            reason: None,
            origin: EventRef::new("/qms", format!("e{i}")),
            causation: vec![],
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn action_names_are_what_the_hash_always_covered() {
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
}
