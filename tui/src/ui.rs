//! Drawing: one pure function of `&App` per screen area. States read as text as well as colour
//! (glyphs, ✓/✗), so the screens are legible without colour and snapshot-testable.

use crate::app::{App, CORE_DOWNTIME, ERP_OUTAGE, Focus, Speed, View, WAN_OUTAGE};
use plantloop_core::model::System;
use plantloop_core::time::{Duration, Instant};
use plantloop_sim::observe::{
    ClassView, Observation, Phase, StationState, StationView, Step, Timeline, Verdict,
};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};

/// Width from which the main screen uses two columns.
const WIDE_MIN: u16 = 120;

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(2),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header_line(app)), header);
    match (&app.obs, &app.view) {
        (None, _) => frame.render_widget(
            Paragraph::new("starting the simulation…").block(Block::bordered()),
            body,
        ),
        (Some(o), View::Main) => render_main(frame, body, app, o),
        (Some(o), View::Timeline(nc)) => {
            let t = o.timelines.iter().find(|t| &t.nc == nc);
            render_timeline(frame, body, o, t, nc.as_str());
        }
    }
    frame.render_widget(Paragraph::new(footer_lines(app)), footer);
    if app.help {
        render_help(frame, area);
    }
}

// ---- formatting ----------------------------------------------------------------------------------

/// `d+hh:mm:ss` (the trace format without milliseconds).
fn clock(t: Instant) -> String {
    let s = t.to_string();
    s.rsplit_once('.').map_or(s.clone(), |(a, _)| a.to_owned())
}

/// A latency or span for people: `42ms`, `4.2s`, `3m12s`, `5h07m`, `2d03h`.
pub fn span_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1_000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms / 1_000 % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
        _ => format!("{}d{:02}h", ms / 86_400_000, ms / 3_600_000 % 24),
    }
}

fn glyph(state: StationState) -> (&'static str, Color) {
    match state {
        StationState::Down => ("✖", Color::Red),
        StationState::StoppedByMes => ("■", Color::Magenta),
        StationState::Drifting => ("~", Color::Yellow),
        StationState::OnHold => ("H", Color::Cyan),
        StationState::Running => ("●", Color::Green),
        StationState::Idle => ("·", Color::DarkGray),
    }
}

fn speed_text(app: &App) -> String {
    let now = if app.sim_rate > 0.0 && !app.paused {
        format!(" (now ×{:.0})", app.sim_rate)
    } else {
        String::new()
    };
    format!("speed {}{now}", app.speed)
}

// ---- header and footer --------------------------------------------------------------------------

fn header_line(app: &App) -> Line<'static> {
    let ended = app.obs.as_ref().is_some_and(|o| o.phase == Phase::Ended);
    let (state, color) = if ended {
        ("■ ENDED ", Color::Blue)
    } else if app.paused {
        ("⏸ PAUSED", Color::Yellow)
    } else {
        ("▶ RUN   ", Color::Green)
    };
    let mut spans = vec![Span::styled(state, Style::new().fg(color).bold())];
    match &app.obs {
        Some(o) => {
            let phase = match o.phase {
                Phase::Faults => "faults",
                Phase::Drain => "drain",
                Phase::Ended => "ended",
            };
            spans.push(Span::styled(
                format!(" sim {} / {} ", o.now, clock(o.end)),
                Style::new().bold(),
            ));
            spans.push(Span::raw(format!("{} │ {phase} │ ", speed_text(app))));
            spans.push(Span::raw(format!(
                "{} · seed {} │ {:.0} fps",
                o.scenario, o.seed, app.fps
            )));
        }
        None => spans.push(Span::raw(format!(" {}", speed_text(app)))),
    }
    Line::from(spans)
}

fn footer_lines(app: &App) -> Vec<Line<'static>> {
    let keys = match app.view {
        View::Main => {
            "space pause · +/− speed · s step · w WAN · c crash core · e ERP outage · arrows/tab select · enter timeline · ? help · q quit"
        }
        View::Timeline(_) => {
            "esc back · space pause · +/− speed · s step · w WAN · c crash core · e ERP outage · ? help · q quit"
        }
    };
    vec![
        Line::from(keys).dark_gray(),
        Line::from(app.notice_line().unwrap_or("").to_owned()),
    ]
}

// ---- main screen --------------------------------------------------------------------------------

fn render_main(frame: &mut Frame, area: Rect, app: &App, o: &Observation) {
    if area.width >= WIDE_MIN {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)])
                .areas(area);
        let [plants, timelines] =
            Layout::vertical([Constraint::Min(6), Constraint::Length(12)]).areas(left);
        let [flow, core, invariants] = Layout::vertical([
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Min(4),
        ])
        .areas(right);
        render_plants(frame, plants, app, o);
        render_timelines(frame, timelines, app, o);
        render_flow(frame, flow, o);
        render_core(frame, core, o, true);
        render_invariants(frame, invariants, o);
    } else {
        let [plants, mid, bottom] = Layout::vertical([
            Constraint::Min(5),
            Constraint::Length(6),
            Constraint::Length(7),
        ])
        .areas(area);
        let [flow, core] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(mid);
        let [invariants, timelines] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(bottom);
        render_plants(frame, plants, app, o);
        render_flow(frame, flow, o);
        render_core(frame, core, o, false);
        render_invariants(frame, invariants, o);
        render_timelines(frame, timelines, app, o);
    }
}

fn panel(title: &str, focused: bool) -> Block<'static> {
    let b = Block::bordered().title(format!(" {title} "));
    if focused {
        b.border_style(Style::new().fg(Color::Cyan))
    } else {
        b
    }
}

fn station_detail(s: &StationView) -> String {
    let mut parts = vec![s.id.to_string()];
    parts.push(
        match s.state() {
            StationState::Down => "down",
            StationState::StoppedByMes => "stopped by MES",
            StationState::Drifting => "drifting",
            StationState::OnHold => "WIP on hold",
            StationState::Running => "running",
            StationState::Idle => "idle",
        }
        .to_owned(),
    );
    if s.down && s.stopped_by_mes {
        parts.push("also stopped by MES".into());
    }
    if let Some(t) = s.drifting_since {
        parts.push(format!("drifting since {}", clock(t)));
    }
    if s.units_on_hold > 0 {
        parts.push(format!("{} units on hold", s.units_on_hold));
    }
    parts.push(format!("{} made, {} failed", s.processed, s.failures));
    parts.join(" · ")
}

fn render_plants(frame: &mut Frame, area: Rect, app: &App, o: &Observation) {
    let block = panel("Plants", app.focus == Focus::Stations);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut head: Vec<Line> = Vec::new();
    if let Some((_, _, s)) = o.stations().nth(app.station) {
        head.push(Line::from(station_detail(s)).bold());
    }
    if inner.height >= 6 {
        let mut legend = Vec::new();
        for (st, name) in [
            (StationState::Running, "running"),
            (StationState::Idle, "idle"),
            (StationState::Drifting, "drifting"),
            (StationState::OnHold, "on hold"),
            (StationState::StoppedByMes, "stopped by MES"),
            (StationState::Down, "down"),
        ] {
            let (g, c) = glyph(st);
            legend.push(Span::styled(g, Style::new().fg(c)));
            legend.push(Span::raw(format!(" {name}  ")).dark_gray());
        }
        head.push(Line::from(legend));
    }
    let mut grid: Vec<Line> = Vec::new();
    let mut selected_row = 0;
    let mut index = 0;
    for p in &o.plants {
        let wan = if p.wan_down {
            Span::styled(
                format!(
                    "WAN ✖ DOWN · {} events buffered at the edge",
                    p.edge_buffered
                ),
                Style::new().fg(Color::Red).bold(),
            )
        } else {
            Span::styled("WAN ● up", Style::new().fg(Color::Green))
        };
        grid.push(Line::from(vec![
            Span::styled(format!("{:<4}", p.id.as_str()), Style::new().bold()),
            wan,
        ]));
        for l in &p.lines {
            let short =
                l.id.as_str()
                    .rsplit_once('-')
                    .map_or(l.id.as_str(), |(_, s)| s);
            let mut spans = vec![Span::raw(format!("  {short:<3}"))];
            for s in &l.stations {
                let (g, c) = glyph(s.state());
                let selected = index == app.station;
                if selected {
                    selected_row = grid.len();
                    spans.push(Span::styled(
                        format!("[{g}]"),
                        Style::new().fg(c).add_modifier(Modifier::REVERSED),
                    ));
                } else {
                    spans.push(Span::styled(format!(" {g} "), Style::new().fg(c)));
                }
                index += 1;
            }
            if let Some((order, started, size)) = &l.order {
                spans.push(Span::raw(format!(" {order} {started}/{size}")).dark_gray());
            }
            grid.push(Line::from(spans));
        }
    }
    let room = (inner.height as usize).saturating_sub(head.len());
    let skip = (selected_row + 1).saturating_sub(room);
    head.extend(grid.into_iter().skip(skip));
    frame.render_widget(Paragraph::new(head), inner);
}

fn class_name(c: &ClassView, narrow: bool) -> &'static str {
    match (c.class.map(|c| c.as_str()).unwrap_or("?"), narrow) {
        ("critical", true) => "crit",
        ("transactional", true) => "trans",
        (name, _) => name,
    }
}

fn render_flow(frame: &mut Frame, area: Rect, o: &Observation) {
    let narrow = area.width < 56;
    let header = Row::new(["class", "ev/min", "queued", "p99", "SLO p99"]).bold();
    let rows = o.classes.iter().map(|c| {
        let p99 = if c.latency.count == 0 {
            "—".to_owned()
        } else {
            span_ms(c.latency.p99_ms)
        };
        let (slo, style) = match c.slo_p99 {
            None => ("—".to_owned(), Style::new()),
            Some(d) if c.over_slo() => (
                format!("{} ✗", fmt_duration(d)),
                Style::new().fg(Color::Red).bold(),
            ),
            Some(d) => (
                format!("{} ✓", fmt_duration(d)),
                Style::new().fg(Color::Green),
            ),
        };
        Row::new([
            Cell::from(class_name(c, narrow)),
            Cell::from(format!("{:.1}", c.events_per_s * 60.0)),
            Cell::from(c.queued.to_string()),
            Cell::from(p99).style(style),
            Cell::from(slo).style(style),
        ])
    });
    let widths = [
        Constraint::Length(if narrow { 5 } else { 13 }),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Min(6),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .block(panel("Flow per latency class", false));
    frame.render_widget(table, area);
}

fn fmt_duration(d: Duration) -> String {
    d.to_string()
}

fn system_status(o: &Observation, s: System) -> (String, Color) {
    let v = &o.systems[s.index()];
    if let Some(until) = v.outage_until {
        return (format!("✖ outage until {}", clock(until)), Color::Red);
    }
    if v.breaker_open {
        return ("✖ breaker open".into(), Color::Red);
    }
    if !v.faults.is_empty() {
        return (format!("! {}", v.faults.join(", ")), Color::Yellow);
    }
    ("● ok".into(), Color::Green)
}

fn render_core(frame: &mut Frame, area: Rect, o: &Observation, wide: bool) {
    let c = &o.core;
    let mut lines = Vec::new();
    let state = if c.down {
        Span::styled("core ✖ DOWN", Style::new().fg(Color::Red).bold())
    } else {
        Span::styled("core ● up", Style::new().fg(Color::Green))
    };
    lines.push(Line::from(vec![
        state,
        Span::raw(format!(
            " · crashes {} · open calls {}",
            c.crashes, c.open_calls
        )),
    ]));
    let dl_style = if c.dead_letters > 0 {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    lines.push(Line::from(vec![
        Span::raw(format!("retries {} · ", c.stats.retries)),
        Span::styled(
            format!(
                "dead letters {} ({} total)",
                c.dead_letters, c.stats.dead_letters
            ),
            dl_style,
        ),
    ]));
    lines.push(Line::from(format!(
        "{} {} · pushbacks {} · timeouts {}",
        if wide { "duplicates absorbed" } else { "dups" },
        c.stats.duplicates_absorbed,
        c.stats.pushbacks,
        c.stats.timeouts
    )));
    if wide {
        for s in System::ALL {
            let v = &o.systems[s.index()];
            let (text, color) = system_status(o, s);
            lines.push(Line::from(vec![
                Span::raw(format!("{:<5}", s.as_str().to_uppercase())),
                Span::styled(format!("{text:<27}"), Style::new().fg(color)),
                Span::raw(if o.core.down {
                    " (the core is down)".to_owned()
                } else {
                    format!(
                        " queued {}/{}/{} · in flight {}",
                        v.queued[0], v.queued[1], v.queued[2], v.in_flight
                    )
                })
                .dark_gray(),
            ]));
        }
    } else {
        let mut spans = Vec::new();
        for s in System::ALL {
            let (text, color) = system_status(o, s);
            let short = text.split_whitespace().next().unwrap_or("").to_owned();
            spans.push(Span::raw(format!("{} ", s.as_str().to_uppercase())));
            spans.push(Span::styled(format!("{short}  "), Style::new().fg(color)));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(
        Paragraph::new(lines).block(panel("Core and systems", false)),
        area,
    );
}

fn render_invariants(frame: &mut Frame, area: Rect, o: &Observation) {
    let inv = &o.invariants;
    let mut lines = Vec::new();
    match inv.checked_at {
        None => lines.push(Line::from("not checked yet").dark_gray()),
        Some(at) => {
            let when = if inv.is_final {
                "final verdict".to_owned()
            } else {
                format!("checked {}", clock(at))
            };
            match inv.first_violation() {
                None => lines.push(Line::from(vec![
                    Span::styled("● GREEN", Style::new().fg(Color::Green).bold()),
                    Span::raw(format!(" · {when}")),
                ])),
                Some((id, first)) => {
                    lines.push(Line::from(vec![
                        Span::styled("✖ RED", Style::new().fg(Color::Red).bold()),
                        Span::raw(format!(" · {id} · {when}")),
                    ]));
                    lines.push(Line::from(first.to_owned()).red());
                }
            }
        }
    }
    // One line per invariant when they fit; else the held ones share a line.
    let room = area.height.saturating_sub(2) as usize;
    let compact = lines.len() + inv.items.len() > room;
    let mut held = Vec::new();
    for i in &inv.items {
        let line = match &i.verdict {
            Verdict::Held if compact => {
                held.push(i.id.as_str());
                continue;
            }
            Verdict::Held => Line::from(vec![
                Span::styled("✓ ", Style::new().fg(Color::Green)),
                Span::raw(format!("{} ({} checked)", i.id, i.checked)),
            ]),
            Verdict::Violated { total, .. } => Line::from(vec![
                Span::styled("✗ ", Style::new().fg(Color::Red).bold()),
                Span::styled(
                    format!("{}: {total} violation(s)", i.id),
                    Style::new().fg(Color::Red),
                ),
            ]),
            Verdict::Open { total, .. } => Line::from(vec![
                Span::styled("… ", Style::new().fg(Color::Yellow)),
                Span::raw(format!("{}: {total} open, judged at the end", i.id)),
            ]),
        };
        lines.push(line);
    }
    if !held.is_empty() {
        lines.push(Line::from(vec![
            Span::styled(
                format!("✓ {} held: ", held.len()),
                Style::new().fg(Color::Green),
            ),
            Span::raw(held.join(", ")),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(panel("Invariants", false)),
        area,
    );
}

fn progress(t: &Timeline) -> String {
    Step::ALL
        .iter()
        .map(|s| {
            if t.at[s.index()].is_some() {
                '■'
            } else {
                '·'
            }
        })
        .collect()
}

fn render_timelines(frame: &mut Frame, area: Rect, app: &App, o: &Observation) {
    let focused = app.focus == Focus::Timelines;
    let title = format!(
        "Workflows · {} of {} NCs",
        o.timelines.len(),
        o.timelines_total
    );
    let block = panel(&title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if o.timelines.is_empty() {
        frame.render_widget(Paragraph::new("no NC yet").dark_gray(), inner);
        return;
    }
    let row = app.timeline_row();
    let skip = (row + 1).saturating_sub(inner.height as usize);
    let lines: Vec<Line> = o
        .timelines
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, t)| {
            let mark = if focused && i == row { "▶ " } else { "  " };
            let state = if !t.asset_related {
                "not asset-related".to_owned()
            } else if t.closed() {
                "closed".to_owned()
            } else {
                t.reached().name().to_owned()
            };
            let line = Line::from(format!(
                "{mark}{} {} {} {:<11} {}",
                t.nc,
                t.station,
                progress(t),
                state,
                t.at[0].map(clock).unwrap_or_default()
            ));
            if focused && i == row {
                line.reversed()
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

// ---- timeline screen ----------------------------------------------------------------------------

fn step_system(s: Step) -> &'static str {
    match s {
        Step::Nc | Step::Disposition => "QMS",
        Step::Hold | Step::Cost | Step::Release => "ERP",
        Step::WorkOrder | Step::Completion => "CMMS",
        Step::Stop | Step::Resume => "MES",
    }
}

fn render_timeline(frame: &mut Frame, area: Rect, o: &Observation, t: Option<&Timeline>, nc: &str) {
    let block = panel(&format!("Timeline {nc}"), true);
    let Some(t) = t else {
        frame.render_widget(
            Paragraph::new(format!(
                "{nc} is no longer among the {} most recent NCs",
                o.timelines.len()
            ))
            .block(block),
            area,
        );
        return;
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut head = vec![
        Line::from(format!(
            "{} at {} · serials {} ({} units)",
            t.nc,
            t.station,
            t.serials,
            t.serials.len()
        ))
        .bold(),
        Line::from(if t.asset_related {
            "asset-related: contain → repair → disposition → release"
        } else {
            "not asset-related: no containment"
        }),
    ];
    let mut facts = Vec::new();
    if let Some(wo) = &t.work_order {
        facts.push(format!("work order {wo}"));
    }
    if t.at[Step::Cost.index()].is_some() {
        facts.push(format!("cost {} in ERP", t.cost));
    }
    if let Some(d) = t.decision {
        facts.push(format!("disposition {d:?}").to_lowercase());
    }
    head.push(Line::from(facts.join(" · ")));
    let [top, table_area] =
        Layout::vertical([Constraint::Length(4), Constraint::Min(0)]).areas(inner);
    frame.render_widget(Paragraph::new(head), top);
    let start = t.at[Step::Nc.index()];
    // A bar per step on a linear time axis from the NC to the latest step, when there is room.
    let fixed: u16 = 1 + 12 + 6 + 15 + 9 + 2 * 5;
    let bar_w = table_area.width.saturating_sub(fixed) as usize;
    let last = t.at.iter().flatten().max().copied();
    let span_us = match (start, last) {
        (Some(s), Some(l)) => l.saturating_since(s).as_micros().max(1),
        _ => 1,
    };
    let rows = Step::ALL.iter().map(|s| {
        let at = t.at[s.index()];
        let (when, since, style) = match (at, start) {
            (Some(at), Some(start)) => (
                at.to_string(),
                format!("+{}", span_ms(at.saturating_since(start).as_millis())),
                Style::new().fg(Color::Green),
            ),
            _ => (
                "pending".to_owned(),
                String::new(),
                Style::new().dark_gray(),
            ),
        };
        let mut cells = vec![
            Cell::from(if at.is_some() { "■" } else { "·" }),
            Cell::from(s.name()),
            Cell::from(step_system(*s)),
            Cell::from(when),
            Cell::from(since),
        ];
        if bar_w >= 10 {
            let bar = match (at, start) {
                (Some(at), Some(start)) => {
                    let x = at.saturating_since(start).as_micros() as f64 / span_us as f64;
                    let pos = (x * (bar_w - 1) as f64).round() as usize;
                    format!("{}●", "─".repeat(pos.min(bar_w - 1)))
                }
                _ => String::new(),
            };
            cells.push(Cell::from(bar));
        }
        Row::new(cells).style(style)
    });
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(12),
        Constraint::Length(6),
        Constraint::Length(15),
        Constraint::Length(9),
    ];
    let mut header = vec!["", "step", "system", "simulated time", "since NC"];
    if bar_w >= 10 {
        widths.push(Constraint::Min(10));
        header.push(if bar_w >= 40 {
            "time line (linear, NC → latest step)"
        } else {
            "time line"
        });
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).bold())
        .column_spacing(2);
    frame.render_widget(table, table_area);
}

// ---- help ---------------------------------------------------------------------------------------

fn render_help(frame: &mut Frame, area: Rect) {
    let w = area.width.min(64);
    let h = area.height.min(20);
    let popup = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let speeds: Vec<String> = Speed::STEPS.iter().map(|s| s.to_string()).collect();
    let keys = [
        ("space", "pause / resume".to_owned()),
        ("+ −", format!("speed: {}", speeds.join(" "))),
        ("s", "pause and process one simulation event".to_owned()),
        (
            "w",
            format!("WAN outage of {WAN_OUTAGE} on the selected plant"),
        ),
        (
            "c",
            format!("crash the core; it restarts after {CORE_DOWNTIME}"),
        ),
        ("e", format!("ERP outage of {ERP_OUTAGE}")),
        ("arrows", "select a station / a workflow".to_owned()),
        ("tab", "switch between stations and workflows".to_owned()),
        ("enter", "open the selected workflow's timeline".to_owned()),
        ("esc", "close help / back to the main screen".to_owned()),
        ("?", "this help".to_owned()),
        ("q", "quit".to_owned()),
    ];
    let mut lines: Vec<Line> = keys
        .into_iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:>7}  "), Style::new().bold()),
                Span::raw(what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(
        "Injected faults go into the trace like scenario faults;",
    ));
    lines.push(Line::from(
        "none are accepted during the drain. Invariants marked …",
    ));
    lines.push(Line::from("are judged when the drain ends."));
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(panel("Keys", true)), popup);
}
