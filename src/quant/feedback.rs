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
use crate::quant::gram::{dot, Factor};
#[cfg(feature = "parallel")]
use rayon::prelude::*;

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

/// Rows processed together, so that each row of the factor is read once per block.
const BLOCK_ROWS: usize = 8;

/// Rounds every row of `y` (m × d, row-major, coordinates as in the Gram matrix) to multiples of
/// its steps (`steps`: ⌈d / group⌉ per row, the step of coordinate j being number ⌊j / group⌋;
/// a zero step gives code 0) with error feedback through `factor`. Positions are visited from
/// d − 1 down to 0: at position a with coordinate j, the target is w_j + (Σ_{k>a} L_ka·e_k)/L_aa,
/// rounded to q_j, and e_a = w_j − q_j·δ. Then Lᵀe has entries L_aa·(target − q_j·δ), each at
/// most L_aa·δ/2 in size.
pub fn quantize_rows(
    y: &[f64],
    d: usize,
    steps: &[f32],
    group: usize,
    factor: &Factor,
) -> Result<FeedbackCodes> {
    if d == 0 || factor.dim() != d || y.len() % d != 0 || group == 0 {
        return Err(Error::param(
            "error feedback: the rows, the group and the Gram matrix disagree in size",
        ));
    }
    let m = y.len() / d;
    let groups = d.div_ceil(group);
    if steps.len() != m * groups {
        return Err(Error::param("error feedback: wrong number of steps"));
    }
    let mut codes = vec![0i32; m * d];
    let mut damped = vec![0.0f64; m];
    let mut bound = vec![0.0f64; m];
    type Block<'a> = (
        ((&'a [f64], &'a [f32]), &'a mut [i32]),
        (&'a mut [f64], &'a mut [f64]),
    );
    let block = |(((yb, sb), cb), (db, bb)): Block| {
        let rows = yb.len() / d;
        // Errors by position, row after row.
        let mut e = vec![0.0f64; rows * d];
        for a in (0..d).rev() {
            let j = factor.coordinate(a);
            let la = factor.diagonal(a);
            let below = factor.below(a);
            for r in 0..rows {
                let er = &e[r * d..(r + 1) * d];
                let c = if below.is_empty() {
                    0.0
                } else {
                    dot(below, &er[a + 1..])
                };
                let w = yb[r * d + j];
                let target = w + c / la;
                let step = f64::from(sb[r * groups + j / group]);
                // Clipped to the pcm alphabet's limit: with a nearly singular Gram matrix and
                // little damping the fed-back error can grow with the step itself (found by
                // fuzzing); the record then holds the measured error, as always with feedback.
                let q = if step > 0.0 {
                    (target / step).round().clamp(-MAX_CODE, MAX_CODE)
                } else {
                    0.0
                };
                // Saturating: a code past ±2^31 fails the caller's alphabet check anyway.
                cb[r * d + j] = q as i32;
                let rebuilt = f64::from(q as i32) * step;
                e[r * d + a] = w - rebuilt;
                let z = la * (target - rebuilt);
                db[r] += z * z;
                bb[r] += 0.25 * la * la * step * step;
            }
        }
    };
    #[cfg(feature = "parallel")]
    y.par_chunks(BLOCK_ROWS * d)
        .zip(steps.par_chunks(BLOCK_ROWS * groups))
        .zip(codes.par_chunks_mut(BLOCK_ROWS * d))
        .zip(
            damped
                .par_chunks_mut(BLOCK_ROWS)
                .zip(bound.par_chunks_mut(BLOCK_ROWS)),
        )
        .for_each(block);
    #[cfg(not(feature = "parallel"))]
    y.chunks(BLOCK_ROWS * d)
        .zip(steps.chunks(BLOCK_ROWS * groups))
        .zip(codes.chunks_mut(BLOCK_ROWS * d))
        .zip(
            damped
                .chunks_mut(BLOCK_ROWS)
                .zip(bound.chunks_mut(BLOCK_ROWS)),
        )
        .for_each(block);
    Ok(FeedbackCodes {
        codes,
        damped_error2: damped,
        bound2: bound,
    })
}

/// Per row of `y` (m × d, coordinates as in the Gram matrix), yᵀ(H + λ'I)y = ‖Lᵀy‖², with
/// the rows' positions laid out as the factor's.
pub fn damped_norms2(y: &[f64], d: usize, factor: &Factor) -> Result<Vec<f64>> {
    if d == 0 || factor.dim() != d || y.len() % d != 0 {
        return Err(Error::param(
            "error feedback: the rows and the Gram matrix disagree in size",
        ));
    }
    let mut out = vec![0.0f64; y.len() / d];
    let block = |(yb, ob): (&[f64], &mut [f64])| {
        let mut v = vec![0.0f64; d];
        for (yr, o) in yb.chunks(d).zip(ob.iter_mut()) {
            for (a, x) in v.iter_mut().enumerate() {
                *x = yr[factor.coordinate(a)];
            }
            *o = factor.damped_quadratic(&v);
        }
    };
    #[cfg(feature = "parallel")]
    y.par_chunks(BLOCK_ROWS * d)
        .zip(out.par_chunks_mut(BLOCK_ROWS))
        .for_each(block);
    #[cfg(not(feature = "parallel"))]
    y.chunks(BLOCK_ROWS * d)
        .zip(out.chunks_mut(BLOCK_ROWS))
        .for_each(block);
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
