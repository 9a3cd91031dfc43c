//! plantloop's deterministic simulator: the discrete-event kernel ([`kernel`]), the scenario loader
//! ([`scenario`]), the plant model ([`plant`]) and the simulation driver with its network and fault
//! models ([`world`]), the ground-truth invariant checker ([`checker`]), the runner and its report
//! ([`runner`], [`report`]), and swarm exploration with shrinking ([`explore`]).
//!
//! Everything here is reproducible from a seed: virtual time only ([`kernel::Kernel`]), random
//! streams derived per component from the run's seed ([`kernel::SeedTree`]), no wall clock, no global
//! RNG, no iteration over unordered collections where order could leak into a run.
//!
//! A run can also be driven piece by piece and watched ([`live`], [`observe`]): the live view
//! steps it, injects faults (recorded in the trace, so the run replays) and reads snapshots built
//! from the same ground truth as the checker, without changing the run.

pub mod checker;
pub mod explore;
pub mod kernel;
pub mod live;
pub mod observe;
pub mod plant;
pub mod report;
pub mod runner;
#[cfg(feature = "sabotage")]
pub mod sabotage;
pub mod scenario;
pub mod world;
