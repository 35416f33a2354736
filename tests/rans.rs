//! The rANS coder (`sdq::codes::rans`): roundtrips, coded size against the ideal entropy, the
//! normalisation against an exhaustive search, corrupt and truncated blocks, corrupt models.

use proptest::prelude::*;
use sdq::codes::rans::{
    decode, decode_lanes, encode, encode_lanes, Model, LANES, MAX_SYMBOLS, PROB_BITS,
};
use sdq::Error;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `len` symbols drawn from the distribution `weights` (inverse CDF).
fn draw(weights: &[f64], len: usize, rng: &mut Rng) -> Vec<u8> {
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    (0..len)
        .map(|_| {
            let u = rng.unit();
            let s = cdf.partition_point(|&c| c <= u).min(weights.len() - 1);
            // Never draw a zero-weight symbol (possible only through rounding at the top).
            let s = (0..=s).rev().find(|&t| weights[t] > 0.0).unwrap_or(s);
            s as u8
        })
        .collect()
}

/// Weights of a discretised Laplacian on `k` symbols centred at k/2 with scale `b` (in symbols).
fn laplace(k: usize, b: f64) -> Vec<f64> {
    let c = (k as f64 - 1.0) / 2.0;
    (0..k).map(|s| (-(s as f64 - c).abs() / b).exp()).collect()
}

fn histogram(msg: &[u8], k: usize) -> Vec<u64> {
    let mut h = vec![0u64; k];
    for &s in msg {
        h[s as usize] += 1;
    }
    h
}

/// Empirical entropy in bits of the whole message.
fn entropy_bits(h: &[u64]) -> f64 {
    let n: u64 = h.iter().sum();
    h.iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64) * (c as f64 / n as f64).log2())
        .sum()
}

fn roundtrip(msg: &[u8], model: &Model) -> Vec<u8> {
    let mut buf = Vec::new();
    encode(msg, model, &mut buf).unwrap();
    let mut back = vec![0u8; msg.len()];
    decode(&buf, model, &mut back).unwrap();
    assert_eq!(back, msg);
    buf
}

fn roundtrip_lanes<const L: usize>(msg: &[u8], model: &Model) -> usize {
    let mut buf = Vec::new();
    encode_lanes::<L>(msg, model, &mut buf).unwrap();
    let mut back = vec![0u8; msg.len()];
    decode_lanes::<L>(&buf, model, &mut back).unwrap();
    assert_eq!(back, msg, "{L} lanes");
    buf.len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random histograms (1 to 256 symbols, some zero), messages of 0 to 100k symbols drawn from
    /// them, every lane count: decode(encode(m)) = m, and the block is within 16 bits per lane
    /// plus one word per lane of the model's predicted cost.
    #[test]
    fn roundtrip_random(k in 1usize..=MAX_SYMBOLS, len in 0usize..100_000, seed: u64,
                        zero_frac in 0.0f64..0.7, skew in 0.0f64..6.0) {
        let mut rng = Rng(seed);
        let mut w: Vec<f64> = (0..k)
            .map(|_| if rng.unit() < zero_frac { 0.0 } else { rng.unit().powf(1.0 + skew) })
            .collect();
        if w.iter().all(|&x| x == 0.0) {
            w[(seed as usize) % k] = 1.0;
        }
        let msg = draw(&w, len, &mut rng);
        // The model from the message's own histogram (if any), else from the weights.
        let counts: Vec<u64> = if len > 0 {
            histogram(&msg, k)
        } else {
            w.iter().map(|&x| (x * 1000.0).ceil() as u64).collect()
        };
        let model = Model::from_counts(&counts).unwrap();
        let buf = roundtrip(&msg, &model);
        let cost = model.cost_bits(&histogram(&msg, k));
        let bits = 8.0 * buf.len() as f64;
        let lanes = len.min(LANES) as f64;
        prop_assert!(bits >= cost - 16.0 * lanes - 1e-6, "{bits} < {cost}");
        prop_assert!(bits <= cost + 16.0 * lanes + 1e-6, "{bits} > {cost}");
        roundtrip_lanes::<1>(&msg, &model);
        roundtrip_lanes::<4>(&msg, &model);
        roundtrip_lanes::<16>(&msg, &model);
        roundtrip_lanes::<32>(&msg, &model);
    }

    /// decode on arbitrary bytes, for any message length and model, never panics, and a block
    /// of random bytes is nearly always rejected (it passes only if every check happens to hold).
    #[test]
    fn decode_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                              n in 0usize..400, k in 1usize..=256, seed: u64) {
        let mut rng = Rng(seed);
        let mut counts: Vec<u64> = (0..k).map(|_| rng.next() % 50).collect();
        counts[k - 1] += 1;
        let model = Model::from_counts(&counts).unwrap();
        let mut out = vec![0u8; n];
        let r = decode(&bytes, &model, &mut out);
        if let Err(e) = r {
            prop_assert!(matches!(e, Error::CorruptStream(_)), "{e}");
        }
        let _ = decode_lanes::<1>(&bytes, &model, &mut out);
        let _ = decode_lanes::<32>(&bytes, &model, &mut out);
    }

    /// Model::read on arbitrary bytes never panics, and whatever it accepts is a valid model
    /// that writes back to exactly the bytes it consumed.
    #[test]
    fn model_read_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok((m, used)) = Model::read(&bytes) {
            prop_assert_eq!(m.freqs().iter().sum::<u32>(), 1 << PROB_BITS);
            let mut again = Vec::new();
            m.write(&mut again);
            prop_assert_eq!(&again[..], &bytes[..used]);
        }
    }

    /// Arbitrary frequency vectors written in the model format are accepted iff they sum to M.
    #[test]
    fn model_read_sum_rule(freqs in proptest::collection::vec(0u32..=4096, 1..=256), seed: u64) {
        let mut freqs = freqs;
        let mut rng = Rng(seed);
        if rng.unit() < 0.5 {
            // Make them sum to exactly M.
            let total: u64 = freqs.iter().map(|&f| u64::from(f)).sum::<u64>().max(1);
            let mut s = 0u32;
            for f in freqs.iter_mut() {
                *f = (u64::from(*f) * 4096 / total) as u32;
                s += *f;
            }
            freqs[0] += 4096 - s;
        }
        let mut bytes = (freqs.len() as u16).to_le_bytes().to_vec();
        for &f in &freqs {
            if f < 128 { bytes.push(f as u8) } else { bytes.extend([0x80 | (f & 0x7f) as u8, (f >> 7) as u8]) }
        }
        let n = bytes.len();
        bytes.extend([1, 2, 3]); // trailing bytes are not the model's
        let sum: u32 = freqs.iter().sum();
        match Model::read(&bytes) {
            Ok((m, used)) => {
                prop_assert_eq!(sum, 4096);
                prop_assert_eq!(used, n);
                prop_assert_eq!(m.freqs(), &freqs[..]);
            }
            Err(e) => {
                prop_assert!(sum != 4096, "rejected a valid model: {e}");
                prop_assert!(matches!(e, Error::CorruptStream(_)));
            }
        }
    }
}

#[test]
fn empty_message_is_empty_block() {
    let m = Model::from_counts(&[1, 2, 3]).unwrap();
    let mut buf = vec![7u8];
    encode(&[], &m, &mut buf).unwrap();
    assert_eq!(buf, [7]);
    decode(&[], &m, &mut []).unwrap();
    assert!(decode(&[0], &m, &mut []).is_err());
}

#[test]
fn one_symbol_and_full_alphabets() {
    // One symbol: f = M, the states never change, the block is the initial states only.
    let m = Model::from_counts(&[0, 0, 9]).unwrap();
    assert_eq!(m.freq(2), 1 << PROB_BITS);
    let msg = vec![2u8; 1001];
    let buf = roundtrip(&msg, &m);
    assert_eq!(buf.len(), 4 * LANES);
    // 256 symbols, all present, uniform: 8 bits per symbol.
    let msg: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 256) as u8).collect();
    let m = Model::from_counts(&histogram(&msg, 256)).unwrap();
    assert!(m.freqs().iter().all(|&f| f == 16));
    let buf = roundtrip(&msg, &m);
    assert!(
        buf.len() <= 100_000 + 4 * LANES + 2 * LANES,
        "{}",
        buf.len()
    );
    // 256 symbols, very skewed: most symbols get the minimum frequency 1.
    let mut counts = vec![1u64; 256];
    counts[0] = 1_000_000_000;
    let m = Model::from_counts(&counts).unwrap();
    assert_eq!(m.freq(0), 4096 - 255);
    assert!(m.freqs()[1..].iter().all(|&f| f == 1));
    let msg: Vec<u8> = (0..5000u32)
        .map(|i| if i % 97 == 0 { (i % 256) as u8 } else { 0 })
        .collect();
    roundtrip(&msg, &m);
}

#[test]
fn every_length_up_to_three_rounds() {
    let w = laplace(20, 2.0);
    let mut rng = Rng(5);
    let msg = draw(&w, 3 * 32 + 1, &mut rng);
    let m = Model::from_counts(&histogram(&msg, 20)).unwrap();
    for len in 0..=msg.len() {
        roundtrip(&msg[..len], &m);
        roundtrip_lanes::<1>(&msg[..len], &m);
        roundtrip_lanes::<4>(&msg[..len], &m);
        roundtrip_lanes::<16>(&msg[..len], &m);
        roundtrip_lanes::<32>(&msg[..len], &m);
    }
}

/// Coded size against the message's empirical entropy, for Laplacian codes at 2 to 8 bits per
/// symbol, 100k symbols: the overhead (normalisation to 12-bit probabilities, the initial states
/// and the word rounding) is below 0.5 % plus 40 bytes. Prints the measured overheads.
#[test]
fn coded_size_near_entropy() {
    for (k, b) in [
        (8usize, 0.5f64),
        (16, 1.5),
        (64, 4.0),
        (256, 12.0),
        (256, 40.0),
        (256, 1e6),
    ] {
        let mut rng = Rng(k as u64 ^ b.to_bits());
        let msg = draw(&laplace(k, b), 100_000, &mut rng);
        let h = histogram(&msg, k);
        let m = Model::from_counts(&h).unwrap();
        let buf = roundtrip(&msg, &m);
        let ideal = entropy_bits(&h);
        let bits = 8.0 * buf.len() as f64;
        let per = ideal / msg.len() as f64;
        let over = (bits - ideal) / ideal;
        println!(
            "k = {k:3}, entropy {per:.3} bits/symbol: block {bits} bits, ideal {ideal:.0}, overhead {:.4} % ({:.5} bits/symbol)",
            100.0 * over,
            (bits - ideal) / msg.len() as f64
        );
        assert!(bits <= ideal * 1.005 + 320.0, "{bits} vs {ideal}");
        // The model's prediction is within 16 bits per lane of the block.
        assert!((m.cost_bits(&h) - bits).abs() <= 16.0 * LANES as f64);
    }
}

/// The normalisation is optimal: for 3-symbol histograms, an exhaustive search over every
/// (f_0, f_1, f_2) with f_s ≥ 1 and sum M finds no cheaper frequency vector.
#[test]
fn normalisation_is_optimal() {
    let mut rng = Rng(11);
    let mut cases: Vec<[u64; 3]> = vec![[1, 1, 1_000_000], [5, 3, 1], [1000, 999, 1], [7, 7, 7]];
    for _ in 0..6 {
        cases.push([
            rng.next() % 100_000 + 1,
            rng.next() % 1000 + 1,
            rng.next() % 10 + 1,
        ]);
    }
    let m_total = 1u32 << PROB_BITS;
    for counts in cases {
        let model = Model::from_counts(&counts).unwrap();
        let cost = |f: [u32; 3]| -> f64 {
            counts
                .iter()
                .zip(f)
                .map(|(&c, f)| c as f64 * (f64::from(PROB_BITS) - f64::from(f).log2()))
                .sum()
        };
        let got = cost([model.freq(0), model.freq(1), model.freq(2)]);
        let mut best = f64::INFINITY;
        for f0 in 1..m_total - 1 {
            for f1 in 1..m_total - f0 {
                best = best.min(cost([f0, f1, m_total - f0 - f1]));
            }
        }
        assert!(
            got <= best + 1e-6 * best,
            "{counts:?}: {got} > optimum {best}"
        );
    }
}

/// Every truncation of a block, and the block with a byte appended, is an error; every
/// single-byte change of a block either errors or decodes (never panics), and nearly all are
/// detected.
#[test]
fn truncated_and_corrupt_blocks() {
    for (k, b, len) in [(16usize, 1.5, 200usize), (256, 30.0, 77), (4, 0.3, 9)] {
        let mut rng = Rng(len as u64);
        let msg = draw(&laplace(k, b), len, &mut rng);
        let m = Model::from_counts(&histogram(&msg, k)).unwrap();
        let buf = roundtrip(&msg, &m);
        let mut out = vec![0u8; len];
        for cut in 0..buf.len() {
            assert!(
                decode(&buf[..cut], &m, &mut out).is_err(),
                "truncation to {cut} bytes"
            );
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode(&longer, &m, &mut out).is_err());
        // One symbol more or less than was coded.
        assert!(decode(&buf, &m, &mut vec![0u8; len + 1]).is_err());
        assert!(decode(&buf, &m, &mut vec![0u8; len - 1]).is_err());
        let (mut tried, mut missed) = (0usize, 0usize);
        for at in 0..buf.len() {
            for x in 1..=255u8 {
                let mut bad = buf.clone();
                bad[at] ^= x;
                tried += 1;
                if decode(&bad, &m, &mut out).is_ok() {
                    missed += 1;
                }
            }
        }
        println!(
            "k = {k}, {len} symbols, {} bytes: {missed} of {tried} single-byte corruptions decode without error",
            buf.len()
        );
        assert!(missed * 100 <= tried, "{missed} of {tried} undetected");
    }
}

#[test]
fn corrupt_states_and_wrong_model() {
    let mut rng = Rng(3);
    let msg = draw(&laplace(16, 2.0), 1000, &mut rng);
    let m = Model::from_counts(&histogram(&msg, 16)).unwrap();
    let buf = roundtrip(&msg, &m);
    let mut out = vec![0u8; msg.len()];
    // An initial state below 2^16.
    let mut bad = buf.clone();
    bad[..4].copy_from_slice(&0xffffu32.to_le_bytes());
    assert!(matches!(
        decode(&bad, &m, &mut out),
        Err(Error::CorruptStream(_))
    ));
    // Zero states, all-0xff bytes.
    assert!(decode(&vec![0u8; buf.len()], &m, &mut out).is_err());
    assert!(decode(&vec![0xffu8; buf.len()], &m, &mut out).is_err());
    // Decoding with another model is detected.
    let other =
        Model::from_counts(&histogram(&draw(&laplace(16, 5.0), 1000, &mut rng), 16)).unwrap();
    assert!(decode(&buf, &other, &mut out).is_err());
    // A huge message from a tiny block ends quickly with an error.
    let mut big = vec![0u8; 10_000_000];
    assert!(decode(&buf, &m, &mut big).is_err());
}

#[test]
fn encode_rejects_impossible_symbols() {
    let m = Model::from_counts(&[3, 0, 4]).unwrap();
    let mut buf = vec![9u8];
    assert!(matches!(
        encode(&[0, 1, 2], &m, &mut buf),
        Err(Error::Parameter(_))
    ));
    assert!(matches!(
        encode(&[0, 3], &m, &mut buf),
        Err(Error::Parameter(_))
    ));
    assert_eq!(buf, [9]);
}

#[test]
fn from_counts_rejects() {
    assert!(Model::from_counts(&[]).is_err());
    assert!(Model::from_counts(&[0, 0, 0]).is_err());
    assert!(Model::from_counts(&vec![1u64; MAX_SYMBOLS + 1]).is_err());
    // Counts near u64::MAX do not overflow.
    let m = Model::from_counts(&[u64::MAX, u64::MAX, 1]).unwrap();
    assert_eq!(m.freq(0) + m.freq(1), 4095);
    assert_eq!(m.freq(0).abs_diff(m.freq(1)), 1);
    assert_eq!(m.freqs().iter().sum::<u32>(), 4096);
    assert_eq!(m.freq(2), 1);
}

#[test]
fn model_bytes() {
    // Hand-written: 3 symbols, f = [100, 3996, 0]: 3996 = 0x0f9c → 0x80 | 0x1c, 0x1f.
    let m = Model::read(&[3, 0, 100, 0x9c, 0x1f, 0, 0xaa]).unwrap();
    assert_eq!(m.0.freqs(), [100, 3996, 0]);
    assert_eq!(m.1, 6);
    let mut w = Vec::new();
    m.0.write(&mut w);
    assert_eq!(w, [3, 0, 100, 0x9c, 0x1f, 0]);
    // Sum 4095 / 4097, count 0 / 257, non-canonical, frequency above M, truncated.
    for bad in [
        &[3u8, 0, 99, 0x9c, 0x1f, 0][..],
        &[3, 0, 101, 0x9c, 0x1f, 0],
        &[0, 0],
        &[1, 1, 0x80, 0x20],
        &[2, 0, 0x80 | 100, 0, 0x9c, 0x1f],
        &[1, 0, 0x81, 0x20],
        &[3, 0, 100, 0x9c, 0x1f],
        &[3],
        &[],
    ] {
        assert!(
            matches!(Model::read(bad), Err(Error::CorruptStream(_))),
            "{bad:?}"
        );
    }
    // A one-symbol model: 0x1000 = 4096 → 0x80, 0x20.
    let (m, used) = Model::read(&[1, 0, 0x80, 0x20]).unwrap();
    assert_eq!((m.freqs(), used), (&[4096u32][..], 4));
}

/// The worked example of the module documentation, byte for byte (computed independently from
/// the documented layout).
#[test]
fn spec_example() {
    let (m, used) = Model::read(&[2, 0, 1, 0xff, 0x1f]).unwrap();
    assert_eq!((m.freqs(), used), (&[1u32, 4095][..], 5));
    let msg = [0u8, 1, 1, 1, 1, 1, 1, 1, 0, 1];
    let mut block = Vec::new();
    encode(&msg, &m, &mut block).unwrap();
    let mut want = Vec::new();
    want.extend(0x0100_0000u32.to_le_bytes());
    want.extend(0x0001_0022u32.to_le_bytes());
    for _ in 0..6 {
        want.extend(0x0001_0011u32.to_le_bytes());
    }
    want.extend([0, 0]);
    assert_eq!(block, want);
    let mut back = [9u8; 10];
    decode(&want, &m, &mut back).unwrap();
    assert_eq!(back, msg);
    // A single-lane block (n = 1): f = (2048, 2048), symbol 1: the state 32·4096 + 2048.
    let m = Model::from_counts(&[1, 1]).unwrap();
    let mut block = Vec::new();
    encode(&[1], &m, &mut block).unwrap();
    assert_eq!(block, 133_120u32.to_le_bytes());
}
