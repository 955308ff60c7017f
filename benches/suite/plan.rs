//! The run plan: smoke, quick or full, and the cells measured.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// `cargo test`: a few hundred ops per section, to prove the suite still works.
    Smoke,
    /// `cargo bench --bench suite -- --quick`.
    Quick,
    /// `cargo bench --bench suite`.
    Full,
}

pub(crate) struct Plan {
    pub(crate) mode: Mode,
    /// One Get+Put cell (each cell runs twice: untimed for ns/op, timed for waits).
    pub(crate) cell: Duration,
    /// One round-trip cell.
    pub(crate) rt_cell: Duration,
    /// Get+Put pairs counted for allocations.
    pub(crate) alloc_ops: usize,
    /// Conns dialed into the idle list for bytes per conn.
    pub(crate) mem_conns: usize,
}

impl Plan {
    pub(crate) fn new(mode: Mode) -> Plan {
        let ms = Duration::from_millis;
        match mode {
            Mode::Smoke => Plan {
                mode,
                cell: ms(2),
                rt_cell: ms(5),
                alloc_ops: 300,
                mem_conns: 50,
            },
            Mode::Quick => Plan {
                mode,
                cell: ms(100),
                rt_cell: ms(200),
                alloc_ops: 20_000,
                mem_conns: 200,
            },
            Mode::Full => Plan {
                mode,
                cell: ms(1000),
                rt_cell: ms(3000),
                alloc_ops: 100_000,
                mem_conns: 1000,
            },
        }
    }
}

/// Ops between two looks at the stop flag: 16, or 1 in the smoke run (where a thread
/// starved by an unfair pool would otherwise hold up the end of a 2 ms cell).
pub(crate) static BATCH: AtomicU64 = AtomicU64::new(16);

pub(crate) const POOL_SIZES: [usize; 2] = [8, 64];
pub(crate) const THREADS: [usize; 4] = [2, 8, 64, 256];
/// Extra (pool size, threads) cells, in the table only: a small pool where every few
/// gets wait (the waiters' spin-then-park matters most there).
pub(crate) const EXTRA_CELLS: [(usize, usize); 1] = [(2, 8)];
pub(crate) const RT_THREADS: [usize; 2] = [8, 64];
/// HikariCP's alive-bypass window, used by the "hot" variant.
pub(crate) const HOT_BYPASS_MS: i64 = 500;
/// `overtake_window_ms` of the "overtake" variant: gets may pass queued gets for 5 ms.
pub(crate) const OVERTAKE_MS: i64 = 5;
