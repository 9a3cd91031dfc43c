//! The discrete-event kernel: virtual time, one event queue, and seeded random streams.
//!
//! # Time and order
//! [`Kernel`] owns the virtual clock ([`Instant`], microseconds from the start of a run) and a
//! 4-ary heap of pending events. [`Kernel::pop`] delivers the earliest event and moves the clock to its
//! instant; the clock never goes backwards. Events at the same instant are delivered in the order
//! they were scheduled (each carries a sequence number), so a run's order depends only on what the
//! model did, never on heap internals or on the platform.
//!
//! # Cancellation
//! Every scheduled event gets an [`EventId`]. [`Kernel::cancel`] is exact and O(1): the heap entry is
//! left in place but its slot is freed, and the entry is skipped when it reaches the top. Stale
//! entries are purged from the top eagerly and the heap is compacted when they outnumber live ones,
//! so memory stays bounded by [`Kernel::queue_len_max`].
//!
//! # Limits
//! The number of pending events is bounded by a named limit ([`Kernel::queue_len_max`]). Breaching it
//! is a sizing bug in the model: [`Kernel::schedule_at`] panics, [`Kernel::try_schedule_at`] returns
//! [`ScheduleError`] for callers that want to report it.
//!
//! # Randomness
//! [`SeedTree`] turns a run's seed into independent [`SimRng`] streams, one per component, derived
//! from a label with blake3, so adding a component never perturbs the streams of the others.
//! [`SimRng`] draws the distributions the plant model needs (exponential, Bernoulli, log-normal,
//! uniform jitter) with portable arithmetic only: no libm call, so a seed gives bit-identical draws
//! on every platform. Nothing here reads a clock or a global RNG.

use plantloop_core::time::{Duration, Instant};
use rand::{Rng, SeedableRng, TryRng};
use rand_chacha::ChaCha8Rng;
use std::convert::Infallible;
use std::fmt;

/// The default bound on pending events: far above any scenario within the scenario limits, small
/// enough that a runaway model fails fast instead of eating memory.
pub const QUEUE_LEN_MAX_DEFAULT: usize = 1 << 22;

/// Stale (cancelled) heap entries tolerated before a compaction is considered.
const STALE_COMPACT_MIN: usize = 1024;

/// Marks a free slot in [`Kernel`]'s slot table (no live event has this sequence number).
const SLOT_FREE: u64 = u64::MAX;

/// Identifies one scheduled event, for [`Kernel::cancel`] and [`Kernel::is_pending`].
///
/// Only meaningful for the kernel that issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    seq: u64,
    slot: u32,
}

impl EventId {
    /// The event's sequence number: its rank among all events the kernel has scheduled.
    pub fn seq(self) -> u64 {
        self.seq
    }
}

/// Why an event could not be scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The instant lies before the kernel's clock.
    #[error("event at {at} is before now ({now})")]
    InPast {
        /// The requested instant.
        at: Instant,
        /// The kernel's clock.
        now: Instant,
    },
    /// The queue already holds `queue_len_max` pending events.
    #[error("event queue full ({queue_len_max} pending events)")]
    QueueFull {
        /// The kernel's bound.
        queue_len_max: usize,
    },
}

/// A heap entry: 24 bytes, the payload stays in the slot table so sifting moves little.
#[derive(Clone, Copy, Debug)]
struct Entry {
    at: u64,
    seq: u64,
    slot: u32,
}

impl Entry {
    /// The delivery order: instant, then scheduling order.
    #[inline]
    fn key(&self) -> (u64, u64) {
        (self.at, self.seq)
    }
}

/// A 4-ary min-heap on (instant, seq): half the depth of a binary heap, and the four children of a
/// node share a cache line or two.
#[derive(Debug, Default)]
struct QuadHeap {
    v: Vec<Entry>,
}

impl QuadHeap {
    #[inline]
    fn len(&self) -> usize {
        self.v.len()
    }

    #[inline]
    fn peek(&self) -> Option<&Entry> {
        self.v.first()
    }

    #[inline]
    fn push(&mut self, e: Entry) {
        let mut i = self.v.len();
        self.v.push(e);
        while i > 0 {
            let parent = (i - 1) / 4;
            if self.v[parent].key() <= e.key() {
                break;
            }
            self.v[i] = self.v[parent];
            i = parent;
        }
        self.v[i] = e;
    }

    #[inline]
    fn pop(&mut self) -> Option<Entry> {
        let last = self.v.pop()?;
        if self.v.is_empty() {
            return Some(last);
        }
        let top = self.v[0];
        self.sift_down(0, last);
        Some(top)
    }

    /// Places `e` at hole `i` or below, moving smaller children up.
    #[inline]
    fn sift_down(&mut self, mut i: usize, e: Entry) {
        let n = self.v.len();
        loop {
            let first = 4 * i + 1;
            if first >= n {
                break;
            }
            let mut m = first;
            for c in first + 1..(first + 4).min(n) {
                if self.v[c].key() < self.v[m].key() {
                    m = c;
                }
            }
            if self.v[m].key() >= e.key() {
                break;
            }
            self.v[i] = self.v[m];
            i = m;
        }
        self.v[i] = e;
    }

    /// Keeps the entries `keep` accepts and restores the heap order, in O(n).
    fn retain(&mut self, keep: impl FnMut(&Entry) -> bool) {
        self.v.retain(keep);
        for i in (0..self.v.len() / 4 + 1).rev() {
            if i < self.v.len() {
                let e = self.v[i];
                self.sift_down(i, e);
            }
        }
    }
}

/// One slot of the slot table: the live event occupying it, if any.
#[derive(Debug)]
struct Slot<E> {
    /// Sequence number of the live event, or `SLOT_FREE`.
    seq: u64,
    event: Option<E>,
}

/// Virtual time and the pending-event queue of one simulation run, generic over the event payload.
///
/// Methods: getters ([`now`](Self::now), [`len`](Self::len), [`peek_time`](Self::peek_time),
/// [`is_pending`](Self::is_pending), [`events_delivered`](Self::events_delivered)); inputs
/// ([`schedule_at`](Self::schedule_at), [`schedule_in`](Self::schedule_in),
/// [`cancel`](Self::cancel)); and outputs ([`pop`](Self::pop), [`pop_until`](Self::pop_until)),
/// which are the only methods that move the clock, together with [`advance_to`](Self::advance_to).
pub struct Kernel<E> {
    now: Instant,
    heap: QuadHeap,
    /// The payloads of pending events; a heap entry is live while its slot holds its `seq`.
    slots: Vec<Slot<E>>,
    slots_free: Vec<u32>,
    seq_next: u64,
    /// Heap entries whose event was cancelled; they are skipped when they reach the top.
    stale: usize,
    queue_len_max: usize,
    delivered: u64,
}

impl<E> Default for Kernel<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> fmt::Debug for Kernel<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("now", &self.now)
            .field("len", &self.len())
            .field("stale", &self.stale)
            .field("queue_len_max", &self.queue_len_max)
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl<E> Kernel<E> {
    /// An empty kernel at [`Instant::ZERO`] bounded by [`QUEUE_LEN_MAX_DEFAULT`].
    pub fn new() -> Self {
        Self::with_queue_len_max(QUEUE_LEN_MAX_DEFAULT)
    }

    /// An empty kernel at [`Instant::ZERO`] holding at most `queue_len_max` pending events.
    ///
    /// # Panics
    /// If `queue_len_max` is zero or does not fit the slot index (`u32`).
    pub fn with_queue_len_max(queue_len_max: usize) -> Self {
        assert!(queue_len_max > 0, "queue_len_max must be positive");
        assert!(
            queue_len_max < u32::MAX as usize,
            "queue_len_max {queue_len_max} exceeds the slot index"
        );
        Kernel {
            now: Instant::ZERO,
            heap: QuadHeap::default(),
            slots: Vec::new(),
            slots_free: Vec::new(),
            seq_next: 0,
            stale: 0,
            queue_len_max,
            delivered: 0,
        }
    }

    /// The virtual clock: the instant of the last delivered event (or of [`advance_to`](Self::advance_to)).
    #[inline]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The number of pending (scheduled, not yet delivered, not cancelled) events.
    #[inline]
    pub fn len(&self) -> usize {
        self.heap.len() - self.stale
    }

    /// Whether no event is pending.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on pending events.
    pub fn queue_len_max(&self) -> usize {
        self.queue_len_max
    }

    /// How many events have been delivered by [`pop`](Self::pop) so far (cancelled ones excluded).
    pub fn events_delivered(&self) -> u64 {
        self.delivered
    }

    /// The instant of the next event to be delivered, if any.
    #[inline]
    pub fn peek_time(&self) -> Option<Instant> {
        debug_assert!(
            self.heap.peek().is_none_or(|e| self.is_live(e)),
            "stale entry on top"
        );
        self.heap.peek().map(|e| Instant::from_micros(e.at))
    }

    /// Whether the event `id` is still pending (neither delivered nor cancelled).
    pub fn is_pending(&self, id: EventId) -> bool {
        self.slots
            .get(id.slot as usize)
            .is_some_and(|s| s.seq == id.seq)
    }

    /// Schedules `event` at `at`, which may equal [`now`](Self::now) but not precede it.
    ///
    /// # Panics
    /// If `at` is in the past or the queue is full: both are bugs in the model driving the kernel.
    /// Use [`try_schedule_at`](Self::try_schedule_at) to handle them.
    #[inline]
    pub fn schedule_at(&mut self, at: Instant, event: E) -> EventId {
        match self.try_schedule_at(at, event) {
            Ok(id) => id,
            Err(e) => panic!("schedule_at: {e}"),
        }
    }

    /// Schedules `event` after `delay` from now (saturating at [`Instant::MAX`]).
    ///
    /// # Panics
    /// If the queue is full (see [`schedule_at`](Self::schedule_at)).
    #[inline]
    pub fn schedule_in(&mut self, delay: Duration, event: E) -> EventId {
        self.schedule_at(self.now + delay, event)
    }

    /// Schedules `event` after `delay` from now, or says why it cannot.
    #[inline]
    pub fn try_schedule_in(&mut self, delay: Duration, event: E) -> Result<EventId, ScheduleError> {
        self.try_schedule_at(self.now + delay, event)
    }

    /// Schedules `event` at `at`, or says why it cannot (in the past, queue full).
    #[inline]
    pub fn try_schedule_at(&mut self, at: Instant, event: E) -> Result<EventId, ScheduleError> {
        if at < self.now {
            return Err(ScheduleError::InPast { at, now: self.now });
        }
        if self.len() >= self.queue_len_max {
            return Err(ScheduleError::QueueFull {
                queue_len_max: self.queue_len_max,
            });
        }
        let seq = self.seq_next;
        self.seq_next += 1;
        assert!(seq != SLOT_FREE, "sequence numbers exhausted");
        let slot = match self.slots_free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                debug_assert!(s.seq == SLOT_FREE && s.event.is_none());
                s.seq = seq;
                s.event = Some(event);
                slot
            }
            None => {
                self.slots.push(Slot {
                    seq,
                    event: Some(event),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(Entry {
            at: at.as_micros(),
            seq,
            slot,
        });
        debug_assert!(self.slots.len() <= self.queue_len_max);
        Ok(EventId { seq, slot })
    }

    /// Cancels a pending event. Returns `false` if it was already delivered or cancelled.
    pub fn cancel(&mut self, id: EventId) -> bool {
        if !self.is_pending(id) {
            return false;
        }
        let s = &mut self.slots[id.slot as usize];
        s.seq = SLOT_FREE;
        s.event = None;
        self.slots_free.push(id.slot);
        self.stale += 1;
        self.purge_top();
        if self.stale >= STALE_COMPACT_MIN && self.stale > self.heap.len() / 2 {
            self.compact();
        }
        true
    }

    /// Delivers the earliest pending event and moves the clock to its instant.
    #[inline]
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        let entry = self.heap.pop()?;
        let at = Instant::from_micros(entry.at);
        debug_assert!(at >= self.now, "time went backwards");
        let s = &mut self.slots[entry.slot as usize];
        debug_assert_eq!(s.seq, entry.seq, "stale entry on top");
        s.seq = SLOT_FREE;
        let event = s.event.take().expect("a live slot holds its event");
        self.slots_free.push(entry.slot);
        self.now = at;
        self.delivered += 1;
        if self.stale > 0 {
            self.purge_top();
        }
        Some((at, event))
    }

    /// Like [`pop`](Self::pop), but only if the next event is at or before `deadline`; otherwise the
    /// clock and the queue are left unchanged.
    #[inline]
    pub fn pop_until(&mut self, deadline: Instant) -> Option<(Instant, E)> {
        match self.peek_time() {
            Some(at) if at <= deadline => self.pop(),
            _ => None,
        }
    }

    /// Moves the clock forward to `at` without delivering anything (time passing with nothing to
    /// do, e.g. to the end of a run).
    ///
    /// # Panics
    /// If `at` is before now or after the next pending event: delivering that event would then move
    /// the clock backwards.
    pub fn advance_to(&mut self, at: Instant) {
        assert!(at >= self.now, "advance_to {at} is before now {}", self.now);
        if let Some(next) = self.peek_time() {
            assert!(
                at <= next,
                "advance_to {at} skips the event pending at {next}"
            );
        }
        self.now = at;
    }

    fn is_live(&self, entry: &Entry) -> bool {
        self.slots[entry.slot as usize].seq == entry.seq
    }

    /// Drops stale entries from the top so that `peek_time` and `pop` see a live event.
    fn purge_top(&mut self) {
        while let Some(top) = self.heap.peek() {
            if self.is_live(top) {
                break;
            }
            self.heap.pop();
            self.stale -= 1;
        }
    }

    /// Removes every stale entry: O(n), run only when stale entries outnumber live ones.
    fn compact(&mut self) {
        let slots = &self.slots;
        self.heap.retain(|e| slots[e.slot as usize].seq == e.seq);
        self.stale = 0;
    }
}

/// The root of a run's random streams: one seed, many independent labelled streams.
///
/// `SeedTree::new(42).derive("plant/P1/station/P1-L1-S3")` always gives the same stream, whatever
/// other labels are derived and in whatever order; two labels give unrelated streams.
#[derive(Clone, PartialEq, Eq)]
pub struct SeedTree {
    key: [u8; 32],
}

impl fmt::Debug for SeedTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SeedTree({})",
            blake3::Hash::from_bytes(self.key).to_hex()
        )
    }
}

/// blake3 key-derivation context for the root of a seed tree (changing it changes every run).
const SEED_TREE_CONTEXT: &str = "plantloop 2026 sim seed tree v1";
/// Domain-separation prefixes for labels: a stream and a subtree with the same label differ.
const DOMAIN_STREAM: u8 = 0;
const DOMAIN_SUBTREE: u8 = 1;

impl SeedTree {
    /// The tree of a run seed.
    pub fn new(seed: u64) -> Self {
        SeedTree {
            key: blake3::derive_key(SEED_TREE_CONTEXT, &seed.to_le_bytes()),
        }
    }

    fn hash(&self, domain: u8, label: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&[domain]);
        h.update(label.as_bytes());
        *h.finalize().as_bytes()
    }

    /// The seed of the stream named `label`.
    pub fn derive_seed(&self, label: &str) -> [u8; 32] {
        self.hash(DOMAIN_STREAM, label)
    }

    /// The stream named `label`.
    pub fn derive(&self, label: &str) -> SimRng {
        SimRng::from_seed(self.derive_seed(label))
    }

    /// A subtree named `label`, whose streams are independent of this tree's own streams.
    pub fn child(&self, label: &str) -> SeedTree {
        SeedTree {
            key: self.hash(DOMAIN_SUBTREE, label),
        }
    }
}

/// Bound on rejection-sampling loops; reaching it has probability below 2^-100.
const REJECTION_TRIES_MAX: u32 = 64;

/// One component's random stream: ChaCha8 plus the distributions the plant model needs.
///
/// Also a [`rand::Rng`], so `rand`'s own helpers work on it. The distribution methods consume a
/// fixed number of draws where they can (one for [`uniform`](Self::uniform),
/// [`bernoulli`](Self::bernoulli), [`exponential`](Self::exponential), [`jitter`](Self::jitter)),
/// so a change of parameters does not shift the rest of the stream.
#[derive(Clone, Debug)]
pub struct SimRng {
    inner: ChaCha8Rng,
}

impl SimRng {
    /// A stream from a 32-byte seed (normally from [`SeedTree::derive`]).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SimRng {
            inner: ChaCha8Rng::from_seed(seed),
        }
    }

    /// A uniform draw in [0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform draw in (0, 1]: safe to take the logarithm of.
    #[inline]
    fn uniform_open0(&mut self) -> f64 {
        ((self.inner.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in [0, n); `n` must be positive.
    ///
    /// # Panics
    /// If `n` is zero.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        // Lemire's multiply-and-reject: unbiased, usually one draw.
        let threshold = n.wrapping_neg() % n;
        let mut m = self.inner.next_u64() as u128 * n as u128;
        for _ in 0..REJECTION_TRIES_MAX {
            if (m as u64) >= threshold {
                break;
            }
            m = self.inner.next_u64() as u128 * n as u128;
        }
        (m >> 64) as u64
    }

    /// `true` with probability `p` (below 0 never, above 1 always). Always consumes one draw.
    #[inline]
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// An exponential draw with the given mean, in floating point.
    #[inline]
    pub fn exponential_f64(&mut self, mean: f64) -> f64 {
        -mean * ln(self.uniform_open0())
    }

    /// An exponential duration with the given mean (times between failures, repair times),
    /// rounded to the microsecond.
    #[inline]
    pub fn exponential(&mut self, mean: Duration) -> Duration {
        micros(self.exponential_f64(mean.as_micros() as f64))
    }

    /// A standard normal draw (mean 0, standard deviation 1), by Marsaglia's polar method.
    pub fn standard_normal(&mut self) -> f64 {
        for _ in 0..REJECTION_TRIES_MAX {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * ln(s) / s).sqrt();
            }
        }
        0.0
    }

    /// A log-normal duration (network and processing latency): `median × e^(sigma·Z)`, Z standard
    /// normal. The mean is `median × e^(sigma²/2)`.
    pub fn lognormal(&mut self, median: Duration, sigma: f64) -> Duration {
        micros(median.as_micros() as f64 * exp(sigma * self.standard_normal()))
    }

    /// `base` spread uniformly by ± `fraction` of itself (`fraction` clamped to [0, 1]): retry
    /// backoff jitter, order-size spread.
    #[inline]
    pub fn jitter(&mut self, base: Duration, fraction: f64) -> Duration {
        let f = fraction.clamp(0.0, 1.0);
        micros(base.as_micros() as f64 * (1.0 + f * (2.0 * self.uniform() - 1.0)))
    }

    /// A uniform duration in [lo, hi); `lo` if the range is empty.
    pub fn uniform_duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.as_micros().saturating_sub(lo.as_micros());
        if span == 0 {
            return lo;
        }
        Duration::from_micros(lo.as_micros() + self.below(span))
    }
}

impl TryRng for SimRng {
    type Error = Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.inner.next_u32())
    }

    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.inner.next_u64())
    }

    #[inline]
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.inner.fill_bytes(dst);
        Ok(())
    }
}

/// Rounds a non-negative microsecond count to a duration (negative and NaN give zero, huge values
/// saturate). Adds ½ and truncates rather than calling `f64::round`, which is a libm call on
/// baseline x86-64.
#[inline]
fn micros(us: f64) -> Duration {
    Duration::from_micros((us + 0.5) as u64)
}

/// ln 2 split fdlibm-style: the high part has trailing zero bits so `k × LN2_HI` is exact.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// ln 2 − `LN2_HI`.
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// `ln` is reduced to [1, 2), then to a subinterval of width 1/`LN_TABLE_LEN` starting at
/// `c = 1 + i/LN_TABLE_LEN`, whose logarithm comes from this table.
const LN_TABLE_BITS: u32 = 6;
const LN_TABLE_LEN: usize = 1 << LN_TABLE_BITS;

/// `ln(1 + i/64)` for i in 0..64, computed at compile time by [`ln_slow`] (const-evaluated float
/// arithmetic is IEEE, so the table is the same on every build).
const LN_TABLE: [f64; LN_TABLE_LEN] = {
    let mut t = [0.0; LN_TABLE_LEN];
    let mut i = 0;
    while i < LN_TABLE_LEN {
        t[i] = ln_slow(1.0 + i as f64 / LN_TABLE_LEN as f64);
        i += 1;
    }
    t
};

/// `ln(c)` for c in [1, 2) by the atanh series around √½…√2 with many terms: slow, accurate, const.
const fn ln_slow(c: f64) -> f64 {
    let (m, e) = if c > std::f64::consts::SQRT_2 {
        (c * 0.5, 1.0)
    } else {
        (c, 0.0)
    };
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let mut poly = 0.0;
    let mut k = 30;
    while k >= 1 {
        poly = poly * z + 1.0 / (2 * k + 1) as f64;
        k -= 1;
    }
    e * LN2_HI + (e * LN2_LO + (2.0 * s + 2.0 * s * z * poly))
}

/// Natural logarithm from IEEE basic operations only, so results are identical on every platform
/// (libm's `ln` may differ in the last bit between C libraries). Accurate to about an ulp of the
/// larger of the result and 1. Non-positive input gives `-inf`/NaN like `f64::ln`.
#[inline]
pub fn ln(x: f64) -> f64 {
    if !(x > 0.0 && x < f64::INFINITY) {
        return if x == 0.0 {
            f64::NEG_INFINITY
        } else if x == f64::INFINITY {
            f64::INFINITY
        } else {
            f64::NAN
        };
    }
    const FRAC_MASK: u64 = (1u64 << 52) - 1;
    let (mut bits, mut e) = (x.to_bits(), 0i64);
    if bits >> 52 == 0 {
        // Subnormal: scale into the normal range first (exact).
        bits = (x * (1u64 << 54) as f64).to_bits();
        e -= 54;
    }
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let frac = bits & FRAC_MASK;
    let m = f64::from_bits(frac | (1023u64 << 52)); // in [1, 2)
    let i = (frac >> (52 - LN_TABLE_BITS)) as usize;
    let c = 1.0 + i as f64 / LN_TABLE_LEN as f64; // exact
    // ln m = ln c + 2 atanh(s), s = (m − c)/(m + c), |s| < 2⁻⁷: five terms reach 2⁻⁸⁰.
    let s = (m - c) / (m + c);
    let z = s * s;
    let poly = z * (1.0 / 3.0 + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z * (1.0 / 9.0))));
    let ln_m = LN_TABLE[i] + (2.0 * s + 2.0 * s * poly);
    let ef = e as f64;
    ef * LN2_HI + (ef * LN2_LO + ln_m)
}

/// 1/n! for n in 0..=17, the Taylor coefficients of [`exp`], computed at compile time.
const INV_FACTORIAL: [f64; 18] = {
    let mut t = [1.0; 18];
    let mut n = 1;
    while n < 18 {
        t[n] = t[n - 1] / n as f64;
        n += 1;
    }
    t
};

/// `e^x` from IEEE basic operations only (see [`ln`]). Accurate to a few ulp.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x > 709.782_712_893_384 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    // Round to nearest by truncation of ±½ (no libm call).
    let t = x * std::f64::consts::LOG2_E;
    let k = (if t < 0.0 { t - 0.5 } else { t + 0.5 }) as i32;
    let kf = k as f64;
    let r = (x - kf * LN2_HI) - kf * LN2_LO; // |r| ≤ 0.35: 17 terms reach 2⁻⁶⁰
    let mut sum = INV_FACTORIAL[17];
    let mut n = 17;
    while n > 0 {
        n -= 1;
        sum = sum * r + INV_FACTORIAL[n];
    }
    scale_pow2(sum, k)
}

/// `y × 2^k` by exponent arithmetic, in steps that stay in the normal range.
fn scale_pow2(mut y: f64, mut k: i32) -> f64 {
    let pow2 = |k: i32| f64::from_bits(((k + 1023) as u64) << 52);
    while k > 1023 {
        y *= pow2(1023);
        k -= 1023;
    }
    while k < -1022 {
        y *= pow2(-1022);
        k += 1022;
    }
    y * pow2(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_instant_pops_in_insertion_order() {
        let mut k = Kernel::new();
        let t = Instant::from_secs(5);
        for i in 0..100u32 {
            // Interleave two instants; the later one is scheduled first half the time.
            k.schedule_at(if i % 2 == 0 { t } else { Instant::from_secs(3) }, i);
        }
        let mut got = Vec::new();
        while let Some((at, i)) = k.pop() {
            got.push((at, i));
        }
        let mut want: Vec<_> = (0..100u32)
            .map(|i| (if i % 2 == 0 { t } else { Instant::from_secs(3) }, i))
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(k.now(), t);
        assert_eq!(k.events_delivered(), 100);
    }

    #[test]
    fn cancel_is_exact() {
        let mut k = Kernel::new();
        let a = k.schedule_in(Duration::from_secs(1), 'a');
        let b = k.schedule_in(Duration::from_secs(2), 'b');
        assert!(k.cancel(a));
        assert!(!k.cancel(a), "second cancel");
        assert_eq!(k.len(), 1);
        assert_eq!(k.peek_time(), Some(Instant::from_secs(2)));
        // The slot is reused; the stale id must not cancel the newcomer.
        let c = k.schedule_in(Duration::from_secs(3), 'c');
        assert!(!k.cancel(a));
        assert!(k.is_pending(c));
        assert_eq!(k.pop(), Some((Instant::from_secs(2), 'b')));
        assert!(!k.cancel(b), "delivered");
        assert_eq!(k.pop(), Some((Instant::from_secs(3), 'c')));
        assert_eq!(k.pop(), None);
    }

    #[test]
    fn scheduling_in_the_past_or_beyond_the_bound_is_refused() {
        let mut k = Kernel::with_queue_len_max(2);
        k.schedule_at(Instant::from_secs(10), 0);
        k.pop();
        assert_eq!(
            k.try_schedule_at(Instant::from_secs(9), 1),
            Err(ScheduleError::InPast {
                at: Instant::from_secs(9),
                now: Instant::from_secs(10)
            })
        );
        k.schedule_in(Duration::ZERO, 1);
        k.schedule_in(Duration::ZERO, 2);
        assert_eq!(
            k.try_schedule_in(Duration::ZERO, 3),
            Err(ScheduleError::QueueFull { queue_len_max: 2 })
        );
    }

    #[test]
    #[should_panic(expected = "queue full")]
    fn schedule_at_asserts_the_bound() {
        let mut k = Kernel::with_queue_len_max(1);
        k.schedule_in(Duration::ZERO, ());
        k.schedule_in(Duration::ZERO, ());
    }

    #[test]
    fn mass_cancellation_compacts_the_heap() {
        let mut k = Kernel::new();
        let ids: Vec<_> = (0..10_000u64)
            .map(|i| k.schedule_at(Instant::from_secs(i + 1), i))
            .collect();
        for id in &ids[1..] {
            assert!(k.cancel(*id));
        }
        assert_eq!(k.len(), 1);
        assert!(
            k.heap.len() < 3 * STALE_COMPACT_MIN,
            "heap holds {} entries",
            k.heap.len()
        );
        assert_eq!(k.pop(), Some((Instant::from_secs(1), 0)));
        assert_eq!(k.pop(), None);
    }

    #[test]
    fn pop_until_and_advance_to_respect_the_next_event() {
        let mut k = Kernel::new();
        k.schedule_at(Instant::from_secs(10), ());
        assert_eq!(k.pop_until(Instant::from_secs(9)), None);
        assert_eq!(k.now(), Instant::ZERO);
        k.advance_to(Instant::from_secs(10));
        assert_eq!(
            k.pop_until(Instant::from_secs(10)),
            Some((Instant::from_secs(10), ()))
        );
        k.advance_to(Instant::from_secs(20));
        assert_eq!(k.now(), Instant::from_secs(20));
    }

    #[test]
    fn derived_streams_are_reproducible_and_independent() {
        let t = SeedTree::new(42);
        let a1: Vec<u64> = (0..8)
            .map({
                let mut r = t.derive("plant/P1/station/P1-L1-S3");
                move |_| r.next_u64()
            })
            .collect();
        // Deriving other labels first changes nothing.
        let _ = SeedTree::new(42)
            .derive("plant/P1/station/P1-L1-S1")
            .next_u64();
        let mut r = SeedTree::new(42).derive("plant/P1/station/P1-L1-S3");
        let a2: Vec<u64> = (0..8).map(|_| r.next_u64()).collect();
        assert_eq!(a1, a2);
        let mut other = t.derive("plant/P1/station/P1-L1-S4");
        assert_ne!(a1[0], other.next_u64());
        let mut reseeded = SeedTree::new(43).derive("plant/P1/station/P1-L1-S3");
        assert_ne!(a1[0], reseeded.next_u64());
        assert_ne!(t.child("x").derive_seed("y"), t.derive_seed("x/y"));
        assert_ne!(
            t.child("x").key,
            t.derive_seed("x"),
            "stream and subtree domains differ"
        );
    }

    const PINNED_EXP_US: u64 = 861_167_824;

    #[test]
    fn derived_stream_is_pinned() {
        // Changing the derivation changes every recorded run: this must be a deliberate act.
        let mut r = SeedTree::new(42).derive("plant/P1");
        let first = r.next_u64();
        let mut again = SimRng::from_seed(SeedTree::new(42).derive_seed("plant/P1"));
        assert_eq!(first, again.next_u64());
        assert_eq!(format!("{first:016x}"), "d347abbe81afe973");
        // The portable math is pinned too: an exponential draw must not move between platforms.
        assert_eq!(
            r.exponential(Duration::from_hours(1)).as_micros(),
            PINNED_EXP_US
        );
    }

    fn mean(xs: impl Iterator<Item = f64>) -> (f64, usize) {
        let (mut s, mut n) = (0.0, 0usize);
        for x in xs {
            s += x;
            n += 1;
        }
        (s / n as f64, n)
    }

    const SAMPLES: usize = 200_000;

    #[test]
    fn exponential_mean_is_within_tolerance() {
        let mut r = SeedTree::new(1).derive("exp");
        let mtbf = Duration::from_hours(200);
        let (m, _) = mean((0..SAMPLES).map(|_| r.exponential(mtbf).as_secs_f64()));
        let want = mtbf.as_secs_f64();
        assert!((m / want - 1.0).abs() < 0.015, "mean {m} vs {want}");
    }

    #[test]
    fn bernoulli_rate_is_within_tolerance() {
        let mut r = SeedTree::new(2).derive("bern");
        let hits = (0..SAMPLES).filter(|_| r.bernoulli(0.3)).count();
        let p = hits as f64 / SAMPLES as f64;
        assert!((p - 0.3).abs() < 0.005, "p {p}");
        assert!((0..1000).all(|_| !r.bernoulli(0.0)));
        assert!((0..1000).all(|_| r.bernoulli(1.0)));
    }

    #[test]
    fn normal_and_lognormal_moments_are_within_tolerance() {
        let mut r = SeedTree::new(3).derive("norm");
        let zs: Vec<f64> = (0..SAMPLES).map(|_| r.standard_normal()).collect();
        let (m, n) = mean(zs.iter().copied());
        let var = zs.iter().map(|z| (z - m) * (z - m)).sum::<f64>() / (n - 1) as f64;
        assert!(m.abs() < 0.01, "mean {m}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");

        let median = Duration::from_millis(200);
        let sigma = 0.5;
        let xs: Vec<f64> = (0..SAMPLES)
            .map(|_| r.lognormal(median, sigma).as_secs_f64())
            .collect();
        let below = xs.iter().filter(|&&x| x < 0.2).count() as f64 / SAMPLES as f64;
        assert!(
            (below - 0.5).abs() < 0.005,
            "share below the median {below}"
        );
        let (m, _) = mean(xs.iter().copied());
        let want = 0.2 * (sigma * sigma / 2.0f64).exp();
        assert!((m / want - 1.0).abs() < 0.01, "mean {m} vs {want}");
    }

    #[test]
    fn jitter_and_uniform_stay_in_range_with_the_right_mean() {
        let mut r = SeedTree::new(4).derive("jit");
        let base = Duration::from_secs(10);
        let xs: Vec<f64> = (0..SAMPLES)
            .map(|_| r.jitter(base, 0.2).as_secs_f64())
            .collect();
        assert!(xs.iter().all(|&x| (8.0..=12.0).contains(&x)));
        let (m, _) = mean(xs.into_iter());
        assert!((m - 10.0).abs() < 0.02, "mean {m}");
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
        let (lo, hi) = (Duration::from_secs(1), Duration::from_secs(2));
        assert!(
            (0..1000)
                .map(|_| r.uniform_duration(lo, hi))
                .all(|d| d >= lo && d < hi)
        );
        assert_eq!(r.uniform_duration(hi, lo), hi);
    }

    #[test]
    fn portable_ln_and_exp_match_libm_closely() {
        let mut r = SeedTree::new(5).derive("math");
        for _ in 0..100_000 {
            // Log-uniform over the whole positive range, including subnormals.
            let x = f64::from_bits(r.below(0x7fe0_0000_0000_0000) + 1);
            let (ours, std) = (ln(x), x.ln());
            assert!(
                (ours - std).abs() <= 4.0 * f64::EPSILON * std.abs().max(1.0),
                "ln({x:e}) {ours} vs {std}"
            );
            let y = (r.uniform() - 0.5) * 1400.0;
            let (ours, std) = (exp(y), y.exp());
            assert!(
                (ours - std).abs() <= 4.0 * f64::EPSILON * std,
                "exp({y}) {ours:e} vs {std:e}"
            );
        }
        assert_eq!(ln(1.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert_eq!(exp(-1000.0), 0.0);
    }
}
