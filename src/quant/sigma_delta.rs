//! First-order ΣΔ quantization of frame coefficients (BPY Definition 3.1, MATH.md §2):
//! u_0 = 0 and, for the steps n = 1..N in the order p,
//! q_n = Q(u_{n−1} + x_{p(n)}),  u_n = u_{n−1} + x_{p(n)} − q_n.
//!
//! In floating point the state is computed exactly as `v = u + x; u = v − q`, so that every
//! implementation that follows the spec produces the same codes.

use super::alphabet::Alphabet;
use crate::frame::Permutation;

/// Runs first-order ΣΔ over `coeffs` (indexed by zero-based frame position) in the order `order`,
/// writing one code per step into `codes` (step order). Returns the largest |u_n| reached.
///
/// `delta` must be finite and ≥ 0; δ = 0 is allowed only for an all-zero vector, whose codes are
/// then all K (the level +½·0 = 0). `order` must be a validated permutation of 0..N−1, and
/// `codes.len() == coeffs.len()`.
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
    let mut u = 0.0f64;
    let mut max_state = 0.0f64;
    for (k, code) in codes.iter_mut().enumerate() {
        let x = coeffs.get(order.position(k)).copied().unwrap_or(0.0);
        let v = u + x;
        let c = alphabet.quantize(v, delta);
        u = v - alphabet.level(c) * delta;
        max_state = max_state.max(u.abs());
        *code = c;
    }
    max_state
}
