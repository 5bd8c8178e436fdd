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

#[derive(Default, Clone)]
struct Shard {
    keys: Vec<u64>,
    rows: Vec<u32>,
    len: usize,
}

impl Shard {
    /// The slot holding `key`, or the slot it belongs at: the first empty slot or larger
    /// key from its home on.
    fn slot(&self, key: u64) -> usize {
        let mut slot = Self::home(key, self.keys.len() - TAIL);
        while slot < self.keys.len() && self.keys[slot] != EMPTY && self.keys[slot] < key {
            slot += 1;
        }
        slot
    }

    /// Puts a key not in the shard at its place, moving the larger keys of its cluster one
    /// slot on. `false` if the cluster would run off the end: the shard must grow.
    fn place(&mut self, key: u64, row: u32) -> bool {
        let slot = self.slot(key);
        let Some(free) = (slot..self.keys.len()).find(|&s| self.keys[s] == EMPTY) else {
            return false;
        };
        self.keys.copy_within(slot..free, slot + 1);
        self.rows.copy_within(slot..free, slot + 1);
        self.keys[slot] = key;
        self.rows[slot] = row;
        true
    }

    /// Makes room for more keys. The keys are in order across the whole shard (homes grow
    /// with keys, clusters are sorted), so each lands at its home or right after the one
    /// before it: one pass, no search.
    fn grow(&mut self) {
        let mut homes = self.keys.len().saturating_sub(TAIL);
        'larger: loop {
            homes = (homes + homes / 4).max(64);
            let mut grown = Shard { keys: vec![EMPTY; homes + TAIL], rows: vec![0; homes + TAIL], len: self.len };
            let mut next = 0;
            for (&key, &row) in self.keys.iter().zip(&self.rows).filter(|(key, _)| **key != EMPTY) {
                let slot = next.max(Self::home(key, homes));
                if slot == grown.keys.len() {
                    continue 'larger;
                }
                grown.keys[slot] = key;
                grown.rows[slot] = row;
                next = slot + 1;
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

impl SeenRows {
    /// The number of the row recorded under `fingerprint`, if one was.
    pub fn first(&self, fingerprint: u128) -> Option<u32> {
        let (shard, key) = Self::locate(fingerprint);
        let shard = &self.shards[shard];
        if shard.keys.is_empty() {
            return None;
        }
        let slot = shard.slot(key);
        (shard.keys.get(slot) == Some(&key)).then(|| shard.rows[slot])
    }

    /// Records `row` under `fingerprint`, which must not be recorded yet.
    pub fn insert(&mut self, fingerprint: u128, row: u32) {
        let (shard, key) = Self::locate(fingerprint);
        let shard = &mut self.shards[shard];
        if (shard.len + 1) * 8 > shard.keys.len().saturating_sub(TAIL) * 7 {
            shard.grow();
        }
        while !shard.place(key, row) {
            shard.grow();
        }
        shard.len += 1;
    }

    fn locate(fingerprint: u128) -> (usize, u64) {
        ((fingerprint >> 120) as usize, (fingerprint as u64).max(1))
    }

    /// Bytes held by the slots.
    #[cfg(test)]
    fn slot_bytes(&self) -> usize {
        self.shards.iter().map(|shard| shard.keys.len() * 12).sum()
    }
}

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
            assert_eq!(seen.first(fingerprint(row)), None);
            seen.insert(fingerprint(row), row as u32);
        }
        for row in 1..=50_000 {
            assert_eq!(seen.first(fingerprint(row)), Some(row as u32));
        }
        for row in 50_001..=60_000 {
            assert_eq!(seen.first(fingerprint(row)), None);
        }
        assert_eq!(seen.first(0), None, "a zero fingerprint is a key like any other");
        seen.insert(0, 1);
        assert_eq!(seen.first(0), Some(1));
    }

    #[test]
    fn holds_a_million_rows_in_at_most_17_bytes_each() {
        let mut seen = SeenRows::default();
        let rows = 1_000_000;
        for row in 0..rows {
            seen.insert(fingerprint(row), row as u32);
        }
        let per_row = seen.slot_bytes() as f64 / rows as f64;
        // 12-byte slots, at least 70% full.
        assert!(per_row <= 12.0 / 0.7, "{per_row:.1} bytes a row");
    }
}
