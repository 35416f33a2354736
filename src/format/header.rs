//! The preamble and the header ↔ structs, pure over byte slices (spec §3–§6, §9–§10).
//!
//! Every rule a reader must check on open is checked here, so that a memory map, an owned buffer,
//! a read-based file and a fuzzer all go through the same code. Nothing is allocated for a count
//! or a length before it has been checked against the bytes left and against the limits.

use std::ops::Range;

#[cfg(feature = "encode")]
use super::layout::SECTION_DESCRIPTOR_LEN;
use super::layout::{
    self, align_up, compression, encoding, preamble as pre, sigma_delta as sd, Dtype, MAGIC,
    PREAMBLE_LEN,
};
use crate::codes::bitpack::packed_len;
use crate::codes::stream::{self, Coding};
use crate::error::{FileKind, FileLimit, FormatError};
use crate::frame::{FrameDescriptor, FrameFamily};
use crate::limits;
use crate::quant::alphabet::bits_for_levels;
use crate::quant::pcm::{ErrorRecord, PcmFrame, StepType, MAX_PCM_K};
use crate::quant::tensor::{MatrixLayout, Orientation};
use crate::quant::{Scheme, StepPolicy};

type Result<T> = std::result::Result<T, FormatError>;

/// How a section's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// As is: stored_len = decoded_len.
    None,
    /// One zstd frame that decompresses to exactly decoded_len bytes.
    Zstd,
}

impl Compression {
    /// The id stored in the file.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => compression::NONE,
            Compression::Zstd => compression::ZSTD,
        }
    }
}

/// Where a section lies and how to read it (the 29-byte descriptor of spec §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Section {
    /// Absolute file offset (a multiple of 64).
    pub offset: u64,
    /// Bytes stored in the file.
    pub stored_len: u64,
    /// Bytes after decompression.
    pub decoded_len: u64,
    /// How the bytes are stored.
    pub compression: Compression,
    /// CRC-32 (ISO-HDLC) of the stored bytes.
    pub crc32: u32,
}

impl Section {
    /// The file range of the stored bytes (valid for every section of a parsed header).
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset.saturating_add(self.stored_len)
    }
}

/// The δ values of a sigma-delta tensor as recorded in its header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeltaMode {
    /// One δ for every vector.
    Tensor(f64),
    /// One δ per vector, in the deltas section.
    PerVector,
}

/// How δ was chosen (informational: decoding does not depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeltaPolicy {
    /// The paper's rule over the whole tensor.
    Tensor,
    /// The paper's rule per vector.
    Vector,
    /// Per vector, from the largest frame coefficient.
    Coefficient,
    /// Given by the caller.
    Explicit,
    /// One δ shared by several tensors of a network.
    Uniform,
}

impl DeltaPolicy {
    /// The id stored in the file.
    pub fn id(self) -> u8 {
        match self {
            DeltaPolicy::Tensor => 0,
            DeltaPolicy::Vector => 1,
            DeltaPolicy::Coefficient => 2,
            DeltaPolicy::Explicit => 3,
            DeltaPolicy::Uniform => 4,
        }
    }

    /// The policy with file id `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => DeltaPolicy::Tensor,
            1 => DeltaPolicy::Vector,
            2 => DeltaPolicy::Coefficient,
            3 => DeltaPolicy::Explicit,
            4 => DeltaPolicy::Uniform,
            _ => return None,
        })
    }

    /// The tag of a quantizer's step policy (an explicit δ is tagged `Explicit`; pass
    /// [`DeltaPolicy::Uniform`] yourself for a network-wide δ).
    pub fn from_step(policy: StepPolicy) -> Self {
        match policy {
            StepPolicy::Tensor => DeltaPolicy::Tensor,
            StepPolicy::Vector => DeltaPolicy::Vector,
            StepPolicy::Coefficient => DeltaPolicy::Coefficient,
            StepPolicy::Explicit(_) => DeltaPolicy::Explicit,
        }
    }

    /// `tensor`, `vector`, `coefficient`, `explicit` or `uniform`.
    pub fn name(self) -> &'static str {
        match self {
            DeltaPolicy::Tensor => "tensor",
            DeltaPolicy::Vector => "vector",
            DeltaPolicy::Coefficient => "coefficient",
            DeltaPolicy::Explicit => "explicit",
            DeltaPolicy::Uniform => "uniform",
        }
    }
}

/// The parameters of a sigma-delta tensor (spec §5.2), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SigmaDeltaInfo {
    /// The ΣΔ scheme that produced the codes (decoding is the same for every scheme).
    pub scheme: Scheme,
    /// Version of the record (1, or 2 with `norms`).
    pub scheme_version: u8,
    /// Version 2: (‖W − W̃‖_F, ‖W‖_F) over [W | b], measured by the writer (informational, as
    /// pcm's error_norm and weight_norm).
    pub norms: Option<(f64, f64)>,
    /// The frame: harmonic(N, d).
    pub frame: FrameDescriptor,
    /// Which vectors of the [rows, cols] view were quantized.
    pub orientation: Orientation,
    /// Whether the matrix quantized is [W | b].
    pub has_bias: bool,
    /// K: the alphabet has 2K levels.
    pub k: u32,
    /// Bits per code, ⌈log2 2K⌉.
    pub bits: u8,
    /// The δ values.
    pub delta: DeltaMode,
    /// How δ was chosen.
    pub policy: DeltaPolicy,
    /// σ(F, p) used in the bounds.
    pub sigma: f64,
    /// Largest certified per-vector bound.
    pub max_bound: f64,
    /// Number of vectors whose bound is not certified.
    pub uncertified: u64,
    /// The packed codes.
    pub codes: Section,
    /// Per-vector δ values (present iff `delta` is [`DeltaMode::PerVector`]).
    pub deltas: Option<Section>,
    /// The explicit ordering (absent for the identity).
    pub permutation: Option<Section>,
    /// Rows of the matrix view (the first dimension).
    pub rows: u64,
    /// Columns of the matrix view (the product of the other dimensions), without the bias.
    pub cols: u64,
}

impl SigmaDeltaInfo {
    /// The matrix layout (shape, bias, orientation) of the vectors.
    pub fn layout(&self) -> MatrixLayout {
        layout_of(self.orientation, self.rows, self.cols, self.has_bias)
    }

    /// Number m of quantized vectors.
    pub fn vector_count(&self) -> u64 {
        vector_count(self.orientation, self.rows, self.cols, self.has_bias)
    }

    /// Frame size N.
    pub fn n(&self) -> u64 {
        self.frame.frame_size() as u64
    }

    /// Vector dimension d.
    pub fn d(&self) -> u64 {
        self.frame.dim() as u64
    }

    /// ‖W − W̃‖_F / ‖W‖_F as the writer measured it (version 2 records only).
    pub fn relative_error(&self) -> Option<f64> {
        self.norms.map(|(e, w)| crate::quant::pcm::relative(e, w))
    }
}

/// The parameters of a pcm tensor (spec §5.4), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PcmInfo {
    /// Version of the pcm scheme: 1 (certified a priori) or 2 (measured errors recorded).
    pub scheme_version: u8,
    /// The frame (or none: N = d).
    pub frame: PcmFrame,
    /// Which vectors of the [rows, cols] view were quantized.
    pub orientation: Orientation,
    /// Whether the matrix quantized is [W | b].
    pub has_bias: bool,
    /// Codes lie in −K..=K.
    pub k: u32,
    /// Seed of the sign flips (0 = none).
    pub sign_seed: u64,
    /// Coefficients per step, 1 ≤ G ≤ N.
    pub group: u32,
    /// How the steps are stored.
    pub step_type: StepType,
    /// How the codes are stored.
    pub coding: Coding,
    /// Largest certified per-vector bound (every vector is certified).
    pub max_bound: f64,
    /// ‖W − W̃‖_F measured by the writer (informational; `sdq verify --against` re-measures).
    pub error_norm: f64,
    /// ‖W‖_F measured by the writer.
    pub weight_norm: f64,
    /// The codes section.
    pub codes: Section,
    /// The steps section.
    pub steps: Section,
    /// What is recorded per vector (version 2: measured errors).
    pub record: ErrorRecord,
    /// The errors section (version 2): per vector the measured weight error, then (with
    /// [`ErrorRecord::WeightAndOutput`]) per vector the relative output error, f32.
    pub errors: Option<Section>,
    /// Rows of the matrix view (the first dimension).
    pub rows: u64,
    /// Columns of the matrix view (the product of the other dimensions), without the bias.
    pub cols: u64,
    /// The vector dimension d.
    pub d: u64,
}

impl PcmInfo {
    /// The matrix layout (shape, bias, orientation) of the vectors.
    pub fn layout(&self) -> MatrixLayout {
        layout_of(self.orientation, self.rows, self.cols, self.has_bias)
    }

    /// Number m of quantized vectors.
    pub fn vector_count(&self) -> u64 {
        vector_count(self.orientation, self.rows, self.cols, self.has_bias)
    }

    /// Frame size N (d without a frame).
    pub fn n(&self) -> u64 {
        self.frame.frame_size(self.d as usize) as u64
    }

    /// Steps per vector, ⌈N / G⌉.
    pub fn groups(&self) -> u64 {
        self.n().div_ceil(u64::from(self.group.max(1)))
    }

    /// ‖W − W̃‖ / ‖W‖ as measured by the writer.
    pub fn relative_error(&self) -> f64 {
        crate::quant::pcm::relative(self.error_norm, self.weight_norm)
    }
}

fn layout_of(orientation: Orientation, rows: u64, cols: u64, has_bias: bool) -> MatrixLayout {
    MatrixLayout {
        rows: rows as usize,
        cols: cols as usize,
        has_bias,
        orientation,
    }
}

fn vector_count(o: Orientation, rows: u64, cols: u64, has_bias: bool) -> u64 {
    match o {
        Orientation::Columns => cols.saturating_add(u64::from(has_bias)),
        Orientation::Rows => rows,
    }
}

/// How a tensor is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    /// The original bytes in one section.
    Raw {
        /// The data section.
        data: Section,
    },
    /// Frame-quantized codes.
    SigmaDelta(Box<SigmaDeltaInfo>),
    /// Rounded (optionally sign-flipped) frame coefficients with per-group steps.
    Pcm(Box<PcmInfo>),
    /// A bias quantized as part of the sigma-delta tensor at index `weight`.
    BiasOf {
        /// Index of the weight tensor in the file's tensor table.
        weight: usize,
    },
}

impl Encoding {
    /// `raw`, `sigma-delta`, `pcm` or `bias-of`.
    pub fn name(&self) -> &'static str {
        match self {
            Encoding::Raw { .. } => "raw",
            Encoding::SigmaDelta(_) => "sigma-delta",
            Encoding::Pcm(_) => "pcm",
            Encoding::BiasOf { .. } => "bias-of",
        }
    }
}

/// One tensor record of the header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Unique, non-empty UTF-8 name.
    pub name: String,
    /// The original element type.
    pub dtype: Dtype,
    /// The shape (row-major, outermost first).
    pub shape: Vec<u64>,
    /// Product of the shape (1 for rank 0).
    pub elements: u64,
    /// How it is stored.
    pub encoding: Encoding,
    /// Length of its record in the header, in bytes.
    pub record_len: u64,
}

impl TensorInfo {
    /// The present sections of this tensor, in slot order, with their names.
    pub fn sections(&self) -> Vec<(&'static str, Section)> {
        match &self.encoding {
            Encoding::Raw { data } => vec![("data", *data)],
            Encoding::SigmaDelta(q) => {
                let mut v = vec![("codes", q.codes)];
                if let Some(s) = q.deltas {
                    v.push(("deltas", s));
                }
                if let Some(s) = q.permutation {
                    v.push(("permutation", s));
                }
                v
            }
            Encoding::Pcm(q) => {
                let mut v = vec![("codes", q.codes), ("steps", q.steps)];
                if let Some(e) = q.errors {
                    v.push(("errors", e));
                }
                v
            }
            Encoding::BiasOf { .. } => Vec::new(),
        }
    }
}

/// The decoded preamble (spec §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// Major version (1).
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Flags (0 in version 1).
    pub flags: u32,
    /// Header length in bytes.
    pub header_len: u64,
    /// CRC-32 of the header.
    pub header_crc: u32,
    /// Total file length.
    pub file_len: u64,
}

impl Preamble {
    /// Where the header ends (= 64 + header_len).
    pub fn header_end(&self) -> u64 {
        PREAMBLE_LEN + self.header_len
    }
}

/// A parsed and validated header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The preamble it was read with.
    pub preamble: Preamble,
    /// Metadata entries, in file order.
    pub metadata: Vec<(String, String)>,
    /// Tensor records, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Byte ranges of the file that are padding and must be zero (each under 64 bytes).
    pub padding: Vec<Range<u64>>,
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    let mut w = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        w.copy_from_slice(s);
    }
    u16::from_le_bytes(w)
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// Says what a file without the .sdq magic looks like (spec §3.1).
pub fn sniff(first: &[u8]) -> FileKind {
    let lower = |s: &[u8]| -> Vec<u8> { s.iter().map(u8::to_ascii_lowercase).collect() };
    if first.starts_with(b"version https://git-lfs") {
        return FileKind::GitLfsPointer;
    }
    if first.starts_with(b"GGUF") {
        return FileKind::Gguf;
    }
    if first.starts_with(b"PK\x03\x04") {
        return FileKind::Zip;
    }
    if first.len() >= 9 && first.get(8) == Some(&b'{') {
        let n = le_u64(first, 0);
        if (2..=100_000_000).contains(&n) {
            return FileKind::Safetensors;
        }
    }
    // After safetensors, whose header length may start with the same bytes.
    // PROTO opcode with protocol 2..=5: how pickle.dump (and torch.save's legacy format) start.
    if let [0x80, 2..=5, ..] = first {
        return FileKind::Pickle;
    }
    if first.get(4..8) == Some(b"TFL3") {
        return FileKind::TfLite;
    }
    if first.starts_with(b"\x89HDF\r\n\x1a\n") {
        return FileKind::Hdf5;
    }
    if first.starts_with(b"\x93NUMPY") {
        return FileKind::Npy;
    }
    // ModelProto: field 1 (ir_version, a varint of 1..=15) then field 2, 3, 4, 5, 7 or 8
    // (producer name / version, domain, model_version, graph, opset_import).
    if let [0x08, 1..=15, 0x12 | 0x1A | 0x22 | 0x28 | 0x3A | 0x42, ..] = first {
        return FileKind::Onnx;
    }
    let text = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first);
    let start = text
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(text.len());
    let head = lower(text.get(start..(start + 16).min(text.len())).unwrap_or(&[]));
    if head.starts_with(b"<!doctype html")
        || head.starts_with(b"<html")
        || head.starts_with(b"<?xml")
    {
        return FileKind::Html;
    }
    let sample = text.get(..text.len().min(512)).unwrap_or(&[]);
    let printable = |c: &u8| c.is_ascii_graphic() || matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    if !sample.is_empty()
        && (std::str::from_utf8(sample).is_ok() || sample.iter().all(printable))
        && !sample.contains(&0)
    {
        return FileKind::Text;
    }
    FileKind::Unknown
}

/// The recognised text-transfer damage to the magic, if any.
fn mangled(first: &[u8]) -> Option<&'static str> {
    if first.starts_with(&[0x89, b'S', b'D', b'Q', 0x0A, 0x1A, 0x0A]) {
        return Some("CR LF was converted to LF");
    }
    if first.starts_with(&[0x89, b'S', b'D', b'Q', 0x0D, 0x0D, 0x0A]) {
        return Some("LF was converted to CR LF");
    }
    if first.starts_with(&[0x09, b'S', b'D', b'Q']) {
        return Some("the high bit of the first byte was stripped by a 7-bit transfer");
    }
    if first.get(1..4) == Some(b"SDQ".as_slice()) {
        return Some("the bytes around \"SDQ\" were altered");
    }
    None
}

/// Checks the magic of a file whose first bytes are `first` (at most 64 needed), before any
/// length check, so that a short non-.sdq file is called what it is.
fn check_magic(first: &[u8]) -> Result<()> {
    let n = first.len().min(MAGIC.len());
    if first.get(..n) == MAGIC.get(..n) {
        return Ok(());
    }
    if let Some(how) = mangled(first) {
        return Err(FormatError::MangledMagic { how });
    }
    Err(FormatError::NotSdq {
        looks_like: sniff(first),
    })
}

/// Parses and validates the preamble. `first` holds the file's first bytes (64 if the file has
/// them), `actual_len` is the file's real length. Checks R1–R9 and the header-length limit.
pub fn parse_preamble(first: &[u8], actual_len: u64) -> Result<Preamble> {
    check_magic(first)?;
    let p = match first.get(..PREAMBLE_LEN as usize) {
        Some(p) if actual_len >= PREAMBLE_LEN => p,
        _ => return Err(FormatError::TooShort { len: actual_len }),
    };
    let major = le_u16(p, pre::MAJOR);
    let minor = le_u16(p, pre::MINOR);
    if major != layout::MAJOR {
        return Err(FormatError::UnsupportedVersion { major, minor });
    }
    let stored = le_u32(p, pre::CRC);
    let computed = crc32fast::hash(p.get(..pre::CRC).unwrap_or(&[]));
    if stored != computed {
        return Err(FormatError::PreambleChecksum { stored, computed });
    }
    let flags = le_u32(p, pre::FLAGS);
    if flags != 0 {
        return Err(FormatError::UnknownFlags { flags });
    }
    if let Some(i) = p
        .get(pre::RESERVED..pre::CRC)
        .and_then(|r| r.iter().position(|&b| b != 0))
    {
        return Err(FormatError::ReservedNonzero {
            offset: (pre::RESERVED + i) as u64,
        });
    }
    let file_len = le_u64(p, pre::FILE_LEN);
    if file_len != actual_len {
        return Err(FormatError::FileLength {
            declared: file_len,
            actual: actual_len,
        });
    }
    let header_len = le_u64(p, pre::HEADER_LEN);
    if header_len > limits::MAX_HEADER_LEN {
        return Err(FormatError::LimitExceeded {
            what: FileLimit::HeaderLen,
            value: header_len,
            limit: limits::MAX_HEADER_LEN,
        });
    }
    let available = actual_len - PREAMBLE_LEN;
    if header_len > available {
        return Err(FormatError::HeaderPastEnd {
            header_len,
            available,
        });
    }
    Ok(Preamble {
        major,
        minor,
        flags,
        header_len,
        header_crc: le_u32(p, pre::HEADER_CRC),
        file_len,
    })
}

/// A bounds-checked reader over the header bytes.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn remaining(&self) -> u64 {
        (self.b.len() - self.pos.min(self.b.len())) as u64
    }

    fn take(&mut self, n: u64, field: &'static str) -> Result<&'a [u8]> {
        let truncated = FormatError::HeaderTruncated {
            field,
            offset: self.pos as u64,
        };
        if n > self.remaining() {
            return Err(truncated);
        }
        let end = self.pos + n as usize;
        let s = self.b.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const L: usize>(&mut self, field: &'static str) -> Result<[u8; L]> {
        let mut a = [0u8; L];
        a.copy_from_slice(self.take(L as u64, field)?);
        Ok(a)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
    fn f64(&mut self, field: &'static str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array(field)?))
    }

    /// A `str`: u32 length (checked against `limit` and the bytes left), then UTF-8 bytes.
    fn string(&mut self, what: &'static str, which: FileLimit, limit: u64) -> Result<String> {
        let len = u64::from(self.u32(what)?);
        if len > limit {
            return Err(FormatError::LimitExceeded {
                what: which,
                value: len,
                limit,
            });
        }
        let offset = self.pos as u64;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(FormatError::InvalidUtf8 { what, offset }),
        }
    }

    /// A count whose entries each take at least `min_entry` bytes.
    fn count(
        &mut self,
        what: &'static str,
        which: FileLimit,
        limit: u64,
        min_entry: u64,
    ) -> Result<u64> {
        let n = u64::from(self.u32(what)?);
        if n > limit {
            return Err(FormatError::LimitExceeded {
                what: which,
                value: n,
                limit,
            });
        }
        let remaining = self.remaining();
        if n.saturating_mul(min_entry) > remaining {
            return Err(FormatError::CountPastEnd {
                what,
                count: n,
                remaining,
            });
        }
        Ok(n)
    }
}

/// A section descriptor as stored, before validation.
#[derive(Clone, Copy)]
struct RawSection {
    offset: u64,
    stored_len: u64,
    decoded_len: u64,
    compression: u8,
    crc32: u32,
}

impl RawSection {
    fn read(c: &mut Cur) -> Result<Self> {
        Ok(RawSection {
            offset: c.u64("section offset")?,
            stored_len: c.u64("section stored_len")?,
            decoded_len: c.u64("section decoded_len")?,
            compression: c.u8("section compression")?,
            crc32: c.u32("section crc32")?,
        })
    }

    fn is_zero(&self) -> bool {
        self.offset == 0
            && self.stored_len == 0
            && self.decoded_len == 0
            && self.compression == 0
            && self.crc32 == 0
    }

    /// Validates a present slot against the decoded length its tensor requires.
    fn validate(self, tensor: &str, section: &'static str, expected: u64) -> Result<Section> {
        let compression = match self.compression {
            compression::NONE => Compression::None,
            compression::ZSTD => Compression::Zstd,
            id => {
                return Err(FormatError::UnknownCompression {
                    tensor: tensor.to_owned(),
                    section,
                    id,
                })
            }
        };
        if self.offset == 0 {
            return Err(FormatError::SlotPresence {
                tensor: tensor.to_owned(),
                section,
                problem: "has offset 0 but is not all zero (an absent slot is all zero)",
            });
        }
        if self.decoded_len > limits::MAX_SECTION_LEN {
            return Err(FormatError::LimitExceeded {
                what: FileLimit::SectionLen,
                value: self.decoded_len,
                limit: limits::MAX_SECTION_LEN,
            });
        }
        if self.decoded_len != expected {
            return Err(FormatError::DecodedLenMismatch {
                tensor: tensor.to_owned(),
                section,
                declared: self.decoded_len,
                expected,
            });
        }
        if compression == Compression::None && self.stored_len != self.decoded_len {
            return Err(FormatError::StoredLenMismatch {
                tensor: tensor.to_owned(),
                section,
                stored: self.stored_len,
                decoded: self.decoded_len,
            });
        }
        Ok(Section {
            offset: self.offset,
            stored_len: self.stored_len,
            decoded_len: self.decoded_len,
            compression,
            crc32: self.crc32,
        })
    }

    /// Validates an optional slot: present iff `required` (`None` = either).
    fn optional(
        self,
        tensor: &str,
        section: &'static str,
        required: Option<bool>,
        expected: u64,
    ) -> Result<Option<Section>> {
        let present = !self.is_zero();
        let problem = match (required, present) {
            (Some(true), false) => Some("is absent but the tensor's parameters require it"),
            (Some(false), true) => Some("is present but the tensor's parameters forbid it"),
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(FormatError::SlotPresence {
                tensor: tensor.to_owned(),
                section,
                problem,
            });
        }
        if present {
            self.validate(tensor, section, expected).map(Some)
        } else {
            Ok(None)
        }
    }
}

fn limit(what: FileLimit, value: u64, limit: u64) -> Result<()> {
    if value > limit {
        Err(FormatError::LimitExceeded { what, value, limit })
    } else {
        Ok(())
    }
}

/// Smallest possible tensor record: name length + 1 name byte + dtype + rank + encoding + the
/// smallest body (bias-of, 4 bytes).
const MIN_RECORD: u64 = 4 + 1 + 1 + 1 + 1 + 4;

/// Parses and validates the header bytes (R10–R46 except the padding contents, which need the
/// data bytes: see [`Header::padding`]). `header` is exactly the header_len bytes after the
/// preamble.
pub fn parse_header(header: &[u8], preamble: &Preamble) -> Result<Header> {
    let computed = crc32fast::hash(header);
    if computed != preamble.header_crc {
        return Err(FormatError::HeaderChecksum {
            stored: preamble.header_crc,
            computed,
        });
    }
    let mut c = Cur { b: header, pos: 0 };
    let tensor_count = u64::from(c.u32("tensor_count")?);
    limit(FileLimit::TensorCount, tensor_count, limits::MAX_TENSORS)?;
    let metadata_count = c.count(
        "metadata",
        FileLimit::MetadataCount,
        limits::MAX_METADATA_ENTRIES,
        8,
    )?;
    let mut metadata = Vec::with_capacity(metadata_count as usize);
    let mut keys = std::collections::HashSet::with_capacity(metadata_count as usize);
    for index in 0..metadata_count {
        let key = c.string("metadata key", FileLimit::KeyLen, limits::MAX_KEY_LEN)?;
        let value = c.string("metadata value", FileLimit::ValueLen, limits::MAX_VALUE_LEN)?;
        if key.is_empty() {
            return Err(FormatError::EmptyString {
                what: "metadata key",
                index,
            });
        }
        if !keys.insert(key.clone()) {
            return Err(FormatError::DuplicateKey { key });
        }
        metadata.push((key, value));
    }
    let remaining = c.remaining();
    if tensor_count.saturating_mul(MIN_RECORD) > remaining {
        return Err(FormatError::CountPastEnd {
            what: "tensor",
            count: tensor_count,
            remaining,
        });
    }
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(tensor_count as usize);
    let mut names = std::collections::HashSet::with_capacity(tensor_count as usize);
    let mut bias_targets = Vec::new();
    for index in 0..tensor_count {
        let start = c.pos;
        let (info, bias_target) = read_record(&mut c, index)?;
        if !names.insert(info.name.clone()) {
            return Err(FormatError::DuplicateName { name: info.name });
        }
        let mut info = info;
        info.record_len = (c.pos - start) as u64;
        if let Some(t) = bias_target {
            bias_targets.push((tensors.len(), t));
        }
        tensors.push(info);
    }
    if c.remaining() > 0 && preamble.minor == 0 {
        return Err(FormatError::HeaderTrailingBytes {
            count: c.remaining(),
        });
    }
    check_bias_links(&mut tensors, &bias_targets)?;
    let padding = check_layout(&tensors, preamble)?;
    Ok(Header {
        preamble: *preamble,
        metadata,
        tensors,
        padding,
    })
}

/// Reads one tensor record; returns the bias-of target index separately (resolved later).
fn read_record(c: &mut Cur, index: u64) -> Result<(TensorInfo, Option<u64>)> {
    let name = c.string("tensor name", FileLimit::NameLen, limits::MAX_NAME_LEN)?;
    if name.is_empty() {
        return Err(FormatError::EmptyString {
            what: "tensor name",
            index,
        });
    }
    let dtype_id = c.u8("dtype")?;
    let dtype = Dtype::from_id(dtype_id).ok_or_else(|| FormatError::UnknownDtype {
        tensor: name.clone(),
        id: dtype_id,
    })?;
    let rank = u64::from(c.u8("rank")?);
    limit(FileLimit::Rank, rank, limits::MAX_RANK)?;
    let mut shape = Vec::with_capacity(rank as usize);
    let mut elements: u64 = 1;
    let overflow = || FormatError::ShapeOverflow {
        tensor: name.clone(),
    };
    for _ in 0..rank {
        let dim = c.u64("dimension")?;
        elements = elements.checked_mul(dim).ok_or_else(overflow)?;
        shape.push(dim);
    }
    let bytes = elements.checked_mul(dtype.size()).ok_or_else(overflow)?;
    limit(FileLimit::ElementCount, elements, limits::MAX_ELEMENTS)?;
    let enc = c.u8("encoding")?;
    let mut bias_target = None;
    let encoding = match enc {
        encoding::RAW => {
            let data = RawSection::read(c)?.validate(&name, "data", bytes)?;
            Encoding::Raw { data }
        }
        encoding::SIGMA_DELTA => {
            Encoding::SigmaDelta(Box::new(read_sigma_delta(c, &name, dtype, &shape)?))
        }
        encoding::PCM => Encoding::Pcm(Box::new(read_pcm(c, &name, dtype, &shape)?)),
        encoding::BIAS_OF => {
            bias_target = Some(u64::from(c.u32("bias-of index")?));
            Encoding::BiasOf { weight: 0 }
        }
        id => {
            return Err(FormatError::UnknownEncoding { tensor: name, id });
        }
    };
    Ok((
        TensorInfo {
            name,
            dtype,
            shape,
            elements,
            encoding,
            record_len: 0,
        },
        bias_target,
    ))
}

fn read_sigma_delta(
    c: &mut Cur,
    name: &str,
    dtype: Dtype,
    shape: &[u64],
) -> Result<SigmaDeltaInfo> {
    let t = || name.to_owned();
    let scheme = c.u8("scheme")?;
    let scheme_version = c.u8("scheme_version")?;
    let family = c.u8("frame family")?;
    let n = u64::from(c.u32("N")?);
    let d_stored = u64::from(c.u32("d")?);
    let orientation = c.u8("orientation")?;
    let has_bias = c.u8("has_bias")?;
    let k = c.u32("K")?;
    let bits = c.u8("bits")?;
    let delta_mode = c.u8("delta_mode")?;
    let policy = c.u8("delta_policy")?;
    let delta_bits = c.u64("delta")?;
    let sigma = c.f64("sigma")?;
    let max_bound = c.f64("max_bound")?;
    let uncertified = c.u64("uncertified")?;
    let codes = RawSection::read(c)?;
    let deltas = RawSection::read(c)?;
    let permutation = RawSection::read(c)?;
    if scheme_version != sd::SCHEME_VERSION && scheme_version != sd::SCHEME_VERSION_NORMS {
        return Err(FormatError::UnsupportedSchemeVersion {
            tensor: t(),
            version: scheme_version,
        });
    }
    let norms = if scheme_version == sd::SCHEME_VERSION_NORMS {
        Some((c.f64("error_norm")?, c.f64("weight_norm")?))
    } else {
        None
    };

    let scheme = Scheme::from_id(scheme).ok_or_else(|| FormatError::UnknownScheme {
        tensor: t(),
        id: scheme,
    })?;
    let family = FrameFamily::from_id(family).ok_or_else(|| FormatError::UnknownFrameFamily {
        tensor: t(),
        id: family,
    })?;
    let bad = |field, value| FormatError::BadFieldValue {
        tensor: t(),
        field,
        value,
    };
    let orientation = match orientation {
        sd::ORIENTATION_COLUMNS => Orientation::Columns,
        sd::ORIENTATION_ROWS => Orientation::Rows,
        v => return Err(bad("orientation", v)),
    };
    let has_bias = match has_bias {
        0 => false,
        1 => true,
        v => return Err(bad("has_bias", v)),
    };
    if delta_mode > sd::DELTA_VECTOR {
        return Err(bad("delta_mode", delta_mode));
    }
    let policy = DeltaPolicy::from_id(policy).ok_or_else(|| bad("delta_policy", policy))?;
    let not_q = |reason| FormatError::NotQuantizable {
        tensor: t(),
        reason,
    };
    if !dtype.is_quantizable_float() {
        return Err(not_q("its dtype is not F16, BF16, F32 or F64"));
    }
    let (rows, rest) = match shape {
        [rows, rest @ ..] if !rest.is_empty() => (*rows, rest),
        _ => return Err(not_q("its rank is below 2")),
    };
    if shape.contains(&0) {
        return Err(not_q("a dimension is zero"));
    }
    // The element count was checked to fit in u64, so the product of `rest` does too.
    let cols = rest.iter().fold(1u64, |a, &x| a.saturating_mul(x));
    limit(FileLimit::FrameSize, n, limits::MAX_FRAME_SIZE)?;
    limit(
        FileLimit::Levels,
        u64::from(k),
        u64::from(limits::MAX_LEVELS),
    )?;
    if k == 0 {
        return Err(FormatError::ZeroLevels { tensor: t() });
    }
    if scheme == Scheme::SecondOrder && k < 2 {
        return Err(FormatError::SchemeLevels {
            tensor: t(),
            scheme: scheme.name(),
            k,
        });
    }
    let aug_cols = cols + u64::from(has_bias); // cols ≤ 2^40
    let (d, m) = match orientation {
        Orientation::Columns => (rows, aug_cols),
        Orientation::Rows => (aug_cols, rows),
    };
    limit(FileLimit::Dim, d, limits::MAX_DIM)?;
    // d ≤ 2^22, so the product fits; checked before anything is built for the frame.
    limit(FileLimit::Redundancy, n, limits::MAX_REDUNDANCY * d)?;
    if d_stored != d {
        return Err(FormatError::DimensionMismatch {
            tensor: t(),
            stored: d_stored,
            expected: d,
        });
    }
    if n < family.min_frame_size(d) {
        return Err(FormatError::FrameTooSmall {
            tensor: t(),
            family: family.name(),
            n,
            d,
            min: family.min_frame_size(d),
        });
    }
    let expected_bits = bits_for_levels(k) as u8;
    if bits != expected_bits {
        return Err(FormatError::BitsMismatch {
            tensor: t(),
            bits,
            k,
            expected: expected_bits,
        });
    }
    let delta_value = f64::from_bits(delta_bits);
    let delta = if delta_mode == sd::DELTA_TENSOR {
        if !(delta_value.is_finite() && delta_value >= 0.0) {
            return Err(FormatError::InvalidDelta {
                tensor: t(),
                vector: None,
                bits: delta_bits,
            });
        }
        DeltaMode::Tensor(delta_value)
    } else {
        if delta_bits != 0 {
            return Err(FormatError::InvalidDelta {
                tensor: t(),
                vector: None,
                bits: delta_bits,
            });
        }
        DeltaMode::PerVector
    };
    let cert = |field| FormatError::InvalidCertificate { tensor: t(), field };
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(cert("sigma"));
    }
    if !(max_bound.is_finite() && max_bound >= 0.0) {
        return Err(cert("max_bound"));
    }
    if uncertified > m {
        return Err(cert("uncertified"));
    }
    if let Some((e, w)) = norms {
        if !(e.is_finite() && e >= 0.0) {
            return Err(cert("error_norm"));
        }
        if !(w.is_finite() && w >= 0.0) {
            return Err(cert("weight_norm"));
        }
    }
    let too_big = || FormatError::LimitExceeded {
        what: FileLimit::SectionLen,
        value: u64::MAX,
        limit: limits::MAX_SECTION_LEN,
    };
    let codes_len = n
        .checked_mul(m)
        .and_then(|count| packed_len(count, u32::from(bits)))
        .ok_or_else(too_big)?;
    let codes = if codes.is_zero() {
        return Err(FormatError::SlotPresence {
            tensor: t(),
            section: "codes",
            problem: "is absent (the codes section is always required)",
        });
    } else {
        codes.validate(name, "codes", codes_len)?
    };
    let deltas_len = m.checked_mul(8).ok_or_else(too_big)?;
    let deltas = deltas.optional(
        name,
        "deltas",
        Some(delta_mode == sd::DELTA_VECTOR),
        deltas_len,
    )?;
    let permutation = permutation.optional(name, "permutation", None, n * 4)?;
    Ok(SigmaDeltaInfo {
        scheme,
        scheme_version,
        norms,
        // Both fit in u32: N ≤ 2^24 and d ≤ 2^22 were checked above.
        frame: match family {
            FrameFamily::Harmonic => FrameDescriptor::Harmonic {
                n: n as u32,
                d: d as u32,
            },
            FrameFamily::SpectralTetris => FrameDescriptor::SpectralTetris {
                n: n as u32,
                d: d as u32,
            },
        },
        orientation,
        has_bias,
        k,
        bits,
        delta,
        policy,
        sigma,
        max_bound,
        uncertified,
        codes,
        deltas,
        permutation,
        rows,
        cols,
    })
}

/// Reads a pcm body (spec §5.4).
fn read_pcm(c: &mut Cur, name: &str, dtype: Dtype, shape: &[u64]) -> Result<PcmInfo> {
    let t = || name.to_owned();
    let scheme_version = c.u8("pcm scheme_version")?;
    let family = c.u8("frame family")?;
    let n = u64::from(c.u32("N")?);
    let d_stored = u64::from(c.u32("d")?);
    let orientation = c.u8("orientation")?;
    let has_bias = c.u8("has_bias")?;
    let k = c.u32("K")?;
    let sign_seed = c.u64("sign_seed")?;
    let group = c.u32("group")?;
    let step_type = c.u8("step_type")?;
    let coding = c.u8("coding")?;
    let max_bound = c.f64("max_bound")?;
    let error_norm = c.f64("error_norm")?;
    let weight_norm = c.f64("weight_norm")?;
    let codes = RawSection::read(c)?;
    let steps = RawSection::read(c)?;
    let measured = scheme_version == layout::pcm::SCHEME_VERSION_MEASURED;
    let (record, errors) = if measured {
        (c.u8("error_kind")?, Some(RawSection::read(c)?))
    } else {
        (0, None)
    };

    if scheme_version != layout::pcm::SCHEME_VERSION && !measured {
        return Err(FormatError::UnsupportedSchemeVersion {
            tensor: t(),
            version: scheme_version,
        });
    }
    let bad = |field, value| FormatError::BadFieldValue {
        tensor: t(),
        field,
        value,
    };
    let orientation = match orientation {
        sd::ORIENTATION_COLUMNS => Orientation::Columns,
        sd::ORIENTATION_ROWS => Orientation::Rows,
        v => return Err(bad("orientation", v)),
    };
    let has_bias = match has_bias {
        0 => false,
        1 => true,
        v => return Err(bad("has_bias", v)),
    };
    let step_type = match step_type {
        layout::pcm::STEP_F16 => StepType::F16,
        layout::pcm::STEP_F32 => StepType::F32,
        v => return Err(bad("step_type", v)),
    };
    let coding = Coding::from_id(coding).ok_or_else(|| bad("coding", coding))?;
    let not_q = |reason| FormatError::NotQuantizable {
        tensor: t(),
        reason,
    };
    if !dtype.is_quantizable_float() {
        return Err(not_q("its dtype is not F16, BF16, F32 or F64"));
    }
    let (rows, rest) = match shape {
        [rows, rest @ ..] if !rest.is_empty() => (*rows, rest),
        _ => return Err(not_q("its rank is below 2")),
    };
    if shape.contains(&0) {
        return Err(not_q("a dimension is zero"));
    }
    let cols = rest.iter().fold(1u64, |a, &x| a.saturating_mul(x));
    limit(FileLimit::FrameSize, n, limits::MAX_FRAME_SIZE)?;
    limit(FileLimit::Levels, u64::from(k), u64::from(MAX_PCM_K))?;
    let aug_cols = cols + u64::from(has_bias);
    let (d, m) = match orientation {
        Orientation::Columns => (rows, aug_cols),
        Orientation::Rows => (aug_cols, rows),
    };
    limit(FileLimit::Dim, d, limits::MAX_DIM)?;
    limit(FileLimit::Redundancy, n, limits::MAX_REDUNDANCY * d)?;
    if d_stored != d {
        return Err(FormatError::DimensionMismatch {
            tensor: t(),
            stored: d_stored,
            expected: d,
        });
    }
    let frame = if family == layout::pcm::FRAME_IDENTITY {
        if n != d {
            return Err(FormatError::FrameTooSmall {
                tensor: t(),
                family: "identity",
                n,
                d,
                min: d,
            });
        }
        PcmFrame::Identity
    } else {
        let family =
            FrameFamily::from_id(family).ok_or_else(|| FormatError::UnknownFrameFamily {
                tensor: t(),
                id: family,
            })?;
        if n < family.min_frame_size(d) {
            return Err(FormatError::FrameTooSmall {
                tensor: t(),
                family: family.name(),
                n,
                d,
                min: family.min_frame_size(d),
            });
        }
        // Both fit in u32: N ≤ 2^24 and d ≤ 2^22 were checked above.
        PcmFrame::Frame(match family {
            FrameFamily::Harmonic => FrameDescriptor::Harmonic {
                n: n as u32,
                d: d as u32,
            },
            FrameFamily::SpectralTetris => FrameDescriptor::SpectralTetris {
                n: n as u32,
                d: d as u32,
            },
        })
    };
    if group == 0 || u64::from(group) > n {
        return Err(FormatError::BadGroup {
            tensor: t(),
            group,
            n,
        });
    }
    let cert = |field| FormatError::InvalidCertificate { tensor: t(), field };
    for (field, v) in [
        ("max_bound", max_bound),
        ("error_norm", error_norm),
        ("weight_norm", weight_norm),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(cert(field));
        }
    }
    let too_big = || FormatError::LimitExceeded {
        what: FileLimit::SectionLen,
        value: u64::MAX,
        limit: limits::MAX_SECTION_LEN,
    };
    let count = n.checked_mul(m).ok_or_else(too_big)?;
    if codes.is_zero() {
        return Err(FormatError::SlotPresence {
            tensor: t(),
            section: "codes",
            problem: "is absent (the codes section is always required)",
        });
    }
    let codes = match coding {
        Coding::Fixed => {
            let len = stream::fixed_len(count, k).ok_or_else(too_big)?;
            codes.validate(name, "codes", len)?
        }
        // An entropy-coded stream's length is whatever it is; its structure is checked when
        // it is decoded (R55).
        Coding::Rans => {
            let declared = codes.decoded_len;
            codes.validate(name, "codes", declared)?
        }
    };
    let steps_len = m
        .checked_mul(n.div_ceil(u64::from(group)))
        .and_then(|x| x.checked_mul(step_type.size() as u64))
        .ok_or_else(too_big)?;
    if steps.is_zero() {
        return Err(FormatError::SlotPresence {
            tensor: t(),
            section: "steps",
            problem: "is absent (the steps section is always required)",
        });
    }
    let steps = steps.validate(name, "steps", steps_len)?;
    let record = match (measured, record) {
        (false, _) => ErrorRecord::APriori,
        (true, 1) => ErrorRecord::Weight,
        (true, 2) => ErrorRecord::WeightAndOutput,
        (true, v) => return Err(bad("error_kind", v)),
    };
    let errors = match errors {
        None => None,
        Some(e) if e.is_zero() => {
            return Err(FormatError::SlotPresence {
                tensor: t(),
                section: "errors",
                problem: "is absent (a version-2 pcm tensor records its errors)",
            })
        }
        Some(e) => {
            let len = m
                .checked_mul(4 * record.fields() as u64)
                .ok_or_else(too_big)?;
            Some(e.validate(name, "errors", len)?)
        }
    };
    Ok(PcmInfo {
        scheme_version,
        frame,
        orientation,
        has_bias,
        k,
        sign_seed,
        group,
        step_type,
        coding,
        max_bound,
        error_norm,
        weight_norm,
        codes,
        steps,
        record,
        errors,
        rows,
        cols,
        d,
    })
}

/// Resolves bias-of entries (R43–R46).
fn check_bias_links(tensors: &mut [TensorInfo], links: &[(usize, u64)]) -> Result<()> {
    let count = tensors.len() as u64;
    let mut refs = vec![0u64; tensors.len()];
    for &(bias, target) in links {
        let bias_name = || {
            tensors
                .get(bias)
                .map(|t| t.name.clone())
                .unwrap_or_default()
        };
        let Some(w) = usize::try_from(target).ok().filter(|&w| w < tensors.len()) else {
            return Err(FormatError::BiasTargetOutOfRange {
                tensor: bias_name(),
                index: target,
                count,
            });
        };
        let rows = match tensors.get(w).map(|t| &t.encoding) {
            Some(Encoding::SigmaDelta(q)) if q.has_bias => q.rows,
            Some(Encoding::Pcm(q)) if q.has_bias => q.rows,
            _ => {
                return Err(FormatError::BiasTargetInvalid {
                    tensor: bias_name(),
                    target: tensors.get(w).map(|t| t.name.clone()).unwrap_or_default(),
                })
            }
        };
        if let Some(r) = refs.get_mut(w) {
            *r += 1;
        }
        if let Some(b) = tensors.get_mut(bias) {
            if b.shape != [rows] || !b.dtype.is_quantizable_float() {
                return Err(FormatError::BiasShape {
                    tensor: b.name.clone(),
                    rows,
                });
            }
            b.encoding = Encoding::BiasOf { weight: w };
        }
    }
    for (t, &r) in tensors.iter().zip(&refs) {
        let has_bias = match &t.encoding {
            Encoding::SigmaDelta(q) => Some(q.has_bias),
            Encoding::Pcm(q) => Some(q.has_bias),
            _ => None,
        };
        if let Some(has_bias) = has_bias {
            if has_bias != (r == 1) || r > 1 {
                return Err(FormatError::BiasReferences {
                    tensor: t.name.clone(),
                    count: r,
                });
            }
        }
    }
    Ok(())
}

/// Checks the section layout (R37–R41) and returns the padding ranges (R42 is checked by the
/// caller, which has the bytes).
fn check_layout(tensors: &[TensorInfo], preamble: &Preamble) -> Result<Vec<Range<u64>>> {
    let header_end = preamble.header_end();
    let file_len = preamble.file_len;
    let mut end = header_end;
    let mut padding = Vec::new();
    for t in tensors {
        for (section, s) in t.sections() {
            let err_tensor = || t.name.clone();
            if s.offset % layout::ALIGN != 0 {
                return Err(FormatError::UnalignedSection {
                    tensor: err_tensor(),
                    section,
                    offset: s.offset,
                });
            }
            // `end` ≤ file_len < 2^64 − 64, so aligning it cannot overflow.
            let expected = align_up(end).unwrap_or(u64::MAX);
            if s.offset < expected {
                return Err(FormatError::SectionOverlap {
                    tensor: err_tensor(),
                    section,
                    offset: s.offset,
                    expected,
                });
            }
            if s.offset > expected {
                return Err(FormatError::SectionGap {
                    tensor: err_tensor(),
                    section,
                    offset: s.offset,
                    expected,
                });
            }
            let s_end = s.offset.saturating_add(s.stored_len);
            if s_end > file_len {
                return Err(FormatError::SectionPastEnd {
                    tensor: err_tensor(),
                    section,
                    end: s_end,
                    file_len,
                });
            }
            if expected > end {
                padding.push(end..expected);
            }
            end = s_end;
        }
    }
    if end != file_len {
        return Err(FormatError::TrailingData { end, file_len });
    }
    Ok(padding)
}

/// Checks that every padding byte in `range` of a file is zero, given those bytes.
pub(crate) fn check_padding(range: &Range<u64>, bytes: &[u8]) -> Result<()> {
    match bytes.iter().position(|&b| b != 0) {
        Some(i) => Err(FormatError::NonzeroPadding {
            offset: range.start + i as u64,
        }),
        None => Ok(()),
    }
}

/// Parses and validates a whole file held in memory: preamble, header, section layout and
/// padding (everything a reader checks on open; section contents are checked on use).
pub fn parse(file: &[u8]) -> Result<Header> {
    let len = file.len() as u64;
    let pre = parse_preamble(file.get(..file.len().min(64)).unwrap_or(&[]), len)?;
    // parse_preamble checked 64 + header_len ≤ len.
    let header = file
        .get(PREAMBLE_LEN as usize..pre.header_end() as usize)
        .unwrap_or(&[]);
    let h = parse_header(header, &pre)?;
    for r in &h.padding {
        check_padding(r, file.get(r.start as usize..r.end as usize).unwrap_or(&[]))?;
    }
    Ok(h)
}

// ---------------------------------------------------------------------------------------------
// Encoding (used by the writer).

#[cfg(feature = "encode")]
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(feature = "encode")]
fn put_section(out: &mut Vec<u8>, s: Option<&Section>) {
    match s {
        Some(s) => {
            out.extend_from_slice(&s.offset.to_le_bytes());
            out.extend_from_slice(&s.stored_len.to_le_bytes());
            out.extend_from_slice(&s.decoded_len.to_le_bytes());
            out.push(s.compression.id());
            out.extend_from_slice(&s.crc32.to_le_bytes());
        }
        None => out.extend_from_slice(&[0u8; SECTION_DESCRIPTOR_LEN as usize]),
    }
}

/// Encodes the header bytes for `metadata` and `tensors` (the writer's inverse of
/// [`parse_header`]; it does not validate — the writer re-parses what it encodes).
#[cfg(feature = "encode")]
pub(crate) fn encode_header(metadata: &[(String, String)], tensors: &[TensorInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u32).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        put_str(&mut out, v);
    }
    for t in tensors {
        put_str(&mut out, &t.name);
        out.push(t.dtype.id());
        out.push(t.shape.len() as u8);
        for d in &t.shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        match &t.encoding {
            Encoding::Raw { data } => {
                out.push(encoding::RAW);
                put_section(&mut out, Some(data));
            }
            Encoding::SigmaDelta(q) => {
                out.push(encoding::SIGMA_DELTA);
                out.push(q.scheme.id());
                out.push(q.scheme_version);
                out.push(q.frame.family().id());
                out.extend_from_slice(&(q.n() as u32).to_le_bytes());
                out.extend_from_slice(&(q.d() as u32).to_le_bytes());
                out.push(match q.orientation {
                    Orientation::Columns => sd::ORIENTATION_COLUMNS,
                    Orientation::Rows => sd::ORIENTATION_ROWS,
                });
                out.push(u8::from(q.has_bias));
                out.extend_from_slice(&q.k.to_le_bytes());
                out.push(q.bits);
                let (mode, delta) = match q.delta {
                    DeltaMode::Tensor(d) => (sd::DELTA_TENSOR, d),
                    DeltaMode::PerVector => (sd::DELTA_VECTOR, 0.0),
                };
                out.push(mode);
                out.push(q.policy.id());
                out.extend_from_slice(&delta.to_le_bytes());
                out.extend_from_slice(&q.sigma.to_le_bytes());
                out.extend_from_slice(&q.max_bound.to_le_bytes());
                out.extend_from_slice(&q.uncertified.to_le_bytes());
                put_section(&mut out, Some(&q.codes));
                put_section(&mut out, q.deltas.as_ref());
                put_section(&mut out, q.permutation.as_ref());
                if let Some((e, w)) = q.norms {
                    out.extend_from_slice(&e.to_le_bytes());
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
            Encoding::Pcm(q) => {
                out.push(encoding::PCM);
                out.push(q.scheme_version);
                out.push(q.frame.family_id());
                out.extend_from_slice(&(q.n() as u32).to_le_bytes());
                out.extend_from_slice(&(q.d as u32).to_le_bytes());
                out.push(match q.orientation {
                    Orientation::Columns => sd::ORIENTATION_COLUMNS,
                    Orientation::Rows => sd::ORIENTATION_ROWS,
                });
                out.push(u8::from(q.has_bias));
                out.extend_from_slice(&q.k.to_le_bytes());
                out.extend_from_slice(&q.sign_seed.to_le_bytes());
                out.extend_from_slice(&q.group.to_le_bytes());
                out.push(q.step_type.id());
                out.push(q.coding.id());
                out.extend_from_slice(&q.max_bound.to_le_bytes());
                out.extend_from_slice(&q.error_norm.to_le_bytes());
                out.extend_from_slice(&q.weight_norm.to_le_bytes());
                put_section(&mut out, Some(&q.codes));
                put_section(&mut out, Some(&q.steps));
                if q.scheme_version == layout::pcm::SCHEME_VERSION_MEASURED {
                    out.push(q.record.id());
                    put_section(&mut out, q.errors.as_ref());
                }
            }
            Encoding::BiasOf { weight } => {
                out.push(encoding::BIAS_OF);
                out.extend_from_slice(&(*weight as u32).to_le_bytes());
            }
        }
    }
    out
}

/// Encodes the preamble for a header and a file length.
#[cfg(feature = "encode")]
pub(crate) fn encode_preamble(header: &[u8], file_len: u64) -> [u8; 64] {
    let mut p = [0u8; 64];
    p[..8].copy_from_slice(&MAGIC);
    p[pre::MAJOR..pre::MAJOR + 2].copy_from_slice(&layout::MAJOR.to_le_bytes());
    p[pre::MINOR..pre::MINOR + 2].copy_from_slice(&layout::MINOR.to_le_bytes());
    p[pre::HEADER_LEN..pre::HEADER_LEN + 8].copy_from_slice(&(header.len() as u64).to_le_bytes());
    p[pre::HEADER_CRC..pre::HEADER_CRC + 4].copy_from_slice(&crc32fast::hash(header).to_le_bytes());
    p[pre::FILE_LEN..pre::FILE_LEN + 8].copy_from_slice(&file_len.to_le_bytes());
    let crc = crc32fast::hash(&p[..pre::CRC]);
    p[pre::CRC..].copy_from_slice(&crc.to_le_bytes());
    p
}
