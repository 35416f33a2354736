//! Algorithm 1 on a weight matrix: every vector of the matrix is expanded in one harmonic frame,
//! its coefficients pass through first-order ΣΔ (or second-order, [`Scheme`]), and the codes, δ values and certificates are
//! kept in a [`QuantizedTensor`] (MATH.md §3).
//!
//! Orientation: a PyTorch-layout weight W ∈ R^{out×in} acts as y = W·x. The paper quantizes its
//! **columns** (d = out, `in` vectors); [`Orientation::Rows`] quantizes its rows (d = in). With a
//! bias b, the matrix quantized is [W | b] (one more column, or one more entry per row).

#[cfg(all(feature = "parallel", feature = "encode"))]
use rayon::prelude::*;

use super::alphabet::Alphabet;
#[cfg(feature = "encode")]
use super::bound;
#[cfg(feature = "encode")]
use super::scheme::Scheme;
#[cfg(feature = "encode")]
use super::step::{smallest_step, Deltas, StepPolicy};
#[cfg(feature = "encode")]
use super::{second_order, sigma_delta};
#[cfg(feature = "encode")]
use crate::codes::bitpack;
use crate::error::{Error, Result};
#[cfg(feature = "encode")]
use crate::frame::FrameDescriptor;
use crate::frame::{Frame, FrameWorkspace, Permutation};
#[cfg(feature = "encode")]
use std::sync::OnceLock;

/// Which vectors of a weight matrix are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Orientation {
    /// The paper's orientation: the columns of W[out, in], d = out, `in` vectors.
    #[default]
    Columns,
    /// The rows of W[out, in]: d = in, `out` vectors.
    Rows,
}

impl Orientation {
    /// `columns` or `rows`.
    pub fn name(&self) -> &'static str {
        match self {
            Orientation::Columns => "columns",
            Orientation::Rows => "rows",
        }
    }
}

/// The shape of a (possibly bias-augmented) weight matrix and the orientation of its vectors:
/// everything needed to move vectors between a row-major W (plus bias) and vector-major storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatrixLayout {
    /// Rows of W (`out`).
    pub rows: usize,
    /// Columns of W (`in`), without the bias.
    pub cols: usize,
    /// Whether the bias is appended as one more column.
    pub has_bias: bool,
    /// Which vectors are quantized.
    pub orientation: Orientation,
}

impl MatrixLayout {
    fn aug_cols(&self) -> usize {
        self.cols + usize::from(self.has_bias)
    }

    /// The dimension d of each vector.
    pub fn vector_len(&self) -> usize {
        match self.orientation {
            Orientation::Columns => self.rows,
            Orientation::Rows => self.aug_cols(),
        }
    }

    /// The number m of vectors.
    pub fn vector_count(&self) -> usize {
        match self.orientation {
            Orientation::Columns => self.aug_cols(),
            Orientation::Rows => self.rows,
        }
    }

    /// Writes vector `j` (length d) into the row-major weight buffer (rows × cols) and, for the
    /// bias entries, into `bias` (length rows). Either output may be omitted.
    #[cfg(feature = "encode")]
    pub(crate) fn scatter(
        &self,
        j: usize,
        v: &[f64],
        weight: Option<&mut [f32]>,
        bias: Option<&mut [f32]>,
    ) {
        let cols = self.cols;
        match self.orientation {
            Orientation::Columns if j < cols => {
                if let Some(w) = weight {
                    for (i, &x) in v.iter().enumerate() {
                        if let Some(o) = w.get_mut(i * cols + j) {
                            *o = x as f32;
                        }
                    }
                }
            }
            Orientation::Columns => {
                if let Some(b) = bias {
                    for (o, &x) in b.iter_mut().zip(v) {
                        *o = x as f32;
                    }
                }
            }
            Orientation::Rows => {
                if let Some(w) = weight {
                    if let Some(row) = w.get_mut(j * cols..(j + 1) * cols) {
                        for (o, &x) in row.iter_mut().zip(v) {
                            *o = x as f32;
                        }
                    }
                }
                if self.has_bias {
                    if let (Some(b), Some(&x)) = (bias, v.get(cols)) {
                        if let Some(o) = b.get_mut(j) {
                            *o = x as f32;
                        }
                    }
                }
            }
        }
    }
}

/// A borrowed row-major weight matrix W\[rows, cols\] (f32), optionally with a bias b\[rows\] that is
/// quantized with it as one more column, as the paper does.
#[cfg(feature = "encode")]
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    data: &'a [f32],
    bias: Option<&'a [f32]>,
    rows: usize,
    cols: usize,
}

#[cfg(feature = "encode")]
impl<'a> Matrix<'a> {
    /// Views `data` as a row-major rows × cols matrix. Conv weights [out, in, kh, kw] are passed
    /// as rows = out, cols = in·kh·kw.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        let len = rows
            .checked_mul(cols)
            .ok_or_else(|| Error::param(format!("matrix {rows} x {cols} overflows")))?;
        if rows == 0 || cols == 0 || data.len() != len {
            return Err(Error::param(format!(
                "matrix of {} values cannot be viewed as {rows} x {cols} (both must be at least 1)",
                data.len()
            )));
        }
        Ok(Matrix {
            data,
            bias: None,
            rows,
            cols,
        })
    }

    /// Appends the bias b (length rows) as one more column: [W | b].
    pub fn with_bias(mut self, bias: &'a [f32]) -> Result<Self> {
        if bias.len() != self.rows {
            return Err(Error::param(format!(
                "bias has {} entries, the weight has {} rows",
                bias.len(),
                self.rows
            )));
        }
        self.bias = Some(bias);
        Ok(self)
    }

    /// The layout of this matrix's vectors in the given orientation.
    pub fn layout(&self, orientation: Orientation) -> MatrixLayout {
        MatrixLayout {
            rows: self.rows,
            cols: self.cols,
            has_bias: self.bias.is_some(),
            orientation,
        }
    }

    /// Copies vector `j` of the given orientation into `out` (length d), as f64.
    pub fn load_vector(&self, orientation: Orientation, j: usize, out: &mut [f64]) -> Result<()> {
        let layout = self.layout(orientation);
        if j >= layout.vector_count() || out.len() != layout.vector_len() {
            return Err(Error::param(format!(
                "vector {j} of length {} is not in a matrix of {} vectors of length {}",
                out.len(),
                layout.vector_count(),
                layout.vector_len()
            )));
        }
        let cols = self.cols;
        let at = |i: usize, c: usize| -> f32 {
            if c < cols {
                self.data.get(i * cols + c).copied().unwrap_or(f32::NAN)
            } else {
                self.bias
                    .and_then(|b| b.get(i))
                    .copied()
                    .unwrap_or(f32::NAN)
            }
        };
        for (i, o) in out.iter_mut().enumerate() {
            let x = match orientation {
                Orientation::Columns => at(i, j),
                Orientation::Rows => at(j, i),
            };
            if !x.is_finite() {
                return Err(Error::Data(format!(
                    "non-finite weight {x} in vector {j}, entry {i}"
                )));
            }
            *o = f64::from(x);
        }
        Ok(())
    }

    /// Loads the vectors `first .. first + out.len()` like [`Matrix::load_vector`], in one pass
    /// over W for the columns orientation (consecutive columns share cache lines, so this reads
    /// each line once instead of once per column). The same values and the same error.
    fn load_vectors(
        &self,
        orientation: Orientation,
        first: usize,
        out: &mut [Vec<f64>],
    ) -> Result<()> {
        let layout = self.layout(orientation);
        let count = out.len();
        let fits = first + count <= layout.vector_count()
            && out.iter().all(|o| o.len() == layout.vector_len());
        if orientation == Orientation::Rows || !fits {
            for (l, o) in out.iter_mut().enumerate() {
                self.load_vector(orientation, first + l, o)?;
            }
            return Ok(());
        }
        let cols = self.cols;
        // The group's columns of W, row by row (one short contiguous read per row, a tight loop
        // with many rows in flight), then moved into the vectors.
        let in_w = cols.saturating_sub(first).min(count);
        let mut block = vec![0.0f32; self.rows * count];
        for (dst, row) in block
            .chunks_exact_mut(count)
            .zip(self.data.chunks_exact(cols))
        {
            // (An element loop: a call to memmove per 32 bytes costs more than the copy.)
            for (d, &s) in dst
                .iter_mut()
                .zip(row.get(first..first + in_w).unwrap_or(&[]))
            {
                *d = s;
            }
        }
        if in_w < count {
            // The bias column (the last vector, c = cols).
            if let Some(b) = self.bias {
                for (dst, &x) in block.chunks_exact_mut(count).zip(b) {
                    if let Some(o) = dst.get_mut(in_w) {
                        *o = x;
                    }
                }
            }
        }
        let finite = block.iter().all(|x| x.is_finite());
        for (l, o) in out.iter_mut().enumerate() {
            for (o, src) in o.iter_mut().zip(block.chunks_exact(count)) {
                *o = f64::from(src.get(l).copied().unwrap_or(f32::NAN));
            }
        }
        if !finite {
            // The first non-finite weight in the order load_vector reports it.
            for (l, o) in out.iter_mut().enumerate() {
                self.load_vector(orientation, first + l, o)?;
            }
        }
        Ok(())
    }

    /// The largest Euclidean norm of a vector in the given orientation (for a network-wide δ).
    pub fn max_vector_norm(&self, orientation: Orientation) -> Result<f64> {
        let layout = self.layout(orientation);
        let mut buf = vec![0.0; layout.vector_len()];
        let mut max = 0.0f64;
        for j in 0..layout.vector_count() {
            self.load_vector(orientation, j, &mut buf)?;
            max = max.max(norm(&buf));
        }
        Ok(max)
    }
}

/// The largest |x| of `x` (finite values): eight running maxima that compile to packed max
/// instructions; the same value as a sequential fold, since max is exact and order-free.
#[cfg(feature = "encode")]
fn max_abs(x: &[f64]) -> f64 {
    let pick = |m: f64, c: f64| {
        let a = c.abs();
        if a > m {
            a
        } else {
            m
        }
    };
    let mut acc = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (m, &v) in acc.iter_mut().zip(c) {
            *m = pick(*m, v);
        }
    }
    acc.into_iter()
        .chain(chunks.remainder().iter().copied())
        .fold(0.0, pick)
}

#[cfg(feature = "encode")]
fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Runs Algorithm 1: `FrameQuantizer::new(frame, K, policy)?.quantize(&matrix, orientation)`.
#[cfg(feature = "encode")]
#[derive(Debug, Clone)]
pub struct FrameQuantizer {
    frame: Frame,
    alphabet: Alphabet,
    policy: StepPolicy,
    order: Permutation,
    scheme: Scheme,
    sigma: f64,
}

#[cfg(feature = "encode")]
impl FrameQuantizer {
    /// A quantizer for vectors of dimension d = `frame.dim()`, with 2K levels (K = `levels`).
    pub fn new(frame: FrameDescriptor, levels: u32, policy: StepPolicy) -> Result<Self> {
        policy.validate()?;
        let frame = frame.build()?;
        let sigma = frame.variation_identity();
        Ok(FrameQuantizer {
            frame,
            alphabet: Alphabet::new(levels)?,
            policy,
            order: Permutation::Identity,
            scheme: Scheme::FirstOrder,
            sigma,
        })
    }

    /// Runs ΣΔ along an explicit ordering of the frame vectors (validated; the frame constant
    /// recomputed).
    pub fn with_order(mut self, order: Permutation) -> Result<Self> {
        self.order = order;
        self.sigma = self.frame_constant()?;
        Ok(self)
    }

    /// Uses the ΣΔ scheme `scheme` (first order by default). Second order needs K ≥ 2.
    pub fn with_scheme(mut self, scheme: Scheme) -> Result<Self> {
        scheme.check_levels(self.alphabet)?;
        self.scheme = scheme;
        self.sigma = self.frame_constant()?;
        Ok(self)
    }

    /// The frame constant C of the certificate (δ·d / 2N)(C + 1) for this frame, ordering and
    /// scheme: σ(F, p) for first order, σ₂(F, p) + ‖f_{N−1} − 2f_N‖ for second order.
    fn frame_constant(&self) -> Result<f64> {
        match self.scheme {
            Scheme::FirstOrder => self.frame.variation(&self.order),
            Scheme::SecondOrder => {
                let (sigma2, tail) = self.frame.variation2(&self.order)?;
                Ok(sigma2 + tail)
            }
        }
    }

    /// The frame constant C used in the bounds (δ·d / 2N)(C + 1): the frame variation σ(F, p)
    /// for first-order ΣΔ, σ₂(F, p) + ‖f_{N−1} − 2f_N‖ for second order.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// The ΣΔ scheme in use.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The frame in use (for example to compute an ordering with [`Frame::order`]).
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// Quantizes every vector of `matrix` (Algorithm 1). Fails on a dimension mismatch or a
    /// non-finite weight.
    pub fn quantize(&self, matrix: &Matrix, orientation: Orientation) -> Result<QuantizedTensor> {
        let layout = matrix.layout(orientation);
        let (n, d, m) = (
            self.frame.frame_size(),
            self.frame.dim(),
            layout.vector_count(),
        );
        if layout.vector_len() != d {
            return Err(Error::param(format!(
                "the {} of this {}x{} matrix have length {}, the frame is for d = {d}",
                orientation.name(),
                layout.rows,
                layout.aug_cols(),
                layout.vector_len()
            )));
        }
        let total = n
            .checked_mul(m)
            .ok_or_else(|| Error::param("code count N·m overflows"))?;
        let k_half = f64::from(self.alphabet.k()) - 0.5;
        // The largest |x| / δ the scheme certifies: K − ½ (first order), K − 3/2 (second).
        let reach = self.scheme.reach(self.alphabet)?;
        // The paper's rule needs the largest norm first; the explicit δ is given.
        let tensor_delta = match self.policy {
            StepPolicy::Tensor => Some(smallest_step(matrix.max_vector_norm(orientation)?, reach)),
            StepPolicy::Explicit(delta) => Some(delta),
            StepPolicy::Vector | StepPolicy::Coefficient => None,
        };

        let bits = self.alphabet.bits() as usize;
        let packed_total = bitpack::packed_len(total as u64, bits as u32)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| Error::param("packed code stream length overflows"))?;
        // The codes go straight into their b-bit stream (spec §7), zero-initialised (calloc).
        // Vectors go in groups of LANES; a group's LANES·N·b bits are a whole number of bytes
        // (LANES = 8), so each group owns the bytes [g·N·b, (g+1)·N·b) of the stream.
        let mut packed = vec![0u8; packed_total];
        const LANES: usize = sigma_delta::LANES;
        let group_bytes = n * bits;
        type Scratch = (FrameWorkspace, [Vec<f64>; LANES], [Vec<f64>; LANES]);
        let second = self.scheme == Scheme::SecondOrder;
        let group = |ws: &mut Scratch, g: usize, out: &mut [u8]| -> Result<[(f64, bool); LANES]> {
            let (ws, ws_w, xs) = ws;
            let mut lanes = [(0.0, true); LANES];
            let count = LANES.min(m - g * LANES);
            matrix.load_vectors(orientation, g * LANES, &mut ws_w[..count])?;
            for (l, (x, w)) in xs.iter_mut().zip(ws_w.iter()).enumerate().take(count) {
                if second {
                    self.frame.analyse(w, x, ws)?;
                } else {
                    // Coefficients in the FFT's order (frame position p at (p + 1) mod N): the
                    // same values as `analyse`, and the largest |x| does not depend on order.
                    self.frame.analyse_fft_order(w, x, ws)?;
                }
                let max_coeff = max_abs(x);
                let delta = match self.policy {
                    StepPolicy::Vector => smallest_step(norm(w), reach),
                    StepPolicy::Coefficient => smallest_step(max_coeff, reach),
                    _ => tensor_delta.unwrap_or(0.0),
                };
                // The norm policies are certified by |⟨w, e_n⟩| ≤ ‖w‖ ≤ reach·δ, the
                // coefficient policy by construction; an explicit δ must be checked.
                let certified =
                    !matches!(self.policy, StepPolicy::Explicit(_)) || max_coeff <= reach * delta;
                lanes[l] = (delta, certified);
            }
            if second {
                // One chain per vector (coefficients by frame position), then the group's codes
                // are packed into its whole bytes of the stream.
                let mut codes = vec![0u16; count * n];
                for ((x, c), o) in xs.iter().zip(codes.chunks_exact_mut(n)).zip(&mut lanes) {
                    let state = second_order::quantize(x, &self.order, self.alphabet, o.0, c);
                    // Proven |u_n| ≤ δ/2 under the reach condition; a state past it (float
                    // rounding at the edge) withdraws the certificate rather than bend it.
                    if state > 0.5 * o.0 {
                        o.1 = false;
                    }
                }
                bitpack::pack(&codes, bits as u32, out)?;
                return Ok(lanes);
            }
            let [x0, x1, x2, x3, x4, x5, x6, x7] = xs;
            sigma_delta::quantize_packed_fft_order(
                [x0, x1, x2, x3, x4, x5, x6, x7].map(|x| &x[..]),
                &self.order,
                self.alphabet,
                lanes.map(|o| o.0),
                count,
                out,
            );
            Ok(lanes)
        };
        let new_ws = || {
            (
                self.frame.workspace(),
                std::array::from_fn(|_| vec![0.0; d]),
                std::array::from_fn(|_| vec![0.0; n]),
            )
        };

        #[cfg(feature = "parallel")]
        let results: Vec<Result<[(f64, bool); LANES]>> = packed
            .par_chunks_mut(group_bytes.max(1))
            .enumerate()
            // About two tasks per thread: enough to balance, few enough that the per-task
            // scratch (LANES·N coefficients and FFT buffers, megabytes at large N: fresh pages
            // and zeroing) is not rebuilt for every few groups.
            .with_min_len(m.div_ceil(LANES * 2 * rayon::current_num_threads()).max(1))
            .map_init(new_ws, |ws, (g, c)| group(ws, g, c))
            .collect();
        #[cfg(not(feature = "parallel"))]
        let results: Vec<Result<[(f64, bool); LANES]>> = {
            let mut ws = new_ws();
            packed
                .chunks_mut(group_bytes.max(1))
                .enumerate()
                .map(|(g, c)| group(&mut ws, g, c))
                .collect()
        };

        let mut deltas = Vec::with_capacity(m);
        let mut certified = Vec::with_capacity(m);
        for r in results {
            for (delta, cert) in r?.into_iter().take(m - deltas.len()) {
                deltas.push(delta);
                certified.push(cert);
            }
        }
        let deltas = match tensor_delta {
            Some(delta) => Deltas::Tensor(delta),
            None => Deltas::Vector(deltas),
        };
        // Decoders write f32. Every rebuilt vector has ‖w̃‖ ≤ √(d/N)·‖q‖ ≤ √d·(K − ½)·δ (the
        // frame bound is N/d), so below f32::MAX nothing can overflow to ±inf; above it, refuse
        // rather than write a file that decodes to infinities.
        let largest = (d as f64).sqrt() * k_half * deltas.max();
        // (A margin of 1e-6 covers the rounding of the synthesis itself.)
        if !largest.is_finite() || largest > f64::from(f32::MAX) * (1.0 - 1e-6) {
            return Err(Error::Data(format!(
                "weights too large to quantize: with δ = {:e} the rebuilt values could reach {largest:e}, past the f32 range",
                deltas.max()
            )));
        }
        Ok(QuantizedTensor {
            frame: self.frame.clone(),
            order: self.order.clone(),
            alphabet: self.alphabet,
            scheme: self.scheme,
            policy: self.policy,
            layout,
            deltas,
            sigma: self.sigma,
            packed,
            codes: OnceLock::new(),
            certified,
        })
    }
}

/// The result of Algorithm 1 on one matrix: integer codes (vector by vector, each vector's N codes
/// in ΣΔ step order), the δ values, the frame's descriptor and ordering, and the certificates.
#[cfg(feature = "encode")]
#[derive(Debug, Clone)]
pub struct QuantizedTensor {
    frame: Frame,
    order: Permutation,
    alphabet: Alphabet,
    scheme: Scheme,
    policy: StepPolicy,
    layout: MatrixLayout,
    deltas: Deltas,
    sigma: f64,
    /// The codes as their b-bit stream (spec §7), as Algorithm 1 writes them.
    packed: Vec<u8>,
    /// The codes as `u16`, unpacked from `packed` on the first call of [`QuantizedTensor::codes`].
    codes: OnceLock<Vec<u16>>,
    certified: Vec<bool>,
}

#[cfg(feature = "encode")]
impl QuantizedTensor {
    /// The frame's descriptor harmonic(N, d).
    pub fn frame(&self) -> FrameDescriptor {
        self.frame.descriptor()
    }
    /// The ordering ΣΔ ran along.
    pub fn order(&self) -> &Permutation {
        &self.order
    }
    /// The alphabet (K and bits per code).
    pub fn alphabet(&self) -> Alphabet {
        self.alphabet
    }
    /// The ΣΔ scheme that produced the codes.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// The δ policy used.
    pub fn policy(&self) -> StepPolicy {
        self.policy
    }
    /// Shape, bias and orientation of the quantized matrix.
    pub fn layout(&self) -> MatrixLayout {
        self.layout
    }
    /// The δ values.
    pub fn deltas(&self) -> &Deltas {
        &self.deltas
    }
    /// The frame constant C used in the bounds (δ_j·d / 2N)(C + 1): σ(F, p) for first order,
    /// σ₂(F, p) + ‖f_{N−1} − 2f_N‖ for second order.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
    /// All codes, vector by vector: codes `j·N .. (j+1)·N` belong to vector j, in step order.
    /// Unpacked from [`QuantizedTensor::packed_codes`] (and kept) on the first call: 2 bytes
    /// per code, so code paths that only write or rebuild the tensor do not call it.
    pub fn codes(&self) -> &[u16] {
        self.codes.get_or_init(|| {
            let n = self.frame.frame_size() * self.layout.vector_count();
            let mut codes = vec![0u16; n];
            // The stream holds exactly these codes (written by `FrameQuantizer::quantize`).
            bitpack::unpack(&self.packed, self.alphabet.bits(), 0, &mut codes).ok();
            codes
        })
    }

    /// All codes as one b-bit stream (spec §7, b = [`Alphabet::bits`]): code i of the tensor
    /// (vector i / N, step i mod N) at stream bits [i·b, (i + 1)·b). These are the bytes of the
    /// file's code section; Algorithm 1 writes them directly, without `u16` codes.
    pub fn packed_codes(&self) -> &[u8] {
        &self.packed
    }
    /// Whether vector j's bound is certified (the coefficient condition held).
    pub fn is_certified(&self, j: usize) -> bool {
        self.certified.get(j).copied().unwrap_or(false)
    }
    /// Number of vectors whose bound is not certified (only possible with an explicit δ).
    pub fn uncertified_count(&self) -> usize {
        self.certified.iter().filter(|c| !**c).count()
    }

    /// The certified bound of vector j, (δ_j·d / 2N)(C + 1) with C = [`Self::sigma`] (Theorem
    /// 3.1 for first order, its second-order analogue otherwise); `None` if it is not certified.
    pub fn bound(&self, j: usize) -> Option<f64> {
        self.is_certified(j).then(|| {
            bound::vector_bound(
                self.deltas.get(j),
                self.frame.dim(),
                self.frame.frame_size(),
                self.sigma,
            )
        })
    }

    /// The largest certified vector bound (over the certified vectors).
    pub fn max_bound(&self) -> f64 {
        (0..self.layout.vector_count())
            .filter_map(|j| self.bound(j))
            .fold(0.0, f64::max)
    }

    /// Lemma 5.1 bound on ‖W − W̃‖_F (and so on the spectral norm), over the certified vectors.
    pub fn matrix_bound(&self) -> f64 {
        bound::matrix_bound(self.max_bound(), self.layout.vector_count())
    }

    /// Rebuilds vector j: w̃_j = (d/N)·δ_j·Σ_n level(c_n)·e_{p(n)}, into `out` (length d).
    pub fn reconstruct_vector(&self, j: usize, out: &mut [f64]) -> Result<()> {
        let mut ws = self.frame.workspace();
        self.reconstruct_vector_with(j, out, &mut ws)
    }

    /// [`QuantizedTensor::reconstruct_vector`] with the caller's workspace, reading the levels
    /// straight from the packed codes (the same levels c − K + ½ at the same FFT indices as
    /// [`synthesise_codes`], so the same values bit for bit).
    fn reconstruct_vector_with(
        &self,
        j: usize,
        out: &mut [f64],
        ws: &mut FrameWorkspace,
    ) -> Result<()> {
        let n = self.frame.frame_size();
        if j >= self.layout.vector_count() {
            return Err(Error::param(format!("vector {j} is out of range")));
        }
        let (bits, k) = (self.alphabet.bits(), self.alphabet.k());
        let start = (j * n) as u64;
        let bad = |r: std::result::Result<(), u16>| {
            r.map_err(|c| Error::param(format!("code {c} of vector {j} is out of range")))
        };
        let input = self.frame.fft_input(ws);
        match &self.order {
            // Step k uses e_{k+1}, read by the FFT at index k + 1 (and the last at index 0).
            Permutation::Identity => {
                let (first, rest) = input.split_at_mut(1);
                bad(bitpack::unpack_levels(&self.packed, bits, start, k, rest)?)?;
                bad(bitpack::unpack_levels(
                    &self.packed,
                    bits,
                    start + n as u64 - 1,
                    k,
                    first,
                )?)?;
            }
            Permutation::Explicit(_) => {
                let mut levels = vec![0.0; n];
                bad(bitpack::unpack_levels(
                    &self.packed,
                    bits,
                    start,
                    k,
                    &mut levels,
                )?)?;
                for (step, &level) in levels.iter().enumerate() {
                    // Frame position p (zero-based) is read by the FFT at index (p + 1) mod N.
                    let p = self.order.position(step) + 1;
                    let idx = if p == n { 0 } else { p };
                    if let Some(slot) = input.get_mut(idx) {
                        *slot = level;
                    }
                }
            }
        }
        let scale = self.deltas.get(j) * self.frame.dim() as f64 / n as f64;
        self.frame.synthesise_workspace(scale, out, ws)
    }

    /// Rebuilds W̃ into `weight` (rows × cols, row-major) and, for a tensor quantized with its
    /// bias, b̃ into `bias` (length rows). Pass `None` for a part you do not need.
    pub fn reconstruct_into(
        &self,
        mut weight: Option<&mut [f32]>,
        mut bias: Option<&mut [f32]>,
    ) -> Result<()> {
        let l = self.layout;
        if let Some(w) = weight.as_deref() {
            if w.len() != l.rows * l.cols {
                return Err(Error::param(format!(
                    "weight buffer has {} values, the tensor has {}",
                    w.len(),
                    l.rows * l.cols
                )));
            }
        }
        if let Some(b) = bias.as_deref() {
            if !l.has_bias || b.len() != l.rows {
                return Err(Error::param(
                    "bias buffer given for a tensor without bias, or of the wrong length",
                ));
            }
        }
        let mut v = vec![0.0; self.frame.dim()];
        let mut ws = self.frame.workspace();
        for j in 0..l.vector_count() {
            self.reconstruct_vector_with(j, &mut v, &mut ws)?;
            l.scatter(j, &v, weight.as_deref_mut(), bias.as_deref_mut());
        }
        Ok(())
    }

    /// Measured error ‖w_j − w̃_j‖ of every vector against the original matrix.
    pub fn measured_errors(&self, original: &Matrix) -> Result<Vec<f64>> {
        let d = self.frame.dim();
        if original.layout(self.layout.orientation) != self.layout {
            return Err(Error::param("the original matrix has another shape"));
        }
        let (mut w, mut v) = (vec![0.0; d], vec![0.0; d]);
        let mut ws = self.frame.workspace();
        (0..self.layout.vector_count())
            .map(|j| {
                original.load_vector(self.layout.orientation, j, &mut w)?;
                self.reconstruct_vector_with(j, &mut v, &mut ws)?;
                Ok(w.iter()
                    .zip(&v)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt())
            })
            .collect()
    }
}

/// Synthesis of one vector from its codes: scatter the levels to their frame positions, one FFT,
/// scale by δ·d/N. Codes must be below 2K (decoders check this before calling).
pub fn synthesise_codes(
    frame: &Frame,
    order: &Permutation,
    alphabet: Alphabet,
    delta: f64,
    codes: &[u16],
    out: &mut [f64],
    ws: &mut FrameWorkspace,
) -> Result<()> {
    let n = frame.frame_size();
    if codes.len() != n {
        return Err(Error::param(format!(
            "{} codes given for a frame of N = {n}",
            codes.len()
        )));
    }
    let input = frame.fft_input(ws);
    match order {
        // Step k uses e_{k+1}, read by the FFT at index k + 1 (and the last at index 0).
        Permutation::Identity => {
            if let (Some((first, rest)), Some((&last, init))) =
                (input.split_first_mut(), codes.split_last())
            {
                *first = alphabet.level(last);
                for (slot, &c) in rest.iter_mut().zip(init) {
                    *slot = alphabet.level(c);
                }
            }
        }
        Permutation::Explicit(_) => {
            for (k, &c) in codes.iter().enumerate() {
                // Frame position p (zero-based) is e_{p+1}, read by the FFT at index (p + 1) mod N.
                let p = order.position(k) + 1;
                let idx = if p == n { 0 } else { p };
                if let Some(slot) = input.get_mut(idx) {
                    *slot = alphabet.level(c);
                }
            }
        }
    }
    let scale = delta * frame.dim() as f64 / n as f64;
    frame.synthesise_workspace(scale, out, ws)
}

#[cfg(all(test, feature = "encode"))]
mod tests {
    use super::*;

    /// `load_vectors` (one pass over a group of columns) gives `load_vector`'s values and errors.
    #[test]
    fn group_load_equals_one_by_one() {
        let (rows, cols) = (5usize, 11usize);
        let data: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.25 - 3.0).collect();
        let bias: Vec<f32> = (0..rows).map(|i| -(i as f32)).collect();
        let mut bad = data.clone();
        bad[3 * cols + 9] = f32::NAN;
        bad[4 * cols + 8] = f32::INFINITY;
        for (d, with_bias) in [(&data, false), (&data, true), (&bad, true)] {
            let mut m = Matrix::new(d, rows, cols).unwrap();
            if with_bias {
                m = m.with_bias(&bias).unwrap();
            }
            for orientation in [Orientation::Columns, Orientation::Rows] {
                let l = m.layout(orientation);
                for first in 0..l.vector_count() {
                    for count in 1..=8.min(l.vector_count() - first) {
                        let mut got = vec![vec![0.0; l.vector_len()]; count];
                        let r = m.load_vectors(orientation, first, &mut got);
                        let mut want = vec![vec![0.0; l.vector_len()]; count];
                        let w: Result<Vec<()>> = want
                            .iter_mut()
                            .enumerate()
                            .map(|(i, o)| m.load_vector(orientation, first + i, o))
                            .collect();
                        match (r, w) {
                            (Ok(()), Ok(_)) => assert_eq!(got, want),
                            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                            (a, b) => panic!("{a:?} vs {b:?}"),
                        }
                    }
                }
            }
        }
    }
}
