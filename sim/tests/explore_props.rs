//! Property tests over random scenarios (`explore::strategy`): every variation is a valid scenario
//! file, passes every invariant, and replays to the same trace hash. A bounded number of cases runs
//! under `cargo test`; `plantloop explore` runs thousands.

use plantloop_sim::explore::{default_base, failed_ids, run_seed, strategy::scenarios};
use plantloop_sim::scenario::Scenario;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_scenarios_hold_every_invariant(s in scenarios(default_base())) {
        let text = s.to_toml_string();
        prop_assert_eq!(&Scenario::from_str(&text, "(generated)").expect("valid"), &s);
        let r = run_seed(&s, s.seed);
        prop_assert!(
            failed_ids(&r).is_empty(),
            "seed={} fails {:?}: {:?}\n{}",
            s.seed,
            failed_ids(&r),
            r.invariants.iter().filter(|i| !i.passed).map(|i| &i.violations).collect::<Vec<_>>(),
            text
        );
    }

    #[test]
    fn random_scenarios_replay_to_the_same_trace_hash(s in scenarios(default_base())) {
        let (a, b) = (run_seed(&s, s.seed), run_seed(&s, s.seed));
        prop_assert_eq!(&a.trace_hash, &b.trace_hash, "seed={}", s.seed);
        prop_assert_eq!(a.counts, b.counts);
    }
}
