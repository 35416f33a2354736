//! The interleaved ΣΔ (`sigma_delta::quantize_lanes`) gives exactly the codes and states of the
//! one-vector recursion, including exact ties on the quantizer thresholds, saturation, δ = 0
//! lanes and explicit orderings.

use sdq::quant::sigma_delta::{quantize, quantize_lanes};
use sdq::{Alphabet, Permutation};

fn coeffs(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let r = (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            // Every fifth value a multiple of ½ (so v lands on thresholds exactly).
            if i % 5 == 0 {
                (r * 8.0).round() / 2.0
            } else {
                r * scale
            }
        })
        .collect()
}

#[test]
fn lanes_equal_one_at_a_time() {
    for (k, n, permuted) in [
        (1u32, 997usize, false),
        (1, 64, true),
        (2, 300, false),
        (3, 129, true),
    ] {
        let alphabet = Alphabet::new(k).unwrap();
        let order = if permuted {
            Permutation::explicit((0..n as u32).rev().collect(), n).unwrap()
        } else {
            Permutation::Identity
        };
        for deltas in [[1.0, 0.5, 2.0, 1.0 / 3.0], [1.0, 0.0, 0.25, 7.0]] {
            let xs: Vec<Vec<f64>> = (0..4)
                .map(|l| coeffs(n, l as u64 + 1, 1.5 * k as f64))
                .collect();
            let mut want_codes = vec![vec![0u16; n]; 4];
            let mut want_state = [0.0; 4];
            for l in 0..4 {
                want_state[l] = quantize(&xs[l], &order, alphabet, deltas[l], &mut want_codes[l]);
            }
            let mut codes = vec![vec![0u16; n]; 4];
            let [x0, x1, x2, x3] = &xs[..] else {
                unreachable!()
            };
            let [c0, c1, c2, c3] = &mut codes[..] else {
                unreachable!()
            };
            let state = quantize_lanes(
                [&x0[..], &x1[..], &x2[..], &x3[..]],
                &order,
                alphabet,
                deltas,
                [c0, c1, c2, c3],
            );
            assert_eq!(codes, want_codes, "k {k} n {n} deltas {deltas:?}");
            assert_eq!(
                state.map(f64::to_bits),
                want_state.map(f64::to_bits),
                "k {k} n {n} deltas {deltas:?}"
            );
        }
    }
}

/// `FrameQuantizer::quantize` writes the packed code stream itself: it is exactly
/// `bitpack::pack` of `codes()`, and the vectors rebuilt from it equal the synthesis of the
/// `u16` codes (`synthesise_codes`), bit for bit — for K = 1, 2, 3, both orientations, a bias,
/// an explicit order, every step policy, and vector counts that leave a partial group of 8.
#[test]
fn packed_stream_equals_pack_of_codes() {
    use sdq::format::bitpack;
    use sdq::quant::tensor::synthesise_codes;
    use sdq::{FrameDescriptor, FrameQuantizer, HarmonicFrame, Matrix, Orientation, StepPolicy};

    let (rows, cols, n) = (6usize, 13usize, 40usize);
    let data: Vec<f32> = coeffs(rows * cols, 9, 1.0)
        .iter()
        .map(|&x| x as f32)
        .collect();
    let bias: Vec<f32> = coeffs(rows, 3, 0.5).iter().map(|&x| x as f32).collect();
    for k in [1u32, 2, 3] {
        for orientation in [Orientation::Columns, Orientation::Rows] {
            for with_bias in [false, true] {
                for policy in [
                    StepPolicy::Coefficient,
                    StepPolicy::Vector,
                    StepPolicy::Tensor,
                    StepPolicy::Explicit(0.05),
                ] {
                    for permuted in [false, true] {
                        let mut m = Matrix::new(&data, rows, cols).unwrap();
                        if with_bias {
                            m = m.with_bias(&bias).unwrap();
                        }
                        let d = match orientation {
                            Orientation::Columns => rows,
                            Orientation::Rows => cols + usize::from(with_bias),
                        };
                        let mut fq = FrameQuantizer::new(
                            FrameDescriptor::harmonic(n, d).unwrap(),
                            k,
                            policy,
                        )
                        .unwrap();
                        if permuted {
                            let order = Permutation::explicit((0..n as u32).rev().collect(), n);
                            fq = fq.with_order(order.unwrap()).unwrap();
                        }
                        let q = fq.quantize(&m, orientation).unwrap();
                        let bits = q.alphabet().bits();
                        let mut want = vec![
                            0u8;
                            bitpack::packed_len(q.codes().len() as u64, bits).unwrap()
                                as usize
                        ];
                        bitpack::pack(q.codes(), bits, &mut want).unwrap();
                        assert_eq!(
                            q.packed_codes(),
                            &want[..],
                            "k {k} {orientation:?} {policy:?}"
                        );
                        let frame = sdq::frame::Frame::Harmonic(HarmonicFrame::new(n, d).unwrap());
                        let mut ws = frame.workspace();
                        let (mut got, mut exp) = (vec![0.0; d], vec![0.0; d]);
                        for j in 0..q.layout().vector_count() {
                            q.reconstruct_vector(j, &mut got).unwrap();
                            synthesise_codes(
                                &frame,
                                q.order(),
                                q.alphabet(),
                                q.deltas().get(j),
                                &q.codes()[j * n..(j + 1) * n],
                                &mut exp,
                                &mut ws,
                            )
                            .unwrap();
                            let (g, e): (Vec<u64>, Vec<u64>) = (
                                got.iter().map(|x| x.to_bits()).collect(),
                                exp.iter().map(|x| x.to_bits()).collect(),
                            );
                            assert_eq!(g, e, "k {k} {orientation:?} vector {j}");
                        }
                    }
                }
            }
        }
    }
}
