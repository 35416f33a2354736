//! Orderings of frame vectors: the permutation p along which ΣΔ runs, and its frame variation.
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
}
