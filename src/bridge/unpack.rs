//! `sdq unpack`: an .sdq file → a safetensors file (or a Hugging Face sharded checkpoint), one
//! tensor in memory at a time.
//!
//! Quantized tensors (and biases quantized with their weight) are decoded to f32 and written as
//! their original dtype (the default), F32, F16 or BF16. Raw tensors come back exactly as stored,
//! unless a dtype is asked for: then every float tensor (F32, F16, BF16, F64) is converted to it.
//! Names, order (the .sdq file order) and metadata are kept.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::progress::Progress;
use super::safetensors::{
    to_f32, AtomicFile, FloatOut, SafetensorsStreamWriter, SafetensorsWriter, TensorSpec,
};
use crate::error::{Error, Result};
use crate::format::{Dtype, Encoding, SdqFile, TensorInfo};

/// The dtype float tensors are written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutDtype {
    /// F32 (exactly what the decoder computes, rounded once to f32), for every float tensor.
    F32,
    /// F16.
    F16,
    /// BF16.
    BF16,
    /// The default: the dtype each tensor had before packing (a quantized F64 tensor is
    /// written as F32); raw tensors exactly as stored.
    #[default]
    Original,
}

impl OutDtype {
    fn float_out(self, original: Dtype) -> FloatOut {
        match self {
            OutDtype::F32 => FloatOut::F32,
            OutDtype::F16 => FloatOut::F16,
            OutDtype::BF16 => FloatOut::BF16,
            OutDtype::Original => FloatOut::from_dtype(original).unwrap_or(FloatOut::F32),
        }
    }
}

/// The tensors to unpack: `names` (in file order, each checked to exist) or all if empty.
pub fn select<'a>(sdq: &'a SdqFile, names: &[String]) -> Result<Vec<&'a TensorInfo>> {
    for n in names {
        sdq.tensor(n)?;
    }
    Ok(sdq
        .tensors()
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == &t.name))
        .collect())
}

/// How tensor `t` is written: its bytes as stored, or as floats of this type.
fn output(t: &TensorInfo, dtype: OutDtype) -> Option<FloatOut> {
    match t.encoding {
        // A raw float tensor is converted only when a dtype is asked for (F8 types stay raw).
        Encoding::Raw { .. } => match dtype {
            OutDtype::Original => None,
            _ if to_f32(t.dtype, &[]).is_some() => {
                Some(dtype.float_out(t.dtype)).filter(|f| f.dtype() != t.dtype)
            }
            _ => None,
        },
        _ => Some(dtype.float_out(t.dtype)),
    }
}

fn spec(t: &TensorInfo, dtype: OutDtype) -> TensorSpec {
    TensorSpec {
        name: t.name.clone(),
        dtype: output(t, dtype).map_or(t.dtype, FloatOut::dtype),
        shape: t.shape.clone(),
    }
}

/// Writes the selected tensors of `sdq` as a safetensors stream into `out` (`what` names it in
/// I/O errors) and returns the sink.
pub fn unpack_to<W: Write>(
    sdq: &SdqFile,
    out: W,
    what: &Path,
    names: &[String],
    dtype: OutDtype,
    progress: &mut dyn Progress,
) -> Result<W> {
    let tensors = select(sdq, names)?;
    let specs: Vec<TensorSpec> = tensors.iter().map(|t| spec(t, dtype)).collect();
    let mut w = SafetensorsStreamWriter::new(out, what, &specs, sdq.metadata())?;
    write_all(sdq, &tensors, dtype, progress, |name, data| match data {
        Data::Bytes(b) => w.write_bytes(name, b),
        Data::Floats(f, d) => w.write_f32(name, f, d),
    })?;
    w.finish()
}

/// Writes the selected tensors of `sdq` into the safetensors file `path`, atomically
/// (temporary file beside it, then rename: `path` may be the file `sdq` was opened from).
pub fn unpack_file(
    sdq: &SdqFile,
    path: &Path,
    names: &[String],
    dtype: OutDtype,
    progress: &mut dyn Progress,
) -> Result<()> {
    let tensors = select(sdq, names)?;
    let specs: Vec<TensorSpec> = tensors.iter().map(|t| spec(t, dtype)).collect();
    let mut w = SafetensorsWriter::create(path, &specs, sdq.metadata())?;
    write_all(sdq, &tensors, dtype, progress, |name, data| match data {
        Data::Bytes(b) => w.write_bytes(name, b),
        Data::Floats(f, d) => w.write_f32(name, f, d),
    })?;
    w.finish()
}

enum Data<'a> {
    Bytes(&'a [u8]),
    Floats(&'a [f32], FloatOut),
}

fn write_all(
    sdq: &SdqFile,
    tensors: &[&TensorInfo],
    dtype: OutDtype,
    progress: &mut dyn Progress,
    mut sink: impl FnMut(&str, Data) -> Result<()>,
) -> Result<()> {
    progress.start("unpacking", tensors.len() as u64);
    for t in tensors {
        progress.tensor(&t.name);
        write_one(sdq, t, dtype, &mut sink)?;
        progress.advance();
    }
    progress.finish();
    Ok(())
}

fn write_one(
    sdq: &SdqFile,
    t: &TensorInfo,
    dtype: OutDtype,
    sink: &mut impl FnMut(&str, Data) -> Result<()>,
) -> Result<()> {
    match (&t.encoding, output(t, dtype)) {
        (Encoding::Raw { .. }, None) => sink(&t.name, Data::Bytes(&sdq.raw_bytes(&t.name)?)),
        (Encoding::Raw { .. }, Some(out)) => {
            let bytes = sdq.raw_bytes(&t.name)?;
            let values = to_f32(t.dtype, &bytes).ok_or_else(|| {
                Error::param(format!("tensor {:?} is not a float tensor", t.name))
            })?;
            sink(&t.name, Data::Floats(&values, out))
        }
        (_, out) => {
            let values = sdq.decode(&t.name)?;
            sink(&t.name, Data::Floats(&values, out.unwrap_or(FloatOut::F32)))
        }
    }
}

/// Parses a shard size: a number of bytes, optionally followed by a unit: `KB`, `MB`, `GB`,
/// `TB` (powers of 1000, as Hugging Face's `max_shard_size`) or `KiB`, `MiB`, `GiB`, `TiB`
/// (powers of 1024), case-insensitive, e.g. `5GB`, `500MB`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let scale: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => 0,
    };
    let value: Option<f64> = num.parse().ok();
    match value {
        Some(v) if scale > 0 && v.is_finite() && v * scale as f64 >= 1.0 && v * (scale as f64) < 1.8e19 => {
            Ok((v * scale as f64) as u64)
        }
        _ => Err(Error::param(format!(
            "{s:?} is not a size: give a positive number of bytes, optionally with a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 5GB"
        ))),
    }
}

/// The file holding the whole checkpoint when it fits in one shard.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// How the selected tensors are split into Hugging Face shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    /// Each shard's file name and the indices (into [`SdqFile::tensors`]) of its tensors, in
    /// file order: `model.safetensors` alone when everything fits in one shard, else
    /// `model-00001-of-0000N.safetensors` …
    pub shards: Vec<(String, Vec<usize>)>,
    /// `model.safetensors.index.json` when there is more than one shard.
    pub index: Option<String>,
    /// The sum of the tensors' byte sizes (the index's `metadata.total_size`).
    pub total_size: u64,
}

impl ShardPlan {
    /// Every file name the plan writes (shards, then the index).
    pub fn file_names(&self) -> Vec<&str> {
        self.shards
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.index.as_deref())
            .collect()
    }
}

/// Splits the selected tensors of `sdq` (as [`select`] does) into shards of at most
/// `max_shard_size` bytes of tensor data, as `transformers`' `save_pretrained` does: tensors in
/// file order, a new shard when the next tensor would overflow the current one (a tensor larger
/// than the limit gets a shard of its own).
pub fn plan_shards(
    sdq: &SdqFile,
    names: &[String],
    dtype: OutDtype,
    max_shard_size: u64,
) -> Result<ShardPlan> {
    if max_shard_size == 0 {
        return Err(Error::param("the shard size must be at least 1 byte"));
    }
    select(sdq, names)?;
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut groups: Vec<(u64, Vec<usize>)> = Vec::new();
    let mut total: u64 = 0;
    for (i, t) in sdq
        .tensors()
        .iter()
        .enumerate()
        .filter(|(_, t)| wanted.is_empty() || wanted.contains(t.name.as_str()))
    {
        let s = spec(t, dtype);
        let size = s
            .shape
            .iter()
            .try_fold(s.dtype.size(), |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::param(format!("the size of tensor {:?} overflows", t.name)))?;
        total = total
            .checked_add(size)
            .ok_or_else(|| Error::param("the total size overflows"))?;
        match groups.last_mut() {
            Some((used, members)) if used.saturating_add(size) <= max_shard_size => {
                *used += size;
                members.push(i);
            }
            _ => groups.push((size, vec![i])),
        }
    }
    if groups.is_empty() {
        groups.push((0, Vec::new()));
    }
    let n = groups.len();
    let shards = if n == 1 {
        vec![(SINGLE_FILE.to_string(), groups.remove(0).1)]
    } else {
        groups
            .into_iter()
            .enumerate()
            .map(|(k, (_, m))| (format!("model-{:05}-of-{n:05}.safetensors", k + 1), m))
            .collect()
    };
    Ok(ShardPlan {
        shards,
        index: (n > 1).then(|| INDEX_FILE.to_string()),
        total_size: total,
    })
}

/// Whether `name` is a shard name `model-DDDDD-of-DDDDD.safetensors`.
fn is_shard_name(name: &str) -> bool {
    let Some(mid) = name
        .strip_prefix("model-")
        .and_then(|r| r.strip_suffix(".safetensors"))
    else {
        return false;
    };
    let b = mid.as_bytes();
    b.len() == 14
        && b.get(5..9) == Some(b"-of-".as_slice())
        && b.iter()
            .enumerate()
            .all(|(i, c)| (5..9).contains(&i) || c.is_ascii_digit())
}

/// Writes `plan` (from [`plan_shards`]) into the directory `dir` (created if missing): every
/// shard and the index go to temporary files first; only when all are complete and synced are
/// they renamed into place (shards first, the index last), so an error leaves no new file and
/// no half-written one. Then shards of an earlier run that the new index does not name
/// (`model-DDDDD-of-DDDDD.safetensors`), and a stale `model.safetensors.index.json` when the
/// output is a single `model.safetensors`, are removed, as `save_pretrained` does. Returns the
/// paths written.
pub fn unpack_sharded(
    sdq: &SdqFile,
    dir: &Path,
    plan: &ShardPlan,
    dtype: OutDtype,
    progress: &mut dyn Progress,
) -> Result<Vec<PathBuf>> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "is not a directory (--max-shard-size writes a directory of shards)",
                ),
            ))
        }
        Err(_) => std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?,
    }
    let all = sdq.tensors();
    let count = plan.shards.iter().map(|(_, m)| m.len()).sum::<usize>();
    let mut pending: Vec<(AtomicFile, File)> = Vec::new();
    let mut weight_map = serde_json::Map::new();
    progress.start("unpacking", count as u64);
    for (file_name, members) in &plan.shards {
        let tensors: Vec<&TensorInfo> = members.iter().filter_map(|&i| all.get(i)).collect();
        let specs: Vec<TensorSpec> = tensors.iter().map(|t| spec(t, dtype)).collect();
        let path = dir.join(file_name);
        let mut w = SafetensorsWriter::create(&path, &specs, sdq.metadata())?;
        for t in &tensors {
            progress.tensor(&t.name);
            write_one(sdq, t, dtype, &mut |name, data| match data {
                Data::Bytes(b) => w.write_bytes(name, b),
                Data::Floats(f, d) => w.write_f32(name, f, d),
            })?;
            weight_map.insert(t.name.clone(), file_name.clone().into());
            progress.advance();
        }
        pending.push(w.finish_pending()?);
    }
    progress.finish();
    if let Some(index) = &plan.index {
        let path = dir.join(index);
        let doc = serde_json::json!({
            "metadata": { "total_size": plan.total_size },
            "weight_map": weight_map,
        });
        let mut text =
            serde_json::to_string_pretty(&doc).map_err(|e| Error::param(format!("index: {e}")))?;
        text.push('\n');
        let (atomic, mut f) = AtomicFile::create(&path)?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::io(&path, e))?;
        pending.push((atomic, f));
    }
    for (atomic, f) in &pending {
        f.sync_all().map_err(|e| Error::io(atomic.target(), e))?;
    }
    let mut written = Vec::with_capacity(pending.len());
    for (atomic, f) in pending {
        written.push(atomic.target().to_owned());
        atomic.commit(f)?;
    }
    // Leftovers of an earlier, differently sharded run in the same directory.
    let names = plan.file_names();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = (is_shard_name(&name) && !names.contains(&name.as_str()))
                || (plan.index.is_none() && name == INDEX_FILE);
            // Never the .sdq file being read, whatever its name.
            let is_input = sdq
                .path()
                .is_some_and(|input| super::refuse_output_over_input(&e.path(), [input]).is_err());
            if stale && !is_input && e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(written)
}

/// Parses `f32`, `f16`, `bf16` or `original` (case-insensitive).
pub fn parse_out_dtype(s: &str) -> Result<OutDtype> {
    match s.to_ascii_lowercase().as_str() {
        "f32" => Ok(OutDtype::F32),
        "f16" => Ok(OutDtype::F16),
        "bf16" => Ok(OutDtype::BF16),
        "original" => Ok(OutDtype::Original),
        _ => Err(Error::param(format!(
            "unknown dtype {s:?}: use f32, f16, bf16 or original"
        ))),
    }
}
