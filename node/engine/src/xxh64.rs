//! XXH64 (xxHash, 64 bits, seed 0) over a sequence of 64-bit words, streamed: the digest of
//! the words' little-endian bytes, exactly as the reference `XXH64(bytes, len, 0)` computes
//! it (the spec: github.com/Cyan4973/xxHash, doc/xxhash_spec.md). The state hash
//! (`Sim::state_hash`) is this over the state's words, so any implementation of XXH64 (the
//! `xxhash` Python package, `xxhsum -H1`) can check it from a snapshot file.
//!
//! Only whole words are hashed, so the tail rules for 4-byte and 1-byte remainders never
//! apply.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline(always)]
fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
}

#[inline(always)]
fn merge(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

/// Words buffered before they are hashed in a tight loop (a multiple of the 4-word stripe).
const BUF: usize = 64;

/// A streaming XXH64 of 64-bit words.
#[derive(Debug, Clone)]
pub struct Xxh64 {
    acc: [u64; 4],
    /// Words not hashed yet.
    buf: [u64; BUF],
    filled: usize,
    /// Words hashed so far (those in `buf` not counted).
    hashed: u64,
}

impl Default for Xxh64 {
    fn default() -> Self {
        Xxh64 { acc: [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)], buf: [0; BUF], filled: 0, hashed: 0 }
    }
}

impl Xxh64 {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one word (its 8 little-endian bytes).
    #[inline(always)]
    pub fn word(&mut self, w: u64) {
        if self.filled == BUF {
            self.stripes();
        }
        self.buf[self.filled] = w;
        self.filled += 1;
    }

    /// Hashes the whole stripes in the buffer; keeps the rest.
    fn stripes(&mut self) {
        let whole = self.filled / 4 * 4;
        let [mut a, mut b, mut c, mut d] = self.acc;
        for s in self.buf[..whole].chunks_exact(4) {
            a = round(a, s[0]);
            b = round(b, s[1]);
            c = round(c, s[2]);
            d = round(d, s[3]);
        }
        self.acc = [a, b, c, d];
        self.hashed += whole as u64;
        self.buf.copy_within(whole..self.filled, 0);
        self.filled -= whole;
    }

    pub fn words(&mut self, ws: &[u64]) {
        for &w in ws {
            self.word(w);
        }
    }

    /// The digest of everything appended so far.
    pub fn finish(&self) -> u64 {
        let mut me = self.clone();
        me.stripes();
        let total = me.hashed + me.filled as u64;
        let mut h = if total >= 4 {
            let [v1, v2, v3, v4] = me.acc;
            let mut h = v1.rotate_left(1).wrapping_add(v2.rotate_left(7)).wrapping_add(v3.rotate_left(12)).wrapping_add(v4.rotate_left(18));
            for v in me.acc {
                h = merge(h, v);
            }
            h
        } else {
            P5
        };
        h = h.wrapping_add(total * 8);
        for &w in &me.buf[..me.filled] {
            h ^= round(0, w);
            h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^= h >> 32;
        h
    }
}

/// XXH64 of a list of words.
pub fn of_words(ws: &[u64]) -> u64 {
    let mut h = Xxh64::new();
    h.words(ws);
    h.finish()
}

/// Text as words: its byte length, then its bytes in words (little-endian, the last one
/// padded with zeros).
pub fn text_words(s: &str, out: &mut Vec<u64>) {
    out.push(s.len() as u64);
    for chunk in s.as_bytes().chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        out.push(u64::from_le_bytes(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_to_words(b: &[u8]) -> Vec<u64> {
        b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect()
    }

    /// Known answers of the reference implementation (`python3 -c "import xxhash;
    /// print(xxhash.xxh64(b).hexdigest())"` with the xxhash package 4.1.0 (libxxhash 0.8.4), b the bytes 0, 1, 2, ...) for inputs of 0,
    /// 8, 16, 24, 32, 40 and 80 bytes: every path (no stripe, stripes, tails).
    /// Streaming in any split gives the digest of the whole.
    #[test]
    fn streaming_is_the_whole() {
        let ws: Vec<u64> = (0..300u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        for n in [0, 1, 3, 4, 5, 63, 64, 65, 128, 131, 300] {
            let mut h = Xxh64::new();
            for &w in &ws[..n] {
                h.word(w);
            }
            let mut again = Xxh64::new();
            again.words(&ws[..n / 2]);
            again.words(&ws[n / 2..n]);
            assert_eq!(h.finish(), again.finish(), "{n}");
        }
    }

    #[test]
    fn reference_digests() {
        let data: Vec<u8> = (0u8..80).collect();
        let want: [(usize, u64); 7] = [
            (0, 0xef46db3751d8e999),
            (8, 0x884a173614b81b8d),
            (16, 0x44b6ef2fb84169f7),
            (24, 0xdd14a0292632be9b),
            (32, 0xcbf59c5116ff32b4),
            (40, 0xf5da40f1b11741e9),
            (80, 0xbabc069ffd7e24b3),
        ];
        for (n, h) in want {
            assert_eq!(of_words(&bytes_to_words(&data[..n])), h, "{n} bytes");
        }
        // 1600 bytes (i % 256): more than the buffer holds.
        let long: Vec<u8> = (0..1600usize).map(|i| (i % 256) as u8).collect();
        assert_eq!(of_words(&bytes_to_words(&long)), 0xab79953b61bb2813);
    }
}
