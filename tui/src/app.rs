//! The live view's state: plain data, rendered by [`crate::ui::render`] from `&App`, changed only
//! by [`App::apply`] (an action from a key) and [`App::update`] (news from the simulation). It owns
//! no simulation logic: what it wants from the simulation goes out as [`Command`]s.

use crate::action::{Action, Dir};
use plantloop_core::model::{NcId, System};
use plantloop_core::time::Duration;
use plantloop_sim::observe::Observation;
use plantloop_sim::world::Injected;
use std::collections::VecDeque;
use std::fmt;

/// How long an injected WAN outage lasts.
pub const WAN_OUTAGE: Duration = Duration::from_hours(1);
/// How long a crashed core stays down before it restarts from its journal.
pub const CORE_DOWNTIME: Duration = Duration::from_mins(5);
/// How long an injected ERP outage lasts.
pub const ERP_OUTAGE: Duration = Duration::from_mins(30);
/// Notices kept (the newest is shown).
const NOTICES_MAX: usize = 8;

/// How fast simulated time runs against the wall clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// Simulated seconds per wall second.
    Times(f64),
    /// As fast as the simulator goes.
    Max,
}

impl Speed {
    /// The steps of + and −.
    pub const STEPS: [Speed; 8] = [
        Speed::Times(1.0),
        Speed::Times(10.0),
        Speed::Times(60.0),
        Speed::Times(600.0),
        Speed::Times(3_600.0),
        Speed::Times(36_000.0),
        Speed::Times(360_000.0),
        Speed::Max,
    ];

    fn rank(self) -> f64 {
        match self {
            Speed::Times(x) => x,
            Speed::Max => f64::INFINITY,
        }
    }

    /// The next step faster (Max stays Max).
    pub fn faster(self) -> Speed {
        Speed::STEPS
            .into_iter()
            .find(|s| s.rank() > self.rank())
            .unwrap_or(Speed::Max)
    }

    /// The next step slower; ×1, or a custom speed below it, stays as it is.
    pub fn slower(self) -> Speed {
        Speed::STEPS
            .into_iter()
            .rev()
            .find(|s| s.rank() < self.rank())
            .unwrap_or(self)
    }

    /// Parses `--speed`: a positive number (real time × X) or `max`.
    pub fn parse(text: &str) -> Result<Speed, String> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match text.trim_start_matches(['x', '×']).parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(Speed::Times(x)),
            _ => Err(format!(
                "{text:?}: expected a positive number (simulated seconds per second) or \"max\""
            )),
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Times(x) if x.fract() == 0.0 => write!(f, "×{x:.0}"),
            Speed::Times(x) => write!(f, "×{x}"),
            Speed::Max => f.write_str("max"),
        }
    }
}

/// What the app asks of the simulation.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    SetPaused(bool),
    SetSpeed(Speed),
    /// Process one kernel event.
    Step,
    Inject(Injected),
    /// Stop the simulation thread.
    Quit,
}

/// News from the simulation.
#[derive(Clone, Debug, Default)]
pub struct Update {
    /// The newest snapshot, if one was taken since the last update.
    pub observation: Option<Observation>,
    /// Results of commands ("injected …", "refused: …"), oldest first.
    pub notices: Vec<String>,
    /// Simulated seconds per wall second achieved lately.
    pub sim_rate: f64,
}

/// The panel that arrows move in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Stations,
    Timelines,
}

/// What fills the screen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    Main,
    /// One NC's workflow timeline.
    Timeline(NcId),
}

/// The live view's state.
#[derive(Clone, Debug)]
pub struct App {
    /// The latest snapshot of the simulation.
    pub obs: Option<Observation>,
    pub paused: bool,
    pub speed: Speed,
    pub focus: Focus,
    /// Selected station: index in plant → line → station order.
    pub station: usize,
    /// Selected timeline (by NC, since new NCs push older ones down).
    pub timeline: Option<NcId>,
    pub view: View,
    pub help: bool,
    pub notices: VecDeque<String>,
    /// Frames drawn per wall second lately.
    pub fps: f64,
    /// Frames drawn so far.
    pub frames: u64,
    /// Simulated seconds per wall second achieved lately.
    pub sim_rate: f64,
    pub quit: bool,
}

impl App {
    pub fn new(speed: Speed, paused: bool) -> App {
        App {
            obs: None,
            paused,
            speed,
            focus: Focus::Stations,
            station: 0,
            timeline: None,
            view: View::Main,
            help: false,
            notices: VecDeque::new(),
            fps: 0.0,
            frames: 0,
            sim_rate: 0.0,
            quit: false,
        }
    }

    /// Takes news from the simulation.
    pub fn update(&mut self, u: Update) {
        if let Some(o) = u.observation {
            self.obs = Some(o);
        }
        for n in u.notices {
            self.notice(n);
        }
        self.sim_rate = u.sim_rate;
        let stations = self.station_count();
        if stations > 0 && self.station >= stations {
            self.station = stations - 1;
        }
    }

    /// The newest notice.
    pub fn notice_line(&self) -> Option<&str> {
        self.notices.back().map(String::as_str)
    }

    fn notice(&mut self, text: String) {
        if self.notices.len() == NOTICES_MAX {
            self.notices.pop_front();
        }
        self.notices.push_back(text);
    }

    fn station_count(&self) -> usize {
        self.obs.as_ref().map_or(0, |o| o.stations().count())
    }

    /// The selected station's plant index, line index (global) and position in its line.
    pub fn selected_place(&self) -> Option<(usize, usize, usize)> {
        grid(self.obs.as_ref()?).get(self.station).copied()
    }

    /// The selected timeline's row in the observation's timelines.
    pub fn timeline_row(&self) -> usize {
        let Some(o) = &self.obs else { return 0 };
        self.timeline
            .as_ref()
            .and_then(|nc| o.timelines.iter().position(|t| &t.nc == nc))
            .unwrap_or(0)
    }

    /// Applies an action; returns what must be sent to the simulation.
    pub fn apply(&mut self, action: Action) -> Vec<Command> {
        match action {
            Action::Quit => {
                self.quit = true;
                vec![Command::Quit]
            }
            Action::ToggleHelp => {
                self.help = !self.help;
                vec![]
            }
            Action::Back => {
                if self.help {
                    self.help = false;
                } else {
                    self.view = View::Main;
                }
                vec![]
            }
            Action::TogglePause => {
                self.paused = !self.paused;
                vec![Command::SetPaused(self.paused)]
            }
            Action::Faster | Action::Slower => {
                self.speed = if action == Action::Faster {
                    self.speed.faster()
                } else {
                    self.speed.slower()
                };
                vec![Command::SetSpeed(self.speed)]
            }
            Action::Step => {
                let mut out = Vec::new();
                if !self.paused {
                    self.paused = true;
                    out.push(Command::SetPaused(true));
                }
                out.push(Command::Step);
                out
            }
            Action::WanOutage => match self.selected_place() {
                Some((plant, _, _)) => vec![Command::Inject(Injected::WanOutage {
                    plant,
                    duration: WAN_OUTAGE,
                })],
                None => vec![],
            },
            Action::CrashCore => vec![Command::Inject(Injected::CoreCrash {
                downtime: CORE_DOWNTIME,
            })],
            Action::ErpOutage => vec![Command::Inject(Injected::EndpointOutage {
                system: System::Erp,
                duration: ERP_OUTAGE,
            })],
            Action::NextPanel | Action::PrevPanel => {
                self.focus = match self.focus {
                    Focus::Stations => Focus::Timelines,
                    Focus::Timelines => Focus::Stations,
                };
                vec![]
            }
            Action::Move(dir) => {
                self.move_selection(dir);
                vec![]
            }
            Action::Open => {
                self.open();
                vec![]
            }
        }
    }

    fn move_selection(&mut self, dir: Dir) {
        let Some(o) = &self.obs else { return };
        match self.focus {
            Focus::Stations => {
                let g = grid(o);
                let Some(&(_, line, pos)) = g.get(self.station) else {
                    return;
                };
                let target = match dir {
                    Dir::Left => self.station.checked_sub(1),
                    Dir::Right => Some(self.station + 1).filter(|s| *s < g.len()),
                    Dir::Up | Dir::Down => {
                        let next_line = if dir == Dir::Up {
                            line.checked_sub(1)
                        } else {
                            Some(line + 1)
                        };
                        next_line.and_then(|nl| {
                            // The same position in that line, or its last station.
                            g.iter()
                                .enumerate()
                                .filter(|(_, (_, l, _))| *l == nl)
                                .take_while(|(_, (_, _, p))| *p <= pos)
                                .last()
                                .map(|(i, _)| i)
                        })
                    }
                };
                if let Some(t) = target {
                    self.station = t;
                }
            }
            Focus::Timelines => {
                if o.timelines.is_empty() {
                    return;
                }
                let row = self.timeline_row();
                let row = match dir {
                    Dir::Up | Dir::Left => row.saturating_sub(1),
                    Dir::Down | Dir::Right => (row + 1).min(o.timelines.len() - 1),
                };
                self.timeline = Some(o.timelines[row].nc.clone());
            }
        }
    }

    fn open(&mut self) {
        let Some(o) = &self.obs else { return };
        let nc = match self.focus {
            Focus::Timelines => o.timelines.get(self.timeline_row()).map(|t| t.nc.clone()),
            Focus::Stations => {
                let Some((_, _, st)) = o.stations().nth(self.station) else {
                    return;
                };
                let found = o
                    .timelines
                    .iter()
                    .find(|t| t.station == st.id)
                    .map(|t| t.nc.clone());
                if found.is_none() {
                    let text = format!("no NC at {} among the recent timelines", st.id);
                    self.notice(text);
                }
                found
            }
        };
        if let Some(nc) = nc {
            self.timeline = Some(nc.clone());
            self.view = View::Timeline(nc);
        }
    }
}

/// Every station's (plant, global line, position), in plant → line → station order.
pub fn grid(o: &Observation) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut line = 0;
    for (p, pv) in o.plants.iter().enumerate() {
        for lv in &pv.lines {
            for pos in 0..lv.stations.len() {
                out.push((p, line, pos));
            }
            line += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_steps_up_to_max_and_down_to_real_time() {
        let mut s = Speed::Times(1.0);
        let mut seen = vec![s];
        while s != Speed::Max {
            s = s.faster();
            seen.push(s);
        }
        assert_eq!(seen, Speed::STEPS.to_vec());
        assert_eq!(Speed::Max.faster(), Speed::Max);
        assert_eq!(Speed::Max.slower(), Speed::Times(360_000.0));
        assert_eq!(Speed::Times(1.0).slower(), Speed::Times(1.0));
        assert_eq!(Speed::Times(100.0).faster(), Speed::Times(600.0));
        assert_eq!(Speed::Times(100.0).slower(), Speed::Times(60.0));
        assert_eq!(Speed::Times(0.5).slower(), Speed::Times(0.5));
        assert_eq!(Speed::Times(0.5).faster(), Speed::Times(1.0));
    }

    #[test]
    fn speed_parses_numbers_and_max_and_names_bad_input() {
        assert_eq!(Speed::parse("600"), Ok(Speed::Times(600.0)));
        assert_eq!(Speed::parse("x2.5"), Ok(Speed::Times(2.5)));
        assert_eq!(Speed::parse("MAX"), Ok(Speed::Max));
        for bad in ["0", "-3", "fast", "inf", "NaN", ""] {
            let e = Speed::parse(bad).unwrap_err();
            assert!(e.contains("positive number"), "{bad}: {e}");
        }
        assert_eq!(Speed::Times(600.0).to_string(), "×600");
        assert_eq!(Speed::Times(2.5).to_string(), "×2.5");
        assert_eq!(Speed::Max.to_string(), "max");
    }

    #[test]
    fn pause_speed_and_step_become_commands() {
        let mut app = App::new(Speed::Times(60.0), false);
        assert_eq!(
            app.apply(Action::TogglePause),
            vec![Command::SetPaused(true)]
        );
        assert!(app.paused);
        assert_eq!(
            app.apply(Action::TogglePause),
            vec![Command::SetPaused(false)]
        );
        assert_eq!(
            app.apply(Action::Faster),
            vec![Command::SetSpeed(Speed::Times(600.0))]
        );
        assert_eq!(
            app.apply(Action::Slower),
            vec![Command::SetSpeed(Speed::Times(60.0))]
        );
        assert_eq!(
            app.apply(Action::Step),
            vec![Command::SetPaused(true), Command::Step],
            "stepping a running simulation pauses it first"
        );
        assert_eq!(app.apply(Action::Step), vec![Command::Step]);
        assert_eq!(app.apply(Action::Quit), vec![Command::Quit]);
        assert!(app.quit);
    }

    #[test]
    fn fault_keys_inject_with_the_documented_durations() {
        let mut app = App::new(Speed::Max, false);
        assert_eq!(
            app.apply(Action::WanOutage),
            vec![],
            "no plant before the first observation"
        );
        assert_eq!(
            app.apply(Action::CrashCore),
            vec![Command::Inject(Injected::CoreCrash {
                downtime: CORE_DOWNTIME
            })]
        );
        assert_eq!(
            app.apply(Action::ErpOutage),
            vec![Command::Inject(Injected::EndpointOutage {
                system: System::Erp,
                duration: ERP_OUTAGE
            })]
        );
    }

    #[test]
    fn help_and_back() {
        let mut app = App::new(Speed::Max, false);
        app.view = View::Timeline(NcId::new("NC-1").unwrap());
        app.apply(Action::ToggleHelp);
        assert!(app.help);
        app.apply(Action::Back);
        assert!(!app.help, "esc closes the help first");
        assert_ne!(app.view, View::Main);
        app.apply(Action::Back);
        assert_eq!(app.view, View::Main);
        app.apply(Action::NextPanel);
        assert_eq!(app.focus, Focus::Timelines);
        app.apply(Action::PrevPanel);
        assert_eq!(app.focus, Focus::Stations);
    }
}
