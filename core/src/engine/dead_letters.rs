//! The dead-letter queue: calls refused for good or out of retries, and events that could not be
//! applied, each with its reason. Transient letters are probed until the target answers again;
//! letters whose cause goes away by itself (a hold released over a refused confirmation, master
//! data an event waited for) are replayed by the engine; the rest wait for an operator's replay.

use super::workflows::{Owner, Retry};
use super::{Engine, NewCall, Timer};
use crate::audit::{AuditAction, AuditRecord};
use crate::call::{CallId, EventRef, IdempotencyKey, Outcome, Request};
use crate::model::{
    DispositionDecision, LatencyClass, ProductionConfirmation, SerialRange, System,
};
use crate::sabotage::EngineDefect;
use crate::time::Instant;
use serde::{Deserialize, Serialize};

/// Why a call is in the dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadLetterReason {
    /// Retries ran out on transient failures; the last outcome is kept. Replayed automatically once
    /// the target answers again.
    OutOfRetries { last: Outcome },
    /// The target refused the request (409 / 4xx); replay after fixing the cause.
    Refused { status: u16, detail: String },
    /// The event could not be applied (unknown station, no production order …).
    Unprocessable { detail: String },
}

impl DeadLetterReason {
    /// True for failures that may heal by themselves (the target was down or slow).
    pub fn is_transient(&self) -> bool {
        matches!(self, DeadLetterReason::OutOfRetries { .. })
    }
    pub fn describe(&self) -> String {
        match self {
            DeadLetterReason::OutOfRetries { last } => {
                format!("out of retries; last outcome {last:?}")
            }
            DeadLetterReason::Refused { status, detail } => {
                format!("refused with {status}: {detail}")
            }
            DeadLetterReason::Unprocessable { detail } => format!("unprocessable: {detail}"),
        }
    }
}

/// A call (or an event that produced none) parked in the dead-letter queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: u64,
    pub at: Instant,
    pub reason: DeadLetterReason,
    pub origin: EventRef,
    /// The call, when the dead letter is a call; `None` for an unprocessable event (whose replay
    /// runs its workflow step again, e.g. once the missing master data has arrived).
    pub target: Option<System>,
    pub key: Option<IdempotencyKey>,
    pub request: Option<Request>,
    pub class: LatencyClass,
    pub(super) owner: Owner,
    pub(super) causation: Vec<EventRef>,
    /// For an unprocessable event: the workflow step to run again on replay.
    pub(super) retry: Option<Retry>,
}

impl DeadLetter {
    /// The production confirmation this letter carries, as a refused call or a parked event.
    pub(super) fn confirmation(&self) -> Option<&ProductionConfirmation> {
        match (&self.request, &self.retry) {
            (Some(Request::ConfirmProduction(c)), _) | (_, Some(Retry::Confirm(c))) => Some(c),
            _ => None,
        }
    }

    pub(super) fn confirmation_mut(&mut self) -> Option<&mut ProductionConfirmation> {
        match (&mut self.request, &mut self.retry) {
            (Some(Request::ConfirmProduction(c)), _) | (_, Some(Retry::Confirm(c))) => Some(c),
            _ => None,
        }
    }
}

impl Engine {
    /// Records what happened to dead letter `dl` (dead-lettered or replayed) in the audit chain:
    /// its call, or for an unprocessable event `event` with an empty key, and why it failed.
    pub(super) fn audit_dead_letter(&mut self, dl: &DeadLetter, action: AuditAction) {
        let request = dl.request.as_ref().map_or("event", Request::name);
        let key = dl.key.clone().unwrap_or_else(|| IdempotencyKey("".into()));
        let target = dl.target.unwrap_or(System::Erp);
        let rec = AuditRecord {
            reason: Some(dl.reason.describe()),
            ..AuditRecord::unlinked(
                self.now,
                action,
                target,
                request.into(),
                key,
                dl.origin.clone(),
                dl.causation.clone(),
            )
        };
        self.audit_out.push_back(self.chain.link(rec));
    }

    pub(super) fn schedule_probe(&mut self, target: System) {
        let t = &mut self.targets[target.index()];
        if !t.probe_scheduled {
            t.probe_scheduled = true;
            let at = self.now + self.config.dead_letter_probe_every;
            self.set_timer(at, Timer::DeadLetterProbe { target });
        }
    }

    pub(super) fn dead_letter_call(&mut self, id: CallId, reason: DeadLetterReason) {
        let st = self.calls.remove(&id).expect("dead-lettering a live call");
        let transient = reason.is_transient();
        let dl = DeadLetter {
            id: self.next_dead_letter,
            at: self.now,
            reason,
            origin: st.origin,
            target: Some(st.target),
            key: Some(st.key),
            request: Some(st.request),
            class: st.class,
            owner: st.owner,
            causation: st.causation,
            retry: None,
        };
        self.next_dead_letter += 1;
        if transient {
            self.targets[st.target.index()]
                .parked_dead_letters
                .push(dl.id);
            self.schedule_probe(st.target);
        }
        let owner = dl.owner.clone();
        let key = dl.key.clone().expect("a call has a key");
        let request = dl.request.clone().expect("a call has a request");
        self.record_dead_letter(dl);
        if !transient {
            let mut fx = std::mem::take(&mut self.fx);
            self.workflows.call_refused(&owner, &key, &request, &mut fx);
            self.apply_effects(&mut fx);
            self.fx = fx;
        }
    }

    pub(super) fn record_dead_letter(&mut self, dl: DeadLetter) {
        self.stats.dead_letters += 1;
        self.audit_dead_letter(&dl, AuditAction::DeadLettered);
        self.dead_letters.insert(dl.id, dl);
        if self.dead_letters.len() > self.config.retention.dead_letters_max {
            self.evict_dead_letter();
        }
    }

    /// Makes room in a full dead-letter queue: forgets the oldest letter the engine would never
    /// replay by itself — a final refusal, not a transient failure waiting for its target, not an
    /// event waiting for master data, not a confirmation waiting for a release. Its
    /// `dead_lettered` audit record stays, with the reason. With no such letter, nothing is
    /// forgotten (what remains is bounded by the workflows that wait).
    fn evict_dead_letter(&mut self) {
        let parked = |id: u64| {
            self.targets
                .iter()
                .any(|t| t.parked_dead_letters.contains(&id))
        };
        let victim = self.dead_letters.values().find(|d| {
            !d.reason.is_transient()
                && d.confirmation().is_none()
                && !self.awaiting_master_data.contains(&d.id)
                && !parked(d.id)
        });
        if let Some(id) = victim.map(|d| d.id) {
            self.dead_letters.remove(&id);
            self.stats.dead_letters_evicted += 1;
        }
    }

    pub(super) fn replay_dead_letter(&mut self, id: u64) -> bool {
        let Some(dl) = self.dead_letters.remove(&id) else {
            return false;
        };
        self.awaiting_master_data.remove(&id);
        for t in &mut self.targets {
            t.parked_dead_letters.retain(|d| *d != id);
        }
        let (Some(target), Some(key), Some(request)) =
            (dl.target, dl.key.clone(), dl.request.clone())
        else {
            let Some(retry) = dl.retry.clone() else {
                self.dead_letters.insert(id, dl);
                return false;
            };
            // An unprocessable event: its workflow step runs again (and dead-letters it again if
            // its cause is not fixed yet).
            self.stats.dead_letters_replayed += 1;
            self.audit_dead_letter(&dl, AuditAction::Replayed);
            let mut fx = std::mem::take(&mut self.fx);
            self.workflows.retry(
                retry,
                dl.origin,
                dl.class,
                &self.registry,
                &self.config,
                self.now,
                &mut fx,
                &mut self.stats,
            );
            self.apply_effects(&mut fx);
            self.fx = fx;
            return true;
        };
        self.stats.dead_letters_replayed += 1;
        self.audit_dead_letter(&dl, AuditAction::Replayed);
        // The posting may have happened before the failure: a target that ignores keys is asked
        // first.
        let needs_lookup = !self.config.target(target).honours_idempotency_key;
        self.enqueue(NewCall {
            target,
            class: dl.class,
            key,
            request,
            origin: dl.origin,
            causation: dl.causation,
            owner: dl.owner,
            needs_lookup,
        });
        true
    }

    /// A confirmation refused (409) for a hold that the engine released after this attempt was
    /// sent: the refusal is stale, so the call goes back in the queue under its own key (as scrap
    /// if the disposition scrapped it) instead of to the dead-letter queue. A send after the
    /// release is never requeued this way, so a refusal for another cause cannot loop.
    pub(super) fn requeue_if_released(&mut self, id: CallId, sent_at: Instant) -> bool {
        if self
            .config
            .has_defect(EngineDefect::HeldConfirmationsNotReplayed)
        {
            return false;
        }
        let Some(st) = self.calls.get_mut(&id) else {
            return false;
        };
        let Request::ConfirmProduction(conf) = &mut st.request else {
            return false;
        };
        let Some(decision) = self.workflows.released_since(&conf.serials, sent_at) else {
            return false;
        };
        if decision == Some(DispositionDecision::Scrap) {
            conf.scrap_all();
        }
        self.requeue(id, false);
        self.stats.confirmations_resent += 1;
        true
    }

    /// A hold over `ranges` was released: the confirmations of those serials in the dead-letter
    /// queue for that hold (refused with 409, or set aside behind it) are replayed, as scrap when
    /// the disposition scrapped them. One still covered by another hold waits for that one.
    pub(super) fn replay_held_confirmations(
        &mut self,
        ranges: &[SerialRange],
        decision: Option<DispositionDecision>,
    ) {
        let ids: Vec<u64> = (self.dead_letters.iter())
            .filter(|(_, d)| {
                let for_a_hold = matches!(
                    d.reason,
                    DeadLetterReason::Refused { status: 409, .. }
                        | DeadLetterReason::Unprocessable { .. }
                );
                for_a_hold
                    && d.confirmation()
                        .is_some_and(|c| ranges.iter().any(|r| r.overlaps(&c.serials)))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if decision == Some(DispositionDecision::Scrap)
                && let Some(c) = self
                    .dead_letters
                    .get_mut(&id)
                    .and_then(DeadLetter::confirmation_mut)
            {
                c.scrap_all();
            }
            self.stats.dead_letters_auto_replayed += 1;
            self.replay_dead_letter(id);
        }
    }

    /// The registry learnt a placement or an order: the letters of events that waited for master
    /// data and can now be placed are replayed.
    pub(super) fn replay_awaiting_master_data(&mut self) {
        if self.awaiting_master_data.is_empty() {
            return;
        }
        let ready: Vec<u64> = (self.awaiting_master_data.iter())
            .copied()
            .filter(|id| {
                (self.dead_letters.get(id))
                    .and_then(|d| d.retry.as_ref())
                    .is_some_and(|r| self.workflows.retry_ready(r, &self.registry))
            })
            .collect();
        for id in ready {
            self.stats.dead_letters_auto_replayed += 1;
            self.replay_dead_letter(id);
        }
    }
}
