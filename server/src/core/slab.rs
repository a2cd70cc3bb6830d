//! Dense tables for what the shard holds per subscription and per presentity.
//!
//! Memory per held subscription is a product goal (issue 5), and RSS counts every page
//! touched: a `Vec` that doubles leaves up to half its capacity as slack, a hash map
//! keyed by random ids spreads entries over every bucket. A slab of fixed-size chunks
//! grows one chunk at a time, never moves or copies what it holds, and refills freed
//! slots first, so the table stays as dense as its live entries.

/// Entries per chunk.
const CHUNK: usize = 1024;

/// Values addressed by a `u32` slot, stable while the value lives.
#[derive(Debug)]
pub struct Slab<T> {
    chunks: Vec<Box<[Option<T>]>>,
    /// Vacant slots; the last one is filled next.
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot the next `insert` fills.
    pub fn next_slot(&self) -> u32 {
        match self.free.last() {
            Some(&s) => s,
            None => (self.chunks.len() * CHUNK) as u32,
        }
    }

    /// Stores `value` in [`Slab::next_slot`] and returns that slot.
    pub fn insert(&mut self, value: T) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = (self.chunks.len() * CHUNK) as u32;
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.resize_with(CHUNK, || None);
                self.chunks.push(chunk.into_boxed_slice());
                self.free.extend((s + 1..s + CHUNK as u32).rev());
                s
            }
        };
        if let Some(entry) = self.entry_mut(slot) {
            debug_assert!(entry.is_none(), "free slot {slot} in use");
            *entry = Some(value);
        }
        self.len += 1;
        slot
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Option<T>> {
        let s = slot as usize;
        self.chunks.get_mut(s / CHUNK)?.get_mut(s % CHUNK)
    }

    pub fn get(&self, slot: u32) -> Option<&T> {
        let s = slot as usize;
        self.chunks.get(s / CHUNK)?.get(s % CHUNK)?.as_ref()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.entry_mut(slot)?.as_mut()
    }

    /// Empties `slot` (it is filled again before any fresh one).
    pub fn remove(&mut self, slot: u32) -> Option<T> {
        let value = self.entry_mut(slot)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(value)
    }

    /// Every value with its slot, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .enumerate()
            .filter_map(|(i, v)| Some((i as u32, v.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_freed_slots_first_and_grows_by_chunks() {
        let mut s = Slab::default();
        let slots: Vec<u32> = (0..CHUNK as u32 + 2).map(|i| s.insert(i)).collect();
        assert_eq!(slots, (0..CHUNK as u32 + 2).collect::<Vec<_>>());
        assert_eq!(s.chunks.len(), 2);
        assert_eq!(s.remove(5), Some(5));
        assert_eq!(s.remove(5), None);
        assert_eq!(s.get(5), None);
        assert_eq!(s.next_slot(), 5);
        assert_eq!(s.insert(99), 5);
        assert_eq!(s.get(5), Some(&99));
        *s.get_mut(7).unwrap() += 1;
        assert_eq!(s.get(7), Some(&8));
        assert_eq!(s.len(), CHUNK + 2);
        assert_eq!(s.iter().count(), CHUNK + 2);
        assert_eq!(s.iter().nth(5), Some((5, &99)));
        assert_eq!(s.get(u32::MAX), None);
    }
}
