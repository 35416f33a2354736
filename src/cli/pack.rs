//! `sdq pack`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sdq::bridge::budget;
use sdq::bridge::pack::{
    self, calibrated_frame_for, Allocation, DeltaChoice, FrameRule, Method, PackOptions,
    TensorSetting,
};
use sdq::codes::stream::Coding;
use sdq::frame::FrameFamily;
use sdq::quant::gram::FeedbackOrder;
use sdq::quant::pcm::{
    FeedbackOptions, PcmOptions, RateTarget, Rounding, StepPolicy, StepRule, StepType,
};
use sdq::quant::Scheme;
use sdq::{Orientation, SdqFile};

use super::table::{bytes, savings, sci, shorten, Table};
use super::{escape, is_stdout, Bar, CliResult, Failure};

const EXAMPLES: &str = "\
Examples:
  sdq pack model.safetensors -o model.sdq                        # pcm, 5.0 bits per weight in all
  sdq pack model.safetensors -o model.sdq --bits-per-weight 6
  sdq pack model.safetensors -o model.sdq --max-error 0.01       # fewest bits for 1% error per tensor
  sdq pack model.safetensors -o model.sdq --frame-family harmonic --sign-seed 1
  sdq pack model.safetensors.index.json -o model.sdq --exclude '*embed*' --bias
  sdq pack model.safetensors -o model.sdq --tensor-type '*embed*=q8' --tensor-type '*norm*=raw' -v
  sdq pack model.safetensors -o model.sdq --scheme first-order --code-bits 2 --bits-per-weight 4
  sdq pack model.safetensors -o model.sdq --scheme first-order --axis columns --frame-size 4000 --delta uniform   # the paper's setting
  sdq pack model.safetensors -o model.sdq --scheme first-order -K 2 --redundancy 3
  sdq pack model.safetensors -o model.sdq --scheme second-order -K 2 --bits-per-weight 4
  sdq pack model.safetensors -o model.sdq --scheme first-order --frame-family spectral-tetris --reorder

pcm (the default): each vector (a row of W[out, in], by default) is rounded, in its frame if
one is given, to steps of one f16 step per vector (or per --group G coefficients); the codes are
entropy-coded (rANS). --bits-per-weight B is the stored size: codes, steps and headers of each
quantized tensor are at most B bits per weight, with the smallest error that fits (the step is
found by bisection). Every vector has a certified bound sqrt(d/N)*(sum of step^2)^(1/2)/2.

Sigma-delta (--scheme first-order or second-order, the paper's): the frame size is one of
--frame-size N, --redundancy R (N = ceil(R*d)) or --bits-per-weight B, which then means CODE
bits (N = floor(B*d / ceil(log2 2K)), default 4). N must exceed every quantized tensor's vector
dimension d (be at least 2d for spectral-tetris frames).";

/// The vectors that are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Axis {
    /// The columns of W[out, in] (d = out), as in the paper.
    Columns,
    /// The rows of W[out, in] (d = in).
    Rows,
}

/// The quantization scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// Rounding of each coefficient (no feedback), entropy-coded, rate-controlled.
    Pcm,
    /// First-order sigma-delta (certified for every K).
    FirstOrder,
    /// Second-order sigma-delta (certified for K >= 2; error falls faster with N).
    SecondOrder,
}

/// The frame family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    /// No frame: the weights themselves are rounded (pcm only; N = d).
    Identity,
    /// Harmonic frames (one FFT per vector).
    Harmonic,
    /// Spectral tetris frames (at most two non-zeros per frame vector).
    SpectralTetris,
}

/// How pcm steps follow the coefficients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StepRuleArg {
    /// Each group's step is proportional to its coefficients' rms.
    Group,
    /// One step for the whole tensor (least squared error for the bits).
    Tensor,
}

/// How pcm coefficients become codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoundingArg {
    /// Each code the nearest level.
    Nearest,
    /// Nearest levels, then the fewest codes moved by one level so that each convolution
    /// kernel window's rounding errors (kh·kw of a [out, in, kh, kw] weight) and then each
    /// vector's sum to within half a step of zero (no frame, certified steps).
    ZeroSum,
    /// As zero-sum, each vector's errors only (the default before kernel windows).
    ZeroSumRows,
}

/// How pcm steps are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StepPolicyArg {
    /// Nothing clipped: every vector certified a priori from its steps.
    Certified,
    /// Least squared error with codes clipped to a fixed width (needs --coding fixed); vectors
    /// record measured errors.
    LeastSquares,
}

/// How pcm steps are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StepTypeArg {
    /// IEEE half precision (f32 is used for a tensor whose steps f16 cannot hold).
    F16,
    /// IEEE single precision.
    F32,
}

/// How pcm codes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodingArg {
    /// Entropy-coded (static rANS per tensor).
    Rans,
    /// Fixed width, ceil(log2(2K + 1)) bits per code.
    Fixed,
}

/// Quantize a safetensors checkpoint into an .sdq file.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct PackArgs {
    /// Input: a .safetensors file, a sharded checkpoint's *.safetensors.index.json, or a
    /// directory holding one of them.
    input: PathBuf,

    /// Output .sdq file (written atomically; it may not be the input, nor a shard or index of
    /// a sharded input).
    #[arg(short, long, value_name = "OUT.sdq")]
    output: PathBuf,

    /// Frame size N for every quantized tensor (with a frame family).
    #[arg(long, value_name = "N")]
    frame_size: Option<usize>,

    /// Sigma-delta: redundancy r, N = ceil(r*d) for each tensor.
    #[arg(long, value_name = "R")]
    redundancy: Option<f64>,

    /// pcm: stored bits per weight of each quantized tensor (codes, steps, headers) [default:
    /// 5.0, lowered so that the whole file is at 5.0 bits per float weight]. Sigma-delta: CODE
    /// bits per weight, N = floor(B*d / ceil(log2 2K)) [default: 4].
    #[arg(long, value_name = "B")]
    bits_per_weight: Option<f64>,

    /// pcm with a bit budget: the whole file at most F bits per float weight (raw tensors,
    /// records and header counted; biases and norms count as weights): the quantized tensors'
    /// budget is lowered (never raised) to fit, when 3 bits or more fit [default: 5.0 when neither
    /// --bits-per-weight nor --max-error is given; else none].
    #[arg(long, value_name = "F", conflicts_with = "max_error")]
    file_bits_per_weight: Option<f64>,

    /// pcm: instead of a bit budget, the fewest bits with relative error ||W - W~||/||W|| at
    /// most E in every quantized tensor.
    #[arg(long, value_name = "E", conflicts_with = "bits_per_weight")]
    max_error: Option<f64>,

    /// pcm: a calibration file (safetensors: for each weight W[out, in] it covers, the mean of
    /// x xᵀ over the layer's calibration inputs x, named like the weight, [in, in] or [in]; see
    /// docs/calibration.md). Covered tensors are quantized with error feedback through it, so
    /// the error the layer's inputs see is least; the file records each vector's measured error.
    #[arg(long, value_name = "GRAM.safetensors")]
    calibration: Option<PathBuf>,

    /// With --calibration: λ, the damping added to the Gram matrix's diagonal (λ times its mean).
    #[arg(
        long,
        value_name = "LAMBDA",
        default_value_t = 0.1,
        requires = "calibration"
    )]
    damping: f64,

    /// With --calibration: the order in which each row's weights are rounded.
    #[arg(long, value_enum, default_value_t = FeedbackOrderArg::DecreasingDiagonal, requires = "calibration")]
    feedback_order: FeedbackOrderArg,

    /// pcm: flip the signs of each vector's entries by a ±1 pattern drawn from SEED before the
    /// frame (0 = no flips).
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    sign_seed: u64,

    /// pcm: coefficients per step (default: one step per vector).
    #[arg(long, value_name = "G")]
    group: Option<usize>,

    /// pcm: how steps follow the coefficients.
    #[arg(long, value_enum, default_value_t = StepRuleArg::Group)]
    step_rule: StepRuleArg,

    /// pcm: certified steps (nothing clipped, every vector bounded a priori) or least-squares
    /// steps (needs --coding fixed: each group's step chosen for the least squared error with
    /// the codes clipped to the width the budget allows; vectors record measured errors).
    #[arg(long, value_enum, default_value_t = StepPolicyArg::Certified)]
    step_policy: StepPolicyArg,

    /// pcm: how steps are stored.
    #[arg(long, value_enum, default_value_t = StepTypeArg::F16)]
    step_type: StepTypeArg,

    /// pcm: how coefficients become codes [default: zero-sum without a frame, nearest with one
    /// or with least-squares steps]. zero-sum moves a few codes by one level so that each
    /// convolution kernel window's and each vector's rounding errors sum to about zero (no
    /// offset on outputs whose inputs have one); zero-sum-rows, each vector's only.
    #[arg(long, value_enum)]
    rounding: Option<RoundingArg>,

    /// pcm: give every tensor the same --bits-per-weight, instead of spreading the model's bits
    /// so that the sum of the tensors' relative squared errors is least.
    #[arg(long)]
    same_bits: bool,

    /// pcm: how codes are stored.
    #[arg(long, value_enum, default_value_t = CodingArg::Rans)]
    coding: CodingArg,

    /// Sigma-delta: K, the alphabet has 2K levels, so codes take ceil(log2 2K) bits (-K 8 is
    /// 4-bit codes).
    #[arg(short = 'K', long, value_name = "K", default_value_t = 1)]
    levels: u32,

    /// Sigma-delta: b bits per code, the same as -K 2^(b-1) (--code-bits 4 is -K 8: 16 levels).
    #[arg(long, value_name = "b", conflicts_with = "levels", value_parser = clap::value_parser!(u32).range(1..=16))]
    code_bits: Option<u32>,

    /// Scheme: pcm (rounding, entropy-coded, rate-controlled; the default), first-order
    /// sigma-delta (the paper's) or second-order (needs -K 2 or more; with a harmonic frame N is
    /// made even).
    #[arg(long, value_enum, default_value_t = SchemeArg::Pcm)]
    scheme: SchemeArg,

    /// Frame family: identity (no frame; pcm's default), harmonic (the paper's; N > d;
    /// sigma-delta's default) or spectral-tetris (sparse, N >= 2d, decoded in O(N) without an
    /// FFT).
    #[arg(long, value_enum)]
    frame_family: Option<FamilyArg>,

    /// Run sigma-delta along an ordering of the frame vectors computed to make the frame
    /// variation small (greedy nearest neighbour + 2-opt; stored in the file), instead of the
    /// natural order. Prints sigma for both.
    #[arg(long)]
    reorder: bool,

    /// Step size: tensor, vector, coefficient (per vector from the largest frame coefficient),
    /// uniform (one delta for every quantized tensor, the paper's rule), or a positive number.
    #[arg(long, value_name = "POLICY", default_value = "coefficient", value_parser = parse_delta, allow_hyphen_values = true)]
    delta: DeltaChoice,

    /// Which vectors of W[out, in] are quantized (rows: one vector per output channel).
    #[arg(long, value_enum, default_value_t = Axis::Rows)]
    axis: Axis,

    /// Quantize each X.bias together with X.weight, as one more column [W | b].
    #[arg(long)]
    bias: bool,

    /// Quantize only tensors whose name matches GLOB (`*` and `?`; repeatable). Overrides
    /// --min-dim; the tensor must still be a float tensor of rank >= 2.
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,

    /// Store tensors whose name matches GLOB raw (repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,

    /// Per-tensor setting for tensors matching GLOB (repeatable; the FIRST matching pattern
    /// wins): raw, a number B of bits per weight (pcm: exactly B stored bits, outside the
    /// model-wide allocation; sigma-delta: B code bits), or q4, q6, q8 (4.5, 6, 8 bits).
    #[arg(long, value_name = "GLOB=SETTING", value_parser = parse_tensor_type)]
    tensor_type: Vec<(String, TensorSetting)>,

    /// Smallest vector dimension d quantized when no --include is given [default: 9 with pcm
    /// (a 3×3 kernel window), 16 with sigma-delta]
    #[arg(long, value_name = "D")]
    min_dim: Option<usize>,

    /// Compress every section with zstd (level 9, or --zstd-level).
    #[arg(long)]
    zstd: bool,

    /// A tensor to quantize holding a NaN or an infinity: refuse the model (exit 3), or store
    /// that tensor raw (unquantized, bit for bit), one line per tensor on stderr.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = NonFiniteArg::Refuse)]
    nonfinite: NonFiniteArg,

    /// Print the per-tensor table too (it is printed anyway when stdout is a terminal).
    #[arg(short, long)]
    verbose: bool,

    /// zstd level (1-22); implies --zstd.
    #[arg(long, value_name = "LEVEL", value_parser = clap::value_parser!(i32).range(1..=22))]
    zstd_level: Option<i32>,
}

/// `--feedback-order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FeedbackOrderArg {
    /// First input first.
    Natural,
    /// The inputs with the largest mean square first (GPTQ's act order).
    DecreasingDiagonal,
}

/// What to do with non-finite weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NonFiniteArg {
    /// Refuse the whole model.
    Refuse,
    /// Store such tensors raw.
    Raw,
}

fn parse_tensor_type(s: &str) -> Result<(String, TensorSetting), String> {
    let (glob, setting) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?} is not GLOB=SETTING (e.g. '*embed*=8')"))?;
    if glob.is_empty() {
        return Err(format!("{s:?} has an empty GLOB"));
    }
    Ok((glob.to_owned(), TensorSetting::parse(setting)?))
}

fn parse_delta(s: &str) -> Result<DeltaChoice, String> {
    Ok(match s {
        "tensor" => DeltaChoice::Tensor,
        "vector" => DeltaChoice::Vector,
        "coefficient" => DeltaChoice::Coefficient,
        "uniform" => DeltaChoice::Uniform,
        v => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => DeltaChoice::Value(x),
            _ => {
                return Err(format!(
                    "{v:?} is not tensor, vector, coefficient, uniform or a positive number"
                ))
            }
        },
    })
}

pub fn run(a: PackArgs, quiet: bool) -> CliResult {
    if is_stdout(&a.output) {
        return Err(Failure::usage(
            "pack cannot write to stdout (-o -): an .sdq file is written to a named file",
        ));
    }
    let pcm = a.scheme == SchemeArg::Pcm;
    let family =
        match a.frame_family {
            Some(FamilyArg::Identity) if !pcm => return Err(Failure::usage(
                "--frame-family identity is for --scheme pcm: sigma-delta needs a frame with N > d",
            )),
            Some(FamilyArg::Identity) => None,
            Some(FamilyArg::Harmonic) => Some(FrameFamily::Harmonic),
            Some(FamilyArg::SpectralTetris) => Some(FrameFamily::SpectralTetris),
            None if pcm => None,
            None => Some(FrameFamily::Harmonic),
        };
    let method = if pcm {
        if a.code_bits.is_some() {
            return Err(Failure::usage(
                "--code-bits is for sigma-delta (pcm codes are entropy-coded: give --bits-per-weight)",
            ));
        }
        if a.redundancy.is_some() {
            return Err(Failure::usage(
                "--redundancy is for sigma-delta; with pcm give --frame-size N with a frame family",
            ));
        }
        if a.frame_size.is_some() && family.is_none() {
            return Err(Failure::usage(
                "--frame-size needs --frame-family harmonic or spectral-tetris with pcm (without a frame N = d)",
            ));
        }
        let target = match (a.max_error, a.bits_per_weight) {
            (Some(e), _) if !(e.is_finite() && e > 0.0) => {
                return Err(Failure::usage(format!(
                    "--max-error {e}: must be a positive number"
                )))
            }
            (Some(e), _) => RateTarget::RelativeError(e),
            (None, Some(b)) if !(b.is_finite() && b > 0.0 && b <= 32.0) => {
                return Err(Failure::usage(format!(
                    "--bits-per-weight {b}: must be a number above 0 and at most 32 (fp32's own size)"
                )))
            }
            (None, Some(b)) => RateTarget::BitsPerWeight(b),
            (None, None) => PcmOptions::default().target,
        };
        if let Some(f) = a.file_bits_per_weight {
            if !(f.is_finite() && f > 0.0) {
                return Err(Failure::usage(format!(
                    "--file-bits-per-weight {f}: must be a positive number"
                )));
            }
        }
        if a.step_policy == StepPolicyArg::LeastSquares && a.coding != CodingArg::Fixed {
            return Err(Failure::usage(
                "--step-policy least-squares needs --coding fixed (entropy-coded codes have no alphabet limit, so nothing is clipped)",
            ));
        }
        if a.group == Some(0) {
            return Err(Failure::usage("--group must be at least 1"));
        }
        if let Some(r @ (RoundingArg::ZeroSum | RoundingArg::ZeroSumRows)) = a.rounding {
            let name = if r == RoundingArg::ZeroSum {
                "zero-sum"
            } else {
                "zero-sum-rows"
            };
            if family.is_some() {
                return Err(Failure::usage(format!(
                    "--rounding {name} is for pcm without a frame (there a code is a weight): drop --frame-family, or use --rounding nearest"
                )));
            }
            if a.step_policy == StepPolicyArg::LeastSquares {
                return Err(Failure::usage(format!(
                    "--rounding {name} is for certified steps: least-squares steps clip, and their codes are chosen for the least squared error"
                )));
            }
        }
        if a.levels != 1 || a.reorder || a.delta != DeltaChoice::Coefficient {
            return Err(Failure::usage(
                "-K/--levels, --reorder and --delta are sigma-delta options: add --scheme first-order (or second-order), or drop them (pcm's codes have no fixed alphabet and its steps are set by --bits-per-weight or --max-error)",
            ));
        }
        Method::Pcm(PcmOptions {
            family,
            frame_size: a.frame_size,
            sign_seed: a.sign_seed,
            group: a.group.unwrap_or(0),
            policy: match a.step_policy {
                StepPolicyArg::Certified => StepPolicy::Certified,
                StepPolicyArg::LeastSquares => StepPolicy::LeastSquares,
            },
            rule: match a.step_rule {
                StepRuleArg::Group => StepRule::Group,
                StepRuleArg::Tensor => StepRule::Tensor,
            },
            step_type: match a.step_type {
                StepTypeArg::F16 => StepType::F16,
                StepTypeArg::F32 => StepType::F32,
            },
            coding: match a.coding {
                CodingArg::Rans => Coding::Rans,
                CodingArg::Fixed => Coding::Fixed,
            },
            target,
            record_bytes: 0,
            rounding: match a.rounding {
                Some(RoundingArg::Nearest) => Rounding::Nearest,
                Some(RoundingArg::ZeroSumRows) => Rounding::ZeroSumRows,
                Some(RoundingArg::ZeroSum) | None => Rounding::ZeroSum,
            },
            window: 0,
        })
    } else {
        if a.rounding.is_some() {
            return Err(Failure::usage(
                "--rounding is for --scheme pcm (sigma-delta's codes follow its own feedback)",
            ));
        }
        if a.max_error.is_some() {
            return Err(Failure::usage("--max-error is for --scheme pcm"));
        }
        if a.file_bits_per_weight.is_some() {
            return Err(Failure::usage("--file-bits-per-weight is for --scheme pcm"));
        }
        Method::SigmaDelta
    };
    let frame_options = [
        a.frame_size.is_some(),
        a.redundancy.is_some(),
        a.bits_per_weight.is_some(),
    ];
    if !pcm && frame_options.iter().filter(|&&x| x).count() > 1 {
        return Err(Failure::usage(
            "give one of --frame-size, --redundancy and --bits-per-weight with sigma-delta",
        ));
    }
    let frame = match (a.frame_size, a.redundancy, a.bits_per_weight) {
        (Some(n), _, _) => FrameRule::FrameSize(n),
        (_, Some(r), _) => FrameRule::Redundancy(r),
        (_, _, Some(b)) => FrameRule::BitsPerWeight(b),
        _ => FrameRule::BitsPerWeight(4.0),
    };
    match frame {
        FrameRule::Redundancy(r) if !(r.is_finite() && r > 1.0) => {
            return Err(Failure::usage(format!(
                "--redundancy {r}: the redundancy must be a number above 1 (N > d)"
            )))
        }
        FrameRule::BitsPerWeight(b) if !(b.is_finite() && b > 0.0) => {
            return Err(Failure::usage(format!(
                "--bits-per-weight {b}: must be a positive number"
            )))
        }
        _ => {}
    }
    let opts = PackOptions {
        method,
        frame,
        levels: a.code_bits.map_or(a.levels, |b| 1 << (b - 1)),
        scheme: match a.scheme {
            SchemeArg::SecondOrder => Scheme::SecondOrder,
            _ => Scheme::FirstOrder,
        },
        family: family.unwrap_or(FrameFamily::Harmonic),
        reorder: a.reorder,
        delta: a.delta,
        orientation: match a.axis {
            Axis::Columns => Orientation::Columns,
            Axis::Rows => Orientation::Rows,
        },
        bias: a.bias,
        include: a.include,
        exclude: a.exclude,
        min_dim: a.min_dim,
        zstd: a.zstd_level.or(a.zstd.then_some(9)),
        allocation: if a.same_bits {
            Allocation::PerTensor
        } else {
            Allocation::Model
        },
        tensor_types: a.tensor_type,
        force_quantize: false,
        calibration: a.calibration,
        // Without --frame-family, calibrated tensors take the harmonic frame (sign seed 1 unless
        // --sign-seed gives one); with it, every tensor takes the frame asked for.
        // The default budget comes with the default cap on the whole file.
        file_bits: budget::file_bits_for(
            a.file_bits_per_weight,
            pcm,
            a.bits_per_weight.is_some() || a.max_error.is_some(),
        ),
        calibrated_frame: calibrated_frame_for(a.frame_family.is_some(), a.sign_seed),
        feedback: FeedbackOptions {
            damping: a.damping,
            order: match a.feedback_order {
                FeedbackOrderArg::Natural => FeedbackOrder::Natural,
                FeedbackOrderArg::DecreasingDiagonal => FeedbackOrder::DecreasingDiagonal,
            },
        },
    };
    if !(opts.feedback.damping.is_finite() && opts.feedback.damping > 0.0) {
        return Err(Failure::usage(format!(
            "--damping {}: must be a positive number",
            opts.feedback.damping
        )));
    }
    let input = &a.input;
    let started = std::time::Instant::now();
    let ck = super::open_checkpoint(input, &a.output)?;
    let mut bar = Bar::new(quiet);
    let nonfinite = match a.nonfinite {
        NonFiniteArg::Refuse => pack::NonFinite::Refuse,
        NonFiniteArg::Raw => pack::NonFinite::Raw,
    };
    let summary =
        pack::pack_nonfinite(&ck, &a.output, &opts, nonfinite, &mut bar).map_err(|e| {
            Failure::lib(
                input,
                match e {
                    sdq::Error::Data(m) if m.contains("non-finite") => sdq::Error::Data(format!(
                        "{m} (--nonfinite raw stores such tensors unquantized)"
                    )),
                    e => e,
                },
            )
        })?;
    for (name, why) in &summary.nonfinite_raw {
        eprintln!(
            "{}",
            escape(&format!(
                "sdq: warning: tensor {name:?} holds a non-finite weight ({why}): stored raw"
            ))
        );
    }
    for p in &summary.plan.unmatched_includes {
        eprintln!(
            "{}",
            escape(&format!("sdq: warning: --include {p:?} matched no tensor"))
        );
    }
    for w in &summary.plan.warnings {
        eprintln!("{}", escape(&format!("sdq: warning: {w}")));
    }
    let file = SdqFile::open(&a.output).map_err(|e| Failure::lib(&a.output, e))?;
    let elapsed = started.elapsed().as_secs_f64();
    let report = file.report();
    if a.verbose || std::io::stdout().is_terminal() {
        crate::outln!("{}", table(&report));
    }
    let q = summary.quantized.len();
    let biases = summary
        .quantized
        .iter()
        .filter(|t| t.bias.is_some())
        .count();
    let raw = summary.plan.tensors.len() - q - biases;
    let with_bias = if biases > 0 {
        format!(", {biases} biases quantized with their weight")
    } else {
        String::new()
    };
    crate::outln!(
        "packed {} tensors ({q} quantized{with_bias}, {raw} raw) into {} ({}) in {elapsed:.1} s: vs fp32 {}, vs fp16 {}, {:.3} bits per weight",
        summary.plan.tensors.len(),
        escape(&a.output.display().to_string()),
        bytes(report.total_bytes),
        savings(report.ratio_fp32()),
        savings(report.ratio_fp16()),
        report.bits_per_weight()
    );
    if let Some(c) = summary.file_cap {
        match c.over_cap() {
            // Asked for: a warning. The default cap: a note (nothing quantized: said above).
            Some(m) if q > 0 && a.file_bits_per_weight.is_some() => {
                eprintln!("sdq: warning: {m}")
            }
            Some(m) if q > 0 => crate::outln!("note: {m} (the default cap)"),
            _ => {}
        }
        if let (true, Some(y)) = (c.reached, c.small_ceiling) {
            crate::outln!(
                "whole-file cap {} bits per float weight: the quantized tensors get {:.3} bits per weight instead of {}, and the small tensors at most {:.3} instead of their extra bits, which would keep the file over the cap ({} take {:.3})",
                c.cap, c.budget, c.requested, y, c.breakdown(), c.fixed
            );
        } else if c.reached && c.budget < c.requested {
            crate::outln!(
                "whole-file cap {} bits per float weight: the quantized tensors get {:.3} bits per weight instead of {} ({} take {:.3})",
                c.cap, c.budget, c.requested, c.breakdown(), c.fixed
            );
        }
    }
    for t in &summary.quantized {
        if let Some((identity, ordered)) = t.ordering {
            crate::outln!(
                "{}: frame variation sigma {} in the natural order, {} in the computed order",
                escape(&format!("{:?}", t.name)),
                sci(identity),
                sci(ordered)
            );
        }
    }
    if let Some(d) = summary.uniform_delta {
        crate::outln!("uniform step size delta = {d:.6e}");
    }
    if q > 0 {
        let worst_rel = summary
            .quantized
            .iter()
            .max_by(|x, y| x.relative_error.total_cmp(&y.relative_error));
        if let Some(w) = worst_rel {
            let mean = summary
                .quantized
                .iter()
                .map(|t| t.relative_error)
                .sum::<f64>()
                / q as f64;
            crate::outln!(
                "relative error ||W - W~||/||W||: mean {:.4} over {q} tensors, largest {:.4} ({}, {:.1} dB SNR)",
                mean,
                w.relative_error,
                escape(&format!("{:?}", w.name)),
                -20.0 * w.relative_error.log10()
            );
        }
        // Tensors on a grid (masks, one-hot tables) take lattice steps and come back exactly.
        let exact: Vec<String> = summary
            .quantized
            .iter()
            .filter(|t| t.relative_error == 0.0)
            .map(|t| format!("{:?}", t.name))
            .collect();
        if !exact.is_empty() {
            let more = if exact.len() > 3 { ", …" } else { "" };
            crate::outln!(
                "{} rebuilt exactly (values on a grid): {}{more}",
                if exact.len() == 1 {
                    "1 quantized tensor is".to_owned()
                } else {
                    format!("{} quantized tensors are", exact.len())
                },
                escape(&exact[..exact.len().min(3)].join(", "))
            );
        }
        for t in &summary.quantized {
            if t.relative_error >= 0.5 {
                eprintln!(
                    "{}",
                    escape(&format!(
                        "sdq: warning: tensor {:?} comes back with relative error {:.3}: it is destroyed (verify fails above 0.5); raise the bits or use another step",
                        t.name, t.relative_error
                    ))
                );
            }
            if t.uncertified > 0 {
                eprintln!(
                    "{}",
                    escape(&format!(
                        "sdq: warning: tensor {:?}: {} of {} vectors are not certified (their coefficients overload the alphabet)",
                        t.name, t.uncertified, t.vectors
                    ))
                );
            }
        }
        let calibrated: Vec<(&str, f64)> = summary
            .quantized
            .iter()
            .filter_map(|t| t.output_error.map(|e| (t.name.as_str(), e)))
            .collect();
        if let Some((name, e)) = calibrated
            .iter()
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .copied()
        {
            let mean = calibrated.iter().map(|x| x.1).sum::<f64>() / calibrated.len() as f64;
            crate::outln!(
                "calibrated {} tensors: relative output error on the calibration inputs mean {mean:.4}, largest {e:.4} ({}); their vectors record measured errors",
                calibrated.len(),
                escape(&format!("{name:?}"))
            );
        }
        let worst = summary
            .quantized
            .iter()
            .filter(|t| t.output_error.is_none())
            .max_by(|x, y| x.max_bound.total_cmp(&y.max_bound));
        crate::outln!(
            "largest certified bound {} ({}), largest measured error {}, uncertified vectors {}",
            sci(summary.max_bound()),
            worst.map_or(String::new(), |w| escape(&format!("{:?}", w.name))),
            sci(summary.max_error()),
            summary.uncertified()
        );
    }
    Ok(())
}

/// Longest tensor name shown in full in the table (longer ones lose their middle).
const NAME_WIDTH: usize = 48;

/// The per-tensor table of the packed file (`-v`), aligned like `sdq info`'s.
fn table(report: &sdq::StorageReport) -> String {
    let mut t = Table::new(&[
        ("tensor", false),
        ("encoding", false),
        ("dtype", false),
        ("elements", true),
        ("stored bytes", true),
        ("vs fp32", true),
        ("vs fp16", true),
        ("bits/w", true),
    ]);
    let ratio = |x: f64| {
        if x.is_finite() {
            format!("{x:.2}x")
        } else {
            "n/a".into()
        }
    };
    for r in &report.tensors {
        t.row(vec![
            shorten(&escape(&r.name), NAME_WIDTH),
            r.encoding.into(),
            r.dtype.into(),
            r.elements.to_string(),
            r.stored_bytes.to_string(),
            ratio(r.ratio_fp32()),
            ratio(r.ratio_fp16()),
            format!("{:.3}", r.bits_per_weight()),
        ]);
    }
    t.row(vec![
        "overhead (preamble, metadata, padding)".into(),
        String::new(),
        String::new(),
        String::new(),
        report.overhead_bytes.to_string(),
    ]);
    t.row(vec![
        "total".into(),
        String::new(),
        String::new(),
        report.total_elements.to_string(),
        report.total_bytes.to_string(),
        ratio(report.ratio_fp32()),
        ratio(report.ratio_fp16()),
        format!("{:.3}", report.bits_per_weight()),
    ]);
    t.render()
}
