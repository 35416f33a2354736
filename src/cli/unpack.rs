//! `sdq unpack`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sdq::bridge::unpack::{self, OutDtype};
use sdq::SdqFile;

use super::{is_stdout, Bar, CliResult, Failure};

const EXAMPLES: &str = "\
Examples:
  sdq unpack model.sdq -o restored.safetensors
  sdq unpack model.sdq -o restored.safetensors --dtype bf16
  sdq unpack model.sdq -o - --tensor fc1.weight > fc1.safetensors

Quantized tensors are decoded to F32 (or --dtype); raw tensors come back exactly as stored.
Names, order and __metadata__ are kept.";

/// The dtype of decoded tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
    /// The tensor's dtype before packing (F32, F16 or BF16; F64 as F32).
    Original,
}

/// Decode an .sdq file back into a safetensors file.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct UnpackArgs {
    /// The .sdq file.
    input: PathBuf,

    /// Output .safetensors file (written atomically), or - for stdout.
    #[arg(short, long, value_name = "OUT.safetensors")]
    output: PathBuf,

    /// Unpack only this tensor (repeatable).
    #[arg(long, value_name = "NAME")]
    tensor: Vec<String>,

    /// The dtype quantized tensors are written as.
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    dtype: DtypeArg,
}

pub fn run(a: UnpackArgs, quiet: bool) -> CliResult {
    let input = &a.input;
    let file = SdqFile::open(input).map_err(|e| Failure::lib(input, e))?;
    let dtype = match a.dtype {
        DtypeArg::F32 => OutDtype::F32,
        DtypeArg::F16 => OutDtype::F16,
        DtypeArg::Bf16 => OutDtype::BF16,
        DtypeArg::Original => OutDtype::Original,
    };
    let mut bar = Bar::new(quiet);
    if is_stdout(&a.output) {
        let stdout = std::io::stdout().lock();
        let out = std::io::BufWriter::with_capacity(1 << 20, stdout);
        let what = PathBuf::from("<stdout>");
        let mut out = unpack::unpack_to(&file, out, &what, &a.tensor, dtype, &mut bar)
            .map_err(|e| Failure::lib(input, e))?;
        out.flush()
            .map_err(|e| Failure::lib(input, sdq::Error::io(&what, e)))?;
    } else {
        unpack::unpack_file(&file, &a.output, &a.tensor, dtype, &mut bar)
            .map_err(|e| Failure::lib(input, e))?;
    }
    Ok(())
}
