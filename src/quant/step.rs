//! Step-size (δ) policies, each certified by Theorem 3.1 (MATH.md §2).
//!
//! The certificate needs the ΣΔ state to stay in [−δ/2, δ/2], which holds whenever every frame
//! coefficient satisfies |x_n| ≤ (K − ½)·δ. Since |⟨w, e_n⟩| ≤ ‖w‖ for unit-norm frame vectors,
//! the paper's condition (9), ‖w‖ ≤ (K − ½)·δ, is sufficient; the coefficient condition is the
//! weakest one and gives the smallest certified δ.

use crate::error::{Error, Result};

/// How δ is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepPolicy {
    /// The paper's rule: one δ for the whole tensor, the smallest with max_j ‖w_j‖ ≤ (K − ½)·δ.
    Tensor,
    /// The paper's rule per vector: δ_j the smallest with ‖w_j‖ ≤ (K − ½)·δ_j (one δ per vector).
    Vector,
    /// Per vector, the smallest δ_j with max_n |⟨w_j, e_n⟩| ≤ (K − ½)·δ_j: still certified, and
    /// usually several times smaller than [`StepPolicy::Vector`].
    Coefficient,
    /// One δ given by the caller for the whole tensor (e.g. the network-wide δ of the paper's
    /// 1-bit tables, see [`uniform_delta`]). Vectors that violate the coefficient condition are
    /// marked not certified.
    Explicit(f64),
}

impl StepPolicy {
    /// Whether the policy stores one δ per vector.
    pub fn per_vector(&self) -> bool {
        matches!(self, StepPolicy::Vector | StepPolicy::Coefficient)
    }

    /// A short stable name: `tensor`, `vector`, `coefficient`, `explicit`.
    pub fn name(&self) -> &'static str {
        match self {
            StepPolicy::Tensor => "tensor",
            StepPolicy::Vector => "vector",
            StepPolicy::Coefficient => "coefficient",
            StepPolicy::Explicit(_) => "explicit",
        }
    }

    /// Checks an explicit δ: positive and finite.
    pub fn validate(&self) -> Result<()> {
        match *self {
            StepPolicy::Explicit(d) if !(d.is_finite() && d > 0.0) => Err(Error::param(format!(
                "an explicit step size must be positive and finite, got {d}"
            ))),
            _ => Ok(()),
        }
    }
}

/// The δ values of a quantized tensor: one for all vectors, or one per vector.
#[derive(Debug, Clone, PartialEq)]
pub enum Deltas {
    /// One δ for every vector.
    Tensor(f64),
    /// δ_j for vector j.
    Vector(Vec<f64>),
}

impl Deltas {
    /// δ of vector `j` (for a per-vector table, `j` must be in range; out of range gives NaN).
    #[inline]
    pub fn get(&self, j: usize) -> f64 {
        match self {
            Deltas::Tensor(d) => *d,
            Deltas::Vector(v) => v.get(j).copied().unwrap_or(f64::NAN),
        }
    }

    /// The largest δ.
    pub fn max(&self) -> f64 {
        match self {
            Deltas::Tensor(d) => *d,
            Deltas::Vector(v) => v.iter().copied().fold(0.0, f64::max),
        }
    }
}

/// The smallest δ ≥ 0 (in floating point) with `amplitude ≤ (K − ½)·δ`, where `amplitude` is a
/// norm or a largest |coefficient|. Zero for a zero amplitude.
pub fn smallest_delta(amplitude: f64, k: u32) -> f64 {
    smallest_step(amplitude, f64::from(k) - 0.5)
}

/// The smallest δ ≥ 0 (in floating point) with `amplitude ≤ reach·δ`, for `reach` > 0: the
/// rounding-safe division shared by the first- and second-order step rules.
pub(crate) fn smallest_step(amplitude: f64, reach: f64) -> f64 {
    let mut delta = amplitude / reach;
    while reach * delta < amplitude {
        delta = delta.next_up();
    }
    delta
}

/// The network-wide δ of the paper's 1-bit experiments: one δ for several tensors, the smallest
/// with ‖w‖ ≤ (K − ½)·δ for every vector `w` of every tensor. `max_norms` are the largest vector
/// norms of each tensor (see [`crate::quant::Matrix::max_vector_norm`]).
pub fn uniform_delta(max_norms: impl IntoIterator<Item = f64>, k: u32) -> f64 {
    smallest_delta(max_norms.into_iter().fold(0.0, f64::max), k)
}
