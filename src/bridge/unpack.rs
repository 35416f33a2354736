//! `sdq unpack`: an .sdq file → a safetensors file, one tensor in memory at a time.
//!
//! Raw tensors come back exactly as stored (dtype and bytes); quantized tensors (and biases
//! quantized with their weight) are decoded to f32 and written as F32, F16, BF16 or their
//! original dtype. Names, order (the .sdq file order) and metadata are kept.

use std::io::Write;
use std::path::Path;

use super::progress::Progress;
use super::safetensors::{FloatOut, SafetensorsStreamWriter, SafetensorsWriter, TensorSpec};
use crate::error::{Error, Result};
use crate::format::{Dtype, Encoding, SdqFile, TensorInfo};

/// The dtype quantized tensors are written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutDtype {
    /// F32 (the default: exactly what the decoder computes, rounded once to f32).
    #[default]
    F32,
    /// F16.
    F16,
    /// BF16.
    BF16,
    /// The dtype the tensor had before packing (F32, F16 or BF16; F64 is written as F32).
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

fn spec(t: &TensorInfo, dtype: OutDtype) -> TensorSpec {
    let dtype = match t.encoding {
        Encoding::Raw { .. } => t.dtype,
        _ => dtype.float_out(t.dtype).dtype(),
    };
    TensorSpec {
        name: t.name.clone(),
        dtype,
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
        match t.encoding {
            Encoding::Raw { .. } => sink(&t.name, Data::Bytes(&sdq.raw_bytes(&t.name)?))?,
            _ => {
                let values = sdq.decode(&t.name)?;
                sink(&t.name, Data::Floats(&values, dtype.float_out(t.dtype)))?
            }
        }
        progress.advance();
    }
    progress.finish();
    Ok(())
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
