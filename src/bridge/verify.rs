//! `sdq verify`: every checksum of an .sdq file and, against the original checkpoint, every
//! raw tensor's bytes and every quantized vector's error against its certified bound.
//!
//! The certificate of vector j is checked from first principles: its frame coefficients are
//! recomputed from the original weights, the bound (δ_j·d / 2N)(σ + 1) of Theorem 3.1 applies
//! when max_n |⟨w_j, e_n⟩| ≤ (K − ½)·δ_j (MATH.md §2), and then ‖w_j − w̃_j‖ must not exceed it.
//! w̃_j is what the file decodes to, rounded to f32, so the check allows ε_f32·‖w̃_j‖ on top of
//! the bound (half an ulp per entry of the decoded vector). The coefficients recomputed here
//! carry rounding too, so the condition allows max_n |⟨w_j, e_n⟩| up to (K − ½)·δ_j·(1 +
//! [`REACH_TOLERANCE`]): a vector that *is* a frame vector, the largest of a tensor whose δ is set
//! by it, sits exactly at the edge, and its certificate must not depend on the FFT's last bit.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::calibration::Calibration;
use super::progress::Progress;
use super::safetensors::Checkpoint;
use crate::error::{Error, Result};
use crate::format::{Compression, DeltaMode, Encoding, PcmInfo, SdqFile, SigmaDeltaInfo};
use crate::frame::Permutation;
use crate::quant::bound::vector_bound;
use crate::quant::gram::Gram;
use crate::quant::pcm::PcmSynthesis;
use crate::quant::{Alphabet, Matrix, Orientation, Scheme};

/// The relative slack of the certificate's condition max_n |⟨w_j, e_n⟩| ≤ reach·δ_j when verify
/// recomputes the coefficients: far above the FFT's rounding (≈ 1e-15 relative) and far below
/// anything the bound notices (a coefficient past the reach by this fraction moves the ΣΔ state
/// past δ/2, and the bound, by less than the f32 slack of the error check).
pub const REACH_TOLERANCE: f64 = 1e-9;

/// The checksum check of one tensor.
#[derive(Debug)]
pub struct ChecksumCheck {
    /// The tensor.
    pub name: String,
    /// `None` if every section is intact, else what is wrong.
    pub error: Option<Error>,
}

/// Checks every section of every tensor (CRC, lengths, codes, δ values, permutation).
pub fn verify_checksums(sdq: &SdqFile, progress: &mut dyn Progress) -> Vec<ChecksumCheck> {
    progress.start("checksums", sdq.tensors().len() as u64);
    let out = sdq
        .tensors()
        .iter()
        .map(|t| {
            progress.tensor(&t.name);
            let error = sdq.verify(&t.name).err();
            progress.advance();
            ChecksumCheck {
                name: t.name.clone(),
                error,
            }
        })
        .collect();
    progress.finish();
    out
}

/// The comparison of one tensor of the file with the original.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorCheck {
    /// The tensor.
    pub name: String,
    /// `raw`, `sigma-delta` or `bias-of`.
    pub encoding: &'static str,
    /// Vectors checked (0 for raw tensors and biases, which are checked with their weight).
    pub vectors: u64,
    /// Largest measured ‖w_j − w̃_j‖.
    pub max_error: f64,
    /// Largest certified bound.
    pub max_bound: f64,
    /// Largest error / bound over the certified vectors.
    pub worst_ratio: f64,
    /// Certified vectors whose error exceeds the bound.
    pub violations: u64,
    /// Vectors whose coefficients break the stability condition (no bound applies).
    pub uncertified: u64,
    /// ‖W − W̃‖_F / ‖W‖_F of a quantized tensor (with its bias), measured now.
    pub relative_error: Option<f64>,
    /// Whether the bounds checked are errors the file records (measured at pack time, for
    /// codes chosen with calibration) rather than bounds computed from the steps.
    pub recorded: bool,
    /// With a calibration file: the largest relative output error ‖H^½(w_j − w̃_j)‖ / ‖H^½ w_j‖
    /// measured now, over the vectors whose record holds one.
    pub max_output_error: Option<f64>,
    /// Vectors whose output error measured now exceeds the recorded one.
    pub output_violations: u64,
    /// Anything else wrong: missing in the original, other shape or dtype, raw bytes differ,
    /// uncertified vectors, a relative error above the limit.
    pub problem: Option<String>,
}

impl TensorCheck {
    /// Whether everything about this tensor holds.
    pub fn ok(&self) -> bool {
        self.violations == 0 && self.output_violations == 0 && self.problem.is_none()
    }
}

/// The comparison of a whole file with the original.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// One per tensor of the file, in file order.
    pub tensors: Vec<TensorCheck>,
    /// Tensors of the original that the file does not hold.
    pub missing: Vec<String>,
}

impl VerifyReport {
    /// Whether every tensor holds and none is missing.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.tensors.iter().all(TensorCheck::ok)
    }
    /// Vectors checked in total.
    pub fn vectors(&self) -> u64 {
        self.tensors.iter().map(|t| t.vectors).sum()
    }
    /// Bound violations in total.
    pub fn violations(&self) -> u64 {
        self.tensors.iter().map(|t| t.violations).sum()
    }
    /// Uncertified vectors in total.
    pub fn uncertified(&self) -> u64 {
        self.tensors.iter().map(|t| t.uncertified).sum()
    }
    /// Largest error / bound over every certified vector.
    pub fn worst_ratio(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.worst_ratio)
            .fold(0.0, f64::max)
    }
}

/// Reads the per-vector δ values of a sigma-delta tensor straight from the file at `path`
/// (CRC checked, zstd decompressed). The reader does not expose them yet.
fn vector_deltas(path: &Path, name: &str, q: &SigmaDeltaInfo) -> Result<Vec<f64>> {
    let m = usize::try_from(q.vector_count()).unwrap_or(usize::MAX);
    let s = match (&q.delta, &q.deltas) {
        (DeltaMode::Tensor(d), _) => return Ok(vec![*d; m]),
        (DeltaMode::PerVector, Some(s)) => *s,
        (DeltaMode::PerVector, None) => {
            return Err(Error::param(format!(
                "tensor {name:?} has per-vector step sizes but no deltas section"
            )))
        }
    };
    let io = |e| Error::io(path, e);
    let mut f = File::open(path).map_err(io)?;
    f.seek(SeekFrom::Start(s.offset)).map_err(io)?;
    let mut stored = Vec::new();
    f.take(s.stored_len).read_to_end(&mut stored).map_err(io)?;
    let computed = crc32fast::hash(&stored);
    if computed != s.crc32 || stored.len() as u64 != s.stored_len {
        return Err(Error::Checksum {
            tensor: name.to_owned(),
            what: "deltas",
            stored: s.crc32,
            computed,
        });
    }
    let bytes = match s.compression {
        Compression::None => stored,
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::bulk::decompress(&stored, s.decoded_len as usize)
            .map_err(|e| Error::Data(format!("tensor {name:?}: deltas section: {e}")))?,
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => {
            return Err(Error::param(
                "this build has no zstd support (enable the `zstd` feature)",
            ))
        }
    };
    if bytes.len() != m * 8 {
        return Err(Error::Data(format!(
            "tensor {name:?}: deltas section holds {} bytes, {m} vectors need {}",
            bytes.len(),
            m * 8
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            f64::from_le_bytes(b)
        })
        .collect())
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Compares the file `sdq` (opened from `sdq_path`) with the original checkpoint `original`.
///
/// A quantized tensor fails when a vector's error exceeds its certified bound (or, for a pcm
/// tensor quantized with calibration, the error its record holds), when a vector is not
/// certified, or when its relative error ‖W − W̃‖/‖W‖ exceeds `max_relative_error`. With
/// `calibration`, the recorded relative output errors of the tensors it covers are measured
/// again with their Gram matrices, and one that is exceeded fails too.
pub fn verify_against(
    sdq: &SdqFile,
    sdq_path: &Path,
    original: &Checkpoint,
    max_relative_error: f64,
    calibration: Option<&Calibration>,
    progress: &mut dyn Progress,
) -> Result<VerifyReport> {
    progress.start("comparing", sdq.tensors().len() as u64);
    let mut tensors = Vec::with_capacity(sdq.tensors().len());
    for (index, t) in sdq.tensors().iter().enumerate() {
        progress.tensor(&t.name);
        let mut c = TensorCheck {
            name: t.name.clone(),
            encoding: t.encoding.name(),
            vectors: 0,
            max_error: 0.0,
            max_bound: 0.0,
            worst_ratio: 0.0,
            violations: 0,
            uncertified: 0,
            relative_error: None,
            recorded: false,
            max_output_error: None,
            output_violations: 0,
            problem: None,
        };
        match original.tensor(&t.name) {
            Err(_) => c.problem = Some("not in the original".into()),
            Ok(o) if o.dtype != t.dtype || o.shape != t.shape => {
                c.problem = Some(format!(
                    "the original is {} {:?}, the file says {} {:?}",
                    o.dtype, o.shape, t.dtype, t.shape
                ))
            }
            Ok(o) => match &t.encoding {
                Encoding::Raw { .. } => {
                    if sdq.raw_bytes(&t.name)?.as_ref() != original.bytes(o)?.as_slice() {
                        c.problem = Some("raw bytes differ from the original".into());
                    }
                }
                Encoding::BiasOf { .. } => {}
                Encoding::SigmaDelta(q) => {
                    let bias = sdq.tensors().iter().find(
                        |b| matches!(b.encoding, Encoding::BiasOf { weight } if weight == index),
                    );
                    check_quantized(
                        sdq,
                        sdq_path,
                        original,
                        &t.name,
                        bias.map(|b| &b.name),
                        q,
                        &mut c,
                    )?;
                }
                Encoding::Pcm(q) => {
                    let bias = sdq.tensors().iter().find(
                        |b| matches!(b.encoding, Encoding::BiasOf { weight } if weight == index),
                    );
                    let gram = match calibration {
                        Some(cal) => cal.gram(&t.name)?,
                        None => None,
                    };
                    check_pcm(
                        sdq,
                        original,
                        &t.name,
                        bias.map(|b| &b.name),
                        q,
                        gram.as_ref(),
                        &mut c,
                    )?;
                }
            },
        }
        if let (Some(e), None) = (c.relative_error, &c.problem) {
            if e > max_relative_error {
                c.problem = Some(format!(
                    "relative error {e:.4} is above the limit {max_relative_error} (the tensor is not usable as stored)"
                ));
            }
        }
        tensors.push(c);
        progress.advance();
    }
    progress.finish();
    let missing = original
        .tensors()
        .iter()
        .filter(|o| sdq.tensor(&o.name).is_err())
        .map(|o| o.name.clone())
        .collect();
    Ok(VerifyReport { tensors, missing })
}

/// The original and the decoded weight of a quantized tensor, each with its bias if one was
/// quantized with it.
struct Pair {
    w: Vec<f32>,
    b: Option<Vec<f32>>,
    w_tilde: Vec<f32>,
    b_tilde: Option<Vec<f32>>,
    rows: usize,
    cols: usize,
}

impl Pair {
    /// Loads both; `None` (with `c.problem` set) when the bias is not in the original.
    fn load(
        sdq: &SdqFile,
        original: &Checkpoint,
        name: &str,
        bias: Option<&String>,
        rows: u64,
        cols: u64,
        c: &mut TensorCheck,
    ) -> Result<Option<Pair>> {
        let w = original.to_f32(original.tensor(name)?)?;
        let w_tilde = sdq.decode(name)?;
        let (b, b_tilde) = match bias {
            Some(bn) => match original.tensor(bn) {
                Ok(ob) => (Some(original.to_f32(ob)?), Some(sdq.decode(bn)?)),
                Err(_) => {
                    c.problem = Some(format!("its bias {bn:?} is not in the original"));
                    return Ok(None);
                }
            },
            None => (None, None),
        };
        Ok(Some(Pair {
            w,
            b,
            w_tilde,
            b_tilde,
            rows: rows as usize,
            cols: cols as usize,
        }))
    }

    /// The original and decoded matrices [W | b] (an original with a non-finite weight is a
    /// data error naming the tensor).
    fn matrices(&self, name: &str) -> Result<(Matrix<'_>, Matrix<'_>)> {
        let m = super::pack::matrix(&self.w, self.b.as_deref(), self.rows, self.cols)
            .map_err(|e| Error::Data(format!("tensor {name:?}: {e}")))?;
        let mt = super::pack::matrix(&self.w_tilde, self.b_tilde.as_deref(), self.rows, self.cols)?;
        Ok((m, mt))
    }
}

fn check_quantized(
    sdq: &SdqFile,
    sdq_path: &Path,
    original: &Checkpoint,
    name: &str,
    bias: Option<&String>,
    q: &SigmaDeltaInfo,
    c: &mut TensorCheck,
) -> Result<()> {
    let Some(pair) = Pair::load(sdq, original, name, bias, q.rows, q.cols, c)? else {
        return Ok(());
    };
    let (m, mt) = pair.matrices(name)?;
    let frame = q.frame.build()?;
    let (n, d) = (frame.frame_size(), frame.dim());
    let sigma = if q.permutation.is_none() {
        // The frame constant of the certificate: σ(F, id), or σ₂(F, id) + tail for second order.
        let s = match q.scheme {
            Scheme::FirstOrder => frame.variation_identity(),
            Scheme::SecondOrder => {
                let (sigma2, tail) = frame.variation2(&Permutation::Identity)?;
                sigma2 + tail
            }
        };
        if q.sigma < s * (1.0 - 1e-9) {
            c.problem = Some(format!(
                "the file's sigma {} is below the frame's {s}",
                q.sigma
            ));
        }
        s
    } else {
        q.sigma
    };
    let deltas = vector_deltas(sdq_path, name, q)?;
    // The largest |x| / δ the scheme certifies (K − ½ first order, K − 3/2 second order).
    let reach = q.scheme.reach(Alphabet::new(q.k)?)?;
    let orientation: Orientation = q.orientation;
    let mut ws = frame.workspace();
    let (mut wv, mut tv, mut x) = (vec![0.0; d], vec![0.0; d], vec![0.0; n]);
    let (mut e2, mut w2) = (0.0, 0.0);
    for (j, &delta) in deltas.iter().enumerate() {
        m.load_vector(orientation, j, &mut wv)
            .map_err(|e| Error::Data(format!("tensor {name:?}: {e}")))?;
        mt.load_vector(orientation, j, &mut tv)?;
        let err = norm(&wv.iter().zip(&tv).map(|(a, b)| a - b).collect::<Vec<f64>>());
        e2 += err * err;
        w2 += norm(&wv).powi(2);
        c.relative_error = Some(crate::quant::pcm::relative(e2.sqrt(), w2.sqrt()));
        c.vectors += 1;
        c.max_error = c.max_error.max(err);
        frame.analyse(&wv, &mut x, &mut ws)?;
        let max_coeff = x.iter().fold(0.0f64, |a, &v| a.max(v.abs()));
        if max_coeff > reach * delta * (1.0 + REACH_TOLERANCE) {
            c.uncertified += 1;
            continue;
        }
        let bound = vector_bound(delta, d, n, sigma);
        c.max_bound = c.max_bound.max(bound);
        let slack = f64::from(f32::EPSILON) * norm(&tv);
        if err > bound + slack {
            c.violations += 1;
        }
        let ratio = if bound > 0.0 {
            err / bound
        } else if err > slack {
            f64::INFINITY
        } else {
            0.0
        };
        c.worst_ratio = c.worst_ratio.max(ratio);
    }
    if c.uncertified > q.uncertified && c.problem.is_none() {
        c.problem = Some(format!(
            "{} vectors are not certified, the file declares {}",
            c.uncertified, q.uncertified
        ));
    } else if c.uncertified > 0 && c.problem.is_none() {
        c.problem = Some(format!(
            "{} of {} vectors are not certified (their coefficients overload the alphabet, so no bound holds; use a larger K or a coarser step)",
            c.uncertified, c.vectors
        ));
    }
    Ok(())
}

/// Relative slack of a recorded output error: it was computed at pack time from the
/// quantizer's f64 arithmetic and the damped factor, the check from the decoded f32 values.
const OUTPUT_SLACK: f64 = 1e-3;

fn check_pcm(
    sdq: &SdqFile,
    original: &Checkpoint,
    name: &str,
    bias: Option<&String>,
    q: &PcmInfo,
    gram: Option<&Gram>,
    c: &mut TensorCheck,
) -> Result<()> {
    let Some(pair) = Pair::load(sdq, original, name, bias, q.rows, q.cols, c)? else {
        return Ok(());
    };
    let recorded = sdq.pcm_errors(name)?;
    c.recorded = recorded.is_some();
    let output = recorded.as_ref().and_then(|r| r.output.as_ref());
    let gram = match (gram, output) {
        (Some(g), Some(_)) if q.orientation == Orientation::Rows => {
            let d = q.d as usize;
            if g.dim() == d {
                Some(g.clone())
            } else if q.has_bias && g.dim() + 1 == d {
                Some(g.with_bias())
            } else {
                c.problem = Some(format!(
                    "the calibration's Gram matrix has dimension {}, the tensor's vectors {d}",
                    g.dim()
                ));
                return Ok(());
            }
        }
        _ => None,
    };
    let (m, mt) = pair.matrices(name)?;
    let d = q.d as usize;
    let synth = PcmSynthesis::new(q.frame, d, q.sign_seed, q.group as usize)?;
    let steps = sdq.pcm_steps(name)?;
    let groups = synth.groups();
    let (mut wv, mut tv) = (vec![0.0; d], vec![0.0; d]);
    let (mut e2, mut w2) = (0.0, 0.0);
    for (j, sj) in steps.chunks_exact(groups.max(1)).enumerate() {
        m.load_vector(q.orientation, j, &mut wv)
            .map_err(|e| Error::Data(format!("tensor {name:?}: {e}")))?;
        mt.load_vector(q.orientation, j, &mut tv)?;
        let err = norm(&wv.iter().zip(&tv).map(|(a, b)| a - b).collect::<Vec<f64>>());
        e2 += err * err;
        w2 += norm(&wv).powi(2);
        c.vectors += 1;
        c.max_error = c.max_error.max(err);
        let sj: Vec<f64> = sj.iter().map(|&s| f64::from(s)).collect();
        let bound = match &recorded {
            Some(r) => f64::from(r.weight.get(j).copied().unwrap_or(0.0)),
            None => synth.bound(&sj),
        };
        if let (Some(g), Some(o)) = (&gram, output) {
            let e: Vec<f64> = wv.iter().zip(&tv).map(|(a, b)| a - b).collect();
            let rel = crate::quant::pcm::relative(
                g.quadratic(&e).max(0.0).sqrt(),
                g.quadratic(&wv).max(0.0).sqrt(),
            );
            c.max_output_error = Some(c.max_output_error.unwrap_or(0.0).max(rel));
            let stored = f64::from(o.get(j).copied().unwrap_or(0.0));
            if rel > stored * (1.0 + OUTPUT_SLACK) + 1e-6 {
                c.output_violations += 1;
            }
        }
        c.max_bound = c.max_bound.max(bound);
        let slack = f64::from(f32::EPSILON) * norm(&tv) + 1e-9 * bound;
        if err > bound + slack {
            c.violations += 1;
        }
        let ratio = if bound > 0.0 {
            err / bound
        } else if err > slack {
            f64::INFINITY
        } else {
            0.0
        };
        c.worst_ratio = c.worst_ratio.max(ratio);
    }
    c.relative_error = Some(crate::quant::pcm::relative(e2.sqrt(), w2.sqrt()));
    Ok(())
}
