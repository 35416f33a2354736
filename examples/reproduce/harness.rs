//! The measurement harness of the reproduction: how one trained network is frame-quantized
//! through the real file path (safetensors → .sdq → memory-mapped reader → decoded weights),
//! how the quantized network is measured against the float one, and the round-to-nearest
//! baseline.
//!
//! Shared by `examples/reproduce.rs` and `tests/reproduction.rs`; both declare `mod mnist;` at
//! their crate root, which this module uses.

use std::fs;
use std::path::{Path, PathBuf};

use sdq::bridge::pack::{self, DeltaChoice, FrameRule, PackOptions};
use sdq::bridge::safetensors::{Checkpoint, FloatOut, SafetensorsWriter, TensorSpec};
use sdq::bridge::NoProgress;
use sdq::format::{DeltaMode, Dtype, Encoding, SdqFile, StorageReport};
use sdq::Orientation;

use crate::mnist::{self, Dataset, Model};

/// How the frame size N of each quantized layer is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrameSize {
    /// The same N for every quantized layer (the paper's setting).
    Fixed(usize),
    /// N = ⌊b·d / ⌈log2 2K⌉⌋: b code bits per original weight in every layer.
    BitsPerWeight(f64),
}

/// How δ is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaRule {
    /// The paper's: one δ for every quantized layer, the smallest with
    /// max_j ‖w_j‖ ≤ (K − ½)·δ over all of them (condition (9)).
    Uniform,
    /// The paper's rule per layer (one δ per tensor).
    Tensor,
    /// The paper's rule per vector.
    Vector,
    /// Per vector from the largest frame coefficient (still certified).
    Coefficient,
}

impl DeltaRule {
    /// A short stable name for tables and the CSV.
    pub fn name(self) -> &'static str {
        match self {
            DeltaRule::Uniform => "uniform",
            DeltaRule::Tensor => "tensor",
            DeltaRule::Vector => "vector",
            DeltaRule::Coefficient => "coefficient",
        }
    }
}

/// Everything that defines one frame quantization of a network.
#[derive(Debug, Clone, PartialEq)]
pub struct PackSpec {
    /// Frame size rule.
    pub frame: FrameSize,
    /// K: 2K levels.
    pub levels: u32,
    /// δ rule.
    pub delta: DeltaRule,
    /// Columns (the paper's, d = fan-out) or rows (d = fan-in).
    pub orientation: Orientation,
    /// Names of the tensors to quantize; the others are stored raw (fp32).
    pub quantize: Vec<String>,
}

/// What was measured on one quantized layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStat {
    /// Tensor name.
    pub name: String,
    /// Vector dimension d.
    pub d: usize,
    /// Frame size N.
    pub n: usize,
    /// Largest δ of the layer.
    pub delta: f64,
    /// Largest measured ‖w_j − w̃_j‖ over the layer's vectors, from the decoded file.
    pub max_error: f64,
    /// Largest certified Theorem 3.1 bound, as recorded in the file.
    pub max_bound: f64,
    /// Vectors whose bound is not certified (recorded in the file; 0 for the rules used here).
    pub uncertified: u64,
    /// Vectors whose measured error exceeds the layer's largest certified bound.
    pub over_bound: usize,
    /// ‖W − W̃‖_F.
    pub frob_error: f64,
    /// ‖W‖_F.
    pub frob_norm: f64,
}

/// The result of [`pack_roundtrip`]: the decoded network and what the file says about it.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The network rebuilt from the .sdq file.
    pub model: Model,
    /// The file's storage report.
    pub report: StorageReport,
    /// One entry per quantized layer.
    pub layers: Vec<LayerStat>,
}

impl Packed {
    /// ‖W − W̃‖_F / ‖W‖_F over all quantized layers together.
    pub fn relative_weight_error(&self) -> f64 {
        let (e, w) = self.layers.iter().fold((0.0, 0.0), |(e, w), l| {
            (
                e + l.frob_error * l.frob_error,
                w + l.frob_norm * l.frob_norm,
            )
        });
        (e / w).sqrt()
    }

    /// Largest measured-error / certified-bound ratio over all layers.
    pub fn worst_error_ratio(&self) -> f64 {
        self.layers
            .iter()
            .map(|l| l.max_error / l.max_bound)
            .fold(0.0, f64::max)
    }

    /// Whether every vector of every layer is certified and inside its layer's bound.
    pub fn all_within_bounds(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.uncertified == 0 && l.over_bound == 0)
    }
}

/// The vector dimension d and count m of a `[rows, cols]` weight in an orientation.
fn dims(rows: usize, cols: usize, o: Orientation) -> (usize, usize) {
    match o {
        Orientation::Columns => (rows, cols),
        Orientation::Rows => (cols, rows),
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Writes the float network as a safetensors file (fp32) with the bridge's atomic writer.
pub fn write_safetensors(model: &Model, path: &Path) -> Result<(), String> {
    let specs: Vec<TensorSpec> = model
        .tensors
        .iter()
        .map(|(name, shape, _)| TensorSpec {
            name: name.clone(),
            dtype: Dtype::F32,
            shape: shape.iter().map(|&x| x as u64).collect(),
        })
        .collect();
    let meta = vec![
        ("model".to_owned(), format!("{:?}", model.kind)),
        ("width".to_owned(), model.width.to_string()),
    ];
    let what = format!("writing {}", path.display());
    let mut w = SafetensorsWriter::create(path, &specs, &meta).map_err(err(&what))?;
    for (name, _, data) in &model.tensors {
        w.write_f32(name, data, FloatOut::F32).map_err(err(&what))?;
    }
    w.finish().map_err(err(&what))
}

/// Packs the safetensors checkpoint at `st_path` into the .sdq file `sdq_path` with the
/// library's `sdq pack` path ([`sdq::bridge::pack::pack`]): Algorithm 1 on every tensor named
/// in `spec.quantize`, the others stored raw.
fn pack_file(st_path: &Path, sdq_path: &Path, spec: &PackSpec) -> Result<(), String> {
    let ck = Checkpoint::open(st_path).map_err(err(&format!("opening {}", st_path.display())))?;
    let opts = PackOptions {
        method: sdq::bridge::pack::Method::SigmaDelta,
        allocation: sdq::bridge::pack::Allocation::PerTensor,
        force_quantize: true,
        frame: match spec.frame {
            FrameSize::Fixed(n) => FrameRule::FrameSize(n),
            FrameSize::BitsPerWeight(b) => FrameRule::BitsPerWeight(b),
        },
        levels: spec.levels,
        scheme: sdq::quant::Scheme::FirstOrder,
        family: sdq::frame::FrameFamily::Harmonic,
        reorder: false,
        delta: match spec.delta {
            DeltaRule::Uniform => DeltaChoice::Uniform,
            DeltaRule::Tensor => DeltaChoice::Tensor,
            DeltaRule::Vector => DeltaChoice::Vector,
            DeltaRule::Coefficient => DeltaChoice::Coefficient,
        },
        orientation: spec.orientation,
        bias: false,
        // Exact names: the bridge's globs only give `*` and `?` a meaning.
        include: spec.quantize.clone(),
        exclude: Vec::new(),
        min_dim: Some(1),
        zstd: None,
        tensor_types: Vec::new(),
        file_bits: None,
        calibration: None,
        feedback: Default::default(),
        calibrated_frame: None,
    };
    let plan = pack::plan(&ck, &opts).map_err(err("planning"))?;
    if let Some(missing) = plan.unmatched_includes.first() {
        return Err(format!(
            "no tensor {missing:?} to quantize in {}",
            st_path.display()
        ));
    }
    pack::pack(&ck, sdq_path, &opts, &mut NoProgress)
        .map(|_| ())
        .map_err(err(&format!("packing {}", sdq_path.display())))
}

/// The one path every quantized network of the reproduction takes: `model` is written to
/// `dir/model.safetensors`, packed by the library into `dir/model.sdq`, reopened through the
/// memory-mapped reader and decoded; the decoded network, the file's storage report and the
/// per-layer errors (measured on the decoded weights, against the bounds recorded in the file)
/// are returned.
pub fn pack_roundtrip(model: &Model, spec: &PackSpec, dir: &Path) -> Result<Packed, String> {
    fs::create_dir_all(dir).map_err(err(&format!("creating {}", dir.display())))?;
    let st_path: PathBuf = dir.join("model.safetensors");
    let sdq_path: PathBuf = dir.join("model.sdq");
    write_safetensors(model, &st_path)?;
    pack_file(&st_path, &sdq_path, spec)?;

    let file = SdqFile::open(&sdq_path).map_err(err(&format!("opening {}", sdq_path.display())))?;
    let mut decoded = model.clone();
    let mut layers = Vec::new();
    for (name, shape, data) in decoded.tensors.iter_mut() {
        let original = data.clone();
        file.decode_into(name, data)
            .map_err(err(&format!("decoding {name:?}")))?;
        let info = file.tensor(name).map_err(err(name))?;
        let Encoding::SigmaDelta(sd) = &info.encoding else {
            continue;
        };
        let (rows, cols) = (shape[0], shape[1]);
        let (d, m) = dims(rows, cols, spec.orientation);
        let at = |j: usize, i: usize| match spec.orientation {
            Orientation::Columns => i * cols + j,
            Orientation::Rows => j * cols + i,
        };
        let errors: Vec<f64> = (0..m)
            .map(|j| {
                (0..d)
                    .map(|i| {
                        let k = at(j, i);
                        (f64::from(original[k]) - f64::from(data[k])).powi(2)
                    })
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        let sq = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        let max_bound = sd.max_bound;
        layers.push(LayerStat {
            name: name.clone(),
            d,
            n: sd.frame.frame_size(),
            // The largest δ, from the recorded bound (δ·d/2N)(σ + 1) of the widest vector.
            delta: match sd.delta {
                DeltaMode::Tensor(delta) => delta,
                DeltaMode::PerVector => {
                    max_bound * 2.0 * sd.frame.frame_size() as f64 / (d as f64 * (sd.sigma + 1.0))
                }
            },
            max_error: errors.iter().copied().fold(0.0, f64::max),
            max_bound,
            uncertified: sd.uncertified,
            over_bound: errors.iter().filter(|&&e| e > max_bound).count(),
            frob_error: errors.iter().map(|e| e * e).sum::<f64>().sqrt(),
            frob_norm: sq(&original).sqrt(),
        });
    }
    Ok(Packed {
        model: decoded,
        report: file.report(),
        layers,
    })
}

/// The float network's outputs on a test set, kept to measure quantized networks against.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Logits, `len × 10`.
    pub logits: Vec<f32>,
    /// ‖x‖ of every test input.
    pub input_norms: Vec<f64>,
    /// Test accuracy of the float network, in [0, 1].
    pub accuracy: f64,
}

/// How a network's outputs differ from the float network's on the test set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkError {
    /// Test accuracy, in [0, 1].
    pub accuracy: f64,
    /// max_x ‖Φ(x) − Φ̃(x)‖ over the test inputs (logits; the paper's Figure 1).
    pub worst: f64,
    /// max_x ‖Φ(x) − Φ̃(x)‖ / ‖x‖.
    pub worst_relative: f64,
    /// mean_x ‖Φ(x) − Φ̃(x)‖ / ‖x‖ (the average behind the paper's Figure 2).
    pub mean_relative: f64,
}

/// Index of the largest logit (the first on ties; NaN never wins), as `mnist::predict` does.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] || row[best].is_nan() && !v.is_nan() {
            best = i;
        }
    }
    best
}

fn accuracy(logits: &[f32], labels: &[u8]) -> f64 {
    let classes = mnist::N_CLASSES;
    let right = logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &l)| argmax(row) == usize::from(l))
        .count();
    right as f64 / labels.len().max(1) as f64
}

impl Reference {
    /// Runs the float `model` on `test`.
    pub fn new(model: &Model, test: &Dataset) -> Reference {
        let logits = mnist::forward_logits(model, &test.images);
        let input_norms = test
            .images
            .chunks_exact(mnist::N_PIXELS)
            .map(|x| x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt())
            .collect();
        Reference {
            accuracy: accuracy(&logits, &test.labels),
            logits,
            input_norms,
        }
    }

    /// Runs `model` on `test` (the set `self` was built on) and compares.
    pub fn compare(&self, model: &Model, test: &Dataset) -> NetworkError {
        let logits = mnist::forward_logits(model, &test.images);
        let classes = mnist::N_CLASSES;
        let (mut worst, mut worst_relative, mut sum) = (0.0f64, 0.0f64, 0.0f64);
        for ((a, b), &norm) in self
            .logits
            .chunks_exact(classes)
            .zip(logits.chunks_exact(classes))
            .zip(&self.input_norms)
        {
            let e = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum::<f64>()
                .sqrt();
            let rel = if norm > 0.0 { e / norm } else { 0.0 };
            worst = worst.max(e);
            worst_relative = worst_relative.max(rel);
            sum += rel;
        }
        NetworkError {
            accuracy: accuracy(&logits, &test.labels),
            worst,
            worst_relative,
            mean_relative: sum / self.input_norms.len().max(1) as f64,
        }
    }
}

/// Plain per-row symmetric round-to-nearest with `bits` bits (≥ 2): every row of every tensor in
/// `names` gets scale = max|row| / (2^(bits−1) − 1) and codes in ±(2^(bits−1) − 1). Returns the
/// quantized network and ‖W − W̃‖_F / ‖W‖_F over those tensors. Storage: `bits` per weight plus
/// one f32 scale per row.
pub fn round_to_nearest(
    model: &Model,
    names: &[String],
    bits: u32,
) -> Result<(Model, f64), String> {
    if !(2..=16).contains(&bits) {
        return Err(format!("round-to-nearest needs 2 to 16 bits, got {bits}"));
    }
    let top = ((1u32 << (bits - 1)) - 1) as f32;
    let mut out = model.clone();
    let (mut e2, mut w2) = (0.0f64, 0.0f64);
    for name in names {
        let (_, shape, data) = out
            .tensors
            .iter_mut()
            .find(|t| &t.0 == name)
            .ok_or_else(|| format!("no tensor {name:?} to round"))?;
        let cols = shape.get(1).copied().unwrap_or(1).max(1);
        for row in data.chunks_mut(cols) {
            let amax = row.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
            let scale = if amax > 0.0 { amax / top } else { 1.0 };
            for x in row.iter_mut() {
                let q = (*x / scale).round().clamp(-top, top) * scale;
                e2 += f64::from(*x - q).powi(2);
                w2 += f64::from(*x).powi(2);
                *x = q;
            }
        }
    }
    Ok((out, (e2 / w2).sqrt()))
}

/// Bits per original weight of per-row round-to-nearest on the tensors `names` of `model`:
/// `bits` per weight plus one 32-bit scale per row.
pub fn round_to_nearest_bits(model: &Model, names: &[String], bits: u32) -> f64 {
    let (mut total, mut elements) = (0.0, 0usize);
    for (name, shape, data) in &model.tensors {
        if names.contains(name) {
            total += f64::from(bits) * data.len() as f64 + 32.0 * shape[0] as f64;
            elements += data.len();
        }
    }
    total / elements.max(1) as f64
}
