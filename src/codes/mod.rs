//! Code streams: how a quantizer's integer codes become bytes and back. [`rans`] is a static,
//! interleaved rANS entropy coder for alphabets of at most 256 symbols: a [`rans::Model`] (the
//! normalised symbol frequencies, serialised in a few hundred bytes at most) and self-contained
//! blocks of coded symbols that decode at a few nanoseconds per symbol or less.

pub mod rans;
