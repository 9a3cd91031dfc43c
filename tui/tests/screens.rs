//! The screens at fixed sizes, from a fixed scenario, seed and simulated time (insta snapshots;
//! `INSTA_UPDATE=always cargo test -p plantloop-tui` rewrites them after a deliberate change).

use plantloop_core::model::System;
use plantloop_core::time::{Duration, Instant};
use plantloop_sim::live::LiveRun;
use plantloop_sim::scenario::Scenario;
use plantloop_sim::world::Injected;
use plantloop_tui::action::{Action, Dir};
use plantloop_tui::app::{App, Focus, Speed, Update, View};
use plantloop_tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn scenario(name: &str) -> Scenario {
    Scenario::load(format!(
        "{}/../scenarios/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn at(text: &str) -> Instant {
    Instant::ZERO + Duration::parse(text).unwrap()
}

/// The torque-drift scenario (seed 42) run to `t`, checked, and shown paused at ×600.
fn app_at(live: &mut LiveRun, t: &str) -> App {
    // An observation five minutes earlier, so that event rates have a window.
    let t = at(t);
    live.run_until(Instant::from_micros(
        t.as_micros().saturating_sub(300_000_000),
    ));
    live.observe();
    live.run_until(t);
    live.check_invariants();
    let mut app = App::new(Speed::Times(600.0), true);
    app.update(Update {
        observation: Some(live.observe()),
        notices: vec![],
        sim_rate: 0.0,
    });
    app.fps = 30.0;
    app
}

fn torque() -> LiveRun {
    LiveRun::new(scenario("torque-drift-containment"), 42, None)
}

fn draw(app: &App, width: u16, height: u16) -> TestBackend {
    let mut t = Terminal::new(TestBackend::new(width, height)).unwrap();
    t.draw(|f| ui::render(f, app)).unwrap();
    t.backend().clone()
}

/// The contained station (P1-L1-S3) selected, 15 minutes after the drift started failing units.
fn contained() -> App {
    let mut live = torque();
    let mut app = app_at(&mut live, "1d15m");
    app.apply(Action::Move(Dir::Right));
    app.apply(Action::Move(Dir::Right));
    app
}

#[test]
fn main_screen_80x24() {
    insta::assert_snapshot!("main_80x24", draw(&contained(), 80, 24));
}

#[test]
fn main_screen_160x48() {
    insta::assert_snapshot!("main_160x48", draw(&contained(), 160, 48));
}

fn closed_timeline() -> App {
    let mut live = torque();
    live.finish();
    let mut app = app_at(&mut live, "3d");
    app.apply(Action::NextPanel);
    app.apply(Action::Open);
    assert!(matches!(app.view, View::Timeline(_)));
    app
}

#[test]
fn timeline_80x24() {
    insta::assert_snapshot!("timeline_80x24", draw(&closed_timeline(), 80, 24));
}

#[test]
fn timeline_160x48() {
    insta::assert_snapshot!("timeline_160x48", draw(&closed_timeline(), 160, 48));
}

#[test]
fn help_80x24() {
    let mut app = contained();
    app.apply(Action::ToggleHelp);
    insta::assert_snapshot!("help_80x24", draw(&app, 80, 24));
}

#[test]
fn help_160x48() {
    let mut app = contained();
    app.apply(Action::ToggleHelp);
    insta::assert_snapshot!("help_160x48", draw(&app, 160, 48));
}

/// Injected faults as the view shows them: the plant's WAN link down with its edge buffer, the
/// core down, ERP in an outage.
#[test]
fn injected_faults_160x48() {
    let mut live = torque();
    live.run_until(at("1d"));
    live.inject(Injected::WanOutage {
        plant: 0,
        duration: Duration::from_hours(1),
    })
    .unwrap();
    live.inject(Injected::EndpointOutage {
        system: System::Erp,
        duration: Duration::from_mins(30),
    })
    .unwrap();
    live.run_until(at("1d20m"));
    live.inject(Injected::CoreCrash {
        downtime: Duration::from_mins(5),
    })
    .unwrap();
    let app = app_at(&mut live, "1d21m");
    let o = app.obs.as_ref().unwrap();
    assert!(o.plants[0].wan_down && o.plants[0].edge_buffered > 0);
    assert!(o.core.down);
    insta::assert_snapshot!("injected_faults_160x48", draw(&app, 160, 48));
}

#[test]
fn tiny_and_odd_sizes_never_panic() {
    let mut timeline = closed_timeline();
    let mut help = contained();
    help.apply(Action::ToggleHelp);
    let empty = App::new(Speed::Max, false);
    let mut focused = contained();
    focused.focus = Focus::Timelines;
    for (w, h) in [
        (20, 5),
        (0, 0),
        (1, 1),
        (2, 3),
        (5, 20),
        (40, 6),
        (79, 10),
        (119, 30),
        (120, 12),
        (300, 3),
    ] {
        for app in [&contained(), &timeline, &help, &empty, &focused] {
            draw(app, w, h);
        }
    }
    // And a resize of a live terminal, down to 20×5 and back.
    let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
    let app = contained();
    t.draw(|f| ui::render(f, &app)).unwrap();
    t.backend_mut().resize(20, 5);
    t.autoresize().unwrap();
    t.draw(|f| ui::render(f, &app)).unwrap();
    assert_eq!(t.backend().buffer().area.width, 20);
    t.backend_mut().resize(80, 24);
    t.autoresize().unwrap();
    timeline.apply(Action::Back);
    t.draw(|f| ui::render(f, &timeline)).unwrap();
}
