//! Section d: overload fairness, 256 against 8 threads on pool 8 in alternating rounds.

use crate::getput::{VARIANTS, Variant, VariantPools};
use crate::goredis::GoBuilds;
use crate::hist::median;
use crate::plan::{Mode, Plan};
use crate::report::progress;
use std::time::Duration;

pub(crate) struct Keep {
    pub(crate) variant: Variant,
    /// Median over the rounds of (256-thread ops/s) / (8-thread ops/s), in percent.
    pub(crate) pct: f64,
}

pub(crate) fn section_fairness(plan: &Plan, addr: &str, go: &GoBuilds) -> Vec<Keep> {
    let (rounds, slice) = match plan.mode {
        Mode::Smoke => (1, Duration::from_millis(2)),
        Mode::Quick => (4, Duration::from_millis(50)),
        Mode::Full => (8, Duration::from_millis(250)),
    };
    let pools = VariantPools::new(addr, 8, go);
    let mut out = Vec::new();
    for variant in VARIANTS {
        if go.missing(variant) {
            continue;
        }
        progress(&format!(
            "d. fairness {:<24} pool 8, 8 vs 256 threads",
            variant.name()
        ));
        let ns = |threads: usize| {
            pools
                .ns_per_op(variant, threads, slice)
                .expect("built variant")
        };
        let mut pcts: Vec<f64> = (0..rounds)
            .map(|round| {
                // Alternate which runs first, as the round trips do.
                let (few, many) = if round % 2 == 0 {
                    let few = ns(8);
                    (few, ns(256))
                } else {
                    let many = ns(256);
                    (ns(8), many)
                };
                100.0 * few / many
            })
            .collect();
        out.push(Keep {
            variant,
            pct: median(&mut pcts),
        });
    }
    out
}
