//! W1 containment and W3 release: the holds, interruptions, emergency work order and stop an NC
//! needs, the gates that send line controls and order statuses one at a time per station and per
//! order, and the release once the disposition and the repair are in.

use super::maintenance::unplaced_breakdown;
use super::*;

/// The `n`-th (0-based) of several keys of one step: the first keeps the plain form, so a
/// containment within one order looks as it always did.
pub(super) fn nth(base: String, n: usize) -> String {
    if n == 0 {
        base
    } else {
        format!("{base}/{}", n + 1)
    }
}

/// The placement of an NC's station and the holds its suspect serials need, once the registry
/// knows both.
pub(super) fn containable(
    reg: &Registry,
    nc: &Nonconformance,
) -> Option<(AssetPlacement, Vec<(ProductionOrder, SerialRange)>)> {
    let p = reg.placement(&nc.station)?;
    let ranges = reg.hold_ranges(&p.line, nc.serials);
    (!ranges.is_empty()).then(|| (p.clone(), ranges))
}

/// Lists `nc` among the unreleased NCs of `at` (a station or a production order).
pub(super) fn list_unreleased<K: Eq + std::hash::Hash + Clone>(
    index: &mut FxHashMap<K, Vec<NcId>>,
    at: &K,
    nc: &NcId,
) {
    index.entry(at.clone()).or_default().push(nc.clone());
}

/// Takes `nc` off the unreleased NCs of `at`. True when another NC is still listed there: the
/// station or order stays held for it.
pub(super) fn unlist_unreleased<K: Eq + std::hash::Hash>(
    index: &mut FxHashMap<K, Vec<NcId>>,
    at: &K,
    nc: &NcId,
) -> bool {
    let Some(ncs) = index.get_mut(at) else {
        return false;
    };
    ncs.retain(|other| other != nc);
    let others = !ncs.is_empty();
    if !others {
        index.remove(at);
    }
    others
}

impl Workflows {
    pub(super) fn try_contain(
        &mut self,
        id: &NcId,
        reg: &Registry,
        cfg: &Config,
        now: Instant,
        fx: &mut Effects,
    ) {
        let c = self.containments.get_mut(id).expect("containment exists");
        let Some((nc, origin, class)) = c.nc.clone() else {
            return;
        };
        if !c.holds.is_empty() {
            return;
        }
        let Some((placement, ranges)) = containable(reg, &nc) else {
            if c.waiting_slot.is_none() {
                let slot = self.next_slot;
                self.next_slot += 1;
                c.waiting_slot = Some(slot);
                self.waiting.insert(slot, id.clone());
                fx.enrichment_timers.push((now + cfg.enrichment_wait, slot));
            }
            return;
        };
        if let Some(slot) = c.waiting_slot.take() {
            self.waiting.remove(&slot);
        }
        let holds: Vec<Hold> = ranges
            .iter()
            .enumerate()
            .map(|(i, (order, serials))| {
                let prefix = if i == 0 {
                    "H-".to_owned()
                } else {
                    format!("H{}-", i + 1)
                };
                Hold {
                    id: HoldId::new(derived_id(&prefix, id.as_str()))
                        .expect("derived ids are valid"),
                    order: order.id.clone(),
                    material: order.material.clone(),
                    serials: *serials,
                    nc: id.clone(),
                }
            })
            .collect();
        let wo = WorkOrderId::new(derived_id("WO-", id.as_str())).expect("derived ids are valid");
        self.work_order_nc.insert(wo.clone(), id.clone());
        self.active_holds
            .insert(id.clone(), holds.iter().map(|h| h.serials).collect());
        c.holds = holds.clone();
        c.station = Some(nc.station.clone());
        list_unreleased(&mut self.unreleased, &nc.station, id);
        for h in &holds {
            list_unreleased(&mut self.unreleased_orders, &h.order, id);
        }
        let mut gated = Vec::with_capacity(holds.len() + 1);
        let causes = vec![origin.clone()];
        let own = |step| Owner::Containment {
            nc: id.clone(),
            step,
        };
        let n = holds.len() as u32;
        c.start(Step::Hold, n);
        c.start(Step::Interrupt, n);
        c.start(Step::WorkOrder, 1);
        c.start(Step::Stop, 1);
        for (i, hold) in holds.into_iter().enumerate() {
            let order = hold.order.clone();
            gated.push(NewCall::new(
                System::Erp,
                class,
                nth(key(format_args!("w1/{id}/hold")), i),
                Request::PostHold(hold),
                &origin,
                causes.clone(),
                own(Step::Hold),
            ));
            gated.push(NewCall::new(
                System::Erp,
                class,
                nth(key(format_args!("w1/{id}/order-status")), i),
                Request::SetOrderStatus {
                    order,
                    status: OrderStatus::QualityInterruption,
                    reason: format!("NC {id}"),
                },
                &origin,
                causes.clone(),
                own(Step::Interrupt),
            ));
        }
        fx.call(
            System::Cmms,
            class,
            key(format_args!("w1/{id}/work-order")),
            Request::CreateWorkOrder(MaintenanceWorkOrder {
                id: wo,
                asset: placement.asset.clone(),
                station: nc.station.clone(),
                kind: if cfg.has_defect(EngineDefect::WorkOrderAsBreakdown) {
                    WorkOrderKind::Breakdown
                } else {
                    WorkOrderKind::Emergency
                },
                severity: nc.severity,
                fault: format!(
                    "NC {id}: {} {} failures at {} (serials {})",
                    nc.failures, nc.characteristic, nc.station, nc.serials
                ),
                nc: Some(id.clone()),
            }),
            &origin,
            causes.clone(),
            own(Step::WorkOrder),
        );
        gated.push(NewCall::new(
            System::Mes,
            class,
            key(format_args!("w1/{id}/stop")),
            Request::ControlStation(LineControl {
                station: nc.station.clone(),
                action: LineAction::Stop,
                reason: format!("NC {id}"),
                nc: Some(id.clone()),
            }),
            &origin,
            causes,
            own(Step::Stop),
        ));
        for call in gated {
            self.control(cfg, fx, call);
        }
    }

    /// Every hold of `id` is released: the orders no other NC holds are set resumed.
    pub(super) fn resume_orders(&mut self, id: &NcId, cfg: &Config, fx: &mut Effects) {
        let Some(c) = self.containments.get_mut(id) else {
            return;
        };
        let (Some((_, nc_origin, _)), Some((_, d_origin, class)), Some(completion)) =
            (&c.nc, &c.disposition, &c.completion)
        else {
            return;
        };
        let causes = vec![nc_origin.clone(), completion.clone(), d_origin.clone()];
        // An order another NC still holds stays interrupted: the last release resumes it.
        let unreleased_orders = &mut self.unreleased_orders;
        let calls: Vec<NewCall> = (c.holds.iter().enumerate())
            .filter(|(_, hold)| {
                !unlist_unreleased(unreleased_orders, &hold.order, id)
                    || cfg.has_defect(EngineDefect::OrderResumedUnderOtherHold)
            })
            .map(|(i, hold)| {
                NewCall::new(
                    System::Erp,
                    *class,
                    nth(key(format_args!("w3/{id}/order-status")), i),
                    Request::SetOrderStatus {
                        order: hold.order.clone(),
                        status: OrderStatus::Resumed,
                        reason: format!("NC {id} dispositioned"),
                    },
                    d_origin,
                    causes.clone(),
                    Owner::Containment {
                        nc: id.clone(),
                        step: Step::ResumeOrder,
                    },
                )
            })
            .collect();
        if calls.is_empty() {
            c.steps[Step::ResumeOrder.index()] = StepState::Done;
        } else {
            c.start(Step::ResumeOrder, calls.len() as u32);
        }
        for call in calls {
            self.control(cfg, fx, call);
        }
    }

    /// Sends a line control or order-status change through its gate: at once when nothing is in
    /// motion for that station or order, else after the calls before it.
    pub(super) fn control(&mut self, cfg: &Config, fx: &mut Effects, call: NewCall) {
        let gate = if cfg.has_defect(EngineDefect::ControlsUnsequenced) {
            None
        } else {
            Gate::of(&call.request)
        };
        let Some(gate) = gate else {
            fx.calls.push(call);
            return;
        };
        let q = self.gates.entry(gate).or_default();
        if q.busy.is_some() {
            q.waiting.push_back(call);
        } else {
            q.busy = Some(call.key.clone());
            fx.calls.push(call);
        }
    }

    /// The call with `key` is over (done or refused for good): its gate lets the next one go.
    pub(super) fn control_over(
        &mut self,
        key: &IdempotencyKey,
        request: &Request,
        fx: &mut Effects,
    ) {
        let Some(gate) = Gate::of(request) else {
            return;
        };
        let Some(q) = self.gates.get_mut(&gate) else {
            return;
        };
        if q.busy.as_ref() != Some(key) {
            return;
        }
        match q.waiting.pop_front() {
            Some(next) => {
                q.busy = Some(next.key.clone());
                fx.calls.push(next);
            }
            None => {
                self.gates.remove(&gate);
            }
        }
    }

    /// Tries again the NCs waiting for enrichment (their expiry timers are already set).
    pub(super) fn retry_waiting(
        &mut self,
        reg: &Registry,
        cfg: &Config,
        now: Instant,
        fx: &mut Effects,
    ) {
        if !self.breakdowns_waiting.is_empty() {
            let ready: Vec<u64> = (self.breakdowns_waiting.iter())
                .filter(|(_, b)| reg.placement(&b.station).is_some())
                .map(|(slot, _)| *slot)
                .collect();
            for slot in ready {
                let b = self.breakdowns_waiting.remove(&slot).expect("listed");
                self.breakdown(&b.station, &b.code, b.down, reg, cfg, now, b.origin, fx);
            }
        }
        if self.waiting.is_empty() {
            return;
        }
        let ids: Vec<NcId> = self.waiting.values().cloned().collect();
        for id in ids {
            self.try_contain(&id, reg, cfg, now, fx);
        }
    }

    /// Whether an unprocessable event's step could now be applied: the master data it waited
    /// for has arrived.
    pub(in crate::engine) fn retry_ready(&self, retry: &Retry, reg: &Registry) -> bool {
        match retry {
            Retry::Contain(nc) => (self.containments.get(nc))
                .and_then(|c| c.nc.as_ref())
                .is_some_and(|(nc, _, _)| containable(reg, nc).is_some()),
            Retry::Breakdown { station, .. } => reg.placement(station).is_some(),
            Retry::Confirm(_) => false,
        }
    }

    pub(in crate::engine) fn enrichment_expired(&mut self, slot: u64, fx: &mut Effects) {
        if let Some(b) = self.breakdowns_waiting.remove(&slot) {
            fx.unprocessable.push(unplaced_breakdown(b));
            return;
        }
        let Some(id) = self.waiting.remove(&slot) else {
            return;
        };
        let Some(c) = self.containments.get_mut(&id) else {
            return;
        };
        c.waiting_slot = None;
        if let Some((nc, origin, class)) = &c.nc {
            fx.unprocessable.push(Unprocessable {
                origin: origin.clone(),
                causation: vec![origin.clone()],
                class: *class,
                detail: format!(
                    "NC {id}: station {} has no known asset placement or production order",
                    nc.station
                ),
                retry: Retry::Contain(id.clone()),
            });
        }
    }

    pub(super) fn try_release(&mut self, id: &NcId, cfg: &Config, fx: &mut Effects) {
        let Some(c) = self.containments.get_mut(id) else {
            return;
        };
        if cfg.has_defect(EngineDefect::ReleaseWithoutDisposition)
            && let Some((nc, origin, class)) = &c.nc
        {
            // The defect: make up an approval and a completion that never came.
            c.disposition.get_or_insert_with(|| {
                let d = Disposition {
                    nc: nc.id.clone(),
                    decision: DispositionDecision::Release,
                    approved_by: "nobody".into(),
                };
                (d, origin.clone(), *class)
            });
            c.completion.get_or_insert_with(|| origin.clone());
        }
        let ready = c.nc.is_some()
            && c.disposition.is_some()
            && c.completion.is_some()
            && [Step::Hold, Step::Interrupt, Step::WorkOrder, Step::Stop]
                .iter()
                .all(|s| c.done(*s))
            && c.steps[Step::Release.index()] == StepState::Idle;
        if !ready {
            return;
        }
        let n = c.holds.len() as u32;
        let (Some((_, nc_origin, _)), Some((d, d_origin, class)), Some(station), Some(completion)) =
            (&c.nc, &c.disposition, &c.station, &c.completion)
        else {
            return;
        };
        let (decision, d_origin, class, station) =
            (d.decision, d_origin.clone(), *class, station.clone());
        let causes = vec![nc_origin.clone(), completion.clone(), d_origin.clone()];
        c.start(Step::Release, n);
        // A station stop is shared by every containment at that station: only the last one to be
        // released resumes it, or an earlier release would restart a station whose other NC is
        // still open.
        let station_still_contained = unlist_unreleased(&mut self.unreleased, &station, id)
            && !cfg.has_defect(EngineDefect::ResumeWhileContained);
        if station_still_contained {
            c.steps[Step::ResumeStation.index()] = StepState::Done;
        } else {
            c.start(Step::ResumeStation, 1);
        }
        let own = |step| Owner::Containment {
            nc: id.clone(),
            step,
        };
        let mut gated = Vec::with_capacity(c.holds.len() + 1);
        for (i, hold) in c.holds.iter().enumerate() {
            fx.call(
                System::Erp,
                class,
                nth(key(format_args!("w3/{id}/release")), i),
                Request::ReleaseHold {
                    hold: hold.id.clone(),
                    decision,
                },
                &d_origin,
                causes.clone(),
                own(Step::Release),
            );
        }
        if !station_still_contained {
            gated.push(NewCall::new(
                System::Mes,
                class,
                key(format_args!("w3/{id}/resume")),
                Request::ControlStation(LineControl {
                    station,
                    action: LineAction::Resume,
                    reason: format!("NC {id} dispositioned"),
                    nc: Some(id.clone()),
                }),
                &d_origin,
                causes,
                own(Step::ResumeStation),
            ));
        }
        for call in gated {
            self.control(cfg, fx, call);
        }
    }
}
