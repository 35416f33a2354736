//! The document that `sdq info --json` prints (docs/cli.md, `schema_version` 1), built in one
//! place for the command line and the Python module (`sdq.info`).

use serde_json::{json, Value};

use crate::format::{Compression, DeltaMode, Encoding, TensorInfo, TensorReport};
use crate::quant::pcm::{snr_db, ErrorRecord, StepType};
use crate::SdqFile;

/// Version of the JSON document's schema (docs/cli.md). Bumped on any incompatible change;
/// fields may be added without a bump.
pub const SCHEMA_VERSION: u64 = 1;

/// `zstd` if any section of `t` is zstd-compressed, else `none`.
pub fn compression(t: &TensorInfo) -> &'static str {
    if t.sections()
        .iter()
        .any(|(_, s)| s.compression == Compression::Zstd)
    {
        "zstd"
    } else {
        "none"
    }
}

fn tensor_json(t: &TensorInfo, r: Option<&TensorReport>, all: &[TensorInfo]) -> Value {
    let quant = match &t.encoding {
        Encoding::SigmaDelta(q) => {
            let m = q.vector_count();
            json!({
                "scheme": q.scheme.name(),
                "frame": q.frame.family().name(),
                "n": q.n(),
                "d": q.d(),
                "k": q.k,
                "bits_per_code": q.bits,
                "code_bits_per_weight": q.n() as f64 * f64::from(q.bits) / q.d() as f64,
                "orientation": q.orientation.name(),
                "has_bias": q.has_bias,
                "vectors": m,
                "delta_policy": q.policy.name(),
                "delta": match q.delta { DeltaMode::Tensor(d) => Some(d), DeltaMode::PerVector => None },
                "delta_per_vector": matches!(q.delta, DeltaMode::PerVector),
                "permuted": q.permutation.is_some(),
                "sigma": q.sigma,
                "max_bound": q.max_bound,
                "matrix_bound": (m as f64).sqrt() * q.max_bound,
                "uncertified": q.uncertified,
                // Measured by the writer (version-2 records); null in version-1 records.
                "relative_error": q.relative_error().and_then(|r| r.is_finite().then_some(r)),
                "snr_db": q.norms.map(|(e, w)| ratio_or_null(snr_db(e, w))),
            })
        }
        Encoding::Pcm(q) => {
            let m = q.vector_count();
            let rel = q.relative_error();
            json!({
                "scheme": "pcm",
                "frame": q.frame.name(),
                "n": q.n(),
                "d": q.d,
                "k": q.k,
                "coding": q.coding.name(),
                "sign_seed": q.sign_seed,
                "group": q.group,
                "step_type": match q.step_type { StepType::F16 => "f16", StepType::F32 => "f32" },
                "orientation": q.orientation.name(),
                "has_bias": q.has_bias,
                "vectors": m,
                "max_bound": q.max_bound,
                "matrix_bound": (m as f64).sqrt() * q.max_bound,
                "uncertified": 0,
                "bound": match q.record {
                    ErrorRecord::APriori => "certified",
                    ErrorRecord::Weight => "recorded",
                    ErrorRecord::WeightAndOutput => "recorded (calibrated)",
                },
                "relative_error": ratio_or_null(rel),
                "snr_db": ratio_or_null(snr_db(q.error_norm, q.weight_norm)),
            })
        }
        _ => Value::Null,
    };
    let bias_of = match &t.encoding {
        Encoding::BiasOf { weight } => all.get(*weight).map(|w| Value::from(w.name.clone())),
        _ => None,
    };
    json!({
        "name": t.name,
        "dtype": t.dtype.name(),
        "shape": t.shape,
        "elements": t.elements,
        "encoding": t.encoding.name(),
        "compression": compression(t),
        "stored_bytes": r.map(|r| r.stored_bytes),
        "bits_per_weight": r.map(|r| r.bits_per_weight()),
        "quantization": quant,
        "bias_of": bias_of,
    })
}

fn ratio_or_null(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// The largest certified vector bound over the file's quantized tensors (0 if none).
pub fn max_bound(file: &SdqFile) -> f64 {
    file.tensors()
        .iter()
        .filter_map(|t| match &t.encoding {
            Encoding::SigmaDelta(q) => Some(q.max_bound),
            Encoding::Pcm(q) => Some(q.max_bound),
            _ => None,
        })
        .fold(0.0, f64::max)
}

/// The `info --json` document of `file`, naming it `label`, listing the tensors named in `only`
/// (every tensor when `only` is empty); the totals are always over the whole file.
pub fn info_json(label: &str, file: &SdqFile, only: &[String]) -> Value {
    let report = file.report();
    let (major, minor) = file.version();
    let metadata: serde_json::Map<String, Value> = file
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    let tensors: Vec<Value> = file
        .tensors()
        .iter()
        .enumerate()
        .filter(|(_, t)| only.is_empty() || only.contains(&t.name))
        .map(|(i, t)| tensor_json(t, report.tensors.get(i), file.tensors()))
        .collect();
    json!({
        "schema_version": SCHEMA_VERSION,
        "file": label,
        "format_version": format!("{major}.{minor}"),
        "file_bytes": file.file_len(),
        "metadata": metadata,
        "tensors": tensors,
        "totals": {
            "tensors": file.tensors().len(),
            "quantized": file.tensors().iter().filter(|t| matches!(t.encoding, Encoding::SigmaDelta(_) | Encoding::Pcm(_))).count(),
            "elements": report.total_elements,
            "stored_bytes": report.total_bytes,
            "overhead_bytes": report.overhead_bytes,
            "fp32_bytes": report.total_fp32_bytes,
            "fp16_bytes": report.total_fp16_bytes,
            "ratio_fp32": ratio_or_null(report.ratio_fp32()),
            "ratio_fp16": ratio_or_null(report.ratio_fp16()),
            "savings_fp32": ratio_or_null(1.0 - 1.0 / report.ratio_fp32()),
            "savings_fp16": ratio_or_null(1.0 - 1.0 / report.ratio_fp16()),
            "bits_per_weight": report.bits_per_weight(),
            "quantized_bits_per_weight": report.quantized_bits_per_weight(),
            "float_elements": report.float_elements,
            "float_bits_per_weight": report.float_bits_per_weight(),
            "max_bound": max_bound(file),
        },
    })
}
