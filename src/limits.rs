//! Documented limits. A value past one of these is refused with [`crate::Error::Limit`] before
//! anything is allocated for it. The same numbers are normative in spec/sdq-v1.md §Limits.

/// Largest vector dimension d.
pub const MAX_DIM: u64 = 1 << 22;
/// Largest frame size N (number of frame vectors, and of codes per vector).
pub const MAX_FRAME_SIZE: u64 = 1 << 24;
/// Largest redundancy N/d: N ≤ 1024·d. Decoding costs O(N) memory for the frame (an FFT of
/// length N, or a tetris frame's tables, about 48–64 bytes per frame vector) whatever the output's
/// size, so N is tied to d: the frame's memory is then at most a fixed multiple of the output's.
pub const MAX_REDUNDANCY: u64 = 1024;
/// Largest K (half the number of quantization levels): codes then fit in 16 bits.
pub const MAX_LEVELS: u32 = 1 << 15;

// Container limits (spec/sdq-v1.md §9). A reader refuses a file past any of them with
// `FormatError::LimitExceeded` before allocating anything for the value; a writer refuses to
// produce such a file.

/// Largest header (the bytes between the preamble and the first section): 64 MiB.
pub const MAX_HEADER_LEN: u64 = 64 << 20;
/// Most tensors in one file.
pub const MAX_TENSORS: u64 = 1_000_000;
/// Most metadata entries in one file.
pub const MAX_METADATA_ENTRIES: u64 = 65_536;
/// Longest metadata key, in bytes (1 KiB).
pub const MAX_KEY_LEN: u64 = 1024;
/// Longest metadata value, in bytes (1 MiB).
pub const MAX_VALUE_LEN: u64 = 1 << 20;
/// Longest tensor name, in bytes.
pub const MAX_NAME_LEN: u64 = 1024;
/// Largest tensor rank.
pub const MAX_RANK: u64 = 8;
/// Most elements in one tensor (2^40).
pub const MAX_ELEMENTS: u64 = 1 << 40;
/// Largest decoded size of one section, in bytes (2^40).
pub const MAX_SECTION_LEN: u64 = 1 << 40;
