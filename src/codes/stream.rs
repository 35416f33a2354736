//! The codes of a pcm tensor as one section (spec §7.1): m vectors of N signed codes in −K..=K,
//! vector after vector, stored either fixed-width or entropy-coded.
//!
//! - **Fixed** ([`Coding::Fixed`]): code q is stored as q + K in b = ⌈log2(2K + 1)⌉ bits, one
//!   LSB-first bit stream exactly like the sigma-delta codes of spec §7.
//! - **rANS** ([`Coding::Rans`]): q is mapped to z = 2q for q ≥ 0 and −2q − 1 for q < 0
//!   (zig-zag); the high part z >> s is one symbol of a static model coded by [`super::rans`],
//!   the low s bits are stored raw. The vectors are cut into chunks of `chunk_vectors` vectors,
//!   each one rANS block, so any chunk decodes on its own. Section bytes, all little-endian:
//!
//!   | bytes | field |
//!   |---|---|
//!   | 1 | s, the raw low bits per code (0..=15) |
//!   | model | the static model ([`super::rans::Model::write`]) |
//!   | 4 | chunk_vectors V, 1 ≤ V ≤ max(1, ⌊65536 / N⌋) |
//!   | 4·C | the byte length of each chunk's block, C = ⌈m / V⌉ |
//!   | … | the C blocks, one after another |
//!   | ⌈m·N·s / 8⌉ | the low bits of every code, in code order, LSB-first, unused bits zero |
//!
//!   and nothing after. A reader checks every length against the section before using it.

use super::bitpack;
use super::rans::{self, Model};
#[cfg(feature = "encode")]
use crate::error::{Error, Result};

/// How the codes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Coding {
    /// ⌈log2(2K + 1)⌉ bits per code.
    Fixed,
    /// Static rANS over the zig-zag codes.
    #[default]
    Rans,
}

impl Coding {
    /// The id stored in a pcm record.
    pub fn id(self) -> u8 {
        match self {
            Coding::Fixed => 0,
            Coding::Rans => 1,
        }
    }

    /// The coding with file id `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            0 => Some(Coding::Fixed),
            1 => Some(Coding::Rans),
            _ => None,
        }
    }

    /// `fixed` or `rans`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Fixed => "fixed",
            Coding::Rans => "rans",
        }
    }
}

/// Bits per fixed-width code for codes in −K..=K: ⌈log2(2K + 1)⌉.
pub fn fixed_bits(k: u32) -> u32 {
    let values = 2 * u64::from(k) + 1;
    64 - (values - 1).leading_zeros()
}

/// Bytes of a fixed-width codes section of `count` codes, or `None` on overflow.
pub fn fixed_len(count: u64, k: u32) -> Option<u64> {
    bitpack::packed_len(count, fixed_bits(k).max(1))
}

fn zigzag(q: i32) -> u32 {
    ((q << 1) ^ (q >> 31)) as u32
}

fn unzigzag(z: u32) -> i64 {
    i64::from(z >> 1) ^ -i64::from(z & 1)
}

/// The number of raw low bits s for codes whose largest zig-zag value is `zmax`: the smallest s
/// that leaves at most 256 symbols.
pub fn raw_bits(zmax: u32) -> u32 {
    let mut s = 0;
    while (zmax >> s) >= rans::MAX_SYMBOLS as u32 {
        s += 1;
    }
    s
}

/// Vectors per chunk: about 64 Ki codes per chunk.
pub fn chunk_vectors(n: usize) -> usize {
    ((1usize << 16) / n.max(1)).max(1)
}

/// The histogram of the rANS symbols of `codes` with `s` raw bits (index = symbol).
pub fn histogram(codes: impl Iterator<Item = i32>, s: u32) -> Vec<u64> {
    let mut h = vec![0u64; rans::MAX_SYMBOLS];
    for q in codes {
        if let Some(c) = h.get_mut((zigzag(q) >> s) as usize) {
            *c += 1;
        }
    }
    while h.len() > 1 && h.last() == Some(&0) {
        h.pop();
    }
    h
}

/// Encodes the codes (`codes.len()` = m·n, each in −K..=K) as a section.
#[cfg(feature = "encode")]
pub fn encode(codes: &[i32], n: usize, k: u32, coding: Coding) -> Result<Vec<u8>> {
    if n == 0 || codes.len() % n != 0 {
        return Err(Error::param("pcm codes must be whole vectors of N codes"));
    }
    if let Some(&q) = codes.iter().find(|&&q| q.unsigned_abs() > k) {
        return Err(Error::param(format!("pcm code {q} is outside -{k}..={k}")));
    }
    match coding {
        Coding::Fixed => {
            let bits = fixed_bits(k).max(1);
            let offset = k as i64;
            let values: Vec<u16> = codes
                .iter()
                .map(|&q| (i64::from(q) + offset) as u16)
                .collect();
            let len = fixed_len(codes.len() as u64, k)
                .ok_or_else(|| Error::param("codes section length overflows"))?;
            let mut out = vec![0u8; len as usize];
            bitpack::pack(&values, bits, &mut out)?;
            Ok(out)
        }
        Coding::Rans => {
            let zmax = codes.iter().map(|&q| zigzag(q)).max().unwrap_or(0);
            let s = raw_bits(zmax);
            let model = Model::from_counts(&histogram(codes.iter().copied(), s))?;
            let mut out = vec![s as u8];
            model.write(&mut out);
            let v = chunk_vectors(n);
            out.extend_from_slice(&(v as u32).to_le_bytes());
            let chunks = codes.len().div_ceil(n * v);
            let table = out.len();
            out.resize(table + 4 * chunks, 0);
            let mut symbols = Vec::with_capacity(n * v);
            for (c, chunk) in codes.chunks(n * v).enumerate() {
                symbols.clear();
                symbols.extend(chunk.iter().map(|&q| (zigzag(q) >> s) as u8));
                let before = out.len();
                rans::encode(&symbols, &model, &mut out)?;
                let len = u32::try_from(out.len() - before)
                    .map_err(|_| Error::param("a rANS chunk is over 4 GiB"))?;
                if let Some(slot) = out.get_mut(table + 4 * c..table + 4 * c + 4) {
                    slot.copy_from_slice(&len.to_le_bytes());
                }
            }
            if s > 0 {
                let mask = (1u32 << s) - 1;
                let low: Vec<u16> = codes.iter().map(|&q| (zigzag(q) & mask) as u16).collect();
                let len = bitpack::packed_len(low.len() as u64, s)
                    .ok_or_else(|| Error::param("codes section length overflows"))?;
                let start = out.len();
                out.resize(start + len as usize, 0);
                bitpack::pack(&low, s, out.get_mut(start..).unwrap_or(&mut []))?;
            }
            Ok(out)
        }
    }
}

/// A parsed codes section, ready to decode chunk by chunk. Every length has been checked
/// against the section; the codes themselves are checked as they are decoded.
#[derive(Debug)]
pub struct CodeStream<'a> {
    bytes: &'a [u8],
    n: usize,
    m: usize,
    k: u32,
    coding: Coding,
    // rANS only:
    shift: u32,
    model: Option<Model>,
    chunk_vectors: usize,
    chunk_starts: Vec<usize>,
    low_start: usize,
}

/// Why a section is not a valid code stream (becomes R55 with the tensor's name).
pub type Problem = String;

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> CodeStream<'a> {
    /// Parses the section `bytes` of m vectors of n codes in −K..=K.
    pub fn parse(
        bytes: &'a [u8],
        n: usize,
        m: usize,
        k: u32,
        coding: Coding,
    ) -> std::result::Result<Self, Problem> {
        let count = (n as u64)
            .checked_mul(m as u64)
            .ok_or_else(|| "the code count overflows".to_owned())?;
        let mut s = CodeStream {
            bytes,
            n,
            m,
            k,
            coding,
            shift: 0,
            model: None,
            chunk_vectors: chunk_vectors(n),
            chunk_starts: Vec::new(),
            low_start: 0,
        };
        match coding {
            Coding::Fixed => {
                if fixed_len(count, k) != Some(bytes.len() as u64) {
                    return Err("the fixed-width codes have the wrong length".to_owned());
                }
            }
            Coding::Rans => {
                let shift = u32::from(*bytes.first().ok_or("the section is empty")?);
                if shift > 15 {
                    return Err(format!("{shift} raw bits per code (at most 15)"));
                }
                let rest = bytes.get(1..).unwrap_or(&[]);
                let (model, used) = Model::read(rest).map_err(|e| format!("its model: {e}"))?;
                let mut pos = 1 + used;
                let v = le_u32(bytes, pos).ok_or("it ends inside its chunk size")? as usize;
                pos += 4;
                // At most the writer's chunk (about 2^16 codes, at least one vector): a chunk's
                // buffers are then bounded whatever the file declares.
                if v == 0 || v > chunk_vectors(n) {
                    return Err(format!(
                        "chunk_vectors is {v}; it must be 1..={} for N = {n}",
                        chunk_vectors(n)
                    ));
                }
                let chunks = m.div_ceil(v);
                let table_len = chunks
                    .checked_mul(4)
                    .filter(|&t| t <= bytes.len().saturating_sub(pos))
                    .ok_or("its chunk table does not fit in the section")?;
                let mut starts = Vec::with_capacity(chunks + 1);
                let mut at = pos + table_len;
                starts.push(at);
                for c in 0..chunks {
                    let len = le_u32(bytes, pos + 4 * c).ok_or("the chunk table ends early")?;
                    at = at
                        .checked_add(len as usize)
                        .filter(|&e| e <= bytes.len())
                        .ok_or("a chunk reaches past the section")?;
                    starts.push(at);
                }
                let low_len =
                    bitpack::packed_len(count, shift).ok_or("the low bits' length overflows")?;
                if (bytes.len() - at) as u64 != low_len {
                    return Err(format!(
                        "{} bytes follow the chunks, the low bits need {low_len}",
                        bytes.len() - at
                    ));
                }
                if shift > 0 && count * u64::from(shift) % 8 != 0 {
                    if let Some(&last) = bytes.last() {
                        if last >> (count * u64::from(shift) % 8) != 0 {
                            return Err("nonzero bits after the last low bits".to_owned());
                        }
                    }
                }
                s.shift = shift;
                s.model = Some(model);
                s.chunk_vectors = v;
                s.chunk_starts = starts;
                s.low_start = at;
            }
        }
        Ok(s)
    }

    /// Vectors per chunk (the last chunk may have fewer).
    pub fn chunk_vectors(&self) -> usize {
        self.chunk_vectors
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.m.div_ceil(self.chunk_vectors)
    }

    /// The vectors of chunk `c`.
    pub fn chunk_range(&self, c: usize) -> std::ops::Range<usize> {
        let start = c.saturating_mul(self.chunk_vectors).min(self.m);
        start..start.saturating_add(self.chunk_vectors).min(self.m)
    }

    /// Decodes the codes of chunk `c` into `out` (n codes per vector of the chunk). On a bad
    /// code returns `Err((vector, code))` inside `Ok`; a malformed stream is `Err(problem)`.
    pub fn decode_chunk(
        &self,
        c: usize,
        out: &mut [i32],
        symbols: &mut Vec<u8>,
    ) -> std::result::Result<std::result::Result<(), (u64, i64)>, Problem> {
        let range = self.chunk_range(c);
        let want = range.len() * self.n;
        if out.len() != want {
            return Err("internal: wrong chunk buffer length".to_owned());
        }
        let first = (range.start as u64) * self.n as u64;
        let k = i64::from(self.k);
        match self.coding {
            Coding::Fixed => {
                let bits = fixed_bits(self.k).max(1);
                let mut values = vec![0u16; want];
                bitpack::unpack(self.bytes, bits, first, &mut values).map_err(|e| e.to_string())?;
                for (i, (o, &v)) in out.iter_mut().zip(&values).enumerate() {
                    let q = i64::from(v) - k;
                    if q > k {
                        return Ok(Err((range.start as u64 + (i / self.n) as u64, q)));
                    }
                    *o = q as i32;
                }
            }
            Coding::Rans => {
                let model = self.model.as_ref().ok_or("no model")?;
                let (a, b) = (
                    self.chunk_starts.get(c).copied().ok_or("no such chunk")?,
                    self.chunk_starts
                        .get(c + 1)
                        .copied()
                        .ok_or("no such chunk")?,
                );
                let block = self.bytes.get(a..b).ok_or("no such chunk")?;
                symbols.clear();
                symbols.resize(want, 0);
                rans::decode(block, model, symbols).map_err(|e| format!("chunk {c}: {e}"))?;
                let low_bytes = self.bytes.get(self.low_start..).unwrap_or(&[]);
                let mut low = vec![0u16; if self.shift > 0 { want } else { 0 }];
                if self.shift > 0 {
                    bitpack::unpack(low_bytes, self.shift, first, &mut low)
                        .map_err(|e| e.to_string())?;
                }
                for (i, (o, &sym)) in out.iter_mut().zip(symbols.iter()).enumerate() {
                    let z = (u32::from(sym) << self.shift)
                        | u32::from(low.get(i).copied().unwrap_or(0));
                    let q = unzigzag(z);
                    if q.abs() > k {
                        return Ok(Err((range.start as u64 + (i / self.n) as u64, q)));
                    }
                    *o = q as i32;
                }
            }
        }
        Ok(Ok(()))
    }
}

#[cfg(all(test, feature = "encode"))]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips() {
        for q in [-5, -1, 0, 1, 7, i32::MAX >> 1, -(i32::MAX >> 1)] {
            assert_eq!(unzigzag(zigzag(q)), i64::from(q));
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn fixed_bits_cover_the_range() {
        assert_eq!(fixed_bits(1), 2);
        assert_eq!(fixed_bits(3), 3);
        assert_eq!(fixed_bits(4), 4);
        assert_eq!(fixed_bits(32767), 16);
    }

    fn round_trip(codes: &[i32], n: usize, k: u32, coding: Coding) {
        let bytes = encode(codes, n, k, coding).unwrap();
        let m = codes.len() / n;
        let s = CodeStream::parse(&bytes, n, m, k, coding).unwrap();
        let mut back = Vec::new();
        let mut sym = Vec::new();
        for c in 0..s.chunk_count() {
            let r = s.chunk_range(c);
            let mut out = vec![0i32; r.len() * n];
            s.decode_chunk(c, &mut out, &mut sym).unwrap().unwrap();
            back.extend(out);
        }
        assert_eq!(back, codes);
    }

    #[test]
    fn both_codings_round_trip() {
        let mut x = 12345u64;
        for (n, m, spread) in [(7, 3, 3.0), (100, 2000, 40.0), (33, 5, 2000.0), (1, 1, 0.0)] {
            let codes: Vec<i32> = (0..n * m)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let u = (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                    (u * u * u * 8.0 * spread).round() as i32
                })
                .collect();
            let k = codes.iter().map(|q| q.unsigned_abs()).max().unwrap().max(1);
            round_trip(&codes, n, k, Coding::Fixed);
            round_trip(&codes, n, k, Coding::Rans);
        }
    }
}
