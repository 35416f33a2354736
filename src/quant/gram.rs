//! The Gram matrix H = E[x xᵀ] of a layer's inputs x (its calibration data), and what
//! data-aware quantization needs of it: validation, damping, the Cholesky factor in a chosen
//! processing order, and H-weighted norms ‖H^½ e‖² = eᵀHe.
//!
//! A layer computes W·x, so the error a user sees of a row w rebuilt as w̃ is
//! (w − w̃)ᵀ x, whose mean square over the inputs is (w − w̃)ᵀ H (w − w̃). See docs/MATH.md §9.

use crate::error::{Error, Result};
use ndarray::linalg::general_mat_mul;
use ndarray::{s, ArrayViewMut2, Axis};

/// A validated Gram matrix of dimension d: full (d × d, symmetric, positive semi-definite as far
/// as the checks can tell) or diagonal (the mean of x_i² only, an importance vector).
#[derive(Debug, Clone, PartialEq)]
pub struct Gram {
    d: usize,
    /// Row-major d × d (full) or d values (diagonal).
    values: Vec<f64>,
    diagonal: bool,
}

/// In which order the error-feedback quantizer visits the coordinates of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedbackOrder {
    /// First coordinate first.
    Natural,
    /// The coordinates with the largest H_ii first (GPTQ's "act order"): the inputs that carry
    /// most energy are rounded while the most later coordinates remain to absorb their error.
    #[default]
    DecreasingDiagonal,
}

/// The Cholesky factor of the damped Gram matrix in processing order: what the error-feedback
/// quantizer ([`crate::quant::feedback`]) runs on.
///
/// With P the damped matrix permuted to positions (P_ab = H_{c(a) c(b)} + λ'·[a = b], c(a) the
/// coordinate at position a) and P = L·Lᵀ (L lower triangular), a row is processed from the last
/// position to the first, so that every coordinate's error can still be compensated by the
/// coordinates processed after it.
#[derive(Debug, Clone)]
pub struct Factor {
    d: usize,
    /// Position a → coordinate.
    coord: Vec<usize>,
    /// Lᵀ, row-major: `lt[a·d + k]` = L_ka for k ≥ a (zero below the diagonal); empty for a
    /// diagonal Gram matrix, whose factor is diagonal.
    lt: Vec<f64>,
    /// L_aa.
    diag: Vec<f64>,
    /// λ' = λ·mean(H_ii), the damping added to the diagonal.
    shift: f64,
}

/// Relative asymmetry |H_ij − H_ji| accepted (against the largest diagonal entry): what
/// accumulating x xᵀ in f32 can leave.
const SYMMETRY_TOLERANCE: f64 = 1e-3;

impl Gram {
    /// A full Gram matrix from its d × d row-major values. Refuses a wrong length, a
    /// non-finite value, a negative diagonal entry, an asymmetry beyond rounding, and an entry
    /// past √(H_ii·H_jj) beyond rounding (no PSD matrix has one). Stores the symmetric part.
    pub fn full(d: usize, mut values: Vec<f64>) -> Result<Gram> {
        if d == 0 || d.checked_mul(d) != Some(values.len()) {
            return Err(Error::param(format!(
                "a Gram matrix of dimension {d} needs {d}×{d} values, got {}",
                values.len()
            )));
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(Error::Data(format!(
                "the Gram matrix has a non-finite value at [{}, {}]",
                i / d,
                i % d
            )));
        }
        let diag: Vec<f64> = (0..d).map(|i| values[i * d + i]).collect();
        if let Some(i) = diag.iter().position(|&x| x < 0.0) {
            return Err(Error::Data(format!(
                "the Gram matrix is not positive semi-definite: H[{i}, {i}] = {} < 0",
                diag[i]
            )));
        }
        let scale = diag.iter().copied().fold(0.0f64, f64::max);
        let tol = SYMMETRY_TOLERANCE * scale;
        for i in 0..d {
            for j in 0..i {
                let (a, b) = (values[i * d + j], values[j * d + i]);
                if (a - b).abs() > tol {
                    return Err(Error::Data(format!(
                        "the Gram matrix is not symmetric: H[{i}, {j}] = {a} but H[{j}, {i}] = {b}"
                    )));
                }
                let s = 0.5 * (a + b);
                if s.abs() > (diag[i] * diag[j]).sqrt() + tol {
                    return Err(Error::Data(format!(
                        "the Gram matrix is not positive semi-definite: |H[{i}, {j}]| = {} > \
                         √(H[{i}, {i}]·H[{j}, {j}]) = {}",
                        s.abs(),
                        (diag[i] * diag[j]).sqrt()
                    )));
                }
                values[i * d + j] = s;
                values[j * d + i] = s;
            }
        }
        Ok(Gram {
            d,
            values,
            diagonal: false,
        })
    }

    /// A diagonal Gram matrix (the mean of x_i² per input): finite, ≥ 0.
    pub fn diagonal(values: Vec<f64>) -> Result<Gram> {
        if values.is_empty() {
            return Err(Error::param("an empty Gram diagonal"));
        }
        if let Some(i) = values.iter().position(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(Error::Data(format!(
                "the Gram diagonal has entry {i} = {}, not a finite value ≥ 0",
                values[i]
            )));
        }
        Ok(Gram {
            d: values.len(),
            values,
            diagonal: true,
        })
    }

    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Whether only the diagonal is known.
    pub fn is_diagonal(&self) -> bool {
        self.diagonal
    }

    /// H_ii.
    fn diag(&self, i: usize) -> f64 {
        if self.diagonal {
            self.values[i]
        } else {
            self.values[i * self.d + i]
        }
    }

    /// The d × d values, row-major (a diagonal Gram matrix filled out with zeros).
    pub fn to_dense(&self) -> Vec<f64> {
        if !self.diagonal {
            return self.values.clone();
        }
        let d = self.d;
        let mut v = vec![0.0f64; d * d];
        for (i, &h) in self.values.iter().enumerate() {
            v[i * d + i] = h;
        }
        v
    }

    /// The Gram matrix of [x; 1]: a bias quantized with its weight as [W | b] sees the constant
    /// input 1. The file holds no mean of x, so the new coordinate is taken as uncorrelated with
    /// the others (its off-diagonal entries 0, its diagonal 1).
    pub fn with_bias(&self) -> Gram {
        let d = self.d + 1;
        let values = if self.diagonal {
            let mut v = self.values.clone();
            v.push(1.0);
            v
        } else {
            let mut v = vec![0.0f64; d * d];
            for (i, row) in self.values.chunks(self.d).enumerate() {
                v[i * d..i * d + self.d].copy_from_slice(row);
            }
            v[d * d - 1] = 1.0;
            v
        };
        Gram {
            d,
            values,
            diagonal: self.diagonal,
        }
    }

    /// The Gram matrix of s ⊙ x for signs s (±1): H_ij·s_i·s_j.
    pub fn with_signs(&self, signs: &[f64]) -> Result<Gram> {
        if signs.len() != self.d {
            return Err(Error::param(
                "signs of the wrong length for the Gram matrix",
            ));
        }
        let mut g = self.clone();
        if !g.diagonal {
            for (i, row) in g.values.chunks_mut(self.d).enumerate() {
                for (x, &s) in row.iter_mut().zip(signs) {
                    *x *= s * signs[i];
                }
            }
        }
        Ok(g)
    }

    /// eᵀHe (≥ 0 up to rounding), for e of length d.
    pub fn quadratic(&self, e: &[f64]) -> f64 {
        if self.diagonal {
            return self.values.iter().zip(e).map(|(h, x)| h * x * x).sum();
        }
        self.values
            .chunks(self.d)
            .zip(e)
            .map(|(row, &ei)| ei * dot(row, e))
            .sum()
    }

    /// The Cholesky factor of H + λ·mean(H_ii)·I in `order` (λ = `damping`, e.g. 0.01; an
    /// all-zero H is damped to the identity). Fails, naming the position, if the damped matrix
    /// is not positive definite.
    pub fn factor(&self, damping: f64, order: FeedbackOrder) -> Result<Factor> {
        let d = self.d;
        if !(damping.is_finite() && damping > 0.0) {
            return Err(Error::param(format!(
                "the damping must be > 0, got {damping}"
            )));
        }
        let mean = (0..d).map(|i| self.diag(i)).sum::<f64>() / d as f64;
        let shift = if mean > 0.0 { damping * mean } else { 1.0 };
        // Position a holds coordinate coord[a]; positions are processed from d − 1 down to 0,
        // so the coordinate processed first sits at position d − 1.
        let mut first: Vec<usize> = (0..d).collect();
        if order == FeedbackOrder::DecreasingDiagonal {
            first.sort_by(|&a, &b| self.diag(b).total_cmp(&self.diag(a)).then(a.cmp(&b)));
        }
        let coord: Vec<usize> = first.into_iter().rev().collect();
        if self.diagonal {
            let diag = coord
                .iter()
                .map(|&c| (self.values[c] + shift).sqrt())
                .collect();
            return Ok(Factor {
                d,
                coord,
                lt: Vec::new(),
                diag,
                shift,
            });
        }
        // The damped matrix in position order (lower triangle), factored in place.
        let mut l = vec![0.0f64; d * d];
        for (a, row) in l.chunks_mut(d).enumerate() {
            let ca = coord[a];
            for (b, x) in row.iter_mut().enumerate().take(a + 1) {
                *x = self.values[ca * d + coord[b]] + if a == b { shift } else { 0.0 };
            }
        }
        let diag = cholesky_lower(&mut l, d, &coord)?;
        // Transpose to Lᵀ so that the quantizer's dot products run over contiguous memory.
        let mut lt = vec![0.0f64; d * d];
        for a in 0..d {
            for k in a..d {
                lt[a * d + k] = l[k * d + a];
            }
        }
        Ok(Factor {
            d,
            coord,
            lt,
            diag,
            shift,
        })
    }
}

impl Factor {
    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The coordinate at position a (positions are processed from d − 1 down to 0).
    pub fn coordinate(&self, a: usize) -> usize {
        self.coord[a]
    }

    /// L_aa.
    pub fn diagonal(&self, a: usize) -> f64 {
        self.diag[a]
    }

    /// L_ka for k = a + 1..d: how the errors of the positions after a feed into a (empty for a
    /// diagonal Gram matrix).
    pub fn below(&self, a: usize) -> &[f64] {
        self.lt
            .get(a * self.d + a + 1..(a + 1) * self.d)
            .unwrap_or(&[])
    }

    /// λ', the damping added to the diagonal.
    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// Lᵀ row-major (d × d, zero below its diagonal): row a holds L_aa and then `below(a)`.
    /// Empty for a diagonal Gram matrix.
    pub(crate) fn transposed(&self) -> &[f64] {
        &self.lt
    }

    /// ‖Lᵀ v‖² for v in positions: vᵀ(H + λ'I)v.
    pub fn damped_quadratic(&self, v: &[f64]) -> f64 {
        (0..self.d)
            .map(|a| {
                let z = self.diag[a] * v[a] + dot(self.below(a), &v[a + 1..]);
                z * z
            })
            .sum()
    }
}

/// Columns of the factor computed between two matrix-product updates of the rest.
const PANEL: usize = 64;

/// Factors the symmetric positive definite matrix whose lower triangle `l` holds (d × d,
/// row-major) in place into its Cholesky factor L (lower triangle; the strict upper triangle is
/// left unspecified) and returns L's diagonal. Left-looking and blocked: each panel of
/// [`PANEL`] columns is first updated by the columns before it with one matrix product, then
/// factored column by column (L_ab = (P_ab − Σ_c L_ac·L_bc) / L_bb). `coord` names the input of
/// each position in the error.
fn cholesky_lower(l: &mut [f64], d: usize, coord: &[usize]) -> Result<Vec<f64>> {
    let mut diag = vec![0.0f64; d];
    let mut j0 = 0;
    while j0 < d {
        let j1 = (j0 + PANEL).min(d);
        if j0 > 0 {
            // P[j0.., j0..j1] −= L[j0.., ..j0] · L[j0..j1, ..j0]ᵀ
            let all = ArrayViewMut2::from_shape((d, d), &mut *l).map_err(shape_error)?;
            let (done, mut rest) = all.split_at(Axis(1), j0);
            let done = done.view();
            let mut panel = rest.slice_mut(s![j0.., ..j1 - j0]);
            general_mat_mul(
                -1.0,
                &done.slice(s![j0.., ..]),
                &done.slice(s![j0..j1, ..]).t(),
                1.0,
                &mut panel,
            );
        }
        for b in j0..j1 {
            let (row_b, below) = l[b * d..].split_at_mut(d);
            let lb = &row_b[j0..b];
            let s = row_b[b] - dot(lb, lb);
            if !(s > 0.0 && s.is_finite()) {
                return Err(Error::Data(format!(
                    "the Gram matrix is not positive definite after damping (input {})",
                    coord[b]
                )));
            }
            let lbb = s.sqrt();
            row_b[b] = lbb;
            diag[b] = lbb;
            let lb = &row_b[j0..b];
            for row_a in below.chunks_mut(d) {
                row_a[b] = (row_a[b] - dot(&row_a[j0..b], lb)) / lbb;
            }
        }
        j0 = j1;
    }
    Ok(diag)
}

/// The error for a matrix view whose shape does not fit its buffer (an internal error).
pub(crate) fn shape_error(e: ndarray::ShapeError) -> Error {
    Error::param(format!("a matrix view does not fit its buffer: {e}"))
}

/// Σ a_i·b_i over the shorter length, in eight independent sums (so it vectorises) added in a
/// fixed order: the same result on every run.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_gram(d: usize, samples: usize, seed: u64) -> Gram {
        let mut s = seed;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let xs: Vec<Vec<f64>> = (0..samples)
            .map(|_| (0..d).map(|_| next()).collect())
            .collect();
        let mut h = vec![0.0; d * d];
        for x in &xs {
            for i in 0..d {
                for j in 0..d {
                    h[i * d + j] += x[i] * x[j] / samples as f64;
                }
            }
        }
        Gram::full(d, h).unwrap()
    }

    #[test]
    fn factor_reproduces_the_damped_matrix() {
        let g = random_gram(13, 40, 3);
        for order in [FeedbackOrder::Natural, FeedbackOrder::DecreasingDiagonal] {
            let f = g.factor(0.01, order).unwrap();
            // vᵀ(H + λ'I)v from the factor equals the direct value, for v in positions.
            let v: Vec<f64> = (0..13).map(|i| (i as f64 * 0.7).sin()).collect();
            let mut in_coords = vec![0.0; 13];
            for a in 0..13 {
                in_coords[f.coordinate(a)] = v[a];
            }
            let direct = g.quadratic(&in_coords) + f.shift() * v.iter().map(|x| x * x).sum::<f64>();
            let via = f.damped_quadratic(&v);
            assert!(
                (direct - via).abs() <= 1e-12 * direct.max(1.0),
                "{direct} vs {via}"
            );
        }
    }

    #[test]
    fn the_blocked_factor_reproduces_the_damped_matrix() {
        // Three panels and a part: every product of the blocked factorisation is used.
        let d = 3 * PANEL + 17;
        let g = random_gram(d, d / 2, 5);
        let f = g.factor(0.02, FeedbackOrder::DecreasingDiagonal).unwrap();
        let h = g.to_dense();
        // L·Lᵀ = P + λ'I entry by entry (P in positions), with L from the transposed rows.
        let lt = f.transposed();
        for a in 0..d {
            for b in 0..=a {
                let llt: f64 = (0..=b).map(|k| lt[k * d + a] * lt[k * d + b]).sum();
                let p =
                    h[f.coordinate(a) * d + f.coordinate(b)] + if a == b { f.shift() } else { 0.0 };
                assert!(
                    (llt - p).abs() <= 1e-10 * (1.0 + p.abs()),
                    "[{a}, {b}] {llt} vs {p}"
                );
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_gram_matrix() {
        assert!(Gram::full(2, vec![1.0, 0.0, 0.0]).is_err());
        assert!(Gram::full(2, vec![1.0, 0.5, -0.5, 1.0]).is_err());
        assert!(Gram::full(2, vec![1.0, 3.0, 3.0, 1.0]).is_err());
        assert!(Gram::full(2, vec![-1.0, 0.0, 0.0, 1.0]).is_err());
        assert!(Gram::full(2, vec![1.0, f64::NAN, f64::NAN, 1.0]).is_err());
        assert!(Gram::diagonal(vec![1.0, -2.0]).is_err());
        assert!(Gram::full(2, vec![1.0, 0.5, 0.5, 1.0]).is_ok());
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f64> = (0..37).map(|i| i as f64 * 0.25).collect();
        let b: Vec<f64> = (0..37).map(|i| 1.0 - i as f64 * 0.01).collect();
        let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-9);
    }
}
