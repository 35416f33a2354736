//! First-order ΣΔ quantization of frame coefficients (BPY Definition 3.1, MATH.md §2):
//! u_0 = 0 and, for the steps n = 1..N in the order p,
//! q_n = Q(u_{n−1} + x_{p(n)}),  u_n = u_{n−1} + x_{p(n)} − q_n.
//!
//! The recursion is computed in units of δ, exactly as: ξ = x_{p(n)} / δ; v = u + ξ;
//! t = clamp(⌊v⌋, −K, K − 1); code = t + K; u = v − (t + ½). This is the same quantizer (an exact
//! tie goes up, values past the outer levels saturate) with the division taken off the serial
//! dependency chain, so the loop runs at the speed of one add, one floor and one subtract per step.

use super::alphabet::Alphabet;
use crate::frame::Permutation;

/// Runs first-order ΣΔ over `coeffs` (indexed by zero-based frame position) in the order `order`,
/// writing one code per step into `codes` (step order). Returns the largest |u_n| reached, in the
/// units of `coeffs` (so the state bound of Theorem 3.1 reads `max_state ≤ δ/2`).
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
    let x_at = |k: usize| coeffs.get(order.position(k)).copied().unwrap_or(0.0) / delta;
    let mut u = 0.0f64;
    let mut max_state = 0.0f64;
    if alphabet.k() == 1 {
        // Two levels ±½: t = 0 if v ≥ 0 else −1.
        for (k, code) in codes.iter_mut().enumerate() {
            let v = u + x_at(k);
            let up = v >= 0.0;
            u = v - if up { 0.5 } else { -0.5 };
            max_state = max_state.max(u.abs());
            *code = u16::from(up);
        }
    } else {
        let k_f = f64::from(alphabet.k());
        for (k, code) in codes.iter_mut().enumerate() {
            let v = u + x_at(k);
            let t = v.floor().clamp(-k_f, k_f - 1.0);
            u = v - (t + 0.5);
            max_state = max_state.max(u.abs());
            // t + K is an integer in 0..2K−1 ≤ 65535.
            *code = (t + k_f) as u16;
        }
    }
    max_state * delta
}

/// [`quantize`] on `L` vectors at once, interleaved step by step so that the `L` independent
/// serial chains overlap (one chain is latency-bound: add, compare, subtract per step).
///
/// Bit-identical to calling [`quantize`] on each lane: every lane performs exactly the same
/// floating-point operations in the same order (ξ = x/δ is divided up front, in place in
/// `coeffs`, which [`quantize`] computes with the same single division). `coeffs` is
/// overwritten with ξ. Lanes with δ = 0 or of a length other than `codes`' fall back to
/// [`quantize`] (on the original coefficients). Returns each lane's largest |u_n| (in the units of
/// `coeffs`, as [`quantize`] does).
pub fn quantize_lanes<const L: usize>(
    coeffs: [&mut [f64]; L],
    order: &Permutation,
    alphabet: Alphabet,
    delta: [f64; L],
    codes: [&mut [u16]; L],
) -> [f64; L] {
    let n = codes[0].len();
    let uniform = (0..L).all(|l| coeffs[l].len() == n && codes[l].len() == n && delta[l] != 0.0);
    let mut max_state = [0.0f64; L];
    if !uniform {
        for (l, (c, q)) in coeffs.into_iter().zip(codes).enumerate() {
            max_state[l] = quantize(c, order, alphabet, delta[l], q);
        }
        return max_state;
    }
    let mut xi = coeffs;
    for (x, &d) in xi.iter_mut().zip(&delta) {
        for v in x.iter_mut() {
            *v /= d;
        }
    }
    let mut u = [0.0f64; L];
    let identity = matches!(order, Permutation::Identity);
    // Reads ξ at step k: frame position order(k) (k itself for the identity).
    let pos = |k: usize| if identity { k } else { order.position(k) };
    if alphabet.k() == 1 {
        for k in 0..n {
            let p = pos(k);
            for l in 0..L {
                let v = u[l] + xi[l].get(p).copied().unwrap_or(0.0);
                let up = v >= 0.0;
                u[l] = v - if up { 0.5 } else { -0.5 };
                max_state[l] = max_state[l].max(u[l].abs());
                if let Some(c) = codes[l].get_mut(k) {
                    *c = u16::from(up);
                }
            }
        }
    } else {
        let k_f = f64::from(alphabet.k());
        for k in 0..n {
            let p = pos(k);
            for l in 0..L {
                let v = u[l] + xi[l].get(p).copied().unwrap_or(0.0);
                let t = v.floor().clamp(-k_f, k_f - 1.0);
                u[l] = v - (t + 0.5);
                max_state[l] = max_state[l].max(u[l].abs());
                if let Some(c) = codes[l].get_mut(k) {
                    *c = (t + k_f) as u16;
                }
            }
        }
    }
    for (m, d) in max_state.iter_mut().zip(delta) {
        *m *= d;
    }
    max_state
}
