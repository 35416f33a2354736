//! The constants of spec/sdq-v1.md in one place: magic, versions, sizes, alignment and every
//! numeric id the format assigns. Ids are never reused: a retired id stays reserved.

/// The 8-byte magic at offset 0: `\x89SDQ\r\n\x1a\n` (PNG-style: the high byte catches 7-bit
/// transfers, the CR LF pair catches line-ending conversion, 0x1A stops `type` on DOS).
pub const MAGIC: [u8; 8] = [0x89, b'S', b'D', b'Q', 0x0D, 0x0A, 0x1A, 0x0A];
/// The major version this crate reads and writes.
pub const MAJOR: u16 = 1;
/// The minor version this crate writes (it reads every minor of [`MAJOR`]).
pub const MINOR: u16 = 0;
/// Length of the fixed preamble.
pub const PREAMBLE_LEN: u64 = 64;
/// Alignment of the first data section and of every data section.
pub const ALIGN: u64 = 64;
/// Length of one encoded section descriptor: offset u64, stored_len u64, decoded_len u64,
/// compression u8, crc32 u32.
pub const SECTION_DESCRIPTOR_LEN: u64 = 29;

/// Preamble field offsets (see spec §3).
pub(crate) mod preamble {
    pub const MAJOR: usize = 8;
    pub const MINOR: usize = 10;
    pub const FLAGS: usize = 12;
    pub const HEADER_LEN: usize = 16;
    pub const HEADER_CRC: usize = 24;
    pub const FILE_LEN: usize = 28;
    pub const RESERVED: usize = 36;
    pub const CRC: usize = 60;
}

/// The smallest multiple of [`ALIGN`] that is ≥ `x`, or `None` on overflow.
pub fn align_up(x: u64) -> Option<u64> {
    Some(x.checked_add(ALIGN - 1)? & !(ALIGN - 1))
}

/// The original element type of a tensor (spec §5 table). Ids are stable and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dtype {
    /// Boolean, one byte (0 or 1).
    Bool,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 16-bit integer.
    I16,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16 (the top half of an f32).
    BF16,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 32-bit integer.
    I32,
    /// IEEE 754 binary32.
    F32,
    /// Unsigned 64-bit integer.
    U64,
    /// Signed 64-bit integer.
    I64,
    /// IEEE 754 binary64.
    F64,
    /// 8-bit float, 4 exponent bits, 3 mantissa bits (OCP "E4M3FN": no infinities).
    F8E4M3,
    /// 8-bit float, 5 exponent bits, 2 mantissa bits (OCP "E5M2", IEEE-like).
    F8E5M2,
}

impl Dtype {
    /// All dtypes, in id order.
    pub const ALL: [Dtype; 15] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::I8,
        Dtype::U16,
        Dtype::I16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::U32,
        Dtype::I32,
        Dtype::F32,
        Dtype::U64,
        Dtype::I64,
        Dtype::F64,
        Dtype::F8E4M3,
        Dtype::F8E5M2,
    ];

    /// The id stored in the file.
    pub fn id(self) -> u8 {
        match self {
            Dtype::Bool => 0,
            Dtype::U8 => 1,
            Dtype::I8 => 2,
            Dtype::U16 => 3,
            Dtype::I16 => 4,
            Dtype::F16 => 5,
            Dtype::BF16 => 6,
            Dtype::U32 => 7,
            Dtype::I32 => 8,
            Dtype::F32 => 9,
            Dtype::U64 => 10,
            Dtype::I64 => 11,
            Dtype::F64 => 12,
            Dtype::F8E4M3 => 13,
            Dtype::F8E5M2 => 14,
        }
    }

    /// The dtype with file id `id`, if it is assigned.
    pub fn from_id(id: u8) -> Option<Dtype> {
        Dtype::ALL.get(usize::from(id)).copied()
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E4M3 | Dtype::F8E5M2 => 1,
            Dtype::U16 | Dtype::I16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// Whether a sigma-delta tensor may have this original dtype (F16, BF16, F32, F64).
    pub fn is_quantizable_float(self) -> bool {
        matches!(self, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
    }

    /// The name safetensors uses (`F32`, `BF16`, `F8_E4M3`, …).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::U16 => "U16",
            Dtype::I16 => "I16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::U32 => "U32",
            Dtype::I32 => "I32",
            Dtype::F32 => "F32",
            Dtype::U64 => "U64",
            Dtype::I64 => "I64",
            Dtype::F64 => "F64",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E5M2 => "F8_E5M2",
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Encoding ids of a tensor record (spec §5).
pub mod encoding {
    /// The original bytes, unchanged.
    pub const RAW: u8 = 0;
    /// Frame quantization: first-order ΣΔ codes in a frame.
    pub const SIGMA_DELTA: u8 = 1;
    /// A bias quantized as the last column of a sigma-delta (or pcm) tensor.
    pub const BIAS_OF: u8 = 2;
    /// Memoryless rounding of (optionally sign-flipped) frame coefficients, or of the weights
    /// themselves, with per-group steps and fixed-width or entropy-coded codes (spec §5.4).
    pub const PCM: u8 = 3;
}

/// Compression ids of a section descriptor (spec §6).
pub mod compression {
    /// Stored as is.
    pub const NONE: u8 = 0;
    /// One zstd frame.
    pub const ZSTD: u8 = 1;
}

/// Ids inside a sigma-delta record (spec §5.2).
pub mod sigma_delta {
    /// Scheme id of first-order ΣΔ.
    pub const SCHEME_FIRST_ORDER: u8 = 1;
    /// Scheme id of second-order ΣΔ.
    pub const SCHEME_SECOND_ORDER: u8 = 2;
    /// The scheme version without measured norms (what this crate wrote before version 2).
    pub const SCHEME_VERSION: u8 = 1;
    /// The scheme version that appends the writer's measured ‖W − W̃‖_F and ‖W‖_F after the
    /// section slots (what `sdq pack` writes).
    pub const SCHEME_VERSION_NORMS: u8 = 2;
    /// Frame family id of harmonic frames.
    pub const FRAME_HARMONIC: u8 = 1;
    /// Frame family id of spectral tetris frames.
    pub const FRAME_SPECTRAL_TETRIS: u8 = 2;
    /// Orientation id: vectors are the columns of the [rows, cols] view.
    pub const ORIENTATION_COLUMNS: u8 = 0;
    /// Orientation id: vectors are the rows.
    pub const ORIENTATION_ROWS: u8 = 1;
    /// δ mode id: one δ for the tensor, in the record.
    pub const DELTA_TENSOR: u8 = 0;
    /// δ mode id: one δ per vector, in the deltas section.
    pub const DELTA_VECTOR: u8 = 1;
    /// Fixed bytes of a sigma-delta body before its three section descriptors.
    pub const FIXED_LEN: u64 = 52;
    /// Number of section slots of a sigma-delta body (codes, deltas, permutation).
    pub const SLOTS: u64 = 3;
    /// Bytes a version-2 body appends after its slots (error_norm, weight_norm: two f64).
    pub const NORMS_LEN: u64 = 16;
}

/// Ids and sizes inside a pcm record (spec §5.4).
pub mod pcm {
    /// The pcm scheme version of a tensor certified a priori by its steps.
    pub const SCHEME_VERSION: u8 = 1;
    /// The pcm scheme version of a tensor that records measured errors per vector (an
    /// error_kind byte and an errors slot after the steps slot).
    pub const SCHEME_VERSION_MEASURED: u8 = 2;
    /// Frame family id 0: no frame, the vector's own entries are rounded (N = d).
    pub const FRAME_IDENTITY: u8 = 0;
    /// Step dtype: IEEE binary16.
    pub const STEP_F16: u8 = 5;
    /// Step dtype: IEEE binary32.
    pub const STEP_F32: u8 = 9;
    /// Coding id: fixed-width codes, ⌈log2(2K + 1)⌉ bits each.
    pub const CODING_FIXED: u8 = 0;
    /// Coding id: rANS entropy-coded codes (spec §7.1).
    pub const CODING_RANS: u8 = 1;
    /// Fixed bytes of a pcm body before its two section descriptors.
    pub const FIXED_LEN: u64 = 54;
    /// Number of section slots of a pcm body (codes, steps).
    pub const SLOTS: u64 = 2;
    /// Fixed bytes of a version-2 pcm body (the error_kind byte added).
    pub const FIXED_LEN_MEASURED: u64 = FIXED_LEN + 1;
    /// Section slots of a version-2 pcm body (codes, steps, errors).
    pub const SLOTS_MEASURED: u64 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_ids_round_trip() {
        for (i, d) in Dtype::ALL.iter().enumerate() {
            assert_eq!(usize::from(d.id()), i);
            assert_eq!(Dtype::from_id(d.id()), Some(*d));
        }
        assert_eq!(Dtype::from_id(15), None);
    }

    #[test]
    fn align() {
        assert_eq!(align_up(0), Some(0));
        assert_eq!(align_up(1), Some(64));
        assert_eq!(align_up(64), Some(64));
        assert_eq!(align_up(u64::MAX), None);
    }
}
