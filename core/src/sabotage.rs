//! Deliberate defects, each breaking one guarantee of the engine, so that plantloop's tests can
//! show that the invariant checker catches exactly that breakage (`catches_<invariant>` tests in
//! sim/). A defect only takes effect with the cargo feature `sabotage`, which only test builds
//! enable: without it, [`crate::engine::Config::has_defect`] is a constant `false` and the checks
//! compile away.

use serde::{Deserialize, Serialize};

/// One deliberate defect of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EngineDefect {
    /// Ingress forgets event ids: a redelivered event is applied again.
    NoIngressDedupe,
    /// W3 releases the hold as soon as the containment calls are done, without waiting for the
    /// disposition or the work order's completion.
    ReleaseWithoutDisposition,
    /// W1 opens a breakdown work order instead of an emergency one.
    WorkOrderAsBreakdown,
    /// W2 posts the labour cost of a completed work order but not its parts cost.
    PartsCostDropped,
    /// W2 records the maintenance in QMS as soon as CMMS reports the work order created.
    MaintenanceRecordedEarly,
    /// Audit records of postings are not linked into the hash chain.
    AuditUnchained,
    /// W5 keeps the first version a consumer got and drops every newer one as superseded.
    MasterDataStuckOnFirst,
    /// The outbox sends bulk calls before critical ones.
    BulkFirst,
    /// Recovery ignores the journal: a restarted core forgets everything it acknowledged.
    NoJournalReplay,
    /// W3 resumes the station at every release, even while another NC keeps it stopped.
    ResumeWhileContained,
    /// Line controls (station stop / resume) and order-status changes are sent as soon as a
    /// workflow asks, not one at a time per station and per order: an earlier NC's resume can land
    /// after a later NC's stop.
    ControlsUnsequenced,
    /// The registry remembers only the last 8 orders per line, whatever an NC's serials span.
    OrdersForgottenEarly,
    /// A breakdown reported before its station's asset placement is dead-lettered at once and
    /// never applied when the placement arrives.
    BreakdownBeforePlacementLost,
    /// W4 folds every down state into a station's open breakdown, and a breakdown ends only with
    /// CMMS's completion of its work order: a new breakdown that overtakes the completion (or the
    /// old one's machine-up) gets no work order.
    BreakdownFoldedIntoCompleted,
    /// Confirmations dead-lettered because a hold covered their serials are not replayed when the
    /// hold is released.
    HeldConfirmationsNotReplayed,
    /// W3 sets the order resumed at every release, even while another NC's hold covers it.
    OrderResumedUnderOtherHold,
}
