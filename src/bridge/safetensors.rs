//! safetensors checkpoints in and out.
//!
//! Reading: [`Checkpoint::open`] opens one `.safetensors` file, or every shard named by a sharded
//! checkpoint's `*.safetensors.index.json`, reads and validates the headers with the
//! `safetensors` crate (contiguous offsets, sizes, end of file) and lists the tensors in file
//! order (shard by shard, each shard by data offset). Nothing else is read until asked for, one
//! tensor at a time ([`Checkpoint::bytes`], [`Checkpoint::to_f32`]), with positioned reads on
//! the files opened at the start: the inputs are never memory-mapped, so a file truncated by
//! another process while it is read gives an error, never SIGBUS, and a file replaced by a
//! rename (`sdq pack m.safetensors -o m.safetensors`) keeps being read from its old contents.
//!
//! Writing: [`SafetensorsStreamWriter`] writes the safetensors layout (u64 little-endian header
//! length, a JSON header padded with spaces to a multiple of 8, then the tensors' bytes, offsets
//! relative to the data start) to any `Write`, tensor by tensor, without holding more than the
//! tensor being written; [`SafetensorsWriter`] does so into a temporary file beside the target,
//! syncs it and renames it over the target, so the target is never seen half-written and an
//! input may safely be replaced by its own output.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, ErrorKind, Write};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use ::safetensors::tensor::{Dtype as StDtype, Metadata, SafeTensorError, SafeTensors};

use crate::error::{Error, FileKind, Result};
use crate::format::header::sniff;
use crate::format::layout::MAGIC;
use crate::format::Dtype;

/// The largest header the safetensors crate accepts (100 MB); we write no larger one.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// One tensor of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Its name.
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape (outermost first; empty for a scalar).
    pub shape: Vec<u64>,
    /// Number of elements (1 for a scalar).
    pub elements: u64,
    shard: usize,
    range: Range<usize>,
}

/// An open shard, read with positioned reads.
struct Shard {
    path: PathBuf,
    file: File,
}

/// A safetensors checkpoint: one file, or the shards of a `*.index.json`, opened read-only.
pub struct Checkpoint {
    path: PathBuf,
    shards: Vec<Shard>,
    tensors: Vec<TensorEntry>,
    index: HashMap<String, usize>,
    metadata: Vec<(String, String)>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("shards", &self.shards.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

fn data_err(msg: impl Into<String>) -> Error {
    Error::Data(msg.into())
}

/// Reads exactly `buf.len()` bytes of `file` at `offset` (without moving a shared cursor on
/// Unix).
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

/// A failed read of `what` from `path`: a file that ends early (truncated while we read it) is
/// bad data, anything else an I/O error.
fn read_failed(path: &Path, what: &str, e: std::io::Error) -> Error {
    if e.kind() == ErrorKind::UnexpectedEof {
        data_err(format!(
            "{}: the file ended before {what} (was it truncated while being read?)",
            path.display()
        ))
    } else {
        Error::io(path, e)
    }
}

/// Opens `path` and returns the file with its length (an empty file is refused as not a
/// safetensors file).
fn open_file(path: &Path) -> Result<(File, u64)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Err(data_err("not a safetensors file: it is empty"));
    }
    Ok((file, len))
}

/// Index files are small; a larger file is not sniffed as one.
const MAX_INDEX_LEN: u64 = 64 << 20;

/// Whether the file of length `len` is a JSON index under another name.
fn file_is_index(file: &File, len: u64) -> bool {
    if len > MAX_INDEX_LEN {
        return false;
    }
    let mut bytes = vec![0u8; len as usize];
    read_at(file, &mut bytes, 0).is_ok() && looks_like_index(&bytes)
}

/// What to do with a model file of another format: sdq reads safetensors only.
fn convert_hint(kind: FileKind) -> Option<&'static str> {
    match kind {
        FileKind::Zip | FileKind::Pickle => Some(
            "sdq packs safetensors: save its state dict with safetensors.torch.save_file first",
        ),
        FileKind::Onnx | FileKind::TfLite | FileKind::Hdf5 | FileKind::Npy => {
            Some("sdq packs safetensors: write its weights to a safetensors file first")
        }
        FileKind::Gguf => Some(
            "sdq packs float checkpoints in safetensors, as the model's own release ships them",
        ),
        _ => None,
    }
}

/// Translates the safetensors crate's validation error into one readable cause.
fn explain(e: &SafeTensorError, bytes: &[u8]) -> String {
    use SafeTensorError as E;
    let first = bytes.get(..bytes.len().min(64)).unwrap_or(&[]);
    let kind = || {
        if first.starts_with(&MAGIC) {
            "it is an .sdq file (run `sdq unpack` to get a safetensors file back)".to_string()
        } else {
            let kind = sniff(first);
            match convert_hint(kind) {
                Some(hint) => format!("{kind}; {hint}"),
                None => kind.to_string(),
            }
        }
    };
    match e {
        E::HeaderTooSmall => format!(
            "not a safetensors file: {} bytes is too short for the 8-byte header length ({})",
            bytes.len(),
            kind()
        ),
        E::HeaderTooLarge | E::InvalidHeaderLength => {
            format!("not a safetensors file: {}", kind())
        }
        E::InvalidHeader(_) => {
            format!("not a safetensors file: the header is not UTF-8 ({})", kind())
        }
        E::InvalidHeaderDeserialization(j) => {
            format!("not a safetensors file: the header is not a valid safetensors JSON header ({j})")
        }
        E::InvalidOffset(name) => format!(
            "invalid safetensors file: the data_offsets of tensor {name:?} leave a hole or overlap the previous tensor"
        ),
        E::TensorInvalidInfo => {
            "invalid safetensors file: a tensor's byte length does not match its dtype and shape"
                .to_string()
        }
        E::MetadataIncompleteBuffer => {
            "invalid safetensors file: the tensor data does not end exactly at the end of the file (truncated, or bytes appended)"
                .to_string()
        }
        E::ValidationOverflow => {
            "invalid safetensors file: a tensor's size overflows".to_string()
        }
        other => format!("invalid safetensors file: {other}"),
    }
}

/// The .sdq dtype of a safetensors dtype, if .sdq v1 can store it.
fn dtype_of(d: StDtype) -> Option<Dtype> {
    Some(match d {
        StDtype::BOOL => Dtype::Bool,
        StDtype::U8 => Dtype::U8,
        StDtype::I8 => Dtype::I8,
        StDtype::U16 => Dtype::U16,
        StDtype::I16 => Dtype::I16,
        StDtype::F16 => Dtype::F16,
        StDtype::BF16 => Dtype::BF16,
        StDtype::U32 => Dtype::U32,
        StDtype::I32 => Dtype::I32,
        StDtype::F32 => Dtype::F32,
        StDtype::U64 => Dtype::U64,
        StDtype::I64 => Dtype::I64,
        StDtype::F64 => Dtype::F64,
        StDtype::F8_E4M3 => Dtype::F8E4M3,
        StDtype::F8_E5M2 => Dtype::F8E5M2,
        _ => return None,
    })
}

/// Parses one shard: (entries in offset order, metadata sorted by key).
type ParsedShard = (Vec<TensorEntry>, Vec<(String, String)>);

/// Reads and validates the header of the safetensors file `file` (of length `len`): only the
/// 8-byte length and the JSON header are read, after checking that they fit in the file and
/// within the safetensors crate's 100 MB limit.
fn parse_shard(file: &File, path: &Path, len: u64, shard: usize) -> Result<ParsedShard> {
    let mut n8 = [0u8; 8];
    let n = if len >= 8 {
        read_at(file, &mut n8, 0).map_err(|e| read_failed(path, "its header", e))?;
        u64::from_le_bytes(n8)
    } else {
        0
    };
    // The whole header when it fits (the crate checks the rest), else enough to say what the file
    // looks like: the crate then reports the header as too large or longer than the file.
    let prefix_len = match n.checked_add(8) {
        Some(end) if n <= MAX_HEADER_LEN && end <= len => end,
        _ => len.min(64),
    };
    let mut prefix = vec![0u8; prefix_len as usize];
    read_at(file, &mut prefix, 0).map_err(|e| read_failed(path, "its header", e))?;
    let (n, meta) = match SafeTensors::read_metadata(&prefix) {
        // A header with no tensor data: the file must end right after it.
        Ok((n, meta)) if n as u64 + 8 == len => (n, meta),
        Ok(_) => {
            return Err(data_err(explain(
                &SafeTensorError::MetadataIncompleteBuffer,
                &prefix,
            )))
        }
        // Everything but the data's length was validated: the tensors' data must end exactly at
        // the end of the file.
        Err(SafeTensorError::MetadataIncompleteBuffer) if prefix_len == n + 8 => {
            let meta: Metadata = serde_json::from_slice(prefix.get(8..).unwrap_or(&[]))
                .map_err(|e| data_err(format!("invalid safetensors header: {e}")))?;
            let end = meta
                .tensors()
                .values()
                .map(|t| t.data_offsets.1 as u64)
                .max()
                .unwrap_or(0);
            if n.checked_add(8).and_then(|h| h.checked_add(end)) != Some(len) {
                return Err(data_err(explain(
                    &SafeTensorError::MetadataIncompleteBuffer,
                    &prefix,
                )));
            }
            (n as usize, meta)
        }
        Err(e) => return Err(data_err(explain(&e, &prefix))),
    };
    let data_start = n + 8;
    let infos = meta.tensors();
    let mut out = Vec::with_capacity(infos.len());
    for name in meta.offset_keys() {
        let Some(info) = infos.get(&name) else {
            continue;
        };
        let dtype = dtype_of(info.dtype).ok_or_else(|| {
            data_err(format!(
                "tensor {name:?} has dtype {:?}, which .sdq version 1 cannot store",
                info.dtype
            ))
        })?;
        let shape: Vec<u64> = info.shape.iter().map(|&d| d as u64).collect();
        let elements = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| data_err(format!("the shape of tensor {name:?} overflows")))?;
        let (b, e) = info.data_offsets;
        let range = data_start + b..data_start + e;
        out.push(TensorEntry {
            name,
            dtype,
            shape,
            elements,
            shard,
            range,
        });
    }
    let mut metadata: Vec<(String, String)> = meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    metadata.sort();
    Ok((out, metadata))
}

/// Whether `path` names a sharded checkpoint's index (by its `.json` extension).
fn is_index(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Whether the bytes look like a JSON object with a `weight_map` (an index under another name).
fn looks_like_index(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
        && serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.get("weight_map").is_some())
}

impl Checkpoint {
    /// Opens a checkpoint: a `.safetensors` file, a sharded checkpoint's `*.index.json`, or a
    /// directory holding exactly one `*.safetensors.index.json` or exactly one `.safetensors`
    /// file. Shard paths in an index are relative to the index's directory and may not leave
    /// it (no absolute paths, no `..`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Self::open_dir(path);
        }
        if is_index(path) {
            return Self::open_index(path);
        }
        let (file, len) = open_file(path)?;
        let (tensors, metadata) = match parse_shard(&file, path, len, 0) {
            Ok(parsed) => parsed,
            Err(_) if file_is_index(&file, len) => return Self::open_index(path),
            Err(e) => return Err(e),
        };
        Self::build(
            path,
            vec![Shard {
                path: path.to_owned(),
                file,
            }],
            tensors,
            metadata,
        )
    }

    fn open_dir(dir: &Path) -> Result<Self> {
        let mut indexes = Vec::new();
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let p = e.map_err(|e| Error::io(dir, e))?.path();
            let name = p.to_string_lossy();
            if name.ends_with(".safetensors.index.json") {
                indexes.push(p);
            } else if name.ends_with(".safetensors") {
                files.push(p);
            }
        }
        match (indexes.as_slice(), files.as_slice()) {
            ([one], _) => Self::open_index(one),
            ([], [one]) => Self::open(one),
            _ => Err(Error::param(format!(
                "{} is a directory with {} *.safetensors.index.json and {} *.safetensors files: name the file to read",
                dir.display(),
                indexes.len(),
                files.len()
            ))),
        }
    }

    fn open_index(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let json: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
            data_err(format!(
                "not a sharded checkpoint index: invalid JSON ({e})"
            ))
        })?;
        let weight_map = json
            .get("weight_map")
            .and_then(|w| w.as_object())
            .ok_or_else(|| data_err("not a sharded checkpoint index: no \"weight_map\" object"))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        // Shards in sorted file-name order (model-00001-of-00003 … 00003).
        let mut files: Vec<&str> = Vec::new();
        let mut wanted: HashMap<&str, &str> = HashMap::new();
        for (name, file) in weight_map {
            let file = file.as_str().ok_or_else(|| {
                data_err(format!(
                    "sharded checkpoint index: the shard of tensor {name:?} is not a string"
                ))
            })?;
            let rel = Path::new(file);
            if rel.as_os_str().is_empty()
                || rel.components().any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(data_err(format!(
                    "sharded checkpoint index: shard path {file:?} of tensor {name:?} must be a relative path inside the index's directory"
                )));
            }
            files.push(file);
            wanted.insert(name.as_str(), file);
        }
        files.sort_unstable();
        files.dedup();
        let mut shards = Vec::with_capacity(files.len());
        let mut tensors = Vec::new();
        let mut metadata: Vec<(String, String)> = Vec::new();
        let mut keys = HashSet::new();
        for (i, file) in files.iter().enumerate() {
            let shard_path = dir.join(file);
            let (handle, len) = open_file(&shard_path)?;
            let (entries, meta) =
                parse_shard(&handle, &shard_path, len, i).map_err(|e| match e {
                    Error::Data(m) => data_err(format!("shard {file:?}: {m}")),
                    e => e,
                })?;
            for e in &entries {
                if let Some(&listed) = wanted.get(e.name.as_str()) {
                    if listed != *file {
                        return Err(data_err(format!(
                            "sharded checkpoint: tensor {:?} is in shard {file:?}, the index says {listed:?}",
                            e.name
                        )));
                    }
                }
            }
            for (k, v) in meta {
                if keys.insert(k.clone()) {
                    metadata.push((k, v));
                }
            }
            tensors.extend(entries);
            shards.push(Shard {
                path: shard_path,
                file: handle,
            });
        }
        // The index's own "metadata" (e.g. total_size) comes after the shards' entries.
        if let Some(obj) = json.get("metadata").and_then(|m| m.as_object()) {
            for (k, v) in obj {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if keys.insert(k.clone()) {
                    metadata.push((k.clone(), v));
                }
            }
        }
        let present: HashSet<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        if let Some(missing) = wanted.keys().find(|n| !present.contains(*n)) {
            return Err(data_err(format!(
                "sharded checkpoint: tensor {missing:?} is listed in the index but in none of the shards"
            )));
        }
        Self::build(path, shards, tensors, metadata)
    }

    fn build(
        path: &Path,
        shards: Vec<Shard>,
        tensors: Vec<TensorEntry>,
        metadata: Vec<(String, String)>,
    ) -> Result<Self> {
        let mut index = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if index.insert(t.name.clone(), i).is_some() {
                return Err(data_err(format!(
                    "tensor {:?} appears in more than one shard",
                    t.name
                )));
            }
        }
        Ok(Checkpoint {
            path: path.to_owned(),
            shards,
            tensors,
            index,
            metadata,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every file this checkpoint was read from: the path it was opened from (a `.safetensors`
    /// file or an index), then each shard.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.path.as_path()).chain(self.shards.iter().map(|s| s.path.as_path()))
    }

    /// Every tensor, in file order (shard by shard, each by data offset).
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Result<&TensorEntry> {
        self.index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
            .ok_or_else(|| Error::NoSuchTensor(name.to_owned()))
    }

    /// The `__metadata__` entries (of every shard, then the index's `metadata`; the first of
    /// a repeated key wins), each source sorted by key.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// The file holding tensor `t`.
    pub fn shard_path(&self, t: &TensorEntry) -> &Path {
        self.shards
            .get(t.shard)
            .map_or(self.path.as_path(), |s| s.path.as_path())
    }

    fn shard(&self, t: &TensorEntry) -> Result<&Shard> {
        self.shards
            .get(t.shard)
            .ok_or_else(|| Error::NoSuchTensor(t.name.clone()))
    }

    /// The stored bytes of tensor `t` (little-endian, row-major), read from its file.
    pub fn bytes(&self, t: &TensorEntry) -> Result<Vec<u8>> {
        let shard = self.shard(t)?;
        let mut out = Vec::new();
        out.try_reserve_exact(t.range.len())
            .map_err(|_| Error::param(format!("tensor {:?} does not fit in memory", t.name)))?;
        out.resize(t.range.len(), 0);
        read_at(&shard.file, &mut out, t.range.start as u64).map_err(|e| {
            read_failed(&shard.path, &format!("the data of tensor {:?}", t.name), e)
        })?;
        Ok(out)
    }

    /// Tensor `t` converted to f32 (F32, F16, BF16 exactly; F64 rounded to nearest).
    ///
    /// The bytes are read in 4 MiB slabs and converted as they come, so no more than the f32
    /// output and one slab are held (and no page of the input stays in the process's resident
    /// set, as it would through a map).
    pub fn to_f32(&self, t: &TensorEntry) -> Result<Vec<f32>> {
        let not_float = || {
            Error::param(format!(
                "tensor {:?} has dtype {}, not a float type that can be quantized",
                t.name, t.dtype
            ))
        };
        let size = match t.dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F64 => 8,
            _ => return Err(not_float()),
        };
        let shard = self.shard(t)?;
        let mut out = Vec::new();
        out.try_reserve_exact(t.range.len() / size)
            .map_err(|_| Error::param(format!("tensor {:?} does not fit in memory", t.name)))?;
        // A multiple of every element size, so slabs never split an element.
        let mut buf = vec![0u8; (4 << 20).min(t.range.len())];
        let mut at = t.range.start;
        while at < t.range.end {
            let len = buf.len().min(t.range.end - at);
            let slab = buf.get_mut(..len).unwrap_or(&mut []);
            read_at(&shard.file, slab, at as u64).map_err(|e| {
                read_failed(&shard.path, &format!("the data of tensor {:?}", t.name), e)
            })?;
            out.extend(to_f32(t.dtype, slab).ok_or_else(not_float)?);
            at += len;
        }
        Ok(out)
    }
}

/// Little-endian `bytes` of a float dtype (F32, F16, BF16, F64) as f32; `None` for other dtypes.
pub fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut b = [0u8; N];
                b.copy_from_slice(c);
                f(b)
            })
            .collect()
    }
    Some(match dtype {
        Dtype::F32 => each::<4>(bytes, f32::from_le_bytes),
        Dtype::F16 => each::<2>(bytes, |b| half::f16::from_le_bytes(b).to_f32()),
        Dtype::BF16 => each::<2>(bytes, |b| half::bf16::from_le_bytes(b).to_f32()),
        Dtype::F64 => each::<8>(bytes, |b| f64::from_le_bytes(b) as f32),
        _ => return None,
    })
}

/// The element type f32 data is written as: F32, F16 or BF16 (rounded to nearest even).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatOut {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
}

impl FloatOut {
    /// The dtype written.
    pub fn dtype(self) -> Dtype {
        match self {
            FloatOut::F32 => Dtype::F32,
            FloatOut::F16 => Dtype::F16,
            FloatOut::BF16 => Dtype::BF16,
        }
    }

    /// The output type for `dtype` if it is F32, F16 or BF16.
    pub fn from_dtype(dtype: Dtype) -> Option<Self> {
        match dtype {
            Dtype::F32 => Some(FloatOut::F32),
            Dtype::F16 => Some(FloatOut::F16),
            Dtype::BF16 => Some(FloatOut::BF16),
            _ => None,
        }
    }
}

/// One tensor of a safetensors file to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Its name (not `__metadata__`).
    pub name: String,
    /// Its element type.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<u64>,
}

impl TensorSpec {
    fn byte_len(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(self.dtype.size(), |a, &d| a.checked_mul(d))
    }
}

/// The safetensors header (length prefix included) for `tensors` in this order and
/// `metadata`, and each tensor's byte length.
pub fn encode_header(
    tensors: &[TensorSpec],
    metadata: &[(String, String)],
) -> Result<(Vec<u8>, Vec<u64>)> {
    let s = |x: &str| serde_json::to_string(x).unwrap_or_default();
    let mut json = String::from("{");
    if !metadata.is_empty() {
        json.push_str("\"__metadata__\":{");
        let mut seen = HashSet::new();
        for (i, (k, v)) in metadata.iter().enumerate() {
            if !seen.insert(k.as_str()) {
                return Err(Error::param(format!("metadata key {k:?} is repeated")));
            }
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!("{}:{}", s(k), s(v)));
        }
        json.push('}');
    }
    let mut names = HashSet::new();
    let mut lens = Vec::with_capacity(tensors.len());
    let mut offset: u64 = 0;
    for (i, t) in tensors.iter().enumerate() {
        if t.name == "__metadata__" || !names.insert(t.name.as_str()) {
            return Err(Error::param(format!(
                "tensor name {:?} is reserved or repeated",
                t.name
            )));
        }
        let len = t
            .byte_len()
            .ok_or_else(|| Error::param(format!("the size of tensor {:?} overflows", t.name)))?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| Error::param("the total size overflows"))?;
        if i > 0 || !metadata.is_empty() {
            json.push(',');
        }
        let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
        json.push_str(&format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            s(&t.name),
            t.dtype.name(),
            shape.join(",")
        ));
        lens.push(len);
        offset = end;
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let n = json.len() as u64;
    if n > MAX_HEADER_LEN {
        return Err(Error::Limit {
            what: "safetensors header bytes",
            value: n,
            limit: MAX_HEADER_LEN,
        });
    }
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    Ok((out, lens))
}

/// Writes a safetensors file to any `Write`, tensor by tensor in the order given to `new`.
pub struct SafetensorsStreamWriter<W: Write> {
    out: W,
    what: PathBuf,
    tensors: Vec<(String, u64)>,
    next: usize,
}

impl<W: Write> SafetensorsStreamWriter<W> {
    /// Writes the header for `tensors` (in this order) and `metadata` to `out`; `what` names
    /// the destination in I/O errors.
    pub fn new(
        mut out: W,
        what: impl Into<PathBuf>,
        tensors: &[TensorSpec],
        metadata: &[(String, String)],
    ) -> Result<Self> {
        let what = what.into();
        let (header, lens) = encode_header(tensors, metadata)?;
        out.write_all(&header).map_err(|e| Error::io(&what, e))?;
        Ok(SafetensorsStreamWriter {
            out,
            what,
            tensors: tensors.iter().map(|t| t.name.clone()).zip(lens).collect(),
            next: 0,
        })
    }

    fn expect(&mut self, name: &str, len: u64) -> Result<()> {
        match self.tensors.get(self.next) {
            Some((n, l)) if n == name && *l == len => {
                self.next += 1;
                Ok(())
            }
            Some((n, l)) => Err(Error::param(format!(
                "expected tensor {n:?} of {l} bytes next, got {name:?} of {len} bytes"
            ))),
            None => Err(Error::param(format!(
                "every tensor is written; {name:?} is not expected"
            ))),
        }
    }

    /// Writes the next tensor's bytes (exactly its dtype size × elements).
    pub fn write_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.expect(name, bytes.len() as u64)?;
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.what, e))
    }

    /// Writes the next tensor from f32 values, converted to `dtype` on the way (in small
    /// chunks: no second copy of the tensor is made).
    pub fn write_f32(&mut self, name: &str, data: &[f32], dtype: FloatOut) -> Result<()> {
        let size = dtype.dtype().size();
        self.expect(name, data.len() as u64 * size)?;
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in data.chunks(1 << 14) {
            buf.clear();
            for &x in chunk {
                match dtype {
                    FloatOut::F32 => buf.extend_from_slice(&x.to_le_bytes()),
                    FloatOut::F16 => buf.extend_from_slice(&half::f16::from_f32(x).to_le_bytes()),
                    FloatOut::BF16 => buf.extend_from_slice(&half::bf16::from_f32(x).to_le_bytes()),
                }
            }
            self.out
                .write_all(&buf)
                .map_err(|e| Error::io(&self.what, e))?;
        }
        Ok(())
    }

    /// Checks that every tensor was written, flushes and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        if let Some((n, _)) = self.tensors.get(self.next) {
            return Err(Error::param(format!("tensor {n:?} was never written")));
        }
        self.out.flush().map_err(|e| Error::io(&self.what, e))?;
        Ok(self.out)
    }
}

pub use crate::atomic::AtomicFile;

/// Writes a safetensors file atomically (temporary file beside the target, fsync, rename).
/// Dropping an unfinished writer deletes the temporary file.
pub struct SafetensorsWriter {
    // Declared before `file` so the file is closed before the temporary file is removed.
    inner: SafetensorsStreamWriter<BufWriter<File>>,
    file: AtomicFile,
}

impl SafetensorsWriter {
    /// Starts writing `path` for `tensors` (written in this order) and `metadata`.
    pub fn create(
        path: impl AsRef<Path>,
        tensors: &[TensorSpec],
        metadata: &[(String, String)],
    ) -> Result<Self> {
        let path = path.as_ref();
        let (file, f) = AtomicFile::create(path)?;
        let inner = SafetensorsStreamWriter::new(
            BufWriter::with_capacity(1 << 20, f),
            path,
            tensors,
            metadata,
        )?;
        Ok(SafetensorsWriter { inner, file })
    }

    /// See [`SafetensorsStreamWriter::write_bytes`].
    pub fn write_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.inner.write_bytes(name, bytes)
    }

    /// See [`SafetensorsStreamWriter::write_f32`].
    pub fn write_f32(&mut self, name: &str, data: &[f32], dtype: FloatOut) -> Result<()> {
        self.inner.write_f32(name, data, dtype)
    }

    /// Completes the file without renaming it: the temporary file and its handle, for
    /// [`AtomicFile::commit`] once every file of a set is complete (dropping them deletes it).
    pub fn finish_pending(self) -> Result<(AtomicFile, File)> {
        let SafetensorsWriter { inner, file } = self;
        let what = file.target().to_owned();
        let buf = inner.finish()?;
        let f = buf
            .into_inner()
            .map_err(|e| Error::io(&what, e.into_error()))?;
        Ok((file, f))
    }

    /// Completes the file and renames it over the target.
    pub fn finish(self) -> Result<()> {
        let SafetensorsWriter { inner, file } = self;
        let what = file.target().to_owned();
        let buf = inner.finish()?;
        let f = buf
            .into_inner()
            .map_err(|e| Error::io(&what, e.into_error()))?;
        file.commit(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_through_the_safetensors_crate() {
        let specs = [
            TensorSpec {
                name: "a\"b".into(),
                dtype: Dtype::F32,
                shape: vec![2, 3],
            },
            TensorSpec {
                name: "s".into(),
                dtype: Dtype::I64,
                shape: vec![],
            },
        ];
        let meta = [("format".to_string(), "pt\n".to_string())];
        let mut w = SafetensorsStreamWriter::new(Vec::new(), "<mem>", &specs, &meta).unwrap();
        w.write_f32("a\"b", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], FloatOut::F32)
            .unwrap();
        w.write_bytes("s", &7i64.to_le_bytes()).unwrap();
        let bytes = w.finish().unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(n % 8, 0);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("a\"b").unwrap().shape(), &[2, 3]);
        assert_eq!(st.tensor("s").unwrap().data(), &7i64.to_le_bytes());
        let (_, m) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(m.metadata().as_ref().unwrap()["format"], "pt\n");
        assert_eq!(m.offset_keys(), vec!["a\"b".to_string(), "s".to_string()]);
    }

    #[test]
    fn a_header_length_whose_first_byte_is_a_brace_is_not_an_index() {
        let mut json = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.to_vec();
        json.resize(123, b' ');
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        assert_eq!(bytes[0], b'{');
        bytes.extend_from_slice(&json);
        bytes.extend_from_slice(&2.5f32.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("brace.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        let ck = Checkpoint::open(&p).unwrap();
        let t = ck.tensor("x").unwrap();
        assert_eq!(ck.to_f32(t).unwrap(), vec![2.5]);
        // An index under another name is still recognised.
        let shard = dir.path().join("s.safetensors");
        std::fs::write(&shard, &bytes).unwrap();
        let idx = dir.path().join("index.bin");
        std::fs::write(&idx, br#"{"weight_map": {"x": "s.safetensors"}}"#).unwrap();
        assert_eq!(Checkpoint::open(&idx).unwrap().tensors().len(), 1);
        // A shard path that leaves the directory is refused.
        std::fs::write(&idx, br#"{"weight_map": {"x": "../s.safetensors"}}"#).unwrap();
        assert!(matches!(Checkpoint::open(&idx), Err(Error::Data(_))));
    }

    #[test]
    fn writer_refuses_wrong_order_and_length() {
        let specs = [TensorSpec {
            name: "x".into(),
            dtype: Dtype::F16,
            shape: vec![2],
        }];
        let mut w = SafetensorsStreamWriter::new(Vec::new(), "<mem>", &specs, &[]).unwrap();
        assert!(w.write_bytes("y", &[0; 4]).is_err());
        assert!(w.write_bytes("x", &[0; 3]).is_err());
        let w = SafetensorsStreamWriter::new(Vec::new(), "<mem>", &specs, &[]).unwrap();
        assert!(w.finish().is_err());
    }

    #[test]
    fn conversions() {
        let b: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(to_f32(Dtype::F32, &b).unwrap(), vec![1.5, -2.0]);
        let h: Vec<u8> = [half::f16::from_f32(0.5)]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(to_f32(Dtype::F16, &h).unwrap(), vec![0.5]);
        let h: Vec<u8> = [half::bf16::from_f32(-3.0)]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(to_f32(Dtype::BF16, &h).unwrap(), vec![-3.0]);
        assert!(to_f32(Dtype::I32, &[0; 4]).is_none());
    }
}
