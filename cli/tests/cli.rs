//! The CLI contract (spec/cli.md): exit codes, messages naming file, line and key, output files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plantloop"))
}

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plantloop-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_passing_scenario_exits_0_and_writes_json_and_junit() {
    let d = tmp("pass");
    let (json, junit) = (d.join("r.json"), d.join("j.xml"));
    let o = bin()
        .arg("run")
        .arg(scenarios().join("seed-2-pattern-to-maintenance.toml"))
        .args([
            "--json",
            json.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("PASS seed-2-pattern-to-maintenance"),
        "{}",
        text(&o)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["scenario"], "seed-2-pattern-to-maintenance");
    assert_eq!(r["passed"], true);
    for key in [
        "seed",
        "sim",
        "trace_hash",
        "counts",
        "latency",
        "invariants",
    ] {
        assert!(!r[key].is_null(), "report lacks {key}");
    }
    assert_eq!(r["invariants"].as_array().unwrap().len(), 14);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testcase name=\"containment\""), "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_scenario_that_falls_short_exits_1_and_prints_the_seed() {
    let d = tmp("short");
    let text_in = std::fs::read_to_string(scenarios().join("seed-2-pattern-to-maintenance.toml"))
        .unwrap()
        .replace("critical_p99 = \"5s\"", "critical_p99 = \"1ms\"");
    let f = d.join("impossible-slo.toml");
    std::fs::write(&f, text_in).unwrap();
    let o = bin()
        .arg("run")
        .arg(&f)
        .args(["--seed", "3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("FAIL slo"), "{t}");
    assert!(t.contains("--seed 3"), "{t}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_input_exits_2_naming_file_line_and_key() {
    let d = tmp("bad");
    let f = d.join("typo.toml");
    let text_in = std::fs::read_to_string(scenarios().join("seed-2-pattern-to-maintenance.toml"))
        .unwrap()
        .replace("cycle_time = \"60s\"", "cycle_tme = \"60s\"");
    std::fs::write(&f, &text_in).unwrap();
    let o = bin().arg("run").arg(&f).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let line = text_in
        .lines()
        .position(|l| l.starts_with("cycle_tme"))
        .unwrap()
        + 1;
    let t = text(&o);
    assert!(t.contains(&format!("typo.toml:{line}")), "{t}");
    assert!(t.contains("cycle_tme"), "{t}");

    let o = bin().args(["run", "no/such/file.toml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no/such/file.toml"));

    let o = bin()
        .args(["run", "--seed", "minus-one"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--seed"), "{}", text(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn help_describes_every_flag() {
    let o = bin().args(["run", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let t = text(&o);
    for flag in ["--seed", "--json", "--junit", "--trace", "--quiet"] {
        assert!(t.contains(flag), "{flag} missing from help:\n{t}");
    }
}

// ---- explore ----------------------------------------------------------------------------------

#[test]
fn explore_passing_seeds_exits_0_with_a_json_summary_that_does_not_depend_on_jobs() {
    let d = tmp("explore-pass");
    let mut outs = Vec::new();
    for jobs in ["1", "2"] {
        let json = d.join(format!("x{jobs}.json"));
        let o = bin()
            .args(["explore", "--seeds", "6", "--start", "100", "--jobs", jobs])
            .arg("--json")
            .arg(&json)
            .arg("--out")
            .arg(d.join("failures"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(
            text(&o).contains("explored 6 seed(s) 100..106"),
            "{}",
            text(&o)
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(
            (v["passed"].as_u64(), v["failed"].as_u64()),
            (Some(6), Some(0))
        );
        outs.push(v["events"].clone());
    }
    assert_eq!(outs[0], outs[1], "the same seeds ran the same events");
}

#[test]
fn explore_shards_split_the_range() {
    let o = bin()
        .args([
            "explore", "--seeds", "9", "--start", "3", "--shard", "2/3", "--jobs", "1",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("explored 3 seed(s) 6..9 (shard 2/3)"),
        "{}",
        text(&o)
    );
}

#[test]
fn explore_a_failure_exits_1_with_the_seed_and_a_reproducer_that_fails_the_same_way() {
    // A base whose critical objective no run can meet; seed 100's variation has no fault, so
    // explore adds no allowance to the objective.
    let d = tmp("explore-fail");
    let base = d.join("tight.toml");
    let text_of_base = std::fs::read_to_string(scenarios().join("torque-drift-containment.toml"))
        .unwrap()
        .replace("critical_p99 = \"5s\"", "critical_p99 = \"1ms\"");
    assert!(text_of_base.contains("\"1ms\""));
    std::fs::write(&base, text_of_base).unwrap();
    let out = d.join("failures");
    let o = bin()
        .args([
            "explore",
            "--seeds",
            "1",
            "--start",
            "100",
            "--shrink-runs",
            "30",
        ])
        .arg("--scenario")
        .arg(&base)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("FAIL seed=100  slo"), "{t}");
    assert!(t.contains("reproduce with: plantloop run"), "{t}");
    let repro = out.join("explore-torque-drift-containment-seed-100.toml");
    assert!(repro.is_file(), "{t}");
    let o = bin().arg("run").arg(&repro).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("FAIL   slo") || text(&o).contains("FAIL slo"),
        "{}",
        text(&o)
    );
}

#[test]
fn explore_bad_flags_exit_2_naming_the_flag() {
    for (args, needle) in [
        (vec!["explore", "--seeds", "5", "--shard", "4/3"], "--shard"),
        (vec!["explore", "--seeds", "0"], "--seeds"),
        (vec!["explore", "--seeds", "2", "--jobs", "0"], "--jobs"),
        (
            vec!["explore", "--seeds", "2", "--start", "9223372036854775807"],
            "--start",
        ),
        (
            vec!["explore", "--seeds", "2", "--scenario", "/nonexistent.toml"],
            "/nonexistent.toml",
        ),
    ] {
        let o = bin().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
    }
}

#[test]
fn tui_bad_input_exits_2_naming_file_line_key_or_flag() {
    let d = tmp("tui-bad");
    let f = d.join("typo.toml");
    let text_in = std::fs::read_to_string(scenarios().join("torque-drift-containment.toml"))
        .unwrap()
        .replace("stations_per_line = 6", "stations_per_lin = 6");
    std::fs::write(&f, &text_in).unwrap();
    let line = text_in
        .lines()
        .position(|l| l.starts_with("stations_per_lin "))
        .unwrap()
        + 1;
    let o = bin().arg("tui").arg(&f).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains(&format!("typo.toml:{line}")), "{t}");
    assert!(t.contains("stations_per_lin"), "{t}");

    let o = bin().args(["tui", "no/such/file.toml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no/such/file.toml"), "{}", text(&o));

    let good = scenarios().join("torque-drift-containment.toml");
    for bad in ["0", "-1", "fast"] {
        let o = bin()
            .arg("tui")
            .arg(&good)
            .arg(format!("--speed={bad}"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(text(&o).contains("--speed"), "{}", text(&o));
    }

    let o = bin().arg("tui").arg(scenarios()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("is a folder"), "{}", text(&o));

    // A good file, but the test's stdout is a pipe: refused with a reason, not a garbled screen.
    let o = bin().arg("tui").arg(&good).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("needs a terminal"), "{}", text(&o));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn tui_help_describes_every_flag() {
    let o = bin().args(["tui", "--help"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let t = text(&o);
    for flag in ["--seed", "--speed", "--paused", "--trace"] {
        assert!(t.contains(flag), "{flag} missing from help:\n{t}");
    }
}

// ---- output conventions (issue 14) -----------------------------------------------------------

fn seed2() -> PathBuf {
    scenarios().join("seed-2-pattern-to-maintenance.toml")
}

#[test]
fn json_dash_writes_json_alone_to_stdout_and_the_summary_to_stderr() {
    let o = bin()
        .arg("run")
        .arg(seed2())
        .args(["--json", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON alone");
    assert_eq!(r["scenario"], "seed-2-pattern-to-maintenance");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("PASS seed-2-pattern-to-maintenance"), "{err}");

    let o = bin()
        .arg("run")
        .arg(seed2())
        .args(["--junit", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("<?xml"), "{out}");
    assert!(!out.contains("PASS"), "{out}");

    let o = bin()
        .arg("run")
        .arg(seed2())
        .args(["--json", "-", "--junit", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--json - and --junit -"), "{}", text(&o));
}

#[test]
fn a_closed_stdout_ends_the_run_quietly_not_with_exit_2() {
    use std::process::Stdio;
    let mut child = bin()
        .arg("run")
        .arg(seed2())
        .arg(scenarios().join("seed-1-inspection-failure.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before the first line
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn quiet_prints_only_failing_scenarios_and_their_failing_invariants() {
    let o = bin()
        .arg("run")
        .arg(seed2())
        .arg("--quiet")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o), "", "a passing run prints nothing");

    let d = tmp("quiet");
    let f = d.join("tight.toml");
    std::fs::write(
        &f,
        std::fs::read_to_string(seed2())
            .unwrap()
            .replace("critical_p99 = \"5s\"", "critical_p99 = \"1ms\""),
    )
    .unwrap();
    let o = bin().arg("run").arg(&f).arg("--quiet").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(t.contains("FAIL slo"), "{t}");
    assert!(!t.contains("  ok "), "passing invariants printed: {t}");
    assert!(!t.contains("latency"), "{t}");
    assert!(t.contains("reproduce:"), "{t}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_folder_runs_its_subfolders_and_a_duplicate_name_is_refused_at_its_line() {
    let d = tmp("recursive");
    std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(d.join(".hidden")).unwrap();
    let base = std::fs::read_to_string(seed2()).unwrap();
    let named = |n: &str| {
        base.replace(
            "name = \"seed-2-pattern-to-maintenance\"",
            &format!("name = \"{n}\""),
        )
    };
    std::fs::write(d.join("a.toml"), named("a")).unwrap();
    std::fs::write(d.join("sub/deeper/b.toml"), named("b")).unwrap();
    std::fs::write(d.join(".hidden/c.toml"), "not a scenario").unwrap();
    let o = bin().arg("run").arg(&d).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("PASS a ") && t.contains("PASS b "), "{t}");
    assert!(t.contains("2 scenario(s): 2 passed"), "{t}");

    // A comment line first, so that the name is not on line 1 or 2.
    std::fs::write(d.join("sub/z.toml"), format!("# again\n\n{}", named("a"))).unwrap();
    let o = bin().arg("run").arg(&d).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let line = named("a")
        .lines()
        .position(|l| l.starts_with("name ="))
        .unwrap()
        + 1;
    let t = text(&o);
    assert!(
        t.contains(&format!("z.toml:{}: scenario.name", line + 2)),
        "{t}"
    );
    assert!(t.contains(&format!("a.toml:{line}")), "{t}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn completions_and_version() {
    for shell in ["bash", "zsh", "fish"] {
        let o = bin().args(["completions", shell]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{shell}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("plantloop"));
    }
    let o = bin().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));

    let o = bin().arg("--version").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(
        v.starts_with(&format!("plantloop {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
}

#[test]
fn init_writes_a_starter_that_passes_and_refuses_to_overwrite() {
    let d = tmp("init");
    let dir = d.join("project");
    let o = bin().arg("init").arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for f in [
        "scenarios/starter.toml",
        "ci/github-actions.yml",
        "ci/gitlab-ci.yml",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    for ci in ["ci/github-actions.yml", "ci/gitlab-ci.yml"] {
        let t = std::fs::read_to_string(dir.join(ci)).unwrap();
        assert!(t.contains("plantloop run scenarios/ --junit"), "{t}");
        assert!(!t.contains('{'), "unfilled placeholder in {ci}: {t}");
    }
    let o = bin()
        .arg("run")
        .arg(dir.join("scenarios"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "the starter passes: {}", text(&o));

    std::fs::write(dir.join("ci/gitlab-ci.yml"), "mine").unwrap();
    let o = bin().arg("init").arg(&dir).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--force"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join("ci/gitlab-ci.yml")).unwrap(),
        "mine"
    );
    let o = bin().arg("init").arg(&dir).arg("--force").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_ne!(
        std::fs::read_to_string(dir.join("ci/gitlab-ci.yml")).unwrap(),
        "mine"
    );

    let file = d.join("a-file");
    std::fs::write(&file, "").unwrap();
    let o = bin().arg("init").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn replay_of_a_live_trace_gives_the_live_runs_trace_hash() {
    use plantloop_sim::live::LiveRun;
    use plantloop_sim::scenario::Scenario;
    use plantloop_sim::world::Injected;
    let d = tmp("replay");
    let file = seed2();
    let scenario = Scenario::load(&file).unwrap();
    let trace = d.join("live.jsonl");
    let mut live = LiveRun::new(
        scenario.clone(),
        7,
        Some(Box::new(std::fs::File::create(&trace).unwrap())),
    );
    live.run_until(plantloop_core::time::Instant::from_secs(5 * 3600));
    live.inject(Injected::CoreCrash {
        downtime: plantloop_core::time::Duration::from_secs(300),
    })
    .unwrap();
    live.run_until(plantloop_core::time::Instant::from_secs(20 * 3600));
    live.inject(Injected::EndpointOutage {
        system: plantloop_core::model::System::Erp,
        duration: plantloop_core::time::Duration::from_secs(1800),
    })
    .unwrap();
    let want = live.finish().trace_hash.clone();
    drop(live);

    let o = bin()
        .arg("run")
        .arg(&file)
        .args(["--seed", "7", "--json", "-", "--replay"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["trace_hash"], want.as_str());

    // Without the injections the run is another one.
    let o = bin()
        .arg("run")
        .arg(&file)
        .args(["--seed", "7", "--json", "-"])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(r["trace_hash"], want.as_str());

    // A trace that is not one, and two files: exit 2 naming the flag.
    std::fs::write(
        d.join("bad.jsonl"),
        "{\"type\":\"com.plantloop.sim.fault.core-crash.v1\"\n",
    )
    .unwrap();
    let o = bin()
        .arg("run")
        .arg(&file)
        .arg("--replay")
        .arg(d.join("bad.jsonl"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--replay"), "{}", text(&o));
    let o = bin()
        .arg("run")
        .arg(&file)
        .arg(scenarios().join("seed-1-inspection-failure.toml"))
        .arg("--replay")
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--replay"), "{}", text(&o));
    std::fs::remove_dir_all(&d).unwrap();
}
