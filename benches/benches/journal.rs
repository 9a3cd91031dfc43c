//! The SQLite journal's append rate against SQLite itself.
//!
//! For each sync mode, three figures in elements (200-byte records) per second:
//! - `journal/<mode>/sync-each`: `SqliteJournal`, one sync (commit) per append: the cost of
//!   acknowledging every input on its own.
//! - `journal/<mode>/group-1000`: `SqliteJournal`, 1,000 appends per sync (group commit).
//! - `journal/<mode>/raw-1000`: plain rusqlite, the same blobs inserted into a two-column table,
//!   1,000 per transaction with a cached prepared statement and the journal's pragmas: the ceiling.
//!
//! The target is group-1000 ≥ 50% of raw-1000. Run with
//! `cargo bench -p plantloop-benches --bench journal -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use plantloop_core::journal::Journal;
use plantloop_server::journal::{SqliteJournal, SyncMode};

const RECORD_BYTES: usize = 200;
const GROUP: usize = 1_000;

/// `GROUP` distinct 200-byte records, made once so the loops measure storage only.
fn records() -> Vec<Vec<u8>> {
    (0..GROUP as u64)
        .map(|i| {
            let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            (0..RECORD_BYTES)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect()
}

/// A plain SQLite table with the pragmas `SqliteJournal::open` sets.
fn raw_table(path: &Path, mode: SyncMode) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    let synchronous = match mode {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         CREATE TABLE raw (id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
    ))
    .unwrap();
    conn
}

fn journal(c: &mut Criterion) {
    let records = records();
    let dir = tempfile::tempdir().unwrap();
    for (mode, name) in [(SyncMode::Full, "full"), (SyncMode::Normal, "normal")] {
        let mut g = c.benchmark_group(format!("journal/{name}"));

        // One commit per element: with FULL that is one fsync each, so few samples, flat.
        g.throughput(Throughput::Elements(1));
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
        let mut j = SqliteJournal::open(dir.path().join(format!("each-{name}.db")), mode).unwrap();
        let mut next = 0;
        g.bench_function("sync-each", |b| {
            b.iter(|| {
                j.append(&records[next % GROUP]).unwrap();
                next += 1;
                black_box(j.sync().unwrap())
            })
        });
        drop(j);

        g.throughput(Throughput::Elements(GROUP as u64));
        g.sample_size(20).sampling_mode(SamplingMode::Auto);
        let mut j = SqliteJournal::open(dir.path().join(format!("group-{name}.db")), mode).unwrap();
        g.bench_function(format!("group-{GROUP}"), |b| {
            b.iter(|| {
                for r in &records {
                    j.append(r).unwrap();
                }
                black_box(j.sync().unwrap())
            })
        });
        drop(j);

        let mut conn = raw_table(&dir.path().join(format!("raw-{name}.db")), mode);
        g.bench_function(format!("raw-{GROUP}"), |b| {
            b.iter(|| {
                let tx = conn.transaction().unwrap();
                {
                    let mut insert = tx
                        .prepare_cached("INSERT INTO raw (data) VALUES (?1)")
                        .unwrap();
                    for r in &records {
                        insert.execute([r]).unwrap();
                    }
                }
                tx.commit().unwrap();
            })
        });
        drop(conn);
        g.finish();
    }
}

criterion_group!(benches, journal);
criterion_main!(benches);
