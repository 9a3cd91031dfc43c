//! Between the systems and the core: source events over the LAN or a plant's WAN link and edge
//! buffer, the core's journal, calls and replies with their latencies and faults, crash and restart.

use super::*;

impl World {
    pub(super) fn set_wan(&mut self, plant: usize, down: bool, now: Instant) {
        if self.plant.plants[plant].wan_down == down {
            return;
        }
        self.plant.plants[plant].wan_down = down;
        self.hash
            .update(if down { b"wan-down" } else { b"wan-up--" });
        if !down {
            // The edge forwards what it buffered, in order.
            let mut buffered: Vec<u64> = self.edge_buffers[plant].drain(..).collect();
            buffered.sort_unstable();
            let first = (now + self.links.wan[plant].draw(&mut self.links.rng))
                .max(self.links.wan_last[plant]);
            let mut at = first;
            for (i, f) in buffered.into_iter().enumerate() {
                at = first + EDGE_SPACING.saturating_mul(i as u64);
                self.kernel.schedule_at(at, Ev::Deliver(f));
            }
            self.links.wan_last[plant] = at;
        }
    }

    /// Drains a system's outbox into flights towards the core.
    pub(super) fn collect_events(&mut self, system: System, plant: Option<usize>, now: Instant) {
        loop {
            let ev = match system {
                System::Erp => self.erp.poll_event(),
                System::Qms => self.qms.poll_event(),
                System::Cmms => self.cmms.poll_event(),
                System::Mes => plant.and_then(|p| self.mes[p].poll_event()),
            };
            let Some(ev) = ev else { break };
            self.emit(system, plant, ev, now);
        }
    }

    pub(super) fn collect_all_events(&mut self, now: Instant) {
        for s in [System::Erp, System::Qms, System::Cmms] {
            self.collect_events(s, None, now);
        }
        for p in 0..self.mes.len() {
            self.collect_events(System::Mes, Some(p), now);
        }
    }

    pub(super) fn emit(
        &mut self,
        system: System,
        plant: Option<usize>,
        event: Event,
        now: Instant,
    ) {
        if let plantloop_core::event::EventData::ProductionConfirmed(c) = &event.data {
            self.confirmations_emitted
                .push((event.event_ref(), c.clone()));
        }
        use plantloop_core::event::EventData as D;
        let station = match &event.data {
            D::MachineStateChanged(m) => Some(m.station.clone()),
            D::AlarmRaised(a) => Some(a.station.clone()),
            D::NonconformanceCreated(nc) => Some(nc.station.clone()),
            _ => None,
        };
        let of_station =
            |w: &World, s: &StationId| w.plant.station_index(s).map(|i| w.plant.stations[i].plant);
        let about = plant.or_else(|| match &event.data {
            D::NonconformanceCreated(nc) => of_station(self, &nc.station),
            D::WorkOrderCompleted(c) => of_station(self, &c.station),
            D::WorkOrderCreated(c) => of_station(self, &c.station),
            D::DowntimeClassified(d) => of_station(self, &d.station),
            D::DispositionApproved(d) => self
                .qms
                .nc(&d.nc)
                .and_then(|r| of_station(self, &r.nc.station)),
            D::OrderReleased(o) => self.plant.plant_index(&o.plant),
            _ => None,
        });
        self.emitted.insert(
            event.event_ref(),
            Emitted {
                at: now,
                event_type: event.event_type().name(),
                acked: false,
                buffered: false,
                station,
                plant: about.map(|p| p as u32),
            },
        );
        let decision = self.targets[system.index()]
            .faults
            .decide_event(now, &mut self.rng_net);
        // One link delivers in the order sent (an edge agent's or a webhook sender's queue).
        let l = &mut self.links;
        let (spread, last) = match plant {
            Some(p) => (l.wan[p], &mut l.wan_last[p]),
            None => (l.lan, &mut l.lan_last[system.index()]),
        };
        let arrives = (now + spread.draw(&mut l.rng)).max(*last);
        *last = arrives;
        let dup = decision.duplicate.map(|d| (event.clone(), d));
        self.launch(event, plant, arrives + decision.delay);
        if let Some((copy, d)) = dup {
            self.launch(copy, plant, arrives + d + Duration::from_millis(1));
        }
    }

    pub(super) fn launch(&mut self, event: Event, plant: Option<usize>, at: Instant) {
        let id = self.next_flight;
        self.next_flight += 1;
        self.flights.insert(
            id,
            Flight {
                event,
                plant,
                attempts: 0,
            },
        );
        if let Some(p) = plant
            && self.plant.plants[p].wan_down
        {
            self.buffer_at_edge(p, id);
            return;
        }
        self.kernel.schedule_at(at, Ev::Deliver(id));
    }

    pub(super) fn buffer_at_edge(&mut self, plant: usize, flight: u64) {
        #[cfg(feature = "sabotage")]
        if let Some(cap) = self.edge_drop_capacity
            && self.edge_buffers[plant].len() >= cap
        {
            self.flights.remove(&flight);
            return;
        }
        if self.edge_buffers[plant].len() >= EDGE_BUFFER_EVENTS_MAX {
            // Full: the source keeps the event and offers it again later.
            let at = self.kernel.now() + RESEND_BASE;
            self.kernel.schedule_at(at, Ev::Deliver(flight));
            return;
        }
        self.edge_buffers[plant].push_back(flight);
        self.counts.edge_buffered_max = self
            .counts
            .edge_buffered_max
            .max(self.edge_buffers[plant].len() as u64);
    }

    pub(super) fn deliver(&mut self, f: u64, now: Instant) {
        let Some(flight) = self.flights.get_mut(&f) else {
            return;
        };
        if let Some(p) = flight.plant
            && self.plant.plants[p].wan_down
        {
            // Cut off in transit: the edge still has it (it was never acknowledged).
            self.buffer_at_edge(p, f);
            return;
        }
        if self.core.is_none() {
            flight.attempts += 1;
            let backoff = RESEND_BASE
                .saturating_mul(1 << flight.attempts.min(5))
                .min(RESEND_CAP);
            self.kernel.schedule_at(now + backoff, Ev::Deliver(f));
            return;
        }
        let flight = self.flights.remove(&f).expect("present");
        let r = flight.event.event_ref();
        self.hash.update(b"event");
        self.hash.update(r.source().as_bytes());
        self.hash.update(r.id().as_bytes());
        if self.trace.is_some() {
            let mut ce = flight.event.to_cloudevent();
            ce["time"] = rfc3339(now).into();
            self.write_trace(ce);
        }
        self.counts.events_delivered += 1;
        self.counts.events_delivered_by_class[flight.event.class.index()] += 1;
        let ack = self.engine_input(now, Input::Event(flight.event.clone()));
        match ack {
            Some(Ack::Accepted | Ack::Duplicate) => {
                if let Some(e) = self.emitted.get_mut(&r) {
                    e.acked = true;
                }
            }
            Some(Ack::RetryAfter(d)) => {
                let id = self.next_flight;
                self.next_flight += 1;
                self.flights.insert(
                    id,
                    Flight {
                        attempts: flight.attempts + 1,
                        ..flight
                    },
                );
                self.kernel.schedule_at(now + d, Ev::Deliver(id));
            }
            _ => {}
        }
    }

    /// Journals and handles one input, syncs (group commit), then releases outputs.
    pub(super) fn engine_input(&mut self, now: Instant, input: Input) -> Option<Ack> {
        let core = self.core.as_mut()?;
        let ack = core
            .handle(now, input)
            .expect("the in-memory journal does not fail");
        core.sync().expect("the in-memory journal does not fail");
        self.release_outputs(now);
        Some(ack)
    }

    pub(super) fn release_outputs(&mut self, now: Instant) {
        loop {
            let Some(core) = self.core.as_mut() else {
                return;
            };
            let Some(call) = core.engine_mut().poll_command() else {
                break;
            };
            self.send_call(call, now);
        }
        while let Some(r) = self.core.as_mut().and_then(|c| c.engine_mut().poll_audit()) {
            self.hash.update(&r.hash.to_hex());
            self.audit.push(r);
        }
        self.arm_engine_timer(now);
    }

    pub(super) fn arm_engine_timer(&mut self, now: Instant) {
        let Some(at) = self.core.as_ref().and_then(|c| c.engine().poll_timeout()) else {
            return;
        };
        let at = at.max(now);
        if let Some((t, _)) = self.engine_timer
            && t <= at
        {
            return;
        }
        if let Some((_, id)) = self.engine_timer.take() {
            self.kernel.cancel(id);
        }
        let id = self.kernel.schedule_at(at, Ev::EngineTimer);
        self.engine_timer = Some((at, id));
    }

    pub(super) fn send_call(&mut self, call: Call, now: Instant) {
        self.counts.calls_sent += 1;
        self.hash.update(b"call");
        self.hash.update(&call.id.0.to_le_bytes());
        self.hash.update(&call.attempt.to_le_bytes());
        self.hash.update(call.key.as_str().as_bytes());
        if call.request.is_posting() {
            self.key_origins
                .entry(call.key.clone())
                .or_insert_with(|| KeyOrigin {
                    origin: call.origin.clone(),
                    class: call.class,
                    request: call.request.name(),
                });
        }
        if self.trace.is_some() {
            self.trace_call(now, &call);
        }
        let latency = self.one_way(&call);
        // A call to a plant whose WAN link is down never arrives.
        if call.target == System::Mes
            && self
                .mes_plants(&call.request)
                .iter()
                .any(|p| self.plant.plants[*p].wan_down)
        {
            self.counts.calls_dropped += 1;
            return;
        }
        let id = self.next_transit;
        self.next_transit += 1;
        self.calls_in_transit.insert(id, call);
        self.kernel.schedule_at(now + latency, Ev::CallArrives(id));
    }

    /// One draw of the one-way latency between the core and a call's target: the LAN, or the
    /// WAN of the plant(s) a MES call goes to (the slowest, for a call to every plant).
    fn one_way(&mut self, call: &Call) -> Duration {
        if call.target != System::Mes {
            return self.links.lan.draw(&mut self.links.rng);
        }
        let mut d = Duration::ZERO;
        for p in self.mes_plants(&call.request) {
            d = d.max(self.links.wan[p].draw(&mut self.links.rng));
        }
        d
    }

    /// The plants a MES request goes to: the station's or order's plant, or all for master data
    /// and lookups.
    pub(super) fn mes_plants(&self, r: &Request) -> Vec<usize> {
        let one = match r {
            Request::ControlStation(c) => self
                .plant
                .station_index(&c.station)
                .map(|s| self.plant.stations[s].plant),
            Request::DispatchOrder(o) => self.plant.plant_index(&o.plant),
            _ => None,
        };
        match one {
            Some(p) => vec![p],
            None => (0..self.plant.plants.len()).collect(),
        }
    }

    /// A call reaches its system. A refusal at the door (429, 5xx, an error body) is answered at
    /// once; a call the system takes waits for a free service slot (first come, first served).
    pub(super) fn call_arrives(&mut self, t: u64, now: Instant) {
        let Some(call) = self.calls_in_transit.remove(&t) else {
            return;
        };
        let target = &mut self.targets[call.target.index()];
        let decision = if target.outage_until > now {
            plantloop_mocks::fault::FaultDecision {
                delay: Duration::ZERO,
                action: FaultAction::NoAnswer,
            }
        } else {
            target.faults.decide(now, &mut self.rng_net)
        };
        let s = call.target.index();
        if decision.reaches_system() {
            if self.links.servers[s].queue.len() >= SERVICE_QUEUE_MAX {
                let outcome = Outcome::Unavailable { status: 503 };
                self.reply(&call, outcome, now);
                return;
            }
            self.calls_in_service.insert(t, (call, decision));
            self.links.servers[s].queue.push_back(t);
            self.start_service(s, now);
            return;
        }
        let reply = match decision.action {
            FaultAction::Throttle { retry_after } => Some(Outcome::Throttled { retry_after }),
            FaultAction::ServerError { status } => Some(Outcome::Unavailable { status }),
            FaultAction::ErrorBody => Some(plantloop_mocks::Reply::error_body().outcome()),
            _ => None,
        };
        if let Some(outcome) = reply {
            self.reply(&call, outcome, now + decision.delay);
        }
    }

    /// Starts serving waiting calls while system `s` has free slots. A call's effect is recorded
    /// when its service ends: after its service time and any `endpoint-latency` delay.
    fn start_service(&mut self, s: usize, now: Instant) {
        loop {
            let server = &mut self.links.servers[s];
            if server.busy >= server.concurrency {
                return;
            }
            let Some(t) = server.queue.pop_front() else {
                return;
            };
            server.busy += 1;
            let service = server.time.draw(&mut self.links.rng);
            let delay = self
                .calls_in_service
                .get(&t)
                .map_or(Duration::ZERO, |c| c.1.delay);
            self.kernel
                .schedule_at(now + service + delay, Ev::ServiceDone(t));
        }
    }

    /// A system finishes a call: the effect lands in its ledger now, and the reply (unless the
    /// fault loses it) starts back.
    pub(super) fn service_done(&mut self, t: u64, now: Instant) {
        let Some((call, decision)) = self.calls_in_service.remove(&t) else {
            return;
        };
        let s = call.target.index();
        self.links.servers[s].busy -= 1;
        let r = self.apply_to_target(&call, now);
        if decision.action == FaultAction::Pass {
            self.reply(&call, r.outcome(), now);
        }
        self.start_service(s, now);
    }

    /// Sends a call's outcome back to the core, over the call's link.
    fn reply(&mut self, call: &Call, outcome: Outcome, now: Instant) {
        let at = now + self.one_way(call);
        self.kernel.schedule_at(
            at,
            Ev::ReplyArrives(Box::new((call.id, call.attempt, outcome))),
        );
    }

    pub(super) fn apply_to_target(&mut self, call: &Call, now: Instant) -> plantloop_mocks::Reply {
        let key = Some(&call.key);
        match call.target {
            System::Erp => {
                let r = self.erp.apply(now, key, &call.request);
                self.collect_events(System::Erp, None, now);
                r
            }
            System::Qms => {
                let r = self.qms.apply(now, key, &call.request);
                self.collect_events(System::Qms, None, now);
                r
            }
            System::Cmms => {
                let r = self.cmms.apply(now, key, &call.request);
                self.collect_events(System::Cmms, None, now);
                self.dispatch_technicians(now);
                r
            }
            System::Mes => {
                // A call for every plant (master data, lookups) fans out through the core's MES
                // gateway, which answers like a proxy: the first plant's failure (a throttled
                // SaaS MES, say) if any, so that the core retries; plants that took it already
                // absorb the retry by its key.
                let plants = self.mes_plants(&call.request);
                let mut last = None;
                let mut found = None;
                let mut failed = None;
                for p in plants {
                    let r = self.mes[p].apply(now, key, &call.request);
                    if let Request::LookupPosting { .. } = call.request
                        && r.receipt().is_some()
                    {
                        found = Some(r.clone());
                    }
                    if !r.is_success() && failed.is_none() {
                        failed = Some(r.clone());
                    }
                    last = Some(r);
                    self.after_mes_call(p, &call.request, now);
                    self.collect_events(System::Mes, Some(p), now);
                }
                let lookup = matches!(call.request, Request::LookupPosting { .. });
                let first = if lookup { found } else { failed };
                first
                    .or(last)
                    .unwrap_or_else(|| plantloop_mocks::Reply::invalid("station", "no plant"))
            }
        }
    }

    /// The plant obeys MES the instant MES applies a command.
    pub(super) fn after_mes_call(&mut self, p: usize, request: &Request, now: Instant) {
        match request {
            Request::ControlStation(c) => {
                if let Some(s) = self.plant.station_index(&c.station) {
                    let stopped = self.mes[p].is_stopped(&c.station);
                    if stopped && !self.plant.stations[s].stopped {
                        // Whatever the station makes from now on is a new span: the checker sees
                        // exactly whether a unit was made while it was stopped.
                        self.plant.stations[s].close_span();
                    }
                    self.plant.stations[s].stopped = stopped;
                    let line = self.plant.stations[s].line;
                    if !stopped {
                        self.start_line_if_ready(line, now);
                    }
                }
            }
            Request::DispatchOrder(o) => {
                if let Some(l) = self.plant.line_index(&o.line)
                    && self.mes[p].is_dispatched(&o.id)
                {
                    if let Some(ro) = &mut self.plant.lines[l].order
                        && ro.order.id == o.id
                    {
                        ro.dispatched = true;
                    }
                    self.start_line_if_ready(l, now);
                }
            }
            _ => {}
        }
    }

    pub(super) fn crash_core(&mut self, now: Instant, downtime: Duration) {
        let Some(core) = self.core.take() else { return };
        let mut journal = core.into_journal();
        journal.crash();
        self.crashed_journal = Some(journal);
        self.counts.core_crashes += 1;
        if let Some((_, id)) = self.engine_timer.take() {
            self.kernel.cancel(id);
        }
        self.hash.update(b"crash");
        self.kernel.schedule_at(now + downtime, Ev::CoreRestart);
    }

    pub(super) fn restart_core(&mut self, now: Instant) {
        let Some(journal) = self.crashed_journal.take() else {
            return;
        };
        let (core, recovery) = DurableEngine::open(
            journal,
            self.engine_config.clone(),
            self.engine_seed,
            SNAPSHOT_EVERY,
        )
        .expect("the in-memory journal recovers");
        self.hash.update(&recovery.replayed.to_le_bytes());
        self.core = Some(core);
        self.release_outputs(now);
    }
}
