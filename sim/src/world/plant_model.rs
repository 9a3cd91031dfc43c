//! The plant's side of the world: paced lines, orders, drift and inspections, breakdowns,
//! technicians and repairs, approvals, alarm storms and master-data releases.

use super::*;

impl World {
    pub(super) fn release_next_order(&mut self, line: usize, now: Instant) {
        let l = &mut self.plant.lines[line];
        let pi = l.plant;
        let spec = &self.scenario.plants[pi];
        let n = l.orders_released;
        l.orders_released += 1;
        let size = u64::from(spec.orders.size.max(1));
        let first = l.serial_base + n * size;
        let order = ProductionOrder {
            id: OrderId::new(format!("PO-{}-{:05}", l.id, n + 1)).expect("valid"),
            material: spec.orders.material.clone(),
            line: l.id.clone(),
            plant: self.plant.plants[pi].id.clone(),
            serials: SerialRange::new(first, first + size - 1).expect("size ≥ 1"),
        };
        l.order = Some(RunningOrder {
            order: order.clone(),
            dispatched: false,
            next_serial: first,
        });
        let _ = self.erp.release_order(now, order);
        self.collect_events(System::Erp, None, now);
    }

    pub(super) fn start_line_if_ready(&mut self, line: usize, now: Instant) {
        if now < self.duration_end
            && !self.plant.lines[line].running
            && self.plant.line_can_run(line)
        {
            self.plant.lines[line].running = true;
            let d = takt(
                self.scenario.plants[self.plant.lines[line].plant].cycle_time,
                self.rng_plant.uniform(),
            );
            self.kernel.schedule_at(now + d, Ev::Takt(line as u32));
        }
    }

    pub(super) fn takt(&mut self, line: usize, now: Instant) {
        if now >= self.duration_end || !self.plant.line_can_run(line) {
            self.plant.halt_line(line);
            return;
        }
        let pi = self.plant.lines[line].plant;
        let spec = &self.scenario.plants[pi];
        let (sample_rate, defect_rate, cycle) = (
            spec.inspection.sample_rate,
            spec.inspection.defect_rate,
            spec.cycle_time,
        );
        let range = self.plant.lines[line].stations.clone();
        let n = range.len();
        // Every station processes the unit in front of it.
        for pos in 0..n {
            let Some(serial) = self.plant.lines[line].wip[pos] else {
                continue;
            };
            let si = range.start + pos;
            let st = &mut self.plant.stations[si];
            st.record_processing(now);
            if st.drift > 0.0 {
                st.suspect_first.get_or_insert(serial);
                st.suspect_last = Some(serial);
            }
            if self.rng_plant.bernoulli(sample_rate) {
                st.inspections += 1;
                self.counts.inspections += 1;
                let p = (defect_rate + st.drift).min(1.0);
                if self.rng_plant.bernoulli(p) {
                    st.failures += 1;
                    let result = InspectionResult {
                        id: InspectionId::new(format!("I-{serial}-{pos}")).expect("valid"),
                        station: st.id.clone(),
                        serial,
                        characteristic: CharacteristicId::new(CHARACTERISTIC).expect("valid"),
                        passed: false,
                    };
                    if self.qms.record_inspection(now, &result).is_some() {
                        self.collect_events(System::Qms, None, now);
                    }
                }
            }
        }
        // Units move one station on; the last one leaves the line.
        let last_station = range.end - 1;
        if let Some(serial) = self.plant.lines[line].wip[n - 1].take() {
            let order = self.plant.lines[line]
                .order
                .as_ref()
                .map(|o| (o.order.id.clone(), o.order.material.clone()));
            if let Some((oid, mat)) = order {
                let sid = self.plant.stations[last_station].id.clone();
                let _ = self.mes[pi].unit_completed(now, &sid, serial, &oid, &mat, true);
                self.plant.lines[line].record_produced(&oid, serial);
            }
            self.plant.lines[line].units_completed += 1;
        }
        let l = &mut self.plant.lines[line];
        l.wip.rotate_right(1);
        if let Some(o) = &mut l.order
            && o.dispatched
            && o.next_serial <= o.order.serials.last()
        {
            l.wip[0] = Some(o.next_serial);
            o.next_serial += 1;
        }
        let order_done = l.wip.iter().all(Option::is_none)
            && l.order
                .as_ref()
                .is_some_and(|o| o.next_serial > o.order.serials.last());
        if order_done {
            let oid = l
                .order
                .as_ref()
                .map(|o| o.order.id.clone())
                .expect("checked");
            self.mes[pi].end_order(now, &oid);
            self.release_next_order(line, now);
        }
        self.collect_events(System::Mes, Some(pi), now);
        if self.plant.line_can_run(line) {
            let d = takt(cycle, self.rng_plant.uniform());
            self.kernel.schedule_at(now + d, Ev::Takt(line as u32));
        } else {
            self.plant.halt_line(line);
        }
    }

    pub(super) fn schedule_breakdown(&mut self, s: usize) {
        let pi = self.plant.stations[s].plant;
        let Some(machines) = &self.scenario.plants[pi].machines else {
            return;
        };
        let mtbf = machines.mtbf;
        if mtbf.is_zero() {
            return;
        }
        let d = self.rng_plant.exponential(mtbf);
        let at = self.kernel.now() + d;
        if at < self.duration_end {
            self.kernel.schedule_at(at, Ev::Breakdown(s as u32));
        }
    }

    pub(super) fn breakdown(&mut self, s: usize, now: Instant) {
        let st = &mut self.plant.stations[s];
        if st.down {
            return;
        }
        st.down = true;
        st.breakdowns += 1;
        st.breakdown_log.push((now, None));
        let pi = st.plant;
        let code = format!("E{:03}", 100 + st.breakdowns % 900);
        let id = st.id.clone();
        let _ = self.mes[pi].machine_down(now, &id, Some(code));
        self.collect_events(System::Mes, Some(pi), now);
    }

    /// New work orders in CMMS get a technician.
    pub(super) fn dispatch_technicians(&mut self, now: Instant) {
        let entries = self.cmms.ledger().entries();
        let mut new = Vec::new();
        for e in &entries[self.cmms_cursor..] {
            if let plantloop_mocks::Posting::WorkOrderCreated(wo) = &e.posting {
                new.push((wo.id.clone(), wo.station.clone()));
            }
        }
        self.cmms_cursor = entries.len();
        for (wo, station) in new {
            if let Some(s) = self.plant.station_index(&station) {
                self.plant.stations[s].technicians_sent.push(now);
            }
            let response = self.rng_people.exponential(Duration::from_mins(10));
            self.kernel
                .schedule_at(now + response, Ev::TechArrives(Box::new(wo)));
        }
    }

    pub(super) fn technician_arrives(&mut self, wo: WorkOrderId, now: Instant) {
        if self.cmms.start_work(now, &wo).is_err() {
            return;
        }
        let Some(rec) = self.cmms.work_order(&wo) else {
            return;
        };
        let Some(s) = self.plant.station_index(&rec.work_order.station) else {
            return;
        };
        let mttr = self.scenario.plants[self.plant.stations[s].plant]
            .machines
            .map_or(Duration::from_mins(40), |m| m.mttr);
        let repair = self
            .rng_people
            .exponential(mttr)
            .max(Duration::from_mins(1));
        self.repairs.insert(wo.clone(), (s, now));
        self.kernel
            .schedule_at(now + repair, Ev::RepairDone(Box::new(wo)));
    }

    pub(super) fn repair_done(&mut self, wo: WorkOrderId, now: Instant) {
        let Some((s, started)) = self.repairs.remove(&wo) else {
            return;
        };
        let pi = self.plant.stations[s].plant;
        let maint = &self.scenario.plants[pi].maintenance;
        let mut parts = Vec::new();
        if !maint.parts.is_empty() {
            let i = self.rng_people.below(maint.parts.len() as u64) as usize;
            let p = &maint.parts[i];
            parts.push(SparePartUsage {
                part: p.part.clone(),
                quantity: 1,
                unit_cost: p.unit_cost,
            });
        }
        let minutes = now.saturating_since(started).as_secs().div_ceil(60).max(1) as u32;
        let labour = vec![LabourEntry {
            technician: TechnicianId::new(format!("T-{}", self.plant.plants[pi].id))
                .expect("valid"),
            minutes,
            rate_per_hour: maint.labor_rate,
        }];
        let nc = self
            .cmms
            .work_order(&wo)
            .and_then(|r| r.work_order.nc.clone());
        let st = &mut self.plant.stations[s];
        let root_cause = if st.drift > 0.0 {
            "worn tool replaced"
        } else if st.down {
            "machine fault repaired"
        } else {
            "no fault found"
        };
        if self
            .cmms
            .complete_work(now, &wo, root_cause, parts, labour)
            .is_err()
        {
            return;
        }
        st.drift = 0.0;
        st.drift_since = None;
        let was_down = st.down;
        st.down = false;
        if was_down && let Some((_, up)) = st.breakdown_log.last_mut() {
            *up = Some(now);
        }
        let id = st.id.clone();
        if was_down {
            let _ = self.mes[pi].machine_up(now, &id);
            self.schedule_breakdown(s);
        }
        self.collect_events(System::Cmms, None, now);
        self.collect_events(System::Mes, Some(pi), now);
        let line = self.plant.stations[s].line;
        self.start_line_if_ready(line, now);
        if let Some(nc) = nc {
            let delay =
                Duration::from_mins(20) + self.rng_people.exponential(Duration::from_mins(30));
            self.kernel
                .schedule_at(now + delay, Ev::Approve(Box::new(nc)));
        }
    }

    pub(super) fn alarm(&mut self, storm: usize, left: u32, now: Instant) {
        let Some(scenario::Fault::AlarmStorm {
            plant,
            events,
            over,
            ..
        }) = self.scenario.faults.get(storm).cloned()
        else {
            return;
        };
        let Some(pi) = self.plant.plant_index(&plant) else {
            return;
        };
        let lines = self.plant.plants[pi].lines.clone();
        let first = self.plant.lines[lines.start].stations.start;
        let last = self.plant.lines[lines.end - 1].stations.end;
        let s = first + self.rng_plant.below((last - first) as u64) as usize;
        let severity = if self.rng_plant.bernoulli(0.7) {
            AlarmSeverity::Info
        } else {
            AlarmSeverity::Warning
        };
        let station = self.plant.stations[s].id.clone();
        let _ = self.mes[pi].raise_alarm(
            now,
            Alarm {
                station,
                code: format!("A{}", left % 97),
                severity,
            },
        );
        self.collect_events(System::Mes, Some(pi), now);
        if left > 1 {
            let gap = Duration::from_micros(over.as_micros() / u64::from(events.max(1)));
            self.kernel.schedule_at(
                now + gap,
                Ev::Alarm {
                    storm: storm as u32,
                    left: left - 1,
                },
            );
        }
    }

    pub(super) fn release_master_data(&mut self, i: usize, now: Instant) {
        let m = self.scenario.masterdata[i];
        match m.kind {
            scenario::MasterDataKind::Material => {
                for n in 0..m.count {
                    let id = MaterialId::new(format!("MAT-{i}-{n:06}")).expect("valid");
                    self.erp.publish_material(
                        now,
                        Material {
                            id,
                            description: format!("item {n}"),
                            unit: "EA".into(),
                        },
                    );
                }
                self.collect_events(System::Erp, None, now);
            }
            scenario::MasterDataKind::Asset => {
                // New versions of the real placements, round robin: consumers must end on the newest.
                let n_st = self.plant.stations.len();
                for n in 0..m.count as usize {
                    let s = &self.plant.stations[n % n_st];
                    let p = AssetPlacement {
                        asset: s.asset.clone(),
                        station: s.id.clone(),
                        line: self.plant.lines[s.line].id.clone(),
                        plant: self.plant.plants[s.plant].id.clone(),
                    };
                    self.cmms.publish_asset(now, p);
                }
                self.collect_events(System::Cmms, None, now);
            }
            scenario::MasterDataKind::InspectionSpec => {
                let n_st = self.plant.stations.len();
                for n in 0..m.count as usize {
                    let s = &self.plant.stations[n % n_st];
                    let spec = InspectionSpec {
                        characteristic: CharacteristicId::new(CHARACTERISTIC).expect("valid"),
                        station: s.id.clone(),
                        lower_milli: 11_500 - (n / n_st) as i64,
                        upper_milli: 12_500 + (n / n_st) as i64,
                    };
                    let key = RecordKey::new(format!("SPEC-{}", s.id)).expect("valid");
                    self.qms.publish_inspection_spec(now, key, spec);
                }
                self.collect_events(System::Qms, None, now);
            }
        }
    }
}
