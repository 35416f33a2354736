//! b-bit codes ↔ bytes (spec §7).
//!
//! The codes of a tensor form one bit stream: code i occupies stream bits [i·b, (i+1)·b), value
//! bit t of the code at stream bit i·b + t, and stream bit s is bit (s mod 8) of byte ⌊s/8⌋
//! (LSB-first). The stream is ⌈count·b/8⌉ bytes; unused high bits of the last byte are zero.

use crate::error::{Error, Result};

/// Bytes needed for `count` codes of `bits` bits: ⌈count·bits/8⌉, or `None` on overflow.
pub fn packed_len(count: u64, bits: u32) -> Option<u64> {
    count
        .checked_mul(u64::from(bits))?
        .checked_add(7)
        .map(|b| b / 8)
}

fn check_bits(bits: u32) -> Result<()> {
    if (1..=16).contains(&bits) {
        Ok(())
    } else {
        Err(Error::param(format!(
            "codes must have 1 to 16 bits, got {bits}"
        )))
    }
}

/// Packs `codes` (each < 2^bits) into `out`, which must be exactly
/// [`packed_len`]`(codes.len(), bits)` bytes long. Every byte of `out` is written.
pub fn pack(codes: &[u16], bits: u32, out: &mut [u8]) -> Result<()> {
    check_bits(bits)?;
    let want = packed_len(codes.len() as u64, bits)
        .ok_or_else(|| Error::param("packed code stream length overflows"))?;
    if out.len() as u64 != want {
        return Err(Error::param(format!(
            "{} codes of {bits} bits need {want} bytes, the buffer has {}",
            codes.len(),
            out.len()
        )));
    }
    let limit = 1u32 << bits;
    let mut acc: u64 = 0;
    let mut fill: u32 = 0;
    let mut words = out.chunks_mut(8);
    for (i, &c) in codes.iter().enumerate() {
        if u32::from(c) >= limit {
            return Err(Error::param(format!(
                "code {c} at index {i} does not fit in {bits} bits"
            )));
        }
        let c = u64::from(c);
        acc |= c << fill;
        fill += bits;
        if fill >= 64 {
            if let Some(w) = words.next() {
                w.copy_from_slice(&acc.to_le_bytes()[..w.len()]);
            }
            fill -= 64;
            // The bits of c that did not fit (none if fill == 0).
            acc = if fill == 0 { 0 } else { c >> (bits - fill) };
        }
    }
    if let Some(w) = words.next() {
        let n = w.len();
        w.copy_from_slice(&acc.to_le_bytes()[..n]);
    }
    Ok(())
}

/// Reads 8 bytes little-endian starting at `at`, with zeros past the end of `bytes`.
#[inline]
fn load_le(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at.saturating_add(8)) {
        Some(b) => {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            u64::from_le_bytes(w)
        }
        None => {
            let mut w = [0u8; 8];
            if let Some(tail) = bytes.get(at..) {
                w[..tail.len()].copy_from_slice(tail);
            }
            u64::from_le_bytes(w)
        }
    }
}

/// Checks that `count` codes of `bits` bits starting at code `start` lie inside `bytes`.
fn check_range(bytes: &[u8], bits: u32, start: u64, count: usize) -> Result<()> {
    check_bits(bits)?;
    let end_bit = start
        .checked_add(count as u64)
        .and_then(|e| e.checked_mul(u64::from(bits)));
    if end_bit.is_none_or(|e| e > (bytes.len() as u64).saturating_mul(8)) {
        return Err(Error::param(format!(
            "codes {start}..+{count} of {bits} bits are past the end of a {}-byte stream",
            bytes.len()
        )));
    }
    Ok(())
}

/// Calls `sink(i, code)` for `count` codes of `bits` bits starting at code index `start`, reading
/// the stream 64 bits at a time. The range must have been checked with [`check_range`].
#[inline(always)]
fn for_each_code(
    bytes: &[u8],
    bits: u32,
    start: u64,
    count: usize,
    mut sink: impl FnMut(usize, u64),
) {
    let b = u64::from(bits);
    let mask = (1u64 << bits) - 1;
    // In range: the end bit ≤ 8·len fits in u64 and every bit offset below it fits in usize.
    let mut s = start * b;
    let mut i = 0;
    while i < count {
        let shift = (s % 8) as u32;
        let mut window = load_le(bytes, (s / 8) as usize) >> shift;
        // Whole codes in this window: at least 3 (bits ≤ 16, shift ≤ 7).
        let take = (((64 - shift) / bits) as usize).min(count - i);
        for _ in 0..take {
            sink(i, window & mask);
            window >>= bits;
            i += 1;
        }
        s += take as u64 * b;
    }
}

/// Unpacks `out.len()` codes of `bits` bits starting at code index `start` of the stream in
/// `bytes` (so one vector's codes can be read from the middle of a tensor's stream). Fails if
/// the codes requested reach past the end of `bytes`.
pub fn unpack(bytes: &[u8], bits: u32, start: u64, out: &mut [u16]) -> Result<()> {
    check_range(bytes, bits, start, out.len())?;
    for_each_code(bytes, bits, start, out.len(), |i, c| {
        if let Some(o) = out.get_mut(i) {
            *o = c as u16;
        }
    });
    Ok(())
}

/// The eight levels (±½) of the eight 1-bit codes in each possible byte, LSB first.
static SIGN_LEVELS: [[f64; 8]; 256] = {
    let mut table = [[0.0f64; 8]; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut t = 0;
        while t < 8 {
            table[byte][t] = if (byte >> t) & 1 == 1 { 0.5 } else { -0.5 };
            t += 1;
        }
        byte += 1;
    }
    table
};

/// 1-bit codes (K = 1) to their levels ±½: bit by bit up to a byte boundary, then eight levels
/// per byte from a table. The range must have been checked.
fn unpack_signs(bytes: &[u8], start: u64, out: &mut [f64]) {
    let total = out.len();
    let head = (((8 - start % 8) % 8) as usize).min(total);
    let (first, rest) = out.split_at_mut(head);
    for_each_code(bytes, 1, start, first.len(), |i, c| {
        if let Some(o) = first.get_mut(i) {
            *o = c as f64 - 0.5;
        }
    });
    // `start + head` is a multiple of 8 (or `rest` is empty).
    let from = ((start + head as u64) / 8) as usize;
    let mut chunks = rest.chunks_exact_mut(8);
    for (chunk, &byte) in (&mut chunks).zip(bytes.get(from..).unwrap_or(&[])) {
        chunk.copy_from_slice(&SIGN_LEVELS[usize::from(byte)]);
    }
    let tail = chunks.into_remainder();
    let tail_start = start + (total - tail.len()) as u64;
    for_each_code(bytes, 1, tail_start, tail.len(), |i, c| {
        if let Some(o) = tail.get_mut(i) {
            *o = c as f64 - 0.5;
        }
    });
}

/// Unpacks `out.len()` codes like [`unpack`], straight into their levels in units of δ,
/// c − K + ½ (the decoder's FFT input). Returns `Ok(Err(code))` with the first code ≥ 2K if there
/// is one (possible only when 2K is not a power of two), `Err` if the range is past the stream.
pub fn unpack_levels(
    bytes: &[u8],
    bits: u32,
    start: u64,
    k: u32,
    out: &mut [f64],
) -> Result<std::result::Result<(), u16>> {
    check_range(bytes, bits, start, out.len())?;
    let offset = f64::from(k) - 0.5;
    if bits == 1 {
        unpack_signs(bytes, start, out);
        return Ok(Ok(()));
    }
    let levels = 2 * u64::from(k);
    let mut bad = false;
    for_each_code(bytes, bits, start, out.len(), |i, c| {
        bad |= c >= levels;
        if let Some(o) = out.get_mut(i) {
            *o = c as f64 - offset;
        }
    });
    if bad {
        let mut first = 0u16;
        let mut found = false;
        for_each_code(bytes, bits, start, out.len(), |_, c| {
            if !found && c >= levels {
                first = c as u16;
                found = true;
            }
        });
        return Ok(Err(first));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_pack(codes: &[u16], bits: u32) -> Vec<u8> {
        let mut out = vec![0u8; packed_len(codes.len() as u64, bits).unwrap() as usize];
        for (i, &c) in codes.iter().enumerate() {
            for t in 0..bits {
                if (c >> t) & 1 == 1 {
                    let s = i * bits as usize + t as usize;
                    out[s / 8] |= 1 << (s % 8);
                }
            }
        }
        out
    }

    #[test]
    fn known_bytes() {
        // 1 bit: codes 1,0,1,1 → bits 0,2,3 set → 0b1101.
        let mut out = [0u8; 1];
        pack(&[1, 0, 1, 1], 1, &mut out).unwrap();
        assert_eq!(out, [0b1101]);
        // 3 bits: 5, 2, 7 → 101 | 010<<3 | 111<<6 = 0b1_1101_0101 → [0xD5, 0x01].
        let mut out = [0u8; 2];
        pack(&[5, 2, 7], 3, &mut out).unwrap();
        assert_eq!(out, [0xD5, 0x01]);
        let mut back = [0u16; 2];
        unpack(&out, 3, 1, &mut back).unwrap();
        assert_eq!(back, [2, 7]);
    }

    #[test]
    fn rejects_bad_input() {
        let mut out = [0u8; 1];
        assert!(pack(&[2], 1, &mut out).is_err());
        assert!(pack(&[1], 0, &mut out).is_err());
        assert!(pack(&[1], 17, &mut out).is_err());
        assert!(pack(&[1, 1], 1, &mut [0u8; 2]).is_err());
        let mut back = [0u16; 3];
        assert!(unpack(&[0u8; 1], 3, 0, &mut back).is_err());
        assert!(unpack(&[0u8; 1], 3, u64::MAX, &mut back).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(k in 1u32..=32768, len in 0usize..700, seed in any::<u64>(), start in 0usize..700) {
            let bits = crate::quant::alphabet::bits_for_levels(k);
            let levels = 2 * u64::from(k);
            let mut x = seed | 1;
            let codes: Vec<u16> = (0..len).map(|_| {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                (x % levels) as u16
            }).collect();
            let mut out = vec![0xAAu8; packed_len(len as u64, bits).unwrap() as usize];
            pack(&codes, bits, &mut out).unwrap();
            prop_assert_eq!(&out, &naive_pack(&codes, bits));
            let mut back = vec![0u16; len];
            unpack(&out, bits, 0, &mut back).unwrap();
            prop_assert_eq!(&back, &codes);
            let start = start.min(len);
            let mut part = vec![0u16; len - start];
            unpack(&out, bits, start as u64, &mut part).unwrap();
            prop_assert_eq!(&part[..], &codes[start..]);
        }

        #[test]
        fn every_width(bits in 1u32..=16, len in 0usize..300, seed in any::<u64>()) {
            let mut x = seed | 1;
            let codes: Vec<u16> = (0..len).map(|_| {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                (x & ((1u64 << bits) - 1)) as u16
            }).collect();
            let mut out = vec![0u8; packed_len(len as u64, bits).unwrap() as usize];
            pack(&codes, bits, &mut out).unwrap();
            prop_assert_eq!(&out, &naive_pack(&codes, bits));
            let mut back = vec![0u16; len];
            unpack(&out, bits, 0, &mut back).unwrap();
            prop_assert_eq!(&back, &codes);
            // Levels: c − K + ½ for the K whose 2K = 2^bits, and a smaller K flags big codes.
            let k = 1u32 << (bits - 1);
            let mut levels = vec![0.0f64; len];
            let from = (seed as usize % (len + 1)).min(len);
            let mut part = vec![0.0f64; len - from];
            prop_assert_eq!(unpack_levels(&out, bits, from as u64, k, &mut part).unwrap(), Ok(()));
            for (l, &c) in part.iter().zip(&codes[from..]) {
                prop_assert_eq!(*l, f64::from(c) - f64::from(k) + 0.5);
            }
            prop_assert_eq!(unpack_levels(&out, bits, 0, k, &mut levels).unwrap(), Ok(()));
            for (l, &c) in levels.iter().zip(&codes) {
                prop_assert_eq!(*l, f64::from(c) - f64::from(k) + 0.5);
            }
            if bits > 1 {
                let small_k = k - 1;
                let first_bad = codes.iter().copied().find(|&c| u32::from(c) >= 2 * small_k);
                let got = unpack_levels(&out, bits, 0, small_k, &mut levels).unwrap();
                prop_assert_eq!(got, first_bad.map_or(Ok(()), Err));
            }
        }
    }
}
