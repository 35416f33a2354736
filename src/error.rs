//! The one error type of the library, split by who is to blame.

use std::path::PathBuf;

/// Every failure the library can report. No function of the library panics on any input:
/// a bad file, a bad parameter or an exhausted limit each come back as one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller passed a parameter that is invalid on its own (N ≤ d, K = 0, a δ that is not
    /// positive and finite, a buffer of the wrong length, …).
    #[error("invalid parameter: {0}")]
    Parameter(String),

    /// The input data cannot be quantized as given (NaN or infinity in a weight, …).
    #[error("invalid input data: {0}")]
    Data(String),

    /// A size is past one of the documented limits (see `sdq::limits` and spec/sdq-v1.md §Limits).
    #[error("limit exceeded: {what} is {value}, the limit is {limit}")]
    Limit {
        /// What was too large.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The documented limit.
        limit: u64,
    },

    /// The bytes are not a valid .sdq file: the message says which rule of the spec they break.
    #[error("not a valid .sdq file: {0}")]
    Format(#[from] FormatError),

    /// No tensor of that name is in the file.
    #[error("no tensor named {0:?} in the file")]
    NoSuchTensor(String),

    /// A stored section's CRC32 does not match its bytes.
    #[error("checksum mismatch in {what} of tensor {tensor:?}: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The tensor whose section is damaged ("" for the header).
        tensor: String,
        /// Which section.
        what: &'static str,
        /// The CRC32 stored in the file.
        stored: u32,
        /// The CRC32 of the bytes found.
        computed: u32,
    },

    /// An I/O operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a byte sequence is not a valid .sdq file. Each variant names one rule of spec/sdq-v1.md.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Placeholder until the container lands; replaced by the container's own variants.
    #[error("{0}")]
    Invalid(String),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Parameter`].
    pub(crate) fn param(msg: impl Into<String>) -> Self {
        Error::Parameter(msg.into())
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
