//! The rows an object has shown so far, as 128-bit fingerprints, in 12 to 17 bytes a row:
//! the set that finds exact duplicates must hold every row of an object of up to gigabytes
//! inside the ETL's memory, so it is built for that rather than taken from `HashMap`
//! (40 bytes a row, and doubling it briefly needs three times that).
//!
//! 256 shards, picked by 8 bits of the fingerprint, each an open-addressing table of
//! `(64 more bits, row number)` slots. A key's home slot is `key × capacity / 2^64`, which
//! grows with the key, and each cluster of filled slots is kept in key order (an ordered
//! linear-probing table): a lookup stops at the first larger key, so a miss costs about
//! as few probes as a hit even when the table is 7/8 full. A shard grows by a quarter when
//! it is 7/8 full, so the whole set stays between 70% and 87.5% full and a growth step
//! copies 1/256 of it. A false duplicate needs two rows to agree on all 72 bits: among ten
//! million rows the chance is about 1 in 10^8.

const SHARDS: usize = 256;
/// A slot whose key is 0 is empty; a fingerprint whose 64 bits are 0 is stored as 1.
const EMPTY: u64 = 0;
/// Slots past the last home slot, where the last clusters run on instead of wrapping.
const TAIL: usize = 32;

/// A key and its row side by side in 12 bytes, so a probe's cache misses fetch both, and
/// a cluster moves in one copy.
#[derive(Default, Clone, Copy)]
struct Slot {
    key: [u32; 2],
    row: u32,
}

impl Slot {
    fn new(key: u64, row: u32) -> Self {
        Self { key: [key as u32, (key >> 32) as u32], row }
    }

    fn key(self) -> u64 {
        u64::from(self.key[0]) | (u64::from(self.key[1]) << 32)
    }
}

#[derive(Default, Clone)]
struct Shard {
    slots: Vec<Slot>,
    len: usize,
}

impl Shard {
    /// The slot holding `key`, or the slot it belongs at: the first empty slot or larger
    /// key from its home on.
    fn slot(&self, key: u64) -> usize {
        let mut slot = Self::home(key, self.slots.len() - TAIL);
        while let Some(found) = self.slots.get(slot).map(|slot| slot.key())
            && found != EMPTY
            && found < key
        {
            slot += 1;
        }
        slot
    }

    /// Puts a key not in the shard at `slot`, where it belongs, moving the larger keys of
    /// its cluster one slot on. `false` if the cluster would run off the end: the shard
    /// must grow.
    fn place(&mut self, slot: usize, key: u64, row: u32) -> bool {
        let Some(free) = (slot..self.slots.len()).find(|&s| self.slots[s].key() == EMPTY) else {
            return false;
        };
        self.slots.copy_within(slot..free, slot + 1);
        self.slots[slot] = Slot::new(key, row);
        true
    }

    /// Makes room for more keys. The keys are in order across the whole shard (homes grow
    /// with keys, clusters are sorted), so each lands at its home or right after the one
    /// before it: one pass, no search.
    fn grow(&mut self) {
        let mut homes = self.slots.len().saturating_sub(TAIL);
        'larger: loop {
            homes = (homes + homes / 4).max(64);
            let mut grown = Shard { slots: vec![Slot::default(); homes + TAIL], len: self.len };
            let mut next = 0;
            for slot in self.slots.iter().filter(|slot| slot.key() != EMPTY) {
                let place = next.max(Self::home(slot.key(), homes));
                if place == grown.slots.len() {
                    continue 'larger;
                }
                grown.slots[place] = *slot;
                next = place + 1;
            }
            *self = grown;
            return;
        }
    }

    /// Where `key` belongs among `homes` slots; larger keys never belong earlier.
    fn home(key: u64, homes: usize) -> usize {
        ((u128::from(key) * homes as u128) >> 64) as usize
    }
}

pub struct SeenRows {
    shards: Vec<Shard>,
}

impl Default for SeenRows {
    fn default() -> Self {
        Self { shards: vec![Shard::default(); SHARDS] }
    }
}

/// Where a fingerprint not seen yet goes, found by [`SeenRows::first`]: recording it there
/// needs no second search, as long as nothing was recorded in between.
#[must_use]
pub struct Vacancy {
    shard: usize,
    slot: usize,
    key: u64,
}

impl SeenRows {
    /// The number of the row recorded under `fingerprint`, or where to record it.
    pub fn first(&mut self, fingerprint: u128) -> Result<u32, Vacancy> {
        let (index, key) = Self::locate(fingerprint);
        let shard = &mut self.shards[index];
        // Grown before the search, so the vacancy it finds stays where it is.
        if (shard.len + 1) * 8 > shard.slots.len().saturating_sub(TAIL) * 7 {
            shard.grow();
        }
        let slot = shard.slot(key);
        match shard.slots.get(slot) {
            Some(found) if found.key() == key => Ok(found.row),
            _ => Err(Vacancy { shard: index, slot, key }),
        }
    }

    /// Has the processor fetch the slot where the search for `fingerprint` starts, so that
    /// work done before [`first`](Self::first) hides the wait for memory: the set is far
    /// larger than the caches and each row's slot is somewhere new.
    pub fn prefetch(&self, fingerprint: u128) {
        let (shard, key) = Self::locate(fingerprint);
        let slots = &self.shards[shard].slots;
        if let Some(slot) = slots.get(Shard::home(key, slots.len().saturating_sub(TAIL))) {
            prefetch_read(slot);
        }
    }

    /// Records `row` at the vacancy [`first`](Self::first) found for its fingerprint.
    pub fn insert(&mut self, vacancy: Vacancy, row: u32) {
        let Vacancy { shard, slot, key } = vacancy;
        let shard = &mut self.shards[shard];
        if !shard.place(slot, key, row) {
            // The cluster ran into the tail: rare, and growing moves every slot.
            loop {
                shard.grow();
                if shard.place(shard.slot(key), key, row) {
                    break;
                }
            }
        }
        shard.len += 1;
    }

    fn locate(fingerprint: u128) -> (usize, u64) {
        ((fingerprint >> 120) as usize, (fingerprint as u64).max(1))
    }

    /// Bytes held by the slots.
    #[cfg(test)]
    fn slot_bytes(&self) -> usize {
        self.shards.iter().map(|shard| shard.slots.len() * size_of::<Slot>()).sum()
    }
}

#[cfg(target_arch = "x86_64")]
fn prefetch_read<T>(value: &T) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch only hints: it changes nothing the program sees and cannot fault.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast()) }
}

#[cfg(target_arch = "aarch64")]
fn prefetch_read<T>(value: &T) {
    // SAFETY: as on x86_64, `prfm` only hints.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) std::ptr::from_ref(value), options(nostack, readonly, preserves_flags))
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn prefetch_read<T>(_: &T) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(row: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&row.to_le_bytes())
    }

    #[test]
    fn finds_the_first_row_of_each_repeat() {
        let mut seen = SeenRows::default();
        for row in 1..=50_000 {
            let vacancy = seen.first(fingerprint(row)).expect_err("not seen yet");
            seen.insert(vacancy, row as u32);
        }
        for row in 1..=50_000 {
            assert_eq!(seen.first(fingerprint(row)).ok(), Some(row as u32));
        }
        for row in 50_001..=60_000 {
            assert!(seen.first(fingerprint(row)).is_err());
        }
        let vacancy = seen.first(0).expect_err("a zero fingerprint is a key like any other");
        seen.insert(vacancy, 1);
        assert_eq!(seen.first(0).ok(), Some(1));
    }

    #[test]
    fn holds_a_million_rows_in_at_most_17_bytes_each() {
        let mut seen = SeenRows::default();
        let rows = 1_000_000;
        for row in 0..rows {
            let vacancy = seen.first(fingerprint(row)).expect_err("not seen yet");
            seen.insert(vacancy, row as u32);
        }
        let per_row = seen.slot_bytes() as f64 / rows as f64;
        // 12-byte slots, at least 70% full.
        assert!(per_row <= 12.0 / 0.7, "{per_row:.1} bytes a row");
    }
}
