//! Spectral tetris frames tetris(N, d): unit-norm tight frames of N vectors in R^d (N ≥ 2d) with at
//! most two non-zero entries per vector, after P. G. Casazza, M. Fickus, D. G. Mixon, Y. Wang and
//! Z. Zhou, "Constructing tight fusion frames", Appl. Comput. Harmon. Anal. 30 (2011) ("spectral
//! tetris").
//!
//! The frame is fully determined by (N, d); nothing but those two numbers is needed to rebuild
//! it. It is tight with bound λ = N/d, i.e. Σ_n e_n e_nᵀ = (N/d)·I, so the reconstruction is the
//! same as for harmonic frames: **w = (d/N)·Σ_n ⟨w, e_n⟩ e_n**.
//!
//! # Construction
//!
//! Think of the d×N synthesis matrix whose columns are the frame vectors. Tightness with bound λ
//! means its rows are orthogonal with squared norm λ each; unit norm means each column has squared
//! norm 1. Spectral tetris fills the rows from the top, left to right, keeping `r` = the squared
//! norm row k still needs (r starts at λ for every row):
//!
//! 1. If r = 0, row k is full: move on to row k + 1 with r = λ.
//! 2. If r ≥ 1, the next column is the standard basis vector e_k (a "1×1 tetris piece"); r −= 1.
//! 3. If 0 < r < 1, the next **two** columns are the 2×2 block, in rows k and k + 1,
//!    ```text
//!        column m       column m + 1
//!    k   [ √(r/2)        √(r/2)     ]
//!    k+1 [ √(1 − r/2)   −√(1 − r/2) ]
//!    ```
//!    Each column has norm 1; row k receives r/2 + r/2 = r (so it is now full), row k + 1 receives
//!    2 − r, and the two rows stay orthogonal (√(r/2)·√(1 − r/2) − √(r/2)·√(1 − r/2) = 0). Then
//!    k += 1 and r = λ − (2 − r).
//!
//! The block needs λ − (2 − r) ≥ 0 for the next row, which is why the construction requires
//! **λ = N/d ≥ 2**; λ need not be an integer. Every row but the last is filled exactly: rows only
//! ever share columns with their neighbours through the 2×2 blocks, which keep them orthogonal.
//! The last row needs no block: in units of 1/d the squared norm placed so far is always d times
//! the number of columns placed, so when rows 1..d−1 are full after m columns and row d still
//! needs R units, (d − 1)·N + (N − R) = d·m, i.e. R = d·(N − m) is a multiple of d. Only whole
//! basis vectors are needed there, and exactly N columns fill the d rows.
//!
//! sdq runs the bookkeeping in exact integers (r·d ∈ {0, …, N}), so the construction involves no
//! floating-point drift; the only rounding is in √(r/2) and √(1 − r/2), computed as
//! √(r·d / 2d) and √((2d − r·d) / 2d).
//!
//! Example: tetris(5, 2) (λ = 2.5) has the columns e_1, e_1, (√¼, √¾), (√¼, −√¾), e_2.
//!
//! # Indexing and order
//!
//! As for harmonic frames, frame vectors are numbered n = 1..N ([`TetrisFrame::row`]) and live at
//! zero-based position n − 1 in every slice. With the natural order (p = identity) equal vectors
//! are adjacent (distance 0) and a step changes row only at a block: with λ an integer there are
//! no blocks and σ(F, identity) = (d − 1)·√2, which is optimal: any path through d orthonormal
//! vectors has length at least (d − 1)·√2 (triangle inequality), so for integer λ the natural
//! order is the best there is (and below the harmonic frame's ≈ 1.81·d). Inside a block the order (+, −) given by the
//! construction is not the best one: the "−" column is far from the next basis vector
//! (‖(√(r/2), −√(1 − r/2)) − e_{k+1}‖ = √(2 + 2√(1 − r/2))); visiting "−" before "+" replaces
//! that step with √(2 − 2√(1 − r/2)). [`TetrisFrame::block_swapped_order`] gives that ordering
//! in O(N); the general heuristic of [`super::ordering`] finds it (or better) too.

use super::order::Permutation;
use super::ordering::FrameGeometry;
use crate::error::{Error, Result};

/// A sparse frame vector: up to two (row, value) entries, zero-based rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseVector {
    /// Number of entries in use (1 or 2).
    pub len: usize,
    /// Zero-based coordinates of the entries (`rows[1]` is meaningful only when `len == 2`).
    pub rows: [usize; 2],
    /// Values of the entries (`values[1]` is meaningful only when `len == 2`).
    pub values: [f64; 2],
}

impl SparseVector {
    /// The (row, value) entries in use.
    pub fn entries(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.rows
            .iter()
            .copied()
            .zip(self.values.iter().copied())
            .take(self.len)
    }
}

/// The spectral tetris frame tetris(N, d) (module docs): N ≥ 2d unit vectors in R^d, each with at
/// most two non-zero entries, stored sparsely in O(N) memory. Cheap to share between threads.
#[derive(Debug, Clone, PartialEq)]
pub struct TetrisFrame {
    n: usize,
    d: usize,
    /// Per vector: its coordinates (for a one-entry vector both are the same row).
    idx: Vec<[u32; 2]>,
    /// Per vector: its values (for a one-entry vector the second is 0.0).
    val: Vec<[f64; 2]>,
    /// Per vector: whether it has two entries (a column of a 2×2 block).
    pair: Vec<bool>,
    /// `first[r]` = the first vector position whose first row is ≥ r (length d + 1).
    first: Vec<usize>,
}

/// Scratch buffers for [`TetrisFrame`]'s synthesis, made by [`TetrisFrame::workspace`]: the
/// coefficient input (length N, indexed by zero-based frame position) and an f64 accumulator
/// (length d).
#[derive(Debug, Clone)]
pub struct TetrisWorkspace {
    input: Vec<f64>,
    acc: Vec<f64>,
}

/// Validates (N, d) for a spectral tetris frame: d ≥ 1, N ≥ 2d, both within [`crate::limits::MAX_DIM`]
/// and [`crate::limits::MAX_FRAME_SIZE`]. The same checks, in the same order, as
/// [`super::FrameDescriptor::harmonic`], with N ≥ 2d in place of N ≥ d + 1.
pub fn validate_tetris(n: usize, d: usize) -> Result<()> {
    super::check_sizes(n, d)?;
    if (n as u64) < 2 * d as u64 {
        return Err(Error::param(format!(
            "frame size N = {n} must be at least twice the vector dimension d = {d} (spectral tetris needs redundancy N/d >= 2)"
        )));
    }
    Ok(())
}

impl TetrisFrame {
    /// Builds tetris(N, d) by the spectral tetris construction (module docs), in O(N) time and
    /// memory. Errors: d = 0 or N < 2d ([`Error::Parameter`]); d or N past the limits
    /// ([`Error::Limit`]).
    pub fn new(n: usize, d: usize) -> Result<Self> {
        validate_tetris(n, d)?;
        let (nn, dd) = (n as u64, d as u64);
        let mut idx = Vec::with_capacity(n);
        let mut val = Vec::with_capacity(n);
        let mut pair = Vec::with_capacity(n);
        // Row k still needs rem/d in squared norm; rem ∈ {0, …, N}.
        let mut k = 0usize;
        let mut rem = nn;
        let internal = |what: &str| {
            Error::param(format!(
                "spectral tetris construction failed for N = {n}, d = {d}: {what}"
            ))
        };
        while idx.len() < n {
            if rem == 0 {
                k += 1;
                rem = nn;
            }
            if k >= d {
                return Err(internal("ran out of rows"));
            }
            let row = k as u32;
            if rem >= dd {
                idx.push([row, row]);
                val.push([1.0, 0.0]);
                pair.push(false);
                rem -= dd;
            } else {
                // 0 < r = rem/d < 1: the 2×2 block in rows k, k + 1.
                if k + 1 >= d || idx.len() + 2 > n {
                    return Err(internal("a 2x2 block does not fit"));
                }
                let top = (rem as f64 / (2 * dd) as f64).sqrt();
                let bottom = ((2 * dd - rem) as f64 / (2 * dd) as f64).sqrt();
                idx.push([row, row + 1]);
                val.push([top, bottom]);
                pair.push(true);
                idx.push([row, row + 1]);
                val.push([top, -bottom]);
                pair.push(true);
                k += 1;
                // N ≥ 2d > 2d − rem, so this does not underflow.
                rem = nn - (2 * dd - rem);
            }
        }
        if k + 1 != d || rem != 0 {
            return Err(internal("the rows are not filled exactly"));
        }
        let mut first = vec![n; d + 1];
        for (pos, ix) in idx.iter().enumerate().rev() {
            if let Some(f) = first.get_mut(ix[0] as usize) {
                *f = pos;
            }
        }
        // Rows without a vector starting in them (possible only for a row entered through a
        // block) take the next row's start.
        for r in (0..d).rev() {
            if first[r] > first[r + 1] {
                first[r] = first[r + 1];
            }
        }
        Ok(TetrisFrame {
            n,
            d,
            idx,
            val,
            pair,
            first,
        })
    }

    /// Number of frame vectors N.
    pub fn frame_size(&self) -> usize {
        self.n
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The redundancy λ = N/d, which is also the frame bound.
    pub fn redundancy(&self) -> f64 {
        self.n as f64 / self.d as f64
    }

    /// Number of 2×2 blocks in the construction (each contributes two two-entry vectors).
    pub fn block_count(&self) -> usize {
        self.pair.iter().filter(|&&p| p).count() / 2
    }

    /// The frame vector at zero-based position `pos` (e_{pos+1}), or `None` past the end.
    pub fn vector(&self, pos: usize) -> Option<SparseVector> {
        let ix = self.idx.get(pos)?;
        let v = self.val.get(pos)?;
        let two = self.pair.get(pos).copied().unwrap_or(false);
        Some(SparseVector {
            len: if two { 2 } else { 1 },
            rows: [ix[0] as usize, ix[1] as usize],
            values: *v,
        })
    }

    /// Scratch buffers sized for this frame.
    pub fn workspace(&self) -> TetrisWorkspace {
        TetrisWorkspace {
            input: vec![0.0; self.n],
            acc: vec![0.0; self.d],
        }
    }

    /// Writes the frame vector e_n (n = 1..N, as [`super::HarmonicFrame::row`]) into `out`
    /// (length d), densely.
    pub fn row(&self, n: usize, out: &mut [f64]) -> Result<()> {
        if n == 0 || n > self.n {
            return Err(Error::param(format!(
                "frame index {n} is outside 1..={}",
                self.n
            )));
        }
        check_len("frame row", out.len(), self.d)?;
        out.fill(0.0);
        let (ix, v) = (self.idx[n - 1], self.val[n - 1]);
        for (&i, &x) in ix.iter().zip(&v) {
            if let Some(o) = out.get_mut(i as usize) {
                *o += x;
            }
        }
        Ok(())
    }

    /// The dense N×d matrix whose row n − 1 is e_n (row-major); O(N·d), for tests and small cases.
    pub fn dense(&self) -> Vec<f64> {
        let mut m = vec![0.0; self.n * self.d];
        for (pos, (ix, v)) in self.idx.iter().zip(&self.val).enumerate() {
            for (&i, &x) in ix.iter().zip(v) {
                if let Some(o) = m.get_mut(pos * self.d + i as usize) {
                    *o += x;
                }
            }
        }
        m
    }

    /// Analysis: `coeffs[n − 1] = ⟨w, e_n⟩` for n = 1..N, in O(N). Same signature as
    /// [`super::HarmonicFrame::analyse`]; the workspace is not needed and is taken only so that
    /// swapping frames is mechanical.
    pub fn analyse(&self, w: &[f64], coeffs: &mut [f64], _ws: &mut TetrisWorkspace) -> Result<()> {
        self.analyse_sparse(w, coeffs)
    }

    /// Analysis without a workspace: `coeffs[n − 1] = ⟨w, e_n⟩`, O(N).
    pub fn analyse_sparse(&self, w: &[f64], coeffs: &mut [f64]) -> Result<()> {
        check_len("vector", w.len(), self.d)?;
        check_len("coefficient buffer", coeffs.len(), self.n)?;
        for ((c, ix), v) in coeffs.iter_mut().zip(&self.idx).zip(&self.val) {
            let a = w.get(ix[0] as usize).copied().unwrap_or(0.0);
            let b = w.get(ix[1] as usize).copied().unwrap_or(0.0);
            // A one-entry vector has v[1] = 0 at the same row: the sum is exactly v[0]·a.
            *c = v[0] * a + v[1] * b;
        }
        Ok(())
    }

    /// Synthesis: `out = scale · Σ_n a[n − 1]·e_n`, O(N + d). The canonical dual reconstruction
    /// is `scale = d/N` (times δ when `a` holds levels in units of δ). Same signature as
    /// [`super::HarmonicFrame::synthesise`].
    pub fn synthesise(
        &self,
        a: &[f64],
        scale: f64,
        out: &mut [f64],
        ws: &mut TetrisWorkspace,
    ) -> Result<()> {
        check_len("coefficient vector", a.len(), self.n)?;
        check_len("output vector", out.len(), self.d)?;
        self.accumulate(a, &mut ws.acc)?;
        for (o, &x) in out.iter_mut().zip(&ws.acc) {
            *o = scale * x;
        }
        Ok(())
    }

    /// Mutable access to the workspace's coefficient input: length N, **indexed by zero-based
    /// frame position** p (slot p multiplies e_{p+1}). Unlike the harmonic frame's FFT input
    /// there is no shift: a decoder scatters the level of step k to slot `order.position(k)`.
    pub fn input<'w>(&self, ws: &'w mut TetrisWorkspace) -> &'w mut [f64] {
        &mut ws.input
    }

    /// Synthesis from the coefficients already placed in [`TetrisFrame::input`]:
    /// `out = scale · Σ_p input[p]·e_{p+1}`.
    pub fn synthesise_workspace(
        &self,
        scale: f64,
        out: &mut [f64],
        ws: &mut TetrisWorkspace,
    ) -> Result<()> {
        self.synthesise_scaled(scale, out, ws, |x| x)
    }

    /// [`TetrisFrame::synthesise_workspace`] writing f32: exactly the f64 result cast with
    /// `as f32` (the decoder's path, as [`super::HarmonicFrame`]'s).
    pub fn synthesise_workspace_f32(
        &self,
        scale: f64,
        out: &mut [f32],
        ws: &mut TetrisWorkspace,
    ) -> Result<()> {
        self.synthesise_scaled(scale, out, ws, |x| x as f32)
    }

    /// `out[i] = write(scale · Σ_p input[p]·e_{p+1}[i])`.
    fn synthesise_scaled<T>(
        &self,
        scale: f64,
        out: &mut [T],
        ws: &mut TetrisWorkspace,
        write: impl Fn(f64) -> T,
    ) -> Result<()> {
        check_len("output vector", out.len(), self.d)?;
        let TetrisWorkspace { input, acc } = ws;
        self.accumulate(input, acc)?;
        for (o, &x) in out.iter_mut().zip(acc.iter()) {
            *o = write(scale * x);
        }
        Ok(())
    }

    /// acc = Σ_p a[p]·e_{p+1} (unscaled).
    fn accumulate(&self, a: &[f64], acc: &mut [f64]) -> Result<()> {
        check_len("coefficient vector", a.len(), self.n)?;
        check_len("accumulator", acc.len(), self.d)?;
        acc.fill(0.0);
        for ((&x, ix), v) in a.iter().zip(&self.idx).zip(&self.val) {
            if let Some(o) = acc.get_mut(ix[0] as usize) {
                *o += x * v[0];
            }
            if let Some(o) = acc.get_mut(ix[1] as usize) {
                *o += x * v[1];
            }
        }
        Ok(())
    }

    /// Analysis by the dense matrix (O(N·d)); the reference for tests.
    pub fn analyse_dense(&self, w: &[f64], coeffs: &mut [f64]) -> Result<()> {
        check_len("vector", w.len(), self.d)?;
        check_len("coefficient buffer", coeffs.len(), self.n)?;
        let mut e = vec![0.0; self.d];
        for (i, x) in coeffs.iter_mut().enumerate() {
            self.row(i + 1, &mut e)?;
            *x = e.iter().zip(w).map(|(a, b)| a * b).sum();
        }
        Ok(())
    }

    /// Synthesis by the dense matrix (O(N·d)); the reference for tests.
    pub fn synthesise_dense(&self, a: &[f64], scale: f64, out: &mut [f64]) -> Result<()> {
        check_len("coefficient vector", a.len(), self.n)?;
        check_len("output vector", out.len(), self.d)?;
        out.fill(0.0);
        let mut e = vec![0.0; self.d];
        for (i, &ai) in a.iter().enumerate() {
            self.row(i + 1, &mut e)?;
            for (o, ei) in out.iter_mut().zip(&e) {
                *o += ai * ei;
            }
        }
        for o in out.iter_mut() {
            *o *= scale;
        }
        Ok(())
    }

    /// ‖Σ_i c_i·e_{p_i+1}‖ for a few (coefficient, zero-based position) terms, computed on the
    /// sparse entries (no cancellation through 2 − 2⟨a, b⟩). Positions past the end count as 0.
    fn combination_norm(&self, terms: &[(f64, usize)]) -> f64 {
        // At most 3 terms × 2 entries.
        let mut rows = [0u32; 6];
        let mut vals = [0.0f64; 6];
        let mut used = 0usize;
        for &(c, p) in terms {
            let (Some(ix), Some(v)) = (self.idx.get(p), self.val.get(p)) else {
                continue;
            };
            for (&r, &x) in ix.iter().zip(v) {
                match rows[..used].iter().position(|&q| q == r) {
                    Some(j) => vals[j] += c * x,
                    None => {
                        if used < rows.len() {
                            rows[used] = r;
                            vals[used] = c * x;
                            used += 1;
                        }
                    }
                }
            }
        }
        vals[..used].iter().map(|x| x * x).sum::<f64>().sqrt()
    }

    /// ‖e_{a+1} − e_{b+1}‖ for zero-based positions a, b.
    pub fn distance(&self, a: usize, b: usize) -> f64 {
        self.combination_norm(&[(1.0, a), (-1.0, b)])
    }

    /// Frame variation σ(F, p) = Σ_{k=0}^{N−2} ‖e_{p(k)} − e_{p(k+1)}‖ (positions zero-based), in
    /// O(N). Errors if `order` is not a permutation of 0..N−1.
    pub fn variation(&self, order: &Permutation) -> Result<f64> {
        order.validate(self.n)?;
        Ok((1..self.n)
            .map(|k| self.distance(order.position(k - 1), order.position(k)))
            .sum())
    }

    /// σ(F, identity), O(N).
    pub fn variation_identity(&self) -> f64 {
        (1..self.n).map(|k| self.distance(k - 1, k)).sum()
    }

    /// The second-order variation σ₂(F, p) = Σ_{n=1}^{N−2} ‖f_n − 2f_{n+1} + f_{n+2}‖ and the
    /// tail length ‖f_{N−1} − 2f_N‖, with f_n = e_{p(n)} (as
    /// [`Permutation::variation2`] for harmonic frames), in O(N).
    pub fn variation2(&self, order: &Permutation) -> Result<(f64, f64)> {
        order.validate(self.n)?;
        let n = self.n;
        let f = |k: usize| order.position(k);
        let sigma2 = (2..n)
            .map(|k| self.combination_norm(&[(1.0, f(k - 2)), (-2.0, f(k - 1)), (1.0, f(k))]))
            .sum();
        let tail = if n >= 2 {
            self.combination_norm(&[(1.0, f(n - 2)), (-2.0, f(n - 1))])
        } else {
            3.0
        };
        Ok((sigma2, tail))
    }

    /// The natural order with the two columns of every 2×2 block visited "−" first: the closed-form
    /// improvement on the identity described in the module docs (O(N)). Equal to
    /// [`Permutation::Identity`] when there are no blocks (λ an integer).
    pub fn block_swapped_order(&self) -> Result<Permutation> {
        let mut order: Vec<u32> = (0..self.n as u32).collect();
        let mut pos = 0usize;
        while pos + 1 < self.n {
            if self.pair[pos] {
                order.swap(pos, pos + 1);
                pos += 2;
            } else {
                pos += 1;
            }
        }
        Permutation::explicit(order, self.n)
    }
}

impl FrameGeometry for TetrisFrame {
    fn frame_size(&self) -> usize {
        self.n
    }

    fn distance(&self, a: usize, b: usize) -> f64 {
        TetrisFrame::distance(self, a, b)
    }

    /// Vectors with disjoint supports are orthogonal (distance √2), so only the vectors of rows
    /// r − 1, r, r + 1 (r = the first row of `a`) can be nearer; they are examined in O(1): each
    /// run of equal basis vectors e_q (about λ adjacent copies) contributes only its two
    /// positions nearest to `a` in index — more copies would fill the list and hide the distinct
    /// neighbours 2-opt needs — and each 2×2 block its two columns. Sorted by (distance, index
    /// distance, position).
    fn candidates(&self, a: usize, k: usize, out: &mut Vec<(f64, usize)>) {
        out.clear();
        let Some(ix) = self.idx.get(a) else {
            return;
        };
        let r = ix[0] as usize;
        let push = |b: usize, out: &mut Vec<(f64, usize)>| {
            if b != a && b < self.n && !out.iter().any(|&(_, c)| c == b) {
                let dist = TetrisFrame::distance(self, a, b);
                if dist < std::f64::consts::SQRT_2 - 1e-12 {
                    out.push((dist, b));
                }
            }
        };
        for q in r.saturating_sub(1)..(r + 2).min(self.d) {
            let (lo, hi) = (self.first[q], self.first[q + 1]);
            // Row q's range: the copies of e_q, then possibly the block in rows q, q + 1.
            let block = hi >= lo + 2 && self.pair.get(hi - 1).copied().unwrap_or(false);
            let singles_end = if block { hi - 2 } else { hi };
            if block {
                push(hi - 2, out);
                push(hi - 1, out);
            }
            if singles_end > lo {
                let last = singles_end - 1;
                // The two positions of lo..=last nearest to a (excluding a).
                let near = if a < lo {
                    [lo, lo + 1]
                } else if a > last {
                    [last, last.saturating_sub(1)]
                } else {
                    [a.saturating_sub(1), a + 1]
                };
                for b in near {
                    if (lo..=last).contains(&b) {
                        push(b, out);
                    }
                }
            }
        }
        out.sort_by(|x, y| {
            x.0.total_cmp(&y.0)
                .then_with(|| x.1.abs_diff(a).cmp(&y.1.abs_diff(a)))
                .then_with(|| x.1.cmp(&y.1))
        });
        out.truncate(k);
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::param(format!(
            "{what} has length {got}, expected {want}"
        )))
    }
}
