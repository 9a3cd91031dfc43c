//! Durability over the in-memory journal: a crash at every step of the closed loop (before the
//! journal sync, between the sync and the release of outputs, after the release; with and
//! without snapshots; against modern and legacy targets) loses no input, duplicates no posting
//! and leaves no gap in the audit chain; snapshots bound replay without changing what comes
//! after; the same inputs give the same audit hashes. (`plantloop-server` runs the same harness
//! over the SQLite journal.)

mod support;

use plantloop_core::durable::{
    DurableEngine, DurableError, SNAPSHOT_LAYOUT, decode_snapshot, encode_snapshot,
};
use plantloop_core::engine::{Config, Engine, Input};
use plantloop_core::journal::{Journal, MemoryJournal};
use plantloop_core::*;
use support::crash::*;
use support::*;

fn memory() -> Box<dyn CrashJournal> {
    Box::new(MemoryJournal::new())
}

fn world(s: Setup, crash_points: Vec<CrashPoint>) -> World {
    support::crash::world(s, &mut memory, crash_points)
}

fn crash_everywhere(s: Setup) {
    support::crash::crash_everywhere(s, &mut memory)
}

#[test]
fn a_crash_at_every_step_loses_nothing_and_duplicates_nothing_modern() {
    crash_everywhere(Setup {
        legacy: false,
        ack_then_timeout_every: 0,
        snapshot_every: 0,
    });
}

#[test]
fn a_crash_at_every_step_loses_nothing_and_duplicates_nothing_legacy() {
    crash_everywhere(Setup {
        legacy: true,
        ack_then_timeout_every: 0,
        snapshot_every: 0,
    });
}

#[test]
fn a_crash_at_every_step_with_ack_then_timeouts_legacy() {
    crash_everywhere(Setup {
        legacy: true,
        ack_then_timeout_every: 4,
        snapshot_every: 0,
    });
}

#[test]
fn a_crash_at_every_step_with_snapshots() {
    for legacy in [false, true] {
        crash_everywhere(Setup {
            legacy,
            ack_then_timeout_every: 5,
            snapshot_every: 4,
        });
    }
}

#[test]
fn recovering_from_a_snapshot_gives_the_same_outputs_as_replaying_everything() {
    for k in [7, 20, 33, 50] {
        for point in [
            CrashPoint::BeforeSync(k),
            CrashPoint::AfterSync(k),
            CrashPoint::AfterRelease(k),
        ] {
            let base = Setup {
                legacy: true,
                ack_then_timeout_every: 3,
                snapshot_every: 0,
            };
            let snap = Setup {
                snapshot_every: 3,
                ..base
            };
            let a = world(base, vec![point]);
            let b = world(snap, vec![point]);
            assert_eq!(a.recoveries[0].snapshot_lsn, None);
            assert!(b.recoveries[0].snapshot_lsn.is_some(), "{point:?}");
            assert!(b.recoveries[0].replayed < a.recoveries[0].replayed);
            assert_eq!(a.calls, b.calls, "{point:?}");
            assert_eq!(a.audit, b.audit, "{point:?}");
        }
    }
}

#[test]
fn the_same_inputs_give_the_same_audit_hashes() {
    let s = Setup {
        legacy: true,
        ack_then_timeout_every: 3,
        snapshot_every: 0,
    };
    let hashes = |w: &World| w.audit.iter().map(|r| r.hash).collect::<Vec<_>>();
    let a = world(s, vec![]);
    let b = world(s, vec![]);
    assert!(!a.audit.is_empty());
    assert_eq!(hashes(&a), hashes(&b));
    // A crash changes the path (sends again, looks first) but not what was posted.
    let c = world(s, vec![CrashPoint::AfterRelease(30)]);
    assert_eq!(a.all_postings(), c.all_postings());
}

#[test]
fn an_engine_round_trips_through_a_snapshot_mid_run() {
    // Two engines, one of them serialized and restored halfway: same outputs afterwards.
    let mut w = World::new(Config::default(), 9);
    closed_loop(&mut w);
    w.run_for(Duration::from_millis(4_500));
    let bytes = encode_snapshot(w.engine()).unwrap();
    let restored: Engine = decode_snapshot(1, &bytes).unwrap();
    assert_eq!(encode_snapshot(&restored).unwrap(), bytes);
    let mut a = w.engine().clone();
    let mut b = restored;
    let inputs = [
        Input::Tick,
        Input::Event(confirmation("x-1", "O-1", S1, 30, 31)),
        Input::Event(alarm("x-2", S1, AlarmSeverity::Fault)),
        Input::Event(disposition("x-3", "NC-1", DispositionDecision::Release)),
        Input::Event(completed("x-4", "WO-NC-1", S1, None, vec![], vec![])),
    ];
    for (i, input) in inputs.into_iter().enumerate() {
        let at = w.now + Duration::from_secs(i as u64);
        assert_eq!(a.handle(at, input.clone()), b.handle(at, input));
        loop {
            let (ca, cb) = (a.poll_command(), b.poll_command());
            assert_eq!(ca, cb);
            if ca.is_none() {
                break;
            }
        }
        loop {
            let (ra, rb) = (a.poll_audit(), b.poll_audit());
            assert_eq!(ra, rb);
            if ra.is_none() {
                break;
            }
        }
        assert_eq!(a.poll_timeout(), b.poll_timeout());
    }
}

/// The engine state of a short closed-loop run, as a snapshot holds it.
fn pinned_run_snapshot() -> Vec<u8> {
    let mut w = World::new(Config::default(), 9);
    closed_loop(&mut w);
    w.run_for(Duration::from_millis(4_500));
    encode_snapshot(w.engine()).unwrap()
}

#[test]
fn the_snapshot_layout_is_pinned() {
    // A snapshot is postcard, which does not describe itself: a build whose engine state differs
    // in shape must not read another's. When this fails, the engine's serialized state changed:
    // if its shape changed (a field, a type, an order), raise SNAPSHOT_LAYOUT in durable.rs; in
    // any case, pin the new digest.
    let bytes = pinned_run_snapshot();
    assert_eq!(
        &bytes[..8],
        [b"plsnap".as_slice(), &SNAPSHOT_LAYOUT.to_le_bytes()].concat()
    );
    // The engine's configuration is part of its state, and the `sabotage` feature adds a field.
    let pin = if cfg!(feature = "sabotage") {
        "d4be789f361e7ceb497b2cb4ce719f8abf9b7df047869db42835d0648cf4866d"
    } else {
        "8d5f932289500527844ff861a8cad43c7efb2ce871cb7a78bee114b2f2650ff0"
    };
    assert_eq!(
        (SNAPSHOT_LAYOUT, blake3::hash(&bytes).to_hex().to_string()),
        (5, pin.to_string()),
    );
}

#[test]
fn a_snapshot_of_another_layout_is_refused_by_name_not_misread() {
    let snapshot = pinned_run_snapshot();
    let untagged = snapshot[8..].to_vec();
    let mut newer = snapshot.clone();
    newer[6..8].copy_from_slice(&(SNAPSHOT_LAYOUT + 1).to_le_bytes());
    for (bytes, found) in [(untagged, 1), (newer, SNAPSHOT_LAYOUT + 1)] {
        let mut j = MemoryJournal::new();
        j.append(b"an input").unwrap();
        j.sync().unwrap();
        j.save_snapshot(1, &bytes).unwrap();
        let err = DurableEngine::open(j, Config::default(), 9, 0)
            .err()
            .unwrap();
        assert!(
            matches!(err, DurableError::SnapshotLayout { lsn: 1, found: f, expected }
                if f == found && expected == SNAPSHOT_LAYOUT),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&format!("layout {found}")), "{text}");
    }
    // A tag with nothing after it is damage, not another layout.
    let err = decode_snapshot(3, b"plsnap").err().unwrap();
    assert!(
        matches!(err, DurableError::Snapshot { lsn: 3, .. }),
        "{err:?}"
    );
}
