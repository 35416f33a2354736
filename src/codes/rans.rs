//! Placeholder static rANS (single lane), to be replaced by the interleaved coder.

use crate::error::{Error, Result};

/// Probabilities are in units of 2^-PROB_BITS.
pub const PROB_BITS: u32 = 12;
/// Largest alphabet.
pub const MAX_SYMBOLS: usize = 256;
const TOTAL: u32 = 1 << PROB_BITS;
const LOW: u32 = 1 << 16;

/// A static model: normalised frequencies summing to 2^PROB_BITS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    freqs: Vec<u32>,
    starts: Vec<u32>,
    table: Vec<u8>,
}

impl Model {
    /// Normalises a histogram.
    pub fn from_counts(counts: &[u64]) -> Result<Model> {
        if counts.is_empty() || counts.len() > MAX_SYMBOLS {
            return Err(Error::param("rANS model needs 1..=256 symbols"));
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Err(Error::param("rANS model needs a non-empty histogram"));
        }
        let mut freqs: Vec<u32> = counts
            .iter()
            .map(|&c| {
                if c == 0 {
                    0
                } else {
                    ((c as f64 * f64::from(TOTAL) / total as f64) as u32).max(1)
                }
            })
            .collect();
        let sum: i64 = freqs.iter().map(|&f| i64::from(f)).sum();
        let mut diff = i64::from(TOTAL) - sum;
        while diff != 0 {
            let (i, _) = freqs
                .iter()
                .enumerate()
                .max_by_key(|(_, &f)| f)
                .ok_or_else(|| Error::param("empty model"))?;
            let f = freqs.get_mut(i).ok_or_else(|| Error::param("empty model"))?;
            if diff > 0 {
                *f += diff as u32;
                diff = 0;
            } else {
                let take = (-diff).min(i64::from(*f) - 1);
                if take <= 0 {
                    return Err(Error::param("cannot normalise"));
                }
                *f -= take as u32;
                diff += take;
            }
        }
        Self::from_freqs(freqs).map_err(|e| Error::param(e.to_string()))
    }

    fn from_freqs(freqs: Vec<u32>) -> std::result::Result<Model, &'static str> {
        if freqs.is_empty() || freqs.len() > MAX_SYMBOLS {
            return Err("symbol count outside 1..=256");
        }
        if freqs.iter().map(|&f| u64::from(f)).sum::<u64>() != u64::from(TOTAL) {
            return Err("frequencies do not sum to 2^12");
        }
        let mut starts = Vec::with_capacity(freqs.len());
        let mut table = Vec::with_capacity(TOTAL as usize);
        let mut acc = 0;
        for (s, &f) in freqs.iter().enumerate() {
            starts.push(acc);
            acc += f;
            table.extend(std::iter::repeat_n(s as u8, f as usize));
        }
        Ok(Model {
            freqs,
            starts,
            table,
        })
    }

    /// Number of symbols.
    pub fn symbols(&self) -> usize {
        self.freqs.len()
    }

    /// Frequency of symbol `s`.
    pub fn freq(&self, s: usize) -> u32 {
        self.freqs.get(s).copied().unwrap_or(0)
    }

    /// Serialises: u16 symbol count, then u16 frequencies.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.freqs.len() as u16).to_le_bytes());
        for &f in &self.freqs {
            out.extend_from_slice(&(f as u16).to_le_bytes());
        }
    }

    /// Parses and validates a model; returns it and the bytes consumed.
    pub fn read(bytes: &[u8]) -> std::result::Result<(Model, usize), &'static str> {
        let count = match bytes.get(..2) {
            Some(b) => usize::from(u16::from_le_bytes([b[0], b[1]])),
            None => return Err("the model ends early"),
        };
        let end = 2 + 2 * count;
        let body = bytes.get(2..end).ok_or("the model ends early")?;
        let freqs = body
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .collect();
        Ok((Self::from_freqs(freqs)?, end))
    }

    /// Coded size in bits of a message with histogram `counts`.
    pub fn cost_bits(&self, counts: &[u64]) -> f64 {
        counts
            .iter()
            .enumerate()
            .map(|(s, &c)| {
                let f = self.freq(s);
                if c == 0 {
                    0.0
                } else if f == 0 {
                    f64::INFINITY
                } else {
                    c as f64 * (f64::from(PROB_BITS) - f64::from(f).log2())
                }
            })
            .sum()
    }
}

/// Encodes `symbols` as one block appended to `out`.
pub fn encode(symbols: &[u8], model: &Model, out: &mut Vec<u8>) -> Result<()> {
    let mut words: Vec<u16> = Vec::new();
    let mut x: u32 = LOW;
    for &s in symbols.iter().rev() {
        let f = model.freq(usize::from(s));
        if f == 0 {
            return Err(Error::param("symbol with zero frequency"));
        }
        let start = model.starts.get(usize::from(s)).copied().unwrap_or(0);
        let x_max = ((LOW >> PROB_BITS) << 16) * f;
        if x >= x_max {
            words.push(x as u16);
            x >>= 16;
        }
        x = ((x / f) << PROB_BITS) + (x % f) + start;
    }
    out.extend_from_slice(&x.to_le_bytes());
    for w in words.iter().rev() {
        out.extend_from_slice(&w.to_le_bytes());
    }
    Ok(())
}

/// Decodes exactly `out.len()` symbols from exactly the block `bytes`.
pub fn decode(bytes: &[u8], model: &Model, out: &mut [u8]) -> std::result::Result<(), &'static str> {
    let head = bytes.get(..4).ok_or("the block is shorter than its state")?;
    let mut x = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let mut pos = 4;
    for o in out.iter_mut() {
        let slot = x & (TOTAL - 1);
        let s = *model.table.get(slot as usize).ok_or("bad slot")?;
        let f = model.freq(usize::from(s));
        let start = model.starts.get(usize::from(s)).copied().unwrap_or(0);
        x = f * (x >> PROB_BITS) + slot - start;
        if x < LOW {
            let w = bytes.get(pos..pos + 2).ok_or("the block ends early")?;
            x = (x << 16) | u32::from(u16::from_le_bytes([w[0], w[1]]));
            pos += 2;
        }
        *o = s;
    }
    if pos != bytes.len() || x != LOW {
        return Err("the block does not end where its symbols do");
    }
    Ok(())
}
