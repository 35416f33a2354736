//! Streaming writers: [`SdqStreamWriter`] over any `Write + Seek`, and [`SdqWriter`], which
//! writes a temporary file beside the target and renames it over the target only when the file
//! is complete, synced and accepted by the reader's own parser.
//!
//! The header's size depends only on the plan (records are fixed-width apart from names and
//! shapes), so a zero placeholder is written first, the sections stream out in plan order with
//! their CRCs computed on the way, and `finish` goes back to fill in the header and preamble.
//! Only the small header table is kept in memory.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use super::header::{
    self, Compression, DeltaMode, DeltaPolicy, Encoding, PcmInfo, Section, SigmaDeltaInfo,
    TensorInfo,
};
use super::layout::{
    align_up, pcm, sigma_delta as sd, Dtype, PREAMBLE_LEN, SECTION_DESCRIPTOR_LEN,
};
use crate::atomic::AtomicFile;
use crate::codes::bitpack;
use crate::error::{Error, Result};
use crate::limits;
use crate::quant::pcm::{ErrorRecord, PcmTensor};
use crate::quant::tensor::MatrixLayout;
use crate::quant::{Deltas, QuantizedTensor};

/// How a planned tensor will be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorKind {
    /// The original bytes ([`SdqStreamWriter::write_raw`]).
    Raw,
    /// Frame-quantized ([`SdqStreamWriter::write_quantized`], or with `norms`
    /// [`SdqStreamWriter::write_quantized_measured`]); `has_bias` says whether the quantized
    /// matrix is [W | b], whose bias is then planned as a [`TensorKind::BiasOf`].
    SigmaDelta {
        /// Whether the bias is quantized with this weight.
        has_bias: bool,
        /// Whether the record holds the measured ‖W − W̃‖_F and ‖W‖_F (a version-2 record).
        norms: bool,
    },
    /// Rounded frame coefficients ([`SdqStreamWriter::write_pcm`]); `has_bias` as for
    /// sigma-delta.
    Pcm {
        /// Whether the bias is quantized with this weight.
        has_bias: bool,
        /// What the record holds per vector besides codes and steps (measured errors make it a
        /// version-2 record with an errors section).
        record: ErrorRecord,
    },
    /// The bias quantized with the sigma-delta tensor named `weight` (no data of its own).
    BiasOf {
        /// Name of the weight tensor.
        weight: String,
    },
}

/// One tensor of a file to be written: name, original dtype, shape and how it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlan {
    /// Unique, non-empty name (≤ 1024 bytes).
    pub name: String,
    /// The original dtype.
    pub dtype: Dtype,
    /// The shape.
    pub shape: Vec<u64>,
    /// How it is stored.
    pub kind: TensorKind,
}

impl TensorPlan {
    /// A tensor stored raw.
    pub fn raw(name: impl Into<String>, dtype: Dtype, shape: &[u64]) -> Self {
        TensorPlan {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            kind: TensorKind::Raw,
        }
    }

    /// A frame-quantized tensor (a version-1 record, without measured norms).
    pub fn sigma_delta(
        name: impl Into<String>,
        dtype: Dtype,
        shape: &[u64],
        has_bias: bool,
    ) -> Self {
        TensorPlan {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            kind: TensorKind::SigmaDelta {
                has_bias,
                norms: false,
            },
        }
    }

    /// A frame-quantized tensor whose record holds the measured ‖W − W̃‖_F and ‖W‖_F (a
    /// version-2 record, written by [`SdqStreamWriter::write_quantized_measured`]).
    pub fn sigma_delta_measured(
        name: impl Into<String>,
        dtype: Dtype,
        shape: &[u64],
        has_bias: bool,
    ) -> Self {
        TensorPlan {
            kind: TensorKind::SigmaDelta {
                has_bias,
                norms: true,
            },
            ..Self::sigma_delta(name, dtype, shape, has_bias)
        }
    }

    /// A pcm tensor certified a priori by its steps (the result of
    /// [`crate::quant::pcm::quantize`]).
    pub fn pcm(name: impl Into<String>, dtype: Dtype, shape: &[u64], has_bias: bool) -> Self {
        Self::pcm_recording(name, dtype, shape, has_bias, ErrorRecord::APriori)
    }

    /// A pcm tensor that records `record` per vector (the result of
    /// [`crate::quant::pcm::quantize_calibrated`] records [`ErrorRecord::WeightAndOutput`]).
    pub fn pcm_recording(
        name: impl Into<String>,
        dtype: Dtype,
        shape: &[u64],
        has_bias: bool,
        record: ErrorRecord,
    ) -> Self {
        TensorPlan {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            kind: TensorKind::Pcm { has_bias, record },
        }
    }

    /// A bias quantized with the weight `weight` (shape [rows of the weight]).
    pub fn bias_of(
        name: impl Into<String>,
        dtype: Dtype,
        rows: u64,
        weight: impl Into<String>,
    ) -> Self {
        TensorPlan {
            name: name.into(),
            dtype,
            shape: vec![rows],
            kind: TensorKind::BiasOf {
                weight: weight.into(),
            },
        }
    }

    /// Length of this tensor's header record in bytes (spec §5).
    pub fn record_len(&self) -> u64 {
        let body = match self.kind {
            TensorKind::Raw => SECTION_DESCRIPTOR_LEN,
            TensorKind::SigmaDelta { norms, .. } => {
                sd::FIXED_LEN
                    + sd::SLOTS * SECTION_DESCRIPTOR_LEN
                    + if norms { sd::NORMS_LEN } else { 0 }
            }
            TensorKind::Pcm {
                record: ErrorRecord::APriori,
                ..
            } => pcm::FIXED_LEN + pcm::SLOTS * SECTION_DESCRIPTOR_LEN,
            TensorKind::Pcm { .. } => {
                pcm::FIXED_LEN_MEASURED + pcm::SLOTS_MEASURED * SECTION_DESCRIPTOR_LEN
            }
            TensorKind::BiasOf { .. } => 4,
        };
        4 + self.name.len() as u64 + 1 + 1 + 8 * self.shape.len() as u64 + 1 + body
    }
}

/// The length in bytes of the header (metadata and tensor records, spec §4) of a file of the
/// tensors of `plan` with `metadata`: what follows the preamble, before the first section.
pub fn header_len(plan: &[TensorPlan], metadata: &[(String, String)]) -> u64 {
    let meta: u64 = metadata
        .iter()
        .map(|(k, v)| 8 + k.len() as u64 + v.len() as u64)
        .sum();
    8 + meta + plan.iter().map(TensorPlan::record_len).sum::<u64>()
}

/// Writes an .sdq file to any `Write + Seek` sink, tensor by tensor in plan order.
pub struct SdqStreamWriter<W: Write + Seek> {
    out: W,
    plan: Vec<TensorPlan>,
    metadata: Vec<(String, String)>,
    encodings: Vec<Option<Encoding>>,
    bias_index: HashMap<usize, usize>,
    header_len: u64,
    pos: u64,
    next: usize,
    zstd_level: Option<i32>,
}

fn check_limit(what: &'static str, value: u64, limit: u64) -> Result<()> {
    if value > limit {
        Err(Error::Limit { what, value, limit })
    } else {
        Ok(())
    }
}

impl SdqStreamWriter<std::io::Cursor<Vec<u8>>> {
    /// A writer into memory; `finish` returns the cursor (`.into_inner()` gives the bytes).
    pub fn in_memory(plan: &[TensorPlan], metadata: &[(String, String)]) -> Result<Self> {
        Self::new(std::io::Cursor::new(Vec::new()), plan, metadata)
    }
}

impl<W: Write + Seek> SdqStreamWriter<W> {
    /// Starts a file in `out` (at its current position 0) for the tensors of `plan` and the
    /// given metadata. The plan is checked now: names, shapes, limits, bias links.
    pub fn new(mut out: W, plan: &[TensorPlan], metadata: &[(String, String)]) -> Result<Self> {
        check_limit(
            "metadata entries",
            metadata.len() as u64,
            limits::MAX_METADATA_ENTRIES,
        )?;
        check_limit("tensors", plan.len() as u64, limits::MAX_TENSORS)?;
        let mut keys = HashSet::new();
        for (k, v) in metadata {
            check_limit("metadata key bytes", k.len() as u64, limits::MAX_KEY_LEN)?;
            check_limit(
                "metadata value bytes",
                v.len() as u64,
                limits::MAX_VALUE_LEN,
            )?;
            if k.is_empty() || !keys.insert(k.as_str()) {
                return Err(Error::param(format!(
                    "metadata key {k:?} is empty or repeated"
                )));
            }
        }
        let mut names = HashMap::new();
        for (i, t) in plan.iter().enumerate() {
            check_limit(
                "tensor name bytes",
                t.name.len() as u64,
                limits::MAX_NAME_LEN,
            )?;
            check_limit("tensor rank", t.shape.len() as u64, limits::MAX_RANK)?;
            if t.name.is_empty() || names.insert(t.name.as_str(), i).is_some() {
                return Err(Error::param(format!(
                    "tensor name {:?} is empty or repeated",
                    t.name
                )));
            }
            let elements = t
                .shape
                .iter()
                .try_fold(1u64, |a, &d| a.checked_mul(d))
                .ok_or_else(|| Error::param(format!("the shape of {:?} overflows", t.name)))?;
            check_limit("tensor elements", elements, limits::MAX_ELEMENTS)?;
        }
        let header_len = header_len(plan, metadata);
        check_limit("header bytes", header_len, limits::MAX_HEADER_LEN)?;
        let mut bias_index = HashMap::new();
        for (i, t) in plan.iter().enumerate() {
            if let TensorKind::BiasOf { weight } = &t.kind {
                let w = names.get(weight.as_str()).copied();
                let ok = w.and_then(|w| plan.get(w)).is_some_and(|p| {
                    (matches!(p.kind, TensorKind::SigmaDelta { has_bias: true, .. })
                        || matches!(p.kind, TensorKind::Pcm { has_bias: true, .. }))
                        && p.shape.first().is_some_and(|&r| t.shape == [r])
                });
                match w {
                    Some(w) if ok && !bias_index.values().any(|&x| x == w) => {
                        bias_index.insert(i, w);
                    }
                    _ => {
                        return Err(Error::param(format!(
                            "bias {:?} must name a distinct sigma-delta weight planned with has_bias and have shape [rows]",
                            t.name
                        )))
                    }
                }
            }
        }
        for (i, t) in plan.iter().enumerate() {
            if (matches!(t.kind, TensorKind::SigmaDelta { has_bias: true, .. })
                || matches!(t.kind, TensorKind::Pcm { has_bias: true, .. }))
                && !bias_index.values().any(|&w| w == i)
            {
                return Err(Error::param(format!(
                    "tensor {:?} is planned with a bias but no bias-of entry names it",
                    t.name
                )));
            }
        }
        let start = PREAMBLE_LEN + header_len;
        out.seek(SeekFrom::Start(0)).map_err(io)?;
        write_zeros(&mut out, start)?;
        let mut w = SdqStreamWriter {
            out,
            plan: plan.to_vec(),
            metadata: metadata.to_vec(),
            encodings: vec![None; plan.len()],
            bias_index,
            header_len,
            pos: start,
            next: 0,
            zstd_level: None,
        };
        w.skip_bias_entries();
        Ok(w)
    }

    /// Compresses each following section with zstd at `level` (when that makes it smaller), or
    /// stores sections as they are (`None`, the default).
    pub fn set_zstd(&mut self, level: Option<i32>) -> Result<()> {
        if level.is_some() && !cfg!(feature = "zstd") {
            return Err(Error::param("zstd compression needs the `zstd` feature"));
        }
        self.zstd_level = level;
        Ok(())
    }

    fn skip_bias_entries(&mut self) {
        while let Some(p) = self.plan.get(self.next) {
            let TensorKind::BiasOf { .. } = p.kind else {
                break;
            };
            let weight = self.bias_index.get(&self.next).copied().unwrap_or(0);
            if let Some(e) = self.encodings.get_mut(self.next) {
                *e = Some(Encoding::BiasOf { weight });
            }
            self.next += 1;
        }
    }

    /// The next planned tensor, which must be `name`.
    fn expect(&self, name: &str) -> Result<&TensorPlan> {
        match self.plan.get(self.next) {
            Some(p) if p.name == name => Ok(p),
            Some(p) => Err(Error::param(format!(
                "tensors must be written in plan order: expected {:?}, got {name:?}",
                p.name
            ))),
            None => Err(Error::param(format!(
                "every planned tensor is written; {name:?} is not expected"
            ))),
        }
    }

    fn done(&mut self, encoding: Encoding) {
        if let Some(e) = self.encodings.get_mut(self.next) {
            *e = Some(encoding);
        }
        self.next += 1;
        self.skip_bias_entries();
    }

    /// Writes one section at the next aligned offset (after zero padding).
    fn section(&mut self, bytes: &[u8]) -> Result<Section> {
        let offset = align_up(self.pos).ok_or_else(|| Error::param("file offset overflows"))?;
        write_zeros(&mut self.out, offset - self.pos)?;
        let decoded_len = bytes.len() as u64;
        check_limit("section bytes", decoded_len, limits::MAX_SECTION_LEN)?;
        let compressed = self.compress(bytes)?;
        let (stored, compression): (&[u8], _) = match &compressed {
            Some(c) if c.len() < bytes.len() => (c, Compression::Zstd),
            _ => (bytes, Compression::None),
        };
        self.out.write_all(stored).map_err(io)?;
        self.pos = offset + stored.len() as u64;
        Ok(Section {
            offset,
            stored_len: stored.len() as u64,
            decoded_len,
            compression,
            crc32: crc32fast::hash(stored),
        })
    }

    #[cfg(feature = "zstd")]
    fn compress(&self, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.zstd_level {
            Some(level) => zstd::bulk::compress(bytes, level)
                .map(Some)
                .map_err(|e| Error::param(format!("zstd compression failed: {e}"))),
            None => Ok(None),
        }
    }

    #[cfg(not(feature = "zstd"))]
    fn compress(&self, _: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }

    /// Writes the next planned tensor, a raw one: `bytes` are its elements, row-major,
    /// little-endian, exactly elements × dtype size bytes.
    pub fn write_raw(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.expect(name)?;
        if p.kind != TensorKind::Raw {
            return Err(Error::param(format!(
                "tensor {name:?} is not planned as raw"
            )));
        }
        let want = p
            .shape
            .iter()
            .try_fold(p.dtype.size(), |a, &d| a.checked_mul(d));
        if want != Some(bytes.len() as u64) {
            return Err(Error::param(format!(
                "tensor {name:?} needs {want:?} bytes for its shape and dtype, got {}",
                bytes.len()
            )));
        }
        let data = self.section(bytes)?;
        self.done(Encoding::Raw { data });
        Ok(())
    }

    /// Writes the next planned tensor, a frame-quantized one, from Algorithm 1's result.
    /// `policy` is recorded for information (pass [`DeltaPolicy::from_step`] of the quantizer's
    /// policy, or [`DeltaPolicy::Uniform`] for a network-wide δ).
    pub fn write_quantized(
        &mut self,
        name: &str,
        q: &QuantizedTensor,
        policy: DeltaPolicy,
    ) -> Result<()> {
        self.write_sigma_delta(name, q, policy, None)
    }

    /// [`SdqStreamWriter::write_quantized`] for a tensor planned with
    /// [`TensorPlan::sigma_delta_measured`]: the record also holds `error_norm` = ‖W − W̃‖_F and
    /// `weight_norm` = ‖W‖_F over [W | b], as the caller measured them (finite, ≥ 0).
    pub fn write_quantized_measured(
        &mut self,
        name: &str,
        q: &QuantizedTensor,
        policy: DeltaPolicy,
        error_norm: f64,
        weight_norm: f64,
    ) -> Result<()> {
        self.write_sigma_delta(name, q, policy, Some((error_norm, weight_norm)))
    }

    fn write_sigma_delta(
        &mut self,
        name: &str,
        q: &QuantizedTensor,
        policy: DeltaPolicy,
        measured: Option<(f64, f64)>,
    ) -> Result<()> {
        let p = self.expect(name)?;
        let TensorKind::SigmaDelta { has_bias, norms } = p.kind else {
            return Err(Error::param(format!(
                "tensor {name:?} is not planned as sigma-delta"
            )));
        };
        match (norms, measured) {
            (true, None) => {
                return Err(Error::param(format!(
                    "tensor {name:?} is planned with measured norms: use write_quantized_measured"
                )))
            }
            (false, Some(_)) => {
                return Err(Error::param(format!(
                    "tensor {name:?} is planned without measured norms: use write_quantized"
                )))
            }
            (_, Some((e, w))) if !(e.is_finite() && e >= 0.0 && w.is_finite() && w >= 0.0) => {
                return Err(Error::param(format!(
                    "tensor {name:?}: the measured norms ({e}, {w}) must be finite and >= 0"
                )))
            }
            _ => {}
        }
        let l = q.layout();
        let (rows, cols) = check_matrix(p, name, &l, has_bias, "sigma-delta")?;
        let alphabet = q.alphabet();
        let bits = alphabet.bits();
        // Algorithm 1 wrote the codes as their b-bit stream already.
        let count = (q.frame().frame_size() as u64).saturating_mul(l.vector_count() as u64);
        if bitpack::packed_len(count, bits) != Some(q.packed_codes().len() as u64) {
            return Err(Error::param(format!(
                "tensor {name:?}: the quantized codes are not {count} codes of {bits} bits"
            )));
        }
        let codes = self.section(q.packed_codes())?;
        let (delta, deltas) = match q.deltas() {
            Deltas::Tensor(d) => (DeltaMode::Tensor(*d), None),
            Deltas::Vector(v) => {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                (DeltaMode::PerVector, Some(self.section(&bytes)?))
            }
        };
        let permutation = if q.order().is_identity() {
            None
        } else {
            let n = q.frame().frame_size();
            let bytes: Vec<u8> = (0..n)
                .flat_map(|k| (q.order().position(k) as u32).to_le_bytes())
                .collect();
            Some(self.section(&bytes)?)
        };
        let info = SigmaDeltaInfo {
            scheme: q.scheme(),
            scheme_version: if measured.is_some() {
                sd::SCHEME_VERSION_NORMS
            } else {
                sd::SCHEME_VERSION
            },
            norms: measured,
            frame: q.frame(),
            orientation: l.orientation,
            has_bias,
            k: alphabet.k(),
            bits: bits as u8,
            delta,
            policy,
            sigma: q.sigma(),
            max_bound: q.max_bound(),
            uncertified: q.uncertified_count() as u64,
            codes,
            deltas,
            permutation,
            rows,
            cols,
        };
        self.done(Encoding::SigmaDelta(Box::new(info)));
        Ok(())
    }

    /// Writes the next planned tensor, a pcm one, from [`crate::quant::pcm::quantize`]'s result.
    pub fn write_pcm(&mut self, name: &str, q: &PcmTensor) -> Result<()> {
        let p = self.expect(name)?;
        let TensorKind::Pcm { has_bias, record } = p.kind else {
            return Err(Error::param(format!(
                "tensor {name:?} is not planned as pcm"
            )));
        };
        let l = q.layout;
        let (rows, cols) = check_matrix(p, name, &l, has_bias, "pcm")?;
        if q.record != record {
            return Err(Error::param(format!(
                "tensor {name:?} was planned to record {record:?} per vector, the quantizer \
                 gives {:?}",
                q.record
            )));
        }
        let m = l.vector_count();
        if q.vector_errors.len() != m * usize::from(record != ErrorRecord::APriori)
            || q.output_errors.len() != m * usize::from(record == ErrorRecord::WeightAndOutput)
        {
            return Err(Error::param(format!(
                "tensor {name:?}: the recorded errors do not match its {m} vectors"
            )));
        }
        let codes = self.section(&q.codes_section)?;
        let steps = self.section(&q.steps_bytes())?;
        let errors = if record == ErrorRecord::APriori {
            None
        } else {
            Some(self.section(&q.errors_bytes())?)
        };
        let d = l.vector_len() as u64;
        let info = PcmInfo {
            scheme_version: if errors.is_some() {
                pcm::SCHEME_VERSION_MEASURED
            } else {
                pcm::SCHEME_VERSION
            },
            frame: q.frame,
            orientation: l.orientation,
            has_bias,
            k: q.k,
            sign_seed: q.sign_seed,
            group: u32::try_from(q.group).map_err(|_| Error::param("step group too large"))?,
            step_type: q.step_type,
            coding: q.coding,
            max_bound: q.max_bound,
            error_norm: q.error_norm,
            weight_norm: q.weight_norm,
            codes,
            steps,
            record,
            errors,
            rows,
            cols,
            d,
        };
        self.done(Encoding::Pcm(Box::new(info)));
        Ok(())
    }

    /// Completes the file: fills in the header and preamble (after checking them with the
    /// reader's own parser) and returns the sink, positioned at the end of the file.
    pub fn finish(mut self) -> Result<W> {
        let mut tensors = Vec::with_capacity(self.plan.len());
        for (p, e) in self.plan.iter().zip(&self.encodings) {
            let Some(encoding) = e.clone() else {
                return Err(Error::param(format!(
                    "tensor {:?} was never written",
                    p.name
                )));
            };
            let elements = p.shape.iter().product();
            tensors.push(TensorInfo {
                name: p.name.clone(),
                dtype: p.dtype,
                shape: p.shape.clone(),
                elements,
                encoding,
                record_len: p.record_len(),
            });
        }
        let hbytes = header::encode_header(&self.metadata, &tensors);
        if hbytes.len() as u64 != self.header_len {
            return Err(Error::param(format!(
                "internal error: header is {} bytes, {} were planned",
                hbytes.len(),
                self.header_len
            )));
        }
        let file_len = self.pos;
        let pre_bytes = header::encode_preamble(&hbytes, file_len);
        // Refuse to produce a file the reader would reject (padding is zero by construction).
        let pre = header::parse_preamble(&pre_bytes, file_len)?;
        header::parse_header(&hbytes, &pre)?;
        self.out.seek(SeekFrom::Start(0)).map_err(io)?;
        self.out.write_all(&pre_bytes).map_err(io)?;
        self.out.write_all(&hbytes).map_err(io)?;
        self.out.seek(SeekFrom::Start(file_len)).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(self.out)
    }
}

/// Checks that the planned tensor `p` fits the quantized matrix `l` (rank ≥ 2, a float dtype,
/// the same rows, columns and bias) and returns its matrix view (rows, cols).
fn check_matrix(
    p: &TensorPlan,
    name: &str,
    l: &MatrixLayout,
    has_bias: bool,
    kind: &str,
) -> Result<(u64, u64)> {
    let rows = p.shape.first().copied().unwrap_or(0);
    let cols = p.shape.iter().skip(1).product::<u64>();
    if p.shape.len() < 2
        || l.rows as u64 != rows
        || l.cols as u64 != cols
        || l.has_bias != has_bias
        || !p.dtype.is_quantizable_float()
    {
        return Err(Error::param(format!(
            "tensor {name:?} is planned as {} {:?} (bias: {has_bias}), the quantized matrix is {} x {} (bias: {}); {kind} needs rank >= 2 and a float dtype",
            p.dtype, p.shape, l.rows, l.cols, l.has_bias
        )));
    }
    Ok((rows, cols))
}

fn io(e: std::io::Error) -> Error {
    Error::io("<sdq output>", e)
}

fn write_zeros(out: &mut impl Write, mut n: u64) -> Result<()> {
    let zeros = [0u8; 4096];
    while n > 0 {
        let k = n.min(zeros.len() as u64) as usize;
        out.write_all(zeros.get(..k).unwrap_or(&[])).map_err(io)?;
        n -= k as u64;
    }
    Ok(())
}

/// Writes an .sdq file atomically: into `.{name}.{pid}.{counter}.tmp` beside the target, then
/// `sync_all`, rename over the target and sync the directory. Dropping an unfinished writer
/// deletes the temporary file; the target is never seen half-written.
pub struct SdqWriter {
    // Declared before `file` so the file is closed before the temporary file is removed.
    inner: Option<SdqStreamWriter<BufWriter<File>>>,
    file: Option<AtomicFile>,
}

impl SdqWriter {
    /// Starts writing `path` for the tensors of `plan` (written in that order) and `metadata`.
    pub fn create(
        path: impl AsRef<Path>,
        plan: &[TensorPlan],
        metadata: &[(String, String)],
    ) -> Result<Self> {
        let (file, f) = AtomicFile::create(path)?;
        let mut w = SdqWriter {
            inner: None,
            file: Some(file),
        };
        w.inner = Some(SdqStreamWriter::new(
            BufWriter::with_capacity(1 << 20, f),
            plan,
            metadata,
        )?);
        Ok(w)
    }

    fn inner(&mut self) -> Result<&mut SdqStreamWriter<BufWriter<File>>> {
        self.inner
            .as_mut()
            .ok_or_else(|| Error::param("the writer is already finished"))
    }

    /// See [`SdqStreamWriter::set_zstd`].
    pub fn set_zstd(&mut self, level: Option<i32>) -> Result<()> {
        self.inner()?.set_zstd(level)
    }

    /// See [`SdqStreamWriter::write_raw`].
    pub fn write_raw(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.inner()?.write_raw(name, bytes)
    }

    /// See [`SdqStreamWriter::write_quantized`].
    pub fn write_quantized(
        &mut self,
        name: &str,
        q: &QuantizedTensor,
        policy: DeltaPolicy,
    ) -> Result<()> {
        self.inner()?.write_quantized(name, q, policy)
    }

    /// See [`SdqStreamWriter::write_quantized_measured`].
    pub fn write_quantized_measured(
        &mut self,
        name: &str,
        q: &QuantizedTensor,
        policy: DeltaPolicy,
        error_norm: f64,
        weight_norm: f64,
    ) -> Result<()> {
        self.inner()?
            .write_quantized_measured(name, q, policy, error_norm, weight_norm)
    }

    /// See [`SdqStreamWriter::write_pcm`].
    pub fn write_pcm(&mut self, name: &str, q: &PcmTensor) -> Result<()> {
        self.inner()?.write_pcm(name, q)
    }

    /// Completes the file, syncs it, renames it over the target and syncs the directory.
    pub fn finish(mut self) -> Result<()> {
        let (Some(inner), Some(file)) = (self.inner.take(), self.file.take()) else {
            return Err(Error::param("the writer is already finished"));
        };
        let buf = inner.finish()?;
        let f = buf
            .into_inner()
            .map_err(|e| Error::io(file.target(), e.into_error()))?;
        file.commit(f)
    }
}
