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
/// floating-point operations in the same order (ξ = x/δ is divided up front, the same single
/// division [`quantize`] performs per step). Lanes with δ = 0, or a length other than the
/// first lane's codes, fall back to [`quantize`]. Returns each lane's largest |u_n| (in the
/// units of `coeffs`, as [`quantize`] does).
pub fn quantize_lanes<const L: usize>(
    coeffs: [&[f64]; L],
    order: &Permutation,
    alphabet: Alphabet,
    delta: [f64; L],
    codes: [&mut [u16]; L],
) -> [f64; L] {
    let n = codes.first().map_or(0, |c| c.len());
    let uniform = (0..L).all(|l| coeffs[l].len() == n && codes[l].len() == n && delta[l] != 0.0);
    let mut max_state = [0.0f64; L];
    if !uniform {
        for (l, (c, q)) in coeffs.into_iter().zip(codes).enumerate() {
            max_state[l] = quantize(c, order, alphabet, delta[l], q);
        }
        return max_state;
    }
    // ξ of every lane, interleaved in step order: xi[k·L + l] = x_l[p(k)] / δ_l (the same
    // division `quantize` performs at step k).
    let mut xi = vec![0.0f64; n * L];
    let mut lane = vec![0.0f64; n];
    for (l, (x, d)) in coeffs.iter().zip(delta).enumerate() {
        // One lane at a time, contiguous, so the divisions vectorise.
        match order {
            Permutation::Identity => {
                for (o, &c) in lane.iter_mut().zip(x.iter()) {
                    *o = c / d;
                }
            }
            Permutation::Explicit(_) => {
                for (k, o) in lane.iter_mut().enumerate() {
                    *o = x.get(order.position(k)).copied().unwrap_or(0.0) / d;
                }
            }
        }
        for (xk, &v) in xi.chunks_exact_mut(L).zip(&lane) {
            if let Some(o) = xk.get_mut(l) {
                *o = v;
            }
        }
    }
    let mut step = vec![0u16; n * L];
    let mut u = [0.0f64; L];
    // `if a > m { a } else { m }` is `m.max(a)` here (m is never NaN, |u| is never −0) and
    // compiles to one max instruction.
    if alphabet.k() == 1 {
        for (xk, ck) in xi.chunks_exact(L).zip(step.chunks_exact_mut(L)) {
            for l in 0..L {
                let v = u[l] + xk[l];
                let up = v >= 0.0;
                u[l] = v - if up { 0.5 } else { -0.5 };
                let a = u[l].abs();
                max_state[l] = if a > max_state[l] { a } else { max_state[l] };
                ck[l] = u16::from(up);
            }
        }
    } else {
        let k_f = f64::from(alphabet.k());
        for (xk, ck) in xi.chunks_exact(L).zip(step.chunks_exact_mut(L)) {
            for l in 0..L {
                let v = u[l] + xk[l];
                let t = v.floor().clamp(-k_f, k_f - 1.0);
                u[l] = v - (t + 0.5);
                let a = u[l].abs();
                max_state[l] = if a > max_state[l] { a } else { max_state[l] };
                // t + K is an integer in 0..2K−1 ≤ 65535.
                ck[l] = (t + k_f) as u16;
            }
        }
    }
    for (l, c) in codes.into_iter().enumerate() {
        for (o, s) in c.iter_mut().zip(step.iter().skip(l).step_by(L)) {
            *o = *s;
        }
    }
    for (m, d) in max_state.iter_mut().zip(delta) {
        *m *= d;
    }
    max_state
}
