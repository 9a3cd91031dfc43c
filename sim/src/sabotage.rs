//! Deliberate defects of the system under test (feature `sabotage`, test builds only): the
//! engine's ([`EngineDefect`]), a mock's, or the edge agent's. Each `catches_<invariant>` test in
//! `tests/checker_catches.rs` runs a small scenario with one of them and asserts that exactly that
//! invariant reports it — a checker that never fails proves nothing.

pub use plantloop_core::sabotage::EngineDefect;

/// One deliberate defect of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// A defect of the integration engine.
    Engine(EngineDefect),
    /// Every plant's MES acknowledges and records stops but never stops the station.
    MesStopNotEnforced,
    /// Each plant's edge agent buffers at most `capacity` events during a WAN outage and drops
    /// the rest instead of pushing back on the source.
    EdgeDropsWhenFull {
        /// Events the buffer holds.
        capacity: usize,
    },
}
