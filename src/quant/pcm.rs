//! PCM: memoryless rounding of each vector's (sign-flipped) frame coefficients, the paper's own
//! point of comparison for ΣΔ, with per-group steps and a rate control that spends a bit budget.
//!
//! For vector w ∈ R^d, signs D (a seeded ±1 diagonal, [`crate::frame::signs`]) and a unit-norm
//! tight frame E with N vectors (bound N/d), or no frame at all (E = I, N = d):
//!
//! - coefficients y = E·D·w, steps δ_g for groups of G consecutive coefficients;
//! - codes q_k = round(y_k / δ_{g(k)}) (ties away from zero), integers in −K..=K; without a
//!   frame, then by default [`Rounding::ZeroSum`] ([`super::rounding`]): a few codes per vector
//!   moved by one level so that the vector's errors sum to within half a step of zero;
//! - reconstruction w̃ = D·(d/N)·Eᵀ·(q ⊙ δ).
//!
//! **Certificate.** With ŷ = q ⊙ δ, w̃ − w = D·(d/N)·Eᵀ(ŷ − y) and ‖Eᵀ‖ = √(N/d), so
//! ‖w − w̃‖ ≤ √(d/N)·‖ŷ − y‖ ≤ √(d/N)·½·(Σ_k δ_{g(k)}²)^½ (zero-sum rounding keeps
//! ‖ŷ − y‖² within ¼·Σ_k δ_{g(k)}²). K is the largest |q| of the tensor, so
//! no coefficient is ever clipped and every vector is certified a priori.
//!
//! **Rate control.** δ_g = α·r_g, where r_g is the root mean square of group g's coefficients
//! ([`StepRule::Group`]) or of the whole tensor's ([`StepRule::Tensor`]), rounded to the stored
//! step type. α is found by bisection on log α so that the stored bits (codes as coded, steps,
//! stream headers) meet the target ([`RateTarget`]).

#[cfg(feature = "parallel")]
use rayon::prelude::*;

#[cfg(feature = "encode")]
use super::tensor::{MatrixLayout, Orientation};
#[cfg(feature = "encode")]
use crate::codes::stream;
use crate::codes::stream::Coding;
use crate::error::{Error, Result};
use crate::frame::{signs::sign_flips, Frame, FrameDescriptor, FrameFamily, FrameWorkspace};
#[cfg(feature = "encode")]
use crate::quant::feedback;
#[cfg(feature = "encode")]
use crate::quant::gram::{FeedbackOrder, Gram};
#[cfg(feature = "encode")]
use crate::quant::lattice;
#[cfg(feature = "encode")]
use crate::quant::rounding;
pub use crate::quant::rounding::Rounding;
#[cfg(feature = "encode")]
use crate::quant::tensor::Matrix;

/// The default budget of a pcm pack: 5.0 stored bits per quantized weight, which the default
/// whole-file cap of 5.0 bits per float weight ([`crate::bridge::budget::DEFAULT_FILE_BITS`])
/// lowers by what the raw tensors, records and small tensors take: the file as a whole is at
/// 5.0 bits per float weight (docs/cli.md, "Why the defaults").
pub const DEFAULT_BITS: f64 = 5.0;

/// The largest K of a pcm tensor: codes q + K then fit in 16 bits.
pub const MAX_PCM_K: u32 = 32767;

/// Which frame a pcm tensor's vectors are expanded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PcmFrame {
    /// No frame: the vector's own entries are rounded (N = d; frame family id 0).
    #[default]
    Identity,
    /// A harmonic or spectral tetris frame.
    Frame(FrameDescriptor),
}

impl PcmFrame {
    /// The frame family id stored in a file (0 for no frame).
    pub fn family_id(&self) -> u8 {
        match self {
            PcmFrame::Identity => 0,
            PcmFrame::Frame(f) => f.family().id(),
        }
    }

    /// N.
    pub fn frame_size(&self, d: usize) -> usize {
        match self {
            PcmFrame::Identity => d,
            PcmFrame::Frame(f) => f.frame_size(),
        }
    }

    /// `identity`, `harmonic` or `spectral-tetris`.
    pub fn name(&self) -> &'static str {
        match self {
            PcmFrame::Identity => "identity",
            PcmFrame::Frame(f) => f.family().name(),
        }
    }
}

/// How the step of each group is set from its coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StepRule {
    /// δ_g = α · rms of group g's coefficients: every group has about the same relative error.
    #[default]
    Group,
    /// δ_g = α · rms of the whole tensor's coefficients: one step for every group, which
    /// minimises the tensor's squared error for a given entropy.
    Tensor,
}

/// How each group's step is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StepPolicy {
    /// From the group's rms ([`StepRule`]) scaled by the rate control, with no limit on the
    /// codes: nothing is clipped and every vector is certified a priori (scheme version 1).
    #[default]
    Certified,
    /// Fixed-width codes of c bits (c the most the budget allows), so |q| ≤ K = 2^(c−1) − 1,
    /// and each group's step chosen for the least squared error of its coefficients with the
    /// codes clipped to ±K: the few largest coefficients may be clipped so that the others get
    /// a finer step. Needs fixed-width codes ([`Coding::Fixed`]); each vector records its
    /// measured error (scheme version 2, error kind 1), which `verify --against` re-checks.
    LeastSquares,
}

/// The stored type of the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StepType {
    /// IEEE binary16 (when every step is 0 or a normal f16; otherwise f32 is used).
    #[default]
    F16,
    /// IEEE binary32.
    F32,
}

impl StepType {
    /// Bytes per step.
    pub fn size(self) -> usize {
        match self {
            StepType::F16 => 2,
            StepType::F32 => 4,
        }
    }

    /// The dtype id stored in the file (5 F16, 9 F32).
    pub fn id(self) -> u8 {
        match self {
            StepType::F16 => 5,
            StepType::F32 => 9,
        }
    }
}

/// What the rate control aims for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateTarget {
    /// At most this many stored bits per weight (codes as coded, steps, stream headers and the
    /// tensor's record), with the smallest error that fits.
    BitsPerWeight(f64),
    /// The fewest bits whose estimated relative error ‖W − W̃‖/‖W‖ is at most this.
    RelativeError(f64),
    /// A fixed α (δ_g = α·r_g).
    Scale(f64),
}

/// What a pcm tensor records per vector besides its codes and steps (spec §5.4, error_kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorRecord {
    /// Nothing: every vector is certified a priori from its steps (scheme version 1).
    #[default]
    APriori,
    /// Each vector's measured ‖w − w̃‖ (codes chosen with error feedback, so the rounding bound
    /// does not hold; scheme version 2).
    Weight,
    /// Each vector's measured ‖w − w̃‖ and its calibration-weighted relative output error
    /// ‖H^½(w − w̃)‖ / ‖H^½ w‖ (scheme version 2).
    WeightAndOutput,
}

impl ErrorRecord {
    /// The id stored in the file (0, 1, 2).
    pub fn id(self) -> u8 {
        match self {
            ErrorRecord::APriori => 0,
            ErrorRecord::Weight => 1,
            ErrorRecord::WeightAndOutput => 2,
        }
    }

    /// f32 values stored per vector (0, 1 or 2).
    pub fn fields(self) -> usize {
        usize::from(self.id())
    }
}

/// Settings of data-aware pcm ([`quantize_calibrated`]).
#[cfg(feature = "encode")]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackOptions {
    /// λ: λ·mean(H_ii) is added to the Gram matrix's diagonal before it is factored (default
    /// 0.1: with a few hundred calibration sentences, 0.01 (GPTQ's) fits the calibration inputs
    /// and gains less on others; docs/calibration.md).
    pub damping: f64,
    /// The order in which a row's coefficients are rounded.
    pub order: FeedbackOrder,
}

#[cfg(feature = "encode")]
impl Default for FeedbackOptions {
    fn default() -> Self {
        FeedbackOptions {
            damping: 0.1,
            order: FeedbackOrder::DecreasingDiagonal,
        }
    }
}

/// Parameters of a pcm quantization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PcmOptions {
    /// The frame family (`None` = no frame, N = d). The frame size is the family's smallest,
    /// N = d + 1 (harmonic) or 2d (spectral tetris), unless `frame_size` says otherwise.
    pub family: Option<FrameFamily>,
    /// An explicit frame size N (for a frame family only).
    pub frame_size: Option<usize>,
    /// Seed of the sign flips (0 = none).
    pub sign_seed: u64,
    /// Coefficients per step (0 = one step per vector).
    pub group: usize,
    /// How steps follow the coefficients (with [`StepPolicy::Certified`]).
    pub rule: StepRule,
    /// Certified steps (no clipping) or least-squares steps (fixed-width codes, clipped).
    pub policy: StepPolicy,
    /// How steps are stored.
    pub step_type: StepType,
    /// How codes are stored.
    pub coding: Coding,
    /// What the rate control aims for.
    pub target: RateTarget,
    /// Bytes the tensor costs besides its two sections (its header record), charged to the
    /// bit budget.
    pub record_bytes: u64,
    /// How coefficients become codes (with certified steps and no frame; otherwise nearest).
    pub rounding: Rounding,
    /// [`Rounding::ZeroSum`]: the vectors' kernel windows, in coefficients (the product of a
    /// convolution's dimensions after the second: kh·kw of [out, in, kh, kw]), each zero-summed
    /// before the vector; 0 or 1: none (a matrix, or vectors that are not rows).
    pub window: usize,
}

impl Default for PcmOptions {
    fn default() -> Self {
        PcmOptions {
            family: None,
            frame_size: None,
            sign_seed: 0,
            group: 0,
            rule: StepRule::Group,
            policy: StepPolicy::Certified,
            step_type: StepType::F16,
            coding: Coding::Rans,
            target: RateTarget::BitsPerWeight(DEFAULT_BITS),
            record_bytes: 0,
            rounding: Rounding::ZeroSum,
            window: 0,
        }
    }
}

/// Rebuilds pcm vectors from codes and steps: the decoder's arithmetic, shared by the quantizer
/// (to measure its error) and [`crate::format::SdqFile`].
#[derive(Debug, Clone)]
pub struct PcmSynthesis {
    frame: Option<Frame>,
    signs: Vec<f64>,
    n: usize,
    d: usize,
    group: usize,
}

/// Scratch space of a [`PcmSynthesis`].
pub struct PcmWorkspace {
    frame: Option<FrameWorkspace>,
}

impl PcmSynthesis {
    /// For vectors of dimension `d` in `frame` (built here), with sign seed `seed` and `group`
    /// coefficients per step (1 ≤ group ≤ N).
    pub fn new(frame: PcmFrame, d: usize, seed: u64, group: usize) -> Result<Self> {
        let (frame, n) = match frame {
            PcmFrame::Identity => (None, d),
            PcmFrame::Frame(f) => {
                if f.dim() != d {
                    return Err(Error::param(format!(
                        "the frame is for d = {}, the vectors have d = {d}",
                        f.dim()
                    )));
                }
                (Some(f.build()?), f.frame_size())
            }
        };
        if group == 0 || group > n {
            return Err(Error::param(format!(
                "a step group must have 1 to N = {n} coefficients, got {group}"
            )));
        }
        Ok(PcmSynthesis {
            frame,
            signs: sign_flips(seed, d),
            n,
            d,
            group,
        })
    }

    /// N.
    pub fn frame_size(&self) -> usize {
        self.n
    }

    /// Steps per vector, ⌈N / G⌉.
    pub fn groups(&self) -> usize {
        self.n.div_ceil(self.group)
    }

    /// Scratch space for [`PcmSynthesis::vector`].
    pub fn workspace(&self) -> PcmWorkspace {
        PcmWorkspace {
            frame: self.frame.as_ref().map(Frame::workspace),
        }
    }

    /// The certified bound √(d/N)·½·(Σ_k δ_{g(k)}²)^½ of a vector with these steps.
    pub fn bound(&self, steps: &[f64]) -> f64 {
        let mut sum = 0.0;
        for (g, &s) in steps.iter().enumerate() {
            let count = self.group.min(self.n.saturating_sub(g * self.group));
            sum += count as f64 * s * s;
        }
        (self.d as f64 / self.n as f64).sqrt() * 0.5 * sum.sqrt()
    }

    /// w̃ = D·(d/N)·Eᵀ·(q ⊙ δ) into `out` (length d), from N codes and ⌈N/G⌉ steps.
    pub fn vector(
        &self,
        codes: &[i32],
        steps: &[f64],
        ws: &mut PcmWorkspace,
        out: &mut [f32],
    ) -> Result<()> {
        if codes.len() != self.n || out.len() != self.d || steps.len() != self.groups() {
            return Err(Error::param("pcm vector buffers do not match the frame"));
        }
        // Group by group (no division per coefficient): code k has the step of group k / G.
        let group = self.group.max(1);
        match (&self.frame, ws.frame.as_mut()) {
            (None, _) => {
                let groups = out
                    .chunks_mut(group)
                    .zip(codes.chunks(group))
                    .zip(self.signs.chunks(group));
                for (((o, c), sg), &step) in groups.zip(steps) {
                    for ((o, &q), &s) in o.iter_mut().zip(c).zip(sg) {
                        *o = (f64::from(q) * step * s) as f32;
                    }
                }
            }
            (Some(frame), Some(fws)) => {
                let input = frame.fft_input(fws);
                // Frame position k (vector e_{k+1}) sits at FFT index (k + 1) mod N: positions
                // 0..N−1 go to indices 1..N−1, then the last to index 0.
                if let Some((first, rest)) = input.split_first_mut() {
                    let mut k = 0;
                    for (c, &step) in codes.chunks(group).zip(steps) {
                        for &q in c {
                            let v = f64::from(q) * step;
                            match rest.get_mut(k) {
                                Some(slot) => *slot = v,
                                None => *first = v,
                            }
                            k += 1;
                        }
                    }
                }
                frame.synthesise_workspace_f32(self.d as f64 / self.n as f64, out, fws)?;
                for (o, &s) in out.iter_mut().zip(&self.signs) {
                    if s < 0.0 {
                        *o = -*o;
                    }
                }
            }
            (Some(_), None) => return Err(Error::param("a pcm workspace of another frame")),
        }
        Ok(())
    }
}

/// The result of quantizing one matrix with pcm.
#[cfg(feature = "encode")]
#[derive(Debug, Clone)]
pub struct PcmTensor {
    /// The matrix layout of the vectors.
    pub layout: MatrixLayout,
    /// The frame.
    pub frame: PcmFrame,
    /// Seed of the sign flips (0 = none).
    pub sign_seed: u64,
    /// Coefficients per step.
    pub group: usize,
    /// How steps are stored.
    pub step_type: StepType,
    /// How codes are stored.
    pub coding: Coding,
    /// The largest |code|.
    pub k: u32,
    /// The steps, ⌈N/G⌉ per vector, vector after vector, as stored (rounded to `step_type`).
    pub steps: Vec<f32>,
    /// The codes, N per vector.
    pub codes: Vec<i32>,
    /// The codes section ([`crate::codes::stream`]).
    pub codes_section: Vec<u8>,
    /// The largest certified per-vector bound.
    pub max_bound: f64,
    /// ‖W − W̃‖_F over the quantized matrix (with its bias), measured.
    pub error_norm: f64,
    /// ‖W‖_F of the same.
    pub weight_norm: f64,
    /// The largest measured ‖w_j − w̃_j‖.
    pub max_vector_error: f64,
    /// The α the rate control chose (0 for lattice steps, which rebuild the tensor exactly).
    pub alpha: f64,
    /// What the file records per vector: nothing (certified a priori) or measured errors.
    pub record: ErrorRecord,
    /// Per vector, the measured ‖w_j − w̃_j‖ rounded up to f32 (with [`ErrorRecord::Weight`] or
    /// [`ErrorRecord::WeightAndOutput`]).
    pub vector_errors: Vec<f32>,
    /// Per vector, ‖H^½(w_j − w̃_j)‖ / ‖H^½ w_j‖ rounded up to f32 (with
    /// [`ErrorRecord::WeightAndOutput`]).
    pub output_errors: Vec<f32>,
    /// With calibration, the whole matrix's (Σ_j ‖H^½(w_j − w̃_j)‖² / Σ_j ‖H^½ w_j‖²)^½.
    pub output_relative_error: Option<f64>,
}

#[cfg(feature = "encode")]
impl PcmTensor {
    /// ‖W − W̃‖ / ‖W‖ (0 for a zero matrix rebuilt exactly).
    pub fn relative_error(&self) -> f64 {
        relative(self.error_norm, self.weight_norm)
    }

    /// Bytes of the steps section.
    pub fn steps_bytes(&self) -> Vec<u8> {
        match self.step_type {
            StepType::F16 => self
                .steps
                .iter()
                .flat_map(|&s| half::f16::from_f32(s).to_le_bytes())
                .collect(),
            StepType::F32 => self.steps.iter().flat_map(|s| s.to_le_bytes()).collect(),
        }
    }

    /// Bytes of the errors section: the weight errors, then the output errors (f32 LE).
    pub fn errors_bytes(&self) -> Vec<u8> {
        self.vector_errors
            .iter()
            .chain(&self.output_errors)
            .flat_map(|e| e.to_le_bytes())
            .collect()
    }

    /// Bytes of the sections (codes, steps, errors), without alignment padding.
    pub fn section_bytes(&self) -> u64 {
        (self.codes_section.len()
            + self.steps.len() * self.step_type.size()
            + 4 * (self.vector_errors.len() + self.output_errors.len())) as u64
    }
}

/// ‖e‖ / ‖w‖, 0 when both are 0 and infinite when only w is.
pub fn relative(error: f64, norm: f64) -> f64 {
    if error == 0.0 {
        0.0
    } else if norm == 0.0 {
        f64::INFINITY
    } else {
        error / norm
    }
}

/// The signal-to-noise ratio 20·log10(‖W‖/‖W − W̃‖) in dB (infinite for an exact rebuild).
pub fn snr_db(error: f64, norm: f64) -> f64 {
    -20.0 * relative(error, norm).log10()
}

/// A step rounded to what `F16` can hold exactly as a normal number (or 0), else to f32.
#[cfg(feature = "encode")]
fn round_step(x: f64, ty: StepType) -> (f32, bool) {
    // A positive step never rounds to 0: coefficients with step 0 rebuild as 0, outside the
    // rounding bound (found by the fuzz campaign on subnormal weights).
    let f32v = if x > 0.0 && (x as f32) == 0.0 {
        f32::from_bits(1)
    } else {
        x as f32
    };
    if ty == StepType::F16 {
        let h = half::f16::from_f64(x);
        if x == 0.0 || (h.is_normal() && h.to_f64() > 0.0) {
            return (h.to_f32(), true);
        }
        return (f32v, false);
    }
    (f32v, true)
}

/// The frame coefficients of every vector and the rms bases of every group.
#[cfg(feature = "encode")]
struct Analysed {
    n: usize,
    groups: usize,
    group: usize,
    /// m × N coefficients.
    y: Vec<f64>,
    /// m × groups rms values.
    base: Vec<f64>,
    /// ‖W‖² (with the bias) of the vectors analysed.
    norm2: f64,
    weights: u64,
    /// Vectors of the whole matrix.
    m_full: usize,
    /// m_full / vectors analysed: what a sample's code bits are multiplied by.
    scale: f64,
}

#[cfg(feature = "encode")]
fn analyse(
    matrix: &Matrix,
    orientation: Orientation,
    synth: &PcmSynthesis,
    rule: StepRule,
    stride: usize,
) -> Result<Analysed> {
    let layout = matrix.layout(orientation);
    let (d, n) = (layout.vector_len(), synth.n);
    let m_full = layout.vector_count();
    let stride = stride.max(1);
    // Every `stride`-th vector (all of them for stride 1).
    let m = m_full.div_ceil(stride);
    let group = synth.group;
    let groups = synth.groups();
    let total = n
        .checked_mul(m)
        .ok_or_else(|| Error::param("the coefficient count overflows"))?;
    let mut y = vec![0.0f64; total];
    let mut norms = vec![0.0f64; m];
    let one = |(ws, w): &mut (Option<FrameWorkspace>, Vec<f64>),
               (j, (yj, nj)): (usize, (&mut [f64], &mut f64))|
     -> Result<()> {
        matrix.load_vector(orientation, j * stride, w)?;
        *nj = w.iter().map(|x| x * x).sum();
        for (x, &s) in w.iter_mut().zip(&synth.signs) {
            *x *= s;
        }
        match (&synth.frame, ws.as_mut()) {
            (None, _) => yj.copy_from_slice(w),
            (Some(f), Some(fws)) => f.analyse(w, yj, fws)?,
            (Some(_), None) => return Err(Error::param("missing frame workspace")),
        }
        Ok(())
    };
    let init = || (synth.frame.as_ref().map(Frame::workspace), vec![0.0f64; d]);
    #[cfg(feature = "parallel")]
    y.par_chunks_mut(n)
        .zip(norms.par_iter_mut())
        .enumerate()
        .try_for_each_init(init, one)?;
    #[cfg(not(feature = "parallel"))]
    {
        let mut ws = init();
        y.chunks_mut(n)
            .zip(norms.iter_mut())
            .enumerate()
            .try_for_each(|item| one(&mut ws, item))?;
    }
    let mut base = vec![0.0f64; m * groups];
    let tensor_rms = (y.iter().map(|x| x * x).sum::<f64>() / total.max(1) as f64).sqrt();
    for (yj, bj) in y.chunks(n).zip(base.chunks_mut(groups)) {
        for (g, b) in bj.iter_mut().enumerate() {
            *b = match rule {
                StepRule::Tensor => tensor_rms,
                StepRule::Group => {
                    let part = yj.get(g * group..((g + 1) * group).min(n)).unwrap_or(&[]);
                    (part.iter().map(|x| x * x).sum::<f64>() / part.len().max(1) as f64).sqrt()
                }
            };
        }
    }
    Ok(Analysed {
        n,
        groups,
        group,
        y,
        base,
        norm2: norms.iter().sum(),
        weights: (layout.rows * layout.cols + if layout.has_bias { layout.rows } else { 0 }) as u64,
        m_full,
        scale: m_full as f64 / m as f64,
    })
}

/// The outcome of one α: steps, K, the estimated bits and the estimated squared error.
#[cfg(feature = "encode")]
struct Trial {
    steps: Vec<f32>,
    step_type: StepType,
    k: u64,
    bits: f64,
    err2: f64,
}

#[cfg(feature = "encode")]
fn trial(a: &Analysed, alpha: f64, options: &PcmOptions, d: usize) -> Trial {
    let mut exact_f16 = true;
    let steps: Vec<f32> = a
        .base
        .iter()
        .map(|&b| {
            let (s, ok) = round_step(alpha * b, options.step_type);
            exact_f16 &= ok;
            s
        })
        .collect();
    let step_type = if options.step_type == StepType::F16 && exact_f16 {
        StepType::F16
    } else {
        StepType::F32
    };
    trial_with(a, steps, step_type, options, d)
}

/// Lattice steps ([`lattice`]): when there is no frame, the steps are certified and every group
/// of coefficients lies on a grid that a stored step rebuilds exactly, the trial at those steps
/// (its squared error is zero); otherwise `None`.
#[cfg(feature = "encode")]
fn lattice_trial(
    a: &Analysed,
    synth: &PcmSynthesis,
    options: &PcmOptions,
    d: usize,
) -> Option<Trial> {
    if synth.frame.is_some() || options.policy != StepPolicy::Certified || a.group == 0 || a.n == 0
    {
        return None;
    }
    let mut exact_f16 = options.step_type == StepType::F16;
    let mut steps = Vec::with_capacity(a.base.len());
    for yj in a.y.chunks(a.n) {
        for part in yj.chunks(a.group) {
            let (s, f16) = lattice::step(part, MAX_PCM_K)?;
            exact_f16 &= f16;
            steps.push(s);
        }
    }
    let step_type = if exact_f16 {
        StepType::F16
    } else {
        StepType::F32
    };
    let t = trial_with(a, steps, step_type, options, d);
    (t.err2 == 0.0 && t.k <= u64::from(MAX_PCM_K)).then_some(t)
}

/// Whether every vector of `matrix` lies on a grid that lattice steps rebuild exactly (no
/// frame, certified steps; [`lattice`]), and then the stored bits per weight of coding it so,
/// as [`quantize`] counts them: what a bit allocation across tensors offers such a tensor
/// besides its rate–distortion curve. Stops at the first vector off any grid.
#[cfg(feature = "encode")]
pub fn lattice_bits(
    matrix: &Matrix,
    orientation: Orientation,
    options: &PcmOptions,
) -> Result<Option<f64>> {
    let layout = matrix.layout(orientation);
    let d = layout.vector_len();
    let (synth, _) = synthesis_for(d, options)?;
    if synth.frame.is_some() || options.policy != StepPolicy::Certified {
        return Ok(None);
    }
    let group = synth.group.max(1);
    let mut w = vec![0.0f64; d];
    for j in 0..layout.vector_count() {
        matrix.load_vector(orientation, j, &mut w)?;
        if w.chunks(group)
            .any(|part| lattice::step(part, MAX_PCM_K).is_none())
        {
            return Ok(None);
        }
    }
    let a = analyse(matrix, orientation, &synth, options.rule, 1)?;
    Ok(lattice_trial(&a, &synth, options, d).map(|t| t.bits / a.weights.max(1) as f64))
}

/// The trial at given steps (stored as `step_type`).
#[cfg(feature = "encode")]
fn trial_with(
    a: &Analysed,
    steps: Vec<f32>,
    step_type: StepType,
    options: &PcmOptions,
    d: usize,
) -> Trial {
    // Histogram of zig-zag codes (capped) and squared error: one accumulator per task.
    let (n, groups, group) = (a.n, a.groups, a.group);
    // Integer counts and the largest |q| merge in any order; each vector's squared error is
    // kept in its own slot and summed in vector order, so the result (and every choice made
    // from it) does not depend on how the work was split between threads.
    type Acc = (Vec<u64>, u64);
    let new_acc = || -> Acc { (vec![0u64; 1 << 16], 0) };
    let add_vector = |mut acc: Acc, ((yj, sj), ej): ((&[f64], &[f32]), &mut f64)| -> Acc {
        let mut err2 = 0.0;
        for (g, &s) in sj.iter().enumerate().take(groups) {
            let s = f64::from(s);
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            let part = yj.get(g * group..((g + 1) * group).min(n)).unwrap_or(&[]);
            for &x in part {
                let q = (x * inv).round();
                let e = x - q * s;
                err2 += e * e;
                let z = if q >= 0.0 { 2.0 * q } else { -2.0 * q - 1.0 };
                let z = z.min(65535.0) as usize;
                acc.1 = acc.1.max(q.abs().min(1e9) as u64);
                if let Some(c) = acc.0.get_mut(z) {
                    *c += 1;
                }
            }
        }
        *ej = err2;
        acc
    };
    #[cfg(feature = "parallel")]
    let merge = |mut a: Acc, b: Acc| -> Acc {
        for (x, y) in a.0.iter_mut().zip(&b.0) {
            *x += y;
        }
        (a.0, a.1.max(b.1))
    };
    let mut errs = vec![0.0f64; a.y.len() / n.max(1)];
    #[cfg(feature = "parallel")]
    let (hist, k) =
        a.y.par_chunks(n)
            .zip(steps.par_chunks(groups))
            .zip(errs.par_iter_mut())
            .with_min_len(256)
            .fold(new_acc, add_vector)
            .reduce(new_acc, merge);
    #[cfg(not(feature = "parallel"))]
    let (hist, k) =
        a.y.chunks(n)
            .zip(steps.chunks(groups))
            .zip(errs.iter_mut())
            .fold(new_acc(), add_vector);
    let err2: f64 = errs.iter().sum();
    let count: u64 = hist.iter().sum();
    let code_bits = match options.coding {
        Coding::Fixed => {
            count as f64 * f64::from(stream::fixed_bits(k.min(u64::from(MAX_PCM_K)) as u32))
        }
        Coding::Rans => {
            let zmax = hist.iter().rposition(|&c| c > 0).unwrap_or(0) as u32;
            let s = stream::raw_bits(zmax);
            let mut sym = vec![0u64; (zmax >> s) as usize + 1];
            for (z, &c) in hist.iter().enumerate() {
                if let Some(x) = sym.get_mut(z >> s) {
                    *x += c;
                }
            }
            // The coded size of these symbols under the model the encoder would build, and
            // that model's own bytes; then the chunk table and each chunk's eight initial states.
            let (message, model_bytes) = match crate::codes::rans::Model::from_counts(&sym) {
                Ok(model) => {
                    let mut bytes = Vec::new();
                    model.write(&mut bytes);
                    (model.cost_bits(&sym), bytes.len() as f64)
                }
                Err(_) => (f64::INFINITY, 0.0),
            };
            let chunks = a.m_full.div_ceil(stream::chunk_vectors(n)) as f64;
            (message + count as f64 * f64::from(s)) * a.scale
                + 8.0 * (1.0 + model_bytes + 4.0)
                + chunks * 8.0 * (4.0 + 4.0 * 8.0)
        }
    };
    let code_bits = match options.coding {
        Coding::Fixed => code_bits * a.scale,
        Coding::Rans => code_bits,
    };
    let step_bits = 8.0 * (a.m_full * groups * step_type.size()) as f64;
    // Padding of two 64-byte-aligned sections, on average.
    let bits = code_bits + step_bits + 8.0 * (options.record_bytes as f64 + 64.0);
    Trial {
        steps,
        step_type,
        k,
        bits,
        err2: err2 * d as f64 / n as f64,
    }
}

/// How [`codes_of`] moves codes after nearest rounding (without a frame, where a code is a
/// weight): the coefficients' signs, and the kernel window (1: the vector alone).
#[cfg(feature = "encode")]
struct ZeroSum<'a> {
    signs: &'a [f64],
    window: usize,
}

/// The codes of every vector at `steps`: nearest levels, then, with `zero_sum`,
/// [`rounding::zero_sum_windows`] on each vector, no code passing ±`max_code`.
#[cfg(feature = "encode")]
fn codes_of(a: &Analysed, steps: &[f32], zero_sum: Option<ZeroSum>, max_code: u32) -> Vec<i32> {
    let (n, group, groups) = (a.n, a.group, a.groups);
    let mut codes = vec![0i32; a.y.len()];
    let one = |(cj, (yj, sj)): (&mut [i32], (&[f64], &[f32]))| {
        for (k, (c, &x)) in cj.iter_mut().zip(yj).enumerate() {
            let s = f64::from(sj.get((k / group).min(groups - 1)).copied().unwrap_or(0.0));
            *c = if s > 0.0 { (x / s).round() as i32 } else { 0 };
        }
        if let Some(z) = &zero_sum {
            rounding::zero_sum_windows(yj, z.signs, sj, group, z.window, max_code, cj);
        }
    };
    #[cfg(feature = "parallel")]
    codes
        .par_chunks_mut(n)
        .zip(a.y.par_chunks(n).zip(steps.par_chunks(groups)))
        .for_each(one);
    #[cfg(not(feature = "parallel"))]
    codes
        .chunks_mut(n)
        .zip(a.y.chunks(n).zip(steps.chunks(groups)))
        .for_each(one);
    codes
}

/// One point of a tensor's rate–distortion curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePoint {
    /// The step scale α.
    pub alpha: f64,
    /// Estimated stored bits per weight (codes as coded, steps, record, padding).
    pub bits_per_weight: f64,
    /// Estimated relative squared error ‖W − W̃‖² / ‖W‖².
    pub relative_error2: f64,
}

/// The estimated rate–distortion curve of `matrix` under `options` (its target is ignored) at
/// α = 2^e for e in `exponents`: what a bit allocation across tensors needs.
#[cfg(feature = "encode")]
pub fn rate_curve(
    matrix: &Matrix,
    orientation: Orientation,
    options: &PcmOptions,
    exponents: &[f64],
) -> Result<Vec<RatePoint>> {
    let layout = matrix.layout(orientation);
    let d = layout.vector_len();
    let (synth, _) = synthesis_for(d, options)?;
    // A sample of about 2^18 coefficients (whole vectors, evenly spread) estimates the curve's
    // bits to about a hundredth of a bit per weight.
    let stride = (layout.vector_count() * synth.n).div_ceil(1 << 18).max(1);
    let a = analyse(matrix, orientation, &synth, options.rule, stride)?;
    Ok(exponents
        .iter()
        .map(|&e| {
            let alpha = e.exp2();
            let t = trial(&a, alpha, options, d);
            RatePoint {
                alpha,
                bits_per_weight: if t.k <= u64::from(MAX_PCM_K) {
                    t.bits / a.weights.max(1) as f64
                } else {
                    f64::INFINITY
                },
                relative_error2: if a.norm2 > 0.0 { t.err2 / a.norm2 } else { 0.0 },
            }
        })
        .collect())
}

/// The frame and synthesis of `options` for vectors of dimension d.
#[cfg(feature = "encode")]
fn synthesis_for(d: usize, options: &PcmOptions) -> Result<(PcmSynthesis, PcmFrame)> {
    let frame = match options.family {
        None => {
            if options.frame_size.is_some_and(|n| n != d) {
                return Err(Error::param("without a frame, N is d"));
            }
            PcmFrame::Identity
        }
        Some(f) => {
            let n = options
                .frame_size
                .unwrap_or(f.min_frame_size(d as u64) as usize);
            PcmFrame::Frame(f.descriptor(n, d)?)
        }
    };
    let n = frame.frame_size(d);
    let group = if options.group == 0 {
        n
    } else {
        options.group.min(n)
    };
    Ok((
        PcmSynthesis::new(frame, d, options.sign_seed, group)?,
        frame,
    ))
}

/// The step scale α meeting `target` (a bit budget or an error target) on the analysed
/// coefficients: bisection on log2 α over [−24, 6], or, given a `guess`, within ±0.125 of it
/// when that brackets the answer.
#[cfg(feature = "encode")]
fn search(
    a: &Analysed,
    target: RateTarget,
    options: &PcmOptions,
    d: usize,
    guess: Option<f64>,
) -> f64 {
    let feasible_k = |t: &Trial| t.k <= u64::from(MAX_PCM_K);
    let ok = |e: f64| {
        let t = trial(a, e.exp2(), options, d);
        feasible_k(&t)
            && match target {
                RateTarget::BitsPerWeight(b) => t.bits <= b * a.weights as f64,
                RateTarget::RelativeError(e) => t.err2 <= e * e * a.norm2,
                RateTarget::Scale(_) => true,
            }
    };
    // A bit budget holds for coarse steps, an error target for fine ones: `good` is on the side
    // that holds, `bad` on the other.
    let coarse_holds = matches!(target, RateTarget::BitsPerWeight(_));
    let (mut good, mut bad, steps) = match guess.map(f64::log2) {
        Some(g) if g.is_finite() => {
            let (lo, hi) = (g - 0.125, g + 0.125);
            let (gd, bd) = if coarse_holds { (hi, lo) } else { (lo, hi) };
            if ok(gd) && !ok(bd) {
                (gd, bd, 8)
            } else {
                return search(a, target, options, d, None);
            }
        }
        _ if coarse_holds => (6.0f64, -24.0f64, 26),
        _ => {
            // The finest step whose codes still fit in ±MAX_PCM_K (a coarse one always does).
            let (mut fits, mut too_fine) = (6.0f64, -24.0f64);
            for _ in 0..26 {
                let mid = 0.5 * (fits + too_fine);
                if feasible_k(&trial(a, mid.exp2(), options, d)) {
                    fits = mid;
                } else {
                    too_fine = mid;
                }
            }
            (fits, 6.0f64, 26)
        }
    };
    if steps == 26 && !ok(good) {
        // Nothing meets the target: the closest is the extreme itself.
        return good.exp2();
    }
    for _ in 0..steps {
        let mid = 0.5 * (good + bad);
        if ok(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good.exp2()
}

/// Quantizes every vector of `matrix` (in `orientation`) with pcm under `options`.
#[cfg(feature = "encode")]
pub fn quantize(
    matrix: &Matrix,
    orientation: Orientation,
    options: &PcmOptions,
) -> Result<PcmTensor> {
    let layout = matrix.layout(orientation);
    let d = layout.vector_len();
    let (synth, frame) = synthesis_for(d, options)?;
    let n = synth.n;
    check_target(options.target)?;
    if options.policy == StepPolicy::LeastSquares {
        return least_squares(matrix, orientation, options, &synth, frame);
    }
    let a = analyse(matrix, orientation, &synth, options.rule, 1)?;
    let zero = a.norm2 == 0.0;
    let feasible_k = |t: &Trial| t.k <= u64::from(MAX_PCM_K);
    // Values on a grid are rebuilt exactly when that fits the budget (a bit target) or costs
    // no more than the approximation would (an error target).
    let lattice = match options.target {
        RateTarget::Scale(_) => None,
        _ if zero => None,
        _ => lattice_trial(&a, &synth, options, d),
    };
    let lattice = match (lattice, options.target) {
        (Some(t), RateTarget::BitsPerWeight(b))
            if t.bits <= b * a.weights as f64 * (1.0 + 1e-9) =>
        {
            return exact(matrix, orientation, &synth, frame, options, &a, t);
        }
        (lattice, _) => lattice,
    };
    let alpha = match options.target {
        RateTarget::Scale(alpha) => alpha,
        _ if zero => 1.0,
        _ => data_free_alpha(matrix, orientation, &synth, options, &a)?,
    };
    if let (Some(t), RateTarget::RelativeError(_)) = (lattice, options.target) {
        if t.bits <= trial(&a, alpha, options, d).bits {
            return exact(matrix, orientation, &synth, frame, options, &a, t);
        }
    }
    // Settle: the exact coded size may exceed the estimate; coarsen until it fits.
    let mut alpha = alpha;
    for attempt in 0..40 {
        let t = trial(&a, alpha, options, d);
        if !feasible_k(&t) {
            alpha *= 1.25;
            continue;
        }
        // Zero-sum rounding without a frame, where a code is a weight; never past the
        // largest code of nearest rounding, which sets the fixed-width codes' width.
        let zero_sum = match options.rounding {
            _ if synth.frame.is_some() => None,
            Rounding::Nearest => None,
            Rounding::ZeroSum => Some(ZeroSum {
                signs: &synth.signs,
                window: options.window,
            }),
            Rounding::ZeroSumRows => Some(ZeroSum {
                signs: &synth.signs,
                window: 1,
            }),
        };
        let codes = codes_of(&a, &t.steps, zero_sum, t.k.min(u64::from(MAX_PCM_K)) as u32);
        let k = largest_code(&codes);
        let section = stream::encode(&codes, n, k, options.coding)?;
        let bits = 8.0
            * (section.len() as f64
                + (t.steps.len() * t.step_type.size()) as f64
                + options.record_bytes as f64
                + 64.0);
        let over =
            matches!(options.target, RateTarget::BitsPerWeight(b) if bits > b * a.weights as f64);
        if over && attempt < 39 && !zero {
            alpha *= 1.01;
            continue;
        }
        return finish(
            matrix,
            orientation,
            &synth,
            frame,
            options,
            alpha,
            t,
            codes,
            k,
            section,
            None,
        );
    }
    Err(Error::param("the rate control did not settle"))
}

/// K of a tensor's codes: the largest |code|, at least 1.
#[cfg(feature = "encode")]
fn largest_code(codes: &[i32]) -> u32 {
    codes
        .iter()
        .map(|q| q.unsigned_abs())
        .max()
        .unwrap_or(0)
        .max(1)
}

/// The tensor coded at its lattice steps: every code exact, no rounding to adjust.
#[cfg(feature = "encode")]
fn exact(
    matrix: &Matrix,
    orientation: Orientation,
    synth: &PcmSynthesis,
    frame: PcmFrame,
    options: &PcmOptions,
    a: &Analysed,
    t: Trial,
) -> Result<PcmTensor> {
    let codes = codes_of(a, &t.steps, None, MAX_PCM_K);
    let k = largest_code(&codes);
    let section = stream::encode(&codes, synth.n, k, options.coding)?;
    finish(
        matrix,
        orientation,
        synth,
        frame,
        options,
        0.0,
        t,
        codes,
        k,
        section,
        None,
    )
}

/// Scales tried for a least-squares step, as fractions of the step that clips nothing
/// (largest |y| / (K + ½)): 0.40, 0.43, …, 1.00.
#[cfg(feature = "encode")]
const LS_SCALES: usize = 21;

/// The codes of `y` at step `step` clipped to ±`k`, and their squared error.
#[cfg(feature = "encode")]
fn clipped(y: &[f64], step: f64, k: f64, codes: &mut [i32]) -> f64 {
    let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
    let mut e2 = 0.0;
    for (c, &x) in codes.iter_mut().zip(y) {
        let q = (x * inv).round().clamp(-k, k);
        *c = q as i32;
        e2 += (x - q * step).powi(2);
    }
    e2
}

/// The step (as stored) of one group for the least squared error with codes clipped to ±`k`:
/// the best of [`LS_SCALES`] fractions of the step that clips nothing, then the least-squares
/// step Σqy / Σq² of that best's codes if it does better. Writes the codes; returns the step.
#[cfg(feature = "encode")]
fn least_squares_step(y: &[f64], k: f64, ty: StepType, codes: &mut [i32]) -> f32 {
    let amax = y.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if amax == 0.0 {
        codes.iter_mut().for_each(|c| *c = 0);
        return 0.0;
    }
    let full = amax / (k + 0.5);
    let mut best = (f64::INFINITY, 0.0f32);
    for i in 0..LS_SCALES {
        let (step, _) = round_step(full * (0.4 + 0.03 * i as f64), ty);
        let e2 = clipped(y, f64::from(step), k, codes);
        if e2 < best.0 {
            best = (e2, step);
        }
    }
    clipped(y, f64::from(best.1), k, codes);
    let (qy, qq) = codes.iter().zip(y).fold((0.0, 0.0), |(a, b), (&q, &x)| {
        (a + f64::from(q) * x, b + f64::from(q) * f64::from(q))
    });
    if qq > 0.0 && qy > 0.0 {
        let (step, _) = round_step(qy / qq, ty);
        if clipped(y, f64::from(step), k, codes) < best.0 {
            return step;
        }
    }
    clipped(y, f64::from(best.1), k, codes);
    best.1
}

/// pcm with least-squares steps ([`StepPolicy::LeastSquares`]): fixed-width codes, each
/// group's step chosen for the least squared error with clipping; each vector records its
/// measured error. With a bit budget, the code width c and the group size G (the given one,
/// else one step per vector or per 256, 128, 64, 32 or 16 coefficients) are chosen together:
/// for each G the widest c that fits, then the pair with the least error. With an error
/// target, the pairs in order of stored bits until one meets it.
#[cfg(feature = "encode")]
fn least_squares(
    matrix: &Matrix,
    orientation: Orientation,
    options: &PcmOptions,
    synth: &PcmSynthesis,
    frame: PcmFrame,
) -> Result<PcmTensor> {
    if options.coding != Coding::Fixed {
        return Err(Error::param(
            "least-squares steps need fixed-width codes (--coding fixed): entropy-coded codes \
             have no alphabet limit, so nothing is clipped",
        ));
    }
    let a = analyse(matrix, orientation, synth, options.rule, 1)?;
    let (n, m) = (a.n, a.m_full);
    let count = (m * n) as f64;
    let weights = a.weights as f64;
    // Fixed costs: the record, two sections' padding, one recorded f32 error per vector.
    let fixed = 8.0 * (options.record_bytes as f64 + 64.0 + 4.0 * m as f64);
    let bits_of = |c: u32, g: usize, ty: StepType| {
        count * f64::from(c) + 8.0 * (m * n.div_ceil(g) * ty.size()) as f64 + fixed
    };
    let sizes: Vec<usize> = if options.group != 0 {
        vec![options.group.min(n)]
    } else {
        std::iter::once(n)
            .chain([256, 128, 64, 32, 16].into_iter().filter(|&g| g < n))
            .collect()
    };
    // One quantization at code width c and group size g.
    let run = |c: u32, g: usize| -> Result<PcmTensor> {
        let k = (1u32 << (c - 1)) - 1;
        let synth = PcmSynthesis::new(frame, synth.d, options.sign_seed, g)?;
        let groups = n.div_ceil(g);
        let quantize_all = |ty: StepType| {
            let mut steps = vec![0.0f32; m * groups];
            let mut codes = vec![0i32; m * n];
            let one = |((yj, sj), cj): ((&[f64], &mut [f32]), &mut [i32])| {
                for (i, s) in sj.iter_mut().enumerate() {
                    let range = i * g..((i + 1) * g).min(n);
                    if let (Some(y), Some(q)) = (yj.get(range.clone()), cj.get_mut(range)) {
                        *s = least_squares_step(y, f64::from(k), ty, q);
                    }
                }
            };
            #[cfg(feature = "parallel")]
            a.y.par_chunks(n)
                .zip(steps.par_chunks_mut(groups))
                .zip(codes.par_chunks_mut(n))
                .for_each(one);
            #[cfg(not(feature = "parallel"))]
            a.y.chunks(n)
                .zip(steps.chunks_mut(groups))
                .zip(codes.chunks_mut(n))
                .for_each(one);
            (steps, codes)
        };
        let mut step_type = options.step_type;
        let (mut steps, mut codes) = quantize_all(step_type);
        // f16 unless a step does not fit it (then every step is f32).
        if step_type == StepType::F16 && steps.iter().any(|&s| half::f16::from_f32(s).to_f32() != s)
        {
            step_type = StepType::F32;
            (steps, codes) = quantize_all(step_type);
        }
        let section = stream::encode(&codes, n, k, Coding::Fixed)?;
        let t = Trial {
            bits: bits_of(c, g, step_type),
            steps,
            step_type,
            k: u64::from(k),
            err2: 0.0,
        };
        finish(
            matrix,
            orientation,
            &synth,
            frame,
            options,
            1.0,
            t,
            codes,
            k,
            section,
            Some(Vec::new()),
        )
    };
    match options.target {
        RateTarget::BitsPerWeight(b) => {
            // Per group size, the widest codes within the budget.
            let pairs: Vec<(u32, usize)> = sizes
                .iter()
                .filter_map(|&g| {
                    (2..=16)
                        .rev()
                        .find(|&c| bits_of(c, g, options.step_type) <= b * weights)
                        .map(|c| (c, g))
                })
                .collect();
            let mut best: Option<PcmTensor> = None;
            // A budget nothing meets: the fewest bits (2-bit codes, one step per vector), as
            // data-free pcm then gives its fewest bits.
            for (c, g) in if pairs.is_empty() {
                vec![(2, n)]
            } else {
                pairs
            } {
                let q = run(c, g)?;
                if best.as_ref().is_none_or(|b| q.error_norm < b.error_norm) {
                    best = Some(q);
                }
            }
            best.ok_or_else(|| Error::param("least-squares steps: no code width tried"))
        }
        RateTarget::RelativeError(e) => {
            let mut pairs: Vec<(u32, usize)> = (2..=16)
                .flat_map(|c| sizes.iter().map(move |&g| (c, g)))
                .collect();
            pairs.sort_by(|x, y| {
                bits_of(x.0, x.1, options.step_type).total_cmp(&bits_of(
                    y.0,
                    y.1,
                    options.step_type,
                ))
            });
            let mut last = None;
            for (c, g) in pairs {
                let q = run(c, g)?;
                if q.relative_error() <= e {
                    return Ok(q);
                }
                last = Some(q);
            }
            last.ok_or_else(|| Error::param("least-squares steps: no code width tried"))
        }
        RateTarget::Scale(_) => Err(Error::param(
            "least-squares steps are set by a bit budget or an error target, not by a step scale",
        )),
    }
}

/// Refuses a rate target whose number is not positive and finite.
#[cfg(feature = "encode")]
fn check_target(target: RateTarget) -> Result<()> {
    match target {
        RateTarget::Scale(alpha) if !(alpha.is_finite() && alpha > 0.0) => Err(Error::param(
            format!("the step scale must be > 0, got {alpha}"),
        )),
        RateTarget::BitsPerWeight(b) if !(b.is_finite() && b > 0.0) => Err(Error::param(format!(
            "bits per weight must be > 0, got {b}"
        ))),
        RateTarget::RelativeError(e) if !(e.is_finite() && e > 0.0) => Err(Error::param(format!(
            "the relative error must be > 0, got {e}"
        ))),
        _ => Ok(()),
    }
}

/// The step scale α that meets `options.target` without feedback, by the estimated coded
/// size: first on a sample of about 2^20 coefficients over the whole range of α, then on every
/// coefficient of `a` in a narrow bracket around the sample's answer (the whole range again if
/// the bracket does not hold).
#[cfg(feature = "encode")]
fn data_free_alpha(
    matrix: &Matrix,
    orientation: Orientation,
    synth: &PcmSynthesis,
    options: &PcmOptions,
    a: &Analysed,
) -> Result<f64> {
    let d = synth.d;
    let stride = (matrix.layout(orientation).vector_count() * synth.n)
        .div_ceil(1 << 20)
        .max(1);
    let guess = if stride > 1 {
        let sample = analyse(matrix, orientation, synth, options.rule, stride)?;
        Some(search(&sample, options.target, options, d, None))
    } else {
        None
    };
    Ok(search(a, options.target, options, d, guess))
}

/// One data-aware quantization at a given α: its steps, codes and exact stored bits.
#[cfg(feature = "encode")]
struct FeedbackRun {
    alpha: f64,
    trial: Trial,
    codes: feedback::FeedbackCodes,
    k: u32,
    section: Vec<u8>,
    bits: f64,
}

/// Quantizes every row of `matrix` with pcm and error feedback through the layer's Gram matrix
/// `gram` (data-aware ΣΔ, [`crate::quant::feedback`]): the codes minimise the error the
/// calibration inputs see rather than the weight error. Rows only (d = the layer's inputs, plus
/// one for a bias quantized with its weight, whose input is the constant 1), with or without a
/// frame (with one, the feedback runs on the frame coefficients through their Gram matrix,
/// `coefficient_gram`). The
/// decoder is unchanged; the file records each vector's measured weight error and relative
/// output error (the rounding bound no longer holds for the weights).
///
/// A bits-per-weight target is met by the exact coded size: the data-free α for the target is
/// the first guess, then a secant search on log α (a few runs of the quantizer).
#[cfg(feature = "encode")]
pub fn quantize_calibrated(
    matrix: &Matrix,
    orientation: Orientation,
    options: &PcmOptions,
    gram: &Gram,
    fb: &FeedbackOptions,
) -> Result<PcmTensor> {
    if orientation != Orientation::Rows {
        return Err(Error::param(
            "calibration needs the rows orientation (one vector per output channel)",
        ));
    }
    let layout = matrix.layout(orientation);
    let d = layout.vector_len();
    let gram = if gram.dim() == d {
        gram.clone()
    } else if layout.has_bias && gram.dim() + 1 == d {
        gram.with_bias()
    } else {
        return Err(Error::param(format!(
            "the Gram matrix is for {} inputs, the tensor has {}",
            gram.dim(),
            layout.cols
        )));
    };
    let (synth, frame) = synthesis_for(d, options)?;
    let n = synth.n;
    let a = analyse(matrix, orientation, &synth, options.rule, 1)?;
    let factor = coefficient_gram(&synth, &gram)?.factor(fb.damping, fb.order)?;
    let m = layout.vector_count();
    // The errors section: two f32 per vector.
    let fixed_bytes = options.record_bytes as f64 + 64.0 + 8.0 * m as f64;
    let run = |alpha: f64| -> Result<Option<FeedbackRun>> {
        let t = trial(&a, alpha, options, d);
        if t.steps.iter().any(|s| !s.is_finite()) {
            // Past the f32 range: no coarser step is possible.
            return Ok(None);
        }
        let codes = feedback::quantize_rows(&a.y, n, &t.steps, a.group, &factor)?;
        let k = largest_code(&codes.codes);
        if k > MAX_PCM_K {
            return Ok(None);
        }
        let section = stream::encode(&codes.codes, n, k, options.coding)?;
        let bits = 8.0
            * (section.len() as f64 + (t.steps.len() * t.step_type.size()) as f64 + fixed_bytes);
        Ok(Some(FeedbackRun {
            alpha,
            trial: t,
            codes,
            k,
            section,
            bits,
        }))
    };
    check_target(options.target)?;
    let chosen = match options.target {
        RateTarget::RelativeError(_) => {
            return Err(Error::param(
                "an error target (--max-error) is on the weights, calibration minimises the \
                 output error: give a bit budget (--bits-per-weight) instead",
            ))
        }
        RateTarget::Scale(alpha) => coarsen_until_feasible(&run, alpha)?,
        _ if a.norm2 == 0.0 => coarsen_until_feasible(&run, 1.0)?,
        RateTarget::BitsPerWeight(b) => {
            // The data-free α for the budget (the feedback codes spread a little wider).
            let alpha0 = data_free_alpha(matrix, orientation, &synth, options, &a)?;
            secant_to_budget(&run, alpha0, b * a.weights as f64, a.weights as f64)?
        }
    };
    let FeedbackRun {
        alpha,
        trial: t,
        codes,
        k,
        section,
        ..
    } = chosen;
    // Relative output errors with the undamped H: ‖H^½e‖² = ‖Lᵀe‖² − λ'‖e‖².
    let shift = factor.shift();
    let norms2 = feedback::damped_norms2(&a.y, n, &factor)?;
    let groups = a.groups;
    let (mut num2, mut den2) = (0.0f64, 0.0f64);
    let output: Vec<f32> =
        a.y.chunks(n)
            .zip(codes.codes.chunks(n))
            .zip(t.steps.chunks(groups))
            .zip(codes.damped_error2.iter().zip(&norms2))
            .map(|(((yr, qr), sr), (&de2, &dw2))| {
                let (mut e2, mut w2) = (0.0, 0.0);
                for (k, (&y, &q)) in yr.iter().zip(qr).enumerate() {
                    let step = f64::from(sr.get(k / a.group).copied().unwrap_or(0.0));
                    let e = y - f64::from(q) * step;
                    e2 += e * e;
                    w2 += y * y;
                }
                let num = (de2 - shift * e2).max(0.0);
                let den = (dw2 - shift * w2).max(0.0);
                num2 += num;
                den2 += den;
                round_up(relative(num.sqrt(), den.sqrt()).min(f64::from(f32::MAX)))
            })
            .collect();
    let mut q = finish(
        matrix,
        orientation,
        &synth,
        frame,
        options,
        alpha,
        t,
        codes.codes,
        k,
        section,
        Some(output),
    )?;
    q.output_relative_error = Some(relative(num2.sqrt(), den2.sqrt()));
    Ok(q)
}

/// The Gram matrix of the coefficients y that `synth` rounds, for inputs with Gram matrix
/// `gram`: with w = S·y (S = D·(d/N)·Eᵀ, the synthesis), the output error (w − w̃)ᵀH(w − w̃) is
/// (y − ŷ)ᵀ·SᵀHS·(y − ŷ). SᵀHS = (d/N)²·E(E(DHD))ᵀ: the frame's analysis applied to every
/// column of DHD, then to every row of the result (2N analyses, no N × d matrix product).
#[cfg(feature = "encode")]
fn coefficient_gram(synth: &PcmSynthesis, gram: &Gram) -> Result<Gram> {
    let signed = gram.with_signs(&synth.signs)?;
    let Some(frame) = &synth.frame else {
        return Ok(signed);
    };
    let (d, n) = (synth.d, synth.n);
    let h = signed.to_dense();
    let mut ws = frame.workspace();
    let mut y = vec![0.0f64; n];
    // M = E·(DHD), N × d: column c is the analysis of column c of DHD (= row c, symmetric).
    let mut m = vec![0.0f64; n * d];
    for (c, col) in h.chunks(d).enumerate() {
        frame.analyse(col, &mut y, &mut ws)?;
        for (k, &v) in y.iter().enumerate() {
            m[k * d + c] = v;
        }
    }
    let scale = (d as f64 / n as f64).powi(2);
    let mut hf = vec![0.0f64; n * n];
    for (row, out) in m.chunks(d).zip(hf.chunks_mut(n)) {
        frame.analyse(row, &mut y, &mut ws)?;
        for (o, &v) in out.iter_mut().zip(&y) {
            *o = scale * v;
        }
    }
    Gram::full(n, hf)
}

/// The refusal of weights whose steps pass the f32 range at every step scale tried.
#[cfg(feature = "encode")]
fn too_large() -> Error {
    Error::Data("weights too large: a pcm step does not fit in f32".into())
}

/// Runs at α, then coarser by 25 % at a time, until the codes fit ±[`MAX_PCM_K`].
#[cfg(feature = "encode")]
fn coarsen_until_feasible(
    run: &dyn Fn(f64) -> Result<Option<FeedbackRun>>,
    alpha: f64,
) -> Result<FeedbackRun> {
    let mut alpha = alpha;
    for _ in 0..60 {
        if let Some(r) = run(alpha)? {
            return Ok(r);
        }
        alpha *= 1.25;
    }
    Err(too_large())
}

/// The run whose exact stored bits are the most within `budget`: a secant search on log2 α
/// from `alpha0`, the first step assuming one bit per weight per halving of α.
#[cfg(feature = "encode")]
fn secant_to_budget(
    run: &dyn Fn(f64) -> Result<Option<FeedbackRun>>,
    alpha0: f64,
    budget: f64,
    weights: f64,
) -> Result<FeedbackRun> {
    // (log2 α, bits − budget) of the runs so far; infeasible codes count as far over budget.
    let mut best: Option<FeedbackRun> = None;
    // The finest α over budget and the coarsest within it, as (log2 α, bits − budget).
    type Point = Option<(f64, f64)>;
    let (mut lo, mut hi): (Point, Point) = (None, None);
    // The run with the fewest bits so far, for a budget nothing meets.
    let mut fewest_at: Point = None;
    let mut x = alpha0.log2();
    for _ in 0..8 {
        let r = run(x.exp2())?;
        let over = r.as_ref().map_or(f64::INFINITY, |r| r.bits - budget);
        if over.is_finite() && fewest_at.is_none_or(|(_, f)| over < f) {
            fewest_at = Some((x, over));
        }
        if over <= 0.0 {
            // Fits: the coarse side (larger α). Keep the fullest.
            if best
                .as_ref()
                .is_none_or(|b| r.as_ref().is_some_and(|r| r.bits > b.bits))
            {
                best = r;
            }
            if hi.is_none_or(|(hx, _)| x < hx) {
                hi = Some((x, over));
            }
            if over > -0.003 * budget {
                break;
            }
        } else if lo.is_none_or(|(lx, _)| x > lx) {
            lo = Some((x, over));
        }
        let previous = x;
        x = match (lo, hi) {
            (Some((lx, lf)), Some((hx, hf))) if lf.is_finite() => {
                // Secant between the bracket's ends, kept inside it.
                let s = lx + (hx - lx) * lf / (lf - hf);
                s.clamp(lx + 0.1 * (hx - lx), hx - 0.1 * (hx - lx))
            }
            (Some((lx, _)), Some((hx, _))) => 0.5 * (lx + hx),
            (Some((lx, lf)), None) => {
                lx + if lf.is_finite() {
                    lf / weights + 0.01
                } else {
                    0.5
                }
            }
            (None, Some((hx, hf))) => hx + hf / weights - 0.01,
            (None, None) => x + 0.5,
        };
        // At most 2^±8 per step: a budget the fixed costs exceed would otherwise send α past
        // the f32 range.
        x = x.clamp(previous - 8.0, previous + 8.0);
    }
    if let Some(b) = best {
        return Ok(b);
    }
    // Nothing tried fits: coarser by factors of 2 until a run fits or the bits stop falling
    // (the fixed costs alone can exceed a tiny tensor's budget; as without calibration, the
    // coarsest is then the answer).
    let mut alpha = lo.map_or(x, |(lx, _)| lx).exp2();
    let mut fewest: Option<FeedbackRun> = None;
    for _ in 0..40 {
        alpha *= 2.0;
        let Some(r) = run(alpha)? else {
            if fewest.is_some() {
                break;
            }
            continue;
        };
        if r.bits <= budget {
            return Ok(r);
        }
        match &fewest {
            Some(f) if r.bits >= f.bits => return Ok(fewest.unwrap_or(r)),
            _ => fewest = Some(r),
        }
    }
    match (fewest, fewest_at) {
        (Some(f), _) => Ok(f),
        (None, Some((x, _))) => run(x.exp2())?.ok_or_else(too_large),
        // Every run's steps passed the f32 range (codes are clipped, so nothing else fails).
        (None, None) => Err(too_large()),
    }
}

#[cfg(feature = "encode")]
#[allow(clippy::too_many_arguments)]
fn finish(
    matrix: &Matrix,
    orientation: Orientation,
    synth: &PcmSynthesis,
    frame: PcmFrame,
    options: &PcmOptions,
    alpha: f64,
    t: Trial,
    codes: Vec<i32>,
    k: u32,
    section: Vec<u8>,
    output_errors: Option<Vec<f32>>,
) -> Result<PcmTensor> {
    // With output errors (data-aware codes) the rounding bound does not hold: each vector's
    // error is measured and recorded instead.
    let measured = output_errors.is_some();
    let layout = matrix.layout(orientation);
    let (d, n, groups) = (layout.vector_len(), synth.n, synth.groups());
    if t.steps.iter().any(|s| !s.is_finite()) {
        return Err(Error::Data(
            "weights too large: a pcm step does not fit in f32".into(),
        ));
    }
    // Rebuild every vector exactly as a decoder will, and measure.
    let one = |(ws, w, out): &mut (PcmWorkspace, Vec<f64>, Vec<f32>),
               (j, (cj, sj)): (usize, (&[i32], &[f32]))|
     -> Result<(f64, f64, f64, f64)> {
        matrix.load_vector(orientation, j, w)?;
        let steps: Vec<f64> = sj.iter().map(|&s| f64::from(s)).collect();
        synth.vector(cj, &steps, ws, out)?;
        let e2: f64 = w
            .iter()
            .zip(out.iter())
            .map(|(&a, &b)| (a - f64::from(b)).powi(2))
            .sum();
        if out.iter().any(|x| !x.is_finite()) {
            return Err(Error::Data(format!(
                "weights too large: vector {j} rebuilds to values past the f32 range"
            )));
        }
        if measured {
            return Ok((e2, w.iter().map(|x| x * x).sum(), e2.sqrt(), e2.sqrt()));
        }
        let bound = synth.bound(&steps);
        // The f32 output adds at most 2^-24 of each entry, and up to the smallest subnormal
        // where an entry is that small (found by the fuzz campaign: subnormal weights in a
        // harmonic frame, an error of one subnormal against a bound of 0.87 of one).
        let slack = 1e-9 * bound
            + 6e-8 * w.iter().map(|x| x * x).sum::<f64>().sqrt()
            + (d as f64).sqrt() * f64::from(f32::from_bits(1));
        if e2.sqrt() > bound + slack {
            return Err(Error::param(format!(
                "internal error: pcm vector {j} has error {} above its bound {bound}",
                e2.sqrt()
            )));
        }
        Ok((e2, w.iter().map(|x| x * x).sum(), bound, e2.sqrt()))
    };
    let init = || (synth.workspace(), vec![0.0f64; d], vec![0.0f32; d]);
    // Per-vector results in vector order, summed in that order: the same on any thread count.
    #[cfg(feature = "parallel")]
    let per: Vec<(f64, f64, f64, f64)> = codes
        .par_chunks(n)
        .zip(t.steps.par_chunks(groups))
        .enumerate()
        .map_init(init, one)
        .collect::<Result<_>>()?;
    #[cfg(not(feature = "parallel"))]
    let per: Vec<(f64, f64, f64, f64)> = {
        let mut ws = init();
        codes
            .chunks(n)
            .zip(t.steps.chunks(groups))
            .enumerate()
            .map(|item| one(&mut ws, item))
            .collect::<Result<_>>()?
    };
    let (e2, w2, max_bound, max_err) = per.iter().fold((0.0, 0.0, 0.0f64, 0.0f64), |a, b| {
        (a.0 + b.0, a.1 + b.1, a.2.max(b.2), a.3.max(b.3))
    });
    let (record, vector_errors, output_errors) = match output_errors {
        None => (ErrorRecord::APriori, Vec::new(), Vec::new()),
        Some(o) => (
            if o.is_empty() {
                ErrorRecord::Weight
            } else {
                ErrorRecord::WeightAndOutput
            },
            per.iter().map(|p| round_up(p.3)).collect(),
            o,
        ),
    };
    // Recorded errors are f32 (spec §5.4): a vector whose error passes the f32 range (weights
    // near f32::MAX, rebuilt to finite values on the other side) cannot be recorded.
    if let Some(j) = vector_errors.iter().position(|e| !e.is_finite()) {
        return Err(Error::Data(format!(
            "weights too large: vector {j}'s measured error {:e} passes the f32 range of the \
             recorded errors",
            per.get(j).map_or(f64::INFINITY, |p| p.3)
        )));
    }
    let max_bound = if measured {
        vector_errors.iter().copied().fold(0.0f32, f32::max).into()
    } else {
        max_bound
    };
    Ok(PcmTensor {
        layout,
        frame,
        sign_seed: options.sign_seed,
        group: synth.group,
        step_type: t.step_type,
        coding: options.coding,
        k,
        steps: t.steps,
        codes,
        codes_section: section,
        max_bound,
        error_norm: e2.sqrt(),
        weight_norm: w2.sqrt(),
        max_vector_error: max_err,
        alpha,
        record,
        vector_errors,
        output_errors,
        output_relative_error: None,
    })
}

/// The smallest f32 ≥ x (x finite and ≥ 0): a recorded error is never below the measurement.
#[cfg(feature = "encode")]
pub(crate) fn round_up(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) < x {
        f.next_up()
    } else {
        f
    }
}
