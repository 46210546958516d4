//! The random stream of one event: xoshiro256++ seeded from the event id through PCG32, and
//! uniform draws made exactly the way the `rand` 0.8 crate makes them (its `SmallRng`,
//! `gen_range` and `gen::<f32>`). The Rust port of the Nexmark generator draws with those, one
//! stream per event seeded by the event id; drawing the same numbers the same way makes every
//! event a pure function of its number, and lets a sample written by that port check this
//! generator field by field (`runtime/tests/nexmark_reference.rs`).

/// A xoshiro256++ generator.
pub(super) struct EventRng {
    s: [u64; 4],
}

impl EventRng {
    /// The stream of event id `seed`: the state filled with the outputs of PCG32 started at
    /// `seed` (the default `seed_from_u64` of `rand_core` 0.6, which `SmallRng` keeps).
    pub(super) fn seeded(seed: u64) -> EventRng {
        const MUL: u64 = 6_364_136_223_846_793_005;
        const INC: u64 = 11_634_580_027_462_260_723;
        let mut state = seed;
        let mut pcg32 = || {
            state = state.wrapping_mul(MUL).wrapping_add(INC);
            let xorshifted = (((state >> 18) ^ state) >> 27) as u32;
            u64::from(xorshifted.rotate_right((state >> 59) as u32))
        };
        let mut s = [0u64; 4];
        for word in &mut s {
            let low = pcg32();
            *word = low | pcg32() << 32;
        }
        if s == [0; 4] {
            // xoshiro's state must not be all zero (never happens: PCG32 does not give eight
            // zeros in a row); `rand` then seeds by SplitMix64 from 0.
            s = [0xe220_a839_7b1d_cdaf, 0x6e78_9e6a_a1b9_65f4, 0x06c4_5d18_8009_454f, 0xf88b_b8a8_724c_81ec];
        }
        EventRng { s }
    }

    /// The next 64 random bits.
    #[inline]
    pub(super) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// The next 32 random bits (the upper half of the next 64).
    #[inline]
    pub(super) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (`n ≥ 1`), drawn from 64-bit words (a `u64`/`usize` range).
    #[inline]
    pub(super) fn below_u64(&mut self, n: u64) -> u64 {
        let n = n.max(1);
        let zone = (n << n.leading_zeros()).wrapping_sub(1);
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) <= zone {
                return (m >> 64) as u64;
            }
        }
    }

    /// Uniform in `0..n` (`n ≥ 1`), drawn from 32-bit words (a `u32`/`i32` range, a slice index).
    #[inline]
    pub(super) fn below_u32(&mut self, n: u32) -> u32 {
        let n = n.max(1);
        let zone = (n << n.leading_zeros()).wrapping_sub(1);
        loop {
            let m = u64::from(self.next_u32()) * u64::from(n);
            if (m as u32) <= zone {
                return (m >> 32) as u32;
            }
        }
    }

    /// A lowercase ASCII letter (a `u8` range `b'a'..=b'z'`).
    #[inline]
    pub(super) fn letter(&mut self) -> u8 {
        const RANGE: u32 = 26;
        const ZONE: u32 = u32::MAX - (u32::MAX - RANGE + 1) % RANGE;
        loop {
            let m = u64::from(self.next_u32()) * u64::from(RANGE);
            if (m as u32) <= ZONE {
                return b'a' + (m >> 32) as u8;
            }
        }
    }

    /// Uniform in `[0, 1)` with 24 random bits.
    #[inline]
    pub(super) fn unit_f32(&mut self) -> f32 {
        const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
        SCALE * (self.next_u32() >> 8) as f32
    }

    /// Draws past `len` random letters (as [`EventRng::letters`] draws them).
    pub(super) fn skip_letters(&mut self, len: usize) {
        let mut rng = EventRng { s: self.s };
        for _ in 0..len {
            rng.letter();
        }
        self.s = rng.s;
    }

    /// Appends `len` random lowercase letters to `out`.
    pub(super) fn letters(&mut self, len: usize, out: &mut String) {
        // Drawn by a copy of the state into a buffer on the stack: with `out` written in the
        // loop, the compiler would store the state back and reload `out` at every letter.
        let mut rng = EventRng { s: self.s };
        let mut chunk = [0u8; 64];
        let mut left = len;
        out.reserve(len);
        while left > 0 {
            let n = left.min(chunk.len());
            for b in &mut chunk[..n] {
                *b = rng.letter();
            }
            // Always ASCII: `letter` gives `a..=z`.
            out.push_str(std::str::from_utf8(&chunk[..n]).unwrap_or_default());
            left -= n;
        }
        self.s = rng.s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first outputs of xoshiro256++ from the state {1, 2, 3, 4}, from the reference
    /// implementation's test vectors (as in `rand_xoshiro`).
    #[test]
    fn xoshiro256plusplus_matches_its_reference_vectors() {
        let mut rng = EventRng { s: [1, 2, 3, 4] };
        let expected = [
            41943041u64,
            58720359,
            3588806011781223,
            3591011842654386,
            9228616714210784205,
            9973669472204895162,
            14011001112246962877,
            12406186145184390807,
            15849039046786891736,
            10450023813501588000,
        ];
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }

    #[test]
    fn draws_stay_in_their_ranges_and_cover_them() {
        let mut rng = EventRng::seeded(7);
        let mut seen = [false; 26];
        for _ in 0..2000 {
            seen[usize::from(rng.letter() - b'a')] = true;
            assert!(rng.below_u64(3) < 3 && rng.below_u32(10_000) < 10_000);
            let f = rng.unit_f32();
            assert!((0.0..1.0).contains(&f));
        }
        assert!(seen.iter().all(|&s| s));
    }
}
