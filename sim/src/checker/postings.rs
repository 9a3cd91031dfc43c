//! The invariants of the postings themselves: none twice, holds before releases, containment,
//! no production while stopped, costs to the cent, nothing lost, causal order, the audit chain and
//! master data that never goes back.

use super::*;

pub(super) fn no_duplicate_postings(w: &LedgerTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::NoDuplicatePostings);
    for (name, l) in ledgers(w) {
        let mut seen: FxHashMap<String, Vec<Instant>> = FxHashMap::default();
        for e in integration(l) {
            if let Some(id) = identity(&e.posting) {
                v.check();
                seen.entry(id).or_default().push(e.at);
            }
        }
        let mut dups: Vec<_> = seen.into_iter().filter(|(_, t)| t.len() > 1).collect();
        dups.sort_by_key(|(_, t)| t[0]);
        for (id, times) in dups {
            v.violate(json!({
                "system": name,
                "posting": id,
                "count": times.len(),
                "at_s": times.iter().map(|t| secs(*t)).collect::<Vec<_>>(),
            }));
        }
    }
    v
}

/// NC id → when each related fact landed, from the ledgers.
pub(super) struct NcFacts {
    disposition_at: FxHashMap<NcId, Instant>,
    /// Work orders per NC with creation and completion times.
    work_orders: FxHashMap<NcId, Vec<(WorkOrderId, Instant, Option<Instant>)>>,
}

pub(super) fn nc_facts(w: &LedgerTruth) -> NcFacts {
    let mut disposition_at = FxHashMap::default();
    for e in w.qms.entries() {
        if let Posting::DispositionApproved(d) = &e.posting {
            disposition_at.entry(d.nc.clone()).or_insert(e.at);
        }
    }
    let mut work_orders: FxHashMap<NcId, Vec<(WorkOrderId, Instant, Option<Instant>)>> =
        FxHashMap::default();
    let mut completed: FxHashMap<WorkOrderId, Instant> = FxHashMap::default();
    for e in w.cmms.entries() {
        if let Posting::WorkOrderCompleted(c) = &e.posting {
            completed.entry(c.work_order.clone()).or_insert(e.at);
        }
    }
    for e in w.cmms.entries() {
        if let Posting::WorkOrderCreated(wo) = &e.posting
            && let Some(nc) = &wo.nc
        {
            work_orders.entry(nc.clone()).or_default().push((
                wo.id.clone(),
                e.at,
                completed.get(&wo.id).copied(),
            ));
        }
    }
    NcFacts {
        disposition_at,
        work_orders,
    }
}

impl NcFacts {
    /// The work orders of `nc` created by `at` and not completed by then.
    fn open_work_orders(&self, nc: &NcId, at: Instant) -> Vec<String> {
        self.work_orders
            .get(nc)
            .map(|wos| {
                wos.iter()
                    .filter(|(_, created, done)| *created <= at && done.is_none_or(|d| d > at))
                    .map(|(id, _, _)| id.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub(super) fn hold_before_release(w: &LedgerTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::HoldBeforeRelease);
    let facts = nc_facts(w);
    let mut held: FxHashMap<HoldId, Instant> = FxHashMap::default();
    // When the core posted each NC's first hold.
    let mut held_at: FxHashMap<&NcId, Instant> = FxHashMap::default();
    for e in w.erp.entries() {
        match &e.posting {
            Posting::HoldPosted(h) => {
                held.entry(h.id.clone()).or_insert(e.at);
                if e.origin == Origin::Integration {
                    held_at.entry(&h.nc).or_insert(e.at);
                }
            }
            Posting::HoldReleased { hold, nc, .. } => {
                v.check();
                let hold_at = held.get(hold).copied();
                let disp_at = facts.disposition_at.get(nc).copied();
                let open = facts.open_work_orders(nc, e.at);
                let ok = hold_at.is_some_and(|h| h <= e.at)
                    && disp_at.is_some_and(|d| d <= e.at)
                    && open.is_empty();
                if !ok {
                    v.violate(json!({
                        "hold": hold.as_str(),
                        "nc": nc.as_str(),
                        "release_at_s": secs(e.at),
                        "hold_at_s": hold_at.map(secs),
                        "disposition_at_s": disp_at.map(secs),
                        "open_work_orders": open,
                    }));
                }
            }
            _ => {}
        }
    }
    // A station goes back to production like inventory does: not while an NC that the core
    // contained there (its first hold posted) awaits its disposition or the completion of its
    // work orders, even when another NC's release would resume it. A resume that the core sent
    // before it knew of this NC can still land after its hold: it is excused when this NC's own
    // stop (a line control that names the NC) lands after it, as the core can do no more.
    let stops = stop_intervals(w);
    let mut stops_for: FxHashMap<(&StationId, &str), Vec<Instant>> = FxHashMap::default();
    for (_, m) in &w.mes {
        for e in integration(m) {
            if let Posting::StationStopped {
                station,
                nc: Some(nc),
                ..
            } = &e.posting
            {
                stops_for
                    .entry((station, nc.as_str()))
                    .or_default()
                    .push(e.at);
            }
        }
    }
    for e in w.qms.entries() {
        let Posting::NcCreated(nc) = &e.posting else {
            continue;
        };
        let Some(&held) = held_at.get(&nc.id) else {
            continue;
        };
        v.check();
        let disp_at = facts.disposition_at.get(&nc.id).copied();
        // Not repaired until CMMS has its work orders, all complete.
        let repaired_at = facts.work_orders.get(&nc.id).and_then(|wos| {
            wos.iter().try_fold(Instant::ZERO, |last, (_, _, done)| {
                done.map(|d| last.max(d))
            })
        });
        let ready_at = disp_at
            .zip(repaired_at)
            .map_or(Instant::MAX, |(d, r)| d.max(r));
        let intervals = stops.get(&nc.station).map_or(&[][..], Vec::as_slice);
        let resumed = intervals
            .iter()
            .map(|&(_, to)| to)
            .filter(|&to| to > held && to < ready_at)
            .max();
        let own_stops = stops_for
            .get(&(&nc.station, nc.id.as_str()))
            .map_or(&[][..], Vec::as_slice);
        let stopped_again = |after: Instant| own_stops.iter().any(|&at| at > after);
        if let Some(resume_at) = resumed.filter(|&r| !stopped_again(r)) {
            let open = facts.open_work_orders(&nc.id, resume_at);
            v.violate(json!({
                "station": nc.station.as_str(),
                "nc": nc.id.as_str(),
                "resume_at_s": secs(resume_at),
                "hold_at_s": secs(held),
                "disposition_at_s": disp_at.map(secs),
                "open_work_orders": open,
            }));
        }
    }
    v
}

pub(super) fn containment(w: &LedgerTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::Containment);
    let ncs: Vec<(&Nonconformance, Instant)> = w
        .qms
        .entries()
        .iter()
        .filter_map(|e| match &e.posting {
            Posting::NcCreated(nc) if nc.asset_related => Some((nc, e.at)),
            _ => None,
        })
        .collect();
    let holds: Vec<&Hold> = integration(w.erp)
        .filter_map(|e| match &e.posting {
            Posting::HoldPosted(h) => Some(h),
            _ => None,
        })
        .collect();
    let wos: Vec<&MaintenanceWorkOrder> = integration(w.cmms)
        .filter_map(|e| match &e.posting {
            Posting::WorkOrderCreated(wo) => Some(&**wo),
            _ => None,
        })
        .collect();
    let stops = stop_intervals(w);
    let mut releases_of: FxHashMap<&NcId, Instant> = FxHashMap::default();
    for e in integration(w.erp) {
        if let Posting::HoldReleased { nc, .. } = &e.posting {
            releases_of.entry(nc).or_insert(e.at);
        }
    }
    for (nc, at) in &ncs {
        v.check();
        // One hold per production order (ERP holds per order), together covering the serials.
        let mut mine: Vec<&Hold> = holds.iter().filter(|h| h.nc == nc.id).copied().collect();
        mine.sort_by_key(|h| h.serials.first());
        let n_holds = mine.len();
        let mut orders: Vec<&OrderId> = mine.iter().map(|h| &h.order).collect();
        orders.sort();
        orders.dedup();
        let one_per_order = orders.len() == n_holds;
        let covered = covers_all(&mine, &nc.serials);
        let asset = w.assets.get(&nc.station).cloned();
        let n_wos = wos
            .iter()
            .filter(|wo| {
                wo.nc.as_ref() == Some(&nc.id)
                    && wo.kind == WorkOrderKind::Emergency
                    && Some(&wo.asset) == asset.as_ref()
            })
            .count();
        // MES had the station stopped at some time while the NC was open (from its creation to
        // the first release of its holds): a stop already in force for another NC at the same
        // station counts, as it physically keeps the station stopped.
        let released_at = releases_of.get(&nc.id).copied().unwrap_or(Instant::MAX);
        let stopped = stops
            .get(&nc.station)
            .is_some_and(|iv| iv.iter().any(|&(from, to)| from <= released_at && to > *at));
        let stops = usize::from(stopped);
        if n_holds == 0 || !one_per_order || !covered || n_wos != 1 || stops != 1 {
            v.violate(json!({
                "nc": nc.id.as_str(),
                "station": nc.station.as_str(),
                "nc_at_s": secs(*at),
                "serials": nc.serials.to_string(),
                "holds": n_holds,
                "hold_orders": orders.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
                "holds_cover_serials": covered,
                "emergency_work_orders": n_wos,
                "station_stopped_while_open": stops == 1,
            }));
        }
    }
    v
}

/// Whether `holds`, sorted by first serial, together cover every serial of `want`.
pub(super) fn covers_all(holds: &[&Hold], want: &SerialRange) -> bool {
    let mut next = want.first();
    for h in holds {
        if h.serials.first() > next {
            break;
        }
        if h.serials.last() >= next {
            if h.serials.last() >= want.last() {
                return true;
            }
            next = h.serials.last() + 1;
        }
    }
    false
}

pub(super) fn no_production_while_stopped(w: &GroundTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::NoProductionWhileStopped);
    let stops = stop_intervals(&w.ledger_truth());
    for st in &w.plant.stations {
        let Some(intervals) = stops.get(&st.id) else {
            continue;
        };
        for &(from, to) in intervals {
            v.check();
            for sp in st.all_spans() {
                if sp.last_at > from && sp.first_at < to {
                    v.violate(json!({
                        "station": st.id.as_str(),
                        "stopped_at_s": secs(from),
                        "resumed_at_s": if to == Instant::MAX { None } else { Some(secs(to)) },
                        "produced_from_s": secs(sp.first_at),
                        "produced_until_s": secs(sp.last_at),
                        "units_in_span": sp.units,
                    }));
                    break;
                }
            }
        }
    }
    v
}

pub(super) fn cost_capture(w: &LedgerTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::CostCapture);
    let mut erp_cost: FxHashMap<(WorkOrderId, CostKind), Money> = FxHashMap::default();
    let mut erp_parts: FxHashMap<(WorkOrderId, String), u64> = FxHashMap::default();
    for e in integration(w.erp) {
        match &e.posting {
            Posting::CostPosted(c) => {
                let m = erp_cost.entry((c.work_order.clone(), c.kind)).or_default();
                *m = *m + c.amount;
            }
            Posting::GoodsMoved(g) if g.kind == MovementKind::GoodsIssue => {
                if let Some(wo) = &g.work_order {
                    *erp_parts
                        .entry((wo.clone(), g.material.to_string()))
                        .or_default() += u64::from(g.quantity);
                }
            }
            _ => {}
        }
    }
    for e in w.cmms.entries() {
        let Posting::WorkOrderCompleted(c) = &e.posting else {
            continue;
        };
        v.check();
        let want_parts = c.parts_cost();
        let want_labour = c.labour_cost();
        let got_parts = erp_cost
            .get(&(c.work_order.clone(), CostKind::Parts))
            .copied()
            .unwrap_or_default();
        let got_labour = erp_cost
            .get(&(c.work_order.clone(), CostKind::Labour))
            .copied()
            .unwrap_or_default();
        let mut want_qty: FxHashMap<String, u64> = FxHashMap::default();
        for p in &c.parts {
            *want_qty.entry(p.part.to_string()).or_default() += u64::from(p.quantity);
        }
        let qty_ok = want_qty.iter().all(|(part, q)| {
            erp_parts
                .get(&(c.work_order.clone(), part.clone()))
                .copied()
                .unwrap_or(0)
                == *q
        });
        if want_parts != got_parts || want_labour != got_labour || !qty_ok {
            v.violate(json!({
                "work_order": c.work_order.as_str(),
                "completed_at_s": secs(e.at),
                "cmms_parts": want_parts.to_string(),
                "erp_parts": got_parts.to_string(),
                "cmms_labour": want_labour.to_string(),
                "erp_labour": got_labour.to_string(),
                "goods_issues_match": qty_ok,
            }));
        }
    }
    v
}

pub(super) fn no_lost_events(w: &GroundTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::NoLostEvents);
    let dead: FxHashSet<String> = w
        .dead_letters
        .iter()
        .flatten()
        .map(|d| d.origin.to_string())
        .collect();
    let mut unacked: Vec<(&plantloop_core::call::EventRef, &crate::world::Emitted)> =
        w.emitted.iter().filter(|(_, e)| !e.acked).collect();
    unacked.sort_by(|(ra, ea), (rb, eb)| (ea.at, *ra).cmp(&(eb.at, *rb)));
    v.checked += w.emitted.len() as u64;
    for (r, e) in unacked {
        v.violate(json!({
            "event": r.to_string(),
            "type": e.event_type,
            "emitted_at_s": secs(e.at),
            "where": if e.buffered { "edge buffer" } else { "not acknowledged by the core" },
        }));
    }
    // Every production confirmation MES emitted reached ERP, or sits in the dead-letter queue.
    let confirmed: FxHashSet<(OrderId, u64, u64)> = integration(w.erp.ledger())
        .filter_map(|e| match &e.posting {
            Posting::ProductionConfirmed(c) => {
                Some((c.order.clone(), c.serials.first(), c.serials.last()))
            }
            _ => None,
        })
        .collect();
    for (r, c) in w.confirmations_emitted {
        v.check();
        if !confirmed.contains(&(c.order.clone(), c.serials.first(), c.serials.last()))
            && !dead.contains(&r.to_string())
        {
            v.violate(json!({
                "event": r.to_string(),
                "confirmation": format!("{} {} {}", c.order, c.station, c.serials),
                "where": "emitted by MES, neither in ERP nor in the dead-letter queue",
            }));
        }
    }
    // Every approved disposition of a contained NC released its holds in ERP, or the release
    // sits in the dead-letter queue: the disposition event was applied, not just acknowledged.
    let mut holds_of: FxHashMap<&NcId, Vec<&HoldId>> = FxHashMap::default();
    let mut released: FxHashSet<&HoldId> = FxHashSet::default();
    for e in integration(w.erp.ledger()) {
        match &e.posting {
            Posting::HoldPosted(h) => holds_of.entry(&h.nc).or_default().push(&h.id),
            Posting::HoldReleased { hold, .. } => {
                released.insert(hold);
            }
            _ => {}
        }
    }
    let release_dead: FxHashSet<&HoldId> = (w.dead_letters.iter().flatten())
        .filter_map(|d| match &d.request {
            Some(plantloop_core::call::Request::ReleaseHold { hold, .. }) => Some(hold),
            _ => None,
        })
        .collect();
    for e in w.qms.ledger().entries() {
        let Posting::DispositionApproved(d) = &e.posting else {
            continue;
        };
        let Some(holds) = holds_of.get(&d.nc) else {
            continue;
        };
        v.check();
        let open: Vec<&str> = holds
            .iter()
            .filter(|h| !released.contains(**h) && !release_dead.contains(**h))
            .map(|h| h.as_str())
            .collect();
        if !open.is_empty() {
            v.violate(json!({
                "nc": d.nc.as_str(),
                "disposition_at_s": secs(e.at),
                "holds_not_released": open,
                "where": "disposition approved, hold neither released nor in the dead-letter queue",
            }));
        }
    }
    if let Some(dead_letters) = &w.dead_letters {
        for d in dead_letters {
            v.check();
            if d.reason.is_transient() {
                v.violate(json!({
                    "dead_letter": d.id,
                    "origin": d.origin.to_string(),
                    "reason": d.reason.describe(),
                    "at_s": secs(d.at),
                    "where": "transient failure still in the dead-letter queue after drain",
                }));
            }
        }
    } else {
        v.violate(json!({ "where": "the core is down at the end of the run" }));
    }
    v
}

pub(super) fn causal_order(w: &GroundTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::CausalOrder);
    // ERP: release after hold; "resumed" after "quality interruption".
    let mut held: FxHashSet<HoldId> = FxHashSet::default();
    let mut interrupted: FxHashSet<OrderId> = FxHashSet::default();
    for e in integration(w.erp.ledger()) {
        match &e.posting {
            Posting::HoldPosted(h) => {
                held.insert(h.id.clone());
            }
            Posting::HoldReleased { hold, nc, .. } => {
                v.check();
                if !held.contains(hold) {
                    v.violate(json!({ "correlation": nc.as_str(), "effect": "release", "before": "hold", "hold": hold.as_str(), "at_s": secs(e.at) }));
                }
            }
            Posting::OrderStatusSet { order, to, .. } => match to {
                OrderStatus::QualityInterruption => {
                    interrupted.insert(order.clone());
                }
                OrderStatus::Resumed => {
                    v.check();
                    if !interrupted.contains(order) {
                        v.violate(json!({ "correlation": order.as_str(), "effect": "order resumed", "before": "quality interruption", "at_s": secs(e.at) }));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    // MES: resume after stop.
    for m in w.mes {
        let mut stopped: FxHashSet<StationId> = FxHashSet::default();
        for e in integration(m.ledger()) {
            match &e.posting {
                Posting::StationStopped { station, .. } => {
                    stopped.insert(station.clone());
                }
                Posting::StationResumed {
                    station,
                    reason,
                    nc,
                } => {
                    v.check();
                    if !stopped.remove(station) {
                        let correlation = nc.as_ref().map_or(reason.as_str(), |n| n.as_str());
                        v.violate(json!({ "correlation": correlation, "station": station.as_str(), "effect": "resume", "before": "stop", "at_s": secs(e.at) }));
                    }
                }
                _ => {}
            }
        }
    }
    // CMMS completion before QMS maintenance record; creation before completion.
    let mut created: FxHashSet<WorkOrderId> = FxHashSet::default();
    let mut completed: FxHashMap<WorkOrderId, Instant> = FxHashMap::default();
    for e in w.cmms.ledger().entries() {
        match &e.posting {
            Posting::WorkOrderCreated(wo) => {
                created.insert(wo.id.clone());
            }
            Posting::WorkOrderCompleted(c) => {
                v.check();
                if !created.contains(&c.work_order) {
                    v.violate(json!({ "correlation": c.work_order.as_str(), "effect": "completion", "before": "creation", "at_s": secs(e.at) }));
                }
                completed.entry(c.work_order.clone()).or_insert(e.at);
            }
            _ => {}
        }
    }
    for e in integration(w.qms.ledger()) {
        if let Posting::MaintenanceRecorded { nc, work_order, .. } = &e.posting {
            v.check();
            if completed.get(work_order).is_none_or(|t| *t > e.at) {
                v.violate(json!({ "correlation": nc.as_str(), "work_order": work_order.as_str(), "effect": "maintenance recorded in QMS", "before": "work order completed in CMMS", "at_s": secs(e.at) }));
            }
        }
    }
    v
}

pub(super) fn audit_chain(w: &GroundTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::AuditChain);
    v.checked += w.audit.len() as u64;
    if let Err(e) = super::audit_chain::verify(w.audit) {
        v.violate(json!({ "audit_seq": e.seq, "reason": e.reason }));
    }
    let mut audited: FxHashMap<&IdempotencyKey, &plantloop_core::call::EventRef> =
        FxHashMap::default();
    for r in w.audit {
        if matches!(r.action, AuditAction::Posted | AuditAction::FoundExisting) {
            audited.entry(&r.key).or_insert(&r.origin);
        }
    }
    for (name, l) in ledgers(&w.ledger_truth()) {
        for e in integration(l) {
            let Some(key) = &e.key else { continue };
            v.check();
            match audited.get(key) {
                Some(origin) if w.emitted.contains_key(origin) => {}
                found => v.violate(json!({
                    "system": name,
                    "key": key.as_str(),
                    "receipt": e.receipt.to_string(),
                    "at_s": secs(e.at),
                    "problem": if found.is_some() { "audit origin is not an event any source emitted" } else { "no audit record for this posting" },
                })),
            }
        }
    }
    v
}

pub(super) fn master_data_monotonic(w: &GroundTruth) -> Verdict {
    let mut v = Verdict::new(InvariantId::MasterDataMonotonic);
    let mut newest: FxHashMap<(MasterDataKind, RecordKey), u64> = FxHashMap::default();
    for l in [w.erp.ledger(), w.cmms.ledger(), w.qms.ledger()] {
        for e in l.entries() {
            if let Posting::MasterDataPublished { kind, key, version } = &e.posting {
                let n = newest.entry((*kind, key.clone())).or_default();
                *n = (*n).max(*version);
            }
        }
    }
    let mut consumers: Vec<(String, System, &Ledger)> =
        vec![("qms".into(), System::Qms, w.qms.ledger())];
    for (i, m) in w.mes.iter().enumerate() {
        consumers.push((
            format!("mes:{}", w.plant.plants[i].id),
            System::Mes,
            m.ledger(),
        ));
    }
    for (name, system, l) in consumers {
        let mut applied: FxHashMap<(MasterDataKind, RecordKey), u64> = FxHashMap::default();
        for e in integration(l) {
            if let Posting::MasterDataApplied { kind, key, version } = &e.posting {
                v.check();
                let cur = applied.entry((*kind, key.clone())).or_default();
                if *version < *cur {
                    v.violate(json!({ "consumer": name, "kind": kind.as_str(), "key": key.as_str(), "applied": version, "after": *cur, "at_s": secs(e.at) }));
                }
                *cur = (*cur).max(*version);
            }
        }
        let mut missing: Vec<_> = newest
            .iter()
            .filter(|((kind, _), _)| kind.consumers().contains(&system))
            .filter(|(k, ver)| applied.get(k).copied().unwrap_or(0) != **ver)
            .collect();
        missing.sort();
        v.checked += newest.len() as u64;
        for ((kind, key), ver) in missing {
            v.violate(json!({
                "consumer": name,
                "kind": kind.as_str(),
                "key": key.as_str(),
                "newest": ver,
                "ends_on": applied.get(&(*kind, key.clone())).copied(),
            }));
        }
    }
    v
}
