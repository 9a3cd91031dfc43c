//! The wall clock, read only here: this crate is a driver, the state machines take time as input.

use plantloop_core::Instant;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as the tokio driver counts time: microseconds since the UNIX epoch.
pub fn now() -> Instant {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

/// Seconds since the UNIX epoch, for webhook signatures.
pub fn unix_secs() -> u64 {
    now().as_secs()
}
