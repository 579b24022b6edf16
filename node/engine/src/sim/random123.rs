//! NEURON's random streams for NMODL `RANDOM` variables (NetStim's `ranvar`): Random123's
//! Philox4x32-10 counter-based generator used exactly as NEURON 9.0.2's `src/gnu/nrnran123.cpp`
//! uses it, so that the same stream identifiers give the same numbers, bit for bit.
//!
//! A stream is a 4x32 counter `c` and the 4 words `r = philox4x32(c, key)` drawn from it:
//! - `c[0]` is the sequence number (one block of 4 draws per value), `c[1] = id3`,
//!   `c[2] = id1`, `c[3] = id2` (NEURON's `nrnran123_newstream(id1, id2, id3)`);
//! - `which` (0..=3) is the next word of `r` to hand out;
//! - the key is `{Random123_globalindex, 0}`, one value shared by all streams of a process.
//!
//! Like NEURON, a stream computes its next block eagerly, at the draw that uses up the current
//! one, with the global index current at that moment; `set_ids` changes the counter without
//! recomputing `r`, so the words already computed are still handed out first.

/// Philox4x32 multipliers and Weyl key increments (Random123's `philox.h`).
const PHILOX_M4X32_0: u32 = 0xD251_1F53;
const PHILOX_M4X32_1: u32 = 0xCD9E_8D57;
const PHILOX_W32_0: u32 = 0x9E37_79B9;
const PHILOX_W32_1: u32 = 0xBB67_AE85;
/// `philox4x32(c, k)` is `philox4x32_R(PHILOX4x32_DEFAULT_ROUNDS = 10, c, k)`.
const PHILOX4X32_ROUNDS: usize = 10;

/// Random123's `philox4x32_R(10, ctr, key)`.
pub fn philox4x32_10(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for round in 0..PHILOX4X32_ROUNDS {
        if round > 0 {
            key[0] = key[0].wrapping_add(PHILOX_W32_0);
            key[1] = key[1].wrapping_add(PHILOX_W32_1);
        }
        let p0 = u64::from(PHILOX_M4X32_0) * u64::from(ctr[0]);
        let p1 = u64::from(PHILOX_M4X32_1) * u64::from(ctr[2]);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0];
    }
    ctr
}

/// One `nrnran123_State`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stream {
    c: [u32; 4],
    r: [u32; 4],
    which: u8,
}

/// The key of every stream: word 0 is the global index, word 1 is 0.
fn key(globalindex: u32) -> [u32; 2] {
    [globalindex, 0]
}

impl Stream {
    /// `nrnran123_newstream(id1, id2, id3)`: the ids, at sequence 0.
    pub fn new(ids: [u32; 3], globalindex: u32) -> Self {
        let mut s = Stream::default();
        s.set_ids(ids);
        s.set_seq(0, 0, globalindex);
        s
    }

    /// `nrnran123_setids` (`ranvar.set_ids(id1, id2, id3)`): only the counter changes; the
    /// block already computed is still handed out until it is used up.
    pub fn set_ids(&mut self, [id1, id2, id3]: [u32; 3]) {
        self.c[1] = id3;
        self.c[2] = id1;
        self.c[3] = id2;
    }

    /// The whole state: counter, computed block, next word (for snapshots).
    pub fn raw(&self) -> ([u32; 4], [u32; 4], u8) {
        (self.c, self.r, self.which)
    }

    /// A stream in the state `raw` gave (`which` must be 0 to 3).
    pub fn from_raw(c: [u32; 4], r: [u32; 4], which: u8) -> Stream {
        debug_assert!(which <= 3);
        Stream { c, r, which }
    }

    /// `[id1, id2, id3]` (`nrnran123_getids3`).
    pub fn ids(&self) -> [u32; 3] {
        [self.c[2], self.c[3], self.c[1]]
    }

    /// `nrnran123_setseq(s, seq, which)`: position the stream and compute its block. A `which`
    /// outside 0..=3 means 0, as in NEURON.
    pub fn set_seq(&mut self, seq: u32, which: u8, globalindex: u32) {
        self.which = if which > 3 { 0 } else { which };
        self.c[0] = seq;
        self.r = philox4x32_10(self.c, key(globalindex));
    }

    /// The double overload `nrnran123_setseq(s, seq4which)` behind `ranvar.set_seq(x)` and
    /// NMODL's `random_setseq`: `x = seq*4 + which`, truncated, out of range meaning 0.
    pub fn set_seq4which(&mut self, mut seq4which: f64, globalindex: u32) {
        if seq4which < 0.0 {
            seq4which = 0.0;
        }
        if seq4which > 0xff_ffff_ffff_u64 as f64 {
            seq4which = 0.0;
        }
        let x = (seq4which as u64) & 0x3_ffff_ffff;
        self.set_seq((x >> 2) as u32, (x & 3) as u8, globalindex);
    }

    /// `ranvar.get_seq()`: `seq*4 + which`.
    pub fn seq4which(&self) -> f64 {
        f64::from(self.c[0]) * 4.0 + f64::from(self.which)
    }

    /// `nrnran123_ipick`: the next word; after the fourth word of a block the counter is
    /// incremented (Random123's `incr()`, carrying into the id words) and the next block
    /// computed at once.
    pub fn ipick(&mut self, globalindex: u32) -> u32 {
        let rval = self.r[usize::from(self.which)];
        self.which += 1;
        if self.which > 3 {
            self.which = 0;
            for w in &mut self.c {
                *w = w.wrapping_add(1);
                if *w != 0 {
                    break;
                }
            }
            self.r = philox4x32_10(self.c, key(globalindex));
        }
        rval
    }

    /// `nrnran123_dblpick`: `(u + 1) / (2^32 + 1)`, in (0, 1).
    pub fn dblpick(&mut self, globalindex: u32) -> f64 {
        // NEURON's `static const double SHIFT32 = 1.0 / 4294967297.0`.
        const SHIFT32: f64 = 1.0 / 4294967297.0;
        (f64::from(self.ipick(globalindex)) + 1.0) * SHIFT32
    }

    /// `nrnran123_negexp(s)` (NMODL's `random_negexp(ranvar)`): mean 1.
    pub fn negexp(&mut self, globalindex: u32) -> f64 {
        -self.dblpick(globalindex).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's known-answer vectors for philox4x32 with 10 rounds (`tests/kat_vectors` of
    /// the Random123 distribution NEURON vendors, commit b5cb156): counter, key, result.
    #[test]
    fn philox4x32_10_known_answers() {
        let kat: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            ([0; 4], [0; 2], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]),
            ([u32::MAX; 4], [u32::MAX; 2], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]),
            (
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0],
                [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
            ),
        ];
        for (ctr, key, want) in kat {
            assert_eq!(philox4x32_10(ctr, key), want, "ctr {ctr:08x?} key {key:08x?}");
        }
    }

    fn uniforms(s: &mut Stream, gi: u32, n: usize) -> Vec<f64> {
        (0..n).map(|_| s.dblpick(gi)).collect()
    }

    // The numbers below are NEURON 9.0.2's, printed by tests/golden/random123_draws.py
    // (`ranvar.uniform()` is `nrnran123_dblpick`).

    /// The first NetStim of a process has ids (1, 0, 1); global index 0.
    #[test]
    fn first_netstim_stream_draws_neurons_numbers() {
        let mut s = Stream::new([1, 0, 1], 0);
        let want = [
            0.47589958122095566, 0.3583531143706401, 0.3984944342173416, 0.8763654583887277,
            0.5542494059646853, 0.9524070753361082, 0.3167988002959642, 0.28852530352572786,
            0.7636715784287845,
        ];
        assert_eq!(uniforms(&mut s, 0, want.len()), want);
        assert_eq!(s.seq4which(), 9.0);
    }

    /// `set_ids(123, 456, 789)`, `set_seq(0)` with `Random123_globalindex(7)`.
    #[test]
    fn explicit_ids_and_global_index() {
        let mut s = Stream::new([1, 0, 2], 0);
        s.set_ids([123, 456, 789]);
        s.set_seq4which(0.0, 7);
        let want = [
            0.012836183185494463, 0.04794230217860492, 0.34083655235803767, 0.10746195025102656,
            0.6762192236082119, 0.6961485758199942, 0.9690213294306255, 0.14585332848461036,
            0.21429288405592253,
        ];
        assert_eq!(uniforms(&mut s, 7, want.len()), want);
        assert_eq!(s.ids(), [123, 456, 789]);
    }

    /// Ids changed after two draws: the rest of the block computed with the old ids comes
    /// first; the next block has the new ids (still global index 7).
    #[test]
    fn set_ids_keeps_the_block_already_computed() {
        let mut s = Stream::new([123, 456, 789], 7);
        uniforms(&mut s, 7, 2);
        s.set_ids([1, 2, 3]);
        let want = [
            0.34083655235803767, 0.10746195025102656, 0.588637135785856, 0.760257808547407,
            0.828446151030146, 0.9583543802242832,
        ];
        assert_eq!(uniforms(&mut s, 7, want.len()), want);
        assert_eq!(s.seq4which(), 8.0);
    }

    /// `set_seq(6)` is sequence 1, word 2.
    #[test]
    fn set_seq_selects_block_and_word() {
        let mut s = Stream::new([1, 2, 3], 0);
        s.set_seq4which(6.0, 0);
        assert_eq!(uniforms(&mut s, 0, 3), [0.8738239533561691, 0.8190348900810268, 0.6969058761147535]);
    }

    /// The global index read when the next block is computed is the one in force then.
    #[test]
    fn global_index_changed_mid_block_applies_to_the_next_block() {
        let mut s = Stream::new([1, 2, 3], 0);
        uniforms(&mut s, 0, 3);
        let want = [
            0.12655526885610183, 0.5922759814205868, 0.0895511675417537, 0.44000355376861905,
            0.36523156534758594, 0.0014457795765609994,
        ];
        assert_eq!(uniforms(&mut s, 11, want.len()), want);
    }

    /// The last word of sequence 2^32 - 1: the counter carries into id3.
    #[test]
    fn sequence_overflow_carries_into_id3() {
        let mut s = Stream::new([1, 2, 3], 0);
        s.set_seq4which(((1u64 << 32) - 1) as f64 * 4.0 + 3.0, 0);
        assert_eq!(uniforms(&mut s, 0, 2), [0.5973580736673069, 0.5422894471459349]);
        assert_eq!(s.ids(), [1, 2, 4]);
        assert_eq!(s.seq4which(), 1.0);
    }

    /// `set_seq` of a double: truncated to 34 bits, negative or above 2^40 - 1 meaning 0.
    #[test]
    fn set_seq4which_encoding() {
        let mut s = Stream::new([1, 0, 1], 0);
        for (x, want) in [((1u64 << 34) as f64 + 5.0, 5.0), (-3.0, 0.0), (6.9, 6.0), (2e12, 0.0)] {
            s.set_seq4which(x, 0);
            assert_eq!(s.seq4which(), want, "set_seq({x})");
        }
    }
}
