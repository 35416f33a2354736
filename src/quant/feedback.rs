//! Data-aware ΣΔ: memoryless rounding of a row's coefficients, one at a time, with every
//! rounding error fed forward through the Cholesky factor of the layer's Gram matrix H
//! ([`crate::quant::gram`]) to the coefficients not yet rounded. The error the layer's inputs
//! see, ‖H^½(w − w̃)‖, is shaped away the way first-order ΣΔ shapes noise out of band, with the
//! inputs' own redundancy as the frame. With H + λ'I = L·Lᵀ in processing order this is GPTQ
//! (Frantar et al. 2023) without its explicit inverse, and GPFQ's greedy rule (Lybrand & Saab
//! 2021) with the optimal look-ahead; docs/MATH.md §9 derives it and its bound.
//!
//! The decoder does not change: the codes and steps are those of a pcm tensor.

use crate::error::{Error, Result};
use crate::quant::gram::{dot, shape_error, Factor};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
#[cfg(feature = "parallel")]
use rayon::prelude::*;
use std::ops::Range;

/// Codes of every row, and what the a priori bound needs.
#[derive(Debug, Clone)]
pub struct FeedbackCodes {
    /// m × d codes, row after row, each row in coordinate order.
    pub codes: Vec<i32>,
    /// Per row, ‖Lᵀ(w − qδ)‖² = (w − qδ)ᵀ(H + λ'I)(w − qδ), computed in f64 with the steps as
    /// given.
    pub damped_error2: Vec<f64>,
    /// Per row, ¼·Σ_a L_aa²·δ_a²: the a priori bound on the previous quantity (no alphabet
    /// limit, so no coefficient overloads).
    pub bound2: Vec<f64>,
}

/// The largest |code| (pcm's K limit).
const MAX_CODE: f64 = crate::quant::pcm::MAX_PCM_K as f64;

/// Rows processed together: one task each when parallel, and the rows of each matrix product.
const ROW_BLOCK: usize = 64;

/// Positions rounded one by one between two matrix-product updates of the fed-back error.
const POSITION_BLOCK: usize = 128;

/// Runs `f` on consecutive blocks of at most [`ROW_BLOCK`] of the `m` rows, on all cores with
/// the `parallel` feature, and returns the results in row order.
fn map_row_blocks<T: Send>(m: usize, f: impl Fn(Range<usize>) -> T + Sync + Send) -> Vec<T> {
    let blocks: Vec<Range<usize>> = (0..m)
        .step_by(ROW_BLOCK)
        .map(|r0| r0..(r0 + ROW_BLOCK).min(m))
        .collect();
    #[cfg(feature = "parallel")]
    return blocks.into_par_iter().map(f).collect();
    #[cfg(not(feature = "parallel"))]
    blocks.into_iter().map(f).collect()
}

/// Checks that `y` holds whole rows of the factor's dimension `d`; returns the row count.
fn row_count(y: &[f64], d: usize, factor: &Factor) -> Result<usize> {
    if d == 0 || factor.dim() != d || y.len() % d != 0 {
        return Err(Error::param(
            "error feedback: the rows and the Gram matrix disagree in size",
        ));
    }
    Ok(y.len() / d)
}

/// Rounds every row of `y` (m × d, row-major, coordinates as in the Gram matrix) to multiples of
/// its steps (`steps`: ⌈d / group⌉ per row, the step of coordinate j being number ⌊j / group⌋;
/// a zero step gives code 0) with error feedback through `factor`. Positions are visited from
/// d − 1 down to 0: at position a with coordinate j, the target is w_j + (Σ_{k>a} L_ka·e_k)/L_aa,
/// rounded to q_j, and e_a = w_j − q_j·δ. Then Lᵀe has entries L_aa·(target − q_j·δ), each at
/// most L_aa·δ/2 in size.
///
/// The sum is kept in two parts, as in GPTQ's lazy batches: the errors of the positions rounded
/// in earlier blocks (of 128 positions) are added to every later target by one matrix
/// product per block, those of the current block one by one.
pub fn quantize_rows(
    y: &[f64],
    d: usize,
    steps: &[f32],
    group: usize,
    factor: &Factor,
) -> Result<FeedbackCodes> {
    let m = row_count(y, d, factor)?;
    if group == 0 {
        return Err(Error::param("error feedback: a group of 0 coefficients"));
    }
    let groups = d.div_ceil(group);
    if steps.len() != m * groups {
        return Err(Error::param("error feedback: wrong number of steps"));
    }
    let lt = factor.transposed();
    let block = |rows_of: Range<usize>| -> Result<FeedbackCodes> {
        let rows = rows_of.len();
        let yb = &y[rows_of.start * d..rows_of.end * d];
        let sb = &steps[rows_of.start * groups..rows_of.end * groups];
        let mut codes = vec![0i32; rows * d];
        let mut damped = vec![0.0f64; rows];
        let mut bound = vec![0.0f64; rows];
        // Errors by position, and the error fed back from earlier blocks, row after row.
        let mut e = vec![0.0f64; rows * d];
        let mut fed = vec![0.0f64; rows * d];
        let mut a1 = d;
        while a1 > 0 {
            let a0 = a1.saturating_sub(POSITION_BLOCK);
            for a in (a0..a1).rev() {
                let j = factor.coordinate(a);
                let la = factor.diagonal(a);
                let below = factor.below(a);
                let near = below.get(..a1 - a - 1).unwrap_or(below);
                for r in 0..rows {
                    let c = fed[r * d + a] + dot(near, &e[r * d + a + 1..r * d + a1]);
                    let w = yb[r * d + j];
                    let target = w + c / la;
                    let step = f64::from(sb[r * groups + j / group]);
                    // Clipped to the pcm alphabet's limit: with a nearly singular Gram matrix
                    // and little damping the fed-back error can grow with the step itself
                    // (found by fuzzing); the record then holds the measured error, as always
                    // with feedback.
                    let q = if step > 0.0 {
                        (target / step).round().clamp(-MAX_CODE, MAX_CODE)
                    } else {
                        0.0
                    };
                    // Saturating: a code past ±2^31 fails the caller's alphabet check anyway.
                    codes[r * d + j] = q as i32;
                    let rebuilt = f64::from(q as i32) * step;
                    e[r * d + a] = w - rebuilt;
                    let z = la * (target - rebuilt);
                    damped[r] += z * z;
                    bound[r] += 0.25 * la * la * step * step;
                }
            }
            if a0 > 0 && !lt.is_empty() {
                // fed[:, ..a0] += e[:, a0..a1] · L[a0..a1, ..a0], with L_ka = Lᵀ[a, k].
                let k = a1 - a0;
                let errors = ArrayView2::from_shape((rows, k).strides((d, 1)), &e[a0..])
                    .map_err(shape_error)?;
                let l = ArrayView2::from_shape((k, a0).strides((1, d)), &lt[a0..])
                    .map_err(shape_error)?;
                let mut to = ArrayViewMut2::from_shape((rows, a0).strides((d, 1)), &mut fed[..])
                    .map_err(shape_error)?;
                general_mat_mul(1.0, &errors, &l, 1.0, &mut to);
            }
            a1 = a0;
        }
        Ok(FeedbackCodes {
            codes,
            damped_error2: damped,
            bound2: bound,
        })
    };
    let mut out = FeedbackCodes {
        codes: Vec::with_capacity(m * d),
        damped_error2: Vec::with_capacity(m),
        bound2: Vec::with_capacity(m),
    };
    for b in map_row_blocks(m, block) {
        let b = b?;
        out.codes.extend(b.codes);
        out.damped_error2.extend(b.damped_error2);
        out.bound2.extend(b.bound2);
    }
    Ok(out)
}

/// Per row of `y` (m × d, coordinates as in the Gram matrix), yᵀ(H + λ'I)y = ‖Lᵀy‖², with
/// the rows' positions laid out as the factor's: one matrix product per block of rows.
pub fn damped_norms2(y: &[f64], d: usize, factor: &Factor) -> Result<Vec<f64>> {
    let m = row_count(y, d, factor)?;
    let lt = factor.transposed();
    let block = |rows_of: Range<usize>| -> Result<Vec<f64>> {
        // The rows in position order.
        let mut v = vec![0.0f64; rows_of.len() * d];
        for (vr, yr) in v
            .chunks_mut(d)
            .zip(y[rows_of.start * d..rows_of.end * d].chunks(d))
        {
            for (a, x) in vr.iter_mut().enumerate() {
                *x = yr[factor.coordinate(a)];
            }
        }
        if lt.is_empty() {
            // Diagonal: (Lᵀv)_a = L_aa·v_a.
            return Ok(v
                .chunks(d)
                .map(|vr| {
                    vr.iter()
                        .enumerate()
                        .map(|(a, x)| (factor.diagonal(a) * x).powi(2))
                        .sum()
                })
                .collect());
        }
        // Z = V·L: Z[r, a] = Σ_k V[r, k]·L_ka = Σ_k V[r, k]·Lᵀ[a, k].
        let vv = ArrayView2::from_shape((rows_of.len(), d), &v[..]).map_err(shape_error)?;
        let l = ArrayView2::from_shape((d, d).strides((1, d)), lt).map_err(shape_error)?;
        let z = vv.dot(&l);
        Ok(z.rows().into_iter().map(|r| r.dot(&r)).collect())
    };
    let mut out = Vec::with_capacity(m);
    for b in map_row_blocks(m, block) {
        out.extend(b?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::gram::{FeedbackOrder, Gram};

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    /// Correlated inputs (a low-rank part plus noise), their Gram matrix, and rows of weights.
    fn setup(d: usize, m: usize) -> (Gram, Vec<f64>) {
        let mut s = 7u64;
        let basis: Vec<Vec<f64>> = (0..3)
            .map(|_| (0..d).map(|_| lcg(&mut s)).collect())
            .collect();
        let samples = 200;
        let mut h = vec![0.0; d * d];
        for _ in 0..samples {
            let c: Vec<f64> = (0..3).map(|_| lcg(&mut s) * 4.0).collect();
            let x: Vec<f64> = (0..d)
                .map(|i| (0..3).map(|k| c[k] * basis[k][i]).sum::<f64>() + 0.05 * lcg(&mut s))
                .collect();
            for i in 0..d {
                for j in 0..d {
                    h[i * d + j] += x[i] * x[j] / samples as f64;
                }
            }
        }
        let w: Vec<f64> = (0..m * d).map(|_| lcg(&mut s)).collect();
        (Gram::full(d, h).unwrap(), w)
    }

    #[test]
    fn feedback_lowers_the_output_error_and_keeps_its_bound() {
        let (d, m) = (24, 11);
        let (g, w) = setup(d, m);
        let steps = vec![0.25f32; m];
        for order in [FeedbackOrder::Natural, FeedbackOrder::DecreasingDiagonal] {
            let f = g.factor(0.01, order).unwrap();
            let fb = quantize_rows(&w, d, &steps, d, &f).unwrap();
            let (mut plain, mut shaped) = (0.0, 0.0);
            for r in 0..m {
                let wr = &w[r * d..(r + 1) * d];
                let e_plain: Vec<f64> = wr.iter().map(|x| x - (x / 0.25).round() * 0.25).collect();
                let e_fb: Vec<f64> = wr
                    .iter()
                    .zip(&fb.codes[r * d..(r + 1) * d])
                    .map(|(x, &q)| x - f64::from(q) * 0.25)
                    .collect();
                plain += g.quadratic(&e_plain);
                shaped += g.quadratic(&e_fb);
                // The damped error the quantizer reports is the direct one, and within the bound.
                let direct =
                    g.quadratic(&e_fb) + f.shift() * e_fb.iter().map(|x| x * x).sum::<f64>();
                assert!((direct - fb.damped_error2[r]).abs() <= 1e-9 * direct.max(1e-12));
                assert!(fb.damped_error2[r] <= fb.bound2[r] * (1.0 + 1e-12));
            }
            assert!(shaped < 0.5 * plain, "{order:?}: {shaped} vs plain {plain}");
        }
    }

    /// The feedback of `quantize_rows` written plainly: every target from the full sum.
    fn plain_feedback(w: &[f64], d: usize, step: f64, f: &Factor) -> (Vec<i32>, Vec<f64>) {
        let mut codes = vec![0i32; w.len()];
        let mut damped = Vec::new();
        for (wr, cr) in w.chunks(d).zip(codes.chunks_mut(d)) {
            let mut e = vec![0.0f64; d];
            let mut z2 = 0.0;
            for a in (0..d).rev() {
                let j = f.coordinate(a);
                let c: f64 = (a + 1..d).map(|k| f.below(a)[k - a - 1] * e[k]).sum();
                let target = wr[j] + c / f.diagonal(a);
                let q = (target / step).round();
                cr[j] = q as i32;
                e[a] = wr[j] - q * step;
                z2 += (f.diagonal(a) * (target - q * step)).powi(2);
            }
            damped.push(z2);
        }
        (codes, damped)
    }

    #[test]
    fn blocked_feedback_and_norms_match_the_plain_sums() {
        // Larger than a block of positions, of rows and a panel of the factor.
        let (d, m) = (300, 70);
        let (g, w) = setup(d, m);
        let f = g.factor(0.05, FeedbackOrder::DecreasingDiagonal).unwrap();
        let step = 0.125f32;
        let fb = quantize_rows(&w, d, &vec![step; m], d, &f).unwrap();
        let (codes, damped) = plain_feedback(&w, d, f64::from(step), &f);
        assert_eq!(fb.codes, codes);
        for (x, y) in fb.damped_error2.iter().zip(&damped) {
            assert!((x - y).abs() <= 1e-9 * y, "{x} vs {y}");
        }
        let norms = damped_norms2(&w, d, &f).unwrap();
        for (r, n) in norms.iter().enumerate() {
            let v: Vec<f64> = (0..d).map(|a| w[r * d + f.coordinate(a)]).collect();
            let direct = f.damped_quadratic(&v);
            assert!((n - direct).abs() <= 1e-9 * direct, "{n} vs {direct}");
        }
    }

    #[test]
    fn a_diagonal_gram_matrix_is_plain_rounding() {
        let (d, m) = (10, 3);
        let w: Vec<f64> = (0..m * d).map(|i| (i as f64 * 0.37).sin()).collect();
        let g = Gram::diagonal((0..d).map(|i| 1.0 + i as f64).collect()).unwrap();
        let f = g.factor(0.01, FeedbackOrder::DecreasingDiagonal).unwrap();
        let steps = vec![0.1f32; m];
        let fb = quantize_rows(&w, d, &steps, d, &f).unwrap();
        for (x, &q) in w.iter().zip(&fb.codes) {
            assert_eq!(q, (x / f64::from(0.1f32)).round() as i32);
        }
    }
}
