//! The SQLite journal against the `Journal` contract and against crashes, torn WAL tails and
//! corrupt files.
//!
//! The kill tests re-run this test binary as a child process (selected by `CHILD_ENV`) that writes a
//! journal and is killed with SIGKILL by the parent: a real process crash, with no destructor and
//! no SQLite checkpoint on close.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use plantloop_core::journal::{Durability, Journal, JournalError, Lsn};
use plantloop_server::journal::{SqliteJournal, SyncMode};

/// The record stored at `lsn` in every test: distinct bytes, lengths from 16 to 300, and a text
/// marker that occurs once per record so a test can find it in the raw file.
fn record(lsn: Lsn) -> Vec<u8> {
    let mut r = format!("<record {lsn:06}>").into_bytes();
    let len = 16 + (lsn as usize * 37) % 285;
    let mut x = lsn.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while r.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Stay below b'<' so the marker stays unique.
        r.push(b'0' + (x % 10) as u8);
    }
    r
}

fn expected(lsns: impl IntoIterator<Item = Lsn>) -> Vec<(Lsn, Vec<u8>)> {
    lsns.into_iter().map(|l| (l, record(l))).collect()
}

fn replay(j: &SqliteJournal, after: Lsn) -> Result<Vec<(Lsn, Vec<u8>)>, JournalError> {
    let mut out = vec![];
    j.replay_after(after, &mut |lsn, r| {
        out.push((lsn, r.to_vec()));
        Ok(())
    })?;
    Ok(out)
}

/// Appends `record(lsn)` for the next `n` LSNs, checking the LSNs handed out.
fn append_n(j: &mut SqliteJournal, n: u64) {
    for _ in 0..n {
        let lsn = j.last_lsn() + 1;
        assert_eq!(j.append(&record(lsn)).unwrap(), lsn);
    }
}

fn open(path: &Path) -> SqliteJournal {
    SqliteJournal::open(path, SyncMode::Normal).unwrap()
}

#[test]
fn reopen_after_drop_returns_exactly_the_synced_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut j = open(&path);
    assert_eq!(j.last_lsn(), 0);
    append_n(&mut j, 3);
    assert_eq!(j.sync().unwrap(), 3);
    append_n(&mut j, 2);
    assert_eq!(j.sync().unwrap(), 5);
    append_n(&mut j, 2);
    // Unsynced records are visible to replay but not durable.
    assert_eq!(replay(&j, 0).unwrap(), expected(1..=7));
    assert_eq!((j.synced_lsn(), j.pending(), j.commits()), (5, 2, 2));
    drop(j);

    let mut j = open(&path);
    assert_eq!(j.last_lsn(), 5);
    assert_eq!(replay(&j, 0).unwrap(), expected(1..=5));
    assert_eq!(replay(&j, 3).unwrap(), expected(4..=5));
    assert_eq!(replay(&j, 5).unwrap(), vec![]);
    assert_eq!(replay(&j, 99).unwrap(), vec![]);
    assert_eq!(j.append(&record(6)).unwrap(), 6);
    assert_eq!(j.sync().unwrap(), 6);
    // A sync with nothing pending is not a commit.
    assert_eq!(j.sync().unwrap(), 6);
    assert_eq!(j.commits(), 1);
    drop(j);
    assert_eq!(replay(&open(&path), 0).unwrap(), expected(1..=6));
}

#[test]
fn in_process_crash_loses_exactly_the_unsynced_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut j = SqliteJournal::open(&path, SyncMode::Full).unwrap();
    append_n(&mut j, 4);
    j.sync().unwrap();
    append_n(&mut j, 3);
    j.crash();
    let mut j = SqliteJournal::open(&path, SyncMode::Full).unwrap();
    assert_eq!(replay(&j, 0).unwrap(), expected(1..=4));
    // LSNs 5..=7 were never durable, so they are handed out again.
    assert_eq!(j.append(&record(5)).unwrap(), 5);
}

#[test]
fn replay_streams_durable_then_pending_records_in_lsn_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = open(&dir.path().join("j.db"));
    append_n(&mut j, 4);
    j.sync().unwrap();
    append_n(&mut j, 3);
    assert_eq!(replay(&j, 0).unwrap(), expected(1..=7));
    assert_eq!(replay(&j, 2).unwrap(), expected(3..=7));
    assert_eq!(replay(&j, 5).unwrap(), expected(6..=7));
    assert_eq!(replay(&j, 7).unwrap(), vec![]);
    // An error from the visitor stops the replay and comes back unchanged.
    let mut seen = vec![];
    let err = j
        .replay_after(0, &mut |lsn, _| {
            seen.push(lsn);
            if lsn == 5 {
                Err(JournalError::Storage("stop".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(
        matches!(err, JournalError::Storage(ref m) if m == "stop"),
        "{err}"
    );
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
}

#[test]
fn durability_follows_the_sync_mode() {
    let dir = tempfile::tempdir().unwrap();
    let full = SqliteJournal::open(dir.path().join("full.db"), SyncMode::Full).unwrap();
    let normal = SqliteJournal::open(dir.path().join("normal.db"), SyncMode::Normal).unwrap();
    assert_eq!(full.durability(), Durability::PowerLoss);
    assert_eq!(normal.durability(), Durability::Process);
}

#[test]
fn snapshot_bounds_replay_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut j = open(&path);
    assert_eq!(j.latest_snapshot().unwrap(), None);
    append_n(&mut j, 10);
    j.sync().unwrap();
    j.save_snapshot(7, b"state@7").unwrap();
    assert_eq!(j.latest_snapshot().unwrap(), Some((7, b"state@7".to_vec())));
    assert_eq!(replay(&j, 7).unwrap(), expected(8..=10));
    // Records covered by the snapshot are gone: replay from 0 starts after it.
    assert_eq!(replay(&j, 0).unwrap(), expected(8..=10));
    drop(j);

    let mut j = open(&path);
    assert_eq!(j.latest_snapshot().unwrap(), Some((7, b"state@7".to_vec())));
    assert_eq!(replay(&j, 7).unwrap(), expected(8..=10));
    assert_eq!(j.last_lsn(), 10);
    // A snapshot over unsynced records commits them too, and replaces the older snapshot.
    append_n(&mut j, 2);
    j.save_snapshot(11, b"state@11").unwrap();
    assert_eq!(j.synced_lsn(), 12);
    drop(j);

    let j = open(&path);
    assert_eq!(
        j.latest_snapshot().unwrap(),
        Some((11, b"state@11".to_vec()))
    );
    assert_eq!(replay(&j, 0).unwrap(), expected(12..=12));
    let raw = rusqlite_counts(j, &path);
    assert_eq!(raw, (1, 1), "one snapshot row and one record row are kept");
    // A snapshot at the last LSN leaves no records; LSNs resume after it on reopen.
    let mut j = open(&path);
    j.save_snapshot(12, b"state@12").unwrap();
    drop(j);
    let mut j = open(&path);
    assert_eq!(j.last_lsn(), 12);
    assert_eq!(replay(&j, 0).unwrap(), vec![]);
    assert_eq!(j.append(&record(13)).unwrap(), 13);
}

/// (snapshot rows, record rows) as a plain SQLite connection sees them; closes `j` first (it holds
/// the file exclusively).
fn rusqlite_counts(j: SqliteJournal, path: &Path) -> (i64, i64) {
    drop(j);
    let conn = rusqlite::Connection::open(path).unwrap();
    let count = |t: &str| {
        conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    };
    (count("snapshots"), count("records"))
}

#[test]
fn a_second_open_of_the_same_file_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut j = open(&path);
    append_n(&mut j, 1);
    j.sync().unwrap();
    let err = SqliteJournal::open(&path, SyncMode::Normal).unwrap_err();
    assert_storage_error_names(&err, &path);
    drop(j);
    assert_eq!(replay(&open(&path), 0).unwrap(), expected(1..=1));
}

fn assert_storage_error_names(err: &JournalError, path: &Path) {
    match err {
        JournalError::Storage(m) => {
            assert!(m.contains(&path.display().to_string()), "{m}")
        }
        other => panic!("expected a storage error, got {other}"),
    }
}

#[test]
fn files_that_are_not_journals_are_storage_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let err = SqliteJournal::open(&junk, SyncMode::Normal).unwrap_err();
    assert_storage_error_names(&err, &junk);

    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = SqliteJournal::open(&other, SyncMode::Normal).unwrap_err();
    assert_storage_error_names(&err, &other);
    assert!(err.to_string().contains("not a plantloop journal"), "{err}");

    let err = SqliteJournal::open(dir.path(), SyncMode::Normal).unwrap_err();
    assert_storage_error_names(&err, dir.path());
    let missing = dir.path().join("no/such/dir/j.db");
    let err = SqliteJournal::open(&missing, SyncMode::Normal).unwrap_err();
    assert_storage_error_names(&err, &missing);
}

/// Writes records 1..=n in committed batches and closes the journal, so they all end up in the
/// main database file (closing checkpoints the WAL).
fn checkpointed_journal(path: &Path, n: u64) {
    let mut j = open(path);
    while j.last_lsn() < n {
        let k = 3.min(n - j.last_lsn());
        append_n(&mut j, k);
        j.sync().unwrap();
    }
}

#[test]
fn a_flipped_byte_in_a_record_is_reported_as_corrupt_with_its_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    checkpointed_journal(&path, 10);
    let mut bytes = std::fs::read(&path).unwrap();
    let marker = b"<record 000004>";
    let at = find(&bytes, marker).expect("record 4 is in the file");
    assert_eq!(find(&bytes[at + 1..], marker), None, "marker is unique");
    bytes[at + marker.len() + 1] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let j = open(&path);
    let mut seen = vec![];
    let err = j
        .replay_after(0, &mut |lsn, r| {
            assert_eq!(r, record(lsn));
            seen.push(lsn);
            Ok(())
        })
        .unwrap_err();
    assert_eq!(seen, vec![1, 2, 3]);
    assert!(matches!(err, JournalError::Corrupt { lsn: 4, .. }), "{err}");
    // Replay after the bad record is unaffected.
    assert_eq!(replay(&j, 4).unwrap(), expected(5..=10));
}

#[test]
fn rows_changed_behind_the_journals_back_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    checkpointed_journal(&path, 6);
    {
        let mut j = open(&path);
        j.save_snapshot(2, b"state@2").unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    // Swapped rows: each is a valid record, but at the wrong LSN.
    conn.execute_batch(
        "UPDATE records SET lsn = -5 WHERE lsn = 5;
         UPDATE records SET lsn = 5 WHERE lsn = 4;
         UPDATE records SET lsn = 4 WHERE lsn = -5;
         UPDATE snapshots SET state = X'00' WHERE lsn = 2;",
    )
    .unwrap();
    drop(conn);
    let j = open(&path);
    let mut seen = vec![];
    let err = j
        .replay_after(0, &mut |lsn, _| {
            seen.push(lsn);
            Ok(())
        })
        .unwrap_err();
    assert_eq!(seen, vec![3]);
    assert!(matches!(err, JournalError::Corrupt { lsn: 4, .. }), "{err}");
    assert!(matches!(
        j.latest_snapshot(),
        Err(JournalError::Corrupt { lsn: 2, .. })
    ));
    drop(j);

    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM records WHERE lsn = 4", [])
        .unwrap();
    drop(conn);
    let j = open(&path);
    let err = replay(&j, 3).unwrap_err();
    assert!(
        matches!(err, JournalError::Corrupt { lsn: 4, .. }),
        "a gap is reported: {err}"
    );
}

#[test]
fn any_flipped_byte_in_the_database_file_errors_or_yields_verified_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    checkpointed_journal(&path, 40);
    let original = std::fs::read(&path).unwrap();
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("j.db");
    let (mut ok, mut failed) = (0, 0);
    for at in (0..original.len()).step_by(11) {
        let mut bytes = original.clone();
        bytes[at] ^= 0x20;
        std::fs::write(&copy, &bytes).unwrap();
        let outcome = SqliteJournal::open(&copy, SyncMode::Normal).and_then(|j| replay(&j, 0));
        match outcome {
            Ok(records) => {
                // Whatever is yielded is byte-identical and contiguous from 1.
                assert_eq!(records, expected(1..=records.len() as Lsn), "flip at {at}");
                ok += 1;
            }
            Err(_) => failed += 1,
        }
        let _ = std::fs::remove_file(copy.with_extension("db-wal"));
    }
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A journal whose file holds 5 checkpointed records plus a WAL with 12 more commits, still open.
/// Returns the journal (keep it alive while copying), the db and wal bytes, and the LSN after
/// each commit (the prefixes recovery may legitimately yield).
fn journal_with_wal(dir: &Path) -> (SqliteJournal, Vec<u8>, Vec<u8>, Vec<Lsn>) {
    let path = dir.join("j.db");
    checkpointed_journal(&path, 5);
    let mut j = open(&path);
    let mut boundaries = vec![5];
    for commit in 0..12u64 {
        append_n(&mut j, 1 + commit % 5);
        boundaries.push(j.sync().unwrap());
    }
    let db = std::fs::read(&path).unwrap();
    let wal = std::fs::read(dir.join("j.db-wal")).unwrap();
    assert!(wal.len() > 4096, "the commits are in the WAL");
    (j, db, wal, boundaries)
}

/// Opens a copy made of `db` and `wal` and checks that it yields the records up to one of
/// `boundaries`, and that appending resumes right after them. Returns how many it yields.
fn recover_copy(db: &[u8], wal: &[u8], boundaries: &[Lsn], what: &str) -> Lsn {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    std::fs::write(&path, db).unwrap();
    std::fs::write(dir.path().join("j.db-wal"), wal).unwrap();
    let mut j = SqliteJournal::open(&path, SyncMode::Normal)
        .unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
    let records = replay(&j, 0).unwrap_or_else(|e| panic!("{what}: replay failed: {e}"));
    let n = records.len() as Lsn;
    assert_eq!(records, expected(1..=n), "{what}");
    assert!(
        boundaries.contains(&n),
        "{what}: {n} records is not a commit boundary"
    );
    assert_eq!(j.last_lsn(), n, "{what}");
    assert_eq!(j.append(&record(n + 1)).unwrap(), n + 1, "{what}");
    assert_eq!(j.sync().unwrap(), n + 1, "{what}");
    n
}

#[test]
fn a_torn_wal_tail_recovers_a_prefix_of_the_committed_records() {
    let dir = tempfile::tempdir().unwrap();
    let (_j, db, wal, boundaries) = journal_with_wal(dir.path());
    const HEADER: usize = 32;
    const FRAME: usize = 24 + 4096;
    let mut offsets: Vec<usize> = (0..wal.len()).step_by(997).collect();
    for frame_end in (HEADER..=wal.len()).step_by(FRAME) {
        offsets.extend([
            frame_end.saturating_sub(1),
            frame_end,
            frame_end + 1,
            frame_end + 24,
        ]);
    }
    offsets.retain(|&o| o <= wal.len());
    offsets.extend([0, 1, 31, wal.len()]);
    offsets.sort_unstable();
    offsets.dedup();
    let mut yielded = std::collections::BTreeSet::new();
    for &cut in &offsets {
        yielded.insert(recover_copy(
            &db,
            &wal[..cut],
            &boundaries,
            &format!("cut at {cut}"),
        ));
    }
    assert!(
        yielded.contains(&5),
        "an empty WAL leaves the checkpointed records"
    );
    assert!(
        yielded.contains(boundaries.last().unwrap()),
        "the whole WAL yields everything"
    );
    assert!(
        yielded.len() >= boundaries.len() / 2,
        "prefixes seen: {yielded:?}"
    );
}

#[test]
fn a_flipped_wal_byte_recovers_a_prefix_of_the_committed_records() {
    let dir = tempfile::tempdir().unwrap();
    let (_j, db, wal, boundaries) = journal_with_wal(dir.path());
    let mut yielded = std::collections::BTreeSet::new();
    for at in (0..wal.len())
        .step_by(1009)
        .chain([0, 12, 24, 28, 32, 36, 44, 56])
    {
        let mut bad = wal.clone();
        bad[at] ^= 0x04;
        yielded.insert(recover_copy(
            &db,
            &bad,
            &boundaries,
            &format!("flip at {at}"),
        ));
    }
    assert!(
        yielded.len() >= boundaries.len() / 2,
        "prefixes seen: {yielded:?}"
    );
}

// ---- Kill tests: a child process writes, the parent kills it with SIGKILL. ----

/// Set (to the journal path) in the child's environment; its value selects the child's behaviour.
const CHILD_ENV: &str = "PLANTLOOP_JOURNAL_TEST_CHILD";
const CHILD_MODE_ENV: &str = "PLANTLOOP_JOURNAL_TEST_CHILD_MODE";
/// A child never outlives this, even if its parent dies without killing it.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(60);

/// Not a test on its own: the body of the child process for the kill tests. Does nothing unless
/// `CHILD_ENV` is set. Reports progress on stderr, one line per event: `synced N`, `pending N`.
#[test]
fn child_writer_for_the_kill_tests() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mode = std::env::var(CHILD_MODE_ENV).unwrap();
    let started = std::time::Instant::now();
    let mut j = open(Path::new(&path));
    let mut batch = 0u64;
    while started.elapsed() < CHILD_LIFETIME_MAX {
        batch += 1;
        if mode == "pending" && batch > 20 {
            append_n(&mut j, 7);
            eprintln!("pending {}", j.last_lsn());
            std::thread::sleep(CHILD_LIFETIME_MAX);
            break;
        }
        append_n(&mut j, 1 + batch % 9);
        let lsn = j.sync().unwrap();
        eprintln!("synced {lsn}");
    }
    std::process::exit(1);
}

/// Starts the child writer on `path` in `mode`.
fn spawn_child(path: &Path, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writer_for_the_kill_tests",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .env(CHILD_MODE_ENV, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads the child's report lines until `stop` says so; returns the last `synced` LSN reported.
fn read_child(child: &mut Child, mut stop: impl FnMut(&str) -> bool) -> Lsn {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut synced = 0;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("synced ") {
            synced = n.parse().unwrap();
        }
        if stop(&line) {
            return synced;
        }
    }
    panic!(
        "child ended before the test could kill it: {:?}",
        child.wait()
    );
}

fn kill(child: &mut Child) {
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status}");
}

#[test]
fn killed_process_keeps_exactly_the_synced_records() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("j.db");
    let mut child = spawn_child(&path, "pending");
    let synced = read_child(&mut child, |line| line.starts_with("pending "));
    kill(&mut child);
    assert!(synced > 20);
    let j = open(&path);
    assert_eq!(j.last_lsn(), synced);
    assert_eq!(replay(&j, 0).unwrap(), expected(1..=synced));
}

#[test]
fn killed_mid_write_process_keeps_a_prefix_with_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("j.db");
    let mut child = spawn_child(&path, "busy");
    let mut lines = 0;
    // The child keeps writing while we read, so the kill lands at an arbitrary point.
    let acknowledged = read_child(&mut child, |_| {
        lines += 1;
        lines == 300
    });
    kill(&mut child);
    let mut j = open(&path);
    let records = replay(&j, 0).unwrap();
    let n = records.len() as Lsn;
    assert!(
        n >= acknowledged,
        "{n} records survive, {acknowledged} were acknowledged"
    );
    assert_eq!(records, expected(1..=n));
    assert_eq!(j.append(&record(n + 1)).unwrap(), n + 1);
    j.sync().unwrap();
}
