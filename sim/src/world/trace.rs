//! The run's trace: every event, call, reply and fault that crossed the core, as CloudEvents JSON
//! Lines.

use super::*;

/// RFC 3339 time of a simulated instant, counting from 2026-01-01T00:00:00Z.
pub fn rfc3339(at: Instant) -> String {
    const EPOCH_DAYS: i64 = 20_454; // 2026-01-01 in days since 1970-01-01
    let ms = at.as_millis();
    let days = EPOCH_DAYS + (ms / 86_400_000) as i64;
    let rem = ms % 86_400_000;
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000
    )
}

impl World {
    /// Writes a trace record for each scenario fault that began at or before `now`, before the
    /// event at `now` is processed: injected and scenario faults read alike in a trace. Records
    /// only: the faults act through their own events and the mocks' fault rules, and the trace hash
    /// (which the scenario already determines them for) does not include them.
    pub(super) fn record_scenario_faults(&mut self, now: Instant) {
        while let Some(&(start, i)) = self.fault_starts.get(self.faults_recorded)
            && start <= now
        {
            self.faults_recorded += 1;
            let f = &self.scenario.faults[i as usize];
            let window = f.window();
            let mut data = serde_json::json!({
                "at_us": start.as_micros(),
                "for": window.length.to_string(),
                "for_us": window.length.as_micros(),
            });
            if let Some(plant) = f.plant() {
                data["plant"] = plant.to_string().into();
            }
            if let Some(system) = f.system() {
                data["system"] = system.as_str().into();
            }
            match f {
                scenario::Fault::EndpointErrors { rate, .. } => data["rate"] = (*rate).into(),
                scenario::Fault::EndpointThrottle { limit_per_s, .. } => {
                    data["limit_per_s"] = (*limit_per_s).into()
                }
                scenario::Fault::EndpointLatency { latency, .. } => {
                    data["latency"] = latency.to_string().into()
                }
                scenario::Fault::DuplicateDelivery { probability, .. } => {
                    data["probability"] = (*probability).into()
                }
                scenario::Fault::Reorder { window, .. } => {
                    data["window"] = window.to_string().into()
                }
                scenario::Fault::AlarmStorm { events, .. } => data["events"] = (*events).into(),
                _ => {}
            }
            let kind = f.kind();
            self.write_trace(serde_json::json!({
                "specversion": "1.0",
                "id": format!("scenario-fault-{}", i + 1),
                "source": "/plantloop/sim/scenario",
                "type": format!("com.plantloop.sim.fault.{kind}.v1"),
                "time": rfc3339(start),
                "datacontenttype": "application/json",
                "data": data,
            }));
        }
    }

    pub(super) fn write_trace(&mut self, v: serde_json::Value) {
        if let Some(t) = &mut self.trace
            && self.trace_error.is_none()
        {
            let r = serde_json::to_writer(&mut *t, &v)
                .map_err(|e| e.to_string())
                .and_then(|_| t.write_all(b"\n").map_err(|e| e.to_string()));
            if let Err(e) = r {
                self.trace_error = Some(e);
            }
        }
    }

    pub(super) fn trace_call(&mut self, now: Instant, call: &Call) {
        let v = serde_json::json!({
            "specversion": "1.0",
            "id": format!("{}.{}", call.id, call.attempt),
            "source": "/plantloop/core",
            "type": format!("com.plantloop.core.call.{}.v1", call.request.name()),
            "time": rfc3339(now),
            "datacontenttype": "application/json",
            "subject": call.target.as_str(),
            "causationid": call.origin.to_string(),
            "latencyclass": call.class.as_str(),
            "data": { "target": call.target, "key": call.key, "attempt": call.attempt, "request": call.request },
        });
        self.write_trace(v);
    }

    pub(super) fn trace_reply(
        &mut self,
        now: Instant,
        call: CallId,
        attempt: u32,
        outcome: &Outcome,
    ) {
        if self.trace.is_none() {
            return;
        }
        let v = serde_json::json!({
            "specversion": "1.0",
            "id": format!("{call}.{attempt}.reply"),
            "source": "/plantloop/core",
            "type": "com.plantloop.core.reply.v1",
            "time": rfc3339(now),
            "datacontenttype": "application/json",
            "data": { "call": call, "attempt": attempt, "outcome": format!("{outcome:?}") },
        });
        self.write_trace(v);
    }
}
