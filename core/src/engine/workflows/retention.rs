//! Retention: what the workflows forget, and when. Every table grows with the plant's history, so
//! each has a named limit ([`crate::engine::RetentionPolicy`]); a rule only ever forgets what no
//! open workflow needs, and every forgetting is counted in the engine's stats.
//!
//! - A **containment** is kept while it is open. Once closed (its release done and no step
//!   pending) or orphaned (a disposition or completion for an NC the core never contained), it is
//!   kept for `closed_for`, or until more than `containments_closed_max` wait, then forgotten
//!   with its work-order link. A containment that opened again meanwhile (an orphan whose NC
//!   arrived) is not forgotten.
//! - An **applied completion** (which keeps a re-sent completion from posting costs twice) is
//!   kept for `closed_for`, or until more than `completions_max` are remembered.

use super::{Containment, StepState, Workflows, derived_id};
use crate::engine::{Config, Stats};
use crate::model::{NcId, WorkOrderId};
use crate::time::Instant;

impl Containment {
    /// Nothing more will happen unless a new event comes: the release is done and no step waits,
    /// or the NC never came (only a disposition or a completion did).
    pub(super) fn retirable(&self) -> bool {
        match &self.nc {
            None => self.holds.is_empty(),
            Some(_) => {
                self.steps[super::Step::Release.index()] == StepState::Done
                    && !self.steps.contains(&StepState::Pending)
                    && self.parked == 0
                    && self.waiting_slot.is_none()
            }
        }
    }
}

impl Workflows {
    pub(in crate::engine) fn containments_len(&self) -> usize {
        self.containments.len()
    }
    pub(in crate::engine) fn work_order_links_len(&self) -> usize {
        self.work_order_nc.len()
    }
    pub(in crate::engine) fn completions_len(&self) -> usize {
        self.completed.len()
    }

    /// Lists the containment of `nc` for forgetting if it is now closed or orphaned.
    pub(super) fn retire_if_closed(&mut self, nc: &NcId, now: Instant) {
        let Some(c) = self.containments.get_mut(nc) else {
            return;
        };
        if !c.retired && c.retirable() {
            c.retired = true;
            self.retired.push_back((now, nc.clone()));
        }
    }

    /// Remembers an applied completion; `false` if it was applied before.
    pub(super) fn remember_completion(&mut self, wo: &WorkOrderId, now: Instant) -> bool {
        if self.completed.contains_key(wo) {
            return false;
        }
        self.completed.insert(wo.clone(), now);
        self.completed_order.push_back((now, wo.clone()));
        true
    }

    /// Forgets what the retention policy lets go at `now`.
    pub(super) fn forget(&mut self, cfg: &Config, now: Instant, stats: &mut Stats) {
        let r = &cfg.retention;
        let expired = |at: Instant| now.saturating_since(at) >= r.closed_for;
        while let Some((at, _)) = self.retired.front() {
            if !expired(*at) && self.retired.len() <= r.containments_closed_max {
                break;
            }
            let (_, nc) = self.retired.pop_front().expect("front exists");
            let Some(c) = self.containments.get_mut(&nc) else {
                continue;
            };
            c.retired = false;
            if !c.retirable() {
                continue; // open again: listed anew when it closes
            }
            self.containments.remove(&nc);
            let wo =
                WorkOrderId::new(derived_id("WO-", nc.as_str())).expect("derived ids are valid");
            if self.work_order_nc.get(&wo) == Some(&nc) {
                self.work_order_nc.remove(&wo);
            }
            stats.containments_forgotten += 1;
        }
        while let Some((at, _)) = self.completed_order.front() {
            if !expired(*at) && self.completed_order.len() <= r.completions_max {
                break;
            }
            let (_, wo) = self.completed_order.pop_front().expect("front exists");
            self.completed.remove(&wo);
            stats.completions_forgotten += 1;
        }
    }
}
