//! The driver's clock: wall time as the engine's [`Instant`], never going backwards.
//!
//! The engine's time is microseconds since the UNIX epoch (the same origin as the mocks'
//! `clock.rs`), so journaled times stay meaningful across restarts and machines. The wall clock is
//! read once, at start, and raised to the journal's last time if it is behind (a clock stepped back
//! while the service was down); after that the clock advances with the monotonic clock only, so a
//! wall-clock step while running never moves the engine's time backwards.

use plantloop_core::time::Instant;

/// Monotonic microseconds since the UNIX epoch, starting no earlier than a given floor.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
    started: std::time::Instant,
}

/// The wall clock in microseconds since the UNIX epoch (0 before it), for measurements only.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Clock {
    /// A clock reading the wall time now, or `floor` (the journal's last time) if that is later.
    pub fn start(floor: Instant) -> Clock {
        let wall = unix_micros();
        Clock {
            origin: Instant::from_micros(wall).max(floor),
            started: std::time::Instant::now(),
        }
    }

    /// Now, in the engine's time.
    pub fn now(&self) -> Instant {
        let elapsed = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Instant::from_micros(self.origin.as_micros().saturating_add(elapsed))
    }

    /// How long from now until `at` (zero if it is due).
    pub fn until(&self, at: Instant) -> std::time::Duration {
        std::time::Duration::from_micros(at.saturating_since(self.now()).as_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_starts_before_its_floor_and_never_goes_back() {
        let far = Instant::from_secs(10_000_000_000);
        let c = Clock::start(far);
        let a = c.now();
        assert!(a >= far);
        assert!(c.now() >= a);
        let wall = Clock::start(Instant::ZERO).now();
        assert!(wall.as_secs() > 1_700_000_000, "UNIX time, in microseconds");
    }
}
