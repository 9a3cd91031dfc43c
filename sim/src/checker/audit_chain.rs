//! The checker's own verification of the audit log's hash chain, written from the layout in
//! docs/invariants.md (`audit-chain`) rather than calling the core's code, so that a core whose
//! hashing drifted from the documented layout fails here instead of agreeing with itself.

use plantloop_core::audit::{AuditAction, AuditRecord};
use plantloop_core::model::System;

/// The layout version byte that starts every hashed record.
const LAYOUT: u8 = 1;

/// Where a chain breaks: the record's sequence number and why.
pub(super) struct Break {
    pub seq: u64,
    pub reason: &'static str,
}

/// Checks that `records` form one chain from the all-zero genesis: sequence numbers 1, 2, … with
/// no gap, each `prev_hash` the previous record's `hash`, each `hash` the BLAKE3 of the record's
/// layout.
pub(super) fn verify(records: &[AuditRecord]) -> Result<(), Break> {
    let mut prev = [0u8; 32];
    let mut buf = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if r.seq != i as u64 + 1 {
            return Err(Break {
                seq: r.seq,
                reason: "sequence number out of order or with a gap",
            });
        }
        if r.prev_hash.0 != prev {
            return Err(Break {
                seq: r.seq,
                reason: "prev_hash is not the previous record's hash",
            });
        }
        layout(r, &mut buf);
        if *blake3::hash(&buf).as_bytes() != r.hash.0 {
            return Err(Break {
                seq: r.seq,
                reason: "hash does not match the record's content",
            });
        }
        prev = r.hash.0;
    }
    Ok(())
}

/// The bytes a record's hash covers (docs/invariants.md, `audit-chain`).
fn layout(r: &AuditRecord, buf: &mut Vec<u8>) {
    fn varint(buf: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            buf.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        buf.push(n as u8);
    }
    fn text(buf: &mut Vec<u8>, s: &str) {
        varint(buf, s.len() as u64);
        buf.extend_from_slice(s.as_bytes());
    }
    fn maybe(buf: &mut Vec<u8>, s: Option<&str>) {
        if let Some(s) = s {
            buf.push(1);
            text(buf, s);
        } else {
            buf.push(0);
        }
    }
    buf.clear();
    buf.push(LAYOUT);
    buf.extend_from_slice(&r.seq.to_le_bytes());
    buf.extend_from_slice(&r.at.as_micros().to_le_bytes());
    buf.push(match r.action {
        AuditAction::Posted => 0,
        AuditAction::FoundExisting => 1,
        AuditAction::DeadLettered => 2,
        AuditAction::Replayed => 3,
    });
    buf.push(match r.target {
        System::Erp => 0,
        System::Qms => 1,
        System::Cmms => 2,
        System::Mes => 3,
    });
    text(buf, &r.request);
    text(buf, r.key.as_str());
    maybe(buf, r.receipt.as_deref());
    maybe(buf, r.reason.as_deref());
    text(buf, r.origin.source());
    text(buf, r.origin.id());
    varint(buf, r.causation.len() as u64);
    for c in &r.causation {
        text(buf, c.source());
        text(buf, c.id());
    }
    buf.push(0);
    buf.extend_from_slice(&r.prev_hash.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use crate::world::World;
    use plantloop_core::audit::verify_chain;

    /// The audit log of a short run with a containment, a repair and a release.
    fn audit_of_a_run() -> Vec<AuditRecord> {
        let text = include_str!("../../../scenarios/torque-drift-containment.toml");
        let s = Scenario::from_str(text, "torque-drift-containment.toml").expect("valid");
        let mut w = World::new(s, 7, None);
        w.start();
        w.finish();
        w.audit
    }

    #[test]
    fn agrees_with_the_core_on_a_real_chain_and_on_every_kind_of_tampering() {
        let log = audit_of_a_run();
        assert!(log.len() > 20, "a run with postings: {}", log.len());
        assert!(verify(&log).is_ok());
        assert!(verify_chain(&log).is_ok());
        let at = log.len() / 2;
        type Tamper<'a> = Box<dyn Fn(&mut Vec<AuditRecord>) + 'a>;
        let tampered: Vec<(&str, Tamper)> = vec![
            (
                "receipt",
                Box::new(|l| l[at].receipt = Some("forged".into())),
            ),
            (
                "time",
                Box::new(|l| l[at].at += plantloop_core::time::Duration::from_micros(1)),
            ),
            ("action", Box::new(|l| l[at].action = AuditAction::Replayed)),
            ("target", Box::new(|l| l[at].target = System::Qms)),
            ("causes", Box::new(|l| l[at].causation.clear())),
            (
                "removed",
                Box::new(|l| {
                    l.remove(at);
                }),
            ),
            ("swapped", Box::new(|l| l.swap(at, at + 1))),
            ("relinked", Box::new(|l| l[at].prev_hash = l[at + 1].hash)),
        ];
        for (what, tamper) in tampered {
            let mut l = log.clone();
            tamper(&mut l);
            let mine = verify(&l).err().map(|b| b.seq);
            let core = verify_chain(&l).err().map(|e| e.seq);
            assert!(mine.is_some(), "{what}: tampering not caught");
            assert_eq!(
                mine, core,
                "{what}: the checker and the core disagree on where it breaks"
            );
        }
    }
}
