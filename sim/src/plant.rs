//! The plant's ground truth: plants → lines → stations, the units they physically processed and when,
//! drift, breakdowns. Only the simulator writes it; the checker reads it. The integration core never
//! sees it.
//!
//! A line is paced (synchronous transfer): every takt each station processes the unit in front of
//! it, then units move one station on. A station that is stopped by MES or broken down halts its
//! whole line, as on a real assembly line; the physical record notes, per station, the spans of
//! time during which it processed units.

use plantloop_core::model::*;
use plantloop_core::time::{Duration, Instant};

/// A span of continuous processing at one station: units processed at `first_at` … `last_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductionSpan {
    pub first_at: Instant,
    pub last_at: Instant,
    pub units: u64,
}

/// One station's physical state and record.
#[derive(Clone, Debug)]
pub struct Station {
    pub id: StationId,
    pub asset: AssetId,
    pub plant: usize,
    pub line: usize,
    /// Position in its line, from 0.
    pub position: usize,
    /// MES has stopped it (mirrors MES's state the instant MES applies a command).
    pub stopped: bool,
    /// Broken down, waiting for repair.
    pub down: bool,
    /// Extra defect probability from tool wear (`[[drift]]`), cleared by a repair.
    pub drift: f64,
    /// Whether a drift has started and not yet been repaired, and when it started.
    pub drift_since: Option<Instant>,
    /// Serials processed while drifting, before the repair: the units a containment must hold.
    pub suspect_first: Option<u64>,
    pub suspect_last: Option<u64>,
    pub spans: Vec<ProductionSpan>,
    pub open_span: Option<ProductionSpan>,
    pub processed: u64,
    pub inspections: u64,
    pub failures: u64,
    pub breakdowns: u64,
    /// Each breakdown: when the machine went down and, once repaired, when it ran again.
    pub breakdown_log: Vec<(Instant, Option<Instant>)>,
    /// When a technician was sent to this station (for any work order).
    pub technicians_sent: Vec<Instant>,
    /// Pending breakdown timer, to cancel on a stop (machines do not fail while idle).
    pub breakdown_timer: Option<u64>,
}

impl Station {
    /// Records that this station processed a unit at `at`.
    pub fn record_processing(&mut self, at: Instant) {
        self.processed += 1;
        match &mut self.open_span {
            Some(s) => {
                s.last_at = at;
                s.units += 1;
            }
            None => {
                self.open_span = Some(ProductionSpan {
                    first_at: at,
                    last_at: at,
                    units: 1,
                })
            }
        }
    }

    /// Closes the current span (the line halted).
    pub fn close_span(&mut self) {
        if let Some(s) = self.open_span.take() {
            self.spans.push(s);
        }
    }

    /// Every span, the open one included.
    pub fn all_spans(&self) -> impl Iterator<Item = &ProductionSpan> {
        self.spans.iter().chain(self.open_span.iter())
    }
}

/// A production order as the line runs it.
#[derive(Clone, Debug)]
pub struct RunningOrder {
    pub order: ProductionOrder,
    /// MES has it (the core dispatched it), so the line may build it.
    pub dispatched: bool,
    /// The next serial to start.
    pub next_serial: u64,
}

/// One paced line.
#[derive(Clone, Debug)]
pub struct Line {
    pub id: LineId,
    pub plant: usize,
    /// Indices into [`Plant::stations`]'s global station list, in flow order.
    pub stations: std::ops::Range<usize>,
    /// The serial in front of each station, if any.
    pub wip: Vec<Option<u64>>,
    pub order: Option<RunningOrder>,
    /// A takt is scheduled.
    pub running: bool,
    pub orders_released: u64,
    pub units_completed: u64,
    /// The serials that left the line finished, as runs of consecutive serials per order.
    pub produced: Vec<(OrderId, SerialRange)>,
    /// The first serial of this line's serial space.
    pub serial_base: u64,
}

impl Line {
    /// Records that `serial` of `order` left the line finished.
    pub fn record_produced(&mut self, order: &OrderId, serial: u64) {
        if let Some((o, r)) = self.produced.last_mut()
            && o == order
            && r.last().checked_add(1) == Some(serial)
        {
            *r = SerialRange::new(r.first(), serial).expect("grows upwards");
            return;
        }
        let one = SerialRange::new(serial, serial).expect("one serial");
        self.produced.push((order.clone(), one));
    }
}

/// One plant.
#[derive(Clone, Debug)]
pub struct PlantInfo {
    pub id: PlantId,
    pub lines: std::ops::Range<usize>,
    /// The WAN link to the core is down.
    pub wan_down: bool,
}

/// All plants of a run.
#[derive(Clone, Debug, Default)]
pub struct Plant {
    pub plants: Vec<PlantInfo>,
    pub lines: Vec<Line>,
    pub stations: Vec<Station>,
}

/// Serial numbers: plant, line and sequence packed so that they are unique in a run.
pub fn serial_base(plant: usize, line: usize) -> u64 {
    (plant as u64 + 1) * 1_000_000_000_000 + (line as u64 + 1) * 1_000_000_000
}

impl Plant {
    /// Builds plants with `lines × stations_per_line` each; ids as spec/scenario.md derives them.
    pub fn build(specs: &[(PlantId, u32, u32)]) -> Plant {
        let mut p = Plant::default();
        for (pi, (id, lines, per_line)) in specs.iter().enumerate() {
            let first_line = p.lines.len();
            for l in 0..*lines as usize {
                let line_id =
                    LineId::new(format!("{id}-L{}", l + 1)).expect("derived ids are valid");
                let first_station = p.stations.len();
                for s in 0..*per_line as usize {
                    let sid = StationId::new(format!("{line_id}-S{}", s + 1))
                        .expect("derived ids are valid");
                    let asset = AssetId::new(format!("EQ-{sid}")).expect("derived ids are valid");
                    p.stations.push(Station {
                        id: sid,
                        asset,
                        plant: pi,
                        line: p.lines.len(),
                        position: s,
                        stopped: false,
                        down: false,
                        drift: 0.0,
                        drift_since: None,
                        suspect_first: None,
                        suspect_last: None,
                        spans: Vec::new(),
                        open_span: None,
                        processed: 0,
                        inspections: 0,
                        failures: 0,
                        breakdowns: 0,
                        breakdown_log: Vec::new(),
                        technicians_sent: Vec::new(),
                        breakdown_timer: None,
                    });
                }
                p.lines.push(Line {
                    id: line_id,
                    plant: pi,
                    stations: first_station..p.stations.len(),
                    wip: vec![None; *per_line as usize],
                    order: None,
                    running: false,
                    orders_released: 0,
                    units_completed: 0,
                    produced: Vec::new(),
                    serial_base: serial_base(pi, l),
                });
            }
            p.plants.push(PlantInfo {
                id: id.clone(),
                lines: first_line..p.lines.len(),
                wan_down: false,
            });
        }
        p
    }

    /// The station with this id.
    pub fn station_index(&self, id: &StationId) -> Option<usize> {
        // Ids are `<plant>-L<n>-S<m>`: parse rather than search.
        let s = id.as_str();
        let (line_part, st) = s.rsplit_once("-S")?;
        let (plant_part, ln) = line_part.rsplit_once("-L")?;
        let pi = self
            .plants
            .iter()
            .position(|p| p.id.as_str() == plant_part)?;
        let li = self.plants[pi].lines.start + ln.parse::<usize>().ok()?.checked_sub(1)?;
        let line = self.lines.get(li).filter(|l| l.plant == pi)?;
        let si = line.stations.start + st.parse::<usize>().ok()?.checked_sub(1)?;
        (si < line.stations.end).then_some(si)
    }

    pub fn plant_index(&self, id: &PlantId) -> Option<usize> {
        self.plants.iter().position(|p| &p.id == id)
    }

    pub fn line_index(&self, id: &LineId) -> Option<usize> {
        self.lines.iter().position(|l| &l.id == id)
    }

    /// A line may take its next takt: an order MES has, and no station stopped or down.
    pub fn line_can_run(&self, line: usize) -> bool {
        let l = &self.lines[line];
        let has_work =
            l.order.as_ref().is_some_and(|o| o.dispatched) || l.wip.iter().any(Option::is_some);
        has_work
            && self.stations[l.stations.clone()]
                .iter()
                .all(|s| !s.stopped && !s.down)
    }

    /// Units completed by every line.
    pub fn units(&self) -> u64 {
        self.lines.iter().map(|l| l.units_completed).sum()
    }

    /// Closes the spans of every station of a halted line.
    pub fn halt_line(&mut self, line: usize) {
        let range = self.lines[line].stations.clone();
        self.lines[line].running = false;
        for s in &mut self.stations[range] {
            s.close_span();
        }
    }
}

/// The takt time of a line: the cycle time, ±10% (a paced line's takt varies a little).
pub fn takt(cycle: Duration, u: f64) -> Duration {
    let us = cycle.as_micros() as f64 * (0.9 + 0.2 * u);
    Duration::from_micros(us.max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn station_ids_resolve_to_their_index() {
        let p = Plant::build(&[
            (PlantId::new("P1").unwrap(), 2, 3),
            (PlantId::new("P2").unwrap(), 1, 2),
        ]);
        assert_eq!(p.stations.len(), 8);
        for (i, s) in p.stations.iter().enumerate() {
            assert_eq!(p.station_index(&s.id), Some(i), "{}", s.id);
        }
        assert_eq!(p.station_index(&StationId::new("P1-L3-S1").unwrap()), None);
        assert_eq!(p.station_index(&StationId::new("P2-L1-S3").unwrap()), None);
        assert_eq!(p.station_index(&StationId::new("P9-L1-S1").unwrap()), None);
    }
}
