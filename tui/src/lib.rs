//! `plantloop tui`: a live terminal view of a running simulation, with controls to inject faults.
//!
//! The view is a pure consumer of the simulator. Two threads:
//! - the **simulation thread** ([`driver`]) owns a [`plantloop_sim::live::LiveRun`], paces it
//!   against the wall clock (real time × speed, or as fast as it goes), applies [`app::Command`]s
//!   (pause, speed, step, inject a fault) and publishes [`plantloop_sim::observe::Observation`]s;
//! - the **UI thread** ([`run_loop`]) maps keys to [`action::Action`]s, lets [`app::App`] turn them
//!   into state changes and commands, and draws [`ui::render`]`(&App)` at [`FRAME`] intervals.
//!
//! No simulation logic lives here: station states, timelines, latencies and invariant verdicts are
//! all computed by the simulator's observer; the view only arranges them. Injected faults are
//! applied by the simulator, which records them in the run's trace.

pub mod action;
pub mod app;
pub mod driver;
pub mod terminal;
pub mod ui;

use action::action_for;
use app::{App, Speed};
use driver::{Driver, Summary};
use plantloop_sim::scenario::Scenario;
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::crossterm::event::{self, Event};
use std::io;
use std::time::{Duration, Instant as Wall};
use terminal::{Crossterm, Screen, ScreenGuard, install_panic_hook, restore_terminal};

/// Time between two frames (30 frames per second).
pub const FRAME: Duration = Duration::from_millis(33);

/// How to start the live view.
pub struct Options {
    pub scenario: Scenario,
    pub seed: u64,
    pub speed: Speed,
    /// Start paused.
    pub paused: bool,
    /// Receives the run's trace (CloudEvents JSON Lines), injected faults included.
    pub trace: Option<Box<dyn io::Write + Send>>,
}

/// Runs the live view on the process's terminal until the user quits; returns what the simulation
/// reached. The terminal is restored on every way out.
pub fn run(opts: Options) -> io::Result<Summary> {
    install_panic_hook(|| {
        let _ = restore_terminal();
    });
    let driver = Driver::spawn(
        opts.scenario,
        opts.seed,
        opts.trace,
        opts.speed,
        opts.paused,
    )?;
    let guard = ScreenGuard::enter(Crossterm)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let app = App::new(opts.speed, opts.paused);
    let (_, summary) = run_loop(&mut terminal, guard, driver, app, |_, timeout| {
        if event::poll(timeout)? {
            Ok(Some(event::read()?))
        } else {
            Ok(None)
        }
    })?;
    Ok(summary)
}

/// Frames drawn per wall second.
struct FpsMeter {
    since: Wall,
    frames: u32,
    rate: f64,
}

impl FpsMeter {
    fn frame(&mut self, now: Wall) {
        self.frames += 1;
        let dt = now.saturating_duration_since(self.since);
        if dt >= Duration::from_secs(1) {
            self.rate = f64::from(self.frames) / dt.as_secs_f64();
            self.frames = 0;
            self.since = now;
        }
    }
}

fn draw_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("drawing the view: {e}"))
}

/// The frame loop over any backend and event source. `next_event(app, timeout)` waits at most
/// `timeout` for an input event. Leaves `guard`'s screen and stops the simulation thread before
/// returning, whatever happened; returns the final app state and the simulation's summary.
pub fn run_loop<B: Backend, S: Screen>(
    terminal: &mut Terminal<B>,
    mut guard: ScreenGuard<S>,
    driver: Driver,
    mut app: App,
    mut next_event: impl FnMut(&App, Duration) -> io::Result<Option<Event>>,
) -> io::Result<(App, Summary)> {
    let result = frames(terminal, &driver, &mut app, &mut next_event);
    let restored = guard.restore();
    let summary = driver.stop().map_err(|panic| {
        io::Error::other(format!("the simulation stopped unexpectedly: {panic}"))
    })?;
    result?;
    restored?;
    Ok((app, summary))
}

fn frames<B: Backend>(
    terminal: &mut Terminal<B>,
    driver: &Driver,
    app: &mut App,
    next_event: &mut impl FnMut(&App, Duration) -> io::Result<Option<Event>>,
) -> io::Result<()> {
    let mut fps = FpsMeter {
        since: Wall::now(),
        frames: 0,
        rate: 0.0,
    };
    let mut next_frame = Wall::now();
    loop {
        if let Some(u) = driver.take_update() {
            app.update(u);
        }
        let now = Wall::now();
        if now >= next_frame {
            terminal.draw(|f| ui::render(f, app)).map_err(draw_error)?;
            fps.frame(now);
            app.fps = fps.rate;
            app.frames += 1;
            // On a fixed grid, so that late wake-ups do not drift the frame rate down; after a
            // stall, start afresh.
            next_frame += FRAME;
            if next_frame <= now {
                next_frame = now + FRAME;
            }
        }
        let wait = next_frame.saturating_duration_since(Wall::now());
        match next_event(app, wait)? {
            Some(Event::Key(key)) => {
                if let Some(action) = action_for(key) {
                    for c in app.apply(action) {
                        driver.send(c);
                    }
                    // Show the effect of a key at once.
                    next_frame = Wall::now();
                }
            }
            Some(Event::Resize(..)) => {
                terminal.autoresize().map_err(draw_error)?;
                next_frame = Wall::now();
            }
            _ => {}
        }
        if app.quit || !driver.alive() {
            return Ok(());
        }
    }
}
