//! `sdq info`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use sdq::bridge::info::{self, compression};
use sdq::format::{Encoding, TensorInfo, TensorReport};
use sdq::frame::FrameFamily;
use sdq::quant::Scheme;
use sdq::SdqFile;

use super::table::{bytes, savings, sci, Table};
use super::{escape, is_stdout, CliResult, Failure};

const EXAMPLES: &str = "\
Examples:
  sdq info model.sdq
  sdq info model.sdq --tensor fc1.weight
  sdq info model.sdq --totals                      # no per-tensor table
  sdq info model.sdq --json | jq '.totals.ratio_fp32'
  sdq info model.sdq --json -o info.json";

/// Show what an .sdq file stores: tensors, encodings, bits per weight, bounds, savings.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct InfoArgs {
    /// The .sdq file.
    input: PathBuf,

    /// Machine-readable JSON (schema in docs/cli.md, `schema_version` 1).
    #[arg(long)]
    json: bool,

    /// Show only this tensor (repeatable).
    #[arg(long, value_name = "NAME")]
    tensor: Vec<String>,

    /// Only the file line, the metadata and the totals: no per-tensor table (for checkpoints
    /// with thousands of tensors).
    #[arg(long, conflicts_with_all = ["json", "tensor"])]
    totals: bool,

    /// Write to this file instead of stdout (- is stdout; it may not be the input).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    output: PathBuf,
}

fn shape(s: &[u64]) -> String {
    let parts: Vec<String> = s.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

pub fn run(a: InfoArgs) -> CliResult {
    let input = &a.input;
    if !is_stdout(&a.output) {
        sdq::bridge::refuse_output_over_input(&a.output, [input.as_path()])
            .map_err(|e| Failure::lib(input, e))?;
    }
    let file = SdqFile::open(input).map_err(|e| Failure::lib(input, e))?;
    for n in &a.tensor {
        file.tensor(n).map_err(|e| Failure::lib(input, e))?;
    }
    let report = file.report();
    let selected: Vec<(&TensorInfo, Option<&TensorReport>)> = file
        .tensors()
        .iter()
        .enumerate()
        .filter(|(_, t)| a.tensor.is_empty() || a.tensor.contains(&t.name))
        .map(|(i, t)| (t, report.tensors.get(i)))
        .collect();
    let max_bound = info::max_bound(&file);
    let text = if a.json {
        let doc = info::info_json(&input.display().to_string(), &file, &a.tensor);
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    } else {
        human(&a, &file, &selected, &report, max_bound)
    };
    if is_stdout(&a.output) {
        super::out(&text);
    } else {
        let out = &a.output;
        let (atomic, mut f) =
            sdq::bridge::safetensors::AtomicFile::create(out).map_err(|e| Failure::lib(out, e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Failure::lib(out, sdq::Error::io(out, e)))?;
        atomic.commit(f).map_err(|e| Failure::lib(out, e))?;
    }
    Ok(())
}

fn human(
    a: &InfoArgs,
    file: &SdqFile,
    selected: &[(&TensorInfo, Option<&TensorReport>)],
    report: &sdq::StorageReport,
    max_bound: f64,
) -> String {
    let (major, minor) = file.version();
    let mut s = format!(
        "{}: .sdq format {major}.{minor}, {} tensors, {} ({} bytes)\n",
        escape(&a.input.display().to_string()),
        file.tensors().len(),
        bytes(file.file_len()),
        file.file_len()
    );
    if !file.metadata().is_empty() {
        let m: Vec<String> = file
            .metadata()
            .iter()
            .map(|(k, v)| {
                let v = if v.chars().count() > 60 {
                    format!("{}…", v.chars().take(60).collect::<String>())
                } else {
                    v.clone()
                };
                format!("{}={}", escape(k), escape(&v))
            })
            .collect();
        s.push_str(&format!("metadata: {}\n", m.join(", ")));
    }
    s.push('\n');
    if !a.totals {
        s.push_str(&table(file, selected));
        s.push('\n');
    }
    totals(&mut s, file, report, max_bound);
    s
}

/// One row per selected tensor.
fn table(file: &SdqFile, selected: &[(&TensorInfo, Option<&TensorReport>)]) -> String {
    let mut t = Table::new(&[
        ("name", false),
        ("shape", false),
        ("dtype", false),
        ("encoding", false),
        ("N", true),
        ("K", true),
        ("bits/code", true),
        ("delta", false),
        ("stored", true),
        ("bits/weight", true),
        ("bound", true),
        ("rel.err", true),
        ("SNR dB", true),
    ]);
    for (info, r) in selected {
        let stored = r.map_or("-".into(), |r| r.stored_bytes.to_string());
        let bpw = r.map_or("-".into(), |r| format!("{:.3}", r.bits_per_weight()));
        let mut row = vec![
            escape(&info.name),
            shape(&info.shape),
            info.dtype.name().to_string(),
        ];
        match &info.encoding {
            Encoding::SigmaDelta(q) => {
                // First order is plain "sigma-delta"; other schemes name their order.
                let mut enc = match q.scheme {
                    Scheme::FirstOrder => "sigma-delta".to_string(),
                    Scheme::SecondOrder => "sigma-delta-2".to_string(),
                };
                if q.frame.family() != FrameFamily::Harmonic {
                    enc.push_str("/tetris");
                }
                if compression(info) == "zstd" {
                    enc.push_str("+zstd");
                }
                row.extend([
                    enc,
                    q.n().to_string(),
                    q.k.to_string(),
                    q.bits.to_string(),
                    q.policy.name().to_string(),
                    stored,
                    bpw,
                    if q.uncertified > 0 {
                        format!("{} ({} uncert.)", sci(q.max_bound), q.uncertified)
                    } else {
                        sci(q.max_bound)
                    },
                    // Version-2 records hold the measured norms; version 1 did not.
                    q.relative_error().map_or("-".into(), |r| format!("{r:.4}")),
                    q.norms.map_or("-".into(), |(e, w)| {
                        format!("{:.1}", sdq::quant::pcm::snr_db(e, w))
                    }),
                ]);
            }
            Encoding::Pcm(q) => {
                let mut enc = format!("pcm/{}", q.frame.name());
                if q.sign_seed != 0 {
                    enc.push_str("+signs");
                }
                if q.record == sdq::quant::pcm::ErrorRecord::WeightAndOutput {
                    enc.push_str("+calibrated");
                }
                enc.push('+');
                enc.push_str(q.coding.name());
                if compression(info) == "zstd" {
                    enc.push_str("+zstd");
                }
                let group = if u64::from(q.group) >= q.n() {
                    "per vector".to_string()
                } else {
                    format!("per {}", q.group)
                };
                row.extend([
                    enc,
                    q.n().to_string(),
                    q.k.to_string(),
                    match q.coding {
                        sdq::codes::stream::Coding::Fixed => {
                            sdq::codes::stream::fixed_bits(q.k).max(1).to_string()
                        }
                        sdq::codes::stream::Coding::Rans => "entropy".into(),
                    },
                    group,
                    stored,
                    bpw,
                    if q.record == sdq::quant::pcm::ErrorRecord::APriori {
                        sci(q.max_bound)
                    } else {
                        format!("{} rec.", sci(q.max_bound))
                    },
                    format!("{:.4}", q.relative_error()),
                    format!(
                        "{:.1}",
                        sdq::quant::pcm::snr_db(q.error_norm, q.weight_norm)
                    ),
                ]);
            }
            Encoding::BiasOf { weight } => {
                let w = file
                    .tensors()
                    .get(*weight)
                    .map_or(String::new(), |w| escape(&w.name));
                row.extend([
                    format!("bias-of {w}"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    stored,
                    bpw,
                    "(weight's)".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            Encoding::Raw { .. } => {
                let enc = if compression(info) == "zstd" {
                    "raw+zstd"
                } else {
                    "raw"
                };
                row.extend([
                    enc.to_string(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    stored,
                    bpw,
                    "exact".into(),
                    "0".into(),
                    "inf".into(),
                ]);
            }
        }
        t.row(row);
    }
    t.render()
}

/// The totals lines.
fn totals(s: &mut String, file: &SdqFile, report: &sdq::StorageReport, max_bound: f64) {
    let q = file
        .tensors()
        .iter()
        .filter(|t| matches!(t.encoding, Encoding::SigmaDelta(_) | Encoding::Pcm(_)))
        .count();
    s.push_str(&format!(
        "total: {} weights in {} tensors ({q} quantized), {} stored ({} bytes, of which {} overhead)\n",
        report.total_elements,
        file.tensors().len(),
        bytes(report.total_bytes),
        report.total_bytes,
        report.overhead_bytes
    ));
    // Per float weight too when other tensors (integers, masks) share the file.
    let per_float = if report.float_elements != report.total_elements {
        format!(" ({:.3} per float weight)", report.float_bits_per_weight())
    } else {
        String::new()
    };
    s.push_str(&format!(
        "bits per weight: {:.3} overall{per_float}, {:.3} in quantized tensors\n",
        report.bits_per_weight(),
        report.quantized_bits_per_weight()
    ));
    s.push_str(&format!(
        "vs fp32: {} -> {}\n",
        bytes(report.total_fp32_bytes),
        savings(report.ratio_fp32())
    ));
    s.push_str(&format!(
        "vs fp16: {} -> {}\n",
        bytes(report.total_fp16_bytes),
        savings(report.ratio_fp16())
    ));
    if q > 0 {
        let recorded = file.tensors().iter().any(|t| {
            matches!(&t.encoding, Encoding::Pcm(p)
                if p.record != sdq::quant::pcm::ErrorRecord::APriori)
        });
        s.push_str(&format!(
            "{}: {}\n",
            if recorded {
                "largest vector error bound (certified, or recorded where marked rec.)"
            } else {
                "largest certified vector error bound"
            },
            sci(max_bound)
        ));
    }
}
