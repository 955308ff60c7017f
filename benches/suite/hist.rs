//! Latency histogram: log-linear buckets (32 per power of two, <= 3 % error), allocated
//! once per thread before the measurement so recording never allocates.

pub(crate) const SUB_BITS: u32 = 5;
pub(crate) const SUB: usize = 1 << SUB_BITS;
pub(crate) const BUCKETS: usize = 2 * SUB + (64 - SUB_BITS as usize - 1) * SUB;

pub(crate) struct Hist {
    pub(crate) buckets: Box<[u64]>,
    pub(crate) count: u64,
    pub(crate) sum: u128,
    pub(crate) max: u64,
}

impl Hist {
    pub(crate) fn new() -> Hist {
        Hist {
            buckets: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    pub(crate) fn index(v: u64) -> usize {
        if v < 2 * SUB as u64 {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros(); // >= SUB_BITS + 1
        let shift = msb - SUB_BITS;
        2 * SUB + (shift as usize - 1) * SUB + ((v >> shift) as usize & (SUB - 1))
    }

    /// The middle of bucket `i`'s value range.
    pub(crate) fn value(i: usize) -> u64 {
        if i < 2 * SUB {
            return i as u64;
        }
        let shift = ((i - 2 * SUB) / SUB + 1) as u32;
        let low = ((SUB + (i - 2 * SUB) % SUB) as u64) << shift;
        low + (1u64 << shift) / 2
    }

    #[inline]
    pub(crate) fn record(&mut self, ns: u64) {
        self.buckets[Hist::index(ns)] += 1;
        self.count += 1;
        self.sum += u128::from(ns);
        self.max = self.max.max(ns);
    }

    pub(crate) fn merge(&mut self, other: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    pub(crate) fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Hist::value(i).min(self.max);
            }
        }
        self.max
    }

    pub(crate) fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

/// Wait statistics of one cell, in ns.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Waits {
    pub(crate) p50: u64,
    pub(crate) p99: u64,
    pub(crate) max: u64,
    /// Over every get: one served at once waited 0 (issue 22's "mean wait").
    pub(crate) mean: f64,
    /// For redispool: (share of the gets that queued, their mean wait in ns), from the
    /// pool's own `wait_count` and `wait_duration_ns` (go-redis's `WaitCount` and
    /// `WaitDurationNs`), around the timed run. None for the other pools.
    pub(crate) queued: Option<(f64, f64)>,
}

impl From<&Hist> for Waits {
    fn from(h: &Hist) -> Waits {
        Waits {
            p50: h.percentile(0.50),
            p99: h.percentile(0.99),
            max: h.max,
            mean: h.mean(),
            queued: None,
        }
    }
}

/// The median of `v` (the mean of the middle two for an even count); 0 when empty.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 0 {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}
