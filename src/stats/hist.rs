//! Response-time distributions.
//!
//! Recording is one relaxed atomic add into a log-linear bucket (16 buckets
//! per power of two, at most 6.25% wide), so the request path takes no lock.
//! Per-second and per-minute snapshots are sparse bucket lists that merge
//! exactly by addition; a window's snapshot becomes an hdrhistogram for
//! percentiles.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two.
const SUB: u32 = 16;
/// Values below this are their own bucket.
const LINEAR: u64 = SUB as u64;
/// Largest exponent kept; larger values land in the last bucket (2^40 µs is 12 days).
const MAX_EXP: u32 = 40;
/// Number of buckets.
pub const BUCKETS: usize = (LINEAR as usize) + ((MAX_EXP - 4 + 1) * SUB) as usize;

/// The bucket of a value (in microseconds).
pub fn bucket_of(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = (63 - v.leading_zeros()).min(MAX_EXP);
    let v = v.min((1u64 << (MAX_EXP + 1)) - 1);
    let sub = ((v >> (e - 4)) & u64::from(SUB - 1)) as u32;
    (LINEAR as u32 + (e - 4) * SUB + sub) as usize
}

/// The smallest value of a bucket.
pub fn bucket_floor(b: usize) -> u64 {
    if (b as u64) < LINEAR {
        return b as u64;
    }
    let i = b as u32 - LINEAR as u32;
    let (e, sub) = (i / SUB + 4, i % SUB);
    u64::from(SUB + sub) << (e - 4)
}

/// The middle of a bucket: the least biased single value for what it counted.
pub fn bucket_mid(b: usize) -> u64 {
    let floor = bucket_floor(b);
    let next = if b + 1 < BUCKETS {
        bucket_floor(b + 1)
    } else {
        floor * 17 / 16
    };
    floor + (next - floor) / 2
}

/// Lock-free recording side: one atomic counter per bucket.
pub struct AtomicHist {
    buckets: Box<[AtomicU64]>,
}

impl Default for AtomicHist {
    fn default() -> Self {
        AtomicHist {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl AtomicHist {
    /// Counts one value.
    #[inline]
    pub fn record(&self, micros: u64) {
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the current bucket counts into `into` (a dense array of `BUCKETS`).
    pub fn add_to(&self, into: &mut [u64]) {
        for (dst, b) in into.iter_mut().zip(self.buckets.iter()) {
            *dst += b.load(Ordering::Relaxed);
        }
    }
}

/// A distribution over some interval: sparse `(bucket, count)` pairs, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    buckets: Vec<(u16, u64)>,
}

impl Snapshot {
    /// The difference `now - before` of two dense cumulative arrays.
    pub fn delta(now: &[u64], before: &[u64]) -> Snapshot {
        let buckets = now
            .iter()
            .zip(before)
            .enumerate()
            .filter(|(_, (n, b))| n > b)
            .map(|(i, (n, b))| (i as u16, n - b))
            .collect();
        Snapshot { buckets }
    }

    /// Adds another distribution (exact).
    pub fn merge(&mut self, other: &Snapshot) {
        if other.buckets.is_empty() {
            return;
        }
        let (a, b) = (&self.buckets, &other.buckets);
        let mut out = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Equal => {
                    out.push((a[i].0, a[i].1 + b[j].1));
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Less => {
                    out.push(a[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(b[j]);
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        self.buckets = out;
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    /// Bytes of heap this snapshot holds.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<(u16, u64)>()
    }

    /// The distribution as an hdrhistogram (each bucket at its middle value).
    pub fn to_hdr(&self) -> hdrhistogram::Histogram<u64> {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant digits is valid");
        for (b, n) in &self.buckets {
            // record_n grows the histogram; the saturating form clamps to the initial range first.
            h.record_n(bucket_mid(*b as usize), *n)
                .expect("bucket floors stay below 2^42, far inside an auto-resizing histogram");
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 30, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last && b < BUCKETS, "{v}");
            last = b;
            let floor = bucket_floor(b);
            assert!(floor <= v, "{v}: floor {floor}");
            if v < 1 << MAX_EXP {
                assert!((v - floor) as f64 <= v as f64 / 16.0, "{v}: floor {floor}");
            }
        }
    }

    #[test]
    fn merge_is_exact_and_percentiles_come_from_hdr() {
        let h = AtomicHist::default();
        let mut before = vec![0; BUCKETS];
        h.add_to(&mut before);
        for v in 1..=1000 {
            h.record(v);
        }
        let mut now = vec![0; BUCKETS];
        h.add_to(&mut now);
        let mut a = Snapshot::delta(&now, &before);
        let b = a.clone();
        a.merge(&b);
        assert_eq!(a.count(), 2000);
        let p50 = a.to_hdr().value_at_quantile(0.5);
        assert!((470..=530).contains(&p50), "{p50}");
        // A far tail must come out at its own value, not clamped.
        let mut tail = vec![0; BUCKETS];
        tail[bucket_of(3_000_000)] = 10;
        a.merge(&Snapshot::delta(&tail, &vec![0; BUCKETS]));
        let p999 = a.to_hdr().value_at_quantile(0.999);
        assert!((2_900_000..=3_100_000).contains(&p999), "{p999}");
    }
}
