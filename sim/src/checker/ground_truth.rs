//! [`GroundTruth`]: everything the checker may look at, and nothing more.
//!
//! A verdict must not depend on what the engine believes it did. The checker therefore never sees
//! the [`World`] (which owns the core): it sees the mock systems (their ledgers and state), the
//! plant's physical record, what each source system emitted, and the outputs an operator of the
//! core sees — the audit log as its sink stored it and the dead-letter queue, copied out. A check
//! that wanted the engine would not compile.

use crate::plant::Plant;
use crate::scenario::Scenario;
use crate::world::{Emitted, KeyOrigin, World};
use plantloop_core::audit::AuditRecord;
use plantloop_core::call::{EventRef, IdempotencyKey, Request};
use plantloop_core::engine::DeadLetterReason;
use plantloop_core::model::{AssetId, ProductionConfirmation, StationId};
use plantloop_core::time::Instant;
use plantloop_mocks::Ledger;
use plantloop_mocks::cmms::Cmms;
use plantloop_mocks::erp::Erp;
use plantloop_mocks::mes::Mes;
use plantloop_mocks::qms::Qms;
use rustc_hash::FxHashMap;

/// One dead letter as the operator's queue shows it.
#[derive(Clone, Debug)]
pub struct DeadLetterCopy {
    pub id: u64,
    pub at: Instant,
    pub reason: DeadLetterReason,
    /// The source event whose workflow it belongs to.
    pub origin: EventRef,
    /// The refused or failed call, if the letter is a call.
    pub request: Option<Request>,
}

/// What a finished (or running) simulation offers the checker.
pub struct GroundTruth<'a> {
    /// The scenario: what to check, the SLOs.
    pub scenario: &'a Scenario,
    pub erp: &'a Erp,
    pub qms: &'a Qms,
    pub cmms: &'a Cmms,
    /// One MES per plant, in the order of `plant.plants`.
    pub mes: &'a [Mes],
    /// The plant: its layout and physical record (breakdowns, repairs, units made).
    pub plant: &'a Plant,
    /// Every event a source system emitted, and whether the core acknowledged it.
    pub emitted: &'a FxHashMap<EventRef, Emitted>,
    /// The source event behind each idempotency key seen on the wire.
    pub key_origins: &'a FxHashMap<IdempotencyKey, KeyOrigin>,
    /// Every production confirmation MES emitted.
    pub confirmations_emitted: &'a [(EventRef, ProductionConfirmation)],
    /// The audit log as the core's sink stored it.
    pub audit: &'a [AuditRecord],
    /// The dead-letter queue at the end, or `None` when the core is down then (nothing to ask).
    pub dead_letters: Option<Vec<DeadLetterCopy>>,
}

impl World {
    /// The ground truth of this run as it stands, for [`super::check`].
    pub fn ground_truth(&self) -> GroundTruth<'_> {
        GroundTruth {
            scenario: &self.scenario,
            erp: &self.erp,
            qms: &self.qms,
            cmms: &self.cmms,
            mes: &self.mes,
            plant: &self.plant,
            emitted: &self.emitted,
            key_origins: &self.key_origins,
            confirmations_emitted: &self.confirmations_emitted,
            audit: &self.audit,
            dead_letters: self.engine().map(|e| {
                e.dead_letters()
                    .map(|d| DeadLetterCopy {
                        id: d.id,
                        at: d.at,
                        reason: d.reason.clone(),
                        origin: d.origin.clone(),
                        request: d.request.clone(),
                    })
                    .collect()
            }),
        }
    }
}

/// The ledgers of a run alone, and where each asset stands: what the ledger-only checks
/// ([`super::check_ledgers`]) judge. A simulation has it from its [`GroundTruth`]; a test of mock
/// servers over HTTP builds it from their `GET /ledger` answers ([`Ledger::from_entries`]).
pub struct LedgerTruth<'a> {
    pub erp: &'a Ledger,
    pub qms: &'a Ledger,
    pub cmms: &'a Ledger,
    /// One MES ledger per plant, with a name for reports (`mes:P1`).
    pub mes: Vec<(String, &'a Ledger)>,
    /// The asset at each station (for the emergency work order an NC's containment needs).
    pub assets: FxHashMap<StationId, AssetId>,
}

impl<'a> GroundTruth<'a> {
    /// The ledger-only view of this ground truth.
    pub fn ledger_truth(&self) -> LedgerTruth<'a> {
        LedgerTruth {
            erp: self.erp.ledger(),
            qms: self.qms.ledger(),
            cmms: self.cmms.ledger(),
            mes: self
                .mes
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("mes:{}", self.plant.plants[i].id), m.ledger()))
                .collect(),
            assets: self
                .plant
                .stations
                .iter()
                .map(|s| (s.id.clone(), s.asset.clone()))
                .collect(),
        }
    }
}
