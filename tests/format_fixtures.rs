//! The committed fixtures in `fixtures/`: each decodes to its committed expected output, each is
//! rebuilt byte for byte from its deterministic inputs, and the spec's worked-example hex dump is
//! the worked example's bytes.
//!
//! Regenerate with `SDQ_REGENERATE_FIXTURES=1 cargo test --test format_fixtures`.

use std::path::{Path, PathBuf};

use sdq::format::{layout::MAGIC, DeltaPolicy, Dtype, SdqFile, SdqStreamWriter, TensorPlan};
use sdq::{
    Deltas, FrameDescriptor, FrameQuantizer, HarmonicFrame, Matrix, Orientation, Permutation,
    QuantizedTensor, StepPolicy,
};

/// Decoders must agree with the expected output to this tolerance, relative to the largest
/// magnitude in the tensor (spec §8.4).
const TOLERANCE: f32 = 1e-6;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Exactly representable pseudo-random inputs (multiples of 2^-12 in [-1, 1)): no libm, so the
/// inputs are the same on every platform.
fn inputs(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) % 8192) as f32 / 4096.0 - 1.0
        })
        .collect()
}

/// tetris(N, d) as an N×d dense matrix (row n − 1 is e_n), built straight from spec §8.1's
/// description with the remaining squared norm r as a float — a second implementation, independent
/// of the library's exact-integer one.
fn dense_tetris(n: usize, d: usize) -> Vec<Vec<f64>> {
    let lambda = n as f64 / d as f64;
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let (mut k, mut r) = (0usize, lambda);
    while rows.len() < n {
        if r < 1e-9 {
            k += 1;
            r = lambda;
        }
        if r >= 1.0 - 1e-9 {
            let mut e = vec![0.0; d];
            e[k] = 1.0;
            rows.push(e);
            r -= 1.0;
        } else {
            let (top, bottom) = ((r / 2.0).sqrt(), (1.0 - r / 2.0).sqrt());
            for sign in [1.0, -1.0] {
                let mut e = vec![0.0; d];
                e[k] = top;
                e[k + 1] = sign * bottom;
                rows.push(e);
            }
            k += 1;
            r = lambda - (2.0 - r);
        }
    }
    rows
}

/// The dense reference decoder of spec §8: w̃_j = (d/N)·δ_j·Σ_k (c_k − K + ½)·e_{p(k)+1}, with
/// e_n computed from its closed form (harmonic) or the dense construction (tetris) —
/// independent of the FFT and sparse paths the reader uses.
fn dense_decode(q: &QuantizedTensor) -> (Vec<f32>, Vec<f32>) {
    let fd = q.frame();
    let (n, d) = (fd.frame_size(), fd.dim());
    let tetris = matches!(fd, FrameDescriptor::SpectralTetris { .. }).then(|| dense_tetris(n, d));
    let frame = HarmonicFrame::new(n.max(d + 1), d).unwrap();
    let l = q.layout();
    let k = f64::from(q.alphabet().k());
    let mut w = vec![0f32; l.rows * l.cols];
    let mut b = vec![0f32; if l.has_bias { l.rows } else { 0 }];
    let mut e = vec![0f64; d];
    let m = l.vector_count();
    for j in 0..m {
        let delta = q.deltas().get(j);
        let mut v = vec![0f64; d];
        for step in 0..n {
            let c = f64::from(q.codes()[j * n + step]);
            match &tetris {
                Some(rows) => e.copy_from_slice(&rows[q.order().position(step)]),
                None => frame.row(q.order().position(step) + 1, &mut e).unwrap(),
            }
            for (vi, ei) in v.iter_mut().zip(&e) {
                *vi += (c - k + 0.5) * ei;
            }
        }
        let scale = d as f64 / n as f64 * delta;
        for (i, x) in v.iter().enumerate() {
            let x = (x * scale) as f32;
            let (r, c) = match l.orientation {
                Orientation::Columns => (i, j),
                Orientation::Rows => (j, i),
            };
            if c < l.cols {
                w[r * l.cols + c] = x;
            } else {
                b[r] = x;
            }
        }
    }
    (w, b)
}

/// One fixture: its file bytes and the expected decoded tensors, in file order.
struct Fixture {
    name: &'static str,
    bytes: Vec<u8>,
    expected: Vec<(String, Vec<u64>, Vec<f32>)>,
}

/// How one fixture tensor is quantized.
struct Params {
    shape: [usize; 2],
    orientation: Orientation,
    n: usize,
    k: u32,
    policy: StepPolicy,
}

fn quantize(
    w: &[f32],
    bias: Option<&[f32]>,
    p: &Params,
    order: Option<Vec<u32>>,
) -> QuantizedTensor {
    let mut m = Matrix::new(w, p.shape[0], p.shape[1]).unwrap();
    if let Some(b) = bias {
        m = m.with_bias(b).unwrap();
    }
    let d = m.layout(p.orientation).vector_len();
    let mut fq =
        FrameQuantizer::new(FrameDescriptor::harmonic(p.n, d).unwrap(), p.k, p.policy).unwrap();
    if let Some(order) = order {
        fq = fq
            .with_order(Permutation::explicit(order, p.n).unwrap())
            .unwrap();
    }
    fq.quantize(&m, p.orientation).unwrap()
}

fn single(
    name: &'static str,
    tensor: &str,
    p: &Params,
    meta: &[(&str, &str)],
    seed: u64,
) -> Fixture {
    let shape = p.shape;
    let w = inputs(shape[0] * shape[1], seed);
    let q = quantize(&w, None, p, None);
    let plan = [TensorPlan::sigma_delta(
        tensor,
        Dtype::F32,
        &[shape[0] as u64, shape[1] as u64],
        false,
    )];
    let meta: Vec<(String, String)> = meta
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut wr = SdqStreamWriter::in_memory(&plan, &meta).unwrap();
    wr.write_quantized(tensor, &q, DeltaPolicy::from_step(p.policy))
        .unwrap();
    let bytes = wr.finish().unwrap().into_inner();
    let (dw, _) = dense_decode(&q);
    Fixture {
        name,
        bytes,
        expected: vec![(
            tensor.to_string(),
            vec![shape[0] as u64, shape[1] as u64],
            dw,
        )],
    }
}

fn k1_tensor_delta() -> Fixture {
    let p = Params {
        shape: [24, 10],
        orientation: Orientation::Columns,
        n: 64,
        k: 1,
        policy: StepPolicy::Tensor,
    };
    single("k1_tensor_delta", "layer.weight", &p, &[], 1)
}

fn k4_vector_delta() -> Fixture {
    let p = Params {
        shape: [16, 12],
        orientation: Orientation::Columns,
        n: 48,
        k: 4,
        policy: StepPolicy::Coefficient,
    };
    single("k4_vector_delta", "w", &p, &[], 2)
}

fn worked_example() -> Fixture {
    let p = Params {
        shape: [2, 3],
        orientation: Orientation::Columns,
        n: 5,
        k: 1,
        policy: StepPolicy::Tensor,
    };
    single("worked_example", "w", &p, &[("example", "sdq-v1")], 3)
}

/// Sigma-delta scheme version 2: `w` F32 [8, 10], rows, harmonic(11, 10), K = 8 (4 bits),
/// coefficient δ; the record ends with the measured ‖W − W̃‖_F and ‖W‖_F (what `sdq pack`
/// writes, `sdq info` shows as rel.err and SNR).
fn sigma_delta_norms() -> Fixture {
    let p = Params {
        shape: [8, 10],
        orientation: Orientation::Rows,
        n: 11,
        k: 8,
        policy: StepPolicy::Coefficient,
    };
    let w = inputs(80, 14);
    let q = quantize(&w, None, &p, None);
    let (dw, _) = dense_decode(&q);
    let e2: f64 = w
        .iter()
        .zip(&dw)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum();
    let w2: f64 = w.iter().map(|a| f64::from(*a).powi(2)).sum();
    let plan = [TensorPlan::sigma_delta_measured(
        "w",
        Dtype::F32,
        &[8, 10],
        false,
    )];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_quantized_measured("w", &q, DeltaPolicy::Coefficient, e2.sqrt(), w2.sqrt())
        .unwrap();
    Fixture {
        name: "sigma_delta_norms",
        bytes: wr.finish().unwrap().into_inner(),
        expected: vec![("w".into(), vec![8, 10], dw)],
    }
}

fn f16_bits(x: f32) -> u16 {
    // Exact for the values used (small multiples of 1/64 within f16's normal range).
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    if x == 0.0 {
        return sign;
    }
    let exp = ((b >> 23) & 0xFF) as i32 - 127 + 15;
    let mant = ((b >> 13) & 0x3FF) as u16;
    sign | ((exp as u16) << 10) | mant
}

fn mixed() -> Fixture {
    let meta: Vec<(String, String)> = [
        ("producer", "sdq fixtures"),
        (
            "note",
            "raw F16/F32/I64, permuted rows, weight + bias, zstd",
        ),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let emb: Vec<f32> = (0..16 * 8).map(|i| ((i % 8) as f32 - 4.0) / 64.0).collect();
    let emb_bytes: Vec<u8> = emb
        .iter()
        .flat_map(|&x| f16_bits(x).to_le_bytes())
        .collect();
    let scale = [0.5f32, -1.25, 3.0];
    let scale_bytes: Vec<u8> = scale.iter().flat_map(|x| x.to_le_bytes()).collect();
    let steps: Vec<i64> = (0..64).map(|i| i * 1000 - 7).collect();
    let steps_bytes: Vec<u8> = steps.iter().flat_map(|x| x.to_le_bytes()).collect();

    let pw = inputs(8 * 6, 4);
    let order: Vec<u32> = (0..20u32).map(|i| (i * 7) % 20).collect();
    let pp = Params {
        shape: [8, 6],
        orientation: Orientation::Rows,
        n: 20,
        k: 2,
        policy: StepPolicy::Vector,
    };
    let pq = quantize(&pw, None, &pp, Some(order));
    let fw = inputs(10 * 7, 5);
    let fb = inputs(10, 6);
    let fp = Params {
        shape: [10, 7],
        orientation: Orientation::Columns,
        n: 24,
        k: 3,
        policy: StepPolicy::Coefficient,
    };
    let fq = quantize(&fw, Some(&fb), &fp, None);
    let plan = [
        TensorPlan::raw("emb", Dtype::F16, &[16, 8]),
        TensorPlan::raw("scale", Dtype::F32, &[3]),
        TensorPlan::sigma_delta("perm.weight", Dtype::F32, &[8, 6], false),
        TensorPlan::raw("steps", Dtype::I64, &[64]),
        TensorPlan::sigma_delta("fc.weight", Dtype::F32, &[10, 7], true),
        TensorPlan::bias_of("fc.bias", Dtype::F32, 10, "fc.weight"),
    ];
    let mut wr = SdqStreamWriter::in_memory(&plan, &meta).unwrap();
    wr.set_zstd(Some(19)).unwrap();
    wr.write_raw("emb", &emb_bytes).unwrap();
    wr.write_raw("scale", &scale_bytes).unwrap();
    wr.write_quantized("perm.weight", &pq, DeltaPolicy::Vector)
        .unwrap();
    wr.write_raw("steps", &steps_bytes).unwrap();
    wr.write_quantized("fc.weight", &fq, DeltaPolicy::Coefficient)
        .unwrap();
    let bytes = wr.finish().unwrap().into_inner();
    let (pdw, _) = dense_decode(&pq);
    let (fdw, fdb) = dense_decode(&fq);
    Fixture {
        name: "mixed",
        bytes,
        expected: vec![
            ("emb".into(), vec![16, 8], emb),
            ("scale".into(), vec![3], scale.to_vec()),
            ("perm.weight".into(), vec![8, 6], pdw),
            (
                "steps".into(),
                vec![64],
                steps.iter().map(|&x| x as f32).collect(),
            ),
            ("fc.weight".into(), vec![10, 7], fdw),
            ("fc.bias".into(), vec![10], fdb),
        ],
    }
}

/// Spectral tetris with second-order ΣΔ: `w` F32 [12, 9], columns, tetris(30, 12) (λ = 2.5, so
/// 2×2 blocks), K = 2, coefficient δ, along the block-swapped ordering (stored permutation).
fn tetris_second_order() -> Fixture {
    let (rows, cols, n) = (12usize, 9usize, 30usize);
    let w = inputs(rows * cols, 7);
    let frame = sdq::frame::TetrisFrame::new(n, rows).unwrap();
    let q = FrameQuantizer::new(
        FrameDescriptor::spectral_tetris(n, rows).unwrap(),
        2,
        StepPolicy::Coefficient,
    )
    .unwrap()
    .with_scheme(sdq::quant::Scheme::SecondOrder)
    .unwrap()
    .with_order(frame.block_swapped_order().unwrap())
    .unwrap()
    .quantize(&Matrix::new(&w, rows, cols).unwrap(), Orientation::Columns)
    .unwrap();
    assert!(!q.order().is_identity());
    let plan = [TensorPlan::sigma_delta(
        "w",
        Dtype::F32,
        &[rows as u64, cols as u64],
        false,
    )];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_quantized("w", &q, DeltaPolicy::Coefficient)
        .unwrap();
    let bytes = wr.finish().unwrap().into_inner();
    let (dw, _) = dense_decode(&q);
    Fixture {
        name: "tetris_second_order",
        bytes,
        expected: vec![("w".to_string(), vec![rows as u64, cols as u64], dw)],
    }
}

/// Spec §8.2's pcm signs, written out again here: splitmix64 from the seed, bit i mod 64 of
/// output ⌊i/64⌋ set means −1.
fn signs(seed: u64, d: usize) -> Vec<f64> {
    let mut state = seed;
    let mut bits = 0u64;
    (0..d)
        .map(|i| {
            if seed == 0 {
                return 1.0;
            }
            if i % 64 == 0 {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                bits = z ^ (z >> 31);
            }
            if (bits >> (i % 64)) & 1 == 1 {
                -1.0
            } else {
                1.0
            }
        })
        .collect()
}

/// The dense pcm decoder of spec §8.2, from the quantizer's codes and steps: w̃ = σ ⊙ ((d/N)·Σ_k
/// q_k·δ_{⌊k/G⌋}·e_{k+1}) with e_n from its closed form (or σ ⊙ (q ⊙ δ) without a frame).
fn dense_pcm(q: &sdq::quant::pcm::PcmTensor) -> (Vec<f32>, Vec<f32>) {
    use sdq::quant::pcm::PcmFrame;
    let l = q.layout;
    let d = l.vector_len();
    let (n, frame) = match q.frame {
        PcmFrame::Identity => (d, None),
        PcmFrame::Frame(f) => (
            f.frame_size(),
            Some(HarmonicFrame::new(f.frame_size(), d).unwrap()),
        ),
    };
    let groups = n.div_ceil(q.group);
    let s = signs(q.sign_seed, d);
    let mut w = vec![0f32; l.rows * l.cols];
    let mut b = vec![0f32; if l.has_bias { l.rows } else { 0 }];
    let mut e = vec![0f64; d];
    for j in 0..l.vector_count() {
        let mut v = vec![0f64; d];
        for k in 0..n {
            let a = f64::from(q.codes[j * n + k]) * f64::from(q.steps[j * groups + k / q.group]);
            match &frame {
                None => v[k] = a,
                Some(f) => {
                    f.row(k + 1, &mut e).unwrap();
                    for (vi, ei) in v.iter_mut().zip(&e) {
                        *vi += a * ei * d as f64 / n as f64;
                    }
                }
            }
        }
        for (i, x) in v.iter().enumerate() {
            let x = (x * s[i]) as f32;
            let (r, c) = match l.orientation {
                Orientation::Columns => (i, j),
                Orientation::Rows => (j, i),
            };
            if c < l.cols {
                w[r * l.cols + c] = x;
            } else {
                b[r] = x;
            }
        }
    }
    (w, b)
}

/// pcm: `a` F32 [6, 12], rows, no frame, rANS codes, one f16 step per row, 4 bits per weight;
/// `h.weight` F32 [5, 10] with its bias `h.bias`, columns, harmonic(6, 5), sign seed 3, groups of
/// 4 coefficients, fixed-width codes, f32 steps, α = 0.2.
fn pcm() -> Fixture {
    use sdq::codes::stream::Coding;
    use sdq::quant::pcm::{quantize, PcmOptions, RateTarget, StepType};
    let aw = inputs(6 * 12, 8);
    let a = quantize(
        &Matrix::new(&aw, 6, 12).unwrap(),
        Orientation::Rows,
        &PcmOptions {
            target: RateTarget::BitsPerWeight(4.0),
            ..PcmOptions::default()
        },
    )
    .unwrap();
    let (hw, hb) = (inputs(50, 9), inputs(5, 10));
    let h = quantize(
        &Matrix::new(&hw, 5, 10).unwrap().with_bias(&hb).unwrap(),
        Orientation::Columns,
        &PcmOptions {
            family: Some(sdq::frame::FrameFamily::Harmonic),
            sign_seed: 3,
            group: 4,
            step_type: StepType::F32,
            coding: Coding::Fixed,
            target: RateTarget::Scale(0.2),
            ..PcmOptions::default()
        },
    )
    .unwrap();
    let plan = [
        TensorPlan::pcm("a", Dtype::F32, &[6, 12], false),
        TensorPlan::pcm("h.weight", Dtype::F32, &[5, 10], true),
        TensorPlan::bias_of("h.bias", Dtype::F32, 5, "h.weight"),
    ];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_pcm("a", &a).unwrap();
    wr.write_pcm("h.weight", &h).unwrap();
    let bytes = wr.finish().unwrap().into_inner();
    let (adw, _) = dense_pcm(&a);
    let (hdw, hdb) = dense_pcm(&h);
    Fixture {
        name: "pcm",
        bytes,
        expected: vec![
            ("a".into(), vec![6, 12], adw),
            ("h.weight".into(), vec![5, 10], hdw),
            ("h.bias".into(), vec![5], hdb),
        ],
    }
}

/// pcm scheme version 2: `c` F32 [16, 64], rows, no frame, rANS codes, quantized with error
/// feedback through the Gram matrix of 200 drawn inputs at 6 bits per weight; its record holds
/// each row's measured weight and relative output errors.
fn pcm_calibrated() -> Fixture {
    use sdq::quant::gram::Gram;
    use sdq::quant::pcm::RateTarget;
    use sdq::quant::pcm::{quantize_calibrated, ErrorRecord, FeedbackOptions, PcmOptions};
    let x = inputs(200 * 64, 11);
    let mut h = vec![0.0f64; 64 * 64];
    for s in x.chunks(64) {
        for i in 0..64 {
            for j in 0..64 {
                h[i * 64 + j] += f64::from(s[i]) * f64::from(s[j]) / 200.0;
            }
        }
    }
    let cw = inputs(16 * 64, 12);
    let c = quantize_calibrated(
        &Matrix::new(&cw, 16, 64).unwrap(),
        Orientation::Rows,
        &PcmOptions {
            target: RateTarget::BitsPerWeight(6.0),
            ..PcmOptions::default()
        },
        &Gram::full(64, h).unwrap(),
        &FeedbackOptions::default(),
    )
    .unwrap();
    let plan = [TensorPlan::pcm_recording(
        "c",
        Dtype::F32,
        &[16, 64],
        false,
        ErrorRecord::WeightAndOutput,
    )];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_pcm("c", &c).unwrap();
    let bytes = wr.finish().unwrap().into_inner();
    let (cdw, _) = dense_pcm(&c);
    Fixture {
        name: "pcm_calibrated",
        bytes,
        expected: vec![("c".into(), vec![16, 64], cdw)],
    }
}

/// pcm scheme version 2 with error kind 1: `l` F32 [12, 40], rows, no frame, fixed-width codes
/// with least-squares steps (clipped) at 6 bits per weight; its record holds each row's
/// measured weight error.
fn pcm_least_squares() -> Fixture {
    use sdq::codes::stream::Coding;
    use sdq::quant::pcm::{quantize, ErrorRecord, PcmOptions, RateTarget, StepPolicy};
    let w: Vec<f32> = inputs(12 * 40, 13)
        .iter()
        .enumerate()
        .map(|(i, &x)| if i % 17 == 0 { 8.0 * x } else { x })
        .collect();
    let l = quantize(
        &Matrix::new(&w, 12, 40).unwrap(),
        Orientation::Rows,
        &PcmOptions {
            coding: Coding::Fixed,
            policy: StepPolicy::LeastSquares,
            target: RateTarget::BitsPerWeight(6.0),
            ..PcmOptions::default()
        },
    )
    .unwrap();
    let plan = [TensorPlan::pcm_recording(
        "l",
        Dtype::F32,
        &[12, 40],
        false,
        ErrorRecord::Weight,
    )];
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
    wr.write_pcm("l", &l).unwrap();
    let bytes = wr.finish().unwrap().into_inner();
    let (ldw, _) = dense_pcm(&l);
    Fixture {
        name: "pcm_least_squares",
        bytes,
        expected: vec![("l".into(), vec![12, 40], ldw)],
    }
}

fn all() -> Vec<Fixture> {
    let mut v = vec![
        k1_tensor_delta(),
        k4_vector_delta(),
        worked_example(),
        tetris_second_order(),
        pcm(),
        pcm_calibrated(),
        pcm_least_squares(),
        sigma_delta_norms(),
    ];
    // `mixed` has zstd sections: it is built and decoded only with the zstd feature.
    if cfg!(feature = "zstd") {
        v.insert(2, mixed());
    }
    v
}

fn expected_bytes(f: &Fixture) -> Vec<u8> {
    f.expected
        .iter()
        .flat_map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()))
        .collect()
}

fn regenerate() -> bool {
    std::env::var_os("SDQ_REGENERATE_FIXTURES").is_some_and(|v| v == "1")
}

#[test]
fn fixtures_rebuild_byte_for_byte() {
    for f in all() {
        let sdq_path = dir().join(format!("{}.sdq", f.name));
        let bin_path = dir().join(format!("{}.expected.bin", f.name));
        if regenerate() {
            std::fs::create_dir_all(dir()).unwrap();
            std::fs::write(&sdq_path, &f.bytes).unwrap();
            std::fs::write(&bin_path, expected_bytes(&f)).unwrap();
            if f.name == "worked_example" {
                std::fs::write(
                    dir().join("worked_example.annotated.txt"),
                    annotate(&f.bytes),
                )
                .unwrap();
            }
            continue;
        }
        let committed = std::fs::read(&sdq_path).unwrap();
        assert!(
            committed == f.bytes,
            "{} differs from the bytes its inputs produce now (a format or quantizer change, or \
             floating-point differences on this platform); regenerate with \
             SDQ_REGENERATE_FIXTURES=1 if the change is intended",
            sdq_path.display()
        );
        assert_eq!(std::fs::read(&bin_path).unwrap(), expected_bytes(&f));
    }
}

#[test]
fn fixtures_decode_to_expected_output() {
    for f in all() {
        let file = SdqFile::open(dir().join(format!("{}.sdq", f.name))).unwrap();
        file.verify_all().unwrap();
        let bin = std::fs::read(dir().join(format!("{}.expected.bin", f.name))).unwrap();
        let mut floats = bin
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
        assert_eq!(file.tensors().len(), f.expected.len());
        for (t, (name, shape, _)) in file.tensors().iter().zip(&f.expected) {
            assert_eq!(&t.name, name);
            assert_eq!(&t.shape, shape);
            let want: Vec<f32> = floats.by_ref().take(t.elements as usize).collect();
            let got = file.decode(name).unwrap();
            let scale = want
                .iter()
                .fold(0f32, |a, x| a.max(x.abs()))
                .max(f32::MIN_POSITIVE);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= TOLERANCE * scale,
                    "{}: {name}[{i}] decodes to {g}, expected {w}",
                    f.name
                );
            }
        }
        assert!(floats.next().is_none());
    }
}

#[cfg(not(feature = "zstd"))]
#[test]
fn mixed_fixture_needs_zstd() {
    use sdq::{Error, FormatError};
    let file = SdqFile::open(dir().join("mixed.sdq")).unwrap();
    let errors: Vec<Error> = file
        .tensors()
        .iter()
        .filter_map(|t| file.decode(&t.name).err())
        .collect();
    assert!(!errors.is_empty());
    for e in errors {
        assert!(
            matches!(e, Error::Format(FormatError::UnsupportedCompression { .. })),
            "{e}"
        );
    }
}

#[test]
fn mixed_fixture_has_what_it_claims() {
    use sdq::format::{Compression, Encoding};
    let file = SdqFile::open(dir().join("mixed.sdq")).unwrap();
    assert_eq!(file.metadata().len(), 2);
    let mut zstd = 0;
    let mut permuted = false;
    for t in file.tensors() {
        zstd += t
            .sections()
            .iter()
            .filter(|(_, s)| s.compression == Compression::Zstd)
            .count();
        if let Encoding::SigmaDelta(q) = &t.encoding {
            permuted |= q.permutation.is_some();
        }
    }
    assert!(zstd >= 1, "no zstd section");
    assert!(permuted, "no stored permutation");
    assert!(matches!(
        file.tensor("fc.bias").unwrap().encoding,
        Encoding::BiasOf { .. }
    ));
    let k4 = SdqFile::open(dir().join("k4_vector_delta.sdq")).unwrap();
    let Encoding::SigmaDelta(q) = &k4.tensor("w").unwrap().encoding else {
        panic!()
    };
    assert!(q.deltas.is_some() && q.k == 4);
    let _ = Deltas::Tensor(0.0);
}

/// Writes one field per line of an annotated hex dump.
struct Ann<'a> {
    b: &'a [u8],
    at: usize,
    out: String,
}

impl Ann<'_> {
    fn u8(&self) -> u8 {
        self.b[self.at]
    }
    fn u32(&self) -> u32 {
        u32::from_le_bytes(self.b[self.at..self.at + 4].try_into().unwrap())
    }
    fn u64(&self) -> u64 {
        u64::from_le_bytes(self.b[self.at..self.at + 8].try_into().unwrap())
    }
    fn f64(&self) -> f64 {
        f64::from_le_bytes(self.b[self.at..self.at + 8].try_into().unwrap())
    }
    fn field(&mut self, len: usize, what: String) {
        let hex: Vec<String> = self.b[self.at..self.at + len]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        // Long fields wrap at 16 bytes per line.
        for (i, chunk) in hex.chunks(16).enumerate() {
            let label = if i == 0 {
                what.as_str()
            } else {
                "  (continued)"
            };
            self.out.push_str(&format!(
                "{:04x}: {:<47} ; {}\n",
                self.at + 16 * i,
                chunk.join(" "),
                label
            ));
        }
        self.at += len;
    }
    fn string(&mut self, what: &str) {
        let n = self.u32() as usize;
        self.field(4, format!("{what} length = {n}"));
        let s = String::from_utf8_lossy(&self.b[self.at..self.at + n]).into_owned();
        self.field(n, format!("{what} = {s:?}"));
    }
}

/// The annotated hex dump of a file whose tensors are all sigma-delta (spec §11), one line per
/// field.
fn annotate(b: &[u8]) -> String {
    let mut a = Ann {
        b,
        at: 0,
        out: String::new(),
    };
    assert_eq!(&b[..8], &MAGIC);
    a.field(8, "magic: 89 'S' 'D' 'Q' CR LF 1A LF".into());
    let v = a.u8();
    a.field(2, format!("major = {v}"));
    let v = a.u8();
    a.field(2, format!("minor = {v}"));
    let v = a.u32();
    a.field(4, format!("flags = {v}"));
    let header_len = a.u64() as usize;
    a.field(8, format!("header_len = {header_len}"));
    let v = a.u32();
    a.field(4, format!("header_crc32 = {v:#010x}"));
    let v = a.u64();
    a.field(8, format!("file_len = {v}"));
    a.field(24, "reserved (zero)".into());
    let v = a.u32();
    a.field(
        4,
        format!("preamble_crc32 = {v:#010x} (CRC-32 of bytes 0..60)"),
    );
    let tensors = a.u32();
    a.field(4, format!("header: tensor_count = {tensors}"));
    let meta = a.u32();
    a.field(4, format!("metadata_count = {meta}"));
    for _ in 0..meta {
        a.string("metadata key");
        a.string("metadata value");
    }
    for _ in 0..tensors {
        a.string("tensor name");
        let v = a.u8();
        a.field(1, format!("dtype = {v} (F32)"));
        let rank = a.u8() as usize;
        a.field(1, format!("rank = {rank}"));
        for i in 0..rank {
            let v = a.u64();
            a.field(8, format!("dim[{i}] = {v}"));
        }
        let fields: [(usize, &str, &str); 11] = [
            (1, "encoding", " (sigma-delta)"),
            (1, "scheme", " (first-order sigma-delta)"),
            (1, "scheme_version", ""),
            (1, "frame family", " (harmonic)"),
            (4, "N", ""),
            (4, "d", ""),
            (1, "orientation", " (columns)"),
            (1, "has_bias", ""),
            (4, "K", ""),
            (1, "bits", ""),
            (1, "delta_mode", " (one delta per tensor)"),
        ];
        for (len, name, note) in fields {
            let v = if len == 1 {
                u64::from(a.u8())
            } else {
                u64::from(a.u32())
            };
            a.field(len, format!("{name} = {v}{note}"));
        }
        let v = a.u8();
        a.field(1, format!("delta_policy = {v} (tensor)"));
        for name in ["delta", "sigma", "max_bound"] {
            let v = a.f64();
            a.field(8, format!("{name} = {v:e} (f64)"));
        }
        let v = a.u64();
        a.field(8, format!("uncertified = {v}"));
        for slot in ["codes", "deltas", "permutation"] {
            let absent = b[a.at..a.at + 29].iter().all(|&x| x == 0);
            let tag = if absent {
                " (slot absent: all zero)"
            } else {
                ""
            };
            let v = a.u64();
            a.field(8, format!("{slot}.offset = {v}{tag}"));
            let v = a.u64();
            a.field(8, format!("{slot}.stored_len = {v}"));
            let v = a.u64();
            a.field(8, format!("{slot}.decoded_len = {v}"));
            let v = a.u8();
            a.field(1, format!("{slot}.compression = {v}"));
            let v = a.u32();
            a.field(4, format!("{slot}.crc32 = {v:#010x}"));
        }
    }
    assert_eq!(a.at, 64 + header_len);
    let first = a.at.div_ceil(64) * 64;
    if first > a.at && first < b.len() {
        a.field(first - a.at, "padding to a multiple of 64 (zero)".into());
    }
    let rest = b.len() - a.at;
    let bits: Vec<String> = b[a.at..].iter().map(|x| format!("{x:08b}")).collect();
    a.field(
        rest,
        format!(
            "codes section: bytes in binary (bit 7..0) {}",
            bits.join(" ")
        ),
    );
    a.out
}

/// The bytes of the hex block between the worked-example markers of spec/sdq-v1.md.
fn spec_hex() -> Vec<u8> {
    let spec =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/sdq-v1.md"))
            .unwrap();
    let start = spec
        .find("<!-- BEGIN WORKED EXAMPLE HEX -->")
        .expect("no BEGIN marker in the spec");
    let end = spec
        .find("<!-- END WORKED EXAMPLE HEX -->")
        .expect("no END marker in the spec");
    let mut bytes = Vec::new();
    for line in spec[start..end].lines() {
        let data = line.split(';').next().unwrap_or("");
        let mut tokens = data.split_whitespace();
        let Some(first) = tokens.next() else { continue };
        let Some(offset) = first.strip_suffix(':') else {
            continue;
        };
        let offset = usize::from_str_radix(offset, 16).unwrap();
        assert_eq!(
            offset,
            bytes.len(),
            "offset column out of step in the spec at {line:?}"
        );
        for t in tokens {
            bytes.push(u8::from_str_radix(t, 16).unwrap());
        }
    }
    bytes
}

#[test]
fn spec_worked_example_is_the_fixture() {
    let file = std::fs::read(dir().join("worked_example.sdq")).unwrap();
    assert_eq!(
        spec_hex(),
        file,
        "spec/sdq-v1.md's hex dump differs from fixtures/worked_example.sdq"
    );
    let annotated = std::fs::read_to_string(dir().join("worked_example.annotated.txt")).unwrap();
    assert_eq!(annotated, annotate(&file));
}
