//! The outbox: per target one queue per latency class, drained critical first within the
//! target's congestion window, circuit breaker and rate limit; and what each outcome does to a
//! call (done, retried with backoff and jitter, requeued).

use super::{CallState, DeadLetterReason, Engine, NewCall, Phase, Timer};
use crate::audit::{AuditAction, AuditRecord, GENESIS};
use crate::call::{Call, CallId, Outcome, Request};
use crate::model::System;
use crate::sabotage::EngineDefect;
use crate::time::{Duration, Instant};
use rand::RngExt;
use std::collections::VecDeque;

impl Engine {
    pub(super) fn may_send(&mut self, target: System) -> bool {
        let now = self.now;
        let cfg = self.config.target(target);
        let (in_flight_max, rate) = (cfg.in_flight_max, cfg.rate_limit_per_s);
        let t = &mut self.targets[target.index()];
        if t.paused_until > now || t.in_flight >= in_flight_max.min(t.window) {
            return false;
        }
        if let Some(until) = t.breaker_open_until {
            if until > now || t.probe_in_flight {
                return false;
            }
            // Half-open: this call is the probe.
            t.probe_in_flight = true;
        }
        if let Some(rate) = rate {
            if now.saturating_since(t.window_start) >= Duration::from_secs(1) {
                t.window_start = now;
                t.window_calls = 0;
            }
            if t.window_calls >= rate {
                let wake = t.window_start + Duration::from_secs(1);
                t.probe_in_flight = false;
                self.set_timer(wake, Timer::TargetWake { target });
                return false;
            }
            t.window_calls += 1;
        }
        true
    }

    pub(super) fn pump(&mut self) {
        for target in System::ALL {
            loop {
                let ti = target.index();
                if self.targets[ti].queues.iter().all(VecDeque::is_empty) {
                    break;
                }
                if !self.may_send(target) {
                    if let Some(until) = self.targets[ti].breaker_open_until
                        && until > self.now
                    {
                        self.set_timer(until, Timer::TargetWake { target });
                    }
                    break;
                }
                let order = if self.config.has_defect(EngineDefect::BulkFirst) {
                    [2, 1, 0]
                } else {
                    [0, 1, 2]
                };
                let Some((class, id)) = order
                    .into_iter()
                    .find_map(|c| self.targets[ti].queues[c].pop_front().map(|id| (c, id)))
                else {
                    break;
                };
                self.queued[class] -= 1;
                self.send(id);
            }
        }
    }

    pub(super) fn send(&mut self, id: CallId) {
        let st = self.calls.get_mut(&id).expect("queued calls exist");
        let target = st.target;
        let deadline = self.now + self.config.targets[target.index()].call_timeout;
        st.attempt += 1;
        let lookup = st.needs_lookup;
        st.phase = Phase::InFlight { deadline, lookup };
        let request = if lookup {
            self.stats.lookups += 1;
            Request::LookupPosting {
                key: st.key.clone(),
            }
        } else {
            st.request.clone()
        };
        self.stats.attempts += 1;
        let call = Call {
            id,
            attempt: st.attempt,
            target: st.target,
            class: st.class,
            key: st.key.clone(),
            request,
            deadline,
            origin: st.origin.clone(),
        };
        let attempt = st.attempt;
        self.targets[target.index()].in_flight += 1;
        debug_assert!(
            self.targets[target.index()].in_flight
                <= self.config.targets[target.index()].in_flight_max.max(1),
            "{target}: more calls in flight than its in_flight_max"
        );
        self.outbox.push_back(call);
        self.timer_seq += 1;
        self.next_due = self.next_due.min(deadline);
        let q = &mut self.deadlines[target.index()];
        debug_assert!(q.back().is_none_or(|last| last.0 <= deadline));
        q.push_back((deadline, self.timer_seq, id, attempt));
    }

    /// A 429 to a call sent at `sent_at`: halve the window unless it was cut after that send.
    pub(super) fn window_halve(&mut self, target: System, sent_at: Instant) {
        let max = self.config.targets[target.index()].in_flight_max.max(1);
        let t = &mut self.targets[target.index()];
        if sent_at < t.window_cut_at {
            return;
        }
        t.window = (t.window.min(max) / 2).max(1);
        t.window_acks = 0;
        t.window_cut_at = self.now;
        self.stats.window_cuts += 1;
    }

    /// An answered call: one more in flight after a full window of them.
    pub(super) fn window_widen(&mut self, target: System) {
        let max = self.config.targets[target.index()].in_flight_max.max(1);
        let t = &mut self.targets[target.index()];
        if t.window >= max {
            t.window = max;
            return;
        }
        t.window_acks += 1;
        if t.window_acks >= t.window {
            t.window += 1;
            t.window_acks = 0;
        }
    }

    pub(super) fn end_flight(&mut self, target: System) {
        let t = &mut self.targets[target.index()];
        t.in_flight = t.in_flight.saturating_sub(1);
    }

    pub(super) fn breaker_success(&mut self, target: System) {
        let t = &mut self.targets[target.index()];
        t.consecutive_failures = 0;
        t.breaker_open_until = None;
        t.probe_in_flight = false;
        // The target answers again: transient dead letters get another chance.
        let parked = std::mem::take(&mut t.parked_dead_letters);
        for id in parked {
            self.replay_dead_letter(id);
        }
    }

    pub(super) fn transient_failure(&mut self, id: CallId, outcome: Outcome) {
        let (target, failures) = {
            let st = self.calls.get_mut(&id).expect("failing a live call");
            st.failures += 1;
            (st.target, st.failures)
        };
        let policy = self.config.breaker.clone();
        let t = &mut self.targets[target.index()];
        t.consecutive_failures += 1;
        let was_probe = t.probe_in_flight;
        t.probe_in_flight = false;
        if was_probe || t.consecutive_failures >= policy.failures_to_open {
            if t.breaker_open_until.is_none() {
                self.stats.breaker_opens += 1;
            }
            t.breaker_open_until = Some(self.now + policy.open_for);
        }
        let honours = self.config.target(target).honours_idempotency_key;
        if failures >= self.config.retry.attempts_max {
            self.dead_letter_call(id, DeadLetterReason::OutOfRetries { last: outcome });
            return;
        }
        self.stats.retries += 1;
        let base = self.config.retry.backoff_base.as_micros();
        let cap = self.config.retry.backoff_cap.as_micros();
        let backoff = base.saturating_mul(1u64 << (failures - 1).min(30)).min(cap);
        let jittered = backoff / 2 + self.rng.random_range(0..=backoff / 2);
        let st = self.calls.get_mut(&id).expect("present");
        st.needs_lookup = !honours && outcome.is_ambiguous() || st.needs_lookup;
        st.phase = Phase::Backoff;
        let attempt = st.attempt;
        self.set_timer(
            self.now + Duration::from_micros(jittered),
            Timer::BackoffOver { call: id, attempt },
        );
    }

    pub(super) fn finish(&mut self, id: CallId, receipt: String, action: AuditAction) {
        let st = self.calls.remove(&id).expect("finishing a live call");
        self.breaker_success(st.target);
        self.complete(st, receipt, action);
    }

    /// Completes a call that may be queued or backing off (a late success).
    pub(super) fn finish_in_any_phase(&mut self, id: CallId, receipt: String, action: AuditAction) {
        let st = self.calls.remove(&id).expect("present");
        if matches!(st.phase, Phase::InFlight { .. }) {
            // The later send is abandoned: its slot is free again (its reply will be stale).
            self.end_flight(st.target);
        }
        // The target answered with a success.
        self.breaker_success(st.target);
        if st.phase == Phase::Queued {
            let q = &mut self.targets[st.target.index()].queues[st.class.index()];
            if let Some(pos) = q.iter().position(|c| *c == id) {
                q.remove(pos);
                self.queued[st.class.index()] -= 1;
            }
        }
        self.complete(st, receipt, action);
    }

    pub(super) fn complete(&mut self, st: CallState, receipt: String, action: AuditAction) {
        self.stats.calls_done += 1;
        let rec = AuditRecord {
            receipt: Some(receipt),
            ..AuditRecord::unlinked(
                self.now,
                action,
                st.target,
                st.request.name().into(),
                st.key.clone(),
                st.origin,
                st.causation,
            )
        };
        let mut linked = self.chain.link(rec);
        if self.config.has_defect(EngineDefect::AuditUnchained) {
            linked.prev_hash = GENESIS;
        }
        self.audit_out.push_back(linked);
        let mut fx = std::mem::take(&mut self.fx);
        self.workflows.call_done(
            &st.owner,
            &st.key,
            &st.request,
            &self.config,
            self.now,
            &mut fx,
        );
        self.apply_effects(&mut fx);
        self.fx = fx;
    }

    /// Puts a live call back in its target's queue for its class: at the front when it was due
    /// already (throttled, looked up, in flight at a restart), else at the back.
    pub(super) fn requeue(&mut self, id: CallId, front: bool) {
        let st = self.calls.get_mut(&id).expect("requeuing a live call");
        st.phase = Phase::Queued;
        let class = st.class.index();
        let q = &mut self.targets[st.target.index()].queues[class];
        if front {
            q.push_front(id);
        } else {
            q.push_back(id);
        }
        self.queued[class] += 1;
    }

    pub(super) fn enqueue(&mut self, c: NewCall) {
        let id = CallId(self.next_call);
        self.next_call += 1;
        self.stats.calls_started += 1;
        let (t, cl) = (c.target, c.class);
        self.calls.insert(
            id,
            CallState {
                target: c.target,
                class: c.class,
                key: c.key,
                request: c.request,
                origin: c.origin,
                causation: c.causation,
                owner: c.owner,
                attempt: 0,
                failures: 0,
                phase: Phase::Queued,
                needs_lookup: c.needs_lookup,
            },
        );
        self.targets[t.index()].queues[cl.index()].push_back(id);
        self.queued[cl.index()] += 1;
    }
}
