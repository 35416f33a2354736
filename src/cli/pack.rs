//! `sdq pack`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sdq::bridge::pack::{self, DeltaChoice, FrameRule, PackOptions};
use sdq::frame::FrameFamily;
use sdq::quant::Scheme;
use sdq::{Orientation, SdqFile};

use super::table::{bytes, savings, sci};
use super::{escape, is_stdout, Bar, CliResult, Failure};

const EXAMPLES: &str = "\
Examples:
  sdq pack model.safetensors -o model.sdq
  sdq pack model.safetensors -o model.sdq --bits-per-weight 2 --zstd
  sdq pack model.safetensors -o model.sdq --frame-size 4000 --delta uniform   # the paper's setting
  sdq pack model.safetensors.index.json -o model.sdq --exclude '*embed*' --bias
  sdq pack model.safetensors -o model.sdq --levels 2 --redundancy 3 --axis rows
  sdq pack model.safetensors -o model.sdq --scheme second-order -K 2 --bits-per-weight 4
  sdq pack model.safetensors -o model.sdq --frame-family spectral-tetris --reorder

Frame size: one of --frame-size N, --redundancy R (N = ceil(R*d)) or --bits-per-weight B
(N = floor(B*d / ceil(log2 2K))); the default is --bits-per-weight 4, 8x fewer code bits than
fp32. N must exceed every quantized tensor's vector dimension d (be at least 2d for
spectral-tetris frames).";

/// The vectors that are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Axis {
    /// The columns of W[out, in] (d = out), as in the paper.
    Columns,
    /// The rows of W[out, in] (d = in).
    Rows,
}

/// The sigma-delta scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// First-order sigma-delta (certified for every K).
    FirstOrder,
    /// Second-order sigma-delta (certified for K >= 2; error falls faster with N).
    SecondOrder,
}

/// The frame family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FamilyArg {
    /// Harmonic frames (one FFT per vector).
    Harmonic,
    /// Spectral tetris frames (at most two non-zeros per frame vector).
    SpectralTetris,
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

    /// Frame size N for every quantized tensor.
    #[arg(long, value_name = "N", group = "frame")]
    frame_size: Option<usize>,

    /// Redundancy r: N = ceil(r*d) for each tensor.
    #[arg(long, value_name = "R", group = "frame")]
    redundancy: Option<f64>,

    /// Code bits per original weight B: N = floor(B*d / ceil(log2 2K)) [default: 4].
    #[arg(long, value_name = "B", group = "frame")]
    bits_per_weight: Option<f64>,

    /// K: the alphabet has 2K levels, codes take ceil(log2 2K) bits.
    #[arg(short = 'K', long, value_name = "K", default_value_t = 1)]
    levels: u32,

    /// Sigma-delta scheme: first-order (the paper's) or second-order (needs -K 2 or more; with
    /// a harmonic frame N is made even).
    #[arg(long, value_enum, default_value_t = SchemeArg::FirstOrder)]
    scheme: SchemeArg,

    /// Frame family: harmonic (the paper's; N > d) or spectral-tetris (sparse, N >= 2d, decoded
    /// in O(N) without an FFT).
    #[arg(long, value_enum, default_value_t = FamilyArg::Harmonic)]
    frame_family: FamilyArg,

    /// Run sigma-delta along an ordering of the frame vectors computed to make the frame
    /// variation small (greedy nearest neighbour + 2-opt; stored in the file), instead of the
    /// natural order. Prints sigma for both.
    #[arg(long)]
    reorder: bool,

    /// Step size: tensor, vector, coefficient (per vector from the largest frame coefficient),
    /// uniform (one delta for every quantized tensor, the paper's rule), or a positive number.
    #[arg(long, value_name = "POLICY", default_value = "coefficient", value_parser = parse_delta, allow_hyphen_values = true)]
    delta: DeltaChoice,

    /// Which vectors of W[out, in] are quantized.
    #[arg(long, value_enum, default_value_t = Axis::Columns)]
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

    /// Smallest vector dimension d quantized when no --include is given.
    #[arg(long, value_name = "D", default_value_t = 16)]
    min_dim: usize,

    /// Compress every section with zstd (level 9, or --zstd-level).
    #[arg(long)]
    zstd: bool,

    /// A tensor to quantize holding a NaN or an infinity: refuse the model (exit 3), or store
    /// that tensor raw (unquantized, bit for bit), one line per tensor on stderr.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = NonFiniteArg::Refuse)]
    nonfinite: NonFiniteArg,

    /// zstd level (1-22); implies --zstd.
    #[arg(long, value_name = "LEVEL", value_parser = clap::value_parser!(i32).range(1..=22))]
    zstd_level: Option<i32>,
}

/// What to do with non-finite weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NonFiniteArg {
    /// Refuse the whole model.
    Refuse,
    /// Store such tensors raw.
    Raw,
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
        frame,
        levels: a.levels,
        scheme: match a.scheme {
            SchemeArg::FirstOrder => Scheme::FirstOrder,
            SchemeArg::SecondOrder => Scheme::SecondOrder,
        },
        family: match a.frame_family {
            FamilyArg::Harmonic => FrameFamily::Harmonic,
            FamilyArg::SpectralTetris => FrameFamily::SpectralTetris,
        },
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
    };
    let input = &a.input;
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
    let file = SdqFile::open(&a.output).map_err(|e| Failure::lib(&a.output, e))?;
    let report = file.report();
    for line in report.to_string().lines() {
        crate::outln!("{}", escape(line));
    }
    crate::outln!();
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
        "packed {} tensors ({q} quantized{with_bias}, {raw} raw) into {} ({}): vs fp32 {}, vs fp16 {}, {:.3} bits per weight",
        summary.plan.tensors.len(),
        escape(&a.output.display().to_string()),
        bytes(report.total_bytes),
        savings(report.ratio_fp32()),
        savings(report.ratio_fp16()),
        report.bits_per_weight()
    );
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
        let worst = summary
            .quantized
            .iter()
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
