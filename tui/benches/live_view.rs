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

/// Figures of one live-view run.
struct LiveFigures {
    wall_s: f64,
    frames: u64,
    /// The lowest one-second frame rate seen after the first second.
    fps_min: f64,
}

/// The live view at speed max until the run ends and is judged; then q.
fn live_view_max(s: Scenario) -> LiveFigures {
    let start = Wall::now();
    let seed = s.seed;
    let driver = Driver::spawn(s, seed, None, Speed::Max, false).expect("thread");
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("test backend");
    let guard = ScreenGuard::enter(NoScreen).expect("no screen");
    let mut fps_min = f64::INFINITY;
    let (app, summary) = run_loop(
        &mut terminal,
        guard,
        driver,
        App::new(Speed::Max, false),
        |app, timeout| {
            if app.frames > 40 && app.fps > 0.0 {
                fps_min = fps_min.min(app.fps);
            }
            let done = app.obs.as_ref().is_some_and(|o| o.invariants.is_final);
            if done {
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
    g.bench_function("headless", |b| {
        b.iter(|| black_box(runner::run(scenario(), RunOptions::default())))
    });
    g.bench_function("live_view_max", |b| {
        b.iter(|| live_view_max(scenario()).frames)
    });
    g.finish();

    // Three more alternating pairs, for the figures the issue asks for (alternating, so that a
    // change in the machine's load hits both sides alike).
    let mut ratios = Vec::new();
    for _ in 0..3 {
        let t = Wall::now();
        runner::run(scenario(), RunOptions::default());
        let headless_s = t.elapsed().as_secs_f64();
        let live = live_view_max(scenario());
        let ratio = headless_s / live.wall_s;
        ratios.push(ratio);
        println!(
            "live view at max: {:.2} s vs headless {:.2} s → {:.0}% of headless speed; {} frames, {:.1} frames/s mean, {:.1} frames/s worst one-second window",
            live.wall_s,
            headless_s,
            100.0 * ratio,
            live.frames,
            live.frames as f64 / live.wall_s,
            live.fps_min
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "live view at max: median {:.0}% of headless speed",
        100.0 * ratios[1]
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
