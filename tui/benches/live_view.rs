//! The live view's performance (issue 6): at the fastest speed the view must stay responsive
//! (≥ 20 frames/s) while the simulation runs at ≥ 80% of its headless speed.
//!
//! - `frame/*`: drawing one frame of the main screen into a `TestBackend`, for the largest
//!   reference topology (3 plants × 4 lines × 10 stations) in the middle of its run.
//! - `run/headless` vs `run/live_view_max`: the same scenario and seed run to its end, once by
//!   the headless runner and once by the live view at speed max: the simulation thread with its
//!   observations and periodic invariant checks, and the real frame loop ([`run_loop`]) drawing
//!   every 33 ms into a 160×48 `TestBackend`. The ratio of the two times is the live view's share
//!   of headless speed. After the group, three alternating pairs print the ratio and the frame
//!   rate (mean, and the worst one-second window), then the median ratio.
//!
//! Scenario: `scenarios/plants-3x4x10-30d.toml` cut to 2 days + 12 h of drain (it keeps the bulk
//! master-data release at 1 d, the heaviest stretch), seed 2026.
//!
//! `cargo bench -p plantloop-tui --bench live_view -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, criterion_group, criterion_main};
use plantloop_core::time::Duration;
use plantloop_sim::live::LiveRun;
use plantloop_sim::runner::{self, RunOptions};
use plantloop_sim::scenario::Scenario;
use plantloop_tui::app::{App, Speed, Update};
use plantloop_tui::driver::Driver;
use plantloop_tui::terminal::{Screen, ScreenGuard};
use plantloop_tui::{run_loop, ui};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant as Wall;

fn scenario() -> Scenario {
    let mut s = Scenario::load(format!(
        "{}/../scenarios/plants-3x4x10-30d.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the reference scenario loads");
    s.duration = Duration::from_hours(48);
    s.drain = Duration::from_hours(12);
    // Fewer days than the file: its minimum counts are for thirty.
    s.expect.min.clear();
    s.faults.clear();
    s.masterdata
        .retain(|m| m.at < plantloop_core::time::Instant::ZERO + s.duration);
    s.drifts
        .retain(|d| d.at < plantloop_core::time::Instant::ZERO + s.duration);
    s
}

struct NoScreen;

impl Screen for NoScreen {
    fn enter(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn leave(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// CPU seconds (user + system) from a `/proc/…/stat` file (Linux, USER_HZ = 100); `None` elsewhere.
fn cpu_s(stat: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // After "(comm)" the fields start at field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The stat file of this process's thread called `name`.
fn thread_stat(name: &str) -> Option<PathBuf> {
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|e| {
        let dir = e.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        (comm.trim() == name).then(|| dir.join("stat"))
    })
}

fn process_cpu_s() -> Option<f64> {
    cpu_s(Path::new("/proc/self/stat"))
}

/// Figures of one headless run.
struct HeadlessFigures {
    wall_s: f64,
    /// CPU of the thread that ran it.
    cpu_s: Option<f64>,
}

fn headless(s: Scenario) -> HeadlessFigures {
    std::thread::Builder::new()
        .name("plantloop-headless".into())
        .spawn(move || {
            let t = Wall::now();
            let cpu0 = cpu_s(Path::new("/proc/thread-self/stat"));
            black_box(runner::run(s, RunOptions::default()));
            HeadlessFigures {
                wall_s: t.elapsed().as_secs_f64(),
                cpu_s: cpu_s(Path::new("/proc/thread-self/stat"))
                    .zip(cpu0)
                    .map(|(a, b)| a - b),
            }
        })
        .expect("thread")
        .join()
        .expect("the headless run")
}

/// Figures of one live-view run.
struct LiveFigures {
    wall_s: f64,
    frames: u64,
    /// The lowest one-second frame rate seen after the first second.
    fps_min: f64,
    /// CPU of the simulation thread, of the UI thread, and of the whole process over the run.
    sim_cpu_s: Option<f64>,
    ui_cpu_s: Option<f64>,
}

/// The live view at speed max until the run ends and is judged; then q.
fn live_view_max(s: Scenario) -> LiveFigures {
    let start = Wall::now();
    let ui_cpu0 = cpu_s(Path::new("/proc/thread-self/stat"));
    let seed = s.seed;
    let driver = Driver::spawn(s, seed, None, Speed::Max, false).expect("thread");
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("test backend");
    let guard = ScreenGuard::enter(NoScreen).expect("no screen");
    let mut fps_min = f64::INFINITY;
    let mut cpu = (None, None);
    let (app, summary) = run_loop(
        &mut terminal,
        guard,
        driver,
        App::new(Speed::Max, false),
        |app, timeout| {
            // `app.fps` counts the frames of the last second: meaningful once a second has passed.
            if app.frames > 30 && app.fps > 0.0 {
                fps_min = fps_min.min(app.fps);
            }
            let done = app.obs.as_ref().is_some_and(|o| o.invariants.is_final);
            if done {
                cpu = (
                    thread_stat("plantloop-sim").and_then(|p| cpu_s(&p)),
                    cpu_s(Path::new("/proc/thread-self/stat"))
                        .zip(ui_cpu0)
                        .map(|(a, b)| a - b),
                );
                return Ok(Some(Event::Key(KeyEvent::new(
                    KeyCode::Char('q'),
                    KeyModifiers::NONE,
                ))));
            }
            std::thread::sleep(timeout);
            Ok(None)
        },
    )
    .expect("the live view runs");
    assert!(summary.report.is_some(), "the run reached its end");
    LiveFigures {
        wall_s: start.elapsed().as_secs_f64(),
        frames: app.frames,
        fps_min,
        sim_cpu_s: cpu.0,
        ui_cpu_s: cpu.1,
    }
}

fn bench(c: &mut Criterion) {
    // A frame of the big topology in the middle of its run.
    let mut live = LiveRun::new(scenario(), 2026, None);
    live.run_until(plantloop_core::time::Instant::from_secs(30 * 3_600));
    live.check_invariants();
    let mut app = App::new(Speed::Max, false);
    app.update(Update {
        observation: Some(live.observe()),
        notices: vec![],
        sim_rate: 0.0,
    });
    let mut g = c.benchmark_group("frame");
    for (w, h) in [(160, 48), (80, 24)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        g.bench_function(format!("main_{w}x{h}"), |b| {
            b.iter(|| {
                terminal
                    .draw(|f| ui::render(f, black_box(&app)))
                    .expect("draws");
            })
        });
    }
    g.bench_function("observe_3x4x10", |b| b.iter(|| black_box(live.observe())));
    g.finish();

    let mut g = c.benchmark_group("run");
    g.sample_size(10);
    g.bench_function("headless", |b| b.iter(|| headless(scenario()).wall_s));
    g.bench_function("live_view_max", |b| {
        b.iter(|| live_view_max(scenario()).frames)
    });
    g.finish();

    // Three more alternating pairs, for the figures the issue asks for (alternating, so that a
    // change in the machine's load hits both sides alike). Wall time depends on what else runs on
    // the machine; the CPU time of the simulating thread much less.
    let fmt = |x: Option<f64>| x.map_or("n/a".to_owned(), |x| format!("{x:.2} s"));
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    for _ in 0..3 {
        let cpu0 = process_cpu_s();
        let h = headless(scenario());
        let cpu1 = process_cpu_s();
        let live = live_view_max(scenario());
        let cpu2 = process_cpu_s();
        let ratio = h.wall_s / live.wall_s;
        ratios.push(ratio);
        if let (Some(a), Some(b)) = (h.cpu_s, live.sim_cpu_s) {
            cpu_ratios.push(a / b);
        }
        println!(
            "live view at max: wall {:.2} s vs headless {:.2} s → {:.0}% of headless speed; \
             simulation thread CPU {} vs headless {}; UI thread CPU {}; process CPU {} vs {}; \
             {} frames, {:.1} frames/s mean, {} frames/s worst one-second window",
            live.wall_s,
            h.wall_s,
            100.0 * ratio,
            fmt(live.sim_cpu_s),
            fmt(h.cpu_s),
            fmt(live.ui_cpu_s),
            fmt(cpu2.zip(cpu1).map(|(a, b)| a - b)),
            fmt(cpu1.zip(cpu0).map(|(a, b)| a - b)),
            live.frames,
            live.frames as f64 / live.wall_s,
            if live.fps_min.is_finite() {
                format!("{:.1}", live.fps_min)
            } else {
                "n/a (run shorter than a second of frames)".to_owned()
            }
        );
    }
    ratios.sort_by(f64::total_cmp);
    cpu_ratios.sort_by(f64::total_cmp);
    println!(
        "live view at max: median {:.0}% of headless speed by wall time, {} by simulation CPU time",
        100.0 * ratios[1],
        cpu_ratios
            .get(cpu_ratios.len() / 2)
            .map_or("n/a".to_owned(), |r| format!("{:.0}%", 100.0 * r))
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
