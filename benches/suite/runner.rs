//! Runners: the `BenchPool` trait every pool under test implements, and the harness that
//! runs N threads of Get+Put against one.

use crate::hist::{Hist, Waits};
use crate::plan::BATCH;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) trait BenchPool: Sync {
    type Conn;
    fn get(&self) -> Self::Conn;
    fn put(&self, c: Self::Conn);
}

// ---------------------------------------------------------------------------
// Runners
// ---------------------------------------------------------------------------

pub(crate) struct Run {
    pub(crate) ns_per_op: f64,
    pub(crate) ops: u64,
    pub(crate) span_ns: u64,
    pub(crate) waits: Option<Waits>,
}

/// Runs `threads` threads for `dur`. Each makes its state with `init` (before the start
/// line), then repeats `op(state, hist)` in batches of `BATCH` until told to stop. With
/// `timed`, each thread passes its own preallocated histogram (the op records into it).
/// Returns wall time (from the start line to the last join) per op.
pub(crate) fn run<S, I, F>(threads: usize, dur: Duration, timed: bool, init: I, op: F) -> Run
where
    I: Fn(usize) -> S + Sync,
    F: Fn(&mut S, Option<&mut Hist>) + Sync,
{
    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    // The measured span runs from the first thread's start to the last thread's end, in ns
    // since `base`: ops a thread does before the main thread wakes up (256 runnable threads
    // on 2 cores can delay it a lot) are inside the span too.
    let base = Instant::now();
    let first_start = AtomicU64::new(u64::MAX);
    let last_end = AtomicU64::new(0);
    let start_line = Barrier::new(threads + 1);
    let merged = Mutex::new(Hist::new());
    thread::scope(|s| {
        for t in 0..threads {
            let (stop, total, start_line, merged, init, op) =
                (&stop, &total, &start_line, &merged, &init, &op);
            let (first_start, last_end) = (&first_start, &last_end);
            s.spawn(move || {
                let mut state = init(t);
                let mut hist = if timed { Some(Hist::new()) } else { None };
                let batch = BATCH.load(Ordering::Relaxed);
                start_line.wait();
                first_start.fetch_min(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match hist.as_mut() {
                        None => {
                            for _ in 0..batch {
                                op(&mut state, None);
                            }
                        }
                        Some(h) => {
                            for _ in 0..batch {
                                op(&mut state, Some(&mut *h));
                            }
                        }
                    }
                    n += batch;
                }
                last_end.fetch_max(base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                total.fetch_add(n, Ordering::Relaxed);
                if let Some(h) = hist {
                    merged.lock().unwrap().merge(&h);
                }
            });
        }
        start_line.wait();
        thread::sleep(dur);
        stop.store(true, Ordering::Relaxed);
    });
    let span = last_end
        .into_inner()
        .saturating_sub(first_start.into_inner());
    let ops = total.load(Ordering::Relaxed);
    let merged = merged.into_inner().unwrap();
    Run {
        ns_per_op: span as f64 / ops.max(1) as f64,
        ops,
        span_ns: span,
        waits: timed.then(|| Waits::from(&merged)),
    }
}

/// One Get+Put; with a histogram, the get is timed.
#[inline(always)]
pub(crate) fn get_put<P: BenchPool>(p: &P, hist: Option<&mut Hist>) {
    match hist {
        None => {
            let c = p.get();
            p.put(c);
        }
        Some(h) => {
            let t0 = Instant::now();
            let c = p.get();
            h.record(t0.elapsed().as_nanos() as u64);
            p.put(c);
        }
    }
}

/// ns per Get+Put from one run without timers.
pub(crate) fn getput_ns<P: BenchPool>(p: &P, threads: usize, dur: Duration) -> f64 {
    run(threads, dur, false, |_| (), |_, h| get_put(p, h)).ns_per_op
}

/// A Get+Put cell: an untimed run for ns/op, then a timed run for the waits.
pub(crate) fn getput_cell<P: BenchPool>(p: &P, threads: usize, dur: Duration) -> (f64, Waits) {
    let ns = getput_ns(p, threads, dur);
    let timed = run(threads, dur, true, |_| (), |_, h| get_put(p, h));
    (ns, timed.waits.unwrap_or_default())
}
