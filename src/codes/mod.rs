//! Code streams: how a quantizer's integer codes become bytes and back, between the quantizer
//! (which knows no files) and the container (which knows no maths).
//!
//! - [`bitpack`]: b-bit codes ↔ bytes, LSB-first (the sigma-delta codes, spec §7);
//! - [`rans`]: a static, interleaved rANS entropy coder for alphabets of up to 256 symbols (a
//!   [`rans::Model`] of normalised frequencies and self-contained blocks);
//! - [`stream`]: a pcm tensor's signed codes as one section, fixed-width or entropy-coded in
//!   independently decodable chunks (spec §7.1).

pub mod bitpack;
pub mod rans;
pub mod stream;
