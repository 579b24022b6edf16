//! The step kernels over tiles, compiled once per instruction set and chosen at run time:
//! AVX-512 (8 lanes per instruction), AVX2 (4), or portable code (SSE2 on x86_64). Every
//! variant runs the same IEEE operations in the same order on each lane — Rust never fuses a
//! multiply and an add, whatever the target features — so every variant gives the same bits
//! (the golden tests run each variant this CPU has).

use super::cells::Tile;
use crate::mech::Rates;

/// An instruction set for the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernels {
    Avx512,
    Avx2,
    Portable,
}

impl Kernels {
    pub const ALL: [Kernels; 3] = [Kernels::Avx512, Kernels::Avx2, Kernels::Portable];

    pub fn name(self) -> &'static str {
        match self {
            Kernels::Avx512 => "avx512",
            Kernels::Avx2 => "avx2",
            Kernels::Portable => "portable",
        }
    }

    /// Whether this CPU executes the variant.
    pub fn runs_here(self) -> bool {
        match self {
            Kernels::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Kernels::Avx512 => {
                Kernels::Avx2.runs_here()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512dq")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernels::Avx2 | Kernels::Avx512 => false,
        }
    }

    /// The widest variant this CPU executes.
    pub fn best() -> Kernels {
        static BEST: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Kernels::ALL.into_iter().find(|k| k.runs_here()).unwrap_or(Kernels::Portable))
    }
}

/// What a call runs over each tile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Work {
    /// The first half of a step (currents at t, matrix, solve: v_{n+1}) and, with `states`,
    /// the states too; with `outputs`, the currents write their recordable outputs.
    Step { t: f64, dt: f64, states: bool, outputs: bool },
    /// The states of a step whose first half ran before a pause, at t = t_{n+1}.
    States { t: f64, dt: f64 },
    /// `steps` whole steps from t = t_n, one tile after the other (nothing from outside acts
    /// on a tile between them: see `Sim::window_steps`); the threshold crossings after each
    /// step but the last go to the tile's `window_fired`, its probes' values after each step
    /// to its `probed`.
    Window { t: f64, dt: f64, steps: u32, outputs: bool },
}

#[inline(always)]
fn run(tiles: &mut [Tile], work: Work, rates: &Rates, scratch: &mut [f64]) {
    for tile in tiles {
        // A tile of one cell (a model of one cell, or a cell unlike any other) gets kernels
        // made for one lane: no loops over lanes at all.
        if tile.lanes == 1 {
            run_tile::<1>(tile, work, rates, scratch);
        } else {
            run_tile::<0>(tile, work, rates, scratch);
        }
    }
}

#[inline(always)]
fn run_tile<const N: usize>(tile: &mut Tile, work: Work, rates: &Rates, scratch: &mut [f64]) {
    match work {
        Work::Step { t, dt, states, outputs } => {
            tile.advance_v::<N>(t, dt, outputs, scratch);
            if states {
                // t_{n+1} as the step computes it: (t_n + dt/2) + dt/2.
                tile.states::<N>(t + 0.5 * dt, dt, rates);
            }
        }
        Work::States { t, dt } => tile.states::<N>(t, dt, rates),
        Work::Window { t, dt, steps, outputs } => {
            let mut t = t;
            tile.probed.clear();
            for j in 0..steps {
                // t as the calling thread advances it: t_n + dt/2 for the currents, then
                // (t_n + dt/2) + dt/2.
                let mid = t + 0.5 * dt;
                tile.advance_v::<N>(mid, dt, outputs, scratch);
                tile.states::<N>(mid + 0.5 * dt, dt, rates);
                t = mid + 0.5 * dt;
                if !tile.probes.is_empty() {
                    tile.probe();
                }
                if j + 1 < steps {
                    tile.window_crossings(j);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
fn run_avx512(tiles: &mut [Tile], work: Work, rates: &Rates, scratch: &mut [f64]) {
    run(tiles, work, rates, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2(tiles: &mut [Tile], work: Work, rates: &Rates, scratch: &mut [f64]) {
    run(tiles, work, rates, scratch)
}

/// Runs `work` over `tiles` with the kernels `k` (which must run here: see `Sim::set_kernels`).
/// `scratch` is the calling thread's rows for the matrix of one tile at a time (`rhs` and `d`,
/// see `Tile::advance_v`), at least `Cells::scratch_len` long: made once, so that a step
/// allocates nothing.
pub fn dispatch(k: Kernels, tiles: &mut [Tile], work: Work, rates: &Rates, scratch: &mut [f64]) {
    match k {
        // SAFETY: `k` runs here (checked when it was chosen), so the CPU has these features.
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx512 => unsafe { run_avx512(tiles, work, rates, scratch) },
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx2 => unsafe { run_avx2(tiles, work, rates, scratch) },
        _ => run(tiles, work, rates, scratch),
    }
}
