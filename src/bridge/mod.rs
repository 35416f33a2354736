//! The bridge between safetensors checkpoints and .sdq files: the library side of the `sdq`
//! command line (feature `bridge`, which `cli` includes).
//!
//! - [`safetensors`]: read checkpoints (one file or a sharded `*.index.json`) through memory maps,
//!   one tensor at a time; write safetensors files streaming and atomically;
//! - [`pack`]: choose the tensors to quantize and their frames, quantize, write an .sdq file;
//! - [`budget`]: the bit budget of a pcm pack (a cap on the whole file, the model-wide
//!   allocation);
//! - [`unpack`]: decode an .sdq file back into a safetensors file;
//! - [`verify`]: check every checksum, and against the original checkpoint every certified bound
//!   and every raw tensor's bytes;
//! - [`info`]: the `sdq info --json` document;
//! - [`calibration`]: the Gram matrices of `--calibration` files;
//! - [`glob`]: the tiny `*`/`?` matcher of `--include` / `--exclude`;
//! - [`progress`]: the progress callback the long operations report to.
//!
//! Every function returns the crate's [`crate::Error`]; none panics on input data.

pub mod budget;
pub mod calibration;
pub mod glob;
pub mod info;
pub mod pack;
pub mod progress;
pub mod safetensors;
pub mod unpack;
pub mod verify;

pub use progress::{NoProgress, Progress};

use std::path::Path;

use crate::error::{Error, Result};

/// Refuses to write `output` when it is one of `inputs`: the same path, or the same file under
/// another name (a hard link, a symbolic link; same device and inode on Unix). Replacing an
/// input by the output would destroy the data being read. An output that does not exist yet is
/// no input. Only metadata is read.
pub fn refuse_output_over_input<'a>(
    output: &Path,
    inputs: impl IntoIterator<Item = &'a Path>,
) -> Result<()> {
    let Ok(out) = std::fs::metadata(output) else {
        return Ok(());
    };
    for input in inputs {
        let Ok(inp) = std::fs::metadata(input) else {
            continue;
        };
        if same_file(&out, &inp, output, input) {
            let what = if output == input {
                "the input".to_string()
            } else {
                format!("the same file as the input {} (a link)", input.display())
            };
            return Err(Error::Parameter(format!(
                "the output {} is {what}: writing it would destroy the input; choose another output path",
                output.display()
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata, _: &Path, _: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata, a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
