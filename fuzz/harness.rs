//! The checks behind every fuzz target, shared by the libFuzzer binaries (fuzz/fuzz_targets/)
//! and by `cargo test` (tests/fuzz_regressions.rs replays tests/regressions/<target>/ through
//! these same functions). Each function takes arbitrary bytes and panics only on a real bug.
//!
//! Depends on nothing but `sdq` (features `bridge`/`cli` and `zstd`) and std.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sdq::bridge::pack::{self, DeltaChoice, FrameRule, PackOptions};
use sdq::bridge::safetensors::Checkpoint;
use sdq::bridge::{unpack, verify, NoProgress};
use sdq::format::{
    header, DeltaPolicy, Dtype, Encoding, SdqFile, SdqStreamWriter, TensorInfo, TensorPlan,
};
use sdq::frame::OrderingOptions;
use sdq::quant::Scheme;
use sdq::{Error, FrameDescriptor, FrameQuantizer, Matrix, Orientation, Permutation, StepPolicy};

// ---------------------------------------------------------------------------------------------
// open

/// Arbitrary bytes → the pure header parser and `SdqFile::from_bytes`: no panic, the two agree,
/// and anything that opens can be listed and reported.
pub fn open(data: &[u8]) {
    let parsed = header::parse(data);
    let opened = SdqFile::from_bytes(data.to_vec());
    assert_eq!(
        parsed.is_ok(),
        opened.is_ok(),
        "parse and from_bytes disagree"
    );
    if let Ok(f) = opened {
        let r = f.report();
        assert_eq!(r.total_bytes, data.len() as u64);
        for t in f.tensors() {
            assert!(f.tensor(&t.name).is_ok(), "listed tensor not found by name");
        }
        let _ = format!("{f:?}");
    }
    if let Err(e) = parsed {
        // Messages are built from hostile bytes: they must format.
        let _ = e.to_string();
    }
}

// ---------------------------------------------------------------------------------------------
// decode

/// Largest tensor decoded (elements); larger ones are only verified.
pub const DECODE_MAX_ELEMENTS: u64 = 1 << 22;
/// Largest total work (≈ codes synthesised) spent decoding one input.
pub const DECODE_MAX_WORK: u64 = 1 << 24;

fn decode_work(f: &SdqFile, t: &TensorInfo) -> u64 {
    let enc = match &t.encoding {
        Encoding::BiasOf { weight } => match f.tensors().get(*weight) {
            Some(w) => &w.encoding,
            None => return t.elements,
        },
        e => e,
    };
    let (m, n) = match enc {
        Encoding::SigmaDelta(q) => (q.vector_count(), q.n()),
        Encoding::Pcm(q) => (q.vector_count(), q.n()),
        _ => return t.elements,
    };
    let log = 64 - u64::from(n.leading_zeros());
    m.saturating_mul(n.saturating_mul(log)).max(t.elements)
}

fn decode_all(mut f: SdqFile, checked: bool) {
    f.set_verify_checksums(checked);
    let verified = f.verify_all().is_ok();
    let mut budget = DECODE_MAX_WORK;
    let names: Vec<(String, u64, u64)> = f
        .tensors()
        .iter()
        .map(|t| (t.name.clone(), t.elements, decode_work(&f, t)))
        .collect();
    for (name, elements, cost) in names {
        let _ = f.verify(&name);
        // The output is allocated only within the budget, checked before allocating.
        if elements > DECODE_MAX_ELEMENTS || cost > budget {
            continue;
        }
        budget -= cost;
        let mut out = vec![0f32; elements as usize];
        let r = f.decode_into(&name, &mut out);
        if checked && verified {
            r.as_ref().expect("a file that verifies decodes");
        }
        if r.is_ok() {
            check_matvec(&f, &name, &out, checked && verified);
        }
        if elements > 0 {
            let mut short = vec![0f32; elements as usize - 1];
            assert!(
                f.decode_into(&name, &mut short).is_err(),
                "short buffer accepted"
            );
        }
    }
}

/// y = W̃·x from the codes (`SdqFile::matvec`) against decode-then-multiply, for a sigma-delta
/// weight that decoded to `w` (rows × cols).
fn check_matvec(f: &SdqFile, name: &str, w: &[f32], must_work: bool) {
    let Ok(t) = f.tensor(name) else { return };
    let Encoding::SigmaDelta(q) = &t.encoding else {
        return;
    };
    let (rows, cols) = (q.rows as usize, q.cols as usize);
    if rows.checked_mul(cols) != Some(w.len()) {
        return;
    }
    let x: Vec<f32> = (0..cols).map(|j| ((j % 7) as f32 - 3.0) / 4.0).collect();
    // Both paths evaluate the same synthesis in f64 in different orders: they differ by
    // rounding at the scale of the synthesis' terms, |entry| ≤ d·δ·(K − ½)·√(2/d), not of its
    // (possibly cancelling) result. That scale is known for a tensor δ; with per-vector δ
    // (not exposed by the reader) only "runs where decode runs" is checked.
    let x_abs: f64 = x.iter().map(|v| f64::from(v.abs())).sum();
    let floor = match q.delta {
        sdq::format::DeltaMode::Tensor(delta) => {
            let term = q.d() as f64 * delta * (f64::from(q.k) - 0.5) * 2f64.sqrt();
            Some(1e-12 * term * x_abs + 1e-30)
        }
        _ => None,
    };
    let mut y = vec![0f32; rows];
    let r = f.matvec(name, &x, &mut y);
    if must_work {
        r.as_ref().expect("matvec works where decode does");
    }
    let Some(floor) = floor else { return };
    if r.is_err() || !floor.is_finite() || !w.iter().all(|v| v.is_finite()) {
        return;
    }
    for (i, yi) in y.iter().enumerate() {
        let row = &w[i * cols..(i + 1) * cols];
        let want: f64 = row
            .iter()
            .zip(&x)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum();
        let scale: f64 = row
            .iter()
            .zip(&x)
            .map(|(a, b)| (f64::from(*a) * f64::from(*b)).abs())
            .sum();
        if !want.is_finite() || !scale.is_finite() || !yi.is_finite() {
            continue;
        }
        assert!(
            (f64::from(*yi) - want).abs() <= 1e-4 * scale + floor,
            "matvec row {i}: {yi} vs decode-then-multiply {want}"
        );
    }
}

/// Arbitrary bytes → open, then verify and decode every tensor within the budget, once with
/// CRC checks and once without (so that damaged section contents reach the decoder).
pub fn decode(data: &[u8]) {
    if let Ok(f) = SdqFile::from_bytes(data.to_vec()) {
        decode_all(f, true);
    }
    if let Ok(f) = SdqFile::from_bytes(data.to_vec()) {
        decode_all(f, false);
    }
}

// ---------------------------------------------------------------------------------------------
// roundtrip

/// Draws values from the input bytes (zeros once they run out), like `arbitrary::Unstructured`
/// but without the dependency, so that `cargo test` can replay the same inputs.
struct Draw<'a>(&'a [u8]);

impl Draw<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Uniform-ish in lo..=hi.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi - lo) + 1;
        let x = if span <= 256 {
            u64::from(self.u8())
        } else {
            u64::from(self.u32())
        };
        lo + (x % span) as u32
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn value(&mut self) -> f32 {
        // Mostly ordinary magnitudes, sometimes arbitrary bit patterns (huge, tiny, subnormal).
        let tag = self.u8();
        if tag < 32 {
            let x = f32::from_bits(self.u32());
            if x.is_finite() {
                x
            } else {
                0.0
            }
        } else {
            f32::from(i16::from_le_bytes([self.u8(), self.u8()])) / 4096.0
        }
    }
}

/// Small tensors and options from the bytes → quantize → write in memory → open → verify →
/// decode. The file decodes to exactly the quantizer's reconstruction; every certified vector
/// is within its Theorem 3.1 bound, in f64 within bound·(1 + 1e-6), and as decoded (f32) within
/// that plus the f32 rounding of the output (‖w̃‖·2^-24 + √d·the smallest subnormal), which the
/// bound — a statement about the real-valued w̃ — does not cover.
pub fn roundtrip(data: &[u8]) {
    let mut u = Draw(data);
    let rows = u.range(1, 24) as usize;
    let cols = u.range(1, 12) as usize;
    let orientation = if u.bool() {
        Orientation::Rows
    } else {
        Orientation::Columns
    };
    let has_bias = u.bool();
    let d = match orientation {
        Orientation::Columns => rows,
        Orientation::Rows => cols + usize::from(has_bias),
    };
    let n = d + u.range(1, 200) as usize;
    let k = match u.u8() % 4 {
        0 => 1,
        1 => u.range(1, 8),
        2 => u.range(1, 300),
        _ => u.range(1, 1 << 15),
    };
    let policy = match u.u8() % 4 {
        0 => StepPolicy::Tensor,
        1 => StepPolicy::Vector,
        2 => StepPolicy::Coefficient,
        _ => StepPolicy::Explicit(f64::from(u.range(1, 1000)) / 256.0),
    };
    let order = if u.u8() % 3 == 0 {
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = u.range(0, i as u32) as usize;
            p.swap(i, j);
        }
        Some(p)
    } else {
        None
    };
    let zstd = if u.bool() {
        Some(u.range(1, 5) as i32)
    } else {
        None
    };
    let dtype = [Dtype::F32, Dtype::F16, Dtype::BF16, Dtype::F64][usize::from(u.u8() % 4)];
    let w: Vec<f32> = (0..rows * cols).map(|_| u.value()).collect();
    let bias: Option<Vec<f32>> = has_bias.then(|| (0..rows).map(|_| u.value()).collect());
    // Drawn last, so inputs written before second order existed keep their meaning.
    let scheme = if k >= 2 && u.bool() {
        Scheme::SecondOrder
    } else {
        Scheme::FirstOrder
    };
    // Then the frame family: a spectral tetris frame of N + d ≥ 2d + 1 vectors, along its
    // natural or its computed ordering (the drawn shuffle is for harmonic frames).
    let tetris = u.bool();
    let reorder = u.bool();

    let mut m = Matrix::new(&w, rows, cols).expect("shape is valid");
    if let Some(b) = &bias {
        m = m.with_bias(b).expect("bias length is rows");
    }
    // Then whether the tensor is pcm instead (encoding 3), with its own draws.
    if u.bool() {
        return roundtrip_pcm(&mut u, &m, dtype, zstd, tetris, &w, bias.as_deref());
    }
    let (descriptor, n) = if tetris {
        (
            FrameDescriptor::spectral_tetris(n + d, d).expect("N + d ≥ 2d"),
            n + d,
        )
    } else {
        (FrameDescriptor::harmonic(n, d).expect("N > d"), n)
    };
    let mut fq = FrameQuantizer::new(descriptor, k, policy)
        .and_then(|fq| fq.with_scheme(scheme))
        .expect("valid quantizer");
    match order {
        Some(o) if !tetris => {
            fq = fq
                .with_order(Permutation::explicit(o, n).expect("a shuffle is a permutation"))
                .expect("order fits the frame");
        }
        _ if tetris && reorder => {
            let report = fq
                .frame()
                .order(&OrderingOptions::default())
                .expect("a tetris frame can be ordered");
            assert!(
                report.sigma <= report.sigma_identity,
                "ordering made sigma worse"
            );
            fq = fq
                .with_order(report.permutation)
                .expect("its own ordering fits the frame");
        }
        _ => {}
    }
    let q = match fq.quantize(&m, orientation) {
        Ok(q) => q,
        // Weights whose rebuilt values could pass the f32 range are refused (‖w̃‖ ≤ √d·(K − ½)·δ
        // must stay below f32::MAX); only then, and only with weights that large, may it fail.
        Err(Error::Data(msg)) if msg.starts_with("weights too large") => {
            let big = w
                .iter()
                .chain(bias.iter().flatten())
                .fold(0.0f32, |a, x| a.max(x.abs()));
            assert!(
                big > 1e30 || matches!(policy, StepPolicy::Explicit(_)),
                "refused ordinary weights (largest |w| = {big}): {msg}"
            );
            return;
        }
        Err(e) => panic!("finite weights quantize: {e:?}"),
    };

    // A version-2 record with the measured norms (what `sdq pack` writes) or a version-1 one:
    // drawn last, and never from an exhausted input, so earlier inputs keep their meaning.
    let errors = q.measured_errors(&m).expect("errors");
    let norms = (u.u8() % 2 == 1).then(|| {
        let w2: f64 = (0..errors.len())
            .map(|j| {
                let mut v = vec![0.0f64; d];
                m.load_vector(orientation, j, &mut v).expect("vector");
                v.iter().map(|x| x * x).sum::<f64>()
            })
            .sum();
        (errors.iter().map(|e| e * e).sum::<f64>().sqrt(), w2.sqrt())
    });
    let shape = [rows as u64, cols as u64];
    let mut plan = vec![match norms {
        Some(_) => TensorPlan::sigma_delta_measured("w", dtype, &shape, has_bias),
        None => TensorPlan::sigma_delta("w", dtype, &shape, has_bias),
    }];
    if has_bias {
        plan.push(TensorPlan::bias_of("b", dtype, rows as u64, "w"));
    }
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).expect("valid plan");
    wr.set_zstd(zstd).expect("zstd is built in");
    let tag = DeltaPolicy::from_step(policy);
    match norms {
        Some((e, n)) => wr.write_quantized_measured("w", &q, tag, e, n),
        None => wr.write_quantized("w", &q, tag),
    }
    .expect("write");
    let bytes = wr.finish().expect("finish").into_inner();

    let f = SdqFile::from_bytes(bytes).expect("a written file opens");
    f.verify_all().expect("a written file verifies");
    match &f.tensors()[0].encoding {
        sdq::format::Encoding::SigmaDelta(s) => assert_eq!(s.norms, norms, "norms read back"),
        e => panic!("not sigma-delta: {e:?}"),
    }
    let got_w = f.decode("w").expect("decode w");
    let got_b = has_bias.then(|| f.decode("b").expect("decode b"));
    let mut want_w = vec![0f32; rows * cols];
    let mut want_b = vec![0f32; rows];
    q.reconstruct_into(Some(&mut want_w), has_bias.then_some(&mut want_b[..]))
        .expect("reconstruct");
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    assert!(
        same(&got_w, &want_w),
        "file decode differs from the quantizer"
    );
    if let Some(gb) = &got_b {
        assert!(same(gb, &want_b), "bias decode differs from the quantizer");
    }

    let at = |i: usize, col: usize, src: &[f32], b: Option<&[f32]>| -> f64 {
        if col < cols {
            f64::from(src[i * cols + col])
        } else {
            f64::from(b.map_or(0.0, |b| b[i]))
        }
    };
    for (j, err) in errors.iter().enumerate() {
        let Some(bound) = q.bound(j) else { continue };
        assert!(
            *err <= bound * (1.0 + 1e-6),
            "vector {j}: f64 error {err} > bound {bound}"
        );
        let (mut e2, mut norm2) = (0.0f64, 0.0f64);
        for i in 0..d {
            let (r, c) = match orientation {
                Orientation::Columns => (i, j),
                Orientation::Rows => (j, i),
            };
            let orig = at(r, c, &w, bias.as_deref());
            let dec = at(r, c, &got_w, got_b.as_deref());
            e2 += (orig - dec) * (orig - dec);
            norm2 += dec * dec;
        }
        let allowance = norm2.sqrt() * f64::from(f32::EPSILON) / 2.0
            + (d as f64).sqrt() * f64::from(f32::from_bits(1));
        assert!(
            e2.sqrt() <= bound * (1.0 + 1e-6) + allowance,
            "vector {j}: decoded error {} > bound {bound} + f32 rounding {allowance}",
            e2.sqrt()
        );
    }
}

/// The pcm half of `roundtrip`: quantize with drawn options, write, read back; the file must
/// verify, decode to what the quantizer measured (its stored error norm), and keep every vector
/// within its certified bound √(d/N)·½·‖δ‖ (plus f32 rounding), or within its recorded error
/// (calibrated codes, least-squares steps).
fn roundtrip_pcm(
    u: &mut Draw,
    m: &Matrix,
    dtype: Dtype,
    zstd: Option<i32>,
    tetris: bool,
    w: &[f32],
    bias: Option<&[f32]>,
) {
    use sdq::codes::stream::Coding;
    use sdq::frame::FrameFamily;
    use sdq::quant::pcm::{
        self, PcmOptions, PcmSynthesis, RateTarget, StepPolicy, StepRule, StepType,
    };
    let orientation = if u.bool() {
        Orientation::Rows
    } else {
        Orientation::Columns
    };
    let layout = m.layout(orientation);
    let (d, count) = (layout.vector_len(), layout.vector_count());
    let family = match u.u8() % 3 {
        0 => None,
        _ if tetris => Some(FrameFamily::SpectralTetris),
        _ => Some(FrameFamily::Harmonic),
    };
    let opts = PcmOptions {
        family,
        frame_size: None,
        sign_seed: if u.bool() { u64::from(u.u32()) } else { 0 },
        group: if u.bool() { 0 } else { u.range(1, 40) as usize },
        rule: if u.bool() {
            StepRule::Group
        } else {
            StepRule::Tensor
        },
        policy: StepPolicy::Certified,
        step_type: if u.bool() {
            StepType::F16
        } else {
            StepType::F32
        },
        coding: if u.bool() {
            Coding::Rans
        } else {
            Coding::Fixed
        },
        target: match u.u8() % 3 {
            0 => RateTarget::BitsPerWeight(f64::from(u.range(1, 160)) / 10.0),
            1 => RateTarget::RelativeError(f64::from(u.range(1, 1000)) / 1000.0),
            _ => RateTarget::Scale(f64::from(u.range(1, 4000)) / 1000.0),
        },
        record_bytes: 0,
        // Every rounding and kernel windows of 2 to 6 coefficients (dividing d or not), from
        // the shape (no input drawn: earlier inputs keep their meaning).
        rounding: match count % 3 {
            0 => pcm::Rounding::ZeroSum,
            1 => pcm::Rounding::ZeroSumRows,
            _ => pcm::Rounding::Nearest,
        },
        window: 2 + (count / 3) % 5,
    };
    // Data-aware codes (pcm scheme version 2, recorded errors) where they apply: rows, no frame,
    // not an error target; the Gram matrix drawn as a diagonal plus one drawn direction.
    let calibrated = orientation == Orientation::Rows
        && family.is_none()
        && !matches!(opts.target, RateTarget::RelativeError(_))
        && u.u8() % 3 == 0;
    let mut least_squares = false;
    let result = if calibrated {
        use sdq::quant::gram::{FeedbackOrder, Gram};
        let v: Vec<f64> = (0..d)
            .map(|_| f64::from(u.range(0, 200)) / 100.0 - 1.0)
            .collect();
        let diag: Vec<f64> = (0..d).map(|_| f64::from(u.range(0, 100)) / 10.0).collect();
        let mut h = vec![0.0f64; d * d];
        for i in 0..d {
            for j in 0..d {
                h[i * d + j] = v[i] * v[j] + if i == j { diag[i] } else { 0.0 };
            }
        }
        let gram = Gram::full(d, h).expect("a drawn Gram matrix is valid");
        let fb = pcm::FeedbackOptions {
            damping: f64::from(u.range(1, 1000)) / 1000.0,
            order: if u.bool() {
                FeedbackOrder::Natural
            } else {
                FeedbackOrder::DecreasingDiagonal
            },
        };
        pcm::quantize_calibrated(m, orientation, &opts, &gram, &fb)
    } else {
        // Least-squares steps (fixed codes, clipped; recorded errors) where they apply: drawn
        // last, and never from an exhausted input, so earlier inputs keep their meaning.
        least_squares = opts.coding == Coding::Fixed
            && !matches!(opts.target, RateTarget::Scale(_))
            && u.u8() % 2 == 1;
        let policy = if least_squares {
            StepPolicy::LeastSquares
        } else {
            StepPolicy::Certified
        };
        pcm::quantize(m, orientation, &PcmOptions { policy, ..opts })
    };
    let q = match result {
        Ok(q) => q,
        Err(Error::Data(msg)) if msg.starts_with("weights too large") => {
            let big = w
                .iter()
                .chain(bias.iter().copied().flatten())
                .fold(0.0f32, |a, x| a.max(x.abs()));
            assert!(
                big > 1e30,
                "refused ordinary weights (largest |w| = {big}): {msg}"
            );
            return;
        }
        Err(e) => panic!(
            "finite weights quantize with pcm: {e:?} ({opts:?}, least squares: {least_squares})"
        ),
    };
    let (rows, cols) = (layout.rows, layout.cols);
    let shape = [rows as u64, cols as u64];
    let has_bias = bias.is_some();
    let mut plan = vec![TensorPlan::pcm_recording(
        "w", dtype, &shape, has_bias, q.record,
    )];
    if has_bias {
        plan.push(TensorPlan::bias_of("b", dtype, rows as u64, "w"));
    }
    let mut wr = SdqStreamWriter::in_memory(&plan, &[]).expect("valid plan");
    wr.set_zstd(zstd).expect("zstd is built in");
    wr.write_pcm("w", &q).expect("write");
    let f = SdqFile::from_bytes(wr.finish().expect("finish").into_inner()).expect("opens");
    f.verify_all().expect("a written pcm file verifies");
    let got_w = f.decode("w").expect("decode w");
    let got_b = has_bias.then(|| f.decode("b").expect("decode b"));
    let mut mt = Matrix::new(&got_w, rows, cols).expect("shape");
    if let Some(gb) = &got_b {
        mt = mt.with_bias(gb).expect("bias");
    }
    let synth = PcmSynthesis::new(q.frame, d, q.sign_seed, q.group).expect("synthesis");
    let groups = synth.groups();
    let steps = f.pcm_steps("w").expect("steps");
    assert_eq!(steps.len(), count * groups);
    let recorded = f.pcm_errors("w").expect("recorded errors");
    assert_eq!(recorded.is_some(), calibrated || least_squares);
    let (mut wv, mut tv) = (vec![0.0f64; d], vec![0.0f64; d]);
    let mut e2 = 0.0;
    for j in 0..count {
        m.load_vector(orientation, j, &mut wv).expect("load");
        mt.load_vector(orientation, j, &mut tv)
            .expect("decoded values are finite");
        let err2: f64 = wv.iter().zip(&tv).map(|(a, b)| (a - b) * (a - b)).sum();
        let dn: f64 = tv.iter().map(|x| x * x).sum::<f64>().sqrt();
        let sj: Vec<f64> = steps[j * groups..(j + 1) * groups]
            .iter()
            .map(|&s| f64::from(s))
            .collect();
        let bound = match &recorded {
            Some(r) => f64::from(r.weight[j]),
            None => synth.bound(&sj),
        };
        let allowance =
            dn * f64::from(f32::EPSILON) + (d as f64).sqrt() * f64::from(f32::from_bits(1));
        assert!(
            err2.sqrt() <= bound * (1.0 + 1e-9) + allowance,
            "pcm vector {j}: error {} > bound {bound} + {allowance}",
            err2.sqrt()
        );
        // Lattice steps (α = 0) rebuild every value exactly.
        assert!(
            q.alpha != 0.0 || wv == tv,
            "pcm vector {j}: lattice steps, yet not rebuilt exactly"
        );
        e2 += err2;
    }
    let stored = q.error_norm;
    assert!(
        (e2.sqrt() - stored).abs() <= 1e-9 * (1.0 + stored) + 1e-6 * e2.sqrt(),
        "stored error norm {stored} differs from the decoded {}",
        e2.sqrt()
    );
}

// ---------------------------------------------------------------------------------------------
// pack_input

/// Largest number of elements quantized per input (quantizing is the expensive part).
pub const PACK_MAX_QUANTIZED_ELEMENTS: u64 = 1 << 16;

/// The sigma-delta options byte `b` selects (the meaning every committed input was found with).
fn pack_options(b: u8) -> PackOptions {
    PackOptions {
        method: pack::Method::SigmaDelta,
        frame: match b & 3 {
            0 => FrameRule::BitsPerWeight(4.0),
            1 => FrameRule::Redundancy(1.5),
            2 => FrameRule::FrameSize(64),
            _ => FrameRule::BitsPerWeight(2.0),
        },
        levels: if b & 4 != 0 { 3 } else { 1 },
        // Second order with the redundancy rule, whose odd N the planner lowers to an even one.
        scheme: if b & 4 != 0 && b & 3 == 1 {
            Scheme::SecondOrder
        } else {
            Scheme::FirstOrder
        },
        delta: match (b >> 3) & 3 {
            0 => DeltaChoice::Coefficient,
            1 => DeltaChoice::Tensor,
            2 => DeltaChoice::Uniform,
            _ => DeltaChoice::Value(0.25),
        },
        orientation: if b & 32 != 0 {
            Orientation::Rows
        } else {
            Orientation::Columns
        },
        bias: b & 64 != 0,
        min_dim: Some(1),
        zstd: (b & 128 != 0).then_some(3),
        ..PackOptions::default()
    }
}

/// A per-process scratch directory (on /dev/shm when it exists, so fsyncs cost nothing).
pub fn scratch_dir() -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("sdq-fuzz-pack-{}", std::process::id()))
}

/// Byte 0 selects the pack options, the rest is a safetensors file, written to `dir` (the
/// checkpoint reader takes a path). Packs it with the library path of `sdq pack`; a packed file
/// must open, verify, meet every certified bound against the original, and unpack; no
/// temporary file may be left in `dir`.
pub fn pack_input(data: &[u8], dir: &Path) {
    let Some((&opt, file)) = data.split_first() else {
        return;
    };
    std::fs::create_dir_all(dir).expect("scratch directory");
    let input = dir.join("in.safetensors");
    let output = dir.join("out.sdq");
    let _ = std::fs::remove_file(&output);
    std::fs::write(&input, file).expect("write scratch input");
    let Ok(ck) = Checkpoint::open(&input) else {
        return;
    };
    let quantizable: u64 = ck
        .tensors()
        .iter()
        .filter(|t| t.dtype.is_quantizable_float() && t.shape.len() >= 2)
        .map(|t| t.elements)
        .fold(0u64, u64::saturating_add);
    if quantizable > PACK_MAX_QUANTIZED_ELEMENTS {
        return;
    }
    pack_and_check(&ck, &output, &pack_options(opt), dir);
    // One option byte in eight also packs the same input with pcm, the default scheme.
    if opt & 7 == 0 {
        let _ = std::fs::remove_file(&output);
        let pcm = PackOptions {
            method: pack::Method::Pcm(sdq::quant::pcm::PcmOptions {
                target: sdq::quant::pcm::RateTarget::BitsPerWeight(4.0),
                ..Default::default()
            }),
            orientation: Orientation::Rows,
            // The whole-file cap (the command line's default is 5): none, the default, a tight
            // one (lowering the budget or, for inputs mostly raw, out of reach), a loose one.
            file_bits: match (opt >> 3) & 3 {
                0 => None,
                1 => Some(5.0),
                2 => Some(4.2),
                _ => Some(12.0),
            },
            ..pack_options(opt)
        };
        pack_and_check(&ck, &output, &pcm, dir);
    }
}

/// Packs `ck` into `output` with `opts` and checks the file: it opens, verifies, meets every
/// bound against the original, unpacks, and leaves no temporary file in `dir`.
fn pack_and_check(ck: &Checkpoint, output: &Path, opts: &PackOptions, dir: &Path) {
    let Ok(summary) = pack::pack(ck, output, opts, &mut NoProgress) else {
        return;
    };
    // A whole-file cap said to be reached is met: every byte of the file against every float
    // element of the checkpoint (the cap's estimate is an upper bound).
    if let Some(c) = summary.file_cap.filter(|c| c.reached) {
        let floats: u64 = ck
            .tensors()
            .iter()
            .filter(|t| t.dtype.is_quantizable_float())
            .map(|t| t.elements)
            .fold(0u64, u64::saturating_add);
        let len = std::fs::metadata(output).expect("the packed file").len();
        let bits = len as f64 * 8.0 / (floats.max(1)) as f64;
        assert!(
            bits <= c.cap * (1.0 + 1e-9),
            "the file takes {bits} bits per float weight, over its cap {c:?}"
        );
    }
    let f = SdqFile::open(output).expect("a packed file opens");
    f.verify_all().expect("a packed file verifies");
    let report = verify::verify_against(&f, output, ck, f64::INFINITY, None, &mut NoProgress)
        .expect("verify against the original runs");
    // Uncertified vectors that the file declares (an explicit δ) fail verify but are not a bug
    // of the packer; bound violations, differing raw bytes, missing tensors and a file that
    // declares fewer uncertified vectors than verify finds are.
    let bug = report.tensors.iter().any(|t| {
        t.violations > 0
            || t.problem.as_deref().is_some_and(|p| {
                !p.contains("vectors are not certified (their coefficients overload")
            })
    });
    assert!(
        !bug && report.missing.is_empty(),
        "packed file breaks a bound or differs: {report:?}"
    );
    unpack::unpack_to(
        &f,
        Vec::new(),
        output,
        &[],
        unpack::OutDtype::F32,
        &mut NoProgress,
    )
    .expect("a packed file unpacks");
    for e in std::fs::read_dir(dir).expect("list scratch").flatten() {
        let name = e.file_name();
        assert!(
            !name.to_string_lossy().ends_with(".tmp"),
            "temporary file left: {name:?}"
        );
    }
}
