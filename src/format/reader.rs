//! [`SdqFile`]: an .sdq file over a memory map, a buffer or plain reads; list, decode, verify.
//!
//! Opening validates the preamble, the whole header, the section layout and the padding bytes
//! (at most 63 per section) and touches no other data. Section contents are checked when they
//! are used: CRC (unless turned off), decompressed length, δ values, permutation, code range.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

#[cfg(feature = "parallel")]
use rayon::prelude::*;

use super::bitpack;
use super::convert;
use super::header::{
    self, Compression, DeltaMode, Encoding, Header, Section, SigmaDeltaInfo, TensorInfo,
};
use super::layout::PREAMBLE_LEN;
use super::report::StorageReport;
use crate::error::{Error, FormatError, Result};
use crate::frame::{HarmonicFrame, Permutation, Workspace};
use crate::quant::{Alphabet, Orientation};

/// Where the bytes come from.
enum Source {
    Map(memmap2::Mmap),
    Bytes(Vec<u8>),
    File(File),
}

/// An open, validated .sdq file. `Send + Sync`: decode from several threads at once.
pub struct SdqFile {
    source: Source,
    path: Option<PathBuf>,
    header: Header,
    index: HashMap<String, usize>,
    verify_checksums: bool,
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
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
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
        let len = file.metadata().map_err(io)?.len();
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
        }
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
            Encoding::BiasOf { weight } => {
                let w = self
                    .header
                    .tensors
                    .get(*weight)
                    .ok_or_else(|| Error::NoSuchTensor(format!("#{weight}")))?;
                match &w.encoding {
                    Encoding::SigmaDelta(q) => self.decode_sigma_delta(&w.name, q, None, Some(out)),
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
    fn decode_sigma_delta(
        &self,
        name: &str,
        q: &SigmaDeltaInfo,
        mut weight: Option<&mut [f32]>,
        mut bias: Option<&mut [f32]>,
    ) -> Result<()> {
        let parts = self.sigma_delta_parts(name, q, self.verify_checksums)?;
        let frame = q.frame.build()?;
        let layout = q.layout();
        let (d, m) = (q.d() as usize, q.vector_count() as usize);
        // Only the bias wanted, columns orientation: the bias is the last column alone.
        let vectors = if weight.is_none() && q.orientation == Orientation::Columns {
            m.saturating_sub(1)..m
        } else {
            0..m
        };
        // Decode blocks of vectors into a vector-major buffer (in parallel), then scatter.
        let block = ((1usize << 19) / d).max(1);
        let mut tmp = vec![0.0f64; block.min(vectors.len()) * d];
        let mut start = vectors.start;
        while start < vectors.end {
            let count = block.min(vectors.end - start);
            let chunk = tmp.get_mut(..count * d).unwrap_or(&mut []);
            let new_ws = || (frame.workspace(), vec![0.0f64; frame.frame_size()]);
            let one = |ws: &mut (crate::frame::Workspace, Vec<f64>),
                       (i, out): (usize, &mut [f64])| {
                let (ws, scratch) = ws;
                let j = start + i;
                parts.levels_into(j as u64, &frame, ws, scratch)?;
                let scale = parts.delta(j) * d as f64 / frame.frame_size() as f64;
                frame.synthesise_workspace(scale, out, ws)
            };
            #[cfg(feature = "parallel")]
            chunk
                .par_chunks_mut(d)
                .enumerate()
                .try_for_each_init(new_ws, one)?;
            #[cfg(not(feature = "parallel"))]
            {
                let mut ws = new_ws();
                chunk
                    .chunks_mut(d)
                    .enumerate()
                    .try_for_each(|item| one(&mut ws, item))?;
            }
            for (i, v) in chunk.chunks(d).enumerate() {
                layout.scatter(start + i, v, weight.as_deref_mut(), bias.as_deref_mut());
            }
            start += count;
        }
        Ok(())
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
        frame: &HarmonicFrame,
        ws: &mut Workspace,
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
    let mut out = Vec::new();
    out.try_reserve(declared.min(1 << 24) as usize)
        .map_err(|_| err("needs more memory than is available"))?;
    let mut limited = decoder.single_frame().take(declared.saturating_add(1));
    limited
        .read_to_end(&mut out)
        .map_err(|_| err("is not a valid zstd stream"))?;
    match (out.len() as u64).cmp(&declared) {
        std::cmp::Ordering::Greater => Err(err("inflates past its declared size")),
        std::cmp::Ordering::Less => Err(err("decompresses to fewer bytes than declared")),
        std::cmp::Ordering::Equal if !limited.into_inner().finish().is_empty() => {
            Err(err("has bytes after its one zstd frame"))
        }
        std::cmp::Ordering::Equal => Ok(out),
    }
}

#[cfg(not(feature = "zstd"))]
fn decompress(tensor: &str, section: &'static str, _: &[u8], _: u64) -> Result<Vec<u8>> {
    Err(FormatError::UnsupportedCompression {
        tensor: tensor.to_owned(),
        section,
    }
    .into())
}
