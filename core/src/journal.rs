//! The journal of inputs: the engine's durability.
//!
//! The engine is deterministic, so the ordered list of its inputs *is* its state. A driver appends
//! each input here before acknowledging it, and recovery replays the records after the newest
//! snapshot through a fresh engine. Records are opaque bytes to the journal; [`crate::durable`] knows
//! how to encode inputs and snapshots.
//!
//! Two implementations stand behind [`Journal`]: [`MemoryJournal`] here (which can "crash", losing what
//! was not synced) and the SQLite journal in `plantloop-server`.

/// Log sequence number: the position of a record, from 1. 0 means "before the first record".
pub type Lsn = u64;

/// What survives a crash, per journal implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Synced records survive the process dying; nothing survives the machine losing power.
    /// (The in-memory journal's "crash" models a process crash.)
    Process,
    /// Synced records survive the process dying and the machine losing power (fsync on sync).
    PowerLoss,
}

/// A journal that could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The backing store failed (disk full, I/O error, corrupt file).
    #[error("journal storage: {0}")]
    Storage(String),
    /// A record read back does not decode.
    #[error("journal record {lsn} is corrupt: {reason}")]
    Corrupt { lsn: Lsn, reason: String },
}

/// The visitor [`Journal::replay_after`] calls with each record.
pub type Visit<'a> = dyn FnMut(Lsn, &[u8]) -> Result<(), JournalError> + 'a;

/// An append-only log of records with snapshots, durable on [`Journal::sync`].
pub trait Journal {
    /// Appends one record. It is durable only after the next successful [`Journal::sync`].
    fn append(&mut self, record: &[u8]) -> Result<Lsn, JournalError>;
    /// Makes every appended record durable (one commit for all of them: group commit) and returns
    /// the last durable LSN.
    fn sync(&mut self) -> Result<Lsn, JournalError>;
    /// The LSN of the last appended record, durable or not.
    fn last_lsn(&self) -> Lsn;
    /// Calls `visit` with every durable-or-appended record after `after`, in LSN order.
    fn replay_after(&self, after: Lsn, visit: &mut Visit<'_>) -> Result<(), JournalError>;
    /// Stores a snapshot of the state after record `lsn`, durably, and may drop the records it covers.
    fn save_snapshot(&mut self, lsn: Lsn, state: &[u8]) -> Result<(), JournalError>;
    /// The newest snapshot, if any.
    fn latest_snapshot(&self) -> Result<Option<(Lsn, Vec<u8>)>, JournalError>;
    /// What a successful sync protects against.
    fn durability(&self) -> Durability;
}

/// A boxed journal is a journal, so a driver can choose its journal at run time
/// (`DurableEngine<Box<dyn Journal>>`).
impl<J: Journal + ?Sized> Journal for Box<J> {
    fn append(&mut self, record: &[u8]) -> Result<Lsn, JournalError> {
        (**self).append(record)
    }
    fn sync(&mut self) -> Result<Lsn, JournalError> {
        (**self).sync()
    }
    fn last_lsn(&self) -> Lsn {
        (**self).last_lsn()
    }
    fn replay_after(&self, after: Lsn, visit: &mut Visit<'_>) -> Result<(), JournalError> {
        (**self).replay_after(after, visit)
    }
    fn save_snapshot(&mut self, lsn: Lsn, state: &[u8]) -> Result<(), JournalError> {
        (**self).save_snapshot(lsn, state)
    }
    fn latest_snapshot(&self) -> Result<Option<(Lsn, Vec<u8>)>, JournalError> {
        (**self).latest_snapshot()
    }
    fn durability(&self) -> Durability {
        (**self).durability()
    }
}

/// An in-memory journal for the simulator and tests. [`MemoryJournal::crash`] models a process crash:
/// records appended but not synced are lost.
#[derive(Debug, Default, Clone)]
pub struct MemoryJournal {
    /// LSN of the first record held.
    first_lsn: Lsn,
    /// The records held, back to back in one buffer (one allocation per growth, not per record),
    /// and where each ends in it.
    bytes: Vec<u8>,
    ends: Vec<usize>,
    synced: Lsn,
    snapshot: Option<(Lsn, Vec<u8>)>,
    syncs: u64,
}

impl MemoryJournal {
    pub fn new() -> Self {
        MemoryJournal {
            first_lsn: 1,
            ..Default::default()
        }
    }

    /// Loses every record that was not synced, as a process crash would.
    pub fn crash(&mut self) {
        let keep = (self.synced + 1).saturating_sub(self.first_lsn) as usize;
        self.ends.truncate(keep);
        self.bytes.truncate(self.ends.last().copied().unwrap_or(0));
    }

    /// Number of successful syncs (commits), for reports.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// The last durable LSN.
    pub fn synced_lsn(&self) -> Lsn {
        self.synced
    }

    /// Records currently held (not yet dropped by a snapshot).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

impl Journal for MemoryJournal {
    fn append(&mut self, record: &[u8]) -> Result<Lsn, JournalError> {
        if self.first_lsn == 0 {
            self.first_lsn = 1;
        }
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
        Ok(self.last_lsn())
    }

    fn sync(&mut self) -> Result<Lsn, JournalError> {
        self.synced = self.last_lsn();
        self.syncs += 1;
        Ok(self.synced)
    }

    fn last_lsn(&self) -> Lsn {
        self.first_lsn.max(1) + self.ends.len() as u64 - 1
    }

    fn replay_after(&self, after: Lsn, visit: &mut Visit<'_>) -> Result<(), JournalError> {
        let first = self.first_lsn.max(1);
        let skip = (after + 1).saturating_sub(first) as usize;
        for i in skip..self.ends.len() {
            visit(first + i as u64, self.record(i))?;
        }
        Ok(())
    }

    fn save_snapshot(&mut self, lsn: Lsn, state: &[u8]) -> Result<(), JournalError> {
        assert!(
            lsn <= self.last_lsn(),
            "snapshot {lsn} is past the last record"
        );
        // Records covered by the snapshot are no longer needed for recovery.
        let first = self.first_lsn.max(1);
        let drop = ((lsn + 1).saturating_sub(first) as usize).min(self.ends.len());
        if drop > 0 {
            let cut = self.ends[drop - 1];
            self.bytes.drain(..cut);
            self.ends.drain(..drop);
            for end in &mut self.ends {
                *end -= cut;
            }
        }
        self.first_lsn = first + drop as u64;
        self.synced = self.synced.max(lsn);
        self.snapshot = Some((lsn, state.to_vec()));
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<(Lsn, Vec<u8>)>, JournalError> {
        Ok(self.snapshot.clone())
    }

    fn durability(&self) -> Durability {
        Durability::Process
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(j: &MemoryJournal, after: Lsn) -> Vec<(Lsn, Vec<u8>)> {
        let mut out = vec![];
        j.replay_after(after, &mut |l, r| {
            out.push((l, r.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn a_crash_loses_exactly_the_unsynced_tail() {
        let mut j = MemoryJournal::new();
        assert_eq!(j.last_lsn(), 0);
        assert_eq!(j.append(b"a").unwrap(), 1);
        assert_eq!(j.append(b"b").unwrap(), 2);
        assert_eq!(j.sync().unwrap(), 2);
        j.append(b"c").unwrap();
        j.crash();
        assert_eq!(all(&j, 0), vec![(1, b"a".to_vec()), (2, b"b".to_vec())]);
        assert_eq!(j.append(b"d").unwrap(), 3);
    }

    #[test]
    fn snapshots_bound_replay() {
        let mut j = MemoryJournal::new();
        for i in 0..10u8 {
            j.append(&[i]).unwrap();
        }
        j.sync().unwrap();
        j.save_snapshot(7, b"state@7").unwrap();
        assert_eq!(j.latest_snapshot().unwrap(), Some((7, b"state@7".to_vec())));
        assert_eq!(
            all(&j, 7).iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![8, 9, 10]
        );
        assert_eq!(j.append(b"x").unwrap(), 11);
        j.crash();
        assert_eq!(j.last_lsn(), 10);
    }
}
