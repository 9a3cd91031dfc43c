//! W2 maintenance completion (QMS record, goods issues, parts and labour cost) and W4 breakdowns
//! (one work order per breakdown, waiting for the station's placement when it is unknown).

use super::*;

/// The dead letter of a breakdown whose station's placement never came.
pub(super) fn unplaced_breakdown(b: WaitingBreakdown) -> Unprocessable {
    Unprocessable {
        origin: b.origin.clone(),
        causation: vec![b.origin],
        class: LatencyClass::Critical,
        detail: format!("station {} has no known asset placement", b.station),
        retry: Retry::Breakdown {
            station: b.station,
            code: b.code,
            down: b.down,
        },
    }
}

impl Workflows {
    pub(super) fn complete_work_order(
        &mut self,
        w: WorkOrderCompletion,
        origin: EventRef,
        class: LatencyClass,
        now: Instant,
        cfg: &Config,
        fx: &mut Effects,
    ) {
        if !self.remember_completion(&w.work_order, now) {
            return;
        }
        if (self.breakdowns_open.get(&w.station)).is_some_and(|b| b.work_order == w.work_order) {
            self.breakdowns_open.remove(&w.station);
        }
        let nc =
            w.nc.clone()
                .or_else(|| self.work_order_nc.get(&w.work_order).cloned());
        let wo = &w.work_order;
        let causes = vec![origin.clone()];
        if let Some(nc) = &nc {
            fx.call(
                System::Qms,
                class,
                key(format_args!("w2/{wo}/maintenance")),
                Request::RecordMaintenance {
                    nc: nc.clone(),
                    work_order: wo.clone(),
                    root_cause: w.root_cause.clone(),
                },
                &origin,
                causes.clone(),
                Owner::None,
            );
        }
        for (i, p) in w.parts.iter().enumerate() {
            let Ok(material) = MaterialId::new(p.part.as_str()) else {
                continue;
            };
            fx.call(
                System::Erp,
                class,
                key(format_args!("w2/{wo}/goods-issue/{i}")),
                Request::PostGoodsMovement(GoodsMovement {
                    kind: MovementKind::GoodsIssue,
                    material,
                    quantity: p.quantity,
                    order: None,
                    work_order: Some(wo.clone()),
                    serials: None,
                }),
                &origin,
                causes.clone(),
                Owner::None,
            );
        }
        for (kind, amount) in [
            (CostKind::Parts, w.parts_cost()),
            (CostKind::Labour, w.labour_cost()),
        ] {
            if amount == crate::Money::ZERO
                || (kind == CostKind::Parts && cfg.has_defect(EngineDefect::PartsCostDropped))
            {
                continue;
            }
            let name = match kind {
                CostKind::Parts => "parts",
                CostKind::Labour => "labour",
            };
            fx.call(
                System::Erp,
                class,
                key(format_args!("w2/{wo}/cost/{name}")),
                Request::PostCost(CostPosting {
                    work_order: wo.clone(),
                    kind,
                    amount,
                }),
                &origin,
                causes.clone(),
                Owner::None,
            );
        }
        if let Some(nc) = nc {
            let c = self.containments.entry(nc.clone()).or_default();
            c.completion = Some(origin);
            self.try_release(&nc, cfg, fx);
            self.retire_if_closed(&nc, now);
        }
    }

    /// W4 for a down state (`down`) or a fault alarm at `station`. MES reports a machine down
    /// only when it goes down, so a second down state is a new breakdown even while the first's
    /// work order is open (its machine-up may still be on its way); alarms, and the down state of a
    /// breakdown an alarm opened, fold into the open one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn breakdown(
        &mut self,
        station: &StationId,
        code: &str,
        down: bool,
        reg: &Registry,
        cfg: &Config,
        now: Instant,
        origin: EventRef,
        fx: &mut Effects,
    ) {
        let folded = cfg.has_defect(EngineDefect::BreakdownFoldedIntoCompleted);
        if let Some(open) = self.breakdowns_open.get_mut(station)
            && (!down || !open.down_seen || folded)
        {
            open.down_seen |= down;
            return;
        }
        let Some(p) = reg.placement(station) else {
            let b = WaitingBreakdown {
                station: station.clone(),
                code: code.to_owned(),
                down,
                origin,
            };
            if cfg.has_defect(EngineDefect::BreakdownBeforePlacementLost) {
                fx.unprocessable.push(unplaced_breakdown(b));
            } else if down || !(self.breakdowns_waiting.values()).any(|w| w.station == *station) {
                // Wait for the placement like an NC does (alarms fold into a breakdown already
                // waiting); after `enrichment_wait` it goes to the dead-letter queue, replayed
                // once the placement arrives.
                let slot = self.next_slot;
                self.next_slot += 1;
                self.breakdowns_waiting.insert(slot, b);
                fx.enrichment_timers.push((now + cfg.enrichment_wait, slot));
            }
            return;
        };
        self.breakdown_seq += 1;
        let n = self.breakdown_seq;
        let Ok(wo) = WorkOrderId::new(format!("WO-BD-{n}")) else {
            return;
        };
        self.breakdowns_open.insert(
            station.clone(),
            OpenBreakdown {
                work_order: wo.clone(),
                down_seen: down,
            },
        );
        fx.call(
            System::Cmms,
            LatencyClass::Critical,
            key(format_args!("w4/{station}/{n}")),
            Request::CreateWorkOrder(MaintenanceWorkOrder {
                id: wo,
                asset: p.asset.clone(),
                station: station.clone(),
                kind: WorkOrderKind::Breakdown,
                severity: Severity::Major,
                fault: code.chars().take(200).collect(),
                nc: None,
            }),
            &origin,
            vec![origin.clone()],
            Owner::None,
        );
    }
}
