//! The SQLite journal: [`SqliteJournal`], the durable [`Journal`] of the tokio driver and the edge
//! agent.
//!
//! One SQLite file in WAL mode holds two STRICT tables: `records (lsn, sum, data)` and
//! `snapshots (lsn, sum, state)`. `sum` is a checksum (BLAKE3 of a domain tag, the LSN and the
//! bytes, first 8 bytes), checked on every read, so a flipped bit is reported as
//! [`JournalError::Corrupt`] with its LSN instead of being replayed into the engine, and a row that
//! moved to another LSN does not verify either.
//!
//! **Group commit.** [`Journal::append`] only copies the record into an in-memory batch (one byte
//! arena, no allocation per record); [`Journal::sync`] writes the whole batch in one transaction
//! with one cached prepared statement, so a sync costs one commit (one fsync with
//! [`SyncMode::Full`]) however many records it carries. Records not synced are lost on a crash and
//! when the journal is dropped, exactly like the in-memory journal's `crash`.
//!
//! **Recovery.** SQLite's WAL commits are atomic and its frames carry cumulative checksums, so a
//! torn or truncated WAL recovers to the last complete commit: reopening yields a prefix of what
//! was synced, with LSNs contiguous from the first record after the snapshot, and appending resumes
//! after it. A file that is not a journal, or one SQLite finds malformed, is a
//! [`JournalError::Storage`] naming the path; nothing here panics on file contents.
//!
//! **One owner.** The file is opened with `locking_mode=EXCLUSIVE`: while one journal has it open,
//! another process (or a second [`SqliteJournal`]) cannot open it, so two drivers can never
//! interleave LSNs. A side effect is that the WAL index lives in process memory (no `-shm` file).

use std::fmt;
use std::path::{Path, PathBuf};

use plantloop_core::journal::{Durability, Journal, JournalError, Lsn, Visit};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

/// Identifies a plantloop journal file (`PRAGMA application_id`, ASCII "PLJ1").
pub const APPLICATION_ID: i32 = 0x504C_4A31;
/// Version of the table layout (`PRAGMA user_version`); a file with another version is refused.
pub const SCHEMA_VERSION: i32 = 1;
/// Largest record or snapshot accepted, in bytes. SQLite's own limit is 1 GB; refusing at append
/// time keeps a too-large record from failing (and poisoning) the next sync.
pub const RECORD_BYTES_MAX: usize = 256 * 1024 * 1024;

const TAG_RECORD: u8 = b'r';
const TAG_SNAPSHOT: u8 = b's';

const SCHEMA: &str = "
    CREATE TABLE records (
        lsn  INTEGER PRIMARY KEY,
        sum  INTEGER NOT NULL,
        data BLOB NOT NULL
    ) STRICT;
    CREATE TABLE snapshots (
        lsn   INTEGER PRIMARY KEY,
        sum   INTEGER NOT NULL,
        state BLOB NOT NULL
    ) STRICT;
";
const INSERT_RECORD: &str = "INSERT INTO records (lsn, sum, data) VALUES (?1, ?2, ?3)";
const SELECT_RECORDS: &str = "SELECT lsn, sum, data FROM records WHERE lsn > ?1 ORDER BY lsn";
const SELECT_SNAPSHOT: &str = "SELECT lsn, sum, state FROM snapshots ORDER BY lsn DESC LIMIT 1";

/// How hard [`Journal::sync`] pushes records towards the disk, and so what survives a crash.
///
/// In both modes a record that was appended but not synced is lost by any crash, and recovery
/// always yields a contiguous prefix of the synced records (never a torn or reordered one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `synchronous=FULL`: every sync fsyncs the WAL before it returns. A synced record survives
    /// the process dying *and* the machine losing power or the kernel crashing (provided the disk
    /// honours fsync). Costs one fsync per sync, hence group commit.
    /// [`Durability::PowerLoss`].
    #[default]
    Full,
    /// `synchronous=NORMAL` in WAL mode: a sync hands the WAL to the operating system with
    /// `write()` and fsyncs only at checkpoints. A synced record survives the process dying
    /// (panic, `kill -9`, OOM) because the kernel holds the write; on power loss or a kernel crash
    /// the most recent syncs may be lost, back to the last checkpoint at worst. The file stays
    /// consistent either way. [`Durability::Process`].
    Normal,
}

impl SyncMode {
    /// What a successful sync protects against in this mode.
    pub fn durability(self) -> Durability {
        match self {
            SyncMode::Full => Durability::PowerLoss,
            SyncMode::Normal => Durability::Process,
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            SyncMode::Full => "FULL",
            SyncMode::Normal => "NORMAL",
        }
    }
}

/// Records appended since the last sync: one byte arena plus per-record end offsets and checksums,
/// so appending does not allocate per record.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    sums: Vec<i64>,
}

impl Batch {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> (&[u8], i64) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (&self.bytes[start..self.ends[i]], self.sums[i])
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.sums.clear();
    }
}

/// A [`Journal`] in one SQLite file (WAL mode), with group commit, per-record checksums and
/// snapshots that drop the records they cover. See the [module docs](self) for the layout and the
/// recovery guarantees.
pub struct SqliteJournal {
    conn: Connection,
    path: PathBuf,
    mode: SyncMode,
    /// LSN of the first record held: the newest snapshot's LSN + 1 (1 without a snapshot).
    first_lsn: Lsn,
    /// Last LSN committed to the file.
    synced: Lsn,
    /// Appended, not yet committed: LSNs `synced + 1 ..= synced + batch.len()`.
    batch: Batch,
    hasher: blake3::Hasher,
    commits: u64,
    /// Set when a commit failed: the file's state is then unknown (an fsync error may or may not
    /// have lost data), so every later call fails until the journal is reopened and recovered.
    poisoned: Option<String>,
}

impl SqliteJournal {
    /// Opens the journal at `path`, creating the file if it does not exist, and resumes after the
    /// durable records it holds: the next append gets the LSN after the last committed record (or
    /// after the newest snapshot, if that is later).
    ///
    /// Fails with [`JournalError::Storage`] (naming the path) when the file cannot be opened, is
    /// not a SQLite database, is some other application's database, or is held open by another
    /// journal.
    pub fn open(path: impl AsRef<Path>, mode: SyncMode) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        let created = !path.exists();
        let err = |what: &str| {
            let path = path.clone();
            let what = what.to_owned();
            move |e: rusqlite::Error| storage(&path, &what, e)
        };
        // No SQLITE_OPEN_URI: a path is a path, even if it starts with "file:".
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(err("open"))?;
        // Exclusive locking first, so that entering WAL mode keeps the WAL index in heap memory.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(err("set locking_mode"))?;
        let journal_mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(err("set journal_mode"))?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            return Err(storage(
                &path,
                "set journal_mode",
                format!("SQLite refused WAL mode (got {journal_mode})"),
            ));
        }
        conn.pragma_update(None, "synchronous", mode.pragma())
            .map_err(err("set synchronous"))?;

        // An immediate transaction takes the write lock now, and EXCLUSIVE mode keeps it: a second
        // opener fails here rather than at its first sync.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("lock"))?;
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(err("read schema"))?;
        if tables == 0 {
            tx.execute_batch(SCHEMA).map_err(err("create tables"))?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(err("set application_id"))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(err("set user_version"))?;
        } else {
            let app: i32 = tx
                .pragma_query_value(None, "application_id", |r| r.get(0))
                .map_err(err("read application_id"))?;
            if app != APPLICATION_ID {
                return Err(storage(
                    &path,
                    "open",
                    format!("not a plantloop journal (application_id {app:#x})"),
                ));
            }
            let version: i32 = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(err("read user_version"))?;
            if version != SCHEMA_VERSION {
                return Err(storage(
                    &path,
                    "open",
                    format!("journal schema version {version}, this build reads {SCHEMA_VERSION}"),
                ));
            }
        }
        let snapshot_lsn: i64 = tx
            .query_row("SELECT coalesce(max(lsn), 0) FROM snapshots", [], |r| {
                r.get(0)
            })
            .map_err(err("read snapshots"))?;
        let record_lsn: i64 = tx
            .query_row("SELECT coalesce(max(lsn), 0) FROM records", [], |r| {
                r.get(0)
            })
            .map_err(err("read records"))?;
        tx.commit().map_err(err("commit schema"))?;
        let (Ok(snapshot_lsn), Ok(record_lsn)) =
            (Lsn::try_from(snapshot_lsn), Lsn::try_from(record_lsn))
        else {
            return Err(storage(&path, "open", "negative LSN in the file"));
        };
        if created && mode == SyncMode::Full {
            sync_parent_dir(&path)?;
        }
        Ok(SqliteJournal {
            conn,
            path,
            mode,
            first_lsn: snapshot_lsn + 1,
            synced: record_lsn.max(snapshot_lsn),
            batch: Batch::default(),
            hasher: blake3::Hasher::new(),
            commits: 0,
            poisoned: None,
        })
    }

    /// The file this journal lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sync mode the journal was opened with.
    pub fn sync_mode(&self) -> SyncMode {
        self.mode
    }

    /// The last durable (committed) LSN.
    pub fn synced_lsn(&self) -> Lsn {
        self.synced
    }

    /// Records appended but not yet synced.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// Commits made since this journal was opened (syncs that had records, and snapshots), for
    /// reports: appends per commit is the group-commit factor.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Simulates a process crash: drops the records not yet synced and closes the file without
    /// committing them. Equivalent to dropping the journal, but says so at the call site.
    pub fn crash(mut self) {
        self.batch.clear();
        drop(self);
    }

    fn check_poisoned(&self) -> Result<(), JournalError> {
        match &self.poisoned {
            None => Ok(()),
            Some(cause) => Err(storage(
                &self.path,
                "journal unusable after a failed commit, reopen it",
                cause,
            )),
        }
    }

    /// Writes the batch (and a snapshot, if given) in one transaction. On failure the journal is
    /// poisoned: whether the commit reached the disk is unknown, and only reopening tells.
    fn commit(&mut self, snapshot: Option<(Lsn, &[u8])>) -> Result<(), JournalError> {
        self.check_poisoned()?;
        match self.write_transaction(snapshot) {
            Ok(()) => {
                self.synced += self.batch.len() as Lsn;
                self.batch.clear();
                self.commits += 1;
                Ok(())
            }
            Err(e) => {
                let e = storage(&self.path, "commit", e);
                self.poisoned = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn write_transaction(&mut self, snapshot: Option<(Lsn, &[u8])>) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT_RECORD)?;
            for i in 0..self.batch.len() {
                let (data, sum) = self.batch.get(i);
                insert.execute((to_sql_lsn(self.synced + 1 + i as Lsn), sum, data))?;
            }
        }
        if let Some((lsn, state)) = snapshot {
            let lsn_sql = to_sql_lsn(lsn);
            let sum = checksum(&mut blake3::Hasher::new(), TAG_SNAPSHOT, lsn, state);
            tx.prepare_cached(
                "INSERT OR REPLACE INTO snapshots (lsn, sum, state) VALUES (?1, ?2, ?3)",
            )?
            .execute((lsn_sql, sum, state))?;
            // Keep only the newest snapshot, and only the records after it.
            tx.prepare_cached("DELETE FROM snapshots WHERE lsn < ?1")?
                .execute([lsn_sql])?;
            tx.prepare_cached("DELETE FROM records WHERE lsn <= ?1")?
                .execute([lsn_sql])?;
        }
        tx.commit()
    }

    fn corrupt(lsn: Lsn, reason: impl Into<String>) -> JournalError {
        JournalError::Corrupt {
            lsn,
            reason: reason.into(),
        }
    }
}

impl Journal for SqliteJournal {
    fn append(&mut self, record: &[u8]) -> Result<Lsn, JournalError> {
        self.check_poisoned()?;
        if record.len() > RECORD_BYTES_MAX {
            return Err(storage(
                &self.path,
                "append",
                format!(
                    "record of {} bytes exceeds {RECORD_BYTES_MAX}",
                    record.len()
                ),
            ));
        }
        let lsn = self.last_lsn() + 1;
        let sum = checksum(&mut self.hasher, TAG_RECORD, lsn, record);
        self.batch.bytes.extend_from_slice(record);
        self.batch.ends.push(self.batch.bytes.len());
        self.batch.sums.push(sum);
        Ok(lsn)
    }

    fn sync(&mut self) -> Result<Lsn, JournalError> {
        self.check_poisoned()?;
        if self.batch.len() > 0 {
            self.commit(None)?;
        }
        Ok(self.synced)
    }

    fn last_lsn(&self) -> Lsn {
        self.synced + self.batch.len() as Lsn
    }

    fn replay_after(&self, after: Lsn, visit: &mut Visit<'_>) -> Result<(), JournalError> {
        self.check_poisoned()?;
        let mut expected = after.max(self.first_lsn - 1).saturating_add(1);
        let err = |e: rusqlite::Error| storage(&self.path, "replay", e);
        if expected <= self.synced {
            let mut hasher = blake3::Hasher::new();
            let mut stmt = self.conn.prepare_cached(SELECT_RECORDS).map_err(err)?;
            let mut rows = stmt.query([to_sql_lsn(expected - 1)]).map_err(err)?;
            while let Some(row) = rows.next().map_err(err)? {
                let lsn: i64 = row.get(0).map_err(err)?;
                if lsn != to_sql_lsn(expected) {
                    return Err(Self::corrupt(
                        expected,
                        format!("record missing (next stored record is {lsn})"),
                    ));
                }
                let sum: i64 = row.get(1).map_err(err)?;
                let data = row
                    .get_ref(2)
                    .map_err(err)?
                    .as_blob()
                    .map_err(|e| Self::corrupt(expected, format!("data column: {e}")))?;
                if checksum(&mut hasher, TAG_RECORD, expected, data) != sum {
                    return Err(Self::corrupt(expected, "checksum mismatch"));
                }
                visit(expected, data)?;
                expected += 1;
            }
            if expected <= self.synced {
                return Err(Self::corrupt(
                    expected,
                    "record missing (journal ends early)",
                ));
            }
        }
        for i in (expected - self.synced - 1) as usize..self.batch.len() {
            let (data, _) = self.batch.get(i);
            visit(self.synced + 1 + i as Lsn, data)?;
        }
        Ok(())
    }

    /// Stores the snapshot and drops the records it covers (and any older snapshot) in one
    /// transaction, durable (per [`SyncMode`]) when this returns. The same transaction also commits
    /// every pending record, so this is a sync too.
    ///
    /// # Panics
    /// If `lsn` is past [`Journal::last_lsn`] or before the newest snapshot: the records between an
    /// older snapshot and the newest one are gone, so recovery from it would be wrong.
    fn save_snapshot(&mut self, lsn: Lsn, state: &[u8]) -> Result<(), JournalError> {
        assert!(
            lsn <= self.last_lsn(),
            "snapshot {lsn} is past the last record"
        );
        assert!(
            lsn + 1 >= self.first_lsn,
            "snapshot {lsn} is older than the newest snapshot {}",
            self.first_lsn - 1
        );
        if state.len() > RECORD_BYTES_MAX {
            return Err(storage(
                &self.path,
                "save_snapshot",
                format!(
                    "snapshot of {} bytes exceeds {RECORD_BYTES_MAX}",
                    state.len()
                ),
            ));
        }
        self.commit(Some((lsn, state)))?;
        self.first_lsn = lsn + 1;
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Option<(Lsn, Vec<u8>)>, JournalError> {
        self.check_poisoned()?;
        let err = |e: rusqlite::Error| storage(&self.path, "read snapshot", e);
        let mut stmt = self.conn.prepare_cached(SELECT_SNAPSHOT).map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let Some(row) = rows.next().map_err(err)? else {
            return Ok(None);
        };
        let lsn: i64 = row.get(0).map_err(err)?;
        let lsn = Lsn::try_from(lsn).map_err(|_| Self::corrupt(0, "negative snapshot LSN"))?;
        let sum: i64 = row.get(1).map_err(err)?;
        let state = row
            .get_ref(2)
            .map_err(err)?
            .as_blob()
            .map_err(|e| Self::corrupt(lsn, format!("snapshot state column: {e}")))?;
        if checksum(&mut blake3::Hasher::new(), TAG_SNAPSHOT, lsn, state) != sum {
            return Err(Self::corrupt(lsn, "snapshot checksum mismatch"));
        }
        Ok(Some((lsn, state.to_vec())))
    }

    fn durability(&self) -> Durability {
        self.mode.durability()
    }
}

impl fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("first_lsn", &self.first_lsn)
            .field("synced", &self.synced)
            .field("pending", &self.batch.len())
            .field("commits", &self.commits)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// The stored checksum: BLAKE3 over a domain tag, the LSN and the bytes, truncated to 64 bits.
/// Mixing in the LSN makes a row copied or moved to another LSN fail verification.
fn checksum(hasher: &mut blake3::Hasher, tag: u8, lsn: Lsn, bytes: &[u8]) -> i64 {
    hasher.reset();
    hasher.update(&[tag]);
    hasher.update(&lsn.to_le_bytes());
    hasher.update(bytes);
    let mut out = [0u8; 8];
    hasher.finalize_xof().fill(&mut out);
    i64::from_le_bytes(out)
}

/// LSNs are SQLite integers (i64); a journal never gets near 2^63 records.
fn to_sql_lsn(lsn: Lsn) -> i64 {
    i64::try_from(lsn).expect("LSN beyond i64::MAX")
}

fn storage(path: &Path, what: &str, e: impl fmt::Display) -> JournalError {
    JournalError::Storage(format!("{}: {what}: {e}", path.display()))
}

/// Makes a newly created file's directory entry durable, so that a power loss cannot forget the
/// file itself (SQLite syncs the WAL's directory entry, not the main file's).
fn sync_parent_dir(path: &Path) -> Result<(), JournalError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| storage(path, "sync directory", e))
}
