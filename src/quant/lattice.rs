//! Lattice steps: the step that rebuilds a group of coefficients **exactly**.
//!
//! Some float tensors hold values on a grid: attention masks and other 0/1 buffers (GPT-2's
//! `attn.bias`), one-hot and identity tables, integer counts stored as floats, binary or
//! ternary weights with one scale per row. Rounding them at a step chosen from their rms
//! (pcm's rate control) spends bits to *approximate* values that a step equal to the grid's
//! spacing would rebuild bit for bit, usually with fewer bits: a causal mask at the step its rms
//! suggests came back as 0 and 0.667 (relative error 0.33) for the same one bit per weight that
//! codes it exactly.
//!
//! [`step`] finds the largest step s such that every coefficient y is q·s for an integer q with
//! |q| ≤ a given K, **exactly in the decoder's arithmetic** (the f64 product of the integer and
//! the stored step, rounded to f32, must equal y), and that the step itself is stored exactly.
//! The pcm quantizer ([`super::pcm`]) uses such steps when every group of a tensor has one and
//! coding it exactly costs no more than its budget.

/// The largest number of divisors of the smallest nonzero |y| tried as the step: a group whose
/// smallest nonzero value is q_min·s with q_min ≤ 16 is found.
pub const MAX_DIVISOR: u32 = 16;

/// The largest step s (stored as an f32) that rebuilds every value of `y` exactly as
/// `(q as f64 * s as f64) as f32` with an integer |q| ≤ `max_code`, and whether s is also exact
/// as a normal (or zero) IEEE binary16 number; `None` when there is none among the smallest
/// nonzero |y| divided by 1, 2, …, [`MAX_DIVISOR`]. A group of zeros has step 0. `y` holds
/// f32 values (widened to f64), as pcm's coefficients without a frame are.
pub fn step(y: &[f64], max_code: u32) -> Option<(f32, bool)> {
    let smallest = y
        .iter()
        .map(|x| x.abs())
        .filter(|&x| x > 0.0)
        .fold(f64::INFINITY, f64::min);
    if smallest == f64::INFINITY {
        // Every value is zero (or there are none): any step rebuilds them; 0 costs nothing.
        return y.iter().all(|&x| x == 0.0).then_some((0.0, true));
    }
    if !smallest.is_finite() {
        return None;
    }
    let limit = f64::from(max_code);
    (1..=MAX_DIVISOR).find_map(|k| {
        let s = (smallest / f64::from(k)) as f32;
        let s64 = f64::from(s);
        if !(s64 > 0.0 && s64.is_finite()) || smallest / f64::from(k) != s64 {
            return None;
        }
        let exact = y.iter().all(|&x| {
            let q = (x / s64).round();
            q.abs() <= limit && q * s64 == x
        });
        exact.then(|| {
            let h = half::f16::from_f32(s);
            (s, h.is_normal() && h.to_f32() == s)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::step;

    fn f(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| f64::from(x)).collect()
    }

    #[test]
    fn finds_the_spacing_of_a_grid() {
        assert_eq!(step(&f(&[0.0, 1.0, 1.0, 0.0]), 100), Some((1.0, true)));
        // The largest step: 3 rather than 1 for multiples of 3.
        assert_eq!(step(&f(&[3.0, -6.0, 9.0, 0.0]), 100), Some((3.0, true)));
        // The smallest value need not be one step: 2 and 3 lie on the grid of 1.
        assert_eq!(step(&f(&[2.0, 3.0, -4.0]), 100), Some((1.0, true)));
        // Ternary weights with an f32 scale that f16 cannot hold.
        let s = 0.012_345_679_f32;
        let (got, f16_exact) = step(&f(&[s, -s, 0.0, s, s]), 100).unwrap();
        assert_eq!(got, s);
        assert!(!f16_exact);
    }

    #[test]
    fn every_value_rebuilds_exactly_in_the_decoders_arithmetic() {
        let values: Vec<f32> = (0..200).map(|i| (i % 13) as f32 * 0.375 - 2.25).collect();
        let (s, _) = step(&f(&values), 1000).unwrap();
        for &v in &values {
            let q = (f64::from(v) / f64::from(s)).round();
            assert_eq!((q * f64::from(s)) as f32, v);
        }
    }

    #[test]
    fn refuses_values_off_any_grid_and_codes_past_the_limit() {
        let noisy: Vec<f64> = (1..100).map(|i| (f64::from(i) * 0.731).sin()).collect();
        assert_eq!(
            step(
                &f(&noisy.iter().map(|&x| x as f32).collect::<Vec<_>>()),
                32767
            ),
            None
        );
        // On a grid of 1, but 40 steps exceed a limit of 30.
        assert_eq!(step(&f(&[1.0, 40.0]), 30), None);
        assert_eq!(step(&f(&[1.0, 30.0]), 30), Some((1.0, true)));
        // One value off the grid spoils it.
        assert_eq!(step(&f(&[1.0, 2.0, 2.5000002]), 1000), None);
    }

    #[test]
    fn zeros_empty_and_non_finite() {
        assert_eq!(step(&[0.0, 0.0], 10), Some((0.0, true)));
        assert_eq!(step(&[], 10), Some((0.0, true)));
        assert_eq!(step(&[1.0, f64::NAN], 10), None);
        assert_eq!(step(&[f64::INFINITY, 1.0], 10), None);
        assert_eq!(step(&[f64::NAN], 10), None);
    }

    #[test]
    fn tiny_and_huge_values() {
        // Subnormal f32 values: multiples of the smallest one.
        let t = f32::from_bits(1);
        assert_eq!(step(&f(&[t, 3.0 * t, 0.0]), 10), Some((t, false)));
        // A large grid step: still exact.
        assert_eq!(step(&f(&[1e30, 2e30]), 10).map(|p| p.0), Some(1e30));
    }
}
