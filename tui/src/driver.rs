//! The simulation thread. It owns the [`LiveRun`], paces it against the wall clock, applies the
//! app's [`Command`]s and leaves [`Update`]s in a mailbox that the UI thread empties once a frame.
//!
//! Why a thread of its own rather than stepping between frames: one kernel event can take long (a
//! bulk master-data release publishes 20,000 records in one event; a checker pass over a month of
//! ledgers takes a while), and on its own thread the simulation never delays a key press or a
//! frame. The UI thread draws at a fixed frame rate whatever the simulation does; the simulation
//! spends its core on simulating, in slices of [`SLICE`] between which it takes commands and
//! publishes snapshots. The mailbox holds one snapshot (the newest wins), so a slow terminal never
//! queues up memory, and a snapshot is only built once the previous one was taken.

use crate::app::{Command, Speed, Update};
use plantloop_core::time::{Duration, Instant};
use plantloop_sim::live::{Injection, LiveRun, describe};
use plantloop_sim::report::Report;
use plantloop_sim::scenario::Scenario;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant as Wall;

/// Wall time the simulation runs between two looks at its commands.
pub const SLICE: std::time::Duration = std::time::Duration::from_millis(12);
/// Kernel events between two looks at the wall clock within a slice.
pub const CHUNK_EVENTS: u64 = 512;
/// The checker may take at most 1/CHECK_SHARE of the wall time…
const CHECK_SHARE: u32 = 20;
/// …and runs at most this often.
const CHECK_EVERY_MIN: std::time::Duration = std::time::Duration::from_millis(250);
/// When the simulation falls this far behind real time × speed, the pacer lets go of the debt.
pub const LAG_MAX: std::time::Duration = std::time::Duration::from_millis(500);
/// While paused, how often the thread wakes without a command.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
/// Window of the achieved-speed meter.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_millis(500);

/// Maps wall time to the simulated time the run should have reached: `sim0 + (wall − wall0) ×
/// speed`, anchored afresh on every change of speed or pause.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    speed: Speed,
    wall0: Wall,
    sim0: Instant,
}

impl Pacer {
    pub fn new(speed: Speed, wall: Wall, sim: Instant) -> Pacer {
        Pacer {
            speed,
            wall0: wall,
            sim0: sim,
        }
    }

    /// Starts counting from here.
    pub fn anchor(&mut self, wall: Wall, sim: Instant) {
        self.wall0 = wall;
        self.sim0 = sim;
    }

    pub fn set_speed(&mut self, speed: Speed, wall: Wall, sim: Instant) {
        self.speed = speed;
        self.anchor(wall, sim);
    }

    pub fn speed(&self) -> Speed {
        self.speed
    }

    /// Where the simulation should be at `wall`, at most `end`.
    pub fn target(&self, wall: Wall, end: Instant) -> Instant {
        match self.speed {
            Speed::Max => end,
            Speed::Times(x) => {
                let us = wall.saturating_duration_since(self.wall0).as_micros() as f64 * x;
                let us = if us >= (u64::MAX - self.sim0.as_micros()) as f64 {
                    u64::MAX - self.sim0.as_micros()
                } else {
                    us as u64
                };
                (self.sim0 + Duration::from_micros(us)).min(end)
            }
        }
    }

    /// The run is more than [`LAG_MAX`] of wall time behind its target.
    pub fn lagging(&self, wall: Wall, sim: Instant, end: Instant) -> bool {
        match self.speed {
            Speed::Max => false,
            Speed::Times(x) => {
                let behind = self.target(wall, end).saturating_since(sim);
                behind.as_micros() as f64 > LAG_MAX.as_micros() as f64 * x
            }
        }
    }
}

/// What the simulation thread hands back when it stops.
#[derive(Debug)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    /// Where the clock stood.
    pub now: Instant,
    pub end: Instant,
    pub injections: Vec<Injection>,
    /// The report, when the run reached its end.
    pub report: Option<Report>,
    /// An error writing the trace, if one happened.
    pub trace_error: Option<String>,
}

#[derive(Default)]
struct Mailbox {
    update: Update,
    /// Something is in `update` that the UI has not taken yet.
    full: bool,
}

/// The handle the UI keeps on the simulation thread.
pub struct Driver {
    commands: Sender<Command>,
    mailbox: Arc<Mutex<Mailbox>>,
    thread: Option<JoinHandle<Summary>>,
}

impl Driver {
    /// Starts the simulation thread on `scenario`/`seed` (writing `trace` if given).
    pub fn spawn(
        scenario: Scenario,
        seed: u64,
        trace: Option<Box<dyn std::io::Write + Send>>,
        speed: Speed,
        paused: bool,
    ) -> std::io::Result<Driver> {
        let (tx, rx) = mpsc::channel();
        let mailbox = Arc::new(Mutex::new(Mailbox::default()));
        let mb = Arc::clone(&mailbox);
        let thread = std::thread::Builder::new()
            .name("plantloop-sim".into())
            .spawn(move || {
                let live = LiveRun::new(scenario, seed, trace);
                SimThread::new(live, rx, mb, speed, paused).run()
            })?;
        Ok(Driver {
            commands: tx,
            mailbox,
            thread: Some(thread),
        })
    }

    /// Sends a command (a stopped thread ignores it; [`Driver::alive`] tells).
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// What the simulation published since the last call, if anything.
    pub fn take_update(&self) -> Option<Update> {
        let mut mb = self.mailbox.lock().unwrap_or_else(|p| p.into_inner());
        if !mb.full {
            return None;
        }
        mb.full = false;
        Some(std::mem::take(&mut mb.update))
    }

    /// The simulation thread is still running.
    pub fn alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the simulation thread and returns its summary, or the message of its panic.
    pub fn stop(mut self) -> Result<Summary, String> {
        self.send(Command::Quit);
        let thread = self.thread.take().expect("joined once");
        thread.join().map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the simulation thread panicked".to_owned())
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.commands.send(Command::Quit);
            let _ = t.join();
        }
    }
}

/// Budget of the periodic invariant check.
struct CheckBudget {
    last: Option<Wall>,
    cost: std::time::Duration,
}

impl CheckBudget {
    fn due(&self, wall: Wall) -> bool {
        self.last.is_none_or(|t| {
            wall.saturating_duration_since(t) >= (self.cost * CHECK_SHARE).max(CHECK_EVERY_MIN)
        })
    }
}

/// Achieved simulated seconds per wall second.
struct RateMeter {
    since: Wall,
    sim_since: Instant,
    rate: f64,
}

impl RateMeter {
    fn record(&mut self, wall: Wall, sim: Instant) {
        let dw = wall.saturating_duration_since(self.since);
        if dw >= RATE_WINDOW {
            self.rate = sim.saturating_since(self.sim_since).as_secs_f64() / dw.as_secs_f64();
            self.since = wall;
            self.sim_since = sim;
        }
    }
    fn reset(&mut self, wall: Wall, sim: Instant) {
        self.since = wall;
        self.sim_since = sim;
        self.rate = 0.0;
    }
}

struct SimThread {
    live: LiveRun,
    commands: Receiver<Command>,
    mailbox: Arc<Mutex<Mailbox>>,
    pacer: Pacer,
    paused: bool,
    /// The state changed since the last snapshot was published.
    dirty: bool,
    notices: Vec<String>,
    checks: CheckBudget,
    meter: RateMeter,
}

impl SimThread {
    fn new(
        live: LiveRun,
        commands: Receiver<Command>,
        mailbox: Arc<Mutex<Mailbox>>,
        speed: Speed,
        paused: bool,
    ) -> SimThread {
        let now = Wall::now();
        let sim = live.now();
        SimThread {
            live,
            commands,
            mailbox,
            pacer: Pacer::new(speed, now, sim),
            paused,
            dirty: true,
            notices: Vec::new(),
            checks: CheckBudget {
                last: None,
                cost: std::time::Duration::ZERO,
            },
            meter: RateMeter {
                since: now,
                sim_since: sim,
                rate: 0.0,
            },
        }
    }

    fn run(mut self) -> Summary {
        self.check();
        self.publish(true);
        loop {
            // Commands: wait for one while idle, else take what is there.
            let idle = self.paused || self.live.is_finished();
            let first = if idle {
                match self.commands.recv_timeout(IDLE_WAIT) {
                    Ok(c) => Some(c),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return self.summary(),
                }
            } else {
                match self.commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return self.summary(),
                }
            };
            if let Some(c) = first {
                if !self.handle(c) {
                    return self.summary();
                }
                while let Ok(c) = self.commands.try_recv() {
                    if !self.handle(c) {
                        return self.summary();
                    }
                }
            }
            let mut reached = true;
            if !self.paused && !self.live.is_finished() {
                reached = self.slice();
            }
            if self.dirty && !self.live.is_finished() && self.checks.due(Wall::now()) {
                self.check();
            }
            self.publish(idle);
            // Ahead of real time × speed: wait for the wall clock (or a command).
            if reached && !self.paused && !self.live.is_finished() {
                match self.commands.recv_timeout(SLICE) {
                    Ok(c) => {
                        if !self.handle(c) {
                            return self.summary();
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return self.summary(),
                }
            }
        }
    }

    /// Runs towards the pacer's target for at most [`SLICE`]; true when the target was reached.
    fn slice(&mut self) -> bool {
        let start = Wall::now();
        let end = self.live.end();
        let target = self.pacer.target(start, end);
        let mut reached = false;
        loop {
            let n = self.live.advance(target, CHUNK_EVENTS);
            if n < CHUNK_EVENTS || self.live.is_finished() {
                reached = self.pacer.speed() != Speed::Max || self.live.is_finished();
                break;
            }
            if start.elapsed() >= SLICE {
                break;
            }
        }
        self.dirty = true;
        let wall = Wall::now();
        if self.pacer.lagging(wall, self.live.now(), end) {
            self.pacer.anchor(wall, self.live.now());
        }
        self.meter.record(wall, self.live.now());
        reached
    }

    fn check(&mut self) {
        let t = Wall::now();
        self.live.check_invariants();
        self.checks.cost = t.elapsed();
        self.checks.last = Some(Wall::now());
    }

    /// Applies one command; false on Quit.
    fn handle(&mut self, c: Command) -> bool {
        let wall = Wall::now();
        match c {
            Command::Quit => return false,
            Command::SetPaused(p) => {
                self.paused = p;
                self.pacer.anchor(wall, self.live.now());
                self.meter.reset(wall, self.live.now());
            }
            Command::SetSpeed(s) => {
                self.pacer.set_speed(s, wall, self.live.now());
                self.meter.reset(wall, self.live.now());
            }
            Command::Step => {
                if self.live.step() {
                    self.notices.push(format!(
                        "stepped: event {} at {}",
                        self.live.world().events_processed(),
                        self.live.now()
                    ));
                } else {
                    self.notices
                        .push("nothing left to step: the run has ended".into());
                }
                self.dirty = true;
                self.check();
            }
            Command::Inject(f) => {
                let what = describe(&f, Some(&self.live.world().scenario));
                match self.live.inject(f) {
                    Ok(()) => self
                        .notices
                        .push(format!("injected {what} at {}", self.live.now())),
                    Err(e) => self.notices.push(format!("refused {what}: {e}")),
                }
                self.dirty = true;
            }
        }
        true
    }

    /// Leaves a snapshot in the mailbox: when the UI took the last one, or (`force`) whenever
    /// something changed, and always with pending notices. The snapshot is built outside the
    /// lock, so the UI never waits for it.
    fn publish(&mut self, force: bool) {
        let taken = !self.mailbox.lock().unwrap_or_else(|p| p.into_inner()).full;
        let observation = (self.dirty && (taken || force)).then(|| self.live.observe());
        if observation.is_none() && self.notices.is_empty() {
            return;
        }
        let mut mb = self.mailbox.lock().unwrap_or_else(|p| p.into_inner());
        if observation.is_some() {
            mb.update.observation = observation;
            self.dirty = false;
        }
        mb.update.notices.append(&mut self.notices);
        mb.update.sim_rate = if self.paused { 0.0 } else { self.meter.rate };
        mb.full = true;
    }

    fn summary(self) -> Summary {
        let w = self.live.world();
        Summary {
            scenario: w.scenario.name.clone(),
            seed: w.seed,
            now: self.live.now(),
            end: self.live.end(),
            injections: self.live.injections().to_vec(),
            report: self.live.report().cloned(),
            trace_error: w.trace_error().map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    #[test]
    fn the_pacer_runs_simulated_time_at_speed_times_wall_time() {
        let w0 = Wall::now();
        let end = sim(86_400);
        let mut p = Pacer::new(Speed::Times(60.0), w0, sim(100));
        let ms = std::time::Duration::from_millis;
        assert_eq!(p.target(w0, end), sim(100));
        assert_eq!(p.target(w0 + ms(1_500), end), sim(190));
        assert_eq!(p.target(w0 + ms(10_000_000), end), end, "capped at the end");
        p.set_speed(Speed::Times(1.0), w0 + ms(2_000), sim(220));
        assert_eq!(p.target(w0 + ms(4_000), end), sim(222));
        p.set_speed(Speed::Max, w0, sim(0));
        assert_eq!(p.target(w0, end), end);
    }

    #[test]
    fn the_pacer_lets_go_of_debt_beyond_half_a_second() {
        let w0 = Wall::now();
        let end = sim(86_400);
        let p = Pacer::new(Speed::Times(600.0), w0, sim(0));
        let ms = std::time::Duration::from_millis;
        // 1 s of wall at ×600: 600 s are due; 400 s behind is more than 0.5 s × 600, 200 s is not.
        assert!(p.lagging(w0 + ms(1_000), sim(200), end));
        assert!(!p.lagging(w0 + ms(1_000), sim(400), end));
        assert!(!Pacer::new(Speed::Max, w0, sim(0)).lagging(w0 + ms(1_000), sim(0), end));
    }

    #[test]
    fn the_check_budget_keeps_the_checker_to_a_twentieth() {
        let w0 = Wall::now();
        let ms = std::time::Duration::from_millis;
        let mut b = CheckBudget {
            last: None,
            cost: ms(0),
        };
        assert!(b.due(w0), "first check at once");
        b.last = Some(w0);
        b.cost = ms(2);
        assert!(!b.due(w0 + ms(200)));
        assert!(b.due(w0 + ms(250)), "cheap checks every 250 ms");
        b.cost = ms(100);
        assert!(!b.due(w0 + ms(1_999)));
        assert!(b.due(w0 + ms(2_000)), "a 100 ms check runs every 2 s");
    }
}
