//! `sdq verify`.

use std::path::PathBuf;

use clap::Args;
use sdq::bridge::calibration::Calibration;
use sdq::bridge::safetensors::Checkpoint;
use sdq::bridge::verify;
use sdq::SdqFile;

use super::table::{sci, Table};
use super::{escape, Bar, CliResult, Failure};

const EXAMPLES: &str = "\
Examples:
  sdq verify model.sdq
  sdq verify model.sdq --against model.safetensors
  sdq verify model.sdq --against model.safetensors --calibration gram.safetensors

Without --against: every section's CRC-32, lengths, codes, step sizes and permutation.
With it: also, for every quantized vector, the measured error against its certified bound
(recomputed from the original's frame coefficients), every vector certified, each quantized
tensor's relative error at most --max-relative-error, and raw tensors bit for bit. A tensor
packed with --calibration records each vector's measured error instead of a bound: that is
what is checked; with --calibration here too, its recorded output errors are measured again.
Exit code 0 only if everything holds, 1 if anything does not.";

/// Check an .sdq file's checksums and, against the original checkpoint, its certified bounds.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct VerifyArgs {
    /// The .sdq file.
    input: PathBuf,

    /// The original checkpoint (.safetensors, *.index.json or a directory).
    #[arg(long, value_name = "ORIGINAL")]
    against: Option<PathBuf>,

    /// With --against: fail any quantized tensor whose relative error ||W - W~|| / ||W||
    /// exceeds E (the default flags a tensor that is broken, not merely coarse)
    #[arg(long, value_name = "E", default_value_t = 0.5)]
    max_relative_error: f64,

    /// With --against: the calibration file the tensors were packed with; their recorded
    /// relative output errors ||H^1/2 (w - w~)|| / ||H^1/2 w|| are measured again.
    #[arg(long, value_name = "GRAM.safetensors", requires = "against")]
    calibration: Option<PathBuf>,
}

pub fn run(a: VerifyArgs, quiet: bool) -> CliResult {
    let input = &a.input;
    let file = SdqFile::open(input).map_err(|e| Failure::lib(input, e))?;
    let original = match &a.against {
        Some(p) => Some(Checkpoint::open(p).map_err(|e| Failure::lib(p, e))?),
        None => None,
    };
    let mut bar = Bar::new(quiet);
    let checks = verify::verify_checksums(&file, &mut bar);
    let bad: Vec<&verify::ChecksumCheck> = checks.iter().filter(|c| c.error.is_some()).collect();
    crate::outln!(
        "checksums: {} of {} tensors intact",
        checks.len() - bad.len(),
        checks.len()
    );
    for c in &bad {
        if let Some(e) = &c.error {
            crate::outln!(
                "  {}: {}",
                escape(&format!("{:?}", c.name)),
                escape(&e.to_string())
            );
        }
    }
    let mut failed = !bad.is_empty();
    if let (Some(ck), true) = (&original, bad.is_empty()) {
        let against = a.against.clone().unwrap_or_default();
        if !(a.max_relative_error.is_finite() && a.max_relative_error > 0.0) {
            return Err(Failure::usage(format!(
                "--max-relative-error must be a positive number, got {}",
                a.max_relative_error
            )));
        }
        let cal = match &a.calibration {
            Some(p) => Some(Calibration::open(p).map_err(|e| Failure::lib(p, e))?),
            None => None,
        };
        let report = verify::verify_against(
            &file,
            input,
            ck,
            a.max_relative_error,
            cal.as_ref(),
            &mut bar,
        )
        .map_err(|e| Failure::lib(input, e))?;
        let mut t = Table::new(&[
            ("tensor", false),
            ("encoding", false),
            ("vectors", true),
            ("max error", true),
            ("max bound", true),
            ("worst err/bound", true),
            ("violations", true),
            ("uncertified", true),
            ("rel.err", true),
            ("max out.err (viol.)", true),
            ("status", false),
        ]);
        for c in &report.tensors {
            let quant = c.encoding == "sigma-delta" || c.encoding == "pcm";
            let num = |s: String| if quant { s } else { "-".into() };
            t.row(vec![
                escape(&c.name),
                c.encoding.to_string(),
                num(c.vectors.to_string()),
                num(sci(c.max_error)),
                num(if c.recorded {
                    format!("{} rec.", sci(c.max_bound))
                } else {
                    sci(c.max_bound)
                }),
                num(format!("{:.4}", c.worst_ratio)),
                num(c.violations.to_string()),
                num(c.uncertified.to_string()),
                c.relative_error.map_or("-".into(), |e| format!("{e:.4}")),
                c.max_output_error
                    .map_or("-".into(), |e| format!("{e:.4} ({})", c.output_violations)),
                match (&c.problem, c.ok()) {
                    (Some(p), _) => format!("FAIL: {}", escape(p)),
                    (None, false) => "FAIL".into(),
                    (None, true) if c.encoding == "raw" => "ok (bit-identical)".into(),
                    (None, true) if c.encoding == "bias-of" => "ok (with its weight)".into(),
                    (None, true) => "ok".into(),
                },
            ]);
        }
        crate::outln!();
        super::out(&t.render());
        for m in &report.missing {
            crate::outln!(
                "{}",
                escape(&format!(
                    "FAIL: {m:?} is in the original but not in the file"
                ))
            );
        }
        crate::outln!();
        crate::outln!(
            "against {}: {} vectors checked, {} violations, {} uncertified, worst error/bound {:.4}, {} of {} tensors ok{}",
            escape(&against.display().to_string()),
            report.vectors(),
            report.violations(),
            report.uncertified(),
            report.worst_ratio(),
            report.tensors.iter().filter(|c| c.ok()).count(),
            report.tensors.len(),
            if report.missing.is_empty() {
                String::new()
            } else {
                format!(", {} missing", report.missing.len())
            }
        );
        failed |= !report.ok();
    }
    if failed {
        let what = if bad.is_empty() {
            "verification failed: see the table above"
        } else {
            "verification failed: damaged sections (see above)"
        };
        return Err(Failure::verify(input, what));
    }
    crate::outln!("verify: OK");
    Ok(())
}
