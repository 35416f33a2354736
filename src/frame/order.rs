//! Orderings of frame vectors: the permutation p along which ΣΔ runs, and its frame variation
//! (first and second order) for harmonic frames.
//!
//! Positions are zero-based here and in the file: step k (k = 0..N−1) of the ΣΔ recursion uses
//! frame vector e_{p\[k\]+1}, i.e. the frame vector at slice position `p[k]`.

use super::harmonic::{HarmonicFrame, Workspace};
use crate::error::{Error, Result};

/// The order in which ΣΔ visits the frame vectors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Permutation {
    /// p(n) = n: the natural order, with σ in closed form for harmonic frames.
    #[default]
    Identity,
    /// An explicit permutation of 0..N−1 (zero-based positions), validated on construction.
    Explicit(Vec<u32>),
}

impl Permutation {
    /// Validates `order` as a true permutation of 0..n−1. An order equal to the identity is
    /// returned as [`Permutation::Identity`], so equal orderings have one representation.
    pub fn explicit(order: Vec<u32>, n: usize) -> Result<Self> {
        let p = Permutation::Explicit(order);
        p.validate(n)?;
        Ok(if p.is_identity() {
            Permutation::Identity
        } else {
            p
        })
    }

    /// True for the identity ordering (however it is represented).
    pub fn is_identity(&self) -> bool {
        match self {
            Permutation::Identity => true,
            Permutation::Explicit(o) => o.iter().enumerate().all(|(k, &p)| p as usize == k),
        }
    }

    /// Checks that this is a permutation of 0..n−1: the right length, every entry in range, no
    /// entry twice.
    pub fn validate(&self, n: usize) -> Result<()> {
        let Permutation::Explicit(order) = self else {
            return Ok(());
        };
        if order.len() != n {
            return Err(Error::param(format!(
                "permutation has {} entries, the frame has N = {n}",
                order.len()
            )));
        }
        let mut seen = vec![false; n];
        for (k, &p) in order.iter().enumerate() {
            match seen.get_mut(p as usize) {
                None => {
                    return Err(Error::param(format!(
                        "permutation entry {k} is {p}, outside 0..{n}"
                    )))
                }
                Some(true) => {
                    return Err(Error::param(format!(
                        "permutation entry {k} repeats position {p}"
                    )))
                }
                Some(s) => *s = true,
            }
        }
        Ok(())
    }

    /// The frame position (zero-based) used at ΣΔ step `k`. The permutation must have been
    /// validated for the frame size, so `k < N` is in range.
    #[inline]
    pub fn position(&self, k: usize) -> usize {
        match self {
            Permutation::Identity => k,
            Permutation::Explicit(o) => o.get(k).map_or(k, |&p| p as usize),
        }
    }

    /// Frame variation σ(F, p) = Σ_{k=0}^{N−2} ‖e_{p\[k\]} − e_{p\[k+1\]}‖ for a harmonic frame:
    /// in closed form for the identity, otherwise from the Gram function (O(N log N)).
    pub fn variation(&self, frame: &HarmonicFrame, ws: &mut Workspace) -> Result<f64> {
        let n = frame.frame_size();
        self.validate(n)?;
        let Permutation::Explicit(order) = self else {
            return Ok(frame.variation_identity());
        };
        let g = frame.gram_function(ws)?;
        let mut sigma = 0.0;
        for pair in order.windows(2) {
            let diff = (pair[0] as usize + n - pair[1] as usize) % n;
            // ‖e_a − e_b‖² = 2 − 2⟨e_a, e_b⟩ for unit vectors.
            let dist2 = (2.0 - 2.0 * g.get(diff).copied().unwrap_or(1.0)).max(0.0);
            sigma += dist2.sqrt();
        }
        Ok(sigma)
    }

    /// The second-order variation σ₂(F, p) = Σ_{n=1}^{N−2} ‖f_n − 2f_{n+1} + f_{n+2}‖ and the tail
    /// length ‖f_{N−1} − 2f_N‖ of a harmonic frame in this order, with f_n = e_{p(n)} (the frame
    /// constants of second-order ΣΔ): in closed form for the identity, from the Gram function
    /// otherwise. Errors if this is not a permutation of 0..N−1.
    pub fn variation2(&self, frame: &HarmonicFrame, ws: &mut Workspace) -> Result<(f64, f64)> {
        let (n, d) = (frame.frame_size(), frame.dim());
        self.validate(n)?;
        let g = frame.gram_function(ws)?;
        let gram = |a: usize, b: usize| g.get((a + n - b) % n).copied().unwrap_or(1.0);
        // ‖a − 2b + c‖² = 6 − 4⟨a,b⟩ − 4⟨b,c⟩ + 2⟨a,c⟩ and ‖a − 2b‖² = 5 − 4⟨a,b⟩ for unit vectors.
        let second = |a: usize, b: usize, c: usize| {
            (6.0 - 4.0 * gram(a, b) - 4.0 * gram(b, c) + 2.0 * gram(a, c))
                .max(0.0)
                .sqrt()
        };
        let tail = |a: usize, b: usize| (5.0 - 4.0 * gram(a, b)).max(0.0).sqrt();
        if n < 2 {
            return Ok((0.0, 1.0));
        }
        match self {
            Permutation::Identity => {
                // Every step has the same length √((2/d)·Σ_j 16 sin⁴(πj/N)).
                let step2: f64 = (1..=d / 2)
                    .map(|j| {
                        let s = (std::f64::consts::PI * j as f64 / n as f64).sin();
                        16.0 * s.powi(4)
                    })
                    .sum::<f64>()
                    * (2.0 / d as f64);
                Ok(((n as f64 - 2.0).max(0.0) * step2.sqrt(), tail(n - 2, n - 1)))
            }
            Permutation::Explicit(p) => {
                let sigma2 = p
                    .windows(3)
                    .map(|w| second(w[0] as usize, w[1] as usize, w[2] as usize))
                    .sum();
                let t = match p.get(n - 2..) {
                    Some([a, b]) => tail(*a as usize, *b as usize),
                    _ => 3.0,
                };
                Ok((sigma2, t))
            }
        }
    }
}
