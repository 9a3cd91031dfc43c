//! The engine made durable by the SQLite journal: the same crash-at-every-step harness as the
//! in-memory journal's (`core/tests/durability.rs`), where a crash drops the open connection with
//! its uncommitted batch and recovery reopens the file. Every run must lose no input, post nothing
//! twice and leave no gap in the audit chain; snapshots stored in the file bound replay.

#[path = "../../core/tests/support/mod.rs"]
mod support;

use plantloop_core::journal::Journal;
use plantloop_server::journal::{SqliteJournal, SyncMode};
use support::crash::*;
use support::*;

impl CrashJournal for SqliteJournal {
    fn crash(self: Box<Self>) -> Box<dyn CrashJournal> {
        let (path, mode) = (self.path().to_owned(), self.sync_mode());
        SqliteJournal::crash(*self);
        Box::new(SqliteJournal::open(path, mode).expect("the journal reopens after a crash"))
    }
}

/// A fresh journal file per run. `NORMAL` keeps what a process crash keeps, as `FULL` does, at
/// a fraction of the fsyncs: the crashes here are process crashes.
fn files(dir: &tempfile::TempDir) -> impl FnMut() -> Box<dyn CrashJournal> + '_ {
    let mut n = 0;
    move || {
        n += 1;
        let path = dir.path().join(format!("run-{n}.db"));
        Box::new(SqliteJournal::open(path, SyncMode::Normal).unwrap())
    }
}

#[test]
fn a_crash_at_every_step_over_sqlite_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    crash_everywhere(
        Setup {
            legacy: true,
            ack_then_timeout_every: 4,
            snapshot_every: 0,
        },
        &mut files(&dir),
    );
}

#[test]
fn a_crash_at_every_step_over_sqlite_with_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    crash_everywhere(
        Setup {
            legacy: false,
            ack_then_timeout_every: 5,
            snapshot_every: 4,
        },
        &mut files(&dir),
    );
}

#[test]
fn sqlite_and_memory_journals_give_the_same_run() {
    // Same inputs, same crash: the journal behind the engine changes nothing a target or the
    // audit log can see.
    let dir = tempfile::tempdir().unwrap();
    let s = Setup {
        legacy: true,
        ack_then_timeout_every: 3,
        snapshot_every: 5,
    };
    let point = vec![CrashPoint::AfterSync(30)];
    let sqlite = world(s, &mut files(&dir), point.clone());
    let memory = world(
        s,
        &mut || Box::new(plantloop_core::journal::MemoryJournal::new()),
        point,
    );
    assert_eq!(sqlite.recoveries, memory.recoveries);
    assert!(sqlite.recoveries[0].snapshot_lsn.is_some());
    assert_eq!(sqlite.calls, memory.calls);
    assert_eq!(sqlite.audit, memory.audit);
    assert_eq!(sqlite.all_postings(), memory.all_postings());
    check(&sqlite, s, "sqlite");
    // The file holds only what the newest snapshot does not cover.
    drop(sqlite);
    let j = SqliteJournal::open(dir.path().join("run-1.db"), SyncMode::Normal);
    assert!(j.is_ok(), "the run's journal is closed and reopens");
    let j = j.unwrap();
    let mut replayed = 0;
    j.replay_after(0, &mut |_, _| {
        replayed += 1;
        Ok(())
    })
    .unwrap();
    assert!(replayed <= 5 + 1, "{replayed} records after the snapshot");
    assert!(j.latest_snapshot().unwrap().is_some());
}
