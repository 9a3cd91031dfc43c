//! The canonical writer: a scenario as a TOML file in the format's key order, every window
//! explicit (what reproducers are written with).

use super::*;
use std::fmt::Write as _;

/// An instant as a scenario offset (`"1d12h"`).
pub(super) fn at_text(at: Instant) -> Duration {
    at.saturating_since(Instant::ZERO)
}

/// A TOML float that reads back bit for bit (`1.0`, `0.001`, `1e-7`).
fn float(v: f64) -> String {
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'E', 'n', 'i']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Scenario {
    /// The canonical TOML form: spec key order, windows explicit, defaults written out. Loading it
    /// gives a scenario equal to `self` when `self` is valid (see [`Scenario::validate`]).
    pub fn to_toml_string(&self) -> String {
        let mut o = String::new();
        self.write_toml(&mut o)
            .expect("writing to a String cannot fail");
        o
    }

    fn write_toml(&self, o: &mut String) -> fmt::Result {
        writeln!(o, "[scenario]")?;
        writeln!(o, "name = {}", quote(&self.name))?;
        if !self.description.is_empty() {
            writeln!(o, "description = {}", quote(&self.description))?;
        }
        writeln!(o, "seed = {}", self.seed)?;
        writeln!(o, "duration = \"{}\"", self.duration)?;
        writeln!(o, "drain = \"{}\"", self.drain)?;

        writeln!(o, "\n[systems]")?;
        for s in System::ALL {
            writeln!(o, "{s} = \"{}\"", self.systems.get(s))?;
        }

        writeln!(o, "\n[network]")?;
        writeln!(o, "lan = {}", self.network.lan)?;
        writeln!(o, "wan = {}", self.network.wan)?;

        writeln!(o, "\n[service]")?;
        for s in System::ALL {
            let v = &self.service[s.index()];
            writeln!(
                o,
                "{s} = {{ median = \"{}\", p99 = \"{}\", concurrency = {} }}",
                v.time.median, v.time.p99, v.concurrency
            )?;
        }

        for p in &self.plants {
            writeln!(o, "\n[[plant]]")?;
            writeln!(o, "id = {}", quote(p.id.as_str()))?;
            writeln!(o, "lines = {}", p.lines)?;
            writeln!(o, "stations_per_line = {}", p.stations_per_line)?;
            writeln!(o, "cycle_time = \"{}\"", p.cycle_time)?;
            writeln!(
                o,
                "inspection = {{ sample_rate = {}, defect_rate = {} }}",
                float(p.inspection.sample_rate),
                float(p.inspection.defect_rate)
            )?;
            if let Some(m) = p.machines {
                writeln!(
                    o,
                    "machines = {{ mtbf = \"{}\", mttr = \"{}\" }}",
                    m.mtbf, m.mttr
                )?;
            }
            writeln!(
                o,
                "orders = {{ size = {}, material = {} }}",
                p.orders.size,
                quote(p.orders.material.as_str())
            )?;
            let parts: Vec<String> = p
                .maintenance
                .parts
                .iter()
                .map(|pc| {
                    format!(
                        "{{ part = {}, unit_cost = {} }}",
                        quote(pc.part.as_str()),
                        pc.unit_cost
                    )
                })
                .collect();
            writeln!(
                o,
                "maintenance = {{ labor_rate = {}, parts = [{}] }}",
                p.maintenance.labor_rate,
                parts.join(", ")
            )?;
            if let Some(wan) = p.wan {
                writeln!(o, "wan = {wan}")?;
            }
        }

        for d in &self.drifts {
            writeln!(o, "\n[[drift]]")?;
            writeln!(o, "station = {}", quote(d.station.as_str()))?;
            writeln!(o, "at = \"{}\"", at_text(d.at))?;
            writeln!(o, "defect_rate = {}", float(d.defect_rate))?;
        }

        for f in &self.faults {
            writeln!(o, "\n[[fault]]")?;
            writeln!(o, "kind = \"{}\"", f.kind())?;
            if let Some(plant) = f.plant() {
                writeln!(o, "plant = {}", quote(plant.as_str()))?;
            }
            if let Some(system) = f.system() {
                writeln!(o, "system = \"{system}\"")?;
            }
            match f {
                Fault::CoreCrash { at, downtime } => {
                    writeln!(o, "at = \"{}\"", at_text(*at))?;
                    writeln!(o, "downtime = \"{downtime}\"")?;
                }
                Fault::AlarmStorm {
                    at, events, over, ..
                } => {
                    writeln!(o, "at = \"{}\"", at_text(*at))?;
                    writeln!(o, "events = {events}")?;
                    writeln!(o, "over = \"{over}\"")?;
                }
                _ => {
                    let w = f.window();
                    writeln!(o, "at = \"{}\"", at_text(w.start))?;
                    writeln!(o, "for = \"{}\"", w.length)?;
                }
            }
            match f {
                Fault::EndpointErrors { rate, .. } => writeln!(o, "rate = {}", float(*rate))?,
                Fault::EndpointThrottle { limit_per_s, .. } => {
                    writeln!(o, "limit_per_s = {limit_per_s}")?
                }
                Fault::EndpointLatency { latency, .. } => writeln!(o, "latency = \"{latency}\"")?,
                Fault::DuplicateDelivery { probability, .. } => {
                    writeln!(o, "probability = {}", float(*probability))?
                }
                Fault::Reorder { window, .. } => writeln!(o, "window = \"{window}\"")?,
                _ => {}
            }
        }

        for m in &self.masterdata {
            writeln!(o, "\n[[masterdata]]")?;
            writeln!(o, "at = \"{}\"", at_text(m.at))?;
            writeln!(o, "kind = \"{}\"", m.kind.as_str())?;
            writeln!(o, "count = {}", m.count)?;
        }

        writeln!(o, "\n[expect]")?;
        match &self.expect.invariants {
            Invariants::All => writeln!(o, "invariants = [\"all\"]")?,
            Invariants::Only(ids) => {
                let ids: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
                writeln!(o, "invariants = [{}]", ids.join(", "))?;
            }
        }
        let slo: Vec<String> = LatencyClass::ALL
            .into_iter()
            .filter_map(|c| {
                self.expect
                    .slo
                    .p99(c)
                    .map(|d| format!("{}_p99 = \"{d}\"", c.as_str()))
            })
            .collect();
        writeln!(o, "slo = {{ {} }}", slo.join(", "))?;
        let min: Vec<String> = self
            .expect
            .min
            .iter()
            .map(|(c, n)| format!("{} = {n}", c.as_str()))
            .collect();
        writeln!(o, "min = {{ {} }}", min.join(", "))?;
        let floor: Vec<String> = LatencyClass::ALL
            .into_iter()
            .filter_map(|c| {
                self.expect
                    .latency_min
                    .p99(c)
                    .map(|d| format!("{}_p99 = \"{d}\"", c.as_str()))
            })
            .collect();
        if !floor.is_empty() {
            writeln!(o, "latency_min = {{ {} }}", floor.join(", "))?;
        }
        Ok(())
    }
}
