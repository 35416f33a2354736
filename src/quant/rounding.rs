//! Zero-sum rounding: pcm codes whose rounding errors along a vector sum to about zero.
//!
//! Rounding each weight to the nearest multiple of its step leaves errors e_k that are about
//! independent, so their sum along a vector grows as δ·√(d/12). A layer whose inputs share a
//! common offset μ — activations after ReLU or SiLU are mostly positive, a LayerNorm's output
//! carries its learned shift — turns that sum into an output offset μ·Σ_k e_k, the same at every
//! position and for every input: a bias shift that the layers after it do not average away.
//! Zero-sum rounding moves the fewest codes by one level, those of the weights that lie nearest
//! to the midpoint between two levels, until |Σ_k e_k| is at most half a step. A weight at
//! distance ½ − t from the midpoint (in steps) costs 2t·δ² more squared error when moved, so with
//! d in the hundreds the moves cost almost nothing: about √(d/12)/2 codes move, each near t = 0.
//!
//! The vector's certificate (‖w − w̃‖ ≤ ½·(Σ_k δ_k²)^½ without a frame, [`super::pcm`]) is kept:
//! a move that would take the vector's squared error past ¼·Σ_k δ_k² is not made. Only the
//! encoder changes: the decoder rebuilds q_k·δ_k as before.

/// How a pcm encoder turns coefficients into codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rounding {
    /// Each code the nearest level (ties away from zero), independently.
    Nearest,
    /// Nearest levels, then the fewest codes moved by one so that each vector's rounding errors
    /// sum to within half a step of zero ([`zero_sum`]). Used without a frame only (there a
    /// code is a weight); with a frame, [`Rounding::Nearest`].
    #[default]
    ZeroSum,
}

/// Moves codes of one vector so that its rounding errors sum to within half a step of zero.
///
/// `y` holds the vector's coefficients without a frame (the weights times their signs `signs`,
/// so weight k's error is `signs[k]·(y[k] − codes[k]·δ_k)`), `steps` one step per `group`
/// coefficients, `codes` their nearest-level codes (changed in place). A code moves by one level
/// towards its coefficient's other neighbour, the coefficients nearest to a midpoint first; no
/// code passes ±`max_code`, and no move takes the vector's squared error past ¼·Σ_k δ_k² (its
/// certified bound). Slices of different lengths are cut to the shortest; a zero or non-finite
/// step leaves its codes alone.
pub fn zero_sum(
    y: &[f64],
    signs: &[f64],
    steps: &[f32],
    group: usize,
    max_code: u32,
    codes: &mut [i32],
) {
    let len = y.len().min(signs.len()).min(codes.len());
    let group = group.max(1);
    let step = |k: usize| -> f64 { steps.get(k / group).map_or(0.0, |&s| f64::from(s)).max(0.0) };
    let usable = |s: f64| s > 0.0 && s.is_finite();
    // Each coefficient's error, the weight-domain sum, the squared error and its limit.
    let mut sum = 0.0;
    let mut err2 = 0.0;
    let mut limit = 0.0;
    let mut errs = Vec::with_capacity(len);
    for (k, ((&x, &s), &q)) in y.iter().zip(signs).zip(codes.iter()).take(len).enumerate() {
        let delta = step(k);
        let e = if usable(delta) {
            x - f64::from(q) * delta
        } else {
            0.0
        };
        sum += s * e;
        err2 += e * e;
        if usable(delta) {
            limit += 0.25 * delta * delta;
        }
        errs.push(e);
    }
    if !sum.is_finite() || sum == 0.0 {
        return;
    }
    let dir = sum.signum();
    // Candidates: moving code k by sign(e_k) lowers the sum by δ_k when signs[k]·e_k has the
    // sum's sign. Cheapest first: |e_k|/δ_k nearest ½; ties by position.
    let mut cand: Vec<(f64, usize)> = errs
        .iter()
        .zip(signs)
        .enumerate()
        .filter_map(|(k, (&e, &s))| {
            let delta = step(k);
            let q = codes.get(k).copied().unwrap_or(0);
            let next = i64::from(q) + if e > 0.0 { 1 } else { -1 };
            (usable(delta) && s * e * dir > 0.0 && next.unsigned_abs() <= u64::from(max_code))
                .then(|| (e.abs() / delta, k))
        })
        .collect();
    cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let least = (0..len)
        .map(step)
        .filter(|&s| usable(s))
        .fold(f64::INFINITY, f64::min);
    for (_, k) in cand {
        if 2.0 * sum.abs() <= least {
            break;
        }
        let delta = step(k);
        if (sum - dir * delta).abs() >= sum.abs() {
            // This move would overshoot; a coefficient with a smaller step may still help.
            continue;
        }
        let e = errs.get(k).copied().unwrap_or(0.0);
        let extra = delta * delta - 2.0 * e.abs() * delta;
        if err2 + extra > limit {
            continue;
        }
        if let Some(c) = codes.get_mut(k) {
            *c += if e > 0.0 { 1 } else { -1 };
            err2 += extra;
            sum -= dir * delta;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    fn nearest(y: &[f64], steps: &[f32], group: usize) -> Vec<i32> {
        y.iter()
            .enumerate()
            .map(|(k, &x)| (x / f64::from(steps[k / group])).round() as i32)
            .collect()
    }

    /// (weight-domain error sum, squared error) of codes.
    fn measure(y: &[f64], s: &[f64], steps: &[f32], group: usize, q: &[i32]) -> (f64, f64) {
        let mut sum = 0.0;
        let mut e2 = 0.0;
        for k in 0..y.len() {
            let e = y[k] - f64::from(q[k]) * f64::from(steps[k / group]);
            sum += s[k] * e;
            e2 += e * e;
        }
        (sum, e2)
    }

    #[test]
    fn sums_to_within_half_a_step_at_almost_no_cost() {
        let mut seed = 7;
        let (mut before_sum, mut after_sum, mut before_e2, mut after_e2) = (0.0, 0.0, 0.0, 0.0);
        for _ in 0..200 {
            let d = 384;
            let y: Vec<f64> = (0..d).map(|_| lcg(&mut seed) * 3.0).collect();
            let s: Vec<f64> = (0..d)
                .map(|_| if lcg(&mut seed) > 0.0 { 1.0 } else { -1.0 })
                .collect();
            let steps = [0.25f32];
            let mut q = nearest(&y, &steps, d);
            let (s0, e0) = measure(&y, &s, &steps, d, &q);
            zero_sum(&y, &s, &steps, d, 1000, &mut q);
            let (s1, e1) = measure(&y, &s, &steps, d, &q);
            assert!(s1.abs() <= 0.125 + 1e-12, "sum {s1} after, {s0} before");
            assert!(e1 <= 0.25 * d as f64 * 0.0625, "certificate");
            before_sum += s0.abs();
            after_sum += s1.abs();
            before_e2 += e0;
            after_e2 += e1;
        }
        // Nearest rounding's sums are about δ·√(d/12) ≈ 1.4 steps; the moves cost under 1 %.
        assert!(before_sum > 5.0 * after_sum, "{before_sum} vs {after_sum}");
        assert!(after_e2 < before_e2 * 1.01, "{after_e2} vs {before_e2}");
    }

    #[test]
    fn groups_of_steps_and_codes_limit() {
        let mut seed = 11;
        let d = 96;
        let y: Vec<f64> = (0..d).map(|_| lcg(&mut seed)).collect();
        let s = vec![1.0; d];
        let steps = [0.1f32, 0.3, 0.05];
        let mut q = nearest(&y, &steps, 32);
        let max = q.iter().map(|c| c.unsigned_abs()).max().unwrap();
        zero_sum(&y, &s, &steps, 32, max, &mut q);
        let (sum, e2) = measure(&y, &s, &steps, 32, &q);
        assert!(sum.abs() <= 0.5 * 0.3 + 1e-12, "{sum}");
        assert!(q.iter().all(|c| c.unsigned_abs() <= max));
        let limit: f64 = (0..d)
            .map(|k| 0.25 * f64::from(steps[k / 32]).powi(2))
            .sum();
        assert!(e2 <= limit);
    }

    #[test]
    fn keeps_the_certificate_when_every_weight_is_at_a_midpoint() {
        // Every error already ±δ/2: any move would pass ¼·Σδ², so nothing moves.
        let d = 16;
        let y = vec![0.5; d];
        let s = vec![1.0; d];
        let steps = [1.0f32];
        let mut q = nearest(&y, &steps, d);
        assert!(q.iter().all(|&c| c == 1));
        zero_sum(&y, &s, &steps, d, 10, &mut q);
        let (_, e2) = measure(&y, &s, &steps, d, &q);
        assert!(e2 <= 0.25 * d as f64 + 1e-12);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let mut q = vec![0, 1, 2];
        zero_sum(&[0.0, 1.0], &[1.0], &[0.0], 0, 0, &mut q);
        zero_sum(&[], &[], &[], 1, 0, &mut []);
        zero_sum(
            &[f64::NAN, 1.4],
            &[1.0, 1.0],
            &[f32::INFINITY],
            2,
            5,
            &mut q,
        );
        assert_eq!(q, vec![0, 1, 2]);
    }
}
