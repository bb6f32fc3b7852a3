//! TinyLFU admission (Einziger, Friedman, Manes: "TinyLFU: A Highly Efficient
//! Cache Admission Policy", 2017): a small count-min sketch of how often each
//! key was asked for lately. When the cache is full, a new object is stored
//! only if it was asked for more often than the object it would evict, so a
//! scan of one-time objects cannot flush the popular ones. The counters are
//! halved every `10 x width` requests, so popularity fades.

/// Rows of the sketch (independent hash functions).
const ROWS: usize = 4;

/// Largest value of a counter (4 bits' worth, as in the paper).
const MAX_COUNT: u8 = 15;

/// Odd multipliers that spread the hash differently per row.
const SEEDS: [u64; ROWS] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x27D4_EB2F_1656_67C5,
];

/// How often keys were asked for lately.
#[derive(Debug)]
pub struct Sketch {
    /// `ROWS` rows of `mask + 1` counters.
    counters: Vec<u8>,
    /// Counters per row, minus one (a power of two, minus one).
    mask: usize,
    /// Increments since the last halving.
    additions: usize,
}

impl Sketch {
    /// A sketch for about `entries` distinct keys.
    pub fn new(entries: usize) -> Sketch {
        let width = entries.next_power_of_two().max(64);
        Sketch {
            counters: vec![0; ROWS * width],
            mask: width - 1,
            additions: 0,
        }
    }

    /// Grows (and resets) the sketch when it tracks fewer counters than the
    /// cache holds objects, so estimates stay meaningful as the cache fills.
    pub fn fit(&mut self, entries: usize) {
        if entries > self.mask + 1 {
            *self = Sketch::new(entries * 2);
        }
    }

    fn slots(&self, hash: u64) -> [usize; ROWS] {
        let width = self.mask + 1;
        std::array::from_fn(|row| {
            let h = hash.wrapping_mul(SEEDS[row]).rotate_left(31);
            row * width + (h as usize & self.mask)
        })
    }

    /// Counts one request for the key with `hash`.
    pub fn increment(&mut self, hash: u64) {
        for slot in self.slots(hash) {
            let c = &mut self.counters[slot];
            *c = (*c + 1).min(MAX_COUNT);
        }
        self.additions += 1;
        if self.additions >= 10 * (self.mask + 1) {
            for c in &mut self.counters {
                *c /= 2;
            }
            self.additions /= 2;
        }
    }

    /// How often the key with `hash` was asked for lately (an over-estimate at worst).
    pub fn estimate(&self, hash: u64) -> u8 {
        self.slots(hash)
            .into_iter()
            .map(|s| self.counters[s])
            .min()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequent_keys_estimate_higher_and_fade() {
        let mut s = Sketch::new(1000);
        for _ in 0..10 {
            s.increment(42);
        }
        s.increment(7);
        assert_eq!(s.estimate(42), 10);
        assert_eq!(s.estimate(7), 1);
        assert_eq!(s.estimate(99), 0);
        // Another key asked for 10 x width times: every counter is halved once.
        for _ in 0..10 * 1024 {
            s.increment(7);
        }
        assert_eq!(s.estimate(42), 5, "halved");
    }
}
