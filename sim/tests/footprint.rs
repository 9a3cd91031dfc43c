//! The engine's memory stays flat over a long run once its retention windows have passed
//! (`scenarios/long/plant-90d-retention.toml`; `examples/footprint.rs` prints the whole table).

use plantloop_core::durable::encode_snapshot;
use plantloop_core::engine::Footprint;
use plantloop_core::time::{Duration, Instant};
use plantloop_sim::scenario::Scenario;
use plantloop_sim::world::World;

fn at(w: &mut World, day: u64) -> (Footprint, usize) {
    w.run_until(Instant::ZERO + Duration::from_hours(24 * day));
    let e = w
        .engine()
        .expect("the core is up (its one crash is on day 60)");
    (e.footprint(), encode_snapshot(e).expect("encodes").len())
}

#[test]
fn ninety_days_leave_the_engine_as_large_as_forty_five() {
    let text = include_str!("../../scenarios/long/plant-90d-retention.toml");
    let s = Scenario::from_str(text, "plant-90d-retention.toml").expect("valid");
    let seed = s.seed;
    let mut w = World::new(s, seed, None);
    w.start();
    let (f45, bytes45) = at(&mut w, 45);
    let (f90, bytes90) = at(&mut w, 90);
    // Tables that grow with history stop growing after the 30-day retention window.
    for (name, a, b) in [
        ("containments", f45.containments, f90.containments),
        (
            "work-order links",
            f45.work_order_links,
            f90.work_order_links,
        ),
        ("completions", f45.completions, f90.completions),
        ("orders", f45.orders, f90.orders),
        ("dedupe entries", f45.dedupe_entries, f90.dedupe_entries),
    ] {
        assert!(a > 0, "{name}: the run exercises it");
        assert!(b * 10 <= a * 12, "{name}: {a} at day 45, {b} at day 90");
    }
    assert!(
        bytes90 * 10 <= bytes45 * 11,
        "snapshot: {bytes45} bytes at day 45, {bytes90} at day 90"
    );
    let stats = w.engine().expect("up").stats().clone();
    assert!(
        stats.containments_forgotten > 0 && stats.orders_evicted > 0,
        "{stats:?}"
    );
}
