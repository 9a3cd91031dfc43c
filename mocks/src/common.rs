//! Pieces every system uses: the outbox of events and the versioned master-data store.

use crate::ledger::{Ledger, Origin, Posting};
use crate::reply::{ProblemKind, Reply};
use plantloop_core::call::IdempotencyKey;
use plantloop_core::event::{Event, EventData};
use plantloop_core::time::Instant;
use plantloop_core::*;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// A system's outbound events, in emission order. Ids are a per-source counter (`1`, `2`, …), so
/// they are unique per source and deterministic.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    source: String,
    next_id: u64,
    queue: VecDeque<Event>,
}

impl Outbox {
    pub(crate) fn new(source: String) -> Outbox {
        Outbox {
            source,
            next_id: 1,
            queue: VecDeque::new(),
        }
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Queues an event with its correlation and plant.
    pub(crate) fn emit(
        &mut self,
        data: EventData,
        correlation: Option<String>,
        plant: Option<PlantId>,
    ) {
        let id = itoa::Buffer::new().format(self.next_id).to_owned();
        let mut ev = Event::new(self.source.clone(), id, data);
        self.next_id += 1;
        ev.correlation = correlation;
        ev.plant = plant;
        self.queue.push_back(ev);
    }

    pub(crate) fn pop(&mut self) -> Option<Event> {
        self.queue.pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// How many events were emitted so far (drained or not).
    pub(crate) fn emitted(&self) -> u64 {
        self.next_id - 1
    }
}

/// One record version a system holds, and when and under which receipt it got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldRecord {
    pub record: MasterDataRecord,
    pub at: Instant,
    pub receipt: crate::reply::Receipt,
}

/// Master-data records by kind and key, whose versions only go up.
#[derive(Clone, Debug, Default)]
pub(crate) struct MasterData {
    by_kind: [FxHashMap<RecordKey, HeldRecord>; 3],
}

fn slot(kind: MasterDataKind) -> usize {
    match kind {
        MasterDataKind::Material => 0,
        MasterDataKind::Asset => 1,
        MasterDataKind::InspectionSpec => 2,
    }
}

impl MasterData {
    pub(crate) fn get(&self, kind: MasterDataKind, key: &RecordKey) -> Option<&HeldRecord> {
        self.by_kind[slot(kind)].get(key)
    }

    /// [`MasterData::get`] by the key's string, without building a [`RecordKey`].
    pub(crate) fn get_str(&self, kind: MasterDataKind, key: &str) -> Option<&HeldRecord> {
        self.by_kind[slot(kind)].get(key)
    }

    pub(crate) fn iter(&self, kind: MasterDataKind) -> impl Iterator<Item = &HeldRecord> + '_ {
        self.by_kind[slot(kind)].values()
    }

    pub(crate) fn len(&self, kind: MasterDataKind) -> usize {
        self.by_kind[slot(kind)].len()
    }

    /// A consumer applies a record version (integration API). Newer: applied and posted (201).
    /// The same version with the same content: a no-op (200, the receipt of the first application),
    /// under every personality, because the version is the record's natural idempotency key. The
    /// same version with other content, or an older version: 409, never applied.
    pub(crate) fn apply(
        &mut self,
        now: Instant,
        key: Option<&IdempotencyKey>,
        record: &MasterDataRecord,
        ledger: &mut Ledger,
    ) -> Reply {
        let kind = record.kind();
        let map = &mut self.by_kind[slot(kind)];
        if let Some(held) = map.get(&record.key) {
            let have = held.record.version;
            if record.version < have {
                return Reply::problem(
                    ProblemKind::StaleVersion,
                    format!(
                        "{} {} is at version {have}; version {} is older and is not applied",
                        kind.as_str(),
                        record.key,
                        record.version
                    ),
                    Some("version"),
                );
            }
            if record.version == have {
                if held.record.payload != record.payload {
                    return Reply::problem(
                        ProblemKind::StaleVersion,
                        format!(
                            "{} {} version {have} was already applied with other content",
                            kind.as_str(),
                            record.key
                        ),
                        Some("version"),
                    );
                }
                return Reply::unchanged(held.receipt);
            }
        }
        let receipt = ledger.post(
            now,
            Origin::Integration,
            key,
            Posting::MasterDataApplied {
                kind,
                key: record.key.clone(),
                version: record.version,
            },
        );
        map.insert(
            record.key.clone(),
            HeldRecord {
                record: record.clone(),
                at: now,
                receipt,
            },
        );
        Reply::created(receipt)
    }

    /// The owner publishes the next version of a record: posted and emitted as
    /// `MasterDataPublished`. Returns the record as published.
    pub(crate) fn publish(
        &mut self,
        now: Instant,
        key: RecordKey,
        payload: MasterDataPayload,
        ledger: &mut Ledger,
        outbox: &mut Outbox,
        plant: Option<PlantId>,
    ) -> MasterDataRecord {
        let kind = payload.kind();
        let map = &mut self.by_kind[slot(kind)];
        let version = map.get(&key).map_or(1, |h| h.record.version + 1);
        let record = MasterDataRecord::new(key, version, payload).expect("versions start at 1");
        let receipt = ledger.post(
            now,
            Origin::Operator,
            None,
            Posting::MasterDataPublished {
                kind,
                key: record.key.clone(),
                version,
            },
        );
        map.insert(
            record.key.clone(),
            HeldRecord {
                record: record.clone(),
                at: now,
                receipt,
            },
        );
        outbox.emit(EventData::MasterDataPublished(record.clone()), None, plant);
        record
    }
}

/// The reply to a request this system has no capability for.
pub(crate) fn not_mine(system: System, request: &plantloop_core::call::Request) -> Reply {
    Reply::problem(
        ProblemKind::NoSuchCapability,
        format!("{system} has no capability {}", request.name()),
        None,
    )
}
