//! [`SdqFile`]: an .sdq file over a memory map, a buffer or plain reads; list, decode, verify.
//!
//! Opening validates the preamble, the whole header, the section layout and the padding bytes
//! (at most 63 per section) and touches no other data. Section contents are checked when they
//! are used: CRC (unless turned off), decompressed length, δ values, permutation, code range.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[cfg(feature = "parallel")]
use rayon::prelude::*;

use super::convert;
use super::header::{
    self, Compression, DeltaMode, Encoding, Header, PcmInfo, Section, SigmaDeltaInfo, TensorInfo,
};
use super::layout::{Dtype, PREAMBLE_LEN};
use super::report::StorageReport;
use crate::codes::bitpack;
use crate::codes::stream::CodeStream;
use crate::error::{Error, FormatError, Result};
use crate::frame::{Frame, FrameDescriptor, FrameWorkspace, Permutation};
use crate::quant::pcm::{PcmSynthesis, PcmWorkspace, StepType};
use crate::quant::tensor::MatrixLayout;
use crate::quant::{Alphabet, Orientation};

/// Where the bytes come from.
enum Source {
    Map(memmap2::Mmap),
    Bytes(Vec<u8>),
    File(File),
}

/// The per-vector errors a version-2 pcm tensor records (spec §5.4): measured by the writer,
/// re-checked by `sdq verify --against`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedErrors {
    /// ‖w_j − w̃_j‖ per vector, rounded up.
    pub weight: Vec<f32>,
    /// ‖H^½(w_j − w̃_j)‖ / ‖H^½ w_j‖ per vector with the calibration's Gram matrix H, rounded
    /// up (when recorded).
    pub output: Option<Vec<f32>>,
}

/// An open, validated .sdq file. `Send + Sync`: decode from several threads at once.
pub struct SdqFile {
    source: Source,
    path: Option<PathBuf>,
    header: Header,
    index: HashMap<String, usize>,
    verify_checksums: bool,
    /// Frames (with their FFT plans) built so far, by descriptor: planning a long FFT costs
    /// more than decoding a small tensor, so each harmonic(N, d) is planned once per file.
    frames: Mutex<HashMap<FrameDescriptor, Arc<Frame>>>,
}

impl std::fmt::Debug for SdqFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdqFile")
            .field("path", &self.path)
            .field("tensors", &self.header.tensors.len())
            .field("file_len", &self.header.preamble.file_len)
            .finish()
    }
}

/// Maps `file` read-only.
fn map(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is only ever read, through `&[u8]`. memmap2 cannot stop another process
    // from modifying or truncating the file while it is mapped: a modification changes the bytes
    // under us (which the parser and CRCs treat like any other input — no invariant of ours
    // depends on the bytes staying the same between reads, and every read is bounds-checked
    // against the map's length, fixed at mapping time), and a truncation makes a later access
    // past the new end raise SIGBUS and kill the process. Callers who cannot rule that out use
    // `SdqFile::open_read`, which reads with ordinary I/O instead.
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// The length of the opened `file`; a directory (which `File::open` accepts on Unix, and which
/// would then fail to map with a puzzling "No such device") is refused as `<path>: is a
/// directory`.
fn file_len(file: &File, path: &Path) -> Result<u64> {
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    Ok(meta.len())
}

/// A zeroed buffer of `len` bytes, refused cleanly if it cannot be allocated.
fn zeroed<T: Clone + Default>(len: u64, what: &'static str) -> Result<Vec<T>> {
    let n = usize::try_from(len).map_err(|_| Error::Limit {
        what,
        value: len,
        limit: usize::MAX as u64,
    })?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::Limit {
        what,
        value: len,
        limit: 0,
    })?;
    v.resize(n, T::default());
    Ok(v)
}

impl SdqFile {
    /// Opens `path` by memory-mapping it and validates the preamble, header, layout and padding.
    /// See [`SdqFile::open_read`] for a path that does not map the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file_len(&file, path)?;
        let source = if len == 0 {
            Source::Bytes(Vec::new())
        } else {
            Source::Map(map(&file).map_err(|e| Error::io(path, e))?)
        };
        let bytes: &[u8] = match &source {
            Source::Map(m) => m,
            Source::Bytes(b) => b,
            Source::File(_) => &[],
        };
        let header = header::parse(bytes)?;
        Ok(Self::new(source, Some(path.to_owned()), header))
    }

    /// Validates a whole file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let header = header::parse(&bytes)?;
        Ok(Self::new(Source::Bytes(bytes), None, header))
    }

    /// Opens `path` with ordinary reads: the preamble, header and padding bytes are read and
    /// validated now, each section when it is used. Immune to the SIGBUS a mapped file raises
    /// when another process truncates it.
    pub fn open_read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |e| Error::io(path, e);
        let file = File::open(path).map_err(io)?;
        let len = file_len(&file, path)?;
        let mut first = vec![0u8; len.min(PREAMBLE_LEN) as usize];
        read_at(&file, &mut first, 0).map_err(io)?;
        let pre = header::parse_preamble(&first, len)?;
        // header_len ≤ MAX_HEADER_LEN and ≤ len − 64: checked by parse_preamble.
        let mut hbytes = vec![0u8; pre.header_len as usize];
        read_at(&file, &mut hbytes, PREAMBLE_LEN).map_err(io)?;
        let header = header::parse_header(&hbytes, &pre)?;
        let mut pad = [0u8; 64];
        for r in &header.padding {
            // Each padding range is shorter than 64 bytes.
            let buf = pad.get_mut(..(r.end - r.start) as usize).unwrap_or(&mut []);
            read_at(&file, buf, r.start).map_err(io)?;
            header::check_padding(r, buf)?;
        }
        Ok(Self::new(Source::File(file), Some(path.to_owned()), header))
    }

    fn new(source: Source, path: Option<PathBuf>, header: Header) -> Self {
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        SdqFile {
            source,
            path,
            header,
            index,
            verify_checksums: true,
            frames: Mutex::new(HashMap::new()),
        }
    }

    /// The frame `desc` describes, built (and, for a harmonic frame, planned) once and then
    /// shared.
    fn frame(&self, desc: &FrameDescriptor) -> Result<Arc<Frame>> {
        // A poisoned lock only means another thread panicked while holding it; the map itself
        // is always in a valid state (one insert), so keep using it.
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = frames.get(desc) {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(desc.build()?);
        frames.insert(*desc, Arc::clone(&f));
        Ok(f)
    }

    /// Turns CRC checking of sections before use on or off (on by default).
    /// [`SdqFile::verify`] always checks.
    pub fn set_verify_checksums(&mut self, on: bool) {
        self.verify_checksums = on;
    }

    /// Every tensor record, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.index
            .get(name)
            .and_then(|&i| self.header.tensors.get(i))
            .ok_or_else(|| Error::NoSuchTensor(name.to_owned()))
    }

    /// The metadata entries, in file order.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.header.metadata
    }

    /// The parsed header (preamble, metadata, tensors).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// (major, minor) version of the file.
    pub fn version(&self) -> (u16, u16) {
        (self.header.preamble.major, self.header.preamble.minor)
    }

    /// The path it was opened from (`None` for a file held in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.header.preamble.file_len
    }

    /// The storage report: bytes, ratios and bits per weight per tensor and in total.
    pub fn report(&self) -> StorageReport {
        StorageReport::new(&self.header)
    }

    /// The stored bytes of a section (borrowed from a map or buffer, read for a file).
    fn stored(&self, s: &Section) -> Result<Cow<'_, [u8]>> {
        let r = s.range();
        let (start, end) = (r.start as usize, r.end as usize);
        match &self.source {
            // The layout check guarantees the range lies inside the file.
            Source::Map(m) => Ok(Cow::Borrowed(m.get(start..end).unwrap_or(&[]))),
            Source::Bytes(b) => Ok(Cow::Borrowed(b.get(start..end).unwrap_or(&[]))),
            Source::File(f) => {
                let mut buf = zeroed(s.stored_len, "section buffer bytes")?;
                read_at(f, &mut buf, s.offset)
                    .map_err(|e| Error::io(self.path.clone().unwrap_or_default(), e))?;
                Ok(Cow::Owned(buf))
            }
        }
    }

    /// The decoded bytes of a section: CRC checked (if `check`), decompressed to exactly
    /// decoded_len bytes.
    fn section(
        &self,
        tensor: &str,
        what: &'static str,
        s: &Section,
        check: bool,
    ) -> Result<Cow<'_, [u8]>> {
        let stored = self.stored(s)?;
        if check {
            let computed = crc32fast::hash(&stored);
            if computed != s.crc32 {
                return Err(Error::Checksum {
                    tensor: tensor.to_owned(),
                    what,
                    stored: s.crc32,
                    computed,
                });
            }
        }
        match s.compression {
            Compression::None => Ok(stored),
            Compression::Zstd => decompress(tensor, what, &stored, s.decoded_len).map(Cow::Owned),
        }
    }

    /// The bytes of a raw tensor, exactly as they were written (decompressed if needed).
    pub fn raw_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        let t = self.tensor(name)?;
        match &t.encoding {
            Encoding::Raw { data } => self.section(&t.name, "data", data, self.verify_checksums),
            e => Err(Error::param(format!(
                "tensor {name:?} is stored as {}, not raw",
                e.name()
            ))),
        }
    }

    /// Decodes tensor `name` into `out` (one f32 per element, row-major): raw tensors are
    /// converted from their dtype, sigma-delta tensors rebuilt from their codes, a bias from
    /// the codes of its weight.
    pub fn decode_into(&self, name: &str, out: &mut [f32]) -> Result<()> {
        let t = self.tensor(name)?;
        if out.len() as u64 != t.elements {
            return Err(Error::param(format!(
                "tensor {name:?} has {} elements, the buffer has {}",
                t.elements,
                out.len()
            )));
        }
        match &t.encoding {
            Encoding::Raw { data } => {
                let bytes = self.section(&t.name, "data", data, self.verify_checksums)?;
                convert::to_f32(t.dtype, &bytes, out);
                Ok(())
            }
            Encoding::SigmaDelta(q) => self.decode_sigma_delta(&t.name, q, Some(out), None),
            Encoding::Pcm(q) => self.decode_pcm(&t.name, q, Some(out), None),
            Encoding::BiasOf { weight } => {
                let w = self
                    .header
                    .tensors
                    .get(*weight)
                    .ok_or_else(|| Error::NoSuchTensor(format!("#{weight}")))?;
                match &w.encoding {
                    Encoding::SigmaDelta(q) => self.decode_sigma_delta(&w.name, q, None, Some(out)),
                    Encoding::Pcm(q) => self.decode_pcm(&w.name, q, None, Some(out)),
                    _ => Err(Error::NoSuchTensor(w.name.clone())),
                }
            }
        }
    }

    /// Decodes tensor `name` into a new buffer (see [`SdqFile::decode_into`]).
    pub fn decode(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name)?;
        let mut out = zeroed(t.elements, "decoded tensor elements")?;
        self.decode_into(name, &mut out)?;
        Ok(out)
    }

    /// Checks everything about tensor `name` that opening did not: the CRC of every section,
    /// decompressed lengths, and for a sigma-delta tensor (or a bias, through its weight) δ
    /// values, the permutation, every code and the code padding bits.
    pub fn verify(&self, name: &str) -> Result<()> {
        let t = self.tensor(name)?;
        match &t.encoding {
            Encoding::Raw { data } => self.section(&t.name, "data", data, true).map(drop),
            Encoding::SigmaDelta(q) => self.verify_sigma_delta(&t.name, q),
            Encoding::Pcm(q) => {
                self.errors_of(&t.name, q, true)?;
                self.decode_pcm_with(&t.name, q, true, None, None).map(drop)
            }
            Encoding::BiasOf { weight } => match self.header.tensors.get(*weight) {
                Some(w) => self.verify(&w.name),
                None => Err(Error::NoSuchTensor(format!("#{weight}"))),
            },
        }
    }

    /// [`SdqFile::verify`] for every tensor.
    pub fn verify_all(&self) -> Result<()> {
        self.header
            .tensors
            .iter()
            .try_for_each(|t| self.verify(&t.name))
    }

    fn verify_sigma_delta(&self, name: &str, q: &SigmaDeltaInfo) -> Result<()> {
        let parts = self.sigma_delta_parts(name, q, true)?;
        let n = q.n() as usize;
        let mut buf = vec![0u16; n];
        for j in 0..q.vector_count() {
            parts.codes_of(j, &mut buf)?;
        }
        Ok(())
    }

    /// Reads and checks the sections of a sigma-delta tensor.
    fn sigma_delta_parts<'a>(
        &'a self,
        name: &'a str,
        q: &'a SigmaDeltaInfo,
        check: bool,
    ) -> Result<Parts<'a>> {
        let m = q.vector_count();
        let codes = self.section(name, "codes", &q.codes, check)?;
        // Unused high bits of the last byte must be zero.
        // N·m·bits ≤ 8 × decoded_len ≤ 2^43 (checked at parse time); saturating for form.
        let total_bits = q.n().saturating_mul(m).saturating_mul(u64::from(q.bits));
        if total_bits % 8 != 0 {
            if let Some(&last) = codes.last() {
                if last >> (total_bits % 8) != 0 {
                    return Err(FormatError::CodePaddingNonzero {
                        tensor: name.to_owned(),
                    }
                    .into());
                }
            }
        }
        let deltas = match (&q.delta, &q.deltas) {
            (DeltaMode::PerVector, Some(s)) => {
                let bytes = self.section(name, "deltas", s, check)?;
                let mut v = zeroed::<f64>(m, "per-vector step sizes")?;
                for (j, (o, c)) in v.iter_mut().zip(bytes.chunks_exact(8)).enumerate() {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    let x = f64::from_le_bytes(b);
                    if !(x.is_finite() && x >= 0.0) {
                        return Err(FormatError::InvalidDelta {
                            tensor: name.to_owned(),
                            vector: Some(j as u64),
                            bits: x.to_bits(),
                        }
                        .into());
                    }
                    *o = x;
                }
                Some(v)
            }
            _ => None,
        };
        let order = match &q.permutation {
            Some(s) => {
                let bytes = self.section(name, "permutation", s, check)?;
                Permutation::Explicit(read_permutation(name, &bytes, q.n())?)
            }
            None => Permutation::Identity,
        };
        // K was validated at parse time; this keeps the alphabet's own limits authoritative.
        Alphabet::new(q.k)?;
        Ok(Parts {
            name,
            q,
            codes,
            deltas,
            order,
        })
    }

    /// Rebuilds the weight (rows × cols) and/or the bias (rows) of a sigma-delta tensor.
    ///
    /// Each vector is one FFT, written straight to f32. Rows without a bias are synthesised in
    /// place in the output; otherwise blocks of vectors are decoded (in parallel) into a
    /// vector-major f32 buffer and then moved to their place, for the columns orientation by a
    /// tiled transpose over bands of output rows (also in parallel). Every value is computed by
    /// one thread from its own vector only, so results do not depend on the thread count.
    fn decode_sigma_delta(
        &self,
        name: &str,
        q: &SigmaDeltaInfo,
        mut weight: Option<&mut [f32]>,
        mut bias: Option<&mut [f32]>,
    ) -> Result<()> {
        let parts = self.sigma_delta_parts(name, q, self.verify_checksums)?;
        let frame = self.frame(&q.frame)?;
        let layout = q.layout();
        let (d, m, n) = (
            q.d() as usize,
            q.vector_count() as usize,
            frame.frame_size(),
        );
        let new_ws = || (frame.workspace(), vec![0.0f64; n]);
        let one = |ws: &mut (FrameWorkspace, Vec<f64>), j: usize, out: &mut [f32]| -> Result<()> {
            let (ws, scratch) = ws;
            parts.levels_into(j as u64, &frame, ws, scratch)?;
            let scale = parts.delta(j) * d as f64 / n as f64;
            frame.synthesise_workspace_f32(scale, out, ws)
        };

        // Rows without bias: vector j is row j of the output.
        if let (Orientation::Rows, false, Some(w)) =
            (layout.orientation, layout.has_bias, weight.as_deref_mut())
        {
            if w.len() != m.saturating_mul(d) {
                return Err(Error::param("weight buffer does not match the tensor"));
            }
            #[cfg(feature = "parallel")]
            w.par_chunks_mut(d)
                .enumerate()
                .try_for_each_init(new_ws, |ws, (j, out)| one(ws, j, out))?;
            #[cfg(not(feature = "parallel"))]
            {
                let mut ws = new_ws();
                w.chunks_mut(d)
                    .enumerate()
                    .try_for_each(|(j, out)| one(&mut ws, j, out))?;
            }
            return Ok(());
        }

        // Only the bias wanted, columns orientation: the bias is the last column alone.
        let vectors = if weight.is_none() && q.orientation == Orientation::Columns {
            m.saturating_sub(1)..m
        } else {
            0..m
        };
        // Blocks of about 2 MiB of f32.
        let block = ((1usize << 19) / d.max(1)).max(1);
        let mut tmp = vec![0.0f32; block.min(vectors.len()) * d];
        let mut start = vectors.start;
        while start < vectors.end {
            let count = block.min(vectors.end - start);
            let chunk = tmp.get_mut(..count * d).unwrap_or(&mut []);
            #[cfg(feature = "parallel")]
            chunk
                .par_chunks_mut(d)
                .enumerate()
                .try_for_each_init(new_ws, |ws, (i, out)| one(ws, start + i, out))?;
            #[cfg(not(feature = "parallel"))]
            {
                let mut ws = new_ws();
                chunk
                    .chunks_mut(d)
                    .enumerate()
                    .try_for_each(|(i, out)| one(&mut ws, start + i, out))?;
            }
            place(
                &layout,
                start,
                chunk,
                weight.as_deref_mut(),
                bias.as_deref_mut(),
            );
            start += count;
        }
        Ok(())
    }

    /// The steps of the pcm tensor `name`: ⌈N/G⌉ per vector, vector after vector (CRC checked
    /// unless checking is off; each finite and ≥ 0).
    pub fn pcm_steps(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name)?;
        let Encoding::Pcm(q) = &t.encoding else {
            return Err(Error::param(format!(
                "tensor {name:?} is stored as {}, not pcm",
                t.encoding.name()
            )));
        };
        self.steps_of(&t.name, q, self.verify_checksums)
    }

    /// The per-vector errors a version-2 pcm tensor `name` records (`None` for a tensor
    /// certified a priori): CRC checked unless checking is off, each finite and ≥ 0 (R58).
    pub fn pcm_errors(&self, name: &str) -> Result<Option<RecordedErrors>> {
        let t = self.tensor(name)?;
        let Encoding::Pcm(q) = &t.encoding else {
            return Err(Error::param(format!(
                "tensor {name:?} is stored as {}, not pcm",
                t.encoding.name()
            )));
        };
        self.errors_of(&t.name, q, self.verify_checksums)
    }

    fn errors_of(&self, name: &str, q: &PcmInfo, check: bool) -> Result<Option<RecordedErrors>> {
        let Some(section) = &q.errors else {
            return Ok(None);
        };
        let bytes = self.section(name, "errors", section, check)?;
        let m = q.vector_count();
        let mut values = zeroed::<f32>(
            m.saturating_mul(q.record.fields() as u64),
            "recorded errors",
        )?;
        convert::to_f32(Dtype::F32, &bytes, &mut values);
        if let Some(i) = values.iter().position(|e| !(e.is_finite() && *e >= 0.0)) {
            return Err(FormatError::InvalidRecordedError {
                tensor: name.to_owned(),
                vector: i as u64 % m.max(1),
                what: if (i as u64) < m {
                    "weight error"
                } else {
                    "output error"
                },
                bits: f64::from(values.get(i).copied().unwrap_or(0.0)).to_bits(),
            }
            .into());
        }
        let output = values.split_off(values.len().min(m as usize));
        Ok(Some(RecordedErrors {
            weight: values,
            output: (!output.is_empty()).then_some(output),
        }))
    }

    fn steps_of(&self, name: &str, q: &PcmInfo, check: bool) -> Result<Vec<f32>> {
        let groups = q.groups() as usize;
        let step_bytes = self.section(name, "steps", &q.steps, check)?;
        let mut steps = zeroed::<f32>(
            q.vector_count().saturating_mul(groups as u64),
            "pcm step values",
        )?;
        let dtype = match q.step_type {
            StepType::F16 => Dtype::F16,
            StepType::F32 => Dtype::F32,
        };
        convert::to_f32(dtype, &step_bytes, &mut steps);
        if let Some(i) = steps.iter().position(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err(FormatError::InvalidStep {
                tensor: name.to_owned(),
                vector: (i / groups.max(1)) as u64,
                bits: f64::from(steps.get(i).copied().unwrap_or(0.0)).to_bits(),
            }
            .into());
        }
        Ok(steps)
    }

    /// Rebuilds the weight and/or bias of a pcm tensor.
    fn decode_pcm(
        &self,
        name: &str,
        q: &PcmInfo,
        weight: Option<&mut [f32]>,
        bias: Option<&mut [f32]>,
    ) -> Result<()> {
        self.decode_pcm_with(name, q, self.verify_checksums, weight, bias)
    }

    /// Decodes a pcm tensor chunk by chunk (chunks in parallel); with no output buffers it only
    /// checks every code and step (verify). Results do not depend on the thread count.
    fn decode_pcm_with(
        &self,
        name: &str,
        q: &PcmInfo,
        check: bool,
        mut weight: Option<&mut [f32]>,
        mut bias: Option<&mut [f32]>,
    ) -> Result<()> {
        let layout = q.layout();
        let (d, m, n) = (q.d as usize, q.vector_count() as usize, q.n() as usize);
        let groups = q.groups() as usize;
        let code_bytes = self.section(name, "codes", &q.codes, check)?;
        let steps = self.steps_of(name, q, check)?;
        let stream_err = |problem: String| -> Error {
            FormatError::CodeStream {
                tensor: name.to_owned(),
                problem,
            }
            .into()
        };
        let codes = CodeStream::parse(&code_bytes, n, m, q.k, q.coding).map_err(stream_err)?;
        let synth = PcmSynthesis::new(q.frame, d, q.sign_seed, q.group as usize)?;
        let decode_only = weight.is_none() && bias.is_none();
        // One chunk: its codes, then each of its vectors into `out` (vector-major, d each).
        let chunk = |st: &mut (PcmWorkspace, Vec<i32>, Vec<u8>, Vec<f64>),
                     c: usize,
                     out: &mut [f32]|
         -> Result<()> {
            let (ws, buf, sym, step) = st;
            let range = codes.chunk_range(c);
            buf.resize(range.len() * n, 0);
            if let Err((vector, code)) = codes.decode_chunk(c, buf, sym).map_err(stream_err)? {
                return Err(FormatError::PcmCodeOutOfRange {
                    tensor: name.to_owned(),
                    vector,
                    code,
                    k: q.k,
                }
                .into());
            }
            if decode_only {
                return Ok(());
            }
            for (i, (cj, o)) in buf.chunks_exact(n).zip(out.chunks_exact_mut(d)).enumerate() {
                let j = range.start + i;
                let sj = steps.get(j * groups..(j + 1) * groups).unwrap_or(&[]);
                step.clear();
                step.extend(sj.iter().map(|&s| f64::from(s)));
                synth.vector(cj, step, ws, o)?;
            }
            Ok(())
        };
        let new_state = || (synth.workspace(), Vec::new(), Vec::new(), Vec::new());
        let per = codes.chunk_vectors();
        let chunks = codes.chunk_count();
        // Rows without bias: each chunk is a contiguous block of the output.
        if let (Orientation::Rows, false, Some(w)) =
            (layout.orientation, layout.has_bias, weight.as_deref_mut())
        {
            if w.len() != m.saturating_mul(d) {
                return Err(Error::param("weight buffer does not match the tensor"));
            }
            #[cfg(feature = "parallel")]
            w.par_chunks_mut(per * d)
                .enumerate()
                .try_for_each_init(new_state, |st, (c, out)| chunk(st, c, out))?;
            #[cfg(not(feature = "parallel"))]
            {
                let mut st = new_state();
                w.chunks_mut(per * d)
                    .enumerate()
                    .try_for_each(|(c, out)| chunk(&mut st, c, out))?;
            }
            return Ok(());
        }
        // Otherwise: bands of chunks into a vector-major buffer, then moved into place.
        let band = (((1usize << 19) / (per * d).max(1)).max(1)).min(chunks.max(1));
        let mut tmp = if decode_only {
            Vec::new()
        } else {
            zeroed::<f32>(
                (band as u64) * (per as u64) * (d as u64),
                "pcm decode buffer",
            )?
        };
        let mut c0 = 0;
        while c0 < chunks {
            let c1 = (c0 + band).min(chunks);
            let first = c0 * per;
            let last = (c1 * per).min(m);
            if decode_only {
                let mut st = new_state();
                for c in c0..c1 {
                    chunk(&mut st, c, &mut [])?;
                }
            } else {
                let buf = tmp.get_mut(..(last - first) * d).unwrap_or(&mut []);
                #[cfg(feature = "parallel")]
                buf.par_chunks_mut(per * d)
                    .enumerate()
                    .try_for_each_init(new_state, |st, (i, out)| chunk(st, c0 + i, out))?;
                #[cfg(not(feature = "parallel"))]
                {
                    let mut st = new_state();
                    buf.chunks_mut(per * d)
                        .enumerate()
                        .try_for_each(|(i, out)| chunk(&mut st, c0 + i, out))?;
                }
                place(
                    &layout,
                    first,
                    buf,
                    weight.as_deref_mut(),
                    bias.as_deref_mut(),
                );
            }
            c0 = c1;
        }
        Ok(())
    }

    /// y = W̃·x computed from the codes of the sigma-delta weight `name` (rows × cols, without
    /// decoding it): `x` has `cols` entries, `y` gets `rows`. See [`SdqFile::matvec_batch`].
    pub fn matvec(&self, name: &str, x: &[f32], y: &mut [f32]) -> Result<()> {
        self.matvec_batch(name, x, 1, y)
    }

    /// Y = W̃·X for `batch` inputs, straight from the codes of the sigma-delta weight `name`
    /// (rows × cols; a bias quantized with it is left out): `x` holds the inputs one after
    /// another (`batch` × cols), `y` receives the outputs likewise (`batch` × rows).
    ///
    /// - Columns orientation: z = Σ_j x_j·δ_j·level(c_j) is accumulated over the codes in one
    ///   pass (per frame position, in vector order), then ONE synthesis per input gives
    ///   y = (d/N)·Σ_n z_n e_n.
    /// - Rows orientation: ONE analysis per input gives a_n = ⟨x, e_n⟩, then one pass over the
    ///   codes gives y_i = (d/N)·δ_i·Σ_n level(c_in)·a_n.
    ///
    /// Sums run in f64, in an order fixed by the data (not by the thread count), so the result
    /// is the same for any number of threads; it equals decode-then-multiply up to rounding.
    pub fn matvec_batch(&self, name: &str, x: &[f32], batch: usize, y: &mut [f32]) -> Result<()> {
        let t = self.tensor(name)?;
        let Encoding::SigmaDelta(q) = &t.encoding else {
            return Err(Error::param(format!(
                "tensor {name:?} is stored as {}; matvec works on sigma-delta weights",
                t.encoding.name()
            )));
        };
        let layout = q.layout();
        let (rows, cols) = (layout.rows, layout.cols);
        if Some(x.len()) != batch.checked_mul(cols) || Some(y.len()) != batch.checked_mul(rows) {
            return Err(Error::param(format!(
                "matvec on {rows} x {cols} with batch {batch} needs {} inputs and {} outputs, got {} and {}",
                batch.saturating_mul(cols),
                batch.saturating_mul(rows),
                x.len(),
                y.len()
            )));
        }
        if batch == 0 {
            return Ok(());
        }
        let parts = self.sigma_delta_parts(&t.name, q, self.verify_checksums)?;
        let frame = self.frame(&q.frame)?;
        let (d, n) = (frame.dim(), frame.frame_size());
        let scale = d as f64 / n as f64;
        match layout.orientation {
            Orientation::Columns => {
                // zs[k·batch + b] = Σ_j x_b[j]·δ_j·level(c_jk), k in step order; bands of steps
                // are independent, and within one the vectors are summed in order.
                let mut zs = zeroed::<f64>(
                    (n as u64).saturating_mul(batch as u64),
                    "matvec accumulator",
                )?;
                const BAND: usize = 1024;
                let band = |(bi, z): (usize, &mut [f64])| -> Result<()> {
                    let k0 = bi * BAND;
                    let len = z.len() / batch;
                    let mut lev = vec![0.0f64; len];
                    let mut a = vec![0.0f64; batch];
                    for j in 0..cols {
                        let dj = parts.delta(j);
                        for (b, a) in a.iter_mut().enumerate() {
                            *a = f64::from(x.get(b * cols + j).copied().unwrap_or(0.0)) * dj;
                        }
                        if a.iter().all(|&a| a == 0.0) {
                            continue;
                        }
                        parts.levels_range(j as u64, k0 as u64, &mut lev)?;
                        if batch == 1 {
                            let a = a[0];
                            for (z, &l) in z.iter_mut().zip(&lev) {
                                *z += a * l;
                            }
                        } else {
                            for (zk, &l) in z.chunks_exact_mut(batch).zip(&lev) {
                                for (z, &a) in zk.iter_mut().zip(&a) {
                                    *z += a * l;
                                }
                            }
                        }
                    }
                    Ok(())
                };
                #[cfg(feature = "parallel")]
                zs.par_chunks_mut(BAND * batch)
                    .enumerate()
                    .try_for_each(band)?;
                #[cfg(not(feature = "parallel"))]
                zs.chunks_mut(BAND * batch).enumerate().try_for_each(band)?;
                let mut ws = frame.workspace();
                for (b, yb) in y.chunks_exact_mut(rows).enumerate() {
                    let input = frame.fft_input(&mut ws);
                    for (k, zk) in zs.chunks_exact(batch).enumerate() {
                        // Step k uses frame position p(k), read by the FFT at (p + 1) mod N.
                        let p = parts.order.position(k) + 1;
                        if let Some(slot) = input.get_mut(if p == n { 0 } else { p }) {
                            *slot = zk.get(b).copied().unwrap_or(0.0);
                        }
                    }
                    frame.synthesise_workspace_f32(scale, yb, &mut ws)?;
                }
                Ok(())
            }
            Orientation::Rows => {
                // a_b in step order: a_b[k] = ⟨x_b, e_{p(k)}⟩.
                let mut ws = frame.workspace();
                let (mut w, mut coeffs) = (vec![0.0f64; d], vec![0.0f64; n]);
                let mut a = vec![0.0f64; n * batch];
                for (b, ab) in a.chunks_exact_mut(n).enumerate() {
                    for (o, &v) in w
                        .iter_mut()
                        .zip(x.get(b * cols..(b + 1) * cols).unwrap_or(&[]))
                    {
                        *o = f64::from(v);
                    }
                    frame.analyse(&w, &mut coeffs, &mut ws)?;
                    for (k, o) in ab.iter_mut().enumerate() {
                        *o = coeffs.get(parts.order.position(k)).copied().unwrap_or(0.0);
                    }
                }
                let row = |lev: &mut Vec<f64>, i: usize| -> Result<Vec<f64>> {
                    parts.levels_range(i as u64, 0, lev)?;
                    let s = scale * parts.delta(i);
                    Ok(a.chunks_exact(n).map(|ab| s * dot(lev, ab)).collect())
                };
                let new_lev = || vec![0.0f64; n];
                #[cfg(feature = "parallel")]
                let out: Vec<Result<Vec<f64>>> =
                    (0..rows).into_par_iter().map_init(new_lev, row).collect();
                #[cfg(not(feature = "parallel"))]
                let out: Vec<Result<Vec<f64>>> = {
                    let mut lev = new_lev();
                    (0..rows).map(|i| row(&mut lev, i)).collect()
                };
                for (i, r) in out.into_iter().enumerate() {
                    for (b, v) in r?.into_iter().enumerate() {
                        if let Some(o) = y.get_mut(b * rows + i) {
                            *o = v as f32;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// Σ a_i·b_i with four accumulators (a fixed order: the same result on every run).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Moves decoded vectors `start..` (vector-major in `tmp`, d each) to their place in the
/// row-major weight and the bias.
fn place(
    layout: &MatrixLayout,
    start: usize,
    tmp: &[f32],
    weight: Option<&mut [f32]>,
    bias: Option<&mut [f32]>,
) {
    let d = layout.vector_len();
    let (rows, cols) = (layout.rows, layout.cols);
    let count = tmp.len() / d.max(1);
    match layout.orientation {
        Orientation::Rows => {
            let (mut weight, mut bias) = (weight, bias);
            for (i, v) in tmp.chunks_exact(d).enumerate() {
                let j = start + i;
                if let (Some(row), Some(src)) = (
                    weight
                        .as_deref_mut()
                        .and_then(|w| w.get_mut(j * cols..(j + 1) * cols)),
                    v.get(..cols),
                ) {
                    row.copy_from_slice(src);
                }
                if let (Some(b), Some(&x)) = (bias.as_deref_mut(), v.get(cols)) {
                    if let Some(o) = b.get_mut(j) {
                        *o = x;
                    }
                }
            }
        }
        Orientation::Columns => {
            // Weight columns start..end_w; the bias is vector `cols`.
            let end_w = (start + count).min(cols);
            if let Some(w) = weight {
                if start < end_w && w.len() == rows * cols {
                    let transpose = |(band, out): (usize, &mut [f32])| {
                        let i0 = band * BAND_ROWS;
                        for j0 in (start..end_w).step_by(TILE) {
                            let j1 = (j0 + TILE).min(end_w);
                            let src = tmp.get((j0 - start) * d..(j1 - start) * d).unwrap_or(&[]);
                            for (r, row) in out.chunks_exact_mut(cols).enumerate() {
                                let i = i0 + r;
                                let seg = row.get_mut(j0..j1).unwrap_or(&mut []);
                                for (o, v) in seg.iter_mut().zip(src.chunks_exact(d)) {
                                    if let Some(&x) = v.get(i) {
                                        *o = x;
                                    }
                                }
                            }
                        }
                    };
                    const BAND_ROWS: usize = 64;
                    const TILE: usize = 64;
                    #[cfg(feature = "parallel")]
                    w.par_chunks_mut(BAND_ROWS * cols)
                        .enumerate()
                        .for_each(transpose);
                    #[cfg(not(feature = "parallel"))]
                    w.chunks_mut(BAND_ROWS * cols)
                        .enumerate()
                        .for_each(transpose);
                }
            }
            if layout.has_bias && start + count > cols {
                if let (Some(b), Some(v)) = (bias, tmp.get((cols - start) * d..)) {
                    for (o, &x) in b.iter_mut().zip(v) {
                        *o = x;
                    }
                }
            }
        }
    }
}

/// The checked sections of a sigma-delta tensor, ready to decode vectors from.
struct Parts<'a> {
    name: &'a str,
    q: &'a SigmaDeltaInfo,
    codes: Cow<'a, [u8]>,
    deltas: Option<Vec<f64>>,
    order: Permutation,
}

impl Parts<'_> {
    fn delta(&self, j: usize) -> f64 {
        match (&self.q.delta, &self.deltas) {
            (DeltaMode::Tensor(d), _) => *d,
            (_, Some(v)) => v.get(j).copied().unwrap_or(0.0),
            _ => 0.0,
        }
    }

    /// Writes vector `j`'s code levels (c − K + ½) into the frame's FFT input, each at the FFT
    /// index of its frame position ((p + 1) mod N), checking every code is below 2K. `scratch`
    /// (length N) is used for an explicit ordering.
    fn levels_into(
        &self,
        j: u64,
        frame: &Frame,
        ws: &mut FrameWorkspace,
        scratch: &mut [f64],
    ) -> Result<()> {
        let n = self.q.n();
        let bits = u32::from(self.q.bits);
        let first = j.saturating_mul(n);
        let input = frame.fft_input(ws);
        let checked = match &self.order {
            // Step k uses e_{k+1}, read by the FFT at index k + 1 (and the last at index 0).
            Permutation::Identity => match input.split_first_mut() {
                Some((last, rest)) => {
                    bitpack::unpack_levels(&self.codes, bits, first, self.q.k, rest)?.and(
                        bitpack::unpack_levels(
                            &self.codes,
                            bits,
                            first.saturating_add(n - 1),
                            self.q.k,
                            std::slice::from_mut(last),
                        )?,
                    )
                }
                None => Ok(()),
            },
            Permutation::Explicit(order) => {
                let r = bitpack::unpack_levels(&self.codes, bits, first, self.q.k, scratch)?;
                for (&p, &level) in order.iter().zip(scratch.iter()) {
                    let idx = (p as usize + 1) % input.len().max(1);
                    if let Some(slot) = input.get_mut(idx) {
                        *slot = level;
                    }
                }
                r
            }
        };
        checked.map_err(|code| {
            FormatError::CodeOutOfRange {
                tensor: self.name.to_owned(),
                vector: j,
                code,
                levels: 2 * self.q.k,
            }
            .into()
        })
    }

    /// Writes the levels (c − K + ½) of vector `j`'s codes at steps `from..from + out.len()`
    /// into `out`, checking every code is below 2K.
    fn levels_range(&self, j: u64, from: u64, out: &mut [f64]) -> Result<()> {
        let at = j.saturating_mul(self.q.n()).saturating_add(from);
        bitpack::unpack_levels(&self.codes, u32::from(self.q.bits), at, self.q.k, out)?.map_err(
            |code| {
                FormatError::CodeOutOfRange {
                    tensor: self.name.to_owned(),
                    vector: j,
                    code,
                    levels: 2 * self.q.k,
                }
                .into()
            },
        )
    }

    /// Unpacks vector `j`'s codes into `out` (length N) and checks each is below 2K.
    fn codes_of(&self, j: u64, out: &mut [u16]) -> Result<()> {
        bitpack::unpack(
            &self.codes,
            u32::from(self.q.bits),
            j.saturating_mul(self.q.n()),
            out,
        )?;
        let levels = 2 * self.q.k;
        if let Some(&code) = out.iter().find(|&&c| u32::from(c) >= levels) {
            return Err(FormatError::CodeOutOfRange {
                tensor: self.name.to_owned(),
                vector: j,
                code,
                levels,
            }
            .into());
        }
        Ok(())
    }
}

/// Decodes and validates a permutation section: N little-endian u32, a permutation of 0..N−1
/// other than the identity.
fn read_permutation(name: &str, bytes: &[u8], n: u64) -> Result<Vec<u32>> {
    let mut seen = zeroed::<bool>(n, "permutation entries")?;
    let mut order = Vec::with_capacity(seen.len());
    let bad = |index: usize, value, problem| {
        Error::from(FormatError::InvalidPermutation {
            tensor: name.to_owned(),
            index: index as u64,
            value,
            problem,
        })
    };
    for (k, c) in bytes.chunks_exact(4).enumerate() {
        let mut b = [0u8; 4];
        b.copy_from_slice(c);
        let p = u32::from_le_bytes(b);
        match seen.get_mut(p as usize) {
            None => return Err(bad(k, p, "outside 0..N")),
            Some(true) => return Err(bad(k, p, "repeated")),
            Some(s) => *s = true,
        }
        order.push(p);
    }
    if order.iter().enumerate().all(|(k, &p)| p as usize == k) {
        return Err(bad(0, 0, "the identity must not be stored"));
    }
    Ok(order)
}

/// Decompresses one zstd frame into exactly `declared` bytes; fails if it inflates past that or
/// falls short. Memory grows with the output actually produced, never past `declared`.
#[cfg(feature = "zstd")]
fn decompress(
    tensor: &str,
    section: &'static str,
    stored: &[u8],
    declared: u64,
) -> Result<Vec<u8>> {
    use std::io::Read;
    let err = |problem| {
        Error::from(FormatError::Decompression {
            tensor: tensor.to_owned(),
            section,
            problem,
            declared,
        })
    };
    let decoder = zstd::stream::read::Decoder::with_buffer(stored)
        .map_err(|_| err("is not a valid zstd stream"))?;
    let mut src = decoder.single_frame();
    let declared_len =
        usize::try_from(declared).map_err(|_| err("needs more memory than is available"))?;
    // Grow the buffer with the output actually produced (64 KiB, then doubling, never past
    // `declared`): a frame that produces little costs little whatever it claims.
    let mut out: Vec<u8> = Vec::new();
    while out.len() < declared_len {
        let start = out.len();
        let step = (declared_len - start).min(start.max(1 << 16));
        out.try_reserve_exact(step)
            .map_err(|_| err("needs more memory than is available"))?;
        out.resize(start + step, 0);
        let mut filled = start;
        while filled < out.len() {
            match src.read(out.get_mut(filled..).unwrap_or(&mut [])) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(err("is not a valid zstd stream")),
            }
        }
        out.truncate(filled);
        if filled < start + step {
            return Err(err("decompresses to fewer bytes than declared"));
        }
    }
    // Exactly `declared` bytes so far: one more byte of output is an overrun.
    let mut probe = [0u8; 1];
    loop {
        match src.read(&mut probe) {
            Ok(0) => break,
            Ok(_) => return Err(err("inflates past its declared size")),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(err("is not a valid zstd stream")),
        }
    }
    if !src.finish().is_empty() {
        return Err(err("has bytes after its one zstd frame"));
    }
    Ok(out)
}

#[cfg(not(feature = "zstd"))]
fn decompress(tensor: &str, section: &'static str, _: &[u8], _: u64) -> Result<Vec<u8>> {
    Err(FormatError::UnsupportedCompression {
        tensor: tensor.to_owned(),
        section,
    }
    .into())
}
