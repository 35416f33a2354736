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

    /// An entropy-coded stream (a rANS block or its model, see `sdq::codes::rans`) is corrupt:
    /// it ends early, has bytes left over, fails its final-state check, or its model is invalid.
    #[error("corrupt entropy-coded stream: {0}")]
    CorruptStream(String),

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

/// Why a byte sequence is not a valid .sdq file. Each variant names one rule of spec/sdq-v1.md
/// (the rule numbers in the messages, like "R12", are those of the spec's rejection table).
/// Tensor names are printed with escapes (`{:?}`) so that a hostile name cannot drive a terminal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// R1: the file is shorter than the 64-byte preamble.
    #[error("R1: the file is {len} bytes long, shorter than the 64-byte .sdq preamble (truncated or empty)")]
    TooShort {
        /// The file's length.
        len: u64,
    },

    /// R2: the file does not start with the .sdq magic; `looks_like` says what it seems to be.
    #[error("R2: not an .sdq file (no .sdq magic): {looks_like}")]
    NotSdq {
        /// What the first bytes look like.
        looks_like: FileKind,
    },

    /// R3: the magic is recognisably damaged by a text-mode transfer.
    #[error("R3: the .sdq magic is damaged ({how}): the file went through a text-mode transfer; fetch it again in binary mode")]
    MangledMagic {
        /// Which damage was recognised.
        how: &'static str,
    },

    /// R4: a major version this reader does not implement.
    #[error(
        "R4: .sdq version {major}.{minor} is not supported: this reader implements major version 1"
    )]
    UnsupportedVersion {
        /// Major version in the file.
        major: u16,
        /// Minor version in the file.
        minor: u16,
    },

    /// R5: the preamble CRC does not match bytes 0..60.
    #[error("R5: the preamble checksum does not match (stored {stored:#010x}, computed {computed:#010x}): the first 64 bytes are damaged")]
    PreambleChecksum {
        /// CRC stored at bytes 60..64.
        stored: u32,
        /// CRC of bytes 0..60.
        computed: u32,
    },

    /// R6: flag bits that version 1 does not define.
    #[error("R6: unknown preamble flags {flags:#010x}: version 1 defines none")]
    UnknownFlags {
        /// The flags word.
        flags: u32,
    },

    /// R7: a reserved preamble byte is not zero.
    #[error("R7: reserved preamble byte {offset} is not zero")]
    ReservedNonzero {
        /// Its offset in the file.
        offset: u64,
    },

    /// R8: the file length in the preamble differs from the actual length.
    #[error("R8: the preamble says the file is {declared} bytes, it is {actual} bytes ({})",
        if actual < declared { "truncated" } else { "trailing bytes were appended" })]
    FileLength {
        /// file_len from the preamble.
        declared: u64,
        /// The actual length.
        actual: u64,
    },

    /// R9: header_len reaches past the end of the file.
    #[error("R9: the header is declared {header_len} bytes long, but only {available} bytes follow the preamble")]
    HeaderPastEnd {
        /// header_len from the preamble.
        header_len: u64,
        /// Bytes after the preamble.
        available: u64,
    },

    /// R10: the header CRC does not match the header bytes.
    #[error("R10: the header checksum does not match (stored {stored:#010x}, computed {computed:#010x}): the header is damaged")]
    HeaderChecksum {
        /// CRC stored in the preamble.
        stored: u32,
        /// CRC of the header bytes.
        computed: u32,
    },

    /// R11: a value is past one of the format's limits (spec §9).
    #[error("R11: {what} is {value}, the format's limit is {limit}")]
    LimitExceeded {
        /// Which limit.
        what: FileLimit,
        /// The value found.
        value: u64,
        /// The limit.
        limit: u64,
    },

    /// R12: the header ends in the middle of a field.
    #[error("R12: the header ends inside {field} (at header offset {offset})")]
    HeaderTruncated {
        /// The field being read.
        field: &'static str,
        /// Header offset where it starts.
        offset: u64,
    },

    /// R13: a count cannot fit in the bytes left in the header, even at the smallest entry size.
    #[error("R13: {what} count {count} cannot fit in the {remaining} header bytes left")]
    CountPastEnd {
        /// Which count.
        what: &'static str,
        /// The count found.
        count: u64,
        /// Header bytes left.
        remaining: u64,
    },

    /// R14: a string (name, key or value) is not valid UTF-8.
    #[error("R14: {what} at header offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which string.
        what: &'static str,
        /// Header offset of its bytes.
        offset: u64,
    },

    /// R15: a tensor name or metadata key is empty.
    #[error("R15: {what} number {index} is empty")]
    EmptyString {
        /// "tensor name" or "metadata key".
        what: &'static str,
        /// Index of the tensor or entry.
        index: u64,
    },

    /// R16: two tensors have the same name.
    #[error("R16: two tensors are named {name:?}")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },

    /// R17: two metadata entries have the same key.
    #[error("R17: metadata key {key:?} appears twice")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },

    /// R18: an unassigned dtype id.
    #[error("R18: tensor {tensor:?} has unknown dtype id {id}")]
    UnknownDtype {
        /// The tensor.
        tensor: String,
        /// The id found.
        id: u8,
    },

    /// R19: the element count or byte size of a shape overflows 64 bits.
    #[error("R19: the shape of tensor {tensor:?} has an element count or byte size that overflows 64 bits")]
    ShapeOverflow {
        /// The tensor.
        tensor: String,
    },

    /// R20: an unassigned encoding id.
    #[error("R20: tensor {tensor:?} has unknown encoding id {id}")]
    UnknownEncoding {
        /// The tensor.
        tensor: String,
        /// The id found.
        id: u8,
    },

    /// R21: bytes are left in the header after the last tensor record (minor version 0).
    #[error("R21: {count} bytes follow the last tensor record of a version 1.0 header")]
    HeaderTrailingBytes {
        /// How many.
        count: u64,
    },

    /// R22: an unassigned sigma-delta scheme id.
    #[error("R22: tensor {tensor:?} uses unknown quantization scheme id {id} (1 = first-order, 2 = second-order sigma-delta)")]
    UnknownScheme {
        /// The tensor.
        tensor: String,
        /// The id found.
        id: u8,
    },

    /// R23: a scheme version this reader does not implement.
    #[error(
        "R23: tensor {tensor:?} uses scheme version {version}, this reader implements version 1"
    )]
    UnsupportedSchemeVersion {
        /// The tensor.
        tensor: String,
        /// The version found.
        version: u8,
    },

    /// R24: an unassigned frame family id.
    #[error("R24: tensor {tensor:?} uses unknown frame family id {id} (1 = harmonic, 2 = spectral tetris)")]
    UnknownFrameFamily {
        /// The tensor.
        tensor: String,
        /// The id found.
        id: u8,
    },

    /// R25: an enumerated byte (orientation, has_bias, delta_mode, delta_policy) has a value
    /// outside its table.
    #[error("R25: field {field} of tensor {tensor:?} is {value}, which is not one of its defined values")]
    BadFieldValue {
        /// The tensor.
        tensor: String,
        /// The field.
        field: &'static str,
        /// The value found.
        value: u8,
    },

    /// R26: a sigma-delta tensor whose dtype is not a float type, or whose rank is below 2, or
    /// with a zero dimension.
    #[error("R26: tensor {tensor:?} cannot be a sigma-delta tensor: {reason}")]
    NotQuantizable {
        /// The tensor.
        tensor: String,
        /// Why.
        reason: &'static str,
    },

    /// R27: the stored vector dimension d differs from the one the shape and orientation give.
    #[error(
        "R27: tensor {tensor:?} stores d = {stored}, its shape and orientation give d = {expected}"
    )]
    DimensionMismatch {
        /// The tensor.
        tensor: String,
        /// d in the record.
        stored: u64,
        /// d from the shape.
        expected: u64,
    },

    /// R28: N below its family's minimum (d + 1 for a harmonic frame, 2d for spectral tetris).
    #[error("R28: tensor {tensor:?} has a {family} frame of size N = {n} for d = {d}: N must be at least {min}")]
    FrameTooSmall {
        /// The tensor.
        tensor: String,
        /// The frame family's name.
        family: &'static str,
        /// N.
        n: u64,
        /// d.
        d: u64,
        /// The family's smallest N for this d.
        min: u64,
    },

    /// R29: K = 0.
    #[error("R29: tensor {tensor:?} has K = 0: at least one level pair is required")]
    ZeroLevels {
        /// The tensor.
        tensor: String,
    },

    /// R53: a scheme that cannot be certified with this many levels (second-order ΣΔ with K = 1).
    #[error("R53: tensor {tensor:?} uses {scheme} sigma-delta with K = {k}, which needs K >= 2")]
    SchemeLevels {
        /// The tensor.
        tensor: String,
        /// The scheme's name.
        scheme: &'static str,
        /// The K found.
        k: u32,
    },

    /// R30: bits differs from ceil(log2 2K).
    #[error(
        "R30: tensor {tensor:?} stores {bits} bits per code, K = {k} needs exactly {expected}"
    )]
    BitsMismatch {
        /// The tensor.
        tensor: String,
        /// bits in the record.
        bits: u8,
        /// K.
        k: u32,
        /// ceil(log2 2K).
        expected: u8,
    },

    /// R31: a δ that is negative, NaN or infinite, or a nonzero δ field in per-vector mode.
    #[error("R31: tensor {tensor:?}: step size {} {} is invalid (it must be finite and >= 0; in per-vector mode the record's field must be 0)",
        vector.map_or_else(|| "of the record".to_string(), |j| format!("of vector {j}")),
        f64::from_bits(*bits))]
    InvalidDelta {
        /// The tensor.
        tensor: String,
        /// The vector, for a per-vector δ.
        vector: Option<u64>,
        /// The δ's bit pattern.
        bits: u64,
    },

    /// R32: sigma or max_bound is not finite and ≥ 0, or uncertified exceeds the vector count.
    #[error("R32: tensor {tensor:?}: certificate field {field} is invalid")]
    InvalidCertificate {
        /// The tensor.
        tensor: String,
        /// The field.
        field: &'static str,
    },

    /// R33: an unassigned compression id.
    #[error("R33: the {section} section of tensor {tensor:?} has unknown compression id {id}")]
    UnknownCompression {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
        /// The id found.
        id: u8,
    },

    /// R34: a section is present where it must be absent, absent where it must be present,
    /// or an absent slot is not all zero.
    #[error("R34: the {section} slot of tensor {tensor:?} {problem}")]
    SlotPresence {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
        /// What is wrong.
        problem: &'static str,
    },

    /// R35: decoded_len differs from what the shape and parameters require.
    #[error("R35: the {section} section of tensor {tensor:?} declares {declared} decoded bytes, its shape and parameters need {expected}")]
    DecodedLenMismatch {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
        /// decoded_len in the descriptor.
        declared: u64,
        /// The required length.
        expected: u64,
    },

    /// R36: an uncompressed section whose stored_len differs from decoded_len.
    #[error("R36: the uncompressed {section} section of tensor {tensor:?} stores {stored} bytes but declares {decoded} decoded bytes")]
    StoredLenMismatch {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
        /// stored_len.
        stored: u64,
        /// decoded_len.
        decoded: u64,
    },

    /// R37: a section offset that is not a multiple of 64.
    #[error(
        "R37: the {section} section of tensor {tensor:?} starts at {offset}, not a multiple of 64"
    )]
    UnalignedSection {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
        /// Its offset.
        offset: u64,
    },

    /// R38: a section starts before the end of the header or of the previous section.
    #[error("R38: the {section} section of tensor {tensor:?} starts at {offset}, overlapping what precedes it (the next free aligned offset is {expected})")]
    SectionOverlap {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
        /// Its offset.
        offset: u64,
        /// The required offset.
        expected: u64,
    },

    /// R39: a hole before a section (it starts past the next aligned offset).
    #[error("R39: the {section} section of tensor {tensor:?} starts at {offset}, leaving a hole (it must start at {expected})")]
    SectionGap {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
        /// Its offset.
        offset: u64,
        /// The required offset.
        expected: u64,
    },

    /// R40: a section reaches past the end of the file.
    #[error("R40: the {section} section of tensor {tensor:?} ends at {end}, past the end of the file ({file_len} bytes)")]
    SectionPastEnd {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
        /// Where it ends.
        end: u64,
        /// The file length.
        file_len: u64,
    },

    /// R41: bytes after the last section (or after the header, for a file without sections).
    #[error("R41: the data ends at {end} but the file is {file_len} bytes long: trailing bytes")]
    TrailingData {
        /// Where the last section (or the header) ends.
        end: u64,
        /// The file length.
        file_len: u64,
    },

    /// R42: a padding byte is not zero.
    #[error("R42: padding byte at offset {offset} is not zero")]
    NonzeroPadding {
        /// Its offset in the file.
        offset: u64,
    },

    /// R43: a bias-of entry points outside the tensor table.
    #[error("R43: bias {tensor:?} refers to tensor index {index}, the file has {count} tensors")]
    BiasTargetOutOfRange {
        /// The bias tensor.
        tensor: String,
        /// The index found.
        index: u64,
        /// The number of tensors.
        count: u64,
    },

    /// R44: a bias-of entry points to a tensor that is not a sigma-delta tensor with has_bias = 1.
    #[error("R44: bias {tensor:?} refers to tensor {target:?}, which is not a sigma-delta tensor quantized with a bias")]
    BiasTargetInvalid {
        /// The bias tensor.
        tensor: String,
        /// The tensor it points to.
        target: String,
    },

    /// R45: a sigma-delta tensor with has_bias = 1 is referenced by no or by several bias-of entries.
    #[error("R45: tensor {tensor:?} is quantized with a bias but is referenced by {count} bias entries (exactly one is required)")]
    BiasReferences {
        /// The weight tensor.
        tensor: String,
        /// How many bias-of entries point to it.
        count: u64,
    },

    /// R46: a bias whose shape is not \[rows\] of its weight, or whose dtype is not a float type.
    #[error("R46: bias {tensor:?} must be a float vector of shape [{rows}] to match its weight")]
    BiasShape {
        /// The bias tensor.
        tensor: String,
        /// Rows of the weight.
        rows: u64,
    },

    /// R47: a zstd section that does not decompress to exactly decoded_len bytes.
    #[error("R47: the zstd {section} section of tensor {tensor:?} {problem} (declared {declared} bytes)")]
    Decompression {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
        /// What went wrong.
        problem: &'static str,
        /// decoded_len.
        declared: u64,
    },

    /// R48: compression that this build cannot read (zstd without the `zstd` feature).
    #[error("R48: the {section} section of tensor {tensor:?} is zstd-compressed and this build has no zstd support (enable the `zstd` feature)")]
    UnsupportedCompression {
        /// The tensor.
        tensor: String,
        /// The section.
        section: &'static str,
    },

    /// R49: a code ≥ 2K.
    #[error(
        "R49: tensor {tensor:?}, vector {vector}: code {code} is outside 0..{levels} (2K levels)"
    )]
    CodeOutOfRange {
        /// The tensor.
        tensor: String,
        /// The vector.
        vector: u64,
        /// The code found.
        code: u16,
        /// 2K.
        levels: u32,
    },

    /// R50: nonzero bits after the last code.
    #[error("R50: the codes section of tensor {tensor:?} has nonzero bits after its last code")]
    CodePaddingNonzero {
        /// The tensor.
        tensor: String,
    },

    /// R51: the stored permutation is not a permutation of 0..N−1, or is the identity.
    #[error(
        "R51: the permutation of tensor {tensor:?} is invalid: entry {index} is {value}, {problem}"
    )]
    InvalidPermutation {
        /// The tensor.
        tensor: String,
        /// The entry.
        index: u64,
        /// Its value.
        value: u32,
        /// What is wrong.
        problem: &'static str,
    },

    /// R54: a pcm code outside −K..=K.
    #[error("R54: tensor {tensor:?}, vector {vector}: pcm code {code} is outside -{k}..={k}")]
    PcmCodeOutOfRange {
        /// The tensor.
        tensor: String,
        /// The vector.
        vector: u64,
        /// The code found.
        code: i64,
        /// K.
        k: u32,
    },

    /// R55: an entropy-coded code stream that does not parse or does not decode exactly.
    #[error("R55: the entropy-coded codes of tensor {tensor:?} are malformed: {problem}")]
    CodeStream {
        /// The tensor.
        tensor: String,
        /// What is wrong.
        problem: String,
    },

    /// R57: a pcm step group outside 1..=N.
    #[error("R57: tensor {tensor:?} groups {group} coefficients per step; it must be 1..={n}")]
    BadGroup {
        /// The tensor.
        tensor: String,
        /// The group size.
        group: u32,
        /// N.
        n: u64,
    },

    /// R58: a recorded per-vector error of a pcm tensor that is not finite and ≥ 0.
    #[error("R58: tensor {tensor:?}, vector {vector}: recorded {what} {} is not finite and >= 0", f64::from_bits(*bits))]
    InvalidRecordedError {
        /// The tensor.
        tensor: String,
        /// The vector.
        vector: u64,
        /// `weight error` or `output error`.
        what: &'static str,
        /// The value found, as the bits of an f64.
        bits: u64,
    },

    /// R56: a pcm step (per group) that is not finite and ≥ 0.
    #[error("R56: tensor {tensor:?}, vector {vector}: step {} is not finite and >= 0", f64::from_bits(*bits))]
    InvalidStep {
        /// The tensor.
        tensor: String,
        /// The vector.
        vector: u64,
        /// The value found, as the bits of an f64.
        bits: u64,
    },
}

/// What a file that is not an .sdq file looks like, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A Git LFS pointer (`version https://git-lfs…`): the real file was never downloaded.
    GitLfsPointer,
    /// A safetensors file (u64 header length followed by `{`).
    Safetensors,
    /// A GGUF file.
    Gguf,
    /// A ZIP archive (PyTorch's `.pt`/`.bin` checkpoints are ZIP archives).
    Zip,
    /// A Python pickle (PyTorch's legacy `.pth`/`.bin` checkpoints start with one).
    Pickle,
    /// An ONNX model (a protobuf `ModelProto`: `ir_version` first, then a model field).
    Onnx,
    /// A TensorFlow Lite flatbuffer (`TFL3` at bytes 4..8).
    TfLite,
    /// An HDF5 file (Keras `.h5` weights).
    Hdf5,
    /// A NumPy `.npy` array.
    Npy,
    /// An HTML page (often an error or login page saved instead of the file).
    Html,
    /// Some other text file.
    Text,
    /// None of the above.
    Unknown,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::GitLfsPointer => {
                "it is a Git LFS pointer, not the file itself (run `git lfs pull`)"
            }
            FileKind::Safetensors => "it looks like a safetensors file",
            FileKind::Gguf => "it looks like a GGUF file",
            FileKind::Zip => "it is a ZIP archive (perhaps a PyTorch checkpoint)",
            FileKind::Pickle => {
                "it is a Python pickle (perhaps a PyTorch checkpoint in the legacy format)"
            }
            FileKind::Onnx => "it looks like an ONNX model",
            FileKind::TfLite => "it is a TensorFlow Lite model",
            FileKind::Hdf5 => "it is an HDF5 file (perhaps Keras weights)",
            FileKind::Npy => "it is a NumPy array (.npy)",
            FileKind::Html => {
                "it is an HTML page (perhaps an error or login page saved instead of the file)"
            }
            FileKind::Text => "it is a text file",
            FileKind::Unknown => "its first bytes are not recognised",
        })
    }
}

/// A limit of the format (spec §9), named in [`FormatError::LimitExceeded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileLimit {
    /// header_len.
    HeaderLen,
    /// tensor_count.
    TensorCount,
    /// metadata_count.
    MetadataCount,
    /// Length of a metadata key.
    KeyLen,
    /// Length of a metadata value.
    ValueLen,
    /// Length of a tensor name.
    NameLen,
    /// Rank of a tensor.
    Rank,
    /// Elements of a tensor.
    ElementCount,
    /// decoded_len of a section.
    SectionLen,
    /// Frame size N.
    FrameSize,
    /// Frame size N per vector dimension d (N ≤ 1024·d).
    Redundancy,
    /// Vector dimension d.
    Dim,
    /// Levels K.
    Levels,
}

impl std::fmt::Display for FileLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileLimit::HeaderLen => "the header length",
            FileLimit::TensorCount => "the tensor count",
            FileLimit::MetadataCount => "the metadata entry count",
            FileLimit::KeyLen => "a metadata key's length",
            FileLimit::ValueLen => "a metadata value's length",
            FileLimit::NameLen => "a tensor name's length",
            FileLimit::Rank => "a tensor's rank",
            FileLimit::ElementCount => "a tensor's element count",
            FileLimit::SectionLen => "a section's decoded length",
            FileLimit::FrameSize => "the frame size N",
            FileLimit::Redundancy => "the frame size N for this d (N <= 1024 d)",
            FileLimit::Dim => "the vector dimension d",
            FileLimit::Levels => "the level count K",
        })
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Parameter`].
    pub(crate) fn param(msg: impl Into<String>) -> Self {
        Error::Parameter(msg.into())
    }

    /// Shorthand for [`Error::CorruptStream`].
    pub(crate) fn corrupt(msg: impl Into<String>) -> Self {
        Error::CorruptStream(msg.into())
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
