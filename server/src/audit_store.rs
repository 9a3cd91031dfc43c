//! The audit records the engine emits, stored for `GET /audit?correlation=ID`.
//!
//! One SQLite file (`audit.sqlite` in the data folder), one row per record: its sequence number,
//! the correlation it belongs to and the record as JSON. Records are stored after the journal
//! synced the inputs that produced them; a crash between the two loses nothing, because recovery
//! re-issues every record after [`AuditStore::last_seq`] (`DurableEngine::open_after_audit`), so
//! the chain stored here stays gap-free. `synchronous=NORMAL` is enough for the same reason.
//!
//! It also keeps who delivered each source event (the subject of the bearer token that brought
//! it: the seed asks that audit logs say who initiated a quality release), stored in the same
//! transaction as the turn's records and before the event is acknowledged. The first delivery
//! stored is kept; a duplicate delivery fills the gap a crash before the store may have left.
//! `GET /audit` shows, for each record, who delivered its origin and causation events.

use plantloop_core::audit::AuditRecord;
use plantloop_core::call::EventRef;
use rusqlite::{Connection, params};
use serde_json::Value;
use std::path::Path;

/// Most records one query returns.
pub const AUDIT_QUERY_ROWS_MAX: usize = 10_000;

/// The stored audit chain.
pub struct AuditStore {
    conn: Connection,
}

/// The business id a record belongs to, from its idempotency key (docs/middleware.md): the NC of
/// W1 and W3 (`w1/NC-7/hold` → `NC-7`), the work order of W2 (`w2/WO-NC-7/cost/parts`), the
/// station of W4, the record key of W5 (`w5/mes/asset/A-3/v2` → `A-3`) and the order of W6
/// (`w6/dispatch/PO-1`, `w6/PO-1/S3/1..=9` → `PO-1`).
pub fn correlation_of(r: &AuditRecord) -> &str {
    let mut parts = r.key.as_str().split('/');
    let workflow = parts.next().unwrap_or("");
    let second = parts.next().unwrap_or("");
    match (workflow, second) {
        ("w5", _) => parts.nth(1).unwrap_or(""),
        ("w6", "dispatch") => parts.next().unwrap_or(""),
        _ => second,
    }
}

impl AuditStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<AuditStore, String> {
        let e = |what: &str| {
            let p = path.display().to_string();
            let what = what.to_owned();
            move |err: rusqlite::Error| format!("{p}: {what}: {err}")
        };
        let conn = Connection::open(path).map_err(e("open"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(e("set journal_mode"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(e("set synchronous"))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS audit (
                 seq INTEGER PRIMARY KEY,
                 correlation TEXT NOT NULL,
                 record TEXT NOT NULL
             ) STRICT;
             CREATE INDEX IF NOT EXISTS audit_correlation ON audit (correlation, seq);
             CREATE TABLE IF NOT EXISTS deliveries (
                 source TEXT NOT NULL,
                 id TEXT NOT NULL,
                 principal TEXT NOT NULL,
                 PRIMARY KEY (source, id)
             ) STRICT, WITHOUT ROWID;",
        )
        .map_err(e("create tables"))?;
        Ok(AuditStore { conn })
    }

    /// The sequence number of the last record stored (0 for none).
    pub fn last_seq(&self) -> Result<u64, String> {
        self.conn
            .query_row("SELECT coalesce(max(seq), 0) FROM audit", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|s| s as u64)
            .map_err(|e| format!("reading the audit store: {e}"))
    }

    /// Stores records and who delivered events in one transaction; a record already stored
    /// (same seq), or an event's first delivery, is kept as it was.
    pub fn store<P: AsRef<str>>(
        &mut self,
        records: &[AuditRecord],
        deliveries: &[(EventRef, P)],
    ) -> Result<(), String> {
        if records.is_empty() && deliveries.is_empty() {
            return Ok(());
        }
        let e = |err: rusqlite::Error| format!("storing audit records: {err}");
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO audit (seq, correlation, record) VALUES (?1, ?2, ?3)",
                )
                .map_err(e)?;
            for r in records {
                let json = serde_json::to_string(r).map_err(|x| x.to_string())?;
                stmt.execute(params![r.seq as i64, correlation_of(r), json])
                    .map_err(e)?;
            }
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO deliveries (source, id, principal) VALUES (?1, ?2, ?3)",
                )
                .map_err(e)?;
            for (event, principal) in deliveries {
                stmt.execute(params![event.source(), event.id(), principal.as_ref()])
                    .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Who delivered an event, if it is known.
    pub fn delivered_by(&self, source: &str, id: &str) -> Result<Option<String>, String> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT principal FROM deliveries WHERE source = ?1 AND id = ?2")
            .map_err(|e| format!("reading the audit store: {e}"))?;
        let mut rows = stmt
            .query(params![source, id])
            .map_err(|e| format!("reading the audit store: {e}"))?;
        match rows.next() {
            Ok(Some(r)) => r.get(0).map(Some).map_err(|e| e.to_string()),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("reading the audit store: {e}")),
        }
    }

    /// The records of one correlation, in chain order, each with `delivered_by`: its origin
    /// and causation events with who delivered them (`principal`, null when unknown, such as
    /// for an event journaled before deliveries were kept).
    pub fn by_correlation(&self, correlation: &str) -> Result<Vec<Value>, String> {
        let e = |err: rusqlite::Error| format!("reading the audit store: {err}");
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record FROM audit WHERE correlation = ?1 ORDER BY seq LIMIT ?2")
            .map_err(e)?;
        let rows = stmt
            .query_map(params![correlation, AUDIT_QUERY_ROWS_MAX as i64], |r| {
                r.get::<_, String>(0)
            })
            .map_err(e)?;
        let mut out = vec![];
        for row in rows {
            let text = row.map_err(e)?;
            out.push(serde_json::from_str::<Value>(&text).map_err(|x| x.to_string())?);
        }
        for r in &mut out {
            let mut events: Vec<(String, String)> = vec![];
            let origin = std::iter::once(&r["origin"]);
            let causes = r["causation"].as_array().into_iter().flatten();
            for ev in origin.chain(causes) {
                if let (Some(s), Some(i)) = (ev["source"].as_str(), ev["id"].as_str()) {
                    let key = (s.to_owned(), i.to_owned());
                    if !events.contains(&key) {
                        events.push(key);
                    }
                }
            }
            let mut by = Vec::with_capacity(events.len());
            for (source, id) in events {
                let principal = self.delivered_by(&source, &id)?;
                by.push(serde_json::json!({ "source": source, "id": id, "principal": principal }));
            }
            r["delivered_by"] = Value::Array(by);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plantloop_core::audit::{AuditAction, GENESIS};
    use plantloop_core::call::{EventRef, IdempotencyKey};
    use plantloop_core::model::System;
    use plantloop_core::time::Instant;

    fn record(seq: u64, key: &str) -> AuditRecord {
        AuditRecord {
            seq,
            at: Instant::ZERO,
            action: AuditAction::Posted,
            target: System::Erp,
            request: "post_hold".into(),
            key: IdempotencyKey(key.into()),
            receipt: Some("ERP-1".into()),
            reason: None,
            origin: EventRef::new("/qms", "1"),
            causation: vec![EventRef::new("/qms", "1")],
            prev_hash: GENESIS,
            hash: GENESIS,
        }
    }

    #[test]
    fn a_record_belongs_to_the_business_id_of_its_key() {
        for (key, want) in [
            ("w1/NC-7/hold/2", "NC-7"),
            ("w2/WO-NC-7/cost/parts", "WO-NC-7"),
            ("w4/P1-L1-S3/2", "P1-L1-S3"),
            ("w5/mes/asset/A-3/v2", "A-3"),
            ("w6/dispatch/PO-1", "PO-1"),
            ("w6/PO-1/P1-L1-S3/1..=9", "PO-1"),
        ] {
            assert_eq!(correlation_of(&record(1, key)), want, "{key}");
        }
    }

    #[test]
    fn records_are_stored_once_and_found_by_correlation() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = AuditStore::open(&dir.path().join("a.sqlite")).unwrap();
        assert_eq!(s.last_seq().unwrap(), 0);
        let rs = [record(1, "w1/NC-7/hold"), record(2, "w2/WO-9/cost/parts")];
        let by = [(EventRef::new("/qms", "1"), "mock-qms")];
        s.store(&rs, &by).unwrap();
        let again = [(EventRef::new("/qms", "1"), "someone-else")];
        s.store(&rs[..1], &again).unwrap();
        assert_eq!(s.last_seq().unwrap(), 2);
        let found = s.by_correlation("NC-7").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["key"], "w1/NC-7/hold");
        assert_eq!(
            found[0]["delivered_by"],
            serde_json::json!([{ "source": "/qms", "id": "1", "principal": "mock-qms" }]),
            "the first delivery is kept"
        );
        assert!(s.by_correlation("nothing").unwrap().is_empty());
    }
}
