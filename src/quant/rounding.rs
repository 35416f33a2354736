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
//! A convolution's row meets its input one channel at a time, through a kernel window of kh·kw
//! weights: where one input channel is constant over the kernel's reach (a flat patch, padding,
//! the channel's own mean μ_c) the output carries Σ_c μ_c·E_c, E_c the window's error sum, which
//! a zero row sum cancels only if every μ_c is equal. [`zero_sum_windows`] zero-sums each window
//! first (about one move in a window of 9, from a weight near a midpoint: up to 4 % more relative
//! error), then the row.
//!
//! The vector's certificate (‖w − w̃‖ ≤ ½·(Σ_k δ_k²)^½ without a frame, [`super::pcm`]) is kept:
//! a move that would take the vector's squared error past ¼·Σ_k δ_k² is not made. Only the
//! encoder changes: the decoder rebuilds q_k·δ_k as before.

/// How a pcm encoder turns coefficients into codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rounding {
    /// Each code the nearest level (ties away from zero), independently.
    Nearest,
    /// Nearest levels, then the fewest codes moved by one so that each kernel window's rounding
    /// errors sum to within half a step of zero, then each vector's ([`zero_sum_windows`]): a
    /// convolution's input channel that is constant over a region (a flat patch of an image,
    /// letterbox padding, a channel's mean) then adds no offset to any output channel. A window
    /// is the product of a weight's dimensions after the second (kh·kw of a [out, in, kh, kw]
    /// convolution), for tensors of rank 3 or more in the rows orientation; other tensors are
    /// one window per vector, as with [`Rounding::ZeroSumRows`]. Used without a frame only
    /// (there a code is a weight); with a frame, [`Rounding::Nearest`].
    #[default]
    ZeroSum,
    /// Nearest levels, then the fewest codes moved by one so that each vector's rounding errors
    /// sum to within half a step of zero ([`zero_sum`]); without a frame only. The default
    /// before kernel windows were zero-summed too.
    ZeroSumRows,
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
    zero_sum_windows(y, signs, steps, group, 1, max_code, codes);
}

/// [`zero_sum`] on each window of `window` consecutive coefficients (the last, shorter one left
/// alone), then on the whole vector: each window's errors sum to within half a step, and the
/// vector's too (the vector pass moves a code of at most one window for each step the windows'
/// remainders add up to). `window` below 2 or not shorter than the vector: [`zero_sum`] alone.
/// No move takes the vector's squared error past ¼·Σ_k δ_k², as with [`zero_sum`].
pub fn zero_sum_windows(
    y: &[f64],
    signs: &[f64],
    steps: &[f32],
    group: usize,
    window: usize,
    max_code: u32,
    codes: &mut [i32],
) {
    let len = y.len().min(signs.len()).min(codes.len());
    let group = group.max(1);
    let step = |k: usize| -> f64 { steps.get(k / group).map_or(0.0, |&s| f64::from(s)).max(0.0) };
    // The vector's squared error and its certified limit ¼·Σ_k δ_k², which no move may pass.
    let (mut err2, mut limit) = (0.0, 0.0);
    for (k, (&x, &q)) in y.iter().zip(codes.iter()).take(len).enumerate() {
        let delta = step(k);
        if usable(delta) {
            let e = x - f64::from(q) * delta;
            err2 += e * e;
            limit += 0.25 * delta * delta;
        }
    }
    // The errors and candidates of a pass, kept between passes (windows are many and short).
    let mut scratch = (Vec::new(), Vec::new());
    let mut pass = |range: std::ops::Range<usize>, window: usize, err2: &mut f64| {
        let z = ZeroSumPass {
            step: &step,
            window,
            max_code,
            limit,
        };
        zero_sum_range(y, signs, range, &z, codes, err2, &mut scratch);
    };
    if window >= 2 && window < len {
        for start in (0..len - len % window).step_by(window) {
            pass(start..start + window, 0, &mut err2);
        }
        // The vector: at most one move per window, in windows whose remainder has the sum's
        // sign (each then stays within a step); then, should that fall short, any code.
        pass(0..len, window, &mut err2);
    }
    pass(0..len, 0, &mut err2);
}

/// Whether a step can be used: positive and finite.
fn usable(s: f64) -> bool {
    s > 0.0 && s.is_finite()
}

/// The settings of one [`zero_sum_range`] pass: `step(k)` is coefficient k's step; with
/// `window` ≥ 2, at most one code moves in each full window of that many coefficients; no code
/// passes ±`max_code`; no move takes the vector's squared error past `limit`.
struct ZeroSumPass<'a> {
    step: &'a dyn Fn(usize) -> f64,
    window: usize,
    max_code: u32,
    limit: f64,
}

/// Moves codes among the coefficients `range` of a vector (indices into all of it) so that
/// their errors sum to within half a step, `err2` the vector's squared error (updated). With
/// `z.window` ≥ 2 (and `range` starting at 0), a code moves only in a window whose errors sum
/// with the same sign as the range's, one per window. `scratch`: buffers reused between calls.
fn zero_sum_range(
    y: &[f64],
    signs: &[f64],
    range: std::ops::Range<usize>,
    z: &ZeroSumPass,
    codes: &mut [i32],
    err2: &mut f64,
    scratch: &mut (Vec<f64>, Vec<(f64, usize)>),
) {
    let (Some(y), Some(signs)) = (y.get(range.clone()), signs.get(range.clone())) else {
        return;
    };
    let (step, window, max_code, limit) = (z.step, z.window, z.max_code, z.limit);
    let first = range.start;
    // Each coefficient's error and the weight-domain sum.
    let mut sum = 0.0;
    let (errs, cand) = scratch;
    errs.clear();
    cand.clear();
    for (i, (&x, &s)) in y.iter().zip(signs).enumerate() {
        let delta = step(first + i);
        let q = codes.get(first + i).copied().unwrap_or(0);
        let e = if usable(delta) {
            x - f64::from(q) * delta
        } else {
            0.0
        };
        sum += s * e;
        errs.push(e);
    }
    if !sum.is_finite() || sum == 0.0 {
        return;
    }
    let dir = sum.signum();
    // Candidates: moving code k by sign(e_k) lowers the sum by δ_k when signs[k]·e_k has the
    // sum's sign. Cheapest first: |e_k|/δ_k nearest ½; ties by position.
    cand.extend(
        errs.iter()
            .zip(signs)
            .enumerate()
            .filter_map(|(i, (&e, &s))| {
                let delta = step(first + i);
                let q = codes.get(first + i).copied().unwrap_or(0);
                let next = i64::from(q) + if e > 0.0 { 1 } else { -1 };
                (usable(delta) && s * e * dir > 0.0 && next.unsigned_abs() <= u64::from(max_code))
                    .then(|| (e.abs() / delta, i))
            }),
    );
    cand.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // With windows: each full window's error sum; a window that has had its move is spent.
    let full = if window >= 2 {
        errs.len() - errs.len() % window
    } else {
        0
    };
    let mut spent: Vec<bool> = Vec::new();
    let mut remainders: Vec<f64> = Vec::new();
    if full > 0 {
        remainders = errs[..full]
            .chunks(window)
            .zip(signs.chunks(window))
            .map(|(e, s)| e.iter().zip(s).map(|(e, s)| e * s).sum())
            .collect();
        spent = vec![false; remainders.len()];
    }
    let least = range
        .clone()
        .map(step)
        .filter(|&s| usable(s))
        .fold(f64::INFINITY, f64::min);
    for &(_, i) in cand.iter() {
        if 2.0 * sum.abs() <= least {
            break;
        }
        let w = (i < full).then(|| i / window);
        if let Some(w) = w {
            let own = remainders.get(w).copied().unwrap_or(0.0);
            if spent.get(w).copied().unwrap_or(true) || own * dir <= 0.0 {
                continue;
            }
        }
        let delta = step(first + i);
        if (sum - dir * delta).abs() >= sum.abs() {
            // This move would overshoot; a coefficient with a smaller step may still help.
            continue;
        }
        let e = errs.get(i).copied().unwrap_or(0.0);
        let extra = delta * delta - 2.0 * e.abs() * delta;
        if *err2 + extra > limit {
            continue;
        }
        if let Some(c) = codes.get_mut(first + i) {
            *c += if e > 0.0 { 1 } else { -1 };
            *err2 += extra;
            sum -= dir * delta;
            if let Some(flag) = w.and_then(|w| spent.get_mut(w)) {
                *flag = true;
            }
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
    fn windows_sum_to_within_half_a_step_and_so_does_the_vector() {
        // A 3×3 convolution's row over 64 input channels: 64 windows of 9.
        let mut seed = 5;
        let (window, d) = (9, 576);
        let (mut rows_e2, mut win_e2, mut rows_worst) = (0.0, 0.0, 0.0f64);
        for _ in 0..50 {
            let y: Vec<f64> = (0..d).map(|_| lcg(&mut seed) * 2.0).collect();
            let s = vec![1.0; d];
            let steps = [0.125f32];
            let mut rows = nearest(&y, &steps, d);
            zero_sum(&y, &s, &steps, d, 1000, &mut rows);
            let mut q = nearest(&y, &steps, d);
            zero_sum_windows(&y, &s, &steps, d, window, 1000, &mut q);
            let (sum, e2) = measure(&y, &s, &steps, d, &q);
            assert!(sum.abs() <= 0.0625 + 1e-12, "vector sum {sum}");
            assert!(e2 <= 0.25 * d as f64 * 0.125f64.powi(2), "certificate");
            // Each window within half a step, but for the few the vector pass moved one code of
            // (about √(64/12) ≈ 2.3 steps of remainders to undo): those within a step.
            let mut over = 0;
            for w in 0..d / window {
                let r = w * window..(w + 1) * window;
                let (ws, _) = measure(&y[r.clone()], &s[r.clone()], &steps, d, &q[r.clone()]);
                assert!(ws.abs() <= 0.125 + 1e-12, "window {w}: {ws}");
                over += usize::from(ws.abs() > 0.0625 + 1e-12);
                let (rs, _) = measure(&y[r.clone()], &s[r.clone()], &steps, d, &rows[r.clone()]);
                rows_worst = rows_worst.max(rs.abs());
            }
            assert!(over <= 8, "{over} windows left over half a step");
            rows_e2 += measure(&y, &s, &steps, d, &rows).1;
            win_e2 += e2;
        }
        // Rows alone leave windows summing to a step or more; the windows cost a little error.
        assert!(rows_worst > 0.125, "{rows_worst}");
        assert!(win_e2 < rows_e2 * 1.25, "{win_e2} vs {rows_e2}");
    }

    #[test]
    fn a_window_of_one_or_of_the_whole_vector_is_the_vector_alone() {
        let mut seed = 3;
        let d = 40;
        let y: Vec<f64> = (0..d).map(|_| lcg(&mut seed)).collect();
        let s = vec![1.0; d];
        let steps = [0.1f32];
        let mut plain = nearest(&y, &steps, d);
        zero_sum(&y, &s, &steps, d, 100, &mut plain);
        for window in [0, 1, d, d + 5] {
            let mut q = nearest(&y, &steps, d);
            zero_sum_windows(&y, &s, &steps, d, window, 100, &mut q);
            assert_eq!(q, plain, "window {window}");
        }
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
        zero_sum_windows(&[1.0, 2.0, 3.0], &[1.0], &[0.5], 1, 2, 9, &mut q);
        zero_sum_windows(&[], &[], &[], 0, 3, 0, &mut []);
    }
}
