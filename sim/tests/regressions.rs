//! Every scenario in `scenarios/regressions/` (failures `plantloop explore` found, each named after
//! what it caught) passes, with its `expect.min` proving it still exercises that path.

use plantloop_sim::explore::failed_ids;
use plantloop_sim::runner::{RunOptions, run};
use plantloop_sim::scenario::Scenario;

#[test]
fn regression_scenarios_pass() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/regressions");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("scenarios/regressions exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut failed = Vec::new();
    for f in &files {
        let s = Scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        let seed = s.seed;
        let r = run(s, RunOptions::default());
        let ids = failed_ids(&r);
        if !ids.is_empty() {
            failed.push(format!(
                "{} (seed={seed}): {ids:?} {:?}",
                f.display(),
                r.shortfalls
            ));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
