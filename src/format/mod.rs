//! The .sdq v1 container (spec/sdq-v1.md): how codes become a file and back.
//!
//! - [`layout`]: the spec's constants — magic, versions, ids, alignment;
//! - [`bitpack`]: b-bit codes ↔ bytes (re-exported from [`crate::codes`]);
//! - [`header`]: preamble and header ↔ structs, pure over `&[u8]`, every check of the spec;
//! - [`writer`]: streaming writers (temporary file, fsync, rename);
//! - [`reader`]: [`SdqFile`] over a map, a buffer or reads — list, decode, verify;
//! - [`report`]: the storage report.
//!
//! ```
//! use sdq::format::{DeltaPolicy, Dtype, SdqFile, SdqStreamWriter, TensorPlan};
//! use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, StepPolicy};
//! # fn main() -> sdq::Result<()> {
//! let w: Vec<f32> = (0..16 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
//! let q = FrameQuantizer::new(FrameDescriptor::harmonic(64, 16)?, 1, StepPolicy::Coefficient)?
//!     .quantize(&Matrix::new(&w, 16, 4)?, Orientation::Columns)?;
//! let plan = [TensorPlan::sigma_delta("w", Dtype::F32, &[16, 4], false)];
//! let mut out = SdqStreamWriter::in_memory(&plan, &[])?;
//! out.write_quantized("w", &q, DeltaPolicy::Coefficient)?;
//! let file = SdqFile::from_bytes(out.finish()?.into_inner())?;
//! let rebuilt = file.decode("w")?;
//! assert_eq!(rebuilt.len(), 64);
//! # Ok(())
//! # }
//! ```

pub use crate::codes::bitpack;
mod convert;
pub mod header;
pub mod layout;
pub mod reader;
pub mod report;
#[cfg(feature = "encode")]
pub mod writer;

pub use header::{
    parse, Compression, DeltaMode, DeltaPolicy, Encoding, Header, PcmInfo, Preamble, Section,
    SigmaDeltaInfo, TensorInfo,
};
pub use layout::Dtype;
pub use reader::{RecordedErrors, SdqFile};
pub use report::{StorageReport, TensorReport};
#[cfg(feature = "encode")]
pub use writer::{SdqStreamWriter, SdqWriter, TensorKind, TensorPlan};
