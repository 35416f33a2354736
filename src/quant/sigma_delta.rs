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

/// Steps per block of [`quantize_packed_fft_order`].
const BLOCK: usize = 64;

/// Lanes (vectors) of [`quantize_packed_fft_order`]: eight independent chains hide the latency of
/// one step (add, compare, subtract), and one step's eight 1-bit codes fill one u64 (a byte each).
pub(crate) const LANES: usize = 8;

/// Ors the low bits of `word` (the rest zero) into the LSB-first bit stream `out` at bit `pos`;
/// bits past the end of `out` are dropped (they are zero for a valid call).
#[inline]
fn or_bits(out: &mut [u8], pos: usize, word: u64) {
    let wide = u128::from(word) << (pos % 8);
    let at = pos / 8;
    for (i, o) in out.iter_mut().skip(at).take(9).enumerate() {
        *o |= (wide >> (8 * i)) as u8;
    }
}

/// First-order ΣΔ of [`LANES`] vectors at once (interleaved step by step, like
/// [`quantize_lanes`]), writing the codes straight into their b-bit stream (spec §7) instead of
/// `u16` codes.
///
/// `coeffs[l]` holds lane l's frame coefficients in the FFT's index order: frame position p
/// (zero-based) at index (p + 1) mod N, as `HarmonicFrame::analyse_fft_order` leaves them. Only
/// the first `live` lanes are written: lane l's N codes go to stream bits
/// [l·N·b, (l + 1)·N·b) of `out`, which must be zero there (codes are or-ed in).
///
/// Bit-identical to [`quantize`] on each lane: ξ = x/δ is the same single division (taken inside
/// the step loop, off the dependency chain, so the divider works while the chains wait), and the
/// recursion the same operations in the same order. For K > 1 the floor is taken after the clamp
/// (the same integer, since the clamp bounds are integers and floor is monotone) and computed by
/// truncation, exact for |v| ≤ K ≤ 2^15. A lane with δ = 0 gets all codes K, as [`quantize`] gives.
// The step loops index eight lanes' arrays by (lane, step): plain indices are the clearest form,
// and the one LLVM turns into packed operations.
#[allow(clippy::needless_range_loop)]
pub(crate) fn quantize_packed_fft_order(
    coeffs: [&[f64]; LANES],
    order: &Permutation,
    alphabet: Alphabet,
    delta: [f64; LANES],
    live: usize,
    out: &mut [u8],
) {
    const L: usize = LANES;
    let n = coeffs.first().map_or(0, |c| c.len());
    let bits = alphabet.bits() as usize;
    let k = alphabet.k();
    let k_f = f64::from(k);
    // Lanes that are not quantized here (not live, δ = 0, wrong length) read zeros divided by 1.
    let active: [bool; L] =
        std::array::from_fn(|l| l < live && delta[l] != 0.0 && coeffs[l].len() == n);
    let div: [f64; L] = std::array::from_fn(|l| if active[l] { delta[l] } else { 1.0 });
    const ZERO: [f64; BLOCK] = [0.0; BLOCK];
    let mut gathered = [[0.0f64; BLOCK]; L];
    let mut u = [0.0f64; L];
    let mut base = 0;
    while base < n {
        let len = BLOCK.min(n - base);
        // This block's coefficients of each lane: a slice of its buffer when they are contiguous
        // (identity order, not the wrapping last block), else gathered (zero-padded).
        let mut direct: [Option<&[f64; BLOCK]>; L] = [None; L];
        for (l, &c) in coeffs.iter().enumerate() {
            if !active[l] {
                continue;
            }
            let from = base + 1;
            if order.is_identity() && from + BLOCK <= n {
                direct[l] = c.get(from..from + BLOCK).and_then(|b| b.try_into().ok());
                if direct[l].is_some() {
                    continue;
                }
            }
            let g = &mut gathered[l];
            for (i, o) in g.iter_mut().enumerate() {
                *o = if i < len {
                    // Step k reads frame position p(k), at FFT index (p(k) + 1) mod N.
                    let p = order.position(base + i) + 1;
                    c.get(if p == n { 0 } else { p }).copied().unwrap_or(0.0)
                } else {
                    0.0
                };
            }
        }
        let src: [&[f64; BLOCK]; L] = std::array::from_fn(|l| match direct[l] {
            Some(b) => b,
            None if active[l] => &gathered[l],
            None => &ZERO,
        });
        if k == 1 {
            // words[l]: bit s is lane l's code at step base + s (every lane shifts by the same
            // s, so the eight chains run as packed operations).
            let mut words = [0u64; L];
            for s in 0..BLOCK {
                for l in 0..L {
                    let v = u[l] + src[l][s] / div[l];
                    let c = v >= 0.0;
                    u[l] = v - if c { 0.5 } else { -0.5 };
                    words[l] |= u64::from(c) << s;
                }
            }
            for (l, &w) in words.iter().enumerate().take(live) {
                let mut word = if delta[l] == 0.0 { u64::MAX } else { w };
                if len < BLOCK {
                    word &= (1u64 << len) - 1;
                }
                or_bits(out, l * n + base, word);
            }
        } else {
            let mut codes = [[0u16; L]; BLOCK];
            for (s, step) in codes.iter_mut().enumerate() {
                for l in 0..L {
                    let v = u[l] + src[l][s] / div[l];
                    let c = v.clamp(-k_f, k_f - 1.0);
                    // floor(c) for |c| ≤ 2^15: truncate, then step down if that went up.
                    let tr = (c as i64) as f64;
                    let t = if tr > c { tr - 1.0 } else { tr };
                    u[l] = v - (t + 0.5);
                    // t + K is an integer in 0..2K−1 ≤ 65535.
                    step[l] = (t + k_f) as u16;
                }
            }
            for l in 0..live {
                let mut pos = (l * n + base) * bits;
                let (mut acc, mut fill) = (0u64, 0usize);
                for step in codes.iter().take(len) {
                    let c = if delta[l] == 0.0 { k as u16 } else { step[l] };
                    acc |= u64::from(c) << fill;
                    fill += bits;
                    if fill >= 64 {
                        or_bits(out, pos, acc);
                        pos += 64;
                        fill -= 64;
                        acc = if fill == 0 {
                            0
                        } else {
                            u64::from(c) >> (bits - fill)
                        };
                    }
                }
                if fill > 0 {
                    or_bits(out, pos, acc);
                }
            }
        }
        base += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::bitpack;
    use proptest::prelude::*;

    /// Coefficients with many exact ties (multiples of δ/2) and values past the outer levels.
    fn coeffs(n: usize, seed: u64, scale: f64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let r = (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                if i % 3 == 0 {
                    (r * 8.0).round() / 2.0
                } else {
                    r * scale
                }
            })
            .collect()
    }

    proptest! {
        /// The packed 8-lane kernel writes exactly the stream of `quantize` + `bitpack::pack`
        /// for every lane, whatever K, N, ordering, δ (including 0) and number of live lanes.
        #[test]
        fn packed_lanes_equal_quantize_then_pack(
            k in prop_oneof![Just(1u32), Just(2), 1u32..=9, Just(300)],
            n in 1usize..300,
            seed in any::<u64>(),
            live in 1usize..=8,
            permuted in any::<bool>(),
            zero_lane in 0usize..12,
            scale in prop_oneof![Just(0.5), Just(1.0), Just(3.0)],
        ) {
            let alphabet = Alphabet::new(k).unwrap();
            let order = if permuted {
                let mut p: Vec<u32> = (0..n as u32).collect();
                let mut s = seed | 1;
                for i in (1..n).rev() {
                    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                    p.swap(i, (s % (i as u64 + 1)) as usize);
                }
                Permutation::explicit(p, n).unwrap()
            } else {
                Permutation::Identity
            };
            let xs: Vec<Vec<f64>> = (0..8)
                .map(|l| coeffs(n, seed.wrapping_add(l), scale * f64::from(k)))
                .collect();
            let deltas: [f64; 8] = std::array::from_fn(|l| {
                if l == zero_lane { 0.0 } else { [1.0, 0.5, 2.0, 1.0 / 3.0, 0.7][l % 5] }
            });
            let bits = alphabet.bits();
            let mut want_codes = vec![0u16; n * live];
            for l in 0..live {
                let x = if deltas[l] == 0.0 { vec![0.0; n] } else { xs[l].clone() };
                quantize(&x, &order, alphabet, deltas[l], &mut want_codes[l * n..(l + 1) * n]);
            }
            let len = bitpack::packed_len((n * live) as u64, bits).unwrap() as usize;
            let mut want = vec![0u8; len];
            bitpack::pack(&want_codes, bits, &mut want).unwrap();
            // FFT order: frame position p at (p + 1) mod N.
            let fft: Vec<Vec<f64>> = xs
                .iter()
                .map(|x| (0..n).map(|i| x[(i + n - 1) % n]).collect())
                .collect();
            let mut got = vec![0u8; len];
            let lanes: [&[f64]; LANES] = std::array::from_fn(|l| &fft[l][..]);
            quantize_packed_fft_order(lanes, &order, alphabet, deltas, live, &mut got);
            prop_assert_eq!(got, want);
        }
    }
}
