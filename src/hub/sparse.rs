//! Giving memory back after a flood. Hash maps and vectors keep their capacity when entries
//! are removed, so a channel shard that once held 100,000 channels, or a connection that was
//! once in 1,000 channels, would keep that memory for the life of the process. Every place
//! that removes a channel, a subscription, a connection, a signed-in user or a sent frame (and
//! the metrics observer's per-channel tally) calls [`shrink_if_sparse`], which shrinks the collection once it is less than a quarter full
//! (to twice what it holds, so the cost is amortised: at least half the entries must go again
//! before the next shrink). RELIABILITY.md, "Floods", has the figures.

use indexmap::IndexMap;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Below this capacity nothing is shrunk: small tables are cheap and often refilled.
const KEEP_CAPACITY: usize = 64;

/// A collection that can report its capacity and give some of it back.
pub(crate) trait Shrinkable {
    fn len_and_capacity(&self) -> (usize, usize);
    fn shrink_to(&mut self, min_capacity: usize);
}

/// Shrink `c` to twice its length when it is under a quarter full (and not small).
pub(crate) fn shrink_if_sparse<C: Shrinkable>(c: &mut C) {
    let (len, capacity) = c.len_and_capacity();
    if capacity > KEEP_CAPACITY && len < capacity / 4 {
        c.shrink_to((len * 2).max(KEEP_CAPACITY / 2));
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> Shrinkable for HashMap<K, V, S> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to(&mut self, min_capacity: usize) {
        HashMap::shrink_to(self, min_capacity);
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> Shrinkable for IndexMap<K, V, S> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to(&mut self, min_capacity: usize) {
        IndexMap::shrink_to(self, min_capacity);
    }
}

impl<T> Shrinkable for VecDeque<T> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to(&mut self, min_capacity: usize) {
        VecDeque::shrink_to(self, min_capacity);
    }
}

impl<T> Shrinkable for Vec<T> {
    fn len_and_capacity(&self) -> (usize, usize) {
        (self.len(), self.capacity())
    }
    fn shrink_to(&mut self, min_capacity: usize) {
        Vec::shrink_to(self, min_capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_emptied_after_a_flood_gives_its_capacity_back() {
        let mut m: HashMap<u32, [u8; 64]> = HashMap::new();
        for i in 0..100_000 {
            m.insert(i, [0; 64]);
        }
        let full = m.capacity();
        for i in 0..100_000 {
            m.remove(&i);
            shrink_if_sparse(&mut m);
        }
        assert!(full >= 100_000);
        assert!(m.capacity() <= KEEP_CAPACITY, "{}", m.capacity());
    }

    #[test]
    fn shrinking_keeps_room_for_what_is_left_and_leaves_small_tables_alone() {
        let mut v: Vec<u32> = (0..1_000).collect();
        v.truncate(100);
        shrink_if_sparse(&mut v);
        assert!(
            v.capacity() >= 200 && v.capacity() < 1_000,
            "{}",
            v.capacity()
        );
        // Under a quarter full again only after more than half of what is left goes.
        v.truncate(60);
        let before = v.capacity();
        shrink_if_sparse(&mut v);
        assert_eq!(v.capacity(), before);

        let mut small: Vec<u32> = Vec::with_capacity(KEEP_CAPACITY);
        small.push(1);
        shrink_if_sparse(&mut small);
        assert_eq!(small.capacity(), KEEP_CAPACITY);
    }
}
