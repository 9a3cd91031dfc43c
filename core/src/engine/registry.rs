//! The context registry: what the engine knows to enrich events, built only from master data and
//! ERP's order releases (asset → station → line → plant; production orders per line).

use crate::model::{AssetId, AssetPlacement, LineId, ProductionOrder, SerialRange, StationId};
use crate::time::{Duration, Instant};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Asset placements and recent production orders.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Registry {
    placements: FxHashMap<StationId, (u64, AssetPlacement)>,
    stations_by_asset: FxHashMap<AssetId, StationId>,
    /// Per line, the orders remembered, oldest first, with when each was released.
    orders: FxHashMap<LineId, VecDeque<(Instant, ProductionOrder)>>,
}

impl Registry {
    /// Where a station sits and which asset CMMS maintains there.
    pub fn placement(&self, station: &StationId) -> Option<&AssetPlacement> {
        self.placements.get(station).map(|(_, p)| p)
    }

    /// The station an asset is installed at.
    pub fn station_of(&self, asset: &AssetId) -> Option<&StationId> {
        self.stations_by_asset.get(asset)
    }

    /// Production orders remembered, over all lines.
    pub fn orders_len(&self) -> usize {
        self.orders.values().map(VecDeque::len).sum()
    }

    /// Number of stations known.
    pub fn stations(&self) -> usize {
        self.placements.len()
    }

    /// The newest order released to a line.
    pub fn active_order(&self, line: &LineId) -> Option<&ProductionOrder> {
        self.orders.get(line).and_then(|q| q.back()).map(|(_, o)| o)
    }

    /// The remembered order of a line whose serials contain `serial`.
    pub fn order_of(&self, line: &LineId, serial: u64) -> Option<&ProductionOrder> {
        self.orders
            .get(line)?
            .iter()
            .rev()
            .map(|(_, o)| o)
            .find(|o| o.serials.contains(serial))
    }

    /// Applies an asset placement version; older or equal versions are ignored. Returns whether it
    /// was applied.
    pub(crate) fn apply_placement(&mut self, version: u64, p: AssetPlacement) -> bool {
        if let Some((v, _)) = self.placements.get(&p.station)
            && *v >= version
        {
            return false;
        }
        self.stations_by_asset
            .insert(p.asset.clone(), p.station.clone());
        self.placements.insert(p.station.clone(), (version, p));
        true
    }

    /// Remembers an order released at `now`. Per line it keeps at most `per_line_max`, and
    /// forgets an order once the line's next order was released `keep_for` ago (production moved
    /// past it a whole retention window ago), oldest first; the newest order of a line is always
    /// kept. Returns how many it forgot.
    pub(crate) fn add_order(
        &mut self,
        o: ProductionOrder,
        now: Instant,
        per_line_max: usize,
        keep_for: Duration,
    ) -> u64 {
        let q = self.orders.entry(o.line.clone()).or_default();
        if q.iter().rev().any(|(_, x)| x.id == o.id) {
            return 0;
        }
        q.push_back((now, o));
        let mut evicted = 0;
        while q.len() > per_line_max.max(1)
            || q.get(1)
                .is_some_and(|(next, _)| now.saturating_since(*next) >= keep_for)
        {
            q.pop_front();
            evicted += 1;
        }
        evicted
    }

    /// The serials a containment must hold, one range per production order: every remembered
    /// order of the line that built a suspect serial, from its first suspect serial to the order's
    /// end (units made before the stop lands are suspect too), in serial order. ERP holds
    /// inventory per order, so one hold cannot span two. Empty when no remembered order built any
    /// suspect serial: the containment then waits for the order to become known.
    pub fn hold_ranges(
        &self,
        line: &LineId,
        suspect: SerialRange,
    ) -> Vec<(ProductionOrder, SerialRange)> {
        let Some(orders) = self.orders.get(line) else {
            return Vec::new();
        };
        let mut out: Vec<(ProductionOrder, SerialRange)> = orders
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.serials.last() >= suspect.first() && o.serials.first() <= suspect.last())
            .filter_map(|o| {
                let first = o.serials.first().max(suspect.first());
                let range = SerialRange::new(first, o.serials.last()).ok()?;
                Some((o.clone(), range))
            })
            .collect();
        out.sort_by_key(|(_, r)| r.first());
        out
    }
}
