//! Quantization schemes: first-order ΣΔ (the paper's) and second-order ΣΔ (its future work).
//!
//! Both turn a vector's N frame coefficients into N codes of the same midrise alphabet, and both
//! are decoded the same way, w̃ = (d/N)·E·q: only the encoder and the certificate differ. The
//! certificate of either has the form
//!
//! ‖w − w̃‖ ≤ (δ·d / 2N)·(C + 1)
//!
//! with a frame constant C that depends on the frame, the ordering and the scheme:
//! C = σ(F, p) for first order (Theorem 3.1), and C = σ₂(F, p) + ‖f_{N−1} − 2f_N‖ for second
//! order (see [`super::second_order`]). A file stores C in its `sigma` field, so a reader checks
//! either scheme with the same formula.

use super::alphabet::Alphabet;
use crate::error::{Error, Result};

/// Which ΣΔ recursion turns coefficients into codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// First-order ΣΔ, Δu = x − q: certified for every K ≥ 1 when max|x| ≤ (K − ½)·δ.
    #[default]
    FirstOrder,
    /// Second-order ΣΔ, Δ²u = x − q (greedy rule): certified for K ≥ 2 when
    /// max|x| ≤ (K − 3/2)·δ. With a harmonic frame use an even N (see [`Scheme::prefers_even_n`]).
    SecondOrder,
}

impl Scheme {
    /// The scheme id stored in a file (spec §5.2): 1 first order, 2 second order.
    pub fn id(self) -> u8 {
        match self {
            Scheme::FirstOrder => 1,
            Scheme::SecondOrder => 2,
        }
    }

    /// The scheme with file id `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Scheme::FirstOrder),
            2 => Some(Scheme::SecondOrder),
            _ => None,
        }
    }

    /// The order of the recursion: 1 or 2.
    pub fn order(self) -> u32 {
        match self {
            Scheme::FirstOrder => 1,
            Scheme::SecondOrder => 2,
        }
    }

    /// `first-order` or `second-order`.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::FirstOrder => "first-order",
            Scheme::SecondOrder => "second-order",
        }
    }

    /// The largest |x| / δ for which the scheme is certified with this alphabet: K − ½ for first
    /// order, K − 3/2 for second order. An error if the scheme cannot be certified at all (second
    /// order with K = 1).
    pub fn reach(self, alphabet: Alphabet) -> Result<f64> {
        match self {
            Scheme::FirstOrder => Ok(f64::from(alphabet.k()) - 0.5),
            Scheme::SecondOrder => super::second_order::stable_amplitude(alphabet),
        }
    }

    /// Checks that the scheme can be certified with 2K levels (second order needs K ≥ 2).
    pub fn check_levels(self, alphabet: Alphabet) -> Result<()> {
        self.reach(alphabet).map(|_| ())
    }

    /// Whether the scheme wants an even frame size with a harmonic frame. Second order does, as
    /// measured: its mean error falls like N^−2.46 for even N but only like N^−1.33 for odd N
    /// (d = 64, K = 2, identity order; `cargo run --release --example second_order_rate`), and
    /// the replication in MATH.md §6 saw the same. The certificate holds for both.
    pub fn prefers_even_n(self) -> bool {
        matches!(self, Scheme::SecondOrder)
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Scheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "first-order" | "1" => Ok(Scheme::FirstOrder),
            "second-order" | "2" => Ok(Scheme::SecondOrder),
            other => Err(Error::param(format!(
                "unknown scheme {other:?} (expected first-order or second-order)"
            ))),
        }
    }
}
