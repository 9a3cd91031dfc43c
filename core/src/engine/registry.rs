//! The context registry: what the engine knows to enrich events, built only from master data and
//! ERP's order releases (asset → station → line → plant; production orders per line).

use crate::model::{AssetId, AssetPlacement, LineId, ProductionOrder, SerialRange, StationId};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Asset placements and recent production orders.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Registry {
    placements: FxHashMap<StationId, (u64, AssetPlacement)>,
    stations_by_asset: FxHashMap<AssetId, StationId>,
    orders: FxHashMap<LineId, VecDeque<ProductionOrder>>,
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

    /// Number of stations known.
    pub fn stations(&self) -> usize {
        self.placements.len()
    }

    /// The newest order released to a line.
    pub fn active_order(&self, line: &LineId) -> Option<&ProductionOrder> {
        self.orders.get(line).and_then(|q| q.back())
    }

    /// The remembered order of a line whose serials contain `serial`.
    pub fn order_of(&self, line: &LineId, serial: u64) -> Option<&ProductionOrder> {
        self.orders
            .get(line)?
            .iter()
            .rev()
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

    /// Remembers a released order, keeping at most `per_line_max` per line (the oldest go
    /// first). Returns how many it forgot.
    pub(crate) fn add_order(&mut self, o: ProductionOrder, per_line_max: usize) -> u64 {
        let q = self.orders.entry(o.line.clone()).or_default();
        if q.iter().rev().any(|x| x.id == o.id) {
            return 0;
        }
        q.push_back(o);
        let mut evicted = 0;
        while q.len() > per_line_max.max(1) {
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
