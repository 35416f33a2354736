//! # sdq — frame quantization of neural-network weights
//!
//! A weight vector w ∈ R^d is expanded in a harmonic frame of N > d unit vectors; its N frame
//! coefficients pass through a first-order Sigma-Delta (ΣΔ) quantizer over a midrise alphabet of
//! 2K levels with step δ; only the integer codes, δ and the frame's descriptor are stored, and the
//! decoder rebuilds w̃ = (d/N)·Σ_n q_n e_{p(n)}. Theorem 3.1 of Czaja & Na (after Benedetto,
//! Powell and Yılmaz) certifies ‖w − w̃‖ ≤ (δ·d / 2N)·(σ(F, p) + 1) for every vector.
//!
//! ```
//! use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, StepPolicy};
//! # fn main() -> sdq::Result<()> {
//! let w: Vec<f32> = (0..32 * 8).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
//! let matrix = Matrix::new(&w, 32, 8)?; // W[out = 32, in = 8]: 8 column vectors of d = 32
//! let q = FrameQuantizer::new(FrameDescriptor::harmonic(256, 32)?, 1, StepPolicy::Coefficient)?
//!     .quantize(&matrix, Orientation::Columns)?;
//! let mut rebuilt = vec![0.0f32; w.len()];
//! q.reconstruct_into(Some(&mut rebuilt), None)?;
//! for (j, err) in q.measured_errors(&matrix)?.iter().enumerate() {
//!     assert!(*err <= q.bound(j).unwrap());
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "encode")]
mod atomic;
#[cfg(feature = "bridge")]
pub mod bridge;
pub mod codes;
pub mod error;
pub mod format;
pub mod frame;
pub mod limits;
pub mod quant;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use error::{Error, FileKind, FileLimit, FormatError, Result};
pub use format::{DeltaPolicy, Dtype, SdqFile, StorageReport};
#[cfg(feature = "encode")]
pub use format::{SdqStreamWriter, SdqWriter, TensorPlan};
pub use frame::{FrameDescriptor, HarmonicFrame, Permutation};
pub use quant::{Alphabet, Deltas, Orientation, StepPolicy};
#[cfg(feature = "encode")]
pub use quant::{FrameQuantizer, Matrix, QuantizedTensor};
