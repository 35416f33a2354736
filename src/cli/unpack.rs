//! `sdq unpack`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use sdq::bridge::unpack::{self, OutDtype};
use sdq::SdqFile;

use super::table::bytes;
use super::{escape, is_stdout, Bar, CliResult, Failure};

const EXAMPLES: &str = "\
Examples:
  sdq unpack model.sdq -o restored.safetensors
  sdq unpack model.sdq -o restored.safetensors --dtype bf16
  sdq unpack model.sdq -o restored/ --max-shard-size 5GB   # Hugging Face shards + index
  sdq unpack model.sdq -o - --tensor fc1.weight > fc1.safetensors

Every tensor is written in its original dtype (quantized ones decoded; raw ones exactly as
stored), or, with --dtype, every float tensor in that dtype. Names, order and __metadata__ are
kept. A one-line summary is printed on stdout (on stderr with -o -).";

/// The dtype of float tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
    /// Each tensor's dtype before packing (F32, F16, BF16; a quantized F64 tensor as F32).
    Original,
}

/// Decode an .sdq file back into a safetensors file (or a sharded checkpoint).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct UnpackArgs {
    /// The .sdq file.
    input: PathBuf,

    /// Output .safetensors file (written atomically; it may not be the input), - for stdout,
    /// or with --max-shard-size a directory.
    #[arg(short, long, value_name = "OUT.safetensors")]
    output: PathBuf,

    /// Unpack only this tensor (repeatable).
    #[arg(long, value_name = "NAME")]
    tensor: Vec<String>,

    /// The dtype every float tensor is written as (raw ones included); `original` keeps each
    /// tensor's own dtype.
    #[arg(long, value_enum, default_value_t = DtypeArg::Original)]
    dtype: DtypeArg,

    /// Write a Hugging Face sharded checkpoint into the directory -o: shards
    /// model-00001-of-0000N.safetensors of at most SIZE bytes of tensor data each (e.g. 5GB,
    /// 500MB, 2GiB, or bytes) and model.safetensors.index.json, as save_pretrained does (one
    /// model.safetensors if everything fits in one shard).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_shard_size: Option<u64>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    unpack::parse_size(s).map_err(|e| match e {
        sdq::Error::Parameter(m) => m,
        e => e.to_string(),
    })
}

/// Counts the bytes that go through it.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

pub fn run(a: UnpackArgs, quiet: bool) -> CliResult {
    let input = &a.input;
    let started = Instant::now();
    if !is_stdout(&a.output) && a.max_shard_size.is_none() {
        sdq::bridge::refuse_output_over_input(&a.output, [input.as_path()])
            .map_err(|e| Failure::lib(input, e))?;
    }
    let file = SdqFile::open(input).map_err(|e| Failure::lib(input, e))?;
    let dtype = match a.dtype {
        DtypeArg::F32 => OutDtype::F32,
        DtypeArg::F16 => OutDtype::F16,
        DtypeArg::Bf16 => OutDtype::BF16,
        DtypeArg::Original => OutDtype::Original,
    };
    let mut bar = Bar::new(quiet);
    let tensors = unpack::select(&file, &a.tensor)
        .map_err(|e| Failure::lib(input, e))?
        .len();
    let (written, into) = if let Some(max) = a.max_shard_size {
        if is_stdout(&a.output) {
            return Err(Failure::usage(
                "--max-shard-size writes a directory of shards: -o must name a directory, not -",
            ));
        }
        let plan = unpack::plan_shards(&file, &a.tensor, dtype, max)
            .map_err(|e| Failure::lib(input, e))?;
        let targets: Vec<PathBuf> = plan.file_names().iter().map(|n| a.output.join(n)).collect();
        for t in &targets {
            sdq::bridge::refuse_output_over_input(t, [input.as_path()])
                .map_err(|e| Failure::lib(input, e))?;
        }
        let paths = unpack::unpack_sharded(&file, &a.output, &plan, dtype, &mut bar)
            .map_err(|e| Failure::lib(input, e))?;
        let total: u64 = paths.iter().map(|p| file_size(p)).sum();
        let what = match plan.index {
            Some(_) => format!(
                "{} ({} shards and {})",
                a.output.display(),
                plan.shards.len(),
                unpack::INDEX_FILE
            ),
            None => a.output.join(unpack::SINGLE_FILE).display().to_string(),
        };
        (total, what)
    } else if is_stdout(&a.output) {
        let stdout = std::io::stdout().lock();
        let out = Counting {
            inner: std::io::BufWriter::with_capacity(1 << 20, stdout),
            count: 0,
        };
        let what = PathBuf::from("<stdout>");
        let mut out = unpack::unpack_to(&file, out, &what, &a.tensor, dtype, &mut bar)
            .map_err(|e| Failure::lib(input, e))?;
        out.flush()
            .map_err(|e| Failure::lib(input, sdq::Error::io(&what, e)))?;
        (out.count, "stdout".to_string())
    } else {
        unpack::unpack_file(&file, &a.output, &a.tensor, dtype, &mut bar)
            .map_err(|e| Failure::lib(input, e))?;
        (file_size(&a.output), a.output.display().to_string())
    };
    let line = escape(&format!(
        "unpacked {tensors} tensors into {into}: {} ({written} bytes) in {:.2} s",
        bytes(written),
        started.elapsed().as_secs_f64()
    ));
    if is_stdout(&a.output) {
        eprintln!("{line}");
    } else {
        crate::outln!("{line}");
    }
    Ok(())
}
