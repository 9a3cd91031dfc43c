//! The engine made durable: every input is appended to a [`Journal`] before the engine sees it, and
//! recovery rebuilds the engine from the newest snapshot plus the records after it.
//!
//! Output commit rule: a driver releases the outputs of an input (calls, audit records, the ack to
//! the source) only after [`DurableEngine::sync`] covered that input. A crash then loses only inputs
//! whose effects nobody saw; their sources were not acknowledged and send them again.

use crate::engine::{Ack, Config, Engine, Input};
use crate::journal::{Journal, JournalError, Lsn};
use crate::time::Instant;
use serde::{Deserialize, Serialize};

/// What a snapshot starts with: this tag, then [`SNAPSHOT_LAYOUT`] (u16, little-endian), then the
/// engine's state (postcard).
const SNAPSHOT_TAG: &[u8; 6] = b"plsnap";

/// The layout of the engine state in a snapshot. Postcard does not describe what it writes, so a
/// state written by a build whose engine differs in shape cannot be read back: recovery says so
/// instead of misreading it. Raise it whenever the engine's serialized state changes shape (the
/// pinned snapshot digest in `core/tests/durability.rs` fails until the pin is updated). Layout 1
/// was written without the tag.
pub const SNAPSHOT_LAYOUT: u16 = 5;

/// One journal record: an input and the time it was handled.
#[derive(Serialize, Deserialize)]
struct Record {
    at: Instant,
    input: Input,
}

/// What recovery found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The snapshot recovery started from, if any.
    pub snapshot_lsn: Option<Lsn>,
    /// Records replayed after it.
    pub replayed: u64,
}

/// Failure to journal or recover.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("snapshot at {lsn} does not decode: {reason}")]
    Snapshot { lsn: Lsn, reason: String },
    /// The snapshot was written by a build with another engine state layout (the records before
    /// it are gone, so there is nothing else to rebuild from): open the journal with that build.
    #[error(
        "snapshot at {lsn} holds engine state layout {found}, this build reads layout {expected}: \
         open the journal with the plantloop that wrote it"
    )]
    SnapshotLayout { lsn: Lsn, found: u16, expected: u16 },
}

/// A snapshot of `engine`, tagged with its layout.
pub fn encode_snapshot(engine: &Engine) -> Result<Vec<u8>, postcard::Error> {
    let mut bytes = Vec::with_capacity(64 * 1024);
    bytes.extend_from_slice(SNAPSHOT_TAG);
    bytes.extend_from_slice(&SNAPSHOT_LAYOUT.to_le_bytes());
    postcard::to_extend(engine, bytes)
}

/// The engine in a snapshot taken at `lsn`, if its layout is this build's.
pub fn decode_snapshot(lsn: Lsn, bytes: &[u8]) -> Result<Engine, DurableError> {
    let Some(rest) = bytes.strip_prefix(SNAPSHOT_TAG.as_slice()) else {
        return Err(DurableError::SnapshotLayout {
            lsn,
            found: 1,
            expected: SNAPSHOT_LAYOUT,
        });
    };
    let (layout, state) = match rest {
        [a, b, state @ ..] => (u16::from_le_bytes([*a, *b]), state),
        _ => {
            return Err(DurableError::Snapshot {
                lsn,
                reason: "cut short after its tag".into(),
            });
        }
    };
    if layout != SNAPSHOT_LAYOUT {
        return Err(DurableError::SnapshotLayout {
            lsn,
            found: layout,
            expected: SNAPSHOT_LAYOUT,
        });
    }
    postcard::from_bytes(state).map_err(|e| DurableError::Snapshot {
        lsn,
        reason: e.to_string(),
    })
}

/// An [`Engine`] behind a [`Journal`].
pub struct DurableEngine<J: Journal> {
    engine: Engine,
    journal: J,
    snapshot_every: u64,
    since_snapshot: u64,
    buf: Vec<u8>,
}

impl<J: Journal> DurableEngine<J> {
    /// Opens the journal: a fresh engine if it is empty, otherwise the engine rebuilt from the newest
    /// snapshot and the records after it, followed by [`Input::Restarted`] so that calls in flight at
    /// the crash are sent again. `snapshot_every` bounds replay: a snapshot is taken after that many
    /// records (0: never).
    ///
    /// Outputs of the replayed inputs are dropped: this suits a driver that stores each audit record
    /// in the same step as it syncs (the simulator). A driver that stores audit records after the
    /// sync opens with [`DurableEngine::open_after_audit`] instead.
    pub fn open(
        journal: J,
        config: Config,
        seed: u64,
        snapshot_every: u64,
    ) -> Result<(Self, Recovery), DurableError> {
        Self::open_after_audit(journal, config, seed, snapshot_every, u64::MAX)
    }

    /// [`DurableEngine::open`] for a driver whose audit store may lag the journal: a crash after a
    /// sync and before the audit records of the synced inputs were stored would otherwise leave a
    /// gap in the chain. Every audit record after sequence number `audit_seq_stored` (the last one
    /// the driver holds; 0 for none) is issued again through [`Engine::poll_audit`], identical to
    /// the lost original, before any new one.
    pub fn open_after_audit(
        journal: J,
        config: Config,
        seed: u64,
        snapshot_every: u64,
        audit_seq_stored: u64,
    ) -> Result<(Self, Recovery), DurableError> {
        let mut recovery = Recovery::default();
        let (mut engine, after) = match journal.latest_snapshot()? {
            Some((lsn, bytes)) => {
                let e = decode_snapshot(lsn, &bytes)?;
                recovery.snapshot_lsn = Some(lsn);
                (e, lsn)
            }
            None => (Engine::new(config.clone(), seed), 0),
        };
        if config.has_defect(crate::sabotage::EngineDefect::NoJournalReplay) {
            let fresh = Engine::new(config, seed);
            let journal_ignored = DurableEngine {
                engine: fresh,
                journal,
                snapshot_every,
                since_snapshot: 0,
                buf: Vec::new(),
            };
            return Ok((journal_ignored, Recovery::default()));
        }
        let mut last_at = engine.now();
        journal.replay_after(after, &mut |lsn, bytes| {
            let r: Record = postcard::from_bytes(bytes).map_err(|e| JournalError::Corrupt {
                lsn,
                reason: e.to_string(),
            })?;
            last_at = r.at;
            engine.handle(r.at, r.input);
            recovery.replayed += 1;
            Ok(())
        })?;
        engine.discard_outputs_keeping_audit_after(audit_seq_stored);
        let mut me = DurableEngine {
            engine,
            journal,
            snapshot_every,
            since_snapshot: recovery.replayed,
            buf: Vec::new(),
        };
        if recovery.snapshot_lsn.is_some() || recovery.replayed > 0 {
            me.handle(last_at, Input::Restarted)?;
        }
        Ok((me, recovery))
    }

    /// Journals the input, then hands it to the engine. Not durable until [`DurableEngine::sync`].
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<Ack, JournalError> {
        self.buf.clear();
        let record = Record { at: now, input };
        self.buf = postcard::to_extend(&record, std::mem::take(&mut self.buf))
            .map_err(|e| JournalError::Storage(format!("encoding an input: {e}")))?;
        self.journal.append(&self.buf)?;
        self.since_snapshot += 1;
        Ok(self.engine.handle(now, record.input))
    }

    /// Group commit: makes every input handled so far durable; takes a snapshot when due. After it
    /// returns, the outputs of those inputs may be released.
    pub fn sync(&mut self) -> Result<Lsn, JournalError> {
        let lsn = self.journal.sync()?;
        if self.snapshot_every > 0 && self.since_snapshot >= self.snapshot_every {
            let bytes = encode_snapshot(&self.engine)
                .map_err(|e| JournalError::Storage(format!("encoding a snapshot: {e}")))?;
            self.journal.save_snapshot(lsn, &bytes)?;
            self.since_snapshot = 0;
        }
        Ok(lsn)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
    /// For polling outputs; inputs must go through [`DurableEngine::handle`].
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }
    pub fn journal(&self) -> &J {
        &self.journal
    }
    /// Throws the engine away and returns the journal, as a crash would.
    pub fn into_journal(self) -> J {
        self.journal
    }
}
