//! W5 master data: each record version to each consumer, never going back a version.

use super::*;

impl Workflows {
    #[allow(clippy::too_many_arguments)] // the saga's context, passed apart for the borrow checker
    pub(super) fn sync_master_data(
        &mut self,
        consumer: System,
        r: MasterDataRecord,
        origin: &EventRef,
        class: LatencyClass,
        cfg: &Config,
        fx: &mut Effects,
        stats: &mut crate::engine::Stats,
    ) {
        let s = self
            .master_data
            .entry((consumer, r.kind(), r.key.clone()))
            .or_default();
        let newest = s
            .applied
            .max(s.in_flight.unwrap_or(0))
            .max(s.pending.as_ref().map_or(0, |(p, _)| p.version));
        let stuck = newest > 0 && cfg.has_defect(EngineDefect::MasterDataStuckOnFirst);
        if r.version <= newest || stuck {
            stats.master_data_superseded += 1;
            return;
        }
        if s.in_flight.is_some() {
            if s.pending.is_some() {
                stats.master_data_superseded += 1;
            }
            s.pending = Some((r, origin.clone()));
            return;
        }
        s.in_flight = Some(r.version);
        Self::send_master_data(consumer, r, origin, class, fx);
    }

    pub(super) fn send_master_data(
        consumer: System,
        r: MasterDataRecord,
        origin: &EventRef,
        class: LatencyClass,
        fx: &mut Effects,
    ) {
        let owner = Owner::MasterData {
            consumer,
            kind: r.kind(),
            key: r.key.clone(),
            version: r.version,
        };
        let key = key(format_args!(
            "w5/{consumer}/{}/{}/v{}",
            r.kind().as_str(),
            r.key,
            r.version
        ));
        fx.call(
            consumer,
            class,
            key,
            Request::ApplyMasterData(r),
            origin,
            vec![origin.clone()],
            owner,
        );
    }
}
