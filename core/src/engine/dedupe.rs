//! The dedupe window: the events accepted recently, by CloudEvents source and id.
//!
//! Every event probes it once and every accepted one stays in it for the window (a week by
//! default, up to millions of entries), so it is laid out for that: the references sit in one ring
//! in acceptance order, which is also the order they expire in, and the hash index holds only an
//! 8-byte slot per entry (a 32-bit hash tag and the entry's position). A probe compares tags in
//! the index and reads the ring only on a tag match, so a new event (nearly every one) touches no
//! string; growing the index rehashes tags, not strings. The match itself is exact: source and id
//! are compared, so no digest collision can make a new event pass for a duplicate.
//!
//! An expired entry's slot is not looked up and removed (in a window of millions, that costs a
//! cache miss or two per event): it stays in the index, stale, until the index is full, and is
//! then swept out with the others in one pass over the table. A stale slot points before the
//! ring's front, so a probe never takes it for a live entry.
//!
//! The ring is a queue of fixed-size blocks ([`BlockQueue`]): it grows a block at a time, never
//! copying what it holds (a `VecDeque` of millions of entries would copy them all, and touch twice
//! the memory, at every doubling), and a block emptied by expiry is reused for the next one.
//! An entry is 24 bytes: its time and where its text is. The texts themselves (source then id) are
//! the window's own copies, appended in the same order to blocks of bytes ([`TextArena`]), so an
//! expiry frees nothing and touches no reference count, and a block of texts goes as a whole.

use crate::call::{EventRef, EventRefWire};
use crate::time::{Duration, Instant};
use hashbrown::HashTable;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

/// The most entries a window holds, whatever its configuration: a quarter of the sequence
/// numbers a slot can tell apart, so that stale slots never alias live ones.
const ENTRIES_MAX: usize = (u32::MAX / 4) as usize;

/// Entries in one block of a [`BlockQueue`] (24 KiB of dedupe entries).
const BLOCK: usize = 1_024;

/// A FIFO queue stored in blocks of [`BLOCK`] entries: pushing never moves what is queued, and
/// the memory of a block emptied at the front is reused at the back.
#[derive(Clone)]
pub(super) struct BlockQueue<T> {
    /// Every block holds [`BLOCK`] entries but the first (entries popped from its front) and the
    /// last (still filling). Each is a `VecDeque` of capacity [`BLOCK`] that never grows.
    blocks: VecDeque<VecDeque<T>>,
    len: usize,
    /// An emptied block, kept for the next one.
    spare: Option<VecDeque<T>>,
}

impl<T> Default for BlockQueue<T> {
    fn default() -> Self {
        BlockQueue {
            blocks: VecDeque::new(),
            len: 0,
            spare: None,
        }
    }
}

impl<T> BlockQueue<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push_back(&mut self, value: T) {
        if self.blocks.back().is_none_or(|b| b.len() == BLOCK) {
            let block = self
                .spare
                .take()
                .unwrap_or_else(|| VecDeque::with_capacity(BLOCK));
            self.blocks.push_back(block);
        }
        self.blocks
            .back_mut()
            .expect("just ensured")
            .push_back(value);
        self.len += 1;
    }

    pub fn front(&self) -> Option<&T> {
        self.blocks.front().and_then(VecDeque::front)
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let first = self.blocks.front_mut()?;
        let value = first.pop_front()?;
        self.len -= 1;
        if first.is_empty() {
            self.spare = self.blocks.pop_front();
        }
        Some(value)
    }

    /// The entry at position `i` from the front.
    pub fn get(&self, i: usize) -> Option<&T> {
        let first = self.blocks.front()?;
        if i < first.len() {
            return first.get(i);
        }
        let rest = i - first.len();
        self.blocks.get(1 + rest / BLOCK)?.get(rest % BLOCK)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.blocks.iter().flatten()
    }
}

/// Bytes in one block of a [`TextArena`] (about two thousand references).
const TEXT_BLOCK: usize = 64 * 1024;

/// The texts (source then id) of the window's entries, appended in acceptance order into blocks
/// of [`TEXT_BLOCK`] bytes; a block goes (or is kept for reuse) once every entry in it has
/// expired. The window keeps its own copy rather than a share of the engine's `EventRef`: an
/// expiry then frees nothing and touches no reference count, and the texts of a window lie
/// together instead of among the engine's other allocations.
#[derive(Clone, Default)]
struct TextArena {
    blocks: VecDeque<Vec<u8>>,
    /// The number of `blocks[0]` (blocks are numbered in order, modulo 2³²).
    front_block: u32,
    /// An emptied block, kept for the next one.
    spare: Option<Vec<u8>>,
}

impl TextArena {
    /// Appends `text`; returns its block number and offset in that block.
    fn push(&mut self, text: &[u8]) -> (u32, u32) {
        let fits = self
            .blocks
            .back()
            .is_some_and(|b| b.capacity() - b.len() >= text.len());
        if !fits {
            let block = match self.spare.take() {
                Some(mut b) if b.capacity() >= text.len() => {
                    b.clear();
                    b
                }
                _ => Vec::with_capacity(TEXT_BLOCK.max(text.len())),
            };
            self.blocks.push_back(block);
        }
        let number = self
            .front_block
            .wrapping_add((self.blocks.len() - 1) as u32);
        let block = self.blocks.back_mut().expect("just ensured");
        let offset = block.len() as u32;
        block.extend_from_slice(text);
        (number, offset)
    }

    fn get(&self, block: u32, offset: u32, len: usize) -> Option<&[u8]> {
        let b = self
            .blocks
            .get(block.wrapping_sub(self.front_block) as usize)?;
        b.get(offset as usize..offset as usize + len)
    }

    /// Drops the blocks before block number `keep` (all but the last one, at most).
    fn release_before(&mut self, keep: u32) {
        while self.blocks.len() > 1 && self.front_block != keep {
            self.spare = self.blocks.pop_front();
            self.front_block = self.front_block.wrapping_add(1);
        }
    }

    /// The number of the block being filled.
    fn last_block(&self) -> u32 {
        self.front_block
            .wrapping_add(self.blocks.len().saturating_sub(1) as u32)
    }
}

/// Accepted events within the dedupe window.
#[derive(Clone, Default)]
pub(super) struct SeenEvents {
    /// Oldest first. The entry at position `i` has sequence number `front_seq + i`.
    ring: BlockQueue<Seen>,
    texts: TextArena,
    front_seq: u64,
    /// One slot per indexed entry of the ring, and the `stale` slots of expired ones.
    index: HashTable<Slot>,
    stale: usize,
}

/// One entry of the ring (24 bytes): when the event was accepted and where its text is.
#[derive(Clone)]
struct Seen {
    at: Instant,
    block: u32,
    offset: u32,
    /// Where the id starts in the text.
    split: u32,
    /// The text's length, and in the top bit whether the index has a slot for this entry (only
    /// the re-applied-duplicate defect makes entries without one).
    len_indexed: u32,
}

const INDEXED: u32 = 1 << 31;

impl Seen {
    fn len(&self) -> usize {
        (self.len_indexed & !INDEXED) as usize
    }
    fn indexed(&self) -> bool {
        self.len_indexed & INDEXED != 0
    }
}

/// An index entry: the event's hash tag and its sequence number (modulo 2³², which is unique
/// while the ring holds fewer than 2³² entries).
#[derive(Clone, Copy)]
struct Slot {
    tag: u32,
    seq: u32,
}

/// The hash the index uses, rebuilt from the tag alone, so that growing the index needs nothing
/// else: the low bits pick the bucket, the high ones are hashbrown's control byte.
fn table_hash(tag: u32) -> u64 {
    u64::from(tag) << 32 | u64::from(tag)
}

/// A 32-bit tag of an event's source and id.
fn tag_of(event: &EventRef) -> u32 {
    let mut h = rustc_hash::FxHasher::default();
    event.hash(&mut h);
    let h = h.finish();
    (h ^ h >> 32) as u32
}

/// What a probe found: whether the event is in the window, and its tag for the insertion.
#[derive(Clone, Copy)]
pub(super) struct Probe {
    pub seen: bool,
    tag: u32,
}

impl SeenEvents {
    /// Events remembered (within the window, not yet expired).
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Looks `event` up.
    pub fn probe(&self, event: &EventRef) -> Probe {
        let tag = tag_of(event);
        let front = self.front_seq as u32;
        let seen = self
            .index
            .find(table_hash(tag), |s| {
                s.tag == tag
                    && self
                        .ring
                        .get(s.seq.wrapping_sub(front) as usize)
                        .is_some_and(|e| self.is(e, event))
            })
            .is_some();
        Probe { seen, tag }
    }

    /// Whether entry `e` is `event`.
    fn is(&self, e: &Seen, event: &EventRef) -> bool {
        let (text, split) = event.joined();
        e.split as usize == split
            && self
                .texts
                .get(e.block, e.offset, e.len())
                .is_some_and(|t| t == text.as_bytes())
    }

    /// Records `event`, which `probe` did not find, as accepted at `at`.
    pub fn insert(&mut self, probe: Probe, at: Instant, event: &EventRef) {
        debug_assert!(!probe.seen);
        if self.stale > 0 && self.index.len() == self.index.capacity() {
            // Full: the stale slots go before the index rehashes (or grows, if the live ones
            // alone fill more than half of it).
            self.sweep();
        }
        let seq = (self.front_seq + self.ring.len() as u64) as u32;
        self.index.insert_unique(
            table_hash(probe.tag),
            Slot {
                tag: probe.tag,
                seq,
            },
            |s| table_hash(s.tag),
        );
        self.push(at, true, event);
    }

    /// Counts an event applied again although it was in the window (an engine defect under test):
    /// it takes a place in the ring, but lookups keep finding the first entry, and only until that
    /// one expires.
    pub fn insert_unindexed(&mut self, at: Instant, event: &EventRef) {
        self.push(at, false, event);
    }

    fn push(&mut self, at: Instant, indexed: bool, event: &EventRef) {
        let (text, split) = event.joined();
        // Ingress bounds events far below 2 GiB. A longer reference would be stored cut, and
        // then never match: its duplicates would go through, but nothing else is mistaken.
        let len = text.len().min((INDEXED - 1) as usize);
        let (block, offset) = self.texts.push(&text.as_bytes()[..len]);
        self.ring.push_back(Seen {
            at,
            block,
            offset,
            split: split.min(len) as u32,
            len_indexed: len as u32 | if indexed { INDEXED } else { 0 },
        });
    }

    /// The event of entry `e`.
    fn event(&self, e: &Seen) -> (&str, &str) {
        let text = self
            .texts
            .get(e.block, e.offset, e.len())
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or_default();
        text.split_at_checked(e.split as usize)
            .unwrap_or((text, ""))
    }

    /// Removes the slots of expired entries from the index. A live slot's sequence number is
    /// within the ring; a stale one's is before its front, so (modulo 2³²) it lands beyond the
    /// ring's end while the index holds fewer than 2³² slots.
    fn sweep(&mut self) {
        let front = self.front_seq as u32;
        let len = self.ring.len();
        self.index
            .retain(|s| (s.seq.wrapping_sub(front) as usize) < len);
        self.stale = 0;
    }

    /// Drops the entries older than `window` at `now`, and the oldest ones beyond `entries_max`
    /// less one (making room for the next).
    pub fn expire(&mut self, now: Instant, window: Duration, entries_max: usize) {
        // Live and stale slots together stay well below 2³² (see `sweep`).
        let entries_max = entries_max.min(ENTRIES_MAX);
        let before = self.front_seq;
        while let Some(front) = self.ring.front() {
            let expired = now.saturating_since(front.at) > window;
            if !(expired || self.ring.len() >= entries_max) {
                break;
            }
            let indexed = front.indexed();
            self.ring.pop_front();
            self.front_seq += 1;
            self.stale += usize::from(indexed);
        }
        if self.front_seq != before {
            let keep = self
                .ring
                .front()
                .map_or(self.texts.last_block(), |e| e.block);
            self.texts.release_before(keep);
        }
    }
}

/// Saved as the ring alone, `(at, event)` oldest first, with each event's place in the index:
/// the index is rebuilt from it on load.
impl Serialize for SeenEvents {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.ring.len()))?;
        for e in self.ring.iter() {
            let (source, id) = self.event(e);
            seq.serialize_element(&(e.at, EventRefWire { source, id }, e.indexed()))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for SeenEvents {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<(Instant, EventRef, bool)>::deserialize(d)?;
        let mut seen = SeenEvents::default();
        for (at, event, indexed) in entries {
            let probe = Probe {
                seen: false,
                tag: tag_of(&event),
            };
            if indexed {
                seen.insert(probe, at, &event);
            } else {
                seen.insert_unindexed(at, &event);
            }
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str) -> EventRef {
        EventRef::new("/plants/P1/mes", id)
    }

    #[test]
    fn an_event_is_found_until_it_expires_by_age_or_by_room() {
        let mut s = SeenEvents::default();
        let week = Duration::from_hours(24 * 7);
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            let p = s.probe(&ev(id));
            assert!(!p.seen);
            s.insert(p, Instant::from_secs(i as u64), &ev(id));
        }
        assert!(s.probe(&ev("a")).seen && s.probe(&ev("c")).seen);
        assert!(
            !s.probe(&EventRef::new("/plants/P1/erp", "a")).seen,
            "source counts"
        );
        // Room for 3 entries: making room for a fourth drops the oldest.
        s.expire(Instant::from_secs(3), week, 3);
        assert!(!s.probe(&ev("a")).seen);
        assert!(s.probe(&ev("b")).seen);
        // Age: b (at 1 s) is older than a 1.5 s window at 2.6 s; c (at 2 s) is not.
        s.expire(
            Instant::from_micros(2_600_000),
            Duration::from_micros(1_500_000),
            100,
        );
        assert!(!s.probe(&ev("b")).seen);
        assert!(s.probe(&ev("c")).seen);
        assert_eq!(s.ring.len(), 1);
        assert_eq!(s.index.len() - s.stale, 1);
    }

    #[test]
    fn an_unindexed_entry_takes_room_but_the_first_entry_answers_lookups() {
        let mut s = SeenEvents::default();
        let week = Duration::from_hours(24 * 7);
        let p = s.probe(&ev("a"));
        s.insert(p, Instant::from_secs(1), &ev("a"));
        let p = s.probe(&ev("a"));
        assert!(p.seen);
        s.insert_unindexed(Instant::from_secs(2), &ev("a"));
        assert_eq!(s.ring.len(), 2);
        // The first entry expires: the event is no longer in the window, though the re-applied
        // copy still takes room.
        s.expire(Instant::from_secs(2), Duration::from_micros(500_000), 100);
        assert!(!s.probe(&ev("a")).seen);
        assert_eq!(s.ring.len(), 1);
        s.expire(Instant::from_secs(10), week, 1);
        assert_eq!((s.ring.len(), s.index.len() - s.stale), (0, 0));
    }

    #[test]
    fn stale_slots_are_swept_out_and_never_answer_for_live_entries() {
        // A window of 1,000 entries over 50,000 events: expired slots pile up until the index is
        // full, then go in one sweep. Every probe agrees with a model of the window, and the index
        // stays near the window's size instead of growing with every event ever seen.
        let mut s = SeenEvents::default();
        let mut model = VecDeque::new();
        let week = Duration::from_hours(24 * 7);
        let mut biggest = 0;
        for i in 0..50_000u64 {
            s.expire(Instant::from_secs(i), week, 1_000);
            while model.len() >= 1_000 {
                model.pop_front();
            }
            // Every third event is one seen 500 to 1,500 events ago: in the window or just out.
            let id = if i % 3 == 0 && i >= 1_500 {
                i - 500 - (i * 7919) % 1_000
            } else {
                i
            };
            let e = ev(&format!("e-{id}"));
            let p = s.probe(&e);
            assert_eq!(p.seen, model.contains(&id), "event {i} (e-{id})");
            if !p.seen {
                s.insert(p, Instant::from_secs(i), &e);
                model.push_back(id);
            }
            biggest = biggest.max(s.index.len());
            // The window's texts (about 20 KB) fit in a block: expiry frees the ones before.
            assert!(
                s.texts.blocks.len() <= 2,
                "{} text blocks",
                s.texts.blocks.len()
            );
        }
        assert_eq!(s.ring.len(), model.len());
        assert!(biggest < 4 * 1_000, "the index grew to {biggest} slots");
        // A saved window keeps only live slots.
        let back: SeenEvents = postcard::from_bytes(&postcard::to_stdvec(&s).unwrap()).unwrap();
        assert_eq!((back.index.len(), back.stale), (model.len(), 0));
    }

    #[test]
    fn texts_longer_than_a_block_and_across_blocks_are_matched_whole() {
        // Ids of growing length, some longer than a text block: each is found, a copy that
        // differs only in its last byte or in where source and id meet is not.
        let mut s = SeenEvents::default();
        let ids: Vec<String> = (0..40)
            .map(|i| format!("{i}-{}", "x".repeat(i * 5_000)))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            let p = s.probe(&ev(id));
            assert!(!p.seen);
            s.insert(p, Instant::from_secs(i as u64), &ev(id));
        }
        assert!(s.texts.blocks.len() > 2);
        for id in &ids {
            assert!(s.probe(&ev(id)).seen, "{}", id.len());
            let mut other = id.clone();
            other.pop();
            other.push('y');
            assert!(!s.probe(&ev(&other)).seen);
        }
        assert!(!s.probe(&EventRef::new("/plants/P1/mes0", "-")).seen);
        assert!(!s.probe(&EventRef::new("/plants/P1/me", "s0-")).seen);
        // Room for one more means none stays: every block but the one being filled goes.
        s.expire(Instant::from_secs(100), Duration::from_hours(1), 1);
        assert_eq!(s.ring.len(), 0);
        assert_eq!(s.texts.blocks.len(), 1);
        let back: SeenEvents = postcard::from_bytes(&postcard::to_stdvec(&s).unwrap()).unwrap();
        assert_eq!(back.ring.len(), 0);
    }

    #[test]
    fn a_block_queue_is_a_fifo_across_blocks() {
        let mut q = BlockQueue::default();
        let mut model = VecDeque::new();
        let mut next = 0u32;
        // Grow over several blocks, drain most, grow again (reusing the spare), drain all.
        for (push, pop) in [
            (3 * BLOCK + 17, 2 * BLOCK + 5),
            (BLOCK + 3, 0),
            (0, 2 * BLOCK + 15),
        ] {
            for _ in 0..push {
                q.push_back(next);
                model.push_back(next);
                next += 1;
            }
            for i in [
                0,
                1,
                BLOCK - 1,
                BLOCK,
                model.len().saturating_sub(1),
                model.len(),
            ] {
                assert_eq!(q.get(i), model.get(i), "get({i})");
            }
            for _ in 0..pop {
                assert_eq!(q.pop_front(), model.pop_front());
            }
            assert_eq!(q.len(), model.len());
            assert_eq!(q.front(), model.front());
            assert!(q.iter().eq(model.iter()));
        }
        assert_eq!(q.pop_front(), None);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_saved_window_loads_with_the_same_answers() {
        let mut s = SeenEvents::default();
        for i in 0..1_000u64 {
            let e = ev(&format!("e-{i}"));
            let p = s.probe(&e);
            if i % 7 == 0 {
                s.insert_unindexed(Instant::from_secs(i), &e);
            } else {
                s.insert(p, Instant::from_secs(i), &e);
            }
        }
        s.expire(Instant::from_secs(1_000), Duration::from_secs(600), 10_000);
        let bytes = postcard::to_stdvec(&s).unwrap();
        let back: SeenEvents = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.ring.len(), s.ring.len());
        for i in 0..1_000u64 {
            let e = ev(&format!("e-{i}"));
            assert_eq!(back.probe(&e).seen, s.probe(&e).seen, "e-{i}");
            assert_eq!(s.probe(&e).seen, i >= 400 && i % 7 != 0, "e-{i}");
        }
    }
}
