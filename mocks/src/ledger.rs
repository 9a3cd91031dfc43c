//! The ledger: every posting a mock accepted, in order, with the idempotency key it came with.
//!
//! The invariant checker judges a run from ledgers (and the plant's physical record), never from the
//! engine's claims. So a ledger records everything a system of record did that a rule can be about:
//! postings made through the integration API ([`Origin::Integration`]) and the facts its own users
//! created through the operator API ([`Origin::Operator`]: an order released, an NC raised, a
//! disposition approved, a work order completed, …). Duplicates are never suppressed here: whatever
//! a system posted twice appears twice.

use crate::reply::Receipt;
use plantloop_core::call::IdempotencyKey;
use plantloop_core::time::Instant;
use plantloop_core::*;
use serde::{Deserialize, Serialize};

/// Who made a posting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A request through the integration API (`apply`), i.e. from the core.
    Integration,
    /// The system's own users or the plant, through the operator API.
    Operator,
}

/// One accepted posting.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// 1, 2, 3, … in posting order; also the receipt's number.
    pub seq: u64,
    pub at: Instant,
    pub origin: Origin,
    /// The Idempotency-Key the request carried (its external reference), if any.
    pub key: Option<IdempotencyKey>,
    pub receipt: Receipt,
    pub posting: Posting,
}

/// What was posted. One variant per business fact; the payloads are exactly what was posted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Posting {
    // --- ERP, integration ---
    /// A quality hold on the serials of an order.
    HoldPosted(Hold),
    /// A hold released with the disposition's usage decision.
    HoldReleased {
        hold: HoldId,
        order: OrderId,
        serials: SerialRange,
        nc: NcId,
        decision: DispositionDecision,
    },
    /// A production order's status changed (or, for a legacy system, was set again).
    OrderStatusSet {
        order: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        reason: String,
    },
    /// A goods issue or receipt.
    GoodsMoved(GoodsMovement),
    /// A maintenance cost posting, in exact cents.
    CostPosted(CostPosting),
    /// A production confirmation; it includes the goods receipt of the `good` units.
    ProductionConfirmed(ProductionConfirmation),
    // --- ERP, operator ---
    /// ERP released a production order (emitted `OrderReleased`).
    OrderReleased(ProductionOrder),
    // --- CMMS ---
    /// A work order created by the core (boxed: large and rare).
    WorkOrderCreated(Box<MaintenanceWorkOrder>),
    /// A technician started the work order (operator).
    WorkOrderStarted { work_order: WorkOrderId },
    /// The work order was completed with what CMMS recorded (operator; boxed: large and rare).
    WorkOrderCompleted(Box<WorkOrderCompletion>),
    /// A downtime classified by CMMS (operator).
    DowntimeClassified(DowntimeEvent),
    // --- MES ---
    /// A station stopped by a line-control command.
    StationStopped {
        station: StationId,
        reason: String,
        /// The NC the stop serves, as the command named it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nc: Option<NcId>,
    },
    /// A station resumed by a line-control command.
    StationResumed {
        station: StationId,
        reason: String,
        /// The NC whose release the resume serves, as the command named it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nc: Option<NcId>,
    },
    /// A production order downloaded to its line.
    OrderDispatched { order: OrderId, line: LineId },
    // --- QMS ---
    /// Maintenance facts recorded against an NC.
    MaintenanceRecorded {
        nc: NcId,
        work_order: WorkOrderId,
        root_cause: String,
    },
    /// QMS raised an NC (operator: detected from inspection results).
    NcCreated(Nonconformance),
    /// The NC's containment was confirmed (operator).
    NcContained { nc: NcId },
    /// A disposition was approved (operator).
    DispositionApproved(Disposition),
    /// A deviation was opened for an asset-related NC.
    DeviationOpened { deviation: String, nc: NcId },
    /// The deviation was closed (maintenance recorded).
    DeviationClosed { deviation: String, nc: NcId },
    /// A CAPA was opened for an asset-related NC.
    CapaOpened { capa: CapaId, nc: NcId },
    /// The CAPA was closed (maintenance recorded and disposition approved).
    CapaClosed { capa: CapaId, nc: NcId },
    /// The NC was closed.
    NcClosed { nc: NcId },
    // --- master data, any system ---
    /// A consumer applied a master-data record version (integration).
    MasterDataApplied {
        kind: MasterDataKind,
        key: RecordKey,
        version: u64,
    },
    /// The owner published a master-data record version (operator).
    MasterDataPublished {
        kind: MasterDataKind,
        key: RecordKey,
        version: u64,
    },
}

/// The fieldless twin of [`Posting`], to filter and count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingKind {
    HoldPosted,
    HoldReleased,
    OrderStatusSet,
    GoodsMoved,
    CostPosted,
    ProductionConfirmed,
    OrderReleased,
    WorkOrderCreated,
    WorkOrderStarted,
    WorkOrderCompleted,
    DowntimeClassified,
    StationStopped,
    StationResumed,
    OrderDispatched,
    MaintenanceRecorded,
    NcCreated,
    NcContained,
    DispositionApproved,
    DeviationOpened,
    DeviationClosed,
    CapaOpened,
    CapaClosed,
    NcClosed,
    MasterDataApplied,
    MasterDataPublished,
}

impl Posting {
    /// The kind of this posting.
    pub fn kind(&self) -> PostingKind {
        match self {
            Posting::HoldPosted(_) => PostingKind::HoldPosted,
            Posting::HoldReleased { .. } => PostingKind::HoldReleased,
            Posting::OrderStatusSet { .. } => PostingKind::OrderStatusSet,
            Posting::GoodsMoved(_) => PostingKind::GoodsMoved,
            Posting::CostPosted(_) => PostingKind::CostPosted,
            Posting::ProductionConfirmed(_) => PostingKind::ProductionConfirmed,
            Posting::OrderReleased(_) => PostingKind::OrderReleased,
            Posting::WorkOrderCreated(_) => PostingKind::WorkOrderCreated,
            Posting::WorkOrderStarted { .. } => PostingKind::WorkOrderStarted,
            Posting::WorkOrderCompleted(_) => PostingKind::WorkOrderCompleted,
            Posting::DowntimeClassified(_) => PostingKind::DowntimeClassified,
            Posting::StationStopped { .. } => PostingKind::StationStopped,
            Posting::StationResumed { .. } => PostingKind::StationResumed,
            Posting::OrderDispatched { .. } => PostingKind::OrderDispatched,
            Posting::MaintenanceRecorded { .. } => PostingKind::MaintenanceRecorded,
            Posting::NcCreated(_) => PostingKind::NcCreated,
            Posting::NcContained { .. } => PostingKind::NcContained,
            Posting::DispositionApproved(_) => PostingKind::DispositionApproved,
            Posting::DeviationOpened { .. } => PostingKind::DeviationOpened,
            Posting::DeviationClosed { .. } => PostingKind::DeviationClosed,
            Posting::CapaOpened { .. } => PostingKind::CapaOpened,
            Posting::CapaClosed { .. } => PostingKind::CapaClosed,
            Posting::NcClosed { .. } => PostingKind::NcClosed,
            Posting::MasterDataApplied { .. } => PostingKind::MasterDataApplied,
            Posting::MasterDataPublished { .. } => PostingKind::MasterDataPublished,
        }
    }
}

/// An append-only list of [`LedgerEntry`]s of one system.
#[derive(Clone, Debug)]
pub struct Ledger {
    system: System,
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// An empty ledger of `system`.
    pub fn new(system: System) -> Ledger {
        Ledger {
            system,
            entries: Vec::new(),
        }
    }

    /// A ledger holding `entries`, as a system served them (`GET /ledger`): for checkers that
    /// judge mock servers over HTTP.
    pub fn from_entries(system: System, entries: Vec<LedgerEntry>) -> Ledger {
        Ledger { system, entries }
    }

    /// The system whose ledger this is.
    pub fn system(&self) -> System {
        self.system
    }

    /// Every entry, in posting order.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was posted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<&LedgerEntry> {
        self.entries.last()
    }

    /// The entry that issued `receipt`.
    pub fn by_receipt(&self, receipt: Receipt) -> Option<&LedgerEntry> {
        if receipt.system != self.system || receipt.number == 0 {
            return None;
        }
        self.entries.get(receipt.number as usize - 1)
    }

    /// Entries of one kind, in order.
    pub fn of_kind(&self, kind: PostingKind) -> impl Iterator<Item = &LedgerEntry> + '_ {
        self.entries
            .iter()
            .filter(move |e| e.posting.kind() == kind)
    }

    /// Number of entries of one kind.
    pub fn count(&self, kind: PostingKind) -> usize {
        self.of_kind(kind).count()
    }

    /// Entries that carried `key` (linear scan; build an index for bulk checks).
    pub fn with_key<'a>(
        &'a self,
        key: &'a IdempotencyKey,
    ) -> impl Iterator<Item = &'a LedgerEntry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.key.as_ref() == Some(key))
    }

    /// Entries made through the integration API.
    pub fn integration(&self) -> impl Iterator<Item = &LedgerEntry> + '_ {
        self.entries
            .iter()
            .filter(|e| e.origin == Origin::Integration)
    }

    /// Appends a posting and returns its receipt.
    pub(crate) fn post(
        &mut self,
        at: Instant,
        origin: Origin,
        key: Option<&IdempotencyKey>,
        posting: Posting,
    ) -> Receipt {
        let seq = self.entries.len() as u64 + 1;
        let receipt = Receipt {
            system: self.system,
            number: seq,
        };
        self.entries.push(LedgerEntry {
            seq,
            at,
            origin,
            key: key.cloned(),
            receipt,
            posting,
        });
        receipt
    }
}

#[cfg(test)]
mod tests {
    /// Entries are copied when the ledger grows: keep them small (the simulator posts millions).
    #[test]
    fn entries_stay_small() {
        assert!(
            size_of::<super::Posting>() <= 120,
            "{}",
            size_of::<super::Posting>()
        );
        assert!(
            size_of::<super::LedgerEntry>() <= 184,
            "{}",
            size_of::<super::LedgerEntry>()
        );
    }
}
