//! The invariants of what the loop must achieve in the plant and the books: repairs happen,
//! inventory is accurate, order status follows the holds, nothing waits for ever.

use super::*;

/// One hold document in ERP's ledger: posted at `from`, released at `until` if it was.
pub(super) struct HoldWindow<'a> {
    hold: &'a Hold,
    from: Instant,
    until: Option<Instant>,
}

impl HoldWindow<'_> {
    fn in_force_at(&self, at: Instant) -> bool {
        self.from <= at && self.until.is_none_or(|u| u > at)
    }
}

/// Every hold in ERP's ledger (any origin; the first posting and first release of each hold id),
/// by production order.
pub(super) fn hold_windows<'a>(w: &GroundTruth<'a>) -> FxHashMap<&'a OrderId, Vec<HoldWindow<'a>>> {
    let mut by_order: FxHashMap<&OrderId, Vec<HoldWindow<'_>>> = FxHashMap::default();
    let mut index: FxHashMap<&HoldId, (&OrderId, usize)> = FxHashMap::default();
    for e in w.erp.ledger().entries() {
        match &e.posting {
            Posting::HoldPosted(h) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(&h.id) {
                    let list = by_order.entry(&h.order).or_default();
                    slot.insert((&h.order, list.len()));
                    list.push(HoldWindow {
                        hold: h,
                        from: e.at,
                        until: None,
                    });
                }
            }
            Posting::HoldReleased { hold, .. } => {
                if let Some(&(order, i)) = index.get(hold) {
                    let window = &mut by_order.get_mut(order).expect("indexed")[i];
                    window.until.get_or_insert(e.at);
                }
            }
            _ => {}
        }
    }
    by_order
}

/// Per NC, whether the core released its hold: NCs at a station whose hold was never released
/// (or never posted) are open and may keep the station stopped.
pub(super) fn open_ncs_by_station<'a>(
    w: &GroundTruth<'a>,
) -> FxHashMap<&'a StationId, Vec<&'a NcId>> {
    let released: FxHashSet<&NcId> = integration(w.erp.ledger())
        .filter_map(|e| match &e.posting {
            Posting::HoldReleased { nc, .. } => Some(nc),
            _ => None,
        })
        .collect();
    let mut open: FxHashMap<&StationId, Vec<&NcId>> = FxHashMap::default();
    for e in w.qms.ledger().entries() {
        if let Posting::NcCreated(nc) = &e.posting
            && nc.asset_related
            && !released.contains(&nc.id)
        {
            open.entry(&nc.station).or_default().push(&nc.id);
        }
    }
    open
}

/// `repairs`: the plant gets repaired. Every breakdown the plant had is answered by exactly one
/// breakdown work order in CMMS; at the end no station is down without a technician sent after
/// it broke, and none is left stopped unless an NC there is still open.
pub(super) fn repairs(w: &GroundTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::Repairs);
    let mut breakdown_wos: FxHashMap<&StationId, Vec<(&WorkOrderId, Instant)>> =
        FxHashMap::default();
    for e in integration(w.cmms.ledger()) {
        if let Posting::WorkOrderCreated(wo) = &e.posting
            && wo.kind == WorkOrderKind::Breakdown
            && wo.nc.is_none()
        {
            breakdown_wos
                .entry(&wo.station)
                .or_default()
                .push((&wo.id, e.at));
        }
    }
    let open = open_ncs_by_station(w);
    for st in &w.plant.stations {
        let wos = breakdown_wos.get(&st.id).map_or(&[][..], Vec::as_slice);
        if !st.breakdown_log.is_empty() || !wos.is_empty() {
            v.check();
            if wos.len() != st.breakdown_log.len() {
                v.violate(json!({
                    "station": st.id.as_str(),
                    "breakdowns": st.breakdown_log.len(),
                    "breakdowns_at_s": st.breakdown_log.iter().map(|(d, _)| secs(*d)).collect::<Vec<_>>(),
                    "breakdown_work_orders": wos.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
                    "work_orders_at_s": wos.iter().map(|(_, at)| secs(*at)).collect::<Vec<_>>(),
                    "problem": "each breakdown needs exactly one breakdown work order",
                }));
            }
        }
        if st.down {
            v.check();
            let down_at = st.breakdown_log.last().map_or(Instant::ZERO, |(d, _)| *d);
            if !st.technicians_sent.iter().any(|t| *t >= down_at) {
                v.violate(json!({
                    "station": st.id.as_str(),
                    "down_since_s": secs(down_at),
                    "problem": "down at the end of the drain and no technician was sent",
                }));
            }
        }
        if st.stopped {
            v.check();
            if !open.contains_key(&st.id) {
                v.violate(json!({
                    "station": st.id.as_str(),
                    "problem": "stopped at the end of the drain while no open NC keeps it stopped",
                }));
            }
        }
    }
    v
}

/// The serials of `a` not in `b`, both sorted by first serial; `b` may overlap itself.
pub(super) fn serials_missing(a: &[SerialRange], b: &[SerialRange]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for r in a {
        let mut next = r.first();
        while j < b.len() && b[j].last() < next {
            j += 1;
        }
        let mut k = j;
        while next <= r.last() {
            match b.get(k) {
                Some(c) if c.first() <= r.last() => {
                    if c.first() > next {
                        out.push((next, c.first() - 1));
                    }
                    next = next.max(c.last().saturating_add(1));
                    if c.last() == u64::MAX {
                        break;
                    }
                    k += 1;
                }
                _ => {
                    out.push((next, r.last()));
                    break;
                }
            }
        }
    }
    out
}

/// `inventory-accuracy`: every unit the plant produced is confirmed to ERP exactly once (held
/// units after their release, units of a scrapped hold as scrap), ERP has no confirmation of a
/// unit the plant did not make, and no goods movement posted on inventory under an active hold.
pub(super) fn inventory_accuracy(w: &GroundTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::InventoryAccuracy);
    // Holds over time, and how each NC was dispositioned.
    let decision: FxHashMap<&NcId, DispositionDecision> = (w.qms.ledger().entries().iter())
        .filter_map(|e| match &e.posting {
            Posting::DispositionApproved(d) => Some((&d.nc, d.decision)),
            _ => None,
        })
        .collect();
    let holds = hold_windows(w);
    let no_holds = Vec::new();
    let holds_of = |order: &OrderId| holds.get(order).unwrap_or(&no_holds);
    // When MES reported each batch: units reported before a scrapped hold's release existed while
    // it was held, and are the ones the disposition scrapped.
    let reported_at: FxHashMap<(&OrderId, u64), Instant> = (w.confirmations_emitted.iter())
        .filter_map(|(r, c)| Some(((&c.order, c.serials.first()), w.emitted.get(r)?.at)))
        .collect();
    let mut confirmed: FxHashMap<&OrderId, Vec<SerialRange>> = FxHashMap::default();
    for e in integration(w.erp.ledger()) {
        let (order, serials) = match &e.posting {
            Posting::ProductionConfirmed(c) => {
                confirmed.entry(&c.order).or_default().push(c.serials);
                // Units of a scrapped hold, confirmed after that hold, are scrap.
                let reported = reported_at.get(&(&c.order, c.serials.first())).copied();
                for hw in holds_of(&c.order) {
                    let h = hw.hold;
                    let overlap = overlap_len(&h.serials, &c.serials);
                    let existed_while_held =
                        reported.is_some_and(|r| hw.until.is_none_or(|u| r < u));
                    if overlap > 0
                        && hw.from <= e.at
                        && existed_while_held
                        && decision.get(&h.nc) == Some(&DispositionDecision::Scrap)
                        && u64::from(c.good) > c.serials.len() - overlap
                    {
                        v.violate(json!({
                            "order": c.order.as_str(),
                            "serials": c.serials.to_string(),
                            "good": c.good,
                            "scrap": c.scrap,
                            "hold": h.id.as_str(),
                            "nc": h.nc.as_str(),
                            "at_s": secs(e.at),
                            "problem": "units of a scrapped hold confirmed as good",
                        }));
                    }
                }
                (&c.order, c.serials)
            }
            Posting::GoodsMoved(g) => match (&g.order, g.serials) {
                (Some(o), Some(s)) => (o, s),
                _ => continue,
            },
            _ => continue,
        };
        v.check();
        let in_force = holds_of(order)
            .iter()
            .find(|hw| hw.in_force_at(e.at) && hw.hold.serials.overlaps(&serials));
        if let Some(hw) = in_force {
            v.violate(json!({
                "order": order.as_str(),
                "serials": serials.to_string(),
                "hold": hw.hold.id.as_str(),
                "at_s": secs(e.at),
                "problem": "goods movement posted on held inventory",
            }));
        }
    }
    // Produced against confirmed, per order.
    let mut produced: FxHashMap<&OrderId, Vec<SerialRange>> = FxHashMap::default();
    for l in &w.plant.lines {
        for (o, r) in &l.produced {
            produced.entry(o).or_default().push(*r);
        }
    }
    let mut orders: Vec<&OrderId> = produced.keys().chain(confirmed.keys()).copied().collect();
    orders.sort();
    orders.dedup();
    let empty = Vec::new();
    for order in orders {
        v.check();
        let mut made = produced.get(order).unwrap_or(&empty).clone();
        made.sort_by_key(|r| r.first());
        let mut got = confirmed.get(order).unwrap_or(&empty).clone();
        got.sort_by_key(|r| r.first());
        let twice: Vec<String> = got
            .windows(2)
            .filter(|p| p[1].first() <= p[0].last())
            .map(|p| format!("{} and {}", p[0], p[1]))
            .collect();
        let missing = serials_missing(&made, &got);
        let extra = serials_missing(&got, &made);
        if !twice.is_empty() || !missing.is_empty() || !extra.is_empty() {
            let show = |v: &[(u64, u64)]| {
                v.iter()
                    .take(5)
                    .map(|(a, b)| format!("{a}..={b}"))
                    .collect::<Vec<_>>()
            };
            v.violate(json!({
                "order": order.as_str(),
                "produced": made.iter().map(|r| r.len()).sum::<u64>(),
                "not_confirmed": show(&missing),
                "not_confirmed_units": missing.iter().map(|(a, b)| b - a + 1).sum::<u64>(),
                "confirmed_not_produced": show(&extra),
                "confirmed_twice": twice.into_iter().take(5).collect::<Vec<_>>(),
            }));
        }
    }
    v
}

pub(super) fn overlap_len(a: &SerialRange, b: &SerialRange) -> u64 {
    let (lo, hi) = (a.first().max(b.first()), a.last().min(b.last()));
    if lo > hi { 0 } else { hi - lo + 1 }
}

/// `order-status`: no order is set resumed or in progress while a hold covers it, and every
/// order interrupted for quality ends resumed or completed unless a hold on it is still active.
pub(super) fn order_status(w: &GroundTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::OrderStatus);
    let holds = hold_windows(w);
    let mut interrupted: Vec<&OrderId> = Vec::new();
    for e in integration(w.erp.ledger()) {
        let Posting::OrderStatusSet { order, to, .. } = &e.posting else {
            continue;
        };
        match to {
            OrderStatus::QualityInterruption => interrupted.push(order),
            OrderStatus::Resumed | OrderStatus::InProgress => {
                v.check();
                let in_force = holds
                    .get(order)
                    .and_then(|l| l.iter().find(|hw| hw.in_force_at(e.at)));
                if let Some(hw) = in_force {
                    v.violate(json!({
                        "order": order.as_str(),
                        "status": format!("{to:?}"),
                        "at_s": secs(e.at),
                        "hold": hw.hold.id.as_str(),
                        "hold_at_s": secs(hw.from),
                        "problem": "order set going while a hold covers it",
                    }));
                }
            }
            _ => {}
        }
    }
    interrupted.sort();
    interrupted.dedup();
    for order in interrupted {
        v.check();
        let still_held = holds
            .get(order)
            .is_some_and(|l| l.iter().any(|hw| hw.until.is_none()));
        let status = w.erp.order(order).map(|r| r.status);
        if !still_held && status == Some(OrderStatus::QualityInterruption) {
            v.violate(json!({
                "order": order.as_str(),
                "status": "QualityInterruption",
                "problem": "interrupted for quality and never resumed, though no hold covers it any more",
            }));
        }
    }
    v
}

/// `no-stranded-events`: nothing waits forever. After the drain no dead letter remains that a
/// replay would now apply: no event set aside for want of an asset placement that CMMS has since
/// published, and no confirmation set aside behind a hold that has since been released.
pub(super) fn no_stranded_events(w: &GroundTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::NoStrandedEvents);
    let Some(dead_letters) = &w.dead_letters else {
        return v; // no-lost-events reports a core that is down at the end
    };
    // Stations whose asset placement CMMS published, and when first.
    let mut placed_at: FxHashMap<&StationId, Instant> = FxHashMap::default();
    for e in w.cmms.ledger().entries() {
        if let Posting::MasterDataPublished {
            kind: MasterDataKind::Asset,
            key,
            ..
        } = &e.posting
            && let Some(st) = w
                .plant
                .stations
                .iter()
                .find(|s| s.asset.as_str() == key.as_str())
        {
            placed_at.entry(&st.id).or_insert(e.at);
        }
    }
    let holds = hold_windows(w);
    let confirmations: FxHashMap<String, &ProductionConfirmation> =
        (w.confirmations_emitted.iter())
            .map(|(r, c)| (r.to_string(), c))
            .collect();
    for d in dead_letters {
        let origin = d.origin.to_string();
        if let Some(c) = confirmations.get(&origin) {
            v.check();
            let held = holds.get(&c.order).is_some_and(|l| {
                l.iter()
                    .any(|hw| hw.until.is_none() && hw.hold.serials.overlaps(&c.serials))
            });
            if !held && w.erp.order(&c.order).is_some() {
                v.violate(json!({
                    "dead_letter": d.id,
                    "event": origin,
                    "confirmation": format!("{} {} {}", c.order, c.station, c.serials),
                    "reason": d.reason.describe(),
                    "problem": "no hold covers these serials any more; a replay would confirm them",
                }));
            }
            continue;
        }
        let Some(station) = w.emitted.get(&d.origin).and_then(|e| e.station.as_ref()) else {
            continue;
        };
        if !matches!(
            d.reason,
            plantloop_core::engine::DeadLetterReason::Unprocessable { .. }
        ) {
            continue;
        }
        v.check();
        if let Some(at) = placed_at.get(station) {
            v.violate(json!({
                "dead_letter": d.id,
                "event": origin,
                "station": station.as_str(),
                "placement_published_at_s": secs(*at),
                "reason": d.reason.describe(),
                "problem": "set aside for want of master data that has since arrived",
            }));
        }
    }
    v
}
