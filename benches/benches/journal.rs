//! The SQLite journal's append rate against SQLite itself.
//!
//! For each sync mode, three figures in elements (200-byte records) per second:
//! - `journal/<mode>/sync-each`: `SqliteJournal`, one sync (commit) per append: the cost of
//!   acknowledging every input on its own.
//! - `journal/<mode>/group-1000`: `SqliteJournal`, 1,000 appends per sync (group commit).
//! - `journal/<mode>/raw-1000`: plain rusqlite, the same blobs inserted into a two-column table,
//!   1,000 per transaction with a cached prepared statement and the journal's pragmas: the ceiling.
//!
//! - `journal/<mode>/durable-engine-1000`: the engine's mixed workload (see `benches/engine.rs`)
//!   behind `SqliteJournal`: source events per second when every group of 1,000 events, and the
//!   replies their calls get, is synced before the outputs go out (about 1.7 journal records per
//!   event). End to end, for scale; each run starts on a fresh file.
//!
//! The target is group-1000 ≥ 50% of raw-1000. Run with
//! `cargo bench -p plantloop-benches --bench journal -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use plantloop_benches::workload::{drive_durable, primed_durable, workload};
use plantloop_core::journal::Journal;
use plantloop_server::journal::{SqliteJournal, SyncMode};

const RECORD_BYTES: usize = 200;
/// Source events per run of the durable-engine figure.
const DURABLE_EVENTS: usize = 50_000;
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

        // The engine behind the journal: source events per second of the mixed workload, each
        // group of 1,000 events and the replies their calls get synced before outputs go out.
        g.throughput(Throughput::Elements(DURABLE_EVENTS as u64));
        g.sample_size(10);
        let events = workload(DURABLE_EVENTS, 42);
        let mut n = 0;
        g.bench_function(format!("durable-engine-{GROUP}"), |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let path = dir.path().join(format!("engine-{name}-{n}.db"));
                    let mut de = primed_durable(SqliteJournal::open(&path, mode).unwrap()).unwrap();
                    let batch = events.clone();
                    let start = std::time::Instant::now();
                    black_box(drive_durable(&mut de, batch, 1_000_000, GROUP).unwrap());
                    total += start.elapsed();
                    drop(de);
                    std::fs::remove_file(&path).ok();
                }
                total
            })
        });
        g.finish();
    }
}

criterion_group!(benches, journal);
criterion_main!(benches);
