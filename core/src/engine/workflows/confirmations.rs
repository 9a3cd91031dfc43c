//! W6 production confirmations: sent to ERP, or parked behind a hold in force over their serials.

use super::*;

/// `w6/<order>/<station>/<first>..=<last>`, the key of a production confirmation: the hottest
/// key, so written into `buf` (reused) without the formatting machinery.
pub(super) fn confirmation_key<'b>(buf: &'b mut String, c: &ProductionConfirmation) -> &'b str {
    let mut digits = itoa::Buffer::new();
    buf.clear();
    buf.push_str("w6/");
    buf.push_str(c.order.as_str());
    buf.push('/');
    buf.push_str(c.station.as_str());
    buf.push('/');
    buf.push_str(digits.format(c.serials.first()));
    buf.push_str("..=");
    buf.push_str(digits.format(c.serials.last()));
    buf
}

impl Workflows {
    pub(super) fn confirm(
        &mut self,
        c: ProductionConfirmation,
        origin: EventRef,
        class: LatencyClass,
        cfg: &Config,
        fx: &mut Effects,
        stats: &mut crate::engine::Stats,
    ) {
        if let Some(nc) = self.holding(&c.serials) {
            let k = self
                .containments
                .get_mut(&nc)
                .expect("an active hold has its containment");
            if k.parked >= cfg.parked_per_hold_max {
                fx.unprocessable.push(Unprocessable {
                    origin: origin.clone(),
                    causation: vec![origin],
                    class,
                    detail: format!(
                        "more than {} confirmations parked behind one hold",
                        cfg.parked_per_hold_max
                    ),
                    retry: Retry::Confirm(c),
                });
            } else {
                stats.confirmations_parked += 1;
                k.parked += 1;
                self.parked.push(Parked {
                    nc,
                    conf: c,
                    origin,
                });
            }
            return;
        }
        let key = confirmation_key(&mut self.key_buf, &c);
        fx.call(
            System::Erp,
            class,
            key,
            Request::ConfirmProduction(c),
            &origin,
            vec![origin.clone()],
            Owner::None,
        );
    }

    /// The containment whose hold is in force over any of `serials`; the one with the smallest NC
    /// id when several are, so that the choice does not depend on hash-map order.
    pub(super) fn holding(&self, serials: &SerialRange) -> Option<NcId> {
        let (nc, _) = self
            .active_holds
            .iter()
            .find(|(_, held)| held.iter().any(|h| h.overlaps(serials)))?;
        debug_assert!(self.containments.get(nc).is_some_and(|k| k.hold_active()));
        Some(nc.clone())
    }

    /// Whether a hold over any of `serials` was released after `at` (and none is in force now):
    /// the decision to apply, scrap if any such release scrapped them.
    pub(in crate::engine) fn released_since(
        &self,
        serials: &SerialRange,
        at: Instant,
    ) -> Option<Option<DispositionDecision>> {
        if self.holding(serials).is_some() {
            return None;
        }
        let mut since = (self.released_ranges.iter().rev())
            .filter(|(r, _, done)| *done >= at && r.overlaps(serials))
            .map(|(_, d, _)| *d);
        let latest = since.next()?;
        let scrapped = latest == Some(DispositionDecision::Scrap)
            || since.any(|d| d == Some(DispositionDecision::Scrap));
        Some(if scrapped {
            Some(DispositionDecision::Scrap)
        } else {
            latest
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_key_is_the_formatted_one() {
        for (first, last) in [(0, 0), (1, 10), (999, 1_000_000), (u64::MAX - 1, u64::MAX)] {
            let c = ProductionConfirmation {
                order: OrderId::new("O-1").unwrap(),
                station: StationId::new("P1-L1-S1").unwrap(),
                material: MaterialId::new("M-1").unwrap(),
                serials: SerialRange::new(first, last).unwrap(),
                good: 1,
                scrap: 0,
            };
            assert_eq!(
                confirmation_key(&mut String::new(), &c),
                format!("w6/{}/{}/{}", c.order, c.station, c.serials)
            );
        }
    }
}
