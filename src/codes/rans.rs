//! A static, interleaved rANS entropy coder for alphabets of at most [`MAX_SYMBOLS`] symbols.
//!
//! A [`Model`] holds the symbol frequencies normalised to sum to M = 2^[`PROB_BITS`]; a block is
//! a message of n symbols coded with one model by [`LANES`] interleaved rANS coders ("lanes")
//! with 32-bit states and 16-bit renormalisation. The message length n is not stored in the
//! block: the caller knows it (it is the number of codes of the vector or tensor).
//!
//! # Model bytes ([`Model::write`], [`Model::read`])
//!
//! - `u16` LE: the alphabet size S, 1 ≤ S ≤ 256 (symbols are 0..S).
//! - S frequencies f_0 … f_{S−1}, each as a one- or two-byte varint: a value v < 128 is the one
//!   byte v; a value 128 ≤ v ≤ M is the two bytes `0x80 | (v & 0x7f)`, `v >> 7` (the second byte
//!   is then nonzero; a two-byte form of a value below 128 is rejected as non-canonical).
//! - Valid iff every f_s ≤ M and Σ f_s = M exactly. A frequency may be 0 (that symbol cannot
//!   occur). The symbol's cumulative start is c_s = f_0 + … + f_{s−1}.
//!
//! # Block bytes ([`encode`], [`decode`])
//!
//! Constants: M = 2^12, the state interval I = [2^16, 2^32), L = [`LANES`] = 8 lanes.
//! Symbol i (0-based, in message order) belongs to lane i mod L. A block of n symbols uses
//! U = min(n, L) lanes and is:
//!
//! 1. U initial decoder states x_0 … x_{U−1}, each a `u32` LE (4·U bytes), each in I;
//! 2. a stream of 16-bit words, each `u16` LE, in the order the decoder reads them.
//!
//! The empty message (n = 0) is the empty block. Decoding, for i = 0, 1, …, n − 1 with
//! j = i mod L:
//!
//! ```text
//! slot = x_j mod M                           (the low 12 bits)
//! s_i  = the symbol s with c_s ≤ slot < c_s + f_s
//! x_j  = f_s · (x_j >> 12) + slot − c_s
//! if x_j < 2^16: x_j = (x_j << 16) | next word of the stream
//! ```
//!
//! After symbol n − 1 every used lane's state must be exactly 2^16 (the encoder's initial
//! state) and every word of the block must have been read; [`decode`] reports anything else (a
//! state outside I, a word missing, bytes left over, a final state ≠ 2^16) as
//! [`Error::CorruptStream`]. The encoder runs the inverse in reverse message order, starting
//! every lane at 2^16: for symbol i in lane j, if x_j ≥ 2^20 · f_s it emits the word
//! x_j mod 2^16 and sets x_j = x_j >> 16, then x_j = ⌊x_j / f_s⌋ · M + (x_j mod f_s) + c_s; the
//! emitted words, reversed, are the stream, and the final states are the block's initial states.
//!
//! A block's size is 4·min(n, L) + 2·(words) bytes, close to the message's information content
//! Σ −log2(f_s / M) plus 16 bits per used lane ([`Model::cost_bits`]).
//!
//! # Example (checked by tests/rans.rs `spec_example`)
//!
//! Model f = (1, 4095): bytes `02 00 01 ff 1f`. Message (0, 1, 1, 1, 1, 1, 1, 1, 0, 1), n = 10:
//! lane 0 codes symbols 0 and 8 (both 0), lane 1 symbols 1 and 9, lanes 2–7 one symbol each.
//! The block is 34 bytes: the states `0x01000000, 0x00010022`, then `0x00010011` six times (each
//! `u32` LE), then the one word `0x0000`. Decoding lane 0: slot 0 → symbol 0,
//! x = 1·(2^24 >> 12) + 0 = 4096 < 2^16, so x = (4096 << 16) | 0x0000 = 2^28; at symbol 8, slot
//! 0 → symbol 0, x = 2^16. Lane 1: slot 0x22 → symbol 1, x = 4095·16 + 0x22 − 1 = 65553; at
//! symbol 9, slot 17 → symbol 1, x = 4095·16 + 16 = 2^16.
//!
//! # Speed
//!
//! Decoding is a table lookup per symbol (a table of M entries `[f_s, slot − c_s, s, 0]` as
//! `u16`, 32 KiB, indexed by the low bits of the state so that the index needs no bounds
//! check), a multiply and a branch-free renormalisation. A round of L symbols reads its (at most
//! L) words from one slice of 2L bytes checked once; the last rounds of a block, when fewer than
//! 2L bytes are left, run the same code on a zero-padded copy of those bytes and then check that
//! no padding was read. See docs/PERFORMANCE.md ("rANS entropy decoding").

use crate::error::{Error, Result};

/// Probabilities are in units of 2^−`PROB_BITS`: the model's frequencies sum to 2^`PROB_BITS`.
pub const PROB_BITS: u32 = 12;

/// The most symbols an alphabet can have (symbols are bytes).
pub const MAX_SYMBOLS: usize = 256;

/// The number of interleaved lanes of a block written by [`encode`] and read by [`decode`].
pub const LANES: usize = 8;

/// M, the sum of the normalised frequencies.
const M: u32 = 1 << PROB_BITS;
/// The size of the decode table (one entry per slot).
const TABLE: usize = 1 << PROB_BITS;
/// The lower end of the state interval I = [RANS_L, 2^32), and every lane's initial (encoder)
/// and final (decoder) state.
const RANS_L: u32 = 1 << 16;
/// A decode table entry: `[f_s, slot − c_s, s, 0]`.
type Entry = [u16; 4];

/// A static model: normalised frequencies (sum = 2^[`PROB_BITS`]), their cumulative starts, and
/// the decode table.
#[derive(Clone)]
pub struct Model {
    freqs: Vec<u32>,
    starts: Vec<u32>,
    /// Per slot: `[f_s, slot − c_s, s, 0]`: one 8-byte entry, unpacked by three loads
    /// without shifts or masks (one table pointer instead of two measured 6 % faster).
    table: Box<[Entry; TABLE]>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("freqs", &self.freqs).finish()
    }
}

impl PartialEq for Model {
    fn eq(&self, other: &Self) -> bool {
        self.freqs == other.freqs
    }
}

impl Eq for Model {}

/// The cost in bits of one occurrence of a symbol of frequency `f` (f ≥ 1).
fn bits_of(f: u32) -> f64 {
    f64::from(PROB_BITS) - f64::from(f).log2()
}

impl Model {
    /// Builds the model of normalised frequencies `freqs` (which must sum to M; checked by the
    /// callers).
    fn from_freqs(freqs: Vec<u32>) -> Result<Model> {
        let mut table: Box<[Entry; TABLE]> =
            vec![[0u16; 4]; TABLE]
                .into_boxed_slice()
                .try_into()
                .map_err(|_| Error::param("rANS decode table allocation"))?;
        let mut starts = Vec::with_capacity(freqs.len());
        let mut start = 0u32;
        for (s, &f) in freqs.iter().enumerate() {
            starts.push(start);
            let end = start.saturating_add(f);
            let range = table
                .get_mut(start as usize..end as usize)
                .ok_or_else(|| Error::corrupt("rANS model frequencies exceed 2^PROB_BITS"))?;
            for (k, e) in range.iter_mut().enumerate() {
                *e = [f as u16, k as u16, s as u16, 0];
            }
            start = end;
        }
        if start != M {
            return Err(Error::corrupt(format!(
                "rANS model frequencies sum to {start}, not {M}"
            )));
        }
        Ok(Model {
            freqs,
            starts,
            table,
        })
    }

    /// Normalises a histogram (`counts[s]` = occurrences of symbol s) to frequencies summing to
    /// 2^[`PROB_BITS`], minimising the coded size Σ counts\[s\] · −log2(f_s / M): every symbol
    /// with a nonzero count gets f_s ≥ 1, symbols with count 0 get f_s = 0. The alphabet size is
    /// `counts.len()`. Errors ([`Error::Parameter`]): no counts, more than [`MAX_SYMBOLS`], or
    /// all counts zero.
    pub fn from_counts(counts: &[u64]) -> Result<Model> {
        if counts.is_empty() || counts.len() > MAX_SYMBOLS {
            return Err(Error::param(format!(
                "a rANS alphabet needs 1 to {MAX_SYMBOLS} symbols, got {}",
                counts.len()
            )));
        }
        let total: u128 = counts.iter().map(|&c| u128::from(c)).sum();
        if total == 0 {
            return Err(Error::param("a rANS model needs a nonzero count"));
        }
        let m = u128::from(M);
        // Rounded proportional frequencies, at least 1 for every symbol that occurs.
        let mut freqs: Vec<u32> = counts
            .iter()
            .map(|&c| {
                if c == 0 {
                    0
                } else {
                    let f = (u128::from(c) * m * 2 + total) / (2 * total);
                    f.clamp(1, m) as u32
                }
            })
            .collect();
        let cost_up = |c: u64, f: u32| -> f64 {
            // Bits saved by f → f + 1.
            c as f64 * (f64::from(f + 1).log2() - f64::from(f).log2())
        };
        let cost_down = |c: u64, f: u32| -> f64 {
            // Bits lost by f → f − 1 (f ≥ 2).
            c as f64 * (f64::from(f).log2() - f64::from(f - 1).log2())
        };
        let best_up = |freqs: &[u32]| -> Option<(usize, f64)> {
            freqs
                .iter()
                .zip(counts)
                .enumerate()
                .filter(|(_, (&f, &c))| c > 0 && f < M)
                .map(|(s, (&f, &c))| (s, cost_up(c, f)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
        };
        let best_down = |freqs: &[u32], except: usize| -> Option<(usize, f64)> {
            freqs
                .iter()
                .zip(counts)
                .enumerate()
                .filter(|(s, (&f, _))| *s != except && f >= 2)
                .map(|(s, (&f, &c))| (s, cost_down(c, f)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
        };
        let mut sum: u32 = freqs.iter().sum();
        // Fix the sum one unit at a time, always at the cheapest place.
        while sum > M {
            let (s, _) = best_down(&freqs, usize::MAX)
                .ok_or_else(|| Error::param("rANS normalisation failed"))?;
            if let Some(f) = freqs.get_mut(s) {
                *f -= 1;
            }
            sum -= 1;
        }
        while sum < M {
            let (s, _) =
                best_up(&freqs).ok_or_else(|| Error::param("rANS normalisation failed"))?;
            if let Some(f) = freqs.get_mut(s) {
                *f += 1;
            }
            sum += 1;
        }
        // Then move single units while that lowers the cost: for a separable convex cost this
        // reaches the optimum over all integer frequency vectors with the same sum.
        for _ in 0..2 * M {
            let Some((up, gain)) = best_up(&freqs) else {
                break;
            };
            let Some((down, loss)) = best_down(&freqs, up) else {
                break;
            };
            if gain <= loss * (1.0 + 1e-12) {
                break;
            }
            if let Some(f) = freqs.get_mut(up) {
                *f += 1;
            }
            if let Some(f) = freqs.get_mut(down) {
                *f -= 1;
            }
        }
        Model::from_freqs(freqs)
    }

    /// The alphabet size S (symbols are 0..S).
    pub fn symbols(&self) -> usize {
        self.freqs.len()
    }

    /// The normalised frequency of symbol `s` (0 for a symbol outside the alphabet).
    pub fn freq(&self, s: usize) -> u32 {
        self.freqs.get(s).copied().unwrap_or(0)
    }

    /// Appends the model's bytes (module doc, "Model bytes") to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.freqs.len() as u16).to_le_bytes());
        for &f in &self.freqs {
            if f < 128 {
                out.push(f as u8);
            } else {
                out.extend_from_slice(&[0x80 | (f & 0x7f) as u8, (f >> 7) as u8]);
            }
        }
    }

    /// Parses and validates a model from the start of `bytes` (module doc, "Model bytes");
    /// returns it and the number of bytes it occupies. Errors ([`Error::CorruptStream`]): the
    /// bytes end early, S is 0 or above [`MAX_SYMBOLS`], a non-canonical or too large frequency,
    /// or frequencies that do not sum to 2^[`PROB_BITS`].
    pub fn read(bytes: &[u8]) -> Result<(Model, usize)> {
        let truncated = || Error::corrupt("the rANS model ends early");
        let head = bytes.get(..2).ok_or_else(truncated)?;
        let count = usize::from(u16::from_le_bytes([head[0], head[1]]));
        if count == 0 || count > MAX_SYMBOLS {
            return Err(Error::corrupt(format!(
                "the rANS model has {count} symbols, it must have 1 to {MAX_SYMBOLS}"
            )));
        }
        let mut pos = 2usize;
        let mut freqs = Vec::with_capacity(count);
        let mut sum = 0u32;
        for s in 0..count {
            let b0 = *bytes.get(pos).ok_or_else(truncated)?;
            pos += 1;
            let f = if b0 < 0x80 {
                u32::from(b0)
            } else {
                let b1 = *bytes.get(pos).ok_or_else(truncated)?;
                pos += 1;
                if b1 == 0 {
                    return Err(Error::corrupt(format!(
                        "the rANS model's frequency of symbol {s} is not in canonical form"
                    )));
                }
                u32::from(b0 & 0x7f) | (u32::from(b1) << 7)
            };
            if f > M {
                return Err(Error::corrupt(format!(
                    "the rANS model's frequency of symbol {s} is {f}, above {M}"
                )));
            }
            sum += f;
            freqs.push(f);
        }
        if sum != M {
            return Err(Error::corrupt(format!(
                "the rANS model's frequencies sum to {sum}, not {M}"
            )));
        }
        Ok((Model::from_freqs(freqs)?, pos))
    }

    /// The coded size in bits of a message with histogram `counts` under this model:
    /// Σ counts\[s\] · −log2(f_s / M), plus the 16 bits per used lane that the block's initial
    /// states carry beyond the symbols' information. A block is this many bits to within the
    /// rounding to whole 16-bit words (plus 16 bits per lane at most). Infinite if a symbol with
    /// a nonzero count has frequency 0 or is outside the alphabet.
    pub fn cost_bits(&self, counts: &[u64]) -> f64 {
        let mut bits = 0.0;
        let mut n = 0u64;
        for (s, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let f = self.freq(s);
            if f == 0 {
                return f64::INFINITY;
            }
            bits += c as f64 * bits_of(f);
            n = n.saturating_add(c);
        }
        bits + 16.0 * n.min(LANES as u64) as f64
    }

    /// The cumulative start c_s = f_0 + … + f_{s−1} of symbol `s` (0 for a symbol outside the
    /// alphabet).
    pub fn start(&self, s: usize) -> u32 {
        self.starts.get(s).copied().unwrap_or(0)
    }

    /// The normalised frequencies, symbol by symbol.
    pub fn freqs(&self) -> &[u32] {
        &self.freqs
    }
}

/// Codes `symbols` with `model` as one block of [`LANES`] lanes (module doc, "Block bytes"),
/// appending its bytes to `out`. Errors ([`Error::Parameter`]): a symbol outside the model's
/// alphabet or of frequency 0. On error `out` is unchanged.
#[cfg(feature = "encode")]
pub fn encode(symbols: &[u8], model: &Model, out: &mut Vec<u8>) -> Result<()> {
    encode_lanes::<LANES>(symbols, model, out)
}

/// Decodes exactly `out.len()` symbols from `bytes`, which must be exactly one block of
/// [`LANES`] lanes coded with `model` (module doc, "Block bytes"). Errors
/// ([`Error::CorruptStream`]): a missing word or state, an initial state outside I, bytes left
/// over, or a final state other than 2^16. On error `out` holds unspecified symbols.
pub fn decode(bytes: &[u8], model: &Model, out: &mut [u8]) -> Result<()> {
    decode_lanes::<LANES>(bytes, model, out)
}

/// [`encode`] with `L` lanes instead of [`LANES`] (`L` a power of two, 1 to 32): the same
/// layout with L in place of 8. For measuring other lane counts; the file format uses [`LANES`].
#[cfg(feature = "encode")]
pub fn encode_lanes<const L: usize>(
    symbols: &[u8],
    model: &Model,
    out: &mut Vec<u8>,
) -> Result<()> {
    const { assert!(L.is_power_of_two() && L <= 32) };
    for (i, &s) in symbols.iter().enumerate() {
        if model.freq(usize::from(s)) == 0 {
            return Err(Error::param(format!(
                "symbol {s} at index {i} {} the rANS model",
                if usize::from(s) < model.symbols() {
                    "has frequency 0 in"
                } else {
                    "is outside the alphabet of"
                }
            )));
        }
    }
    let n = symbols.len();
    let mut x = [RANS_L; L];
    let mut words: Vec<u16> = Vec::with_capacity(n / 2 + L);
    for (i, &s) in symbols.iter().enumerate().rev() {
        let s = usize::from(s);
        // f ≥ 1 (checked above); 32-bit arithmetic throughout: after the renormalisation
        // v < 2^20·f, so ⌊v/f⌋·M < 2^32 and the result stays below 2^32.
        let f = model.freq(s).max(1);
        let c = model.start(s);
        let xj = &mut x[i & (L - 1)];
        let mut v = *xj;
        if u64::from(v) >= (u64::from(RANS_L >> PROB_BITS) << 16) * u64::from(f) {
            words.push(v as u16);
            v >>= 16;
        }
        let q = v / f;
        *xj = (q << PROB_BITS) + (v - q * f) + c;
    }
    out.reserve(4 * n.min(L) + 2 * words.len());
    for &s in x.iter().take(n.min(L)) {
        out.extend_from_slice(&s.to_le_bytes());
    }
    for &w in words.iter().rev() {
        out.extend_from_slice(&w.to_le_bytes());
    }
    Ok(())
}

/// [`decode`] of a block written by [`encode_lanes`] with `L` lanes.
pub fn decode_lanes<const L: usize>(bytes: &[u8], model: &Model, out: &mut [u8]) -> Result<()> {
    const { assert!(L.is_power_of_two() && L <= 32) };
    let n = out.len();
    let used = n.min(L);
    let head = bytes
        .get(..4 * used)
        .ok_or_else(|| Error::corrupt("the rANS block ends inside its initial states"))?;
    let mut x = [RANS_L; L];
    for (xj, b) in x.iter_mut().zip(head.chunks_exact(4)) {
        *xj = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if *xj < RANS_L {
            return Err(Error::corrupt(format!(
                "a rANS initial state is {}, below 2^16",
                *xj
            )));
        }
    }
    let mut pos = 4 * used;
    let table: &[Entry; TABLE] = &model.table;
    let ends_early = || Error::corrupt("the rANS block ends early");
    let mut rounds = out.chunks_exact_mut(L);
    // Rounds whose words are all in `bytes` (a round reads at most one word per lane).
    let mut pending = None;
    for chunk in &mut rounds {
        match bytes.get(pos..pos + 2 * L) {
            Some(w) => pos += round(&mut x, chunk, w, table),
            None => {
                pending = Some(chunk);
                break;
            }
        }
    }
    // The last rounds run on a zero-padded copy of the block's last (< 2L) bytes, so that they
    // take the same fast path; reading past the copy's real bytes means the block ended early.
    let rest = bytes.get(pos..).unwrap_or_default();
    let mut tail = [0u8; 4 * 32];
    tail.get_mut(..rest.len())
        .ok_or_else(ends_early)?
        .copy_from_slice(rest);
    let mut tpos = 0usize;
    for chunk in pending.into_iter().chain(&mut rounds) {
        if tpos > rest.len() {
            return Err(ends_early());
        }
        let w = tail.get(tpos..tpos + 2 * L).ok_or_else(ends_early)?;
        tpos += round(&mut x, chunk, w, table);
    }
    let rest_len = rest.len();
    let tail = tail.get(..rest_len).ok_or_else(ends_early)?;
    if tpos > rest_len {
        return Err(ends_early());
    }
    for (xj, o) in x.iter_mut().zip(rounds.into_remainder().iter_mut()) {
        *o = step_checked(xj, table, tail, &mut tpos)?;
    }
    if tpos != rest_len {
        return Err(Error::corrupt(format!(
            "{} bytes are left over after the rANS block's last symbol",
            rest_len.saturating_sub(tpos)
        )));
    }
    if x.iter().any(|&s| s != RANS_L) {
        return Err(Error::corrupt(
            "a rANS lane does not end in its initial state 2^16",
        ));
    }
    Ok(())
}

/// One round: decodes one symbol in each of the L lanes into `chunk` (L bytes), reading the
/// renormalisation words from `w` (2L bytes: at most one word per lane). Returns the number of
/// bytes read.
#[inline(always)]
fn round<const L: usize>(
    x: &mut [u32; L],
    chunk: &mut [u8],
    w: &[u8],
    table: &[Entry; TABLE],
) -> usize {
    let mut k = 0usize;
    for (xj, o) in x.iter_mut().zip(chunk.iter_mut()) {
        let slot = (*xj as usize) & (TABLE - 1);
        let e = table[slot];
        *o = e[2] as u8;
        let y = u32::from(e[0]) * (*xj >> PROB_BITS) + u32::from(e[1]);
        let kk = 2 * (k & (L - 1));
        let word = match (w.get(kk), w.get(kk + 1)) {
            (Some(&lo), Some(&hi)) => u32::from(u16::from_le_bytes([lo, hi])),
            _ => 0,
        };
        // Branch-free renormalisation. Written with a mask rather than `if`: the obvious
        // `if need { (y << 16) | word } else { y }` is compiled into a branch (the word's load
        // is sunk into it), taken at random on about H/16 of the symbols, and its mispredictions
        // made decoding 2-5x slower (docs/PERFORMANCE.md).
        let need = u32::from(y < RANS_L);
        let m = need.wrapping_neg();
        *xj = (y & !m) | (((y << 16) | word) & m);
        k += need as usize;
    }
    2 * k
}

/// One decode step with a checked read of the renormalisation word.
#[inline]
fn step_checked(x: &mut u32, table: &[Entry; TABLE], bytes: &[u8], pos: &mut usize) -> Result<u8> {
    let slot = (*x as usize) & (TABLE - 1);
    let e = table[slot];
    let mut y = u32::from(e[0]) * (*x >> PROB_BITS) + u32::from(e[1]);
    if y < RANS_L {
        let w = bytes
            .get(*pos..*pos + 2)
            .ok_or_else(|| Error::corrupt("the rANS block ends early"))?;
        y = (y << 16) | u32::from(u16::from_le_bytes([w[0], w[1]]));
        *pos += 2;
    }
    *x = y;
    Ok(e[2] as u8)
}

#[cfg(all(test, feature = "encode"))]
mod tests {
    use super::*;

    #[test]
    fn tiny_roundtrip() {
        let m = Model::from_counts(&[5, 3, 0, 1]).unwrap();
        assert_eq!(m.freqs().iter().sum::<u32>(), M);
        assert_eq!(m.freq(2), 0);
        let msg = [0u8, 1, 0, 3, 0, 0, 1, 0, 0, 3, 1];
        let mut buf = Vec::new();
        encode(&msg, &m, &mut buf).unwrap();
        let mut back = [0u8; 11];
        decode(&buf, &m, &mut back).unwrap();
        assert_eq!(back, msg);
    }
}
