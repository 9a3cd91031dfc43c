//! The frame loop with the real simulation thread, a TestBackend and scripted keys: keys reach the
//! simulation as commands, injected faults land in the trace, and every way out restores the
//! terminal.

use plantloop_sim::scenario::Scenario;
use plantloop_sim::world::Injected;
use plantloop_tui::app::{App, Speed};
use plantloop_tui::driver::Driver;
use plantloop_tui::run_loop;
use plantloop_tui::terminal::{Screen, ScreenGuard};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn scenario() -> Scenario {
    Scenario::load(format!(
        "{}/../scenarios/torque-drift-containment.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<&'static str>>>);

struct FakeScreen(Log);

impl Screen for FakeScreen {
    fn enter(&mut self) -> io::Result<()> {
        self.0.0.lock().unwrap().push("enter");
        Ok(())
    }
    fn leave(&mut self) -> io::Result<()> {
        self.0.0.lock().unwrap().push("leave");
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn key(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// When the scripted user may press the next key.
type Ready = fn(&App) -> bool;

/// A scripted user: each step waits (bounded) until `ready` holds for the app, then presses a key.
fn script(steps: Vec<(Ready, Event)>) -> impl FnMut(&App, Duration) -> io::Result<Option<Event>> {
    let mut steps = steps.into_iter().peekable();
    let mut waited = 0u32;
    move |app, timeout| {
        let Some((ready, _)) = steps.peek() else {
            return Ok(None);
        };
        if ready(app) {
            waited = 0;
            return Ok(steps.next().map(|(_, e)| e));
        }
        waited += 1;
        assert!(waited < 2_000, "the simulation never got there");
        std::thread::sleep(timeout.min(Duration::from_millis(5)));
        Ok(None)
    }
}

fn observed(app: &App) -> bool {
    app.obs.is_some()
}

#[test]
fn keys_become_commands_faults_reach_the_trace_and_quit_restores_the_terminal() {
    let log = Log::default();
    let trace = Shared::default();
    let guard = ScreenGuard::enter(FakeScreen(log.clone())).unwrap();
    let driver = Driver::spawn(
        scenario(),
        42,
        Some(Box::new(trace.clone())),
        Speed::Max,
        true,
    )
    .unwrap();
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    let keys = script(vec![
        (observed, key('w')),
        (
            |a: &App| {
                a.notice_line()
                    .is_some_and(|n| n.starts_with("injected WAN"))
            },
            key('w'),
        ),
        (
            |a: &App| a.notice_line().is_some_and(|n| n.starts_with("refused")),
            key('s'),
        ),
        (
            |a: &App| a.notice_line().is_some_and(|n| n.starts_with("stepped")),
            key('c'),
        ),
        (
            |a: &App| a.obs.as_ref().is_some_and(|o| o.core.down),
            key('?'),
        ),
        (|a: &App| a.help, key('q')),
    ]);
    let (app, summary) = run_loop(
        &mut terminal,
        guard,
        driver,
        App::new(Speed::Max, true),
        keys,
    )
    .unwrap();
    assert!(app.quit);
    assert_eq!(*log.0.lock().unwrap(), ["enter", "leave"]);
    assert!(
        app.notices
            .iter()
            .any(|n| n == "refused WAN outage on P1 for 1h: the WAN link of P1 is already down"),
        "{:?}",
        app.notices
    );
    // The last frame drawn shows the help over the main screen.
    let screen = format!("{}", terminal.backend());
    assert!(screen.contains(" Keys "), "{screen}");
    assert!(screen.contains("WAN ✖ DOWN"), "{screen}");
    // Paused and stepped once: the run stood still at the start.
    assert!(summary.report.is_none());
    assert_eq!(summary.injections.len(), 2);
    assert!(matches!(
        summary.injections[0].fault,
        Injected::WanOutage { plant: 0, .. }
    ));
    assert!(matches!(
        summary.injections[1].fault,
        Injected::CoreCrash { .. }
    ));
    let text = String::from_utf8(trace.0.lock().unwrap().clone()).unwrap();
    let faults: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("com.plantloop.sim.fault."))
        .collect();
    assert_eq!(faults.len(), 2, "{faults:?}");
}

#[test]
fn running_at_full_speed_reaches_the_end_with_final_verdicts() {
    let log = Log::default();
    let guard = ScreenGuard::enter(FakeScreen(log.clone())).unwrap();
    let driver = Driver::spawn(scenario(), 42, None, Speed::Max, false).unwrap();
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).unwrap();
    let keys = script(vec![(
        |a: &App| a.obs.as_ref().is_some_and(|o| o.invariants.is_final),
        key('q'),
    )]);
    let (app, summary) = run_loop(
        &mut terminal,
        guard,
        driver,
        App::new(Speed::Max, false),
        keys,
    )
    .unwrap();
    let report = summary.report.expect("the run ended");
    assert!(report.passed, "{:?}", report.invariants);
    let o = app.obs.unwrap();
    assert!(o.invariants.green() && o.invariants.is_final);
    assert_eq!(*log.0.lock().unwrap(), ["enter", "leave"]);
}

#[test]
fn an_input_error_still_restores_the_terminal_and_stops_the_simulation() {
    let log = Log::default();
    let guard = ScreenGuard::enter(FakeScreen(log.clone())).unwrap();
    let driver = Driver::spawn(scenario(), 42, None, Speed::Times(1.0), false).unwrap();
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut calls = 0;
    let e = run_loop(
        &mut terminal,
        guard,
        driver,
        App::new(Speed::Times(1.0), false),
        |_, _| {
            calls += 1;
            if calls < 3 {
                Ok(None)
            } else {
                Err(io::Error::other("input gone"))
            }
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.to_string(), "input gone");
    assert_eq!(*log.0.lock().unwrap(), ["enter", "leave"]);
}
