//! `sdq pack`: a safetensors checkpoint → an .sdq file.
//!
//! [`plan`] decides, tensor by tensor, what is quantized and with which frame; [`pack`] writes
//! the file, holding one tensor (as f32, plus its codes) in memory at a time.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::budget::{self, FileCap};
use super::calibration::Calibration;
use super::glob;
use super::progress::Progress;
use super::safetensors::{Checkpoint, TensorEntry};
use crate::error::{Error, Result};
use crate::format::{DeltaPolicy, SdqWriter, TensorPlan};
use crate::frame::{FrameDescriptor, FrameFamily, OrderingOptions, OrderingReport};
use crate::quant::alphabet::bits_for_levels;
use crate::quant::pcm::{self, ErrorRecord, FeedbackOptions, PcmOptions};
use crate::quant::step::smallest_step;
use crate::quant::{Alphabet, FrameQuantizer, Matrix, Orientation, Scheme, StepPolicy};

/// How the frame size N of each tensor is chosen from its vector dimension d.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrameRule {
    /// The same N for every tensor.
    FrameSize(usize),
    /// N = ⌈r·d⌉.
    Redundancy(f64),
    /// N = ⌊B·d / ⌈log2 2K⌉⌋: B code bits per original weight.
    BitsPerWeight(f64),
}

impl FrameRule {
    /// N for vectors of dimension `d` with `bits` bits per code (`None` if it is not a finite
    /// size or the rule's parameter is not positive and finite).
    pub fn frame_size(&self, d: usize, bits: u32) -> Option<usize> {
        let n = match *self {
            FrameRule::FrameSize(n) => return Some(n),
            FrameRule::Redundancy(r) if r.is_finite() && r > 0.0 => (r * d as f64).ceil(),
            FrameRule::BitsPerWeight(b) if b.is_finite() && b > 0.0 => {
                (b * d as f64 / f64::from(bits)).floor()
            }
            _ => return None,
        };
        (n.is_finite() && n <= crate::limits::MAX_FRAME_SIZE as f64).then_some(n as usize)
    }

    /// The option that sets this rule, for messages (`--bits-per-weight 4`, …).
    pub fn describe(&self) -> String {
        match self {
            FrameRule::FrameSize(n) => format!("--frame-size {n}"),
            FrameRule::Redundancy(r) => format!("--redundancy {r}"),
            FrameRule::BitsPerWeight(b) => format!("--bits-per-weight {b}"),
        }
    }
}

/// How δ is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeltaChoice {
    /// The paper's rule per tensor ([`StepPolicy::Tensor`]).
    Tensor,
    /// The paper's rule per vector ([`StepPolicy::Vector`]).
    Vector,
    /// Per vector from the largest frame coefficient ([`StepPolicy::Coefficient`]).
    Coefficient,
    /// One δ for every quantized tensor, the paper's rule over all of them: the smallest with
    /// ‖w‖ ≤ (K − ½)·δ (first order; K − 3/2 for second order) for every vector of every tensor.
    Uniform,
    /// This δ for every quantized tensor (vectors it does not certify are counted).
    Value(f64),
}

impl DeltaChoice {
    /// `tensor`, `vector`, `coefficient`, `uniform` or the value.
    pub fn describe(&self) -> String {
        match self {
            DeltaChoice::Tensor => "tensor".into(),
            DeltaChoice::Vector => "vector".into(),
            DeltaChoice::Coefficient => "coefficient".into(),
            DeltaChoice::Uniform => "uniform".into(),
            DeltaChoice::Value(v) => format!("{v}"),
        }
    }
}

/// How quantized tensors are coded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The paper's frame ΣΔ: [`PackOptions::frame`], `levels`, `scheme`, `family`, `reorder`
    /// and `delta` apply.
    SigmaDelta,
    /// Memoryless rounding of (sign-flipped) frame coefficients or of the weights themselves,
    /// with per-group steps, entropy-coded codes and a rate control ([`PcmOptions`]); the
    /// ΣΔ-only fields are ignored.
    Pcm(PcmOptions),
}

/// Everything `sdq pack` can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct PackOptions {
    /// How quantized tensors are coded (default: pcm, rows, no frame, entropy-coded codes,
    /// one f16 step per vector, zero-sum rounding, the whole file at 5.0 bits per float weight;
    /// see docs/quality).
    pub method: Method,
    /// How N is chosen (default: 4 bits per weight).
    pub frame: FrameRule,
    /// K: 2K levels (default 1: one bit per code).
    pub levels: u32,
    /// The ΣΔ scheme (default first order; second order needs K ≥ 2 and, with a harmonic frame,
    /// an even N: a rule-derived odd N is lowered by one, an explicit odd `FrameSize` refused).
    pub scheme: Scheme,
    /// The frame family (default harmonic; spectral tetris needs N ≥ 2d).
    pub family: FrameFamily,
    /// Run ΣΔ along an ordering of the frame vectors computed to make σ small (greedy nearest
    /// neighbour + 2-opt, never worse than the natural order; stored in the file as a
    /// permutation when it is not the identity) instead of the natural order (default off).
    pub reorder: bool,
    /// How δ is chosen (default: per vector from the largest coefficient).
    pub delta: DeltaChoice,
    /// Which vectors are quantized (default: rows, one vector per output channel; the paper
    /// quantizes columns).
    pub orientation: Orientation,
    /// Quantize each `X.bias` with its `X.weight` as [W | b].
    pub bias: bool,
    /// If not empty, only tensors matching one of these globs are quantized (even with d below
    /// `min_dim`).
    pub include: Vec<String>,
    /// Tensors matching one of these globs are stored raw.
    pub exclude: Vec<String>,
    /// Smallest vector dimension d quantized when no include is given (`None`, the default:
    /// [`default_min_dim`] of the method, 9 with pcm and 16 with sigma-delta).
    pub min_dim: Option<usize>,
    /// zstd level for every section (`None`: no compression).
    pub zstd: Option<i32>,
    /// pcm with a bits-per-weight target: spread the budget over the whole model (default) or
    /// give every tensor the same bits.
    pub allocation: Allocation,
    /// Per-tensor settings, `(glob, setting)`: a tensor takes the setting of the FIRST pattern
    /// it matches ([`PackOptions::tensor_setting`]).
    pub tensor_types: Vec<(String, TensorSetting)>,
    /// Sigma-delta: quantize a planned tensor even when its codes would take more bytes than
    /// its raw data (default off: such a tensor is stored raw, with a warning). The paper's
    /// experiments (examples/reproduce) quantize every layer, the 10-row output layer included.
    pub force_quantize: bool,
    /// pcm: a calibration file (Gram matrices of the layers' inputs by weight name,
    /// [`crate::bridge::calibration`]). The tensors it covers are quantized with error feedback
    /// through their Gram matrix ([`pcm::quantize_calibrated`]); the others data-free.
    pub calibration: Option<PathBuf>,
    /// Damping and order of the error feedback, with a calibration file.
    pub feedback: FeedbackOptions,
    /// pcm with a calibration file whose options name no frame (`family: None`): the frame
    /// family and sign seed of the tensors the file covers (default harmonic with seed 1,
    /// N = d + 1: measured better than no frame with calibration, docs/calibration.md).
    /// `None` packs them without a frame too. Tensors packed data-free are not affected.
    pub calibrated_frame: Option<(FrameFamily, u64)>,
    /// pcm with a bit budget: a cap on the whole file's bits per float weight (raw tensors,
    /// records and header counted; every float tensor's elements count as weights). The
    /// quantized tensors' budget is lowered, never raised, to keep the file within it, but not
    /// below [`budget::FILE_BITS_FLOOR`]; where the small tensors' own bits alone would keep it
    /// over, they give up their extra bits first ([`FileCap::small_ceiling`]).
    /// [`PackSummary::file_cap`] says what it did. `None`
    /// (the library's default): no cap. The command line and the Python package set
    /// [`budget::DEFAULT_FILE_BITS`] when neither a budget nor an error is given.
    pub file_bits: Option<f64>,
}

/// What `--tensor-type PATTERN=SETTING` does to the tensors it matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TensorSetting {
    /// Stored raw, bit for bit (like `--exclude`).
    Raw,
    /// pcm: exactly this many stored bits per weight, whatever the target of the other tensors
    /// (they are not part of the model-wide allocation, which spreads the global bits per
    /// weight over the others). Sigma-delta: this many code bits per weight
    /// ([`FrameRule::BitsPerWeight`]). A tensor is still quantized only if it would be
    /// without the setting.
    Bits(f64),
}

impl TensorSetting {
    /// `raw`, a positive number of bits per weight, or a preset: `q4` (4.5 bits), `q6` (6),
    /// `q8` (8).
    pub fn parse(s: &str) -> std::result::Result<TensorSetting, String> {
        match s {
            "raw" => Ok(TensorSetting::Raw),
            "q4" => Ok(TensorSetting::Bits(4.5)),
            "q6" => Ok(TensorSetting::Bits(6.0)),
            "q8" => Ok(TensorSetting::Bits(8.0)),
            v => match v.parse::<f64>() {
                Ok(b) if b.is_finite() && b > 0.0 => Ok(TensorSetting::Bits(b)),
                _ => Err(format!(
                    "{v:?} is not raw, q4, q6, q8 or a positive number of bits per weight"
                )),
            },
        }
    }
}

impl std::fmt::Display for TensorSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TensorSetting::Raw => write!(f, "raw"),
            TensorSetting::Bits(b) => write!(f, "{b}"),
        }
    }
}

impl PackOptions {
    /// The setting of the first [`PackOptions::tensor_types`] pattern `name` matches.
    pub fn tensor_setting(&self, name: &str) -> Option<TensorSetting> {
        self.tensor_types
            .iter()
            .find(|(g, _)| glob::matches(g, name))
            .map(|(_, s)| *s)
    }
}

/// How a pcm bit budget is spread over the quantized tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Every tensor gets the same stored bits per weight (also what least-squares steps,
    /// [`pcm::StepPolicy::LeastSquares`], always do).
    PerTensor,
    /// The bits of the whole model are spread so that Σ_t √n_t·‖W_t − W̃_t‖²/‖W_t‖² is least
    /// (n_t the tensor's weights): each tensor's estimated rate–distortion curve is measured
    /// first, then one Lagrange multiplier is found by bisection. The weight √n_t sits between
    /// counting every tensor once (which starves a large embedding table) and counting every
    /// weight once (equal errors, about the same bits everywhere); see docs/MATH.md §8.
    #[default]
    Model,
}

/// [`PackOptions::calibrated_frame`] for a pack whose options name a frame family or not
/// (`family_given`, `--frame-family`), with `sign_seed` (`--sign-seed`, 0 for none): without a
/// family, calibrated tensors take the harmonic frame with that seed, or seed 1; with one, every
/// tensor takes the frame asked for. The rule the command line and the Python package share.
pub fn calibrated_frame_for(family_given: bool, sign_seed: u64) -> Option<(FrameFamily, u64)> {
    (!family_given).then_some((
        FrameFamily::Harmonic,
        if sign_seed == 0 { 1 } else { sign_seed },
    ))
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            method: Method::Pcm(PcmOptions::default()),
            frame: FrameRule::BitsPerWeight(4.0),
            levels: 1,
            scheme: Scheme::FirstOrder,
            family: FrameFamily::Harmonic,
            reorder: false,
            delta: DeltaChoice::Coefficient,
            orientation: Orientation::Rows,
            bias: false,
            include: Vec::new(),
            exclude: Vec::new(),
            min_dim: None,
            zstd: None,
            allocation: Allocation::Model,
            tensor_types: Vec::new(),
            force_quantize: false,
            calibration: None,
            feedback: FeedbackOptions::default(),
            calibrated_frame: Some((FrameFamily::Harmonic, 1)),
            file_bits: None,
        }
    }
}

/// What happens to one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Stored raw, bit-exact.
    Raw,
    /// Frame-quantized as a rows × cols matrix (`bias`: the tensor quantized with it).
    Quantize {
        /// Rows of the matrix view (first dimension).
        rows: usize,
        /// Columns (product of the other dimensions).
        cols: usize,
        /// Vector dimension d.
        d: usize,
        /// Frame size N.
        n: usize,
        /// Name of the bias appended as one more column.
        bias: Option<String>,
    },
    /// A bias quantized with the weight `weight`.
    BiasOf {
        /// The weight's name.
        weight: String,
    },
}

/// The decision for one tensor of the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The tensor.
    pub entry: TensorEntry,
    /// What happens to it.
    pub choice: Choice,
}

/// The decisions for a whole checkpoint, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// One per tensor.
    pub tensors: Vec<Planned>,
    /// `--include` patterns that matched no tensor.
    pub unmatched_includes: Vec<String>,
    /// Whether the quantized tensors are pcm (else sigma-delta).
    pub pcm: bool,
    /// Options that had no effect and tensors stored raw against the options, for the caller
    /// to show (the library prints nothing).
    pub warnings: Vec<PlanWarning>,
    /// The quantized tensors a calibration file covers (quantized with error feedback, their
    /// records holding measured errors).
    pub calibrated: HashSet<String>,
    /// pcm: small tensors given their own stored bits per weight ([`SMALL_TENSOR_BITS`]),
    /// outside the model-wide allocation (see [`plan`]).
    pub small: HashMap<String, SmallBits>,
    /// pcm with least-squares steps ([`pcm::StepPolicy::LeastSquares`]): the quantized tensors
    /// record their vectors' measured errors.
    pub measured: bool,
}

/// The bits of its own that a small pcm tensor gets ([`Plan::small`]), per weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmallBits {
    /// Its codes and steps: [`small_tensor_bits`], within the limits [`plan`] sets.
    pub codes: f64,
    /// Its record and sections' padding.
    pub fixed: f64,
}

impl SmallBits {
    /// The stored bits per weight it gets, record included, its codes and steps at most
    /// `ceiling` ([`FileCap::small_ceiling`]) if there is one.
    pub fn total(&self, ceiling: Option<f64>) -> f64 {
        ceiling.map_or(self.codes, |c| self.codes.min(c)) + self.fixed
    }
}

/// The smallest vector dimension d quantized by default with pcm: a 3×3 convolution kernel
/// window (a depthwise 3×3 convolution's rows). Below it, one f16 step per vector costs more than
/// 1.8 bits per weight; whether a tensor of short vectors is quantized at all is then decided by
/// its cost ([`SMALL_TENSOR_BITS`]: quantized only when that halves its raw size, so an F16
/// depthwise 3×3 kernel stays raw and an F32 one of 43 channels or more is quantized). Measured
/// against 16 on ten checkpoints (docs/quality/unseen.md): an F32 depthwise network's file is
/// 0.07–0.12 bits per float weight smaller at an explicit budget, with the same output quality
/// within the metrics' spread; under the whole-file cap the same size, the same quality.
pub const PCM_MIN_DIM: usize = 9;

/// The smallest vector dimension d quantized by default with sigma-delta (whose frames need
/// N > d: tiny vectors gain little and pay N/d bits per weight of codes).
pub const SIGMA_DELTA_MIN_DIM: usize = 16;

/// The smallest vector dimension d quantized when no include is given and `min_dim` is `None`:
/// [`PCM_MIN_DIM`] with pcm, [`SIGMA_DELTA_MIN_DIM`] with sigma-delta.
pub fn default_min_dim(method: &Method) -> usize {
    match method {
        Method::Pcm(_) => PCM_MIN_DIM,
        Method::SigmaDelta => SIGMA_DELTA_MIN_DIM,
    }
}

/// The least bits per weight of the codes and steps of a pcm tensor too small for the model-wide
/// budget (one whose record, steps and section padding would take more than a tenth of a 4-bit
/// budget), its record and padding counted on top. Such tensors (first convolutions, 1×1 and
/// depthwise convolutions, small projections and detection heads) are few weights but often the
/// most sensitive of a network; at this rate their relative error is about 1 %.
pub const SMALL_TENSOR_BITS: f64 = 6.0;

/// How many bits per weight more than the budget asked for (`--bits-per-weight`, or the default
/// [`crate::quant::pcm::DEFAULT_BITS`]) a small tensor's codes and steps get, at least
/// [`SMALL_TENSOR_BITS`]: 8.5 at the default.
/// Measured on a YOLOv8n detector (docs/quality/unseen.md): its 16 small tensors hold 1.5 % of
/// its weights; at 6 bits its class scores kept mean cosine 0.919, at 8 bits 0.979 for 0.03
/// more bits per weight in the file (10 and 12 bits gave no more).
pub const SMALL_TENSOR_EXTRA_BITS: f64 = 3.5;

/// The stored bits per weight (codes and steps) of a small tensor in a pcm pack whose budget is
/// `budget` bits per weight (`None`: a pack by error, whose small tensors get
/// [`SMALL_TENSOR_BITS`]).
pub fn small_tensor_bits(budget: Option<f64>) -> f64 {
    budget.map_or(SMALL_TENSOR_BITS, |b| {
        (b + SMALL_TENSOR_EXTRA_BITS).max(SMALL_TENSOR_BITS)
    })
}

/// Something in a pack that the caller should hear about: an option that does nothing, or a
/// tensor stored raw although the options asked for it to be quantized. `Display` gives one
/// line without a prefix.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PlanWarning {
    /// An `--include` pattern matched `matched` tensors, none of which can be quantized (rank
    /// below 2, a zero dimension, or not a float type).
    IncludeUnquantizable {
        /// The pattern.
        pattern: String,
        /// How many tensors it matched.
        matched: usize,
    },
    /// Every quantizable tensor an `--include` pattern matched (`matched` of them) is also
    /// excluded (`--exclude`, or `--tensor-type …=raw`), so the include quantizes nothing.
    IncludeExcluded {
        /// The pattern.
        pattern: String,
        /// How many quantizable tensors it matched.
        matched: usize,
    },
    /// `--bias` was given but no `X.bias` pairs with a quantized `X.weight`.
    BiasUnpaired,
    /// A `--tensor-type` pattern that is the first match of no tensor (`matched` = 0), or, with
    /// a number of bits, of no quantized tensor.
    TensorTypeUnused {
        /// The pattern.
        pattern: String,
        /// Its setting.
        setting: TensorSetting,
        /// Tensors whose first matching pattern it is.
        matched: usize,
    },
    /// A sigma-delta tensor whose quantized form (codes, steps, record) would take at least its
    /// raw bytes: stored raw.
    NotSmaller {
        /// The tensor.
        tensor: String,
        /// Estimated bytes of its quantized form.
        quantized_bytes: u64,
        /// Its raw bytes (with its bias, if it was to be quantized with it).
        raw_bytes: u64,
        /// Whether [`PackOptions::force_quantize`] quantizes it anyway.
        included: bool,
    },
    /// A pcm tensor matched by `--include` that is too small for the per-tensor costs (record,
    /// steps, padding) to stay under a tenth of a 4-bit budget: stored raw.
    TooSmall {
        /// The tensor.
        tensor: String,
        /// Estimated fixed bytes of its quantized form.
        fixed_bytes: u64,
        /// Its raw bytes.
        raw_bytes: u64,
    },
    /// The calibration file covers a tensor that is stored raw: its Gram matrix is not used.
    CalibrationUnused {
        /// The tensor.
        tensor: String,
    },
    /// No tensor is quantized: every one of the `tensors` is stored raw.
    NothingQuantized {
        /// Tensors in the checkpoint.
        tensors: usize,
    },
}

impl std::fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanWarning::IncludeUnquantizable { pattern, matched } => write!(
                f,
                "--include {pattern:?} matched {matched} tensor{} and none can be quantized (rank < 2 or not a float type)",
                plural(*matched)
            ),
            PlanWarning::IncludeExcluded { pattern, matched } => write!(
                f,
                "--include {pattern:?} quantizes nothing: every quantizable tensor it matched ({matched}) is excluded"
            ),
            PlanWarning::TensorTypeUnused {
                pattern,
                setting,
                matched: 0,
            } => write!(
                f,
                "--tensor-type {:?} matched no tensor (or only tensors an earlier --tensor-type matched)",
                format!("{pattern}={setting}")
            ),
            PlanWarning::TensorTypeUnused {
                pattern,
                setting,
                matched,
            } => write!(
                f,
                "--tensor-type {:?} matched {matched} tensor{} and none of them is quantized",
                format!("{pattern}={setting}"),
                plural(*matched)
            ),
            PlanWarning::BiasUnpaired => write!(
                f,
                "--bias: no X.bias pairs with a quantized X.weight (a float vector with one entry per row): no bias is quantized"
            ),
            PlanWarning::NotSmaller {
                included: true,
                tensor,
                quantized_bytes,
                raw_bytes,
            } => write!(
                f,
                "tensor {tensor:?} takes about {quantized_bytes} bytes quantized, not less than its {raw_bytes} raw bytes: quantized anyway (force_quantize)"
            ),
            PlanWarning::NotSmaller {
                tensor,
                quantized_bytes,
                raw_bytes,
                included: false,
            } => write!(
                f,
                "tensor {tensor:?} would take about {quantized_bytes} bytes quantized, not less than its {raw_bytes} raw bytes: stored raw"
            ),
            PlanWarning::TooSmall {
                tensor,
                fixed_bytes,
                raw_bytes,
            } => write!(
                f,
                "tensor {tensor:?} is too small to quantize (about {fixed_bytes} bytes of record and steps against {raw_bytes} raw bytes): stored raw"
            ),
            PlanWarning::CalibrationUnused { tensor } => write!(
                f,
                "the calibration file covers tensor {tensor:?}, which is stored raw: its Gram matrix is not used"
            ),
            PlanWarning::NothingQuantized { tensors } => write!(
                f,
                "nothing is quantized: {} stored raw (see --min-dim, --include, --exclude)",
                if *tensors == 1 {
                    "the 1 tensor is".to_owned()
                } else {
                    format!("all {tensors} tensors are")
                }
            ),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Whether a tensor can be a sigma-delta tensor at all: float dtype, rank ≥ 2, no zero
/// dimension (spec rule R26).
fn quantizable(t: &TensorEntry) -> bool {
    t.dtype.is_quantizable_float() && t.shape.len() >= 2 && t.shape.iter().all(|&x| x > 0)
}

/// The matrix view [rows, cols] of a tensor of rank ≥ 2 (conv [out, in, kh, kw] → [out, in·kh·kw]).
fn matrix_dims(t: &TensorEntry) -> Result<(usize, usize)> {
    let too_big = || {
        Error::param(format!(
            "tensor {:?} is too large for this platform",
            t.name
        ))
    };
    let rows = usize::try_from(t.shape.first().copied().unwrap_or(0)).map_err(|_| too_big())?;
    let cols = t
        .shape
        .iter()
        .skip(1)
        .try_fold(1usize, |a, &x| a.checked_mul(usize::try_from(x).ok()?))
        .ok_or_else(too_big)?;
    Ok((rows, cols))
}

/// The bias that goes with weight `name` (`X.weight` → `X.bias`), if the checkpoint has a
/// float vector of that name with `rows` entries.
fn bias_for<'a>(ck: &'a Checkpoint, name: &str, rows: usize) -> Option<&'a TensorEntry> {
    let stem = name.strip_suffix(".weight")?;
    let b = ck.tensor(&format!("{stem}.bias")).ok()?;
    (b.dtype.is_quantizable_float() && b.shape == [rows as u64]).then_some(b)
}

/// Decides what happens to every tensor of `ck`.
pub fn plan(ck: &Checkpoint, opts: &PackOptions) -> Result<Plan> {
    let bits = bits_for_levels(opts.levels);
    if let Method::Pcm(p) = &opts.method {
        return plan_pcm(ck, opts, p);
    }
    if opts.levels == 0 || opts.levels > crate::limits::MAX_LEVELS {
        return Err(Error::param(format!(
            "--levels {} is out of range: K must be 1..={}",
            opts.levels,
            crate::limits::MAX_LEVELS
        )));
    }
    if let Err(e) = opts.scheme.check_levels(Alphabet::new(opts.levels)?) {
        return Err(Error::param(format!(
            "--scheme {} with --levels {}: {e}",
            opts.scheme, opts.levels
        )));
    }
    let mut choices: Vec<Choice> = vec![Choice::Raw; ck.tensors().len()];
    let mut bias_taken: HashMap<String, String> = HashMap::new();
    let mut warnings = Vec::new();
    for (i, t) in ck.tensors().iter().enumerate() {
        let Some(Candidate {
            rows,
            cols,
            bias,
            d,
            m,
        }) = candidate(ck, opts, t)?
        else {
            continue;
        };
        let frame = match opts.tensor_setting(&t.name) {
            Some(TensorSetting::Bits(b)) => FrameRule::BitsPerWeight(b),
            _ => opts.frame,
        };
        let mut n = frame.frame_size(d, bits).ok_or_else(|| {
            Error::param(format!(
                "tensor {:?}: {} does not give a valid frame size for d = {d}",
                t.name,
                frame.describe()
            ))
        })?;
        if opts.scheme.prefers_even_n() && opts.family == FrameFamily::Harmonic && n % 2 == 1 {
            // Second-order ΣΔ with a harmonic frame converges much faster for even N (see
            // Scheme::prefers_even_n). A size derived from a budget is lowered to stay within
            // it; a size the user gave is theirs to change.
            if let FrameRule::FrameSize(_) = frame {
                return Err(Error::param(format!(
                    "--frame-size {n} is odd: {} sigma-delta with a harmonic frame needs an even N (its error falls like N^-2.46 for even N, N^-1.33 for odd); use {} or {}",
                    opts.scheme,
                    n - 1,
                    n + 1
                )));
            }
            n -= 1;
        }
        let min = opts.family.min_frame_size(d as u64);
        if (n as u64) < min {
            return Err(Error::param(format!(
                "tensor {:?}: {} with --levels {} gives frame size N = {n} for vectors of d = {d}, but a {} frame needs N >= {} = {min} (raise the bits per weight or redundancy, lower --levels, or --exclude the tensor)",
                t.name,
                frame.describe(),
                opts.levels,
                opts.family,
                match opts.family {
                    FrameFamily::Harmonic => "d + 1",
                    FrameFamily::SpectralTetris => "2d",
                }
            )));
        }
        // Sizes past the limits are refused here, before a tensor is set aside as too small.
        crate::frame::check_sizes(n, d).map_err(in_tensor(&t.name))?;
        // Codes, steps (8 bytes per vector, or one for the tensor) and a record of about 200
        // bytes: a tensor for which that is not less than its raw bytes is stored raw.
        let m = m as u64;
        let steps = match opts.delta {
            DeltaChoice::Coefficient | DeltaChoice::Vector => m.saturating_mul(8),
            _ => 8,
        };
        let quantized_bytes = (n as u64)
            .checked_mul(m)
            .and_then(|codes| crate::codes::bitpack::packed_len(codes, bits))
            .unwrap_or(u64::MAX)
            .saturating_add(steps.saturating_add(200));
        let raw_bytes = t
            .elements
            .saturating_mul(t.dtype.size())
            .saturating_add(bias.map_or(0, |b| b.elements.saturating_mul(b.dtype.size())));
        if quantized_bytes >= raw_bytes {
            // Stored raw, unless the caller forces quantization (the paper's experiments
            // quantize even the 10-row output layer).
            let included = opts.force_quantize;
            warnings.push(PlanWarning::NotSmaller {
                tensor: t.name.clone(),
                quantized_bytes,
                raw_bytes,
                included,
            });
            if !included {
                continue;
            }
        }
        if let Some(b) = bias {
            bias_taken.insert(b.name.clone(), t.name.clone());
        }
        choices[i] = Choice::Quantize {
            rows,
            cols,
            d,
            n,
            bias: bias.map(|b| b.name.clone()),
        };
    }
    Ok(finish_plan(ck, opts, choices, &bias_taken, false, warnings))
}

/// Whether `opts` store the tensor `name` raw whatever it is (`--exclude`, or a raw
/// `--tensor-type`).
fn forced_raw(opts: &PackOptions, name: &str) -> bool {
    opts.exclude.iter().any(|g| glob::matches(g, name))
        || opts.tensor_setting(name) == Some(TensorSetting::Raw)
}

/// The plan from the per-tensor choices: biases quantized with their weights marked, and the
/// warnings about options that did nothing appended to `warnings`.
/// A tensor the options want quantized, with its matrix view, the bias paired with it, the
/// vector dimension d and the vector count m.
struct Candidate<'a> {
    rows: usize,
    cols: usize,
    bias: Option<&'a TensorEntry>,
    d: usize,
    m: usize,
}

/// Whether the options want `t` quantized (a quantizable float tensor, not forced raw, d ≥
/// `min_dim` or named by an include), and how.
fn candidate<'a>(
    ck: &'a Checkpoint,
    opts: &PackOptions,
    t: &TensorEntry,
) -> Result<Option<Candidate<'a>>> {
    if !quantizable(t) || forced_raw(opts, &t.name) {
        return Ok(None);
    }
    let (rows, cols) = matrix_dims(t)?;
    let bias = if opts.bias {
        bias_for(ck, &t.name, rows).filter(|b| !forced_raw(opts, &b.name))
    } else {
        None
    };
    let aug = cols + usize::from(bias.is_some());
    let (d, m) = match opts.orientation {
        Orientation::Columns => (rows, aug),
        Orientation::Rows => (aug, rows),
    };
    let wanted = if opts.include.is_empty() {
        d >= opts
            .min_dim
            .unwrap_or_else(|| default_min_dim(&opts.method))
    } else {
        opts.include.iter().any(|p| glob::matches(p, &t.name))
    };
    Ok(wanted.then_some(Candidate {
        rows,
        cols,
        bias,
        d,
        m,
    }))
}

fn finish_plan(
    ck: &Checkpoint,
    opts: &PackOptions,
    mut choices: Vec<Choice>,
    bias_taken: &HashMap<String, String>,
    pcm: bool,
    mut warnings: Vec<PlanWarning>,
) -> Plan {
    for (i, t) in ck.tensors().iter().enumerate() {
        if let Some(w) = bias_taken.get(&t.name) {
            // A bias that is itself quantized as a weight cannot be (it has rank 1), so no clash.
            choices[i] = Choice::BiasOf { weight: w.clone() };
        }
    }
    let mut unmatched_includes = Vec::new();
    let mut include_warnings = Vec::new();
    for p in &opts.include {
        let matched: Vec<usize> = (0..choices.len())
            .filter(|&i| glob::matches(p, &ck.tensors()[i].name))
            .collect();
        let quantizable: Vec<usize> = matched
            .iter()
            .copied()
            .filter(|&i| quantizable(&ck.tensors()[i]))
            .collect();
        if matched.is_empty() {
            unmatched_includes.push(p.clone());
        } else if quantizable.is_empty() {
            include_warnings.push(PlanWarning::IncludeUnquantizable {
                pattern: p.clone(),
                matched: matched.len(),
            });
        } else if quantizable
            .iter()
            .all(|&i| forced_raw(opts, &ck.tensors()[i].name))
        {
            include_warnings.push(PlanWarning::IncludeExcluded {
                pattern: p.clone(),
                matched: quantizable.len(),
            });
        }
    }
    warnings.splice(0..0, include_warnings);
    if opts.bias && bias_taken.is_empty() {
        warnings.push(PlanWarning::BiasUnpaired);
    }
    for (k, (g, setting)) in opts.tensor_types.iter().enumerate() {
        // The tensors for which this pattern is the first that matches.
        let mine: Vec<usize> = (0..choices.len())
            .filter(|&i| {
                let name = &ck.tensors()[i].name;
                glob::matches(g, name)
                    && !opts.tensor_types[..k]
                        .iter()
                        .any(|(h, _)| glob::matches(h, name))
            })
            .collect();
        let unused = match setting {
            TensorSetting::Raw => mine.is_empty(),
            TensorSetting::Bits(_) => !mine
                .iter()
                .any(|&i| matches!(choices[i], Choice::Quantize { .. })),
        };
        if unused {
            warnings.push(PlanWarning::TensorTypeUnused {
                pattern: g.clone(),
                setting: *setting,
                matched: mine.len(),
            });
        }
    }
    let plan = Plan {
        tensors: ck
            .tensors()
            .iter()
            .cloned()
            .zip(choices)
            .map(|(entry, choice)| Planned { entry, choice })
            .collect(),
        unmatched_includes,
        pcm,
        warnings,
        calibrated: HashSet::new(),
        small: HashMap::new(),
        measured: pcm
            && matches!(&opts.method,
                Method::Pcm(p) if p.policy == pcm::StepPolicy::LeastSquares),
    };
    let mut plan = plan;
    plan.warn_if_nothing_quantized();
    plan
}

/// The kernel window of a weight's rows for zero-sum rounding ([`PcmOptions::window`]): the
/// product of the dimensions after the second (kh·kw of a convolution [out, in, kh, kw]) for a
/// tensor of rank 3 or more quantized by rows, else 0 (none).
fn kernel_window(shape: &[u64], orientation: Orientation) -> usize {
    match (orientation, shape) {
        (Orientation::Rows, [_, _, rest @ ..]) if !rest.is_empty() => rest
            .iter()
            .try_fold(1usize, |w, &x| w.checked_mul(usize::try_from(x).ok()?))
            .unwrap_or(0),
        _ => 0,
    }
}

/// The plan of a pcm pack: every quantizable tensor with d ≥ `min_dim` (or matched by an
/// include) is quantized with N = d (no frame) or the family's smallest N. A tensor whose fixed
/// costs (record, steps, section padding) would be more than a tenth of a 4-bit budget gets
/// bits of its own ([`small_tensor_bits`], at most half its raw bytes but not fewer than the
/// shared budget) when [`SMALL_TENSOR_BITS`] takes at most half its raw bytes, else is stored
/// raw (with `--include`: raw only if the fixed costs alone reach its raw bytes).
fn plan_pcm(ck: &Checkpoint, opts: &PackOptions, p: &PcmOptions) -> Result<Plan> {
    let mut choices: Vec<Choice> = vec![Choice::Raw; ck.tensors().len()];
    let mut small: HashMap<String, SmallBits> = HashMap::new();
    let small_bits = small_tensor_bits(match p.target {
        pcm::RateTarget::BitsPerWeight(b) => Some(b),
        _ => None,
    });
    let mut bias_taken: HashMap<String, String> = HashMap::new();
    let mut warnings = Vec::new();
    for (i, t) in ck.tensors().iter().enumerate() {
        let Some(Candidate {
            rows,
            cols,
            bias,
            d,
            m,
        }) = candidate(ck, opts, t)?
        else {
            continue;
        };
        let n = match (p.family, p.frame_size) {
            (None, _) => d,
            (Some(_), Some(n)) => n,
            (Some(f), None) => f.min_frame_size(d as u64) as usize,
        };
        if let Some(f) = p.family {
            if (n as u64) < f.min_frame_size(d as u64) {
                return Err(Error::param(format!(
                    "tensor {:?}: frame size N = {n} is below the {} frame's minimum {} for d = {d}",
                    t.name,
                    f,
                    f.min_frame_size(d as u64)
                )));
            }
        }
        // Fixed costs: a record (≈ 200 bytes), two sections' padding and model, one f16 step
        // per vector. Where they would take more than a tenth of a 4-bit budget, a shared
        // budget would leave too few bits for the codes: such a small tensor gets bits of its
        // own (below), or is stored raw when even SMALL_TENSOR_BITS would not halve it.
        // A tensor named by --include is quantized unless its fixed costs alone reach its raw
        // size (with bits of its own if it is small).
        let fixed_bits = 8 * (200 + 128 + 64 + 2 * m as u64);
        let raw_bits = 8 * t.elements.saturating_mul(t.dtype.size());
        let small_rate = 10 * fixed_bits > 4 * t.elements;
        let too_small = if !opts.include.is_empty() {
            fixed_bits >= raw_bits
        } else {
            small_rate
                && (fixed_bits as f64 + SMALL_TENSOR_BITS * (m * d) as f64) > 0.5 * raw_bits as f64
        };
        if too_small {
            if !opts.include.is_empty() {
                warnings.push(PlanWarning::TooSmall {
                    tensor: t.name.clone(),
                    fixed_bytes: fixed_bits / 8,
                    raw_bytes: t.elements.saturating_mul(t.dtype.size()),
                });
            }
            continue;
        }
        if let Some(b) = bias {
            bias_taken.insert(b.name.clone(), t.name.clone());
        }
        if small_rate {
            // Its codes and steps get small_bits, but never so many that the tensor would take
            // more than half its raw bytes (the rule above, which SMALL_TENSOR_BITS meets; a
            // tensor named by --include gets at least SMALL_TENSOR_BITS even when that does
            // not halve it), nor fewer than the budget the other tensors share (an F16
            // tensor's half is about 8 bits less its fixed costs, below a budget of 8) while
            // that stays under its raw bytes; its record and padding come on top.
            let weights = (m * d) as f64;
            let room = (0.5 * raw_bits as f64 - fixed_bits as f64) / weights;
            let shared = match p.target {
                pcm::RateTarget::BitsPerWeight(b) => b,
                _ => 0.0,
            };
            let below_raw = (raw_bits as f64 - fixed_bits as f64) / weights;
            let bits = small_bits
                .min(room.max(shared.min(below_raw)))
                .max(SMALL_TENSOR_BITS);
            small.insert(
                t.name.clone(),
                SmallBits {
                    codes: bits,
                    fixed: fixed_bits as f64 / weights,
                },
            );
        }
        choices[i] = Choice::Quantize {
            rows,
            cols,
            d,
            n,
            bias: bias.map(|b| b.name.clone()),
        };
    }
    let mut plan = finish_plan(ck, opts, choices, &bias_taken, true, warnings);
    plan.small = small;
    Ok(plan)
}

impl Plan {
    /// The writer's plan (file order = checkpoint order).
    pub fn tensor_plans(&self) -> Vec<TensorPlan> {
        self.tensors
            .iter()
            .map(|p| {
                let e = &p.entry;
                match &p.choice {
                    Choice::Raw => TensorPlan::raw(e.name.clone(), e.dtype, &e.shape),
                    Choice::Quantize { bias, .. } if self.pcm => TensorPlan::pcm_recording(
                        e.name.clone(),
                        e.dtype,
                        &e.shape,
                        bias.is_some(),
                        self.record_of(&e.name),
                    ),
                    Choice::Quantize { bias, .. } => TensorPlan::sigma_delta_measured(
                        e.name.clone(),
                        e.dtype,
                        &e.shape,
                        bias.is_some(),
                    ),
                    Choice::BiasOf { weight } => TensorPlan::bias_of(
                        e.name.clone(),
                        e.dtype,
                        e.shape.first().copied().unwrap_or(0),
                        weight.clone(),
                    ),
                }
            })
            .collect()
    }

    /// What the record of the pcm tensor `name` holds per vector: measured weight and output
    /// errors if a calibration file covers it, measured weight errors with least-squares steps.
    pub fn record_of(&self, name: &str) -> ErrorRecord {
        if self.calibrated.contains(name) {
            ErrorRecord::WeightAndOutput
        } else if self.measured {
            ErrorRecord::Weight
        } else {
            ErrorRecord::APriori
        }
    }

    /// Marks the quantized tensors `cal` covers as calibrated, after checking it against the
    /// plan: every tensor it names is in the checkpoint and, if quantized, has as many inputs
    /// as its Gram matrix's dimension (a tensor stored raw only gets a warning).
    pub fn calibrate(&mut self, cal: &Calibration) -> Result<()> {
        let bad = |name: &str, why: String| {
            Error::Data(format!(
                "calibration file {}: tensor {name:?} {why}",
                cal.path().display()
            ))
        };
        for name in cal.names() {
            let Some(p) = self.tensors.iter().find(|p| p.entry.name == name) else {
                return Err(bad(name, "is not a tensor of the checkpoint".into()));
            };
            match &p.choice {
                Choice::Quantize { cols, .. } => {
                    let n = cal.dim(name).unwrap_or(0);
                    if n != *cols as u64 {
                        return Err(bad(
                            name,
                            format!(
                                "is a Gram matrix of dimension {n}, but the weight {:?} has {cols} inputs",
                                p.entry.shape
                            ),
                        ));
                    }
                    self.calibrated.insert(name.to_owned());
                }
                _ => self.warnings.push(PlanWarning::CalibrationUnused {
                    tensor: name.to_owned(),
                }),
            }
        }
        Ok(())
    }

    /// Number of tensors quantized (weights, not counting biases quantized with them).
    pub fn quantized_count(&self) -> usize {
        self.tensors
            .iter()
            .filter(|p| matches!(p.choice, Choice::Quantize { .. }))
            .count()
    }

    /// Number of weights (elements) of the quantized tensors, without their biases: the units
    /// of the progress of the phases over quantized tensors.
    pub fn quantized_weights(&self) -> u64 {
        self.tensors
            .iter()
            .filter(|p| matches!(p.choice, Choice::Quantize { .. }))
            .map(|p| p.entry.elements)
            .sum()
    }

    /// Adds [`PlanWarning::NothingQuantized`] if no tensor is quantized and it is not there yet.
    fn warn_if_nothing_quantized(&mut self) {
        if self.quantized_count() == 0
            && !self.tensors.is_empty()
            && !self
                .warnings
                .iter()
                .any(|w| matches!(w, PlanWarning::NothingQuantized { .. }))
        {
            self.warnings.push(PlanWarning::NothingQuantized {
                tensors: self.tensors.len(),
            });
        }
    }
}

/// What packing one quantized tensor gave.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedTensor {
    /// Its name.
    pub name: String,
    /// Its bias, quantized with it.
    pub bias: Option<String>,
    /// Frame size N.
    pub n: usize,
    /// Vector dimension d.
    pub d: usize,
    /// Vectors quantized.
    pub vectors: usize,
    /// Largest δ.
    pub max_delta: f64,
    /// Largest certified Theorem 3.1 bound.
    pub max_bound: f64,
    /// Largest measured ‖w_j − w̃_j‖.
    pub max_error: f64,
    /// Vectors whose bound is not certified.
    pub uncertified: usize,
    /// The frame constant C of the bounds (σ(F, p) for first order, σ₂ + tail for second).
    pub sigma: f64,
    /// With [`PackOptions::reorder`]: σ(F, identity) and σ(F, p) of the computed ordering p
    /// (the first-order variation, which the ordering minimises).
    pub ordering: Option<(f64, f64)>,
    /// ‖W − W̃‖_F / ‖W‖_F (with the bias), measured.
    pub relative_error: f64,
    /// With calibration: ‖(W − W̃)H^½‖_F / ‖W H^½‖_F, the relative error of the layer's outputs
    /// on its calibration inputs (H undamped).
    pub output_error: Option<f64>,
    /// The tensor's stored bits (record and sections, without padding) per weight (with the
    /// bias).
    pub bits_per_weight: f64,
}

/// The result of [`pack`].
#[derive(Debug, Clone, PartialEq)]
pub struct PackSummary {
    /// The plan that was carried out.
    pub plan: Plan,
    /// With [`PackOptions::file_bits`]: what the whole-file cap did to the budget.
    pub file_cap: Option<FileCap>,
    /// One entry per quantized tensor, in file order.
    pub quantized: Vec<PackedTensor>,
    /// The network-wide δ, for [`DeltaChoice::Uniform`].
    pub uniform_delta: Option<f64>,
    /// With [`NonFinite::Raw`]: the tensors stored raw because they hold a NaN or an infinity,
    /// with the first such value and where it is.
    pub nonfinite_raw: Vec<(String, String)>,
}

impl PackSummary {
    /// The largest certified (a priori) bound over the quantized tensors certified by one
    /// (tensors packed with calibration record measured errors instead, and are left out).
    pub fn max_bound(&self) -> f64 {
        self.quantized
            .iter()
            .filter(|q| q.output_error.is_none())
            .map(|q| q.max_bound)
            .fold(0.0, f64::max)
    }
    /// The largest measured vector error over every quantized tensor.
    pub fn max_error(&self) -> f64 {
        self.quantized
            .iter()
            .map(|q| q.max_error)
            .fold(0.0, f64::max)
    }
    /// Vectors not certified, over every tensor.
    pub fn uncertified(&self) -> usize {
        self.quantized.iter().map(|q| q.uncertified).sum()
    }
}

/// Prefixes the tensor's name to a data error.
pub(crate) fn in_tensor(name: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Data(m) => Error::Data(format!("tensor {name:?}: {m}")),
        Error::Parameter(m) => Error::Parameter(format!("tensor {name:?}: {m}")),
        e => e,
    }
}

/// Loads a planned weight (and its bias) as f32.
pub(crate) fn load(
    ck: &Checkpoint,
    e: &TensorEntry,
    bias: Option<&str>,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let w = ck.to_f32(e)?;
    let b = match bias {
        Some(b) => Some(ck.to_f32(ck.tensor(b)?)?),
        None => None,
    };
    Ok((w, b))
}

/// The matrix view of weight data, with its bias appended if given.
pub(crate) fn matrix<'a>(
    w: &'a [f32],
    b: Option<&'a [f32]>,
    rows: usize,
    cols: usize,
) -> Result<Matrix<'a>> {
    let m = Matrix::new(w, rows, cols)?;
    match b {
        Some(b) => m.with_bias(b),
        None => Ok(m),
    }
}

/// Fails with an I/O error naming `out` if its directory does not exist (the writer would
/// otherwise name its temporary file).
pub(crate) fn check_output_dir(out: &Path) -> Result<()> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::io(
            out,
            std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        )),
        Err(e) => Err(Error::io(out, e)),
    }
}

/// What [`pack_nonfinite`] does with a tensor to quantize that holds a NaN or an infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// Refuse the whole checkpoint with [`Error::Data`] naming the tensor (the default).
    #[default]
    Refuse,
    /// Store the tensor (and its bias, if it was to be quantized with it) raw, bit for bit.
    Raw,
}

/// The first non-finite value of `v`: (index, value).
fn first_nonfinite(v: &[f32]) -> Option<(usize, f32)> {
    v.iter().copied().enumerate().find(|(_, x)| !x.is_finite())
}

/// Turns every planned quantized tensor whose weights (or bias) hold a NaN or an infinity into
/// a raw one (its bias too); returns (name, what was found) for each. Reads each planned
/// quantized tensor once more, one at a time.
fn raw_nonfinite(
    ck: &Checkpoint,
    plan: &mut Plan,
    progress: &mut dyn Progress,
) -> Result<Vec<(String, String)>> {
    progress.start("checking", plan.quantized_weights());
    let mut found = Vec::new();
    for p in plan.tensors.iter_mut() {
        let Choice::Quantize { bias, .. } = &p.choice else {
            continue;
        };
        progress.tensor(&p.entry.name);
        let (w, b) = load(ck, &p.entry, bias.as_deref())?;
        let why = match (first_nonfinite(&w), b.as_deref().and_then(first_nonfinite)) {
            (Some((i, x)), _) => Some(format!("{x} at element {i}")),
            (None, Some((i, x))) => Some(format!(
                "{x} at element {i} of its bias {:?}",
                bias.as_deref().unwrap_or("")
            )),
            (None, None) => None,
        };
        if let Some(why) = why {
            found.push((p.entry.name.clone(), why));
            p.choice = Choice::Raw;
        }
        progress.advance_by(p.entry.elements);
    }
    progress.finish();
    for p in plan.tensors.iter_mut() {
        if let Choice::BiasOf { weight } = &p.choice {
            if found.iter().any(|(n, _)| n == weight) {
                p.choice = Choice::Raw;
            }
        }
    }
    Ok(found)
}

/// Packs `ck` into the .sdq file `out` (written atomically), reporting to `progress`. A NaN or
/// infinity in a tensor to quantize refuses the checkpoint ([`NonFinite::Refuse`]).
pub fn pack(
    ck: &Checkpoint,
    out: &Path,
    opts: &PackOptions,
    progress: &mut dyn Progress,
) -> Result<PackSummary> {
    pack_nonfinite(ck, out, opts, NonFinite::Refuse, progress)
}

/// [`pack`], with `nonfinite` saying what happens to a tensor to quantize that holds a NaN or
/// an infinity; the tensors stored raw for that reason are listed in
/// [`PackSummary::nonfinite_raw`].
pub fn pack_nonfinite(
    ck: &Checkpoint,
    out: &Path,
    opts: &PackOptions,
    nonfinite: NonFinite,
    progress: &mut dyn Progress,
) -> Result<PackSummary> {
    let mut plan = plan(ck, opts)?;
    let nonfinite_raw = match nonfinite {
        NonFinite::Refuse => Vec::new(),
        NonFinite::Raw => raw_nonfinite(ck, &mut plan, progress)?,
    };
    plan.warn_if_nothing_quantized();
    let calibration = match &opts.calibration {
        None => None,
        Some(path) => {
            match &opts.method {
                Method::Pcm(p) if plan.pcm => {
                    if opts.orientation != Orientation::Rows {
                        return Err(Error::param(
                            "--calibration needs the rows orientation (--axis rows, the default)",
                        ));
                    }
                    if p.policy == pcm::StepPolicy::LeastSquares {
                        return Err(Error::param(
                            "--calibration chooses its codes by error feedback: drop \
                             --step-policy least-squares",
                        ));
                    }
                    if matches!(p.target, pcm::RateTarget::RelativeError(_)) {
                        return Err(Error::param(
                            "--calibration minimises the output error, --max-error bounds the \
                             weight error: give --bits-per-weight instead",
                        ));
                    }
                }
                _ => {
                    return Err(Error::param(
                        "--calibration works with the pcm scheme (the default)",
                    ))
                }
            }
            let cal = Calibration::open(path)?;
            plan.calibrate(&cal)?;
            Some(cal)
        }
    };
    check_output_dir(out)?;
    let (policy, tag, uniform) = match opts.delta {
        DeltaChoice::Tensor => (StepPolicy::Tensor, DeltaPolicy::Tensor, None),
        DeltaChoice::Vector => (StepPolicy::Vector, DeltaPolicy::Vector, None),
        DeltaChoice::Coefficient => (StepPolicy::Coefficient, DeltaPolicy::Coefficient, None),
        DeltaChoice::Value(v) => (StepPolicy::Explicit(v), DeltaPolicy::Explicit, None),
        DeltaChoice::Uniform => {
            progress.start("measuring norms", plan.quantized_weights());
            let mut norms = Vec::new();
            for p in &plan.tensors {
                if let Choice::Quantize {
                    rows, cols, bias, ..
                } = &p.choice
                {
                    progress.tensor(&p.entry.name);
                    let (w, b) = load(ck, &p.entry, bias.as_deref())?;
                    let m = matrix(&w, b.as_deref(), *rows, *cols)
                        .and_then(|m| m.max_vector_norm(opts.orientation))
                        .map_err(in_tensor(&p.entry.name))?;
                    norms.push(m);
                    progress.advance_by(p.entry.elements);
                }
            }
            progress.finish();
            let reach = opts.scheme.reach(Alphabet::new(opts.levels)?)?;
            let delta = smallest_step(norms.into_iter().fold(0.0, f64::max), reach);
            // A network of zero weights gives δ = 0; any positive δ reconstructs it exactly.
            let delta = if delta > 0.0 {
                delta
            } else {
                f64::MIN_POSITIVE
            };
            (
                StepPolicy::Explicit(delta),
                DeltaPolicy::Uniform,
                Some(delta),
            )
        }
    };
    policy.validate()?;
    let file_cap = match (&opts.method, opts.file_bits) {
        (_, None) => None,
        (_, Some(cap)) if !(cap.is_finite() && cap > 0.0) => {
            return Err(Error::param(format!(
                "the whole-file cap {cap} must be a positive number of bits per float weight"
            )))
        }
        (Method::Pcm(p), Some(cap)) if plan.pcm => match p.target {
            pcm::RateTarget::BitsPerWeight(b) => Some(budget::file_cap(ck, &plan, opts, b, cap)),
            _ => {
                return Err(Error::param(
                    "a whole-file cap (--file-bits-per-weight) needs a bit budget, not --max-error",
                ))
            }
        },
        _ => {
            return Err(Error::param(
                "a whole-file cap (--file-bits-per-weight) is for the pcm scheme",
            ))
        }
    };
    // The model-wide allocation measures rate–distortion curves of certified steps: with
    // least-squares steps (integer code widths) every tensor gets the same bits.
    let budgets = match (&opts.method, opts.allocation) {
        (Method::Pcm(p), Allocation::Model)
            if plan.pcm && p.policy == pcm::StepPolicy::Certified =>
        {
            match p.target {
                pcm::RateTarget::BitsPerWeight(b) => {
                    let b = file_cap.map_or(b, |c| c.budget);
                    budget::allocate(ck, &plan, opts, p, b, progress)?
                }
                _ => HashMap::new(),
            }
        }
        _ => HashMap::new(),
    };
    let mut writer = SdqWriter::create(out, &plan.tensor_plans(), ck.metadata())?;
    writer.set_zstd(opts.zstd)?;
    progress.start(
        "packing",
        plan.tensors.iter().map(|p| p.entry.elements).sum(),
    );
    let mut quantized = Vec::new();
    let mut orderings: HashMap<FrameDescriptor, OrderingReport> = HashMap::new();
    for p in &plan.tensors {
        let name = p.entry.name.as_str();
        progress.tensor(name);
        match &p.choice {
            Choice::Raw => writer.write_raw(name, &ck.bytes(&p.entry)?)?,
            Choice::BiasOf { .. } => {}
            Choice::Quantize {
                rows,
                cols,
                d,
                n,
                bias,
            } if plan.pcm => {
                let Method::Pcm(popts) = &opts.method else {
                    return Err(Error::param(
                        "internal error: a pcm plan without pcm options",
                    ));
                };
                let (w, b) = load(ck, &p.entry, bias.as_deref())?;
                let m = matrix(&w, b.as_deref(), *rows, *cols).map_err(in_tensor(name))?;
                let record = TensorPlan::pcm_recording(
                    name,
                    p.entry.dtype,
                    &p.entry.shape,
                    bias.is_some(),
                    plan.record_of(name),
                )
                .record_len();
                let gram = match &calibration {
                    Some(cal) if plan.calibrated.contains(name) => cal.gram(name)?,
                    _ => None,
                };
                // A calibrated tensor takes the calibrated frame when no frame is asked for.
                let (family, sign_seed, n) = match opts.calibrated_frame {
                    Some((f, seed)) if gram.is_some() && popts.family.is_none() => {
                        (Some(f), seed, f.min_frame_size(*d as u64) as usize)
                    }
                    _ => (popts.family, popts.sign_seed, *n),
                };
                let popts = PcmOptions {
                    record_bytes: record,
                    window: kernel_window(&p.entry.shape, opts.orientation),
                    family,
                    sign_seed,
                    frame_size: popts.frame_size.or(Some(n)).filter(|_| family.is_some()),
                    target: match (opts.tensor_setting(name), plan.small.get(name)) {
                        (Some(TensorSetting::Bits(b)), _) => pcm::RateTarget::BitsPerWeight(b),
                        (_, Some(s))
                            if matches!(popts.target, pcm::RateTarget::BitsPerWeight(_)) =>
                        {
                            pcm::RateTarget::BitsPerWeight(
                                s.total(file_cap.and_then(|c| c.small_ceiling)),
                            )
                        }
                        _ => budgets
                            .get(name)
                            .or(file_cap.as_ref().map(|c| &c.budget))
                            .map_or(popts.target, |&b| pcm::RateTarget::BitsPerWeight(b)),
                    },
                    ..*popts
                };
                let q = match &gram {
                    Some(g) => {
                        pcm::quantize_calibrated(&m, opts.orientation, &popts, g, &opts.feedback)
                    }
                    None => pcm::quantize(&m, opts.orientation, &popts),
                }
                .map_err(in_tensor(name))?;
                writer.write_pcm(name, &q)?;
                let weights = (m.layout(opts.orientation).vector_count() * d) as f64;
                quantized.push(PackedTensor {
                    name: name.to_owned(),
                    bias: bias.clone(),
                    n,
                    d: *d,
                    vectors: m.layout(opts.orientation).vector_count(),
                    max_delta: q.steps.iter().copied().fold(0.0f32, f32::max).into(),
                    max_bound: q.max_bound,
                    max_error: q.max_vector_error,
                    uncertified: 0,
                    sigma: 0.0,
                    ordering: None,
                    relative_error: q.relative_error(),
                    output_error: q.output_relative_error,
                    bits_per_weight: 8.0 * (q.section_bytes() + record) as f64 / weights,
                });
            }
            Choice::Quantize {
                rows,
                cols,
                d,
                n,
                bias,
            } => {
                let (w, b) = load(ck, &p.entry, bias.as_deref())?;
                let m = matrix(&w, b.as_deref(), *rows, *cols).map_err(in_tensor(name))?;
                let mut fq = FrameQuantizer::new(
                    opts.family.descriptor(*n, *d).map_err(in_tensor(name))?,
                    opts.levels,
                    policy,
                )
                .and_then(|fq| fq.with_scheme(opts.scheme))
                .map_err(in_tensor(name))?;
                let mut ordering = None;
                if opts.reorder {
                    // The ordering depends only on the frame: computed once per (family, N, d).
                    let key = fq.frame().descriptor();
                    let report = match orderings.get(&key) {
                        Some(r) => r,
                        None => {
                            let r = fq
                                .frame()
                                .order(&OrderingOptions::default())
                                .map_err(in_tensor(name))?;
                            orderings.entry(key).or_insert(r)
                        }
                    };
                    ordering = Some((report.sigma_identity, report.sigma));
                    fq = fq
                        .with_order(report.permutation.clone())
                        .map_err(in_tensor(name))?;
                }
                let q = fq.quantize(&m, opts.orientation).map_err(in_tensor(name))?;
                let errors = q.measured_errors(&m).map_err(in_tensor(name))?;
                let (mut e2, mut w2) = (0.0, 0.0);
                let mut v = vec![0.0f64; *d];
                for (j, e) in errors.iter().enumerate() {
                    m.load_vector(opts.orientation, j, &mut v)?;
                    e2 += e * e;
                    w2 += v.iter().map(|x| x * x).sum::<f64>();
                }
                // The record keeps the measured norms (`sdq info` shows their ratio and SNR).
                writer.write_quantized_measured(name, &q, tag, e2.sqrt(), w2.sqrt())?;
                let weights = (m.layout(opts.orientation).vector_count() * d) as f64;
                let code_bytes = crate::codes::bitpack::packed_len(
                    (*n as u64) * errors.len() as u64,
                    bits_for_levels(opts.levels),
                )
                .unwrap_or(0);
                quantized.push(PackedTensor {
                    name: name.to_owned(),
                    bias: bias.clone(),
                    n: *n,
                    d: *d,
                    vectors: errors.len(),
                    max_delta: q.deltas().max(),
                    max_bound: q.max_bound(),
                    max_error: errors.iter().copied().fold(0.0, f64::max),
                    uncertified: q.uncertified_count(),
                    sigma: q.sigma(),
                    ordering,
                    relative_error: pcm::relative(e2.sqrt(), w2.sqrt()),
                    output_error: None,
                    bits_per_weight: 8.0 * code_bytes as f64 / weights,
                });
            }
        }
        progress.advance_by(p.entry.elements);
    }
    progress.finish();
    writer.finish()?;
    Ok(PackSummary {
        plan,
        file_cap,
        quantized,
        uniform_delta: uniform,
        nonfinite_raw,
    })
}

/// The storage cost a rule gives, in code bits per original weight: N·⌈log2 2K⌉ / d.
pub fn code_bits_per_weight(n: usize, d: usize, levels: u32) -> f64 {
    n as f64 * f64::from(bits_for_levels(levels)) / d as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rules() {
        assert_eq!(FrameRule::BitsPerWeight(4.0).frame_size(200, 1), Some(800));
        assert_eq!(FrameRule::BitsPerWeight(4.0).frame_size(200, 2), Some(400));
        assert_eq!(FrameRule::BitsPerWeight(1.0).frame_size(10, 1), Some(10));
        assert_eq!(FrameRule::Redundancy(1.5).frame_size(11, 1), Some(17));
        assert_eq!(FrameRule::FrameSize(9).frame_size(100, 3), Some(9));
        assert_eq!(FrameRule::Redundancy(-1.0).frame_size(11, 1), None);
        assert_eq!(FrameRule::BitsPerWeight(f64::NAN).frame_size(11, 1), None);
        assert_eq!(FrameRule::BitsPerWeight(1e30).frame_size(11, 1), None);
    }
}
