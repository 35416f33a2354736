//! The bridge between safetensors checkpoints and .sdq files: the library side of the `sdq`
//! command line (feature `bridge`, which `cli` includes).
//!
//! - [`safetensors`]: read checkpoints (one file or a sharded `*.index.json`) through memory maps,
//!   one tensor at a time; write safetensors files streaming and atomically;
//! - [`pack`]: choose the tensors to quantize and their frames, quantize, write an .sdq file;
//! - [`unpack`]: decode an .sdq file back into a safetensors file;
//! - [`verify`]: check every checksum, and against the original checkpoint every certified bound
//!   and every raw tensor's bytes;
//! - [`info`]: the `sdq info --json` document;
//! - [`glob`]: the tiny `*`/`?` matcher of `--include` / `--exclude`;
//! - [`progress`]: the progress callback the long operations report to.
//!
//! Every function returns the crate's [`crate::Error`]; none panics on input data.

pub mod glob;
pub mod info;
pub mod pack;
pub mod progress;
pub mod safetensors;
pub mod unpack;
pub mod verify;

pub use progress::{NoProgress, Progress};
