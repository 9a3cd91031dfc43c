//! plantloop's integration core: the canonical model, the CloudEvents envelope and the sans-IO
//! integration engine.
//!
//! Everything here is deterministic. Nothing reads a clock, sleeps, opens a socket, touches a file or
//! draws from a global RNG: time and inputs come in through [`engine::Engine::handle`], calls to make
//! come out of [`engine::Engine::poll_command`]. Two drivers run the same engine: the simulator
//! (`plantloop-sim`, virtual time) and the tokio driver (`plantloop-server`, wall clock).

pub mod audit;
pub mod call;
pub mod durable;
pub mod engine;
pub mod event;
pub mod journal;
pub mod model;
pub mod money;
pub mod sabotage;
pub mod time;

pub use model::*;
pub use money::Money;
pub use time::{Duration, Instant};
