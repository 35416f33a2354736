//! What the reproduction runs: the settings of the paper's Tables 1–4 and the comparisons beyond
//! the paper, and the loop that trains every network and measures every quantization of it.

use std::path::Path;
use std::time::Instant;

use sdq::Orientation;

use crate::harness::{self, DeltaRule, FrameSize, PackSpec, Reference};
use crate::mnist::{self, Dataset, Model, ModelKind, TrainConfig};

/// Seed of the 4,000 / 1,000 train/test split of the 5,000 shipped digits.
pub const SPLIT_SEED: u64 = 2024;
/// Training images (the rest of the 5,000 are the test set).
pub const N_TRAIN: usize = 4000;
/// K values of the Table 1–2 δ grid: δ_K is the smallest δ with max‖w_j‖ ≤ (K − ½)δ over the
/// quantized layers, so K is exactly the one condition (9) gives for that δ.
pub const TABLE12_LEVELS: [u32; 4] = [1, 4, 16, 64];
/// Frame sizes of Tables 1–2.
pub const TABLE12_N: [usize; 5] = [256, 320, 384, 448, 512];
/// Frame sizes of Tables 3–4.
pub const ONEBIT_N: [usize; 7] = [1000, 2000, 3000, 4000, 5000, 6000, 7000];
/// Bits per original weight of the equal-storage comparison.
pub const STORAGE_BITS: [u32; 4] = [2, 3, 4, 8];

/// The size of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Training seeds (one training of every network per seed).
    pub seeds: Vec<u64>,
    /// Hidden widths; the first is the main one (beyond-the-paper experiments use it only).
    pub widths: Vec<usize>,
    /// Frame sizes of Tables 1–2.
    pub table12_n: Vec<usize>,
    /// K grid of Tables 1–2.
    pub table12_levels: Vec<u32>,
    /// Frame sizes of Tables 3–4.
    pub onebit_n: Vec<usize>,
    /// Budgets of the equal-storage comparison.
    pub storage_bits: Vec<u32>,
    /// Training hyper-parameters (the seed is replaced by each training seed).
    pub train: TrainConfig,
}

impl Config {
    /// The full reproduction: `seeds` trainings of every network, n = 200 and 128.
    pub fn full(seeds: usize) -> Config {
        Config {
            seeds: (1..=seeds as u64).collect(),
            widths: vec![200, 128],
            table12_n: TABLE12_N.to_vec(),
            table12_levels: TABLE12_LEVELS.to_vec(),
            onebit_n: ONEBIT_N.to_vec(),
            storage_bits: STORAGE_BITS.to_vec(),
            train: TrainConfig::default(),
        }
    }

    /// The CI-sized version: n = 200 only, a few frame sizes, few seeds.
    pub fn quick(seeds: usize) -> Config {
        Config {
            seeds: (1..=seeds as u64).collect(),
            widths: vec![200],
            table12_n: vec![256, 512],
            table12_levels: vec![1, 16],
            onebit_n: vec![1000, 4000, 7000],
            storage_bits: vec![2, 4, 8],
            train: TrainConfig::default(),
        }
    }
}

/// Which experiment a result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Experiment {
    /// Tables 1–2: N ∈ 256…512 × the δ grid, hidden layers quantized.
    Table12,
    /// Tables 3–4: 1-bit, one uniform δ, every layer.
    OneBit,
    /// 1-bit with the per-tensor, per-vector and coefficient δ rules.
    Policy,
    /// Equal storage: frame quantization vs round-to-nearest at b bits per weight.
    Storage,
}

impl Experiment {
    /// Stable name for the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Experiment::Table12 => "table12",
            Experiment::OneBit => "onebit",
            Experiment::Policy => "policy",
            Experiment::Storage => "storage",
        }
    }
}

/// One measured quantization of one trained network.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Experiment.
    pub experiment: Experiment,
    /// Architecture.
    pub model: ModelKind,
    /// Hidden width n.
    pub width: usize,
    /// Training seed.
    pub seed: u64,
    /// `sd-<orientation>-<δ rule>` or `rtn`.
    pub method: String,
    /// Frame size N (the same for every layer), or 0 when N follows a bits-per-weight rule.
    pub n: usize,
    /// Target bits per weight (storage experiment), else 0.
    pub budget: u32,
    /// K (0 for round-to-nearest).
    pub k: u32,
    /// Largest δ over the layers (the network-wide δ for the uniform rule).
    pub delta: f64,
    /// Float network's test accuracy.
    pub float_acc: f64,
    /// Quantized network's test accuracy and output errors.
    pub err: harness::NetworkError,
    /// ‖W − W̃‖_F / ‖W‖_F over the quantized layers.
    pub rel_weight_err: f64,
    /// .sdq file size in bytes (0 for round-to-nearest).
    pub file_bytes: u64,
    /// fp32 bytes of the whole network.
    pub fp32_bytes: u64,
    /// Bits per weight of the quantized layers (storage report; computed for round-to-nearest).
    pub bpw_quantized: f64,
    /// Bits per weight of the quantized layers whose fan-out is n (the paper's storage count).
    pub bpw_hidden: f64,
    /// Largest measured error / certified bound over all vectors of all layers.
    pub worst_ratio: f64,
    /// Whether every vector is certified and inside its bound.
    pub within_bounds: bool,
    /// Per-layer statistics.
    pub layers: Vec<harness::LayerStat>,
}

/// The names of a model's tensors: all, and those with fan-out n (the hidden layers).
pub fn layer_names(model: &Model) -> (Vec<String>, Vec<String>) {
    let all: Vec<String> = model.tensors.iter().map(|t| t.0.clone()).collect();
    let hidden = model
        .tensors
        .iter()
        .filter(|t| t.1[0] == model.width)
        .map(|t| t.0.clone())
        .collect();
    (all, hidden)
}

/// Loads the digits and splits them with [`SPLIT_SEED`].
pub fn load_data(path: &Path) -> Result<(Dataset, Dataset), String> {
    let ds = mnist::load(path)?;
    if ds.len() <= N_TRAIN {
        return Err(format!(
            "{} holds {} digits; the reproduction needs more than {N_TRAIN}",
            path.display(),
            ds.len()
        ));
    }
    Ok(mnist::split(&ds, N_TRAIN, SPLIT_SEED))
}

/// Everything fixed about one trained network while it is being quantized.
struct Trained<'a> {
    model: &'a Model,
    reference: &'a Reference,
    test: &'a Dataset,
    seed: u64,
    work: &'a Path,
}

impl Trained<'_> {
    /// Packs, decodes and measures one frame quantization.
    fn frame(&self, experiment: Experiment, spec: &PackSpec, budget: u32) -> Result<Row, String> {
        let packed = harness::pack_roundtrip(self.model, spec, self.work)?;
        let err = self.reference.compare(&packed.model, self.test);
        let width = self.model.width;
        let hidden: Vec<_> = packed
            .report
            .tensors
            .iter()
            .filter(|t| t.encoding != "raw")
            .filter(|t| {
                self.model
                    .tensors
                    .iter()
                    .any(|m| m.0 == t.name && m.1[0] == width)
            })
            .collect();
        let hidden_bits = hidden.iter().map(|t| t.stored_bytes).sum::<u64>() as f64 * 8.0;
        let hidden_elems = hidden.iter().map(|t| t.elements).sum::<u64>().max(1) as f64;
        Ok(Row {
            experiment,
            model: self.model.kind,
            width,
            seed: self.seed,
            method: format!("sd-{}-{}", spec.orientation.name(), spec.delta.name()),
            n: match spec.frame {
                FrameSize::Fixed(n) => n,
                FrameSize::BitsPerWeight(_) => 0,
            },
            budget,
            k: spec.levels,
            delta: packed.layers.iter().map(|l| l.delta).fold(0.0, f64::max),
            float_acc: self.reference.accuracy,
            err,
            rel_weight_err: packed.relative_weight_error(),
            file_bytes: packed.report.total_bytes,
            fp32_bytes: packed.report.total_fp32_bytes,
            bpw_quantized: packed.report.quantized_bits_per_weight(),
            bpw_hidden: hidden_bits / hidden_elems,
            worst_ratio: packed.worst_error_ratio(),
            within_bounds: packed.all_within_bounds(),
            layers: packed.layers,
        })
    }

    /// Measures per-row round-to-nearest at `bits` on the tensors `names`.
    fn rtn(&self, names: &[String], bits: u32) -> Result<Row, String> {
        let (q, rel) = harness::round_to_nearest(self.model, names, bits)?;
        let bpw = harness::round_to_nearest_bits(self.model, names, bits);
        Ok(Row {
            experiment: Experiment::Storage,
            model: self.model.kind,
            width: self.model.width,
            seed: self.seed,
            method: "rtn".into(),
            n: 0,
            budget: bits,
            k: 0,
            delta: 0.0,
            float_acc: self.reference.accuracy,
            err: self.reference.compare(&q, self.test),
            rel_weight_err: rel,
            file_bytes: 0,
            fp32_bytes: 4 * self.model.num_params() as u64,
            bpw_quantized: bpw,
            bpw_hidden: bpw,
            worst_ratio: f64::NAN,
            within_bounds: true,
            layers: Vec::new(),
        })
    }
}

/// Trains every network of `cfg` and measures every quantization of it, calling `on_row` with
/// each result. `work` is a scratch directory for the safetensors and .sdq files.
pub fn run(
    cfg: &Config,
    train: &Dataset,
    test: &Dataset,
    work: &Path,
    mut on_row: impl FnMut(&Row),
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut push = |row: Row, rows: &mut Vec<Row>| {
        on_row(&row);
        rows.push(row);
    };
    for &seed in &cfg.seeds {
        for (wi, &width) in cfg.widths.iter().enumerate() {
            for kind in ModelKind::ALL {
                let start = Instant::now();
                let tc = TrainConfig {
                    seed,
                    ..cfg.train.clone()
                };
                let model = mnist::train(kind, width, train, &tc);
                let reference = Reference::new(&model, test);
                eprintln!(
                    "seed {seed} {kind:?} n={width}: float accuracy {:.2}% (trained in {:.1} s)",
                    100.0 * reference.accuracy,
                    start.elapsed().as_secs_f64()
                );
                let t = Trained {
                    model: &model,
                    reference: &reference,
                    test,
                    seed,
                    work,
                };
                let (all, hidden) = layer_names(&model);
                let spec = |frame, levels, delta, orientation, names: &Vec<String>| PackSpec {
                    frame,
                    levels,
                    delta,
                    orientation,
                    quantize: names.clone(),
                };
                let cols = Orientation::Columns;
                for &n in &cfg.table12_n {
                    for &k in &cfg.table12_levels {
                        let s = spec(FrameSize::Fixed(n), k, DeltaRule::Uniform, cols, &hidden);
                        push(t.frame(Experiment::Table12, &s, 0)?, &mut rows);
                    }
                }
                for &n in &cfg.onebit_n {
                    let s = spec(FrameSize::Fixed(n), 1, DeltaRule::Uniform, cols, &all);
                    push(t.frame(Experiment::OneBit, &s, 0)?, &mut rows);
                }
                if wi > 0 {
                    continue;
                }
                for &n in &cfg.onebit_n {
                    for rule in [DeltaRule::Tensor, DeltaRule::Vector, DeltaRule::Coefficient] {
                        let s = spec(FrameSize::Fixed(n), 1, rule, cols, &all);
                        push(t.frame(Experiment::Policy, &s, 0)?, &mut rows);
                    }
                }
                for &b in &cfg.storage_bits {
                    let per_weight = FrameSize::BitsPerWeight(f64::from(b));
                    for (o, rule) in [
                        (cols, DeltaRule::Uniform),
                        (cols, DeltaRule::Coefficient),
                        (Orientation::Rows, DeltaRule::Uniform),
                        (Orientation::Rows, DeltaRule::Coefficient),
                    ] {
                        let s = spec(per_weight, 1, rule, o, &all);
                        push(t.frame(Experiment::Storage, &s, b)?, &mut rows);
                    }
                    // The same budget spent on finer codes instead of more frame vectors:
                    // N = 2d with b/2 bits per code.
                    if b >= 4 && b % 2 == 0 {
                        let k = 1u32 << (b / 2 - 1);
                        let s = spec(per_weight, k, DeltaRule::Coefficient, cols, &all);
                        push(t.frame(Experiment::Storage, &s, b)?, &mut rows);
                    }
                    push(t.rtn(&all, b)?, &mut rows);
                }
            }
        }
    }
    Ok(rows)
}
