//! Documented limits. A value past one of these is refused with [`crate::Error::Limit`] before
//! anything is allocated for it. The same numbers are normative in spec/sdq-v1.md §Limits.

/// Largest vector dimension d.
pub const MAX_DIM: u64 = 1 << 22;
/// Largest frame size N (number of frame vectors, and of codes per vector).
pub const MAX_FRAME_SIZE: u64 = 1 << 24;
/// Largest K (half the number of quantization levels): codes then fit in 16 bits.
pub const MAX_LEVELS: u32 = 1 << 15;
