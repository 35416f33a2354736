//! Second-order ΣΔ quantization of frame coefficients (the paper's future work; after Benedetto,
//! Powell and Yılmaz, "Second-order Sigma–Delta quantization of finite frame expansions", 2006).
//!
//! With u_0 = u_{−1} = 0 and the steps n = 1..N in the order p, the greedy rule is
//! q_n = Q(2u_{n−1} − u_{n−2} + x_{p(n)}),  u_n = 2u_{n−1} − u_{n−2} + x_{p(n)} − q_n,
//! so that Δ²u = x − q. Computed, like the first-order scheme, in units of δ:
//! ξ = x/δ; v = 2u₁ − u₂ + ξ; t = clamp(⌊v⌋, −K, K − 1); u = v − (t + ½).
//!
//! **Stability (K ≥ 2).** If max_n |x_n| ≤ (K − 3/2)·δ then |u_n| ≤ δ/2 for every n. Proof by
//! induction: with |u_{n−1}|, |u_{n−2}| ≤ δ/2, |v| ≤ 2·δ/2 + δ/2 + (K − 3/2)δ = Kδ, and on
//! [−Kδ, Kδ] the midrise quantizer leaves an error v − Q(v) in [−δ/2, δ/2] (at v = ±Kδ the outer
//! level is exactly δ/2 away). For K = 1 no δ makes the rule provably stable: sdq refuses it.
//!
//! **Certificate.** Summing by parts twice,
//! w − w̃ = (d/N)·[Σ_{n=1}^{N−2} u_n (f_n − 2f_{n+1} + f_{n+2}) + u_{N−1}(f_{N−1} − 2f_N) + u_N f_N]
//! with f_n = e_{p(n)}, so under stability
//! ‖w − w̃‖ ≤ (δ·d / 2N)·(σ₂(F, p) + ‖f_{N−1} − 2f_N‖ + 1),
//! where σ₂(F, p) = Σ_{n=1}^{N−2} ‖f_n − 2f_{n+1} + f_{n+2}‖ is the second-order frame variation
//! ([`crate::frame::Frame::variation2`]; [`Permutation::variation2`] for harmonic frames).

use super::alphabet::Alphabet;
use crate::error::{Error, Result};
use crate::frame::Permutation;

/// The largest |x| / δ for which second-order ΣΔ with 2K levels is certified: K − 3/2.
/// An error for K < 2.
pub fn stable_amplitude(alphabet: Alphabet) -> Result<f64> {
    if alphabet.k() < 2 {
        return Err(Error::param(
            "second-order ΣΔ needs K ≥ 2 (4 levels or more) to be provably stable",
        ));
    }
    Ok(f64::from(alphabet.k()) - 1.5)
}

/// The smallest δ with max|x| ≤ (K − 3/2)·δ (zero for an all-zero vector).
pub fn smallest_delta(max_coeff: f64, alphabet: Alphabet) -> Result<f64> {
    Ok(super::step::smallest_step(
        max_coeff,
        stable_amplitude(alphabet)?,
    ))
}

/// Runs second-order ΣΔ over `coeffs` (indexed by zero-based frame position) in the order
/// `order`, one code per step into `codes`. Returns the largest |u_n| reached (in the units of
/// `coeffs`). Same preconditions as [`super::sigma_delta::quantize`].
pub fn quantize(
    coeffs: &[f64],
    order: &Permutation,
    alphabet: Alphabet,
    delta: f64,
    codes: &mut [u16],
) -> f64 {
    if delta == 0.0 {
        codes.fill(alphabet.k() as u16);
        return 0.0;
    }
    let k_f = f64::from(alphabet.k());
    let (mut u1, mut u2) = (0.0f64, 0.0f64);
    let mut max_state = 0.0f64;
    for (k, code) in codes.iter_mut().enumerate() {
        let xi = coeffs.get(order.position(k)).copied().unwrap_or(0.0) / delta;
        let v = 2.0 * u1 - u2 + xi;
        let t = v.floor().clamp(-k_f, k_f - 1.0);
        let u = v - (t + 0.5);
        max_state = max_state.max(u.abs());
        u2 = u1;
        u1 = u;
        *code = (t + k_f) as u16;
    }
    max_state * delta
}

/// The certified bound (δ·d / 2N)·(σ₂ + ‖f_{N−1} − 2f_N‖ + 1) of a stable second-order vector.
pub fn vector_bound(delta: f64, d: usize, n: usize, sigma2: f64, tail: f64) -> f64 {
    delta * d as f64 / (2.0 * n as f64) * (sigma2 + tail + 1.0)
}
