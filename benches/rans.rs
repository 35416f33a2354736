//! rANS decode speed (`sdq::codes::rans`), as ratios measured in the same run (the machine is
//! shared and noisy): decode ns per symbol against one bare `realfft` inverse transform of length
//! N = 768 and 769, in ns per point. The target: decoding N symbols costs at most half an inverse
//! FFT of length N, i.e. (decode ns/symbol) / (FFT ns/point) ≤ 0.5.
//!
//! Laplacian codes over 256 symbols at entropies ≈ 3, 4.5, 6 and 7.5 bits. For each: one long
//! block (2^18 symbols) with 4, 8 (the format's), 16 and 32 lanes, per-vector blocks of 768
//! symbols with 8 lanes, and the `constriction` crate's ANS coder (`SmallAnsCoder`, 12-bit
//! precision, its lookup decoder model) on the long message.
//!
//! `cargo bench --bench rans` (plain std::time, no harness; about a minute). Medians of the
//! repetitions; `SDQ_BENCH_STAT=min` takes minima instead (steadier under load).

use std::hint::black_box;
use std::time::Instant;

use constriction::stream::model::{
    IterableEntropyModel, SmallContiguousCategoricalEntropyModel, SmallContiguousLookupDecoderModel,
};
use constriction::stream::stack::SmallAnsCoder;
use constriction::stream::Decode;
use realfft::num_complex::Complex;
use realfft::RealFftPlanner;
use sdq::codes::rans::{decode, decode_lanes, encode, encode_lanes, Model};

/// The statistic taken over repetitions: the median (default), or with `SDQ_BENCH_STAT=min` the
/// minimum.
fn pick(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if std::env::var("SDQ_BENCH_STAT").is_ok_and(|s| s == "min") {
        v[0]
    } else {
        v[v.len() / 2]
    }
}

/// Median seconds per call of `f` and of `g`, measured alternately (f, g, f, g, …) so that a
/// change of machine load affects both alike.
fn time_pair(budget: f64, mut f: impl FnMut(), mut g: impl FnMut()) -> (f64, f64) {
    f();
    g();
    let t = Instant::now();
    f();
    g();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((budget / once) as usize).clamp(7, 5001);
    let (mut a, mut b) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        let t = Instant::now();
        f();
        a.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        g();
        b.push(t.elapsed().as_secs_f64());
    }
    (pick(&mut a), pick(&mut b))
}

/// splitmix64 uniform in [0, 1).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A discretised Laplacian on 256 symbols, centred, scale `b`.
fn laplace(b: f64) -> Vec<f64> {
    let w: Vec<f64> = (0..256)
        .map(|s| (-((s as f64) - 127.5).abs() / b).exp())
        .collect();
    let t: f64 = w.iter().sum();
    w.into_iter().map(|x| x / t).collect()
}

fn entropy(p: &[f64]) -> f64 {
    p.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.log2()).sum()
}

/// The scale whose Laplacian has entropy `h` bits (bisection on log b).
fn scale_for(h: f64) -> f64 {
    let (mut lo, mut hi) = (-6.0f64, 12.0f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if entropy(&laplace(mid.exp())) < h {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi)).exp()
}

fn draw(p: &[f64], len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut cdf = Vec::with_capacity(p.len());
    let mut acc = 0.0;
    for x in p {
        acc += x;
        cdf.push(acc);
    }
    (0..len)
        .map(|_| {
            let u = rng.unit();
            cdf.partition_point(|&c| c <= u).min(255) as u8
        })
        .collect()
}

fn fft_ns_per_point(budget: f64, n: usize, f: &mut dyn FnMut()) -> (f64, f64) {
    let mut planner = RealFftPlanner::<f64>::new();
    let plan = planner.plan_fft_inverse(n);
    let mut input = vec![Complex::new(0.0, 0.0); n / 2 + 1];
    for (i, c) in input.iter_mut().enumerate().skip(1).take((n - 1) / 2) {
        *c = Complex::new((i as f64).sin(), (i as f64).cos());
    }
    let keep = input.clone();
    let mut output = vec![0.0f64; n];
    let mut scratch = plan.make_scratch_vec();
    let (a, b) = time_pair(budget, f, || {
        input.copy_from_slice(&keep);
        let _ = plan.process_with_scratch(&mut input, &mut output, &mut scratch);
        black_box(&output);
    });
    (a, b * 1e9 / n as f64)
}

/// Decode time of one long block with L lanes, in ns per symbol (timed alternately with the FFT
/// of length 768, whose ns per point is returned second).
fn lanes_row<const L: usize>(msg: &[u8], model: &Model, budget: f64) -> (f64, f64) {
    let mut buf = Vec::new();
    encode_lanes::<L>(msg, model, &mut buf).expect("encode");
    let mut out = vec![0u8; msg.len()];
    decode_lanes::<L>(&buf, model, &mut out).expect("decode");
    assert_eq!(out, msg);
    let (t, fft) = fft_ns_per_point(budget, 768, &mut || {
        decode_lanes::<L>(black_box(&buf), model, &mut out).expect("decode");
        black_box(&out);
    });
    (t * 1e9 / msg.len() as f64, fft)
}

fn main() {
    let long = 1usize << 18;
    let budget = 0.5;
    println!("rANS decode in ns per symbol; FFT: one realfft inverse transform in ns per point; ratio = decode ns/symbol / FFT ns/point,");
    println!("each decode timed alternately with the FFT it is divided by (target: ratio <= 0.5)");
    println!(
        "{:>5} {:>6} | {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} | {:>6} {:>6} | {:>7} {:>7} {:>7} {:>7} | {:>7}",
        "H", "bits", "L=4", "L=8", "L=16", "L=32", "blk", "constr", "fft768", "fft769",
        "long768", "long769", "blk768", "blk769", "constr/8"
    );
    let mut worst: f64 = 0.0;
    for target in [3.0, 4.5, 6.0, 7.5] {
        let p = laplace(scale_for(target));
        let mut rng = Rng(target.to_bits());
        let msg = draw(&p, long, &mut rng);
        let mut counts = vec![0u64; 256];
        for &s in &msg {
            counts[usize::from(s)] += 1;
        }
        let model = Model::from_counts(&counts).expect("model");
        let mut buf = Vec::new();
        encode(&msg, &model, &mut buf).expect("encode");
        let bits = 8.0 * buf.len() as f64 / long as f64;
        let h = entropy(&p);

        let (l4, _) = lanes_row::<4>(&msg, &model, budget);
        let (l8, fft768) = lanes_row::<8>(&msg, &model, budget);
        let (l16, _) = lanes_row::<16>(&msg, &model, budget);
        let (l32, _) = lanes_row::<32>(&msg, &model, budget);
        // The long block with 8 lanes against the FFT of length 769.
        let mut out_long = vec![0u8; long];
        let (t, fft769) = fft_ns_per_point(budget, 769, &mut || {
            decode(black_box(&buf), &model, &mut out_long).expect("decode");
            black_box(&out_long);
        });
        let l8b = t * 1e9 / long as f64;

        // Per-vector blocks of 768 symbols (the first 768·341 symbols), 8 lanes.
        let nvec = long / 768;
        let mut blocks = Vec::with_capacity(nvec);
        for v in msg.chunks_exact(768) {
            let mut b = Vec::new();
            encode(v, &model, &mut b).expect("encode");
            blocks.push(b);
        }
        let mut out = vec![0u8; 768 * nvec];
        let mut run = || {
            for (b, o) in blocks.iter().zip(out.chunks_exact_mut(768)) {
                decode(black_box(b), &model, o).expect("decode");
            }
            black_box(&out);
        };
        let (tb, fb768) = fft_ns_per_point(budget, 768, &mut run);
        let (tb2, fb769) = fft_ns_per_point(budget, 769, &mut run);
        let blk768 = tb * 1e9 / (768 * nvec) as f64;
        let blk769 = tb2 * 1e9 / (768 * nvec) as f64;
        assert_eq!(out[..], msg[..768 * nvec]);

        // constriction: SmallAnsCoder (u16 words, u32 state, 12-bit precision) with its lookup
        // decoder model, probabilities (count + 1) / total over all 256 symbols.
        let total: f64 = counts.iter().map(|&c| c as f64 + 1.0).sum();
        let probs: Vec<f32> = counts
            .iter()
            .map(|&c| ((c as f64 + 1.0) / total) as f32)
            .collect();
        let enc_model =
            SmallContiguousCategoricalEntropyModel::from_floating_point_probabilities_perfect(
                &probs,
            )
            .expect("constriction model");
        let mut coder = SmallAnsCoder::new();
        coder
            .encode_iid_symbols_reverse(msg.iter().map(|&s| usize::from(s)), &enc_model)
            .expect("constriction encode");
        let compressed = coder.into_compressed().expect("constriction compressed");
        let fixed: Vec<u16> = enc_model
            .symbol_table()
            .map(|(_, _, prob)| prob.get())
            .collect();
        let dec_model = SmallContiguousLookupDecoderModel::from_nonzero_fixed_point_probabilities(
            &fixed, false,
        )
        .expect("constriction lookup model");
        let mut cout = vec![0u8; long];
        // Timed alternately with sdq's decoder of the same message (8 lanes).
        let (tc, ts) = time_pair(
            budget,
            || {
                let mut dec = SmallAnsCoder::from_compressed_slice(black_box(&compressed[..]))
                    .expect("constriction decoder");
                for (o, s) in cout
                    .iter_mut()
                    .zip(dec.decode_iid_symbols(long, &dec_model))
                {
                    *o = s.unwrap_or(0) as u8;
                }
                black_box(&cout);
            },
            || {
                decode(black_box(&buf), &model, &mut out_long).expect("decode");
                black_box(&out_long);
            },
        );
        assert_eq!(cout, msg);
        let cons = tc * 1e9 / long as f64;

        let r = [l8 / fft768, l8b / fft769, blk768 / fb768, blk769 / fb769];
        worst = worst.max(r[0]).max(r[2]);
        println!(
            "{h:5.2} {bits:6.3} | {l4:6.3} {l8:6.3} {l16:6.3} {l32:6.3} {blk768:6.3} {cons:7.3} | {fft768:6.3} {fft769:6.3} | {:7.3} {:7.3} {:7.3} {:7.3} | {:7.2}",
            r[0], r[1], r[2], r[3], tc / ts
        );
    }
    println!("L=4..32: one block of 2^18 symbols with that many lanes; blk: blocks of 768 symbols, 8 lanes (timed with FFT 768); constr: the constriction crate's SmallAnsCoder (12-bit, lookup");
    println!("decoder model) on the same symbols; long768/long769: the 2^18-symbol block (8 lanes) against FFT 768/769; blk768/blk769:");
    println!("blocks of 768 symbols (one vector each, 8 lanes); constr/8: constriction's time over sdq's (8 lanes), timed alternately.");
    println!("worst ratio against FFT 768: {worst:.3} (target <= 0.5)");
}
