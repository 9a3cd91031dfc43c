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

    /// Remembers a released order, keeping at most `per_line_max` per line.
    pub(crate) fn add_order(&mut self, o: ProductionOrder, per_line_max: usize) {
        let q = self.orders.entry(o.line.clone()).or_default();
        if q.iter().any(|x| x.id == o.id) {
            return;
        }
        q.push_back(o);
        while q.len() > per_line_max.max(1) {
            q.pop_front();
        }
    }

    /// The serials a containment must hold: from the first suspect serial to the end of the order
    /// that built it (units made before the stop lands are suspect too). That order is the one whose
    /// serials contain the first suspect serial, or else the line's active order.
    pub fn hold_range(
        &self,
        line: &LineId,
        suspect: SerialRange,
    ) -> Option<(ProductionOrder, SerialRange)> {
        let order = self
            .order_of(line, suspect.first())
            .or_else(|| self.active_order(line))?
            .clone();
        let last = order.serials.last().max(suspect.last());
        let range = SerialRange::new(suspect.first(), last).ok()?;
        Some((order, range))
    }
}
