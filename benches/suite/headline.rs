//! The headline table (issue 22): Get+Put ns/op of redispool (default options, hot,
//! overtake) against the pools users would pick instead (go-redis v9's pool from
//! goroutines, the Mutex+Condvar pool from threads), in the cells users meet, as medians
//! of interleaved rounds with the spread across rounds.

use crate::getput::{Variant, VariantPools};
use crate::goredis::GoBuilds;
use crate::hist::median;
use crate::plan::{Mode, Plan};
use crate::report::progress;
use std::time::Duration;

/// (pool size, threads) of the headline table.
pub(crate) const HEADLINE_CELLS: [(usize, usize); 6] =
    [(8, 2), (8, 8), (8, 64), (8, 256), (64, 64), (64, 256)];

/// The rows, in the order of the table.
pub(crate) const HEADLINE_VARIANTS: [Variant; 5] = [
    Variant::GoRedisV9,
    Variant::MutexCondvar,
    Variant::Default,
    Variant::Hot,
    Variant::Overtake,
];

/// One variant in one cell: ns/op of every round.
pub(crate) struct HeadlineCell {
    pub(crate) variant: Variant,
    pub(crate) size: usize,
    pub(crate) threads: usize,
    pub(crate) rounds: Vec<f64>,
}

impl HeadlineCell {
    pub(crate) fn median(&self) -> f64 {
        median(&mut self.rounds.clone())
    }

    pub(crate) fn min(&self) -> f64 {
        self.rounds.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub(crate) fn max(&self) -> f64 {
        self.rounds.iter().copied().fold(0.0, f64::max)
    }
}

/// Rounds and the length of one run.
pub(crate) fn headline_plan(plan: &Plan) -> (usize, Duration) {
    match plan.mode {
        Mode::Smoke => (1, Duration::from_millis(2)),
        Mode::Quick => (3, Duration::from_millis(60)),
        Mode::Full => (5, Duration::from_millis(300)),
    }
}

/// Every cell of HEADLINE_CELLS: in each round every variant runs once (untimed), each
/// round starting with a different variant, so a burst of outside load or a drift of the
/// machine's speed hits all of them alike.
pub(crate) fn section_headline(plan: &Plan, addr: &str, go: &GoBuilds) -> Vec<HeadlineCell> {
    let (rounds, slice) = headline_plan(plan);
    let variants: Vec<Variant> = HEADLINE_VARIANTS
        .into_iter()
        .filter(|&v| !go.missing(v))
        .collect();
    let mut out = Vec::new();
    for size in [8, 64] {
        let pools = VariantPools::new(addr, size, go);
        for &(_, threads) in HEADLINE_CELLS.iter().filter(|c| c.0 == size) {
            progress(&format!(
                "headline: Get+Put pool {size:>2}, {threads:>3} threads, {rounds} rounds"
            ));
            let mut cells: Vec<HeadlineCell> = variants
                .iter()
                .map(|&variant| HeadlineCell {
                    variant,
                    size,
                    threads,
                    rounds: Vec::with_capacity(rounds),
                })
                .collect();
            for round in 0..rounds {
                for k in 0..cells.len() {
                    let i = (round + k) % cells.len();
                    let ns = pools
                        .ns_per_op(cells[i].variant, threads, slice)
                        .expect("a built variant");
                    cells[i].rounds.push(ns);
                }
            }
            out.extend(cells);
        }
    }
    out
}

/// The cell of `v` at (`size`, `threads`).
pub(crate) fn find_headline(
    cells: &[HeadlineCell],
    v: Variant,
    size: usize,
    threads: usize,
) -> Option<&HeadlineCell> {
    cells
        .iter()
        .find(|c| c.variant == v && c.size == size && c.threads == threads)
}
