//! Raw tensor bytes (little-endian, any dtype of the table) → f32, for decoders that output f32.

use super::layout::Dtype;

/// A small IEEE-like binary float with `e` exponent bits and `m` mantissa bits → f32 (exact:
/// every such value is representable in f32). `fn_nan`: the "FN" convention (no infinities,
/// only the all-ones pattern is NaN) instead of IEEE's.
fn small_float(bits: u32, e: u32, m: u32, fn_nan: bool) -> f32 {
    let sign = if (bits >> (e + m)) & 1 == 1 {
        -1.0
    } else {
        1.0
    };
    let exp = (bits >> m) & ((1 << e) - 1);
    let mant = bits & ((1 << m) - 1);
    let bias = (1i32 << (e - 1)) - 1;
    let max_exp = (1 << e) - 1;
    let frac = mant as f32 / (1u32 << m) as f32;
    let v = if exp == max_exp && !fn_nan {
        if mant == 0 {
            f32::INFINITY
        } else {
            f32::NAN
        }
    } else if exp == max_exp && mant == (1 << m) - 1 {
        f32::NAN
    } else if exp == 0 {
        frac * 2f32.powi(1 - bias)
    } else {
        (1.0 + frac) * 2f32.powi(exp as i32 - bias)
    };
    sign * v
}

/// Converts the little-endian bytes of `dtype` elements into `out` (one f32 per element).
/// `bytes.len()` must be `out.len() × dtype.size()`; extra or missing bytes are ignored.
pub(crate) fn to_f32(dtype: Dtype, bytes: &[u8], out: &mut [f32]) {
    macro_rules! each {
        ($n:expr, |$b:ident| $e:expr) => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                let mut $b = [0u8; $n];
                $b.copy_from_slice(c);
                *o = $e;
            }
        };
    }
    match dtype {
        Dtype::Bool => each!(1, |b| f32::from(u8::from(b[0] != 0))),
        Dtype::U8 => each!(1, |b| f32::from(b[0])),
        Dtype::I8 => each!(1, |b| f32::from(i8::from_le_bytes(b))),
        Dtype::U16 => each!(2, |b| f32::from(u16::from_le_bytes(b))),
        Dtype::I16 => each!(2, |b| f32::from(i16::from_le_bytes(b))),
        Dtype::F16 => each!(2, |b| small_float(
            u32::from(u16::from_le_bytes(b)),
            5,
            10,
            false
        )),
        Dtype::BF16 => each!(2, |b| f32::from_bits(
            u32::from(u16::from_le_bytes(b)) << 16
        )),
        Dtype::U32 => each!(4, |b| u32::from_le_bytes(b) as f32),
        Dtype::I32 => each!(4, |b| i32::from_le_bytes(b) as f32),
        Dtype::F32 => each!(4, |b| f32::from_le_bytes(b)),
        Dtype::U64 => each!(8, |b| u64::from_le_bytes(b) as f32),
        Dtype::I64 => each!(8, |b| i64::from_le_bytes(b) as f32),
        Dtype::F64 => each!(8, |b| f64::from_le_bytes(b) as f32),
        Dtype::F8E4M3 => each!(1, |b| small_float(u32::from(b[0]), 4, 3, true)),
        Dtype::F8E5M2 => each!(1, |b| small_float(u32::from(b[0]), 5, 2, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(dtype: Dtype, bytes: &[u8]) -> f32 {
        let mut o = [0f32];
        to_f32(dtype, bytes, &mut o);
        o[0]
    }

    #[test]
    fn halves() {
        assert_eq!(one(Dtype::F16, &0x3C00u16.to_le_bytes()), 1.0);
        assert_eq!(one(Dtype::F16, &0xC000u16.to_le_bytes()), -2.0);
        assert_eq!(one(Dtype::F16, &0x0001u16.to_le_bytes()), 2f32.powi(-24));
        assert_eq!(one(Dtype::F16, &0x7BFFu16.to_le_bytes()), 65504.0);
        assert!(one(Dtype::F16, &0x7C00u16.to_le_bytes()).is_infinite());
        assert!(one(Dtype::F16, &0x7C01u16.to_le_bytes()).is_nan());
        assert_eq!(one(Dtype::BF16, &0x3F80u16.to_le_bytes()), 1.0);
    }

    #[test]
    fn eight_bit_floats() {
        assert_eq!(one(Dtype::F8E4M3, &[0x38]), 1.0);
        assert_eq!(one(Dtype::F8E4M3, &[0x7E]), 448.0);
        assert!(one(Dtype::F8E4M3, &[0x7F]).is_nan());
        assert_eq!(one(Dtype::F8E4M3, &[0x01]), 2f32.powi(-9));
        assert_eq!(one(Dtype::F8E5M2, &[0x3C]), 1.0);
        assert_eq!(one(Dtype::F8E5M2, &[0x7B]), 57344.0);
        assert!(one(Dtype::F8E5M2, &[0x7C]).is_infinite());
        assert_eq!(one(Dtype::F8E5M2, &[0xBC]), -1.0);
    }

    #[test]
    fn integers() {
        assert_eq!(one(Dtype::I64, &(-5i64).to_le_bytes()), -5.0);
        assert_eq!(one(Dtype::I8, &[0xFF]), -1.0);
        assert_eq!(one(Dtype::Bool, &[2]), 1.0);
    }
}
