//! The kernel against a reference model: a plain list sorted by (instant, scheduling order).
//! Random sequences of schedule / cancel / pop must agree step by step.

use plantloop_core::time::{Duration, Instant};
use plantloop_sim::kernel::{EventId, Kernel, SeedTree};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Schedule after this many seconds (small, so many events share an instant).
    Schedule(u8),
    /// Cancel the n-th id handed out so far (modulo), pending or not.
    Cancel(usize),
    Pop,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5).prop_map(Op::Schedule),
        2 => any::<usize>().prop_map(Op::Cancel),
        3 => Just(Op::Pop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn kernel_agrees_with_a_sorted_list(ops in prop::collection::vec(op(), 1..400)) {
        let mut k: Kernel<u64> = Kernel::new();
        // Reference: (instant, seq, payload) for pending events.
        let mut pending: Vec<(Instant, u64, u64)> = Vec::new();
        let mut ids: Vec<(EventId, u64)> = Vec::new();
        let mut next_payload = 0u64;
        for op in ops {
            match op {
                Op::Schedule(s) => {
                    let at = k.now() + Duration::from_secs(s as u64);
                    let id = k.schedule_at(at, next_payload);
                    pending.push((at, id.seq(), next_payload));
                    ids.push((id, next_payload));
                    next_payload += 1;
                }
                Op::Cancel(n) => {
                    if ids.is_empty() {
                        continue;
                    }
                    let (id, payload) = ids[n % ids.len()];
                    let was_pending = pending.iter().position(|p| p.2 == payload);
                    prop_assert_eq!(k.is_pending(id), was_pending.is_some());
                    prop_assert_eq!(k.cancel(id), was_pending.is_some());
                    if let Some(i) = was_pending {
                        pending.remove(i);
                    }
                    prop_assert!(!k.is_pending(id));
                }
                Op::Pop => {
                    pending.sort();
                    let want = if pending.is_empty() { None } else { Some(pending.remove(0)) };
                    let got = k.pop();
                    prop_assert_eq!(got, want.map(|(at, _, p)| (at, p)));
                    if let Some((at, _, _)) = want {
                        prop_assert_eq!(k.now(), at);
                    }
                }
            }
            prop_assert_eq!(k.len(), pending.len());
            prop_assert_eq!(k.peek_time(), pending.iter().map(|p| p.0).min());
        }
    }
}

/// The same seed drives the same run: a small stochastic model run twice gives the same trace,
/// and a different seed a different one.
#[test]
fn a_seeded_run_is_reproducible() {
    fn run(seed: u64) -> Vec<(Instant, u32)> {
        let tree = SeedTree::new(seed);
        let mut rngs: Vec<_> = (0..4)
            .map(|m| tree.derive(&format!("machine/{m}")))
            .collect();
        let mut k = Kernel::new();
        for m in 0..4u32 {
            let d = rngs[m as usize].exponential(Duration::from_secs(60));
            k.schedule_in(d, m);
        }
        let mut trace = Vec::new();
        while let Some((at, m)) = k.pop_until(Instant::from_secs(3_600)) {
            trace.push((at, m));
            let d = rngs[m as usize].exponential(Duration::from_secs(60));
            k.schedule_in(d, m);
        }
        trace
    }
    let a = run(7);
    assert!(a.len() > 100, "{} events", a.len());
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
}
