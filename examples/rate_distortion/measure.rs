//! How one point of the report is measured: a set of weight matrices is written as safetensors,
//! packed by the library into an .sdq file (zstd off and on), reopened through the
//! memory-mapped reader and decoded; the decoded weights give the relative error and (for the
//! MNIST networks) the test accuracy, the storage report gives the bits per weight, and
//! `SdqFile::decode_into` is timed against reading the same tensors stored as f32.

use std::path::Path;
use std::time::{Duration, Instant};

use sdq::bridge::pack::{self, PackOptions};
use sdq::bridge::safetensors::Checkpoint;
use sdq::bridge::NoProgress;
use sdq::format::{Encoding, SdqFile};

use crate::harness::{self, Reference};
use crate::mnist::{Dataset, Model};
use crate::schemes::{Scheme, ZSTD_LEVEL};

/// What is quantized: a trained MNIST network (evaluated) or a random matrix (not).
pub struct Subject<'a> {
    /// Stable id for the CSV and file names (`fnn-200`, `gauss-300x784`).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The weights. For a random matrix this is a container of one tensor, never run.
    pub model: Model,
    /// The float network's outputs and the test set, for networks.
    pub eval: Option<(Reference, &'a Dataset)>,
}

impl Subject<'_> {
    /// Every tensor's name (all are quantized).
    pub fn names(&self) -> Vec<String> {
        self.model.tensors.iter().map(|t| t.0.clone()).collect()
    }

    /// Number of weights.
    pub fn weights(&self) -> usize {
        self.model.tensors.iter().map(|t| t.2.len()).sum()
    }
}

/// One measured point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Subject id.
    pub subject: String,
    /// Method id (`sd1-harmonic-coefficient-k1`, `rtn`).
    pub method: String,
    /// Legend text of the method.
    pub label: String,
    /// Frame family (`harmonic`, or `-` for round-to-nearest).
    pub family: String,
    /// ΣΔ order (0 for round-to-nearest).
    pub order: u32,
    /// ΣΔ along the library's computed ordering of the frame vectors.
    pub reordered: bool,
    /// δ policy (`-` for round-to-nearest).
    pub delta: String,
    /// K (0 for round-to-nearest).
    pub k: u32,
    /// Bits per code.
    pub bits_per_code: u32,
    /// The code-bit budget the frame size was chosen for (round-to-nearest: its bits).
    pub target: f64,
    /// N/d asked for (0 for round-to-nearest).
    pub redundancy: f64,
    /// Smallest and largest N over the quantized tensors.
    pub n_min: usize,
    /// See `n_min`.
    pub n_max: usize,
    /// Nominal code bits per weight: Σ N·bits·m / Σ d·m (round-to-nearest: its bits).
    pub code_bits: f64,
    /// Bits per weight of the quantized tensors in the .sdq file, zstd off (storage report;
    /// round-to-nearest: bits + one f32 scale per row, computed).
    pub file_bits: f64,
    /// The same with zstd (NaN for round-to-nearest).
    pub file_bits_zstd: f64,
    /// The whole .sdq file (zstd off) × 8 / weights: also the preamble, metadata and padding
    /// (NaN for round-to-nearest).
    pub file_bits_total: f64,
    /// ‖W − W̃‖_F / ‖W‖_F over all quantized tensors.
    pub rel_err: f64,
    /// Test accuracy in [0, 1] (NaN for a random matrix).
    pub accuracy: f64,
    /// Float test accuracy (NaN for a random matrix).
    pub float_accuracy: f64,
    /// Every vector certified and within its tensor's recorded bound (false for rtn).
    pub certified: bool,
    /// Largest measured vector error / recorded bound (NaN for rtn).
    pub worst_ratio: f64,
    /// Decode time, µs per million weights, zstd off.
    pub decode_us: f64,
    /// Decode time, µs per million weights, zstd on (NaN for rtn).
    pub decode_zstd_us: f64,
    /// Reading the same tensors stored raw as f32, µs per million weights, in this run.
    pub f32_us: f64,
}

fn err<E: std::fmt::Display>(what: String) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Best-of-several wall time of `f`, in µs per million weights (one warm-up call first; at
/// least 5 timed calls and about 80 ms in total: the minimum is what the code costs when the
/// shared machine lets it run).
pub fn time_per_mweight(
    weights: usize,
    mut f: impl FnMut() -> Result<(), String>,
) -> Result<f64, String> {
    f()?;
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut reps = 0;
    while reps < 5 || (start.elapsed() < Duration::from_millis(80) && reps < 500) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
        reps += 1;
    }
    Ok(best * 1e12 / weights.max(1) as f64)
}

/// Decodes every tensor of `names` from `file` into `bufs`.
fn decode_all(file: &SdqFile, names: &[String], bufs: &mut [Vec<f32>]) -> Result<(), String> {
    for (name, buf) in names.iter().zip(bufs.iter_mut()) {
        file.decode_into(name, buf)
            .map_err(err(format!("decoding {name:?}")))?;
    }
    Ok(())
}

fn pack_to(st: &Path, out: &Path, opts: &PackOptions) -> Result<SdqFile, String> {
    let ck = Checkpoint::open(st).map_err(err(format!("opening {}", st.display())))?;
    pack::pack(&ck, out, opts, &mut NoProgress)
        .map_err(err(format!("packing {}", out.display())))?;
    SdqFile::open(out).map_err(err(format!("opening {}", out.display())))
}

/// The per-subject scratch files: the float weights as safetensors and as an all-f32 .sdq file
/// (the decode-speed reference).
pub struct Workspace<'s, 'a> {
    subject: &'s Subject<'a>,
    names: Vec<String>,
    dir: std::path::PathBuf,
    st: std::path::PathBuf,
    raw: SdqFile,
}

impl<'s, 'a> Workspace<'s, 'a> {
    /// Writes `subject` to `dir` as safetensors and as an .sdq file with every tensor raw.
    pub fn new(subject: &'s Subject<'a>, dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(err(format!("creating {}", dir.display())))?;
        let st = dir.join("float.safetensors");
        harness::write_safetensors(&subject.model, &st)?;
        let opts = PackOptions {
            // Nothing is quantized: every tensor is stored as f32.
            min_dim: Some(usize::MAX),
            ..PackOptions::default()
        };
        let raw = pack_to(&st, &dir.join("float.sdq"), &opts)?;
        Ok(Workspace {
            subject,
            names: subject.names(),
            dir: dir.to_owned(),
            st,
            raw,
        })
    }

    fn buffers(&self) -> Vec<Vec<f32>> {
        self.subject
            .model
            .tensors
            .iter()
            .map(|t| vec![0.0; t.2.len()])
            .collect()
    }

    /// µs per million weights to read every tensor from the all-f32 .sdq file.
    pub fn time_f32(&self) -> Result<f64, String> {
        let mut bufs = self.buffers();
        time_per_mweight(self.subject.weights(), || {
            decode_all(&self.raw, &self.names, &mut bufs)
        })
    }

    /// Packs with `scheme` at redundancy `r` (zstd off and on) and measures the point.
    pub fn frame(
        &self,
        scheme: &Scheme,
        target: f64,
        r: f64,
        f32_us: f64,
    ) -> Result<Point, String> {
        let s = self.subject;
        let plain = pack_to(
            &self.st,
            &self.dir.join("q.sdq"),
            &scheme.options(r, &self.names, None),
        )?;
        let mut decoded = self.buffers();
        decode_all(&plain, &self.names, &mut decoded)?;
        let (mut e2, mut w2, mut worst, mut certified) = (0.0f64, 0.0f64, 0.0f64, true);
        let (mut n_min, mut n_max, mut code_bits) = (usize::MAX, 0usize, 0.0f64);
        for ((name, shape, orig), dec) in s.model.tensors.iter().zip(&decoded) {
            let info = plain.tensor(name).map_err(err(name.clone()))?;
            let Encoding::SigmaDelta(sd) = &info.encoding else {
                return Err(format!("{name:?} was not quantized"));
            };
            // Columns of W[rows, cols] (the paper's orientation): d = rows.
            let (rows, cols) = (shape[0], shape[1]);
            let n = sd.frame.frame_size();
            n_min = n_min.min(n);
            n_max = n_max.max(n);
            code_bits += (n * usize::from(sd.bits) * cols) as f64;
            for j in 0..cols {
                let ej = (0..rows)
                    .map(|i| (f64::from(orig[i * cols + j]) - f64::from(dec[i * cols + j])).powi(2))
                    .sum::<f64>();
                e2 += ej;
                worst = worst.max(ej.sqrt() / sd.max_bound);
            }
            w2 += orig.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
            certified &= sd.uncertified == 0;
        }
        certified &= worst <= 1.0;
        let (accuracy, float_accuracy) = match &s.eval {
            Some((reference, test)) => {
                let mut m = s.model.clone();
                for (t, dec) in m.tensors.iter_mut().zip(&decoded) {
                    t.2.clone_from(dec);
                }
                (reference.compare(&m, test).accuracy, reference.accuracy)
            }
            None => (f64::NAN, f64::NAN),
        };
        let weights = s.weights();
        let mut bufs = self.buffers();
        let file_bits = plain.report().quantized_bits_per_weight();
        let file_bits_total = plain.report().bits_per_weight();

        let zstd = pack_to(
            &self.st,
            &self.dir.join("qz.sdq"),
            &scheme.options(r, &self.names, Some(ZSTD_LEVEL)),
        )?;
        decode_all(&zstd, &self.names, &mut bufs)?;
        if bufs != decoded {
            return Err(format!(
                "{}: the zstd file decodes to other weights than the plain one",
                scheme.id()
            ));
        }
        // Two timing windows per file, interleaved, each keeping its minimum: a burst of load
        // on the shared machine has to cover both windows to inflate a time.
        let mut decode_us = f64::INFINITY;
        let mut decode_zstd_us = f64::INFINITY;
        for _ in 0..2 {
            decode_us = decode_us.min(time_per_mweight(weights, || {
                decode_all(&plain, &self.names, &mut bufs)
            })?);
            decode_zstd_us = decode_zstd_us.min(time_per_mweight(weights, || {
                decode_all(&zstd, &self.names, &mut bufs)
            })?);
        }
        Ok(Point {
            subject: s.id.clone(),
            method: scheme.id(),
            label: scheme.label(),
            family: scheme.family().into(),
            order: scheme.order(),
            reordered: scheme.reorder,
            delta: scheme.delta.describe(),
            k: scheme.levels,
            bits_per_code: scheme.bits_per_code(),
            target,
            redundancy: r,
            n_min,
            n_max,
            code_bits: code_bits / weights as f64,
            file_bits,
            file_bits_zstd: zstd.report().quantized_bits_per_weight(),
            file_bits_total,
            rel_err: (e2 / w2).sqrt(),
            accuracy,
            float_accuracy,
            certified,
            worst_ratio: worst,
            decode_us,
            decode_zstd_us,
            f32_us,
        })
    }

    /// Per-row round-to-nearest at `bits` (the reproduction's baseline). Storage is computed:
    /// `bits` per weight plus one f32 scale per row. Decode time is this example's loop
    /// (byte-aligned i16 codes × the row's scale, in memory) — a lower bound for a real
    /// bit-packed file.
    pub fn rtn(&self, bits: u32, f32_us: f64) -> Result<Point, String> {
        let s = self.subject;
        let (q, rel) = harness::round_to_nearest(&s.model, &self.names, bits)?;
        let accuracy = s
            .eval
            .as_ref()
            .map_or(f64::NAN, |(r, test)| r.compare(&q, test).accuracy);
        let top = ((1u32 << (bits - 1)) - 1) as f32;
        // Codes and scales as a file would hold them.
        let mut codes: Vec<(usize, Vec<i16>, Vec<f32>)> = Vec::new();
        for (_, shape, data) in &s.model.tensors {
            let cols = shape[1];
            let mut c = Vec::with_capacity(data.len());
            let mut scales = Vec::with_capacity(shape[0]);
            for row in data.chunks(cols) {
                let amax = row.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
                let scale = if amax > 0.0 { amax / top } else { 1.0 };
                scales.push(scale);
                c.extend(
                    row.iter()
                        .map(|&x| (x / scale).round().clamp(-top, top) as i16),
                );
            }
            codes.push((cols, c, scales));
        }
        let mut bufs = self.buffers();
        let decode_us = time_per_mweight(s.weights(), || {
            for ((cols, c, scales), out) in codes.iter().zip(bufs.iter_mut()) {
                for ((o, c), &scale) in out
                    .chunks_mut(*cols)
                    .zip(c.chunks(*cols))
                    .zip(scales.iter())
                {
                    for (o, &c) in o.iter_mut().zip(c) {
                        *o = f32::from(c) * scale;
                    }
                }
            }
            std::hint::black_box(&bufs);
            Ok(())
        })?;
        if bufs
            .iter()
            .zip(&q.tensors)
            .any(|(b, t)| b.iter().zip(&t.2).any(|(x, y)| x != y))
        {
            return Err(format!(
                "rtn {bits}: the timed decode differs from the harness's rounding"
            ));
        }
        let file_bits = harness::round_to_nearest_bits(&s.model, &self.names, bits);
        Ok(Point {
            subject: s.id.clone(),
            method: "rtn".into(),
            label: "round-to-nearest, per row".into(),
            family: "-".into(),
            order: 0,
            reordered: false,
            delta: "-".into(),
            k: 0,
            bits_per_code: bits,
            target: f64::from(bits),
            redundancy: 0.0,
            n_min: 0,
            n_max: 0,
            code_bits: f64::from(bits),
            file_bits,
            file_bits_zstd: f64::NAN,
            file_bits_total: f64::NAN,
            rel_err: rel,
            accuracy,
            float_accuracy: s.eval.as_ref().map_or(f64::NAN, |(r, _)| r.accuracy),
            certified: false,
            worst_ratio: f64::NAN,
            decode_us,
            decode_zstd_us: f64::NAN,
            f32_us,
        })
    }
}
