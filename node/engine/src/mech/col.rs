//! Columns that tiles may share: the per-entry values a step only reads (parameters, point
//! factors, decay constants, the matrix's axial coefficients, cm, thresholds).
//!
//! Why: a population's tiles mostly hold the same parameter values. Every step reads every
//! parameter column of every tile, and past a few thousand cells those reads come from the
//! third-level cache or memory, which limits the step (measured before: 10,000 seed cells
//! cost 13-21% more per cell-step than 1,000, 100,000 cells 2.4-2.6x; BENCHMARKS.md "Engine
//! core v3" has the figures after). A column whose values equal another
//! tile's is the same allocation after `Interner::share`, so all those tiles read one copy that
//! stays in the first-level cache. The kernels see `&[f64]` either way; a write to a shared
//! column copies it first (copy on write), so sharing never changes a value, only where it is
//! kept.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A column of values, possibly shared with other tiles' columns of equal values.
#[derive(Clone, PartialEq)]
pub struct Col(Arc<[f64]>);

impl Col {
    pub fn new(len: usize, init: f64) -> Col {
        Col(vec![init; len].into())
    }

    /// Entry `at` becomes `x`; the column is written (and so copied, if shared) only if the
    /// value differs: loading a state with the same parameters keeps them shared.
    pub fn set(&mut self, at: usize, x: f64) {
        if self[at].to_bits() != x.to_bits() {
            self[at] = x;
        }
    }

    /// Whether `other` is the same allocation (shared), not only equal values.
    pub fn shares(&self, other: &Col) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Col {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl Deref for Col {
    type Target = [f64];
    #[inline(always)]
    fn deref(&self) -> &[f64] {
        &self.0
    }
}

impl DerefMut for Col {
    /// The values to change: this column's own copy (made now if it is shared). Borrow once
    /// for a loop of writes (`let c = &mut *col;`): each call checks the sharing anew.
    fn deref_mut(&mut self) -> &mut [f64] {
        if Arc::get_mut(&mut self.0).is_none() {
            self.0 = Arc::from(&self.0[..]);
        }
        Arc::get_mut(&mut self.0).expect("a fresh copy is not shared")
    }
}

/// A column to load a state into (`Block::load`): a block's own values, or a column tiles may
/// share, written only where a value differs (`Col::set`).
pub enum ColMut<'a> {
    Own(&'a mut [f64]),
    Col(&'a mut Col),
}

impl ColMut<'_> {
    pub fn set(&mut self, at: usize, x: f64) {
        match self {
            ColMut::Own(v) => v[at] = x,
            ColMut::Col(c) => c.set(at, x),
        }
    }
}

impl<'a> From<&'a mut Vec<f64>> for ColMut<'a> {
    fn from(v: &'a mut Vec<f64>) -> Self {
        ColMut::Own(v)
    }
}

impl<'a> From<&'a mut Col> for ColMut<'a> {
    fn from(c: &'a mut Col) -> Self {
        ColMut::Col(c)
    }
}

/// Makes columns of equal values (bit for bit) one shared allocation.
#[derive(Default)]
pub struct Interner {
    seen: HashMap<(usize, u64), Vec<Arc<[f64]>>>,
}

impl Interner {
    pub fn share_all<'a>(&mut self, cols: impl IntoIterator<Item = &'a mut Col>) {
        cols.into_iter().for_each(|c| self.share(c));
    }

    pub fn share(&mut self, col: &mut Col) {
        // The bits' XXH64 (as the state hash): a key to find candidates, then compared whole.
        let mut hasher = crate::xxh64::Xxh64::new();
        col.iter().for_each(|x| hasher.word(x.to_bits()));
        let h = hasher.finish();
        let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        let bucket = self.seen.entry((col.len(), h)).or_default();
        match bucket.iter().find(|c| same(c, &col.0)) {
            Some(c) => col.0 = c.clone(),
            None => bucket.push(col.0.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_columns_share_and_a_write_unshares_only_the_writer() {
        let mut cols = [Col::new(4, 1.5), Col::new(4, 1.5), Col::new(4, 2.0), Col::new(3, 1.5)];
        let mut i = Interner::default();
        cols.iter_mut().for_each(|c| i.share(c));
        assert!(cols[0].shares(&cols[1]));
        assert!(!cols[0].shares(&cols[2]), "different values");
        assert!(!cols[0].shares(&cols[3]), "different lengths");
        cols[1][2] = 7.0;
        assert!(!cols[0].shares(&cols[1]));
        assert_eq!(&cols[0][..], &[1.5; 4]);
        assert_eq!(&cols[1][..], &[1.5, 1.5, 7.0, 1.5]);
    }

    #[test]
    fn zero_and_negative_zero_are_not_merged() {
        let mut cols = [Col::new(2, 0.0), Col::new(2, -0.0)];
        let mut i = Interner::default();
        cols.iter_mut().for_each(|c| i.share(c));
        assert!(!cols[0].shares(&cols[1]));
        assert_eq!(cols[1][0].to_bits(), (-0.0f64).to_bits());
    }
}
