//! The midrise alphabet A_K^δ = {(−K + ½)δ, …, (K − ½)δ} and the scalar quantizer Q (MATH.md §2).
//!
//! A code c ∈ {0, …, 2K−1} stands for the level (c − K + ½)·δ and is stored in
//! ⌈log2 2K⌉ bits (1 bit for K = 1).

use crate::error::{Error, Result};
use crate::limits;

/// The alphabet of 2K levels. The step δ is supplied per call, since it may vary per vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alphabet {
    k: u32,
}

impl Alphabet {
    /// The alphabet with 2K levels, 1 ≤ K ≤ [`limits::MAX_LEVELS`].
    pub fn new(k: u32) -> Result<Self> {
        if k == 0 {
            return Err(Error::param("the number of levels K must be at least 1"));
        }
        if k > limits::MAX_LEVELS {
            return Err(Error::Limit {
                what: "levels K",
                value: u64::from(k),
                limit: u64::from(limits::MAX_LEVELS),
            });
        }
        Ok(Alphabet { k })
    }

    /// K: half the number of levels.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// Bits per stored code, ⌈log2 2K⌉ (1 for K = 1, 2 for K = 2, 3 for K = 3 or 4, …).
    pub fn bits(&self) -> u32 {
        bits_for_levels(self.k)
    }

    /// The level of code `c` in units of δ: c − K + ½. Codes past 2K − 1 are the caller's error;
    /// decoders validate codes against K before calling this.
    #[inline]
    pub fn level(&self, code: u16) -> f64 {
        f64::from(code) - f64::from(self.k) + 0.5
    }

    /// Q(v): the code of the level nearest to `v` for step `delta` > 0; an exact tie goes up, and
    /// values past the outermost levels saturate: c = clamp(⌊v/δ⌋, −K, K−1) + K.
    #[inline]
    pub fn quantize(&self, v: f64, delta: f64) -> u16 {
        let k = f64::from(self.k);
        let t = (v / delta).floor().clamp(-k, k - 1.0);
        // t + K is an integer in 0..2K−1 ≤ 65535 (NaN, impossible for validated input, maps to 0).
        (t + k) as u16
    }
}

/// ⌈log2 2K⌉ for K ≥ 1.
pub fn bits_for_levels(k: u32) -> u32 {
    let levels = 2 * u64::from(k.max(1));
    64 - (levels - 1).leading_zeros()
}
