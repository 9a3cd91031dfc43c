//! The engine's own thread: the one owner of the [`DurableEngine`], fed through a channel.
//!
//! Each turn takes every message that arrived (up to [`TURN_INPUTS_MAX`]), journals and handles
//! the inputs among them, syncs the journal once for all of them (group commit: one fsync however
//! many requests were waiting), and only then answers the requests, stores the audit records and
//! starts the calls those inputs caused (journal before acknowledge). While a sync runs, new
//! requests gather in the channel for the next turn. Timers are the channel's receive timeout:
//! when the engine's next timeout is due, the turn handles `Input::Tick`.
//!
//! A plain thread rather than a tokio task: SQLite's fsync blocks, and must not stall the
//! runtime's workers that serve HTTP and make the calls.

use crate::audit_store::AuditStore;
use crate::clock::Clock;
use crate::journal::SqliteJournal;
use crate::metrics::{Metrics, event_time_us, plant_of};
use crate::outbound::Outbound;
use plantloop_core::call::{CallId, EventRef, Outcome};
use plantloop_core::durable::DurableEngine;
use plantloop_core::engine::{Ack, DeadLetter, Input};
use plantloop_core::event::Event;
use plantloop_core::model::System;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Most messages one turn takes before it syncs: bounds the latency a large burst adds.
pub const TURN_INPUTS_MAX: usize = 4_096;

/// Why the engine could not take a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineDown(pub String);

/// A message to the engine thread.
pub enum Msg {
    /// Source events; answered with one ack each, after the journal synced them. `principal`
    /// is who delivered them (a token's subject), stored for the audit trail.
    Events {
        events: Vec<Event>,
        principal: Arc<str>,
        reply: oneshot::Sender<Result<Vec<Ack>, EngineDown>>,
    },
    /// How one attempt of a call ended.
    Reply {
        call: CallId,
        attempt: u32,
        outcome: Outcome,
    },
    /// An operator replays a dead letter; `Ack::Ignored` when there is no such letter.
    ReplayDeadLetter {
        id: u64,
        reply: oneshot::Sender<Result<Ack, EngineDown>>,
    },
    /// The dead-letter queue, as JSON.
    DeadLetters { reply: oneshot::Sender<Value> },
    /// The stored audit records of one correlation.
    Audit {
        correlation: String,
        reply: oneshot::Sender<Result<Vec<Value>, String>>,
    },
    /// Finish this turn, sync and stop.
    Stop,
}

/// What the HTTP side can see of the engine thread's state.
#[derive(Default)]
pub struct Status {
    /// Recovery is done and the journal is open.
    pub ready: AtomicBool,
    /// Why the engine stopped, if it failed.
    pub failed: Mutex<Option<String>>,
    /// Inputs journaled since start.
    pub inputs: AtomicU64,
    /// Journal syncs since start: fewer than `inputs` when requests shared a sync.
    pub syncs: AtomicU64,
}

/// The engine thread's state.
pub struct Driver {
    pub engine: DurableEngine<SqliteJournal>,
    pub audit: AuditStore,
    pub outbound: Outbound,
    pub clock: Clock,
    pub status: Arc<Status>,
    /// Who delivered the events accepted this turn, stored with the turn's audit records.
    pub deliveries: Vec<(EventRef, Arc<str>)>,
    pub metrics: Arc<Metrics>,
}

/// Answers owed once the turn's sync is done.
enum Owed {
    Acks(oneshot::Sender<Result<Vec<Ack>, EngineDown>>, Vec<Ack>),
    Replay(oneshot::Sender<Result<Ack, EngineDown>>, Ack),
    DeadLetters(oneshot::Sender<Value>),
    Audit(String, oneshot::Sender<Result<Vec<Value>, String>>),
}

impl Driver {
    /// Runs turns until [`Msg::Stop`], the channel closing, or a journal failure. `started` is
    /// told once the engine is ready (recovery synced) or could not get there.
    pub fn run(mut self, rx: Receiver<Msg>, started: impl FnOnce(Result<(), String>)) {
        // Recovery's `Restarted` (and any re-issued audit records) are not synced yet.
        if let Err(e) = self.commit(&mut vec![]) {
            self.fail(&e);
            started(Err(e));
            return;
        }
        self.status.ready.store(true, Ordering::Release);
        started(Ok(()));
        let mut batch = Vec::with_capacity(64);
        loop {
            let first = match self.engine.engine().poll_timeout() {
                Some(at) => match rx.recv_timeout(self.clock.until(at)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => Some(Msg::Stop),
                },
                None => Some(rx.recv().unwrap_or(Msg::Stop)),
            };
            batch.extend(first);
            while batch.len() < TURN_INPUTS_MAX {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let stop = match self.turn(&mut batch) {
                Ok(stop) => stop,
                Err(e) => {
                    self.fail(&e);
                    Self::refuse_all(&rx, &e);
                    return;
                }
            };
            if stop {
                self.status.ready.store(false, Ordering::Release);
                return;
            }
        }
    }

    /// One turn: handle every message, sync once, answer, release outputs. True on `Stop`.
    fn turn(&mut self, batch: &mut Vec<Msg>) -> Result<bool, String> {
        let now = self.clock.now();
        let mut owed = Vec::new();
        let mut stop = false;
        let mut handled = 0usize;
        let mut result = Ok(());
        for msg in batch.drain(..) {
            if result.is_err() {
                refuse(msg, &EngineDown("the journal failed".into()));
                continue;
            }
            match msg {
                Msg::Events {
                    events,
                    principal,
                    reply,
                } => {
                    let mut acks = Vec::with_capacity(events.len());
                    for e in events {
                        let event = e.event_ref();
                        if let Some(tp) = &e.traceparent {
                            self.outbound.note_trace(event.clone(), tp);
                        }
                        let origin_us = event_time_us(e.time.as_deref()).unwrap_or(now.as_micros());
                        self.outbound.note_origin(event.clone(), origin_us);
                        let (kind, class) = (e.event_type().name(), e.class);
                        let plant = plant_of(&e).to_owned();
                        match self.engine.handle(now, Input::Event(e)) {
                            Ok(a) => {
                                // A duplicate too: its first delivery's principal may have
                                // been lost in a crash before the audit store took it.
                                if matches!(a, Ack::Accepted | Ack::Duplicate) {
                                    self.deliveries.push((event.clone(), principal.clone()));
                                }
                                let result = match a {
                                    Ack::Accepted => "accepted",
                                    Ack::Duplicate => "duplicate",
                                    Ack::RetryAfter(_) => "pushed_back",
                                    _ => "ignored",
                                };
                                self.metrics.event_in(kind, class, &plant, result);
                                acks.push(a);
                            }
                            Err(err) => {
                                result = Err(format!("journal: {err}"));
                                break;
                            }
                        }
                        handled += 1;
                    }
                    if result.is_ok() {
                        owed.push(Owed::Acks(reply, acks));
                    } else {
                        let _ = reply.send(Err(EngineDown("the journal failed".into())));
                    }
                }
                Msg::Reply {
                    call,
                    attempt,
                    outcome,
                } => {
                    let input = Input::Reply {
                        call,
                        attempt,
                        outcome,
                    };
                    if let Err(err) = self.engine.handle(now, input) {
                        result = Err(format!("journal: {err}"));
                    }
                    handled += 1;
                }
                Msg::ReplayDeadLetter { id, reply } => {
                    match self.engine.handle(now, Input::ReplayDeadLetter(id)) {
                        Ok(a) => owed.push(Owed::Replay(reply, a)),
                        Err(err) => {
                            result = Err(format!("journal: {err}"));
                            let _ = reply.send(Err(EngineDown("the journal failed".into())));
                        }
                    }
                    handled += 1;
                }
                Msg::DeadLetters { reply } => owed.push(Owed::DeadLetters(reply)),
                Msg::Audit { correlation, reply } => owed.push(Owed::Audit(correlation, reply)),
                Msg::Stop => stop = true,
            }
        }
        result?;
        let due = self
            .engine
            .engine()
            .poll_timeout()
            .is_some_and(|at| at <= now);
        if handled == 0 && due {
            self.engine
                .handle(now, Input::Tick)
                .map_err(|e| format!("journal: {e}"))?;
            handled += 1;
        }
        self.status
            .inputs
            .fetch_add(handled as u64, Ordering::Relaxed);
        self.commit(&mut owed)?;
        Ok(stop)
    }

    /// Syncs, then answers what is owed, stores the audit records and starts the calls.
    fn commit(&mut self, owed: &mut Vec<Owed>) -> Result<(), String> {
        let started = std::time::Instant::now();
        self.engine
            .sync()
            .map_err(|e| format!("journal sync: {e}"))?;
        self.metrics.journal_synced(started.elapsed().as_secs_f64());
        self.status.syncs.fetch_add(1, Ordering::Relaxed);
        let mut records = Vec::new();
        while let Some(r) = self.engine.engine_mut().poll_audit() {
            records.push(r);
        }
        self.audit.store(&records, &self.deliveries)?;
        self.deliveries.clear();
        for o in owed.drain(..) {
            match o {
                Owed::Acks(reply, acks) => {
                    let _ = reply.send(Ok(acks));
                }
                Owed::Replay(reply, ack) => {
                    let _ = reply.send(Ok(ack));
                }
                Owed::DeadLetters(reply) => {
                    let letters: Vec<Value> = self
                        .engine
                        .engine()
                        .dead_letters()
                        .map(dead_letter_json)
                        .collect();
                    let _ = reply.send(json!({ "dead_letters": letters }));
                }
                Owed::Audit(correlation, reply) => {
                    let _ = reply.send(self.audit.by_correlation(&correlation));
                }
            }
        }
        let now = self.clock.now();
        while let Some(call) = self.engine.engine_mut().poll_command() {
            self.outbound.send(call, now);
        }
        for s in System::ALL {
            self.metrics
                .target(s, &self.engine.engine().target_health(s));
        }
        Ok(())
    }

    fn fail(&self, why: &str) {
        tracing::error!("the engine stopped: {why}");
        self.status.ready.store(false, Ordering::Release);
        if let Ok(mut f) = self.status.failed.lock() {
            *f = Some(why.to_owned());
        }
    }

    /// After a failure: every request still waiting, and every later one, is refused.
    fn refuse_all(rx: &Receiver<Msg>, why: &str) {
        let down = EngineDown(why.to_owned());
        while let Ok(m) = rx.recv() {
            if matches!(m, Msg::Stop) {
                return;
            }
            refuse(m, &down);
        }
    }
}

fn refuse(msg: Msg, down: &EngineDown) {
    match msg {
        Msg::Events { reply, .. } => {
            let _ = reply.send(Err(down.clone()));
        }
        Msg::ReplayDeadLetter { reply, .. } => {
            let _ = reply.send(Err(down.clone()));
        }
        Msg::DeadLetters { reply } => {
            let _ = reply.send(json!({ "dead_letters": [], "error": down.0 }));
        }
        Msg::Audit { reply, .. } => {
            let _ = reply.send(Err(down.0.clone()));
        }
        Msg::Reply { .. } | Msg::Stop => {}
    }
}

/// A dead letter as the operator API shows it.
pub fn dead_letter_json(d: &DeadLetter) -> Value {
    json!({
        "id": d.id,
        "at_us": d.at.as_micros(),
        "reason": d.reason.describe(),
        "transient": d.reason.is_transient(),
        "origin": { "source": d.origin.source(), "id": d.origin.id() },
        "target": d.target.map(|t| t.as_str()),
        "idempotency_key": d.key.as_ref().map(|k| k.as_str()),
        "request": d.request.as_ref().map(|r| r.name()),
        "class": d.class.as_str(),
    })
}
