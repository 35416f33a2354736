//! How fast does the error fall with N for first- and second-order ΣΔ, for even and odd N?
//! 64 random vectors of d = 64 (uniform entries), harmonic frames, identity order, K = 2 (2-bit
//! codes) and, for each scheme, its smallest certified per-vector δ (first order: max|x| ≤ 1.5δ;
//! second order: max|x| ≤ 0.5δ). Prints the mean error and bound per N and the fitted log-log
//! slopes. Run: `cargo run --release --example second_order_rate`.

use sdq::quant::{second_order, sigma_delta, step};
use sdq::{Alphabet, HarmonicFrame, Permutation};

fn values(seed: u64, len: usize) -> Vec<f64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn slope(ns: &[usize], ys: &[f64]) -> f64 {
    let xs: Vec<f64> = ns.iter().map(|&n| (n as f64).ln()).collect();
    let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
    let (mx, my) = (
        xs.iter().sum::<f64>() / xs.len() as f64,
        ly.iter().sum::<f64>() / ly.len() as f64,
    );
    xs.iter()
        .zip(&ly)
        .map(|(x, y)| (x - mx) * (y - my))
        .sum::<f64>()
        / xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>()
}

fn main() -> sdq::Result<()> {
    let (d, m, k) = (64usize, 64usize, 2u32);
    let a = Alphabet::new(k)?;
    let base = [256usize, 512, 1024, 2048, 4096];
    println!("d = {d}, {m} random vectors, K = {k} (2 bits per code), identity order");
    println!(
        "{:>6} {:>7} {:>12} {:>12} {:>12} {:>12}",
        "N", "parity", "1st err", "1st bound", "2nd err", "2nd bound"
    );
    for parity in ["even", "odd"] {
        let ns: Vec<usize> = base
            .iter()
            .map(|&n| if parity == "even" { n } else { n + 1 })
            .collect();
        let (mut e1s, mut e2s) = (Vec::new(), Vec::new());
        for &n in &ns {
            let frame = HarmonicFrame::new(n, d)?;
            let mut ws = frame.workspace();
            let (s1, (s2, tail)) = (
                frame.variation_identity(),
                Permutation::Identity.variation2(&frame, &mut ws)?,
            );
            let (mut e1, mut e2, mut b1, mut b2) = (0.0, 0.0, 0.0f64, 0.0f64);
            let (mut x, mut codes, mut levels, mut out) =
                (vec![0.0; n], vec![0u16; n], vec![0.0; n], vec![0.0; d]);
            for j in 0..m {
                let w = values(j as u64 * 7919 + 1, d);
                frame.analyse(&w, &mut x, &mut ws)?;
                let mx = x.iter().fold(0.0f64, |a, c| a.max(c.abs()));
                for order2 in [false, true] {
                    let delta = if order2 {
                        second_order::smallest_delta(mx, a)?
                    } else {
                        step::smallest_delta(mx, k)
                    };
                    if order2 {
                        second_order::quantize(&x, &Permutation::Identity, a, delta, &mut codes);
                    } else {
                        sigma_delta::quantize(&x, &Permutation::Identity, a, delta, &mut codes);
                    }
                    for (l, &c) in levels.iter_mut().zip(&codes) {
                        *l = a.level(c);
                    }
                    frame.synthesise(&levels, delta * d as f64 / n as f64, &mut out, &mut ws)?;
                    let err = w
                        .iter()
                        .zip(&out)
                        .map(|(p, q)| (p - q).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    if order2 {
                        e2 += err / m as f64;
                        b2 = b2.max(second_order::vector_bound(delta, d, n, s2, tail));
                    } else {
                        e1 += err / m as f64;
                        b1 = b1.max(sdq::quant::bound::vector_bound(delta, d, n, s1));
                    }
                }
            }
            println!("{n:>6} {parity:>7} {e1:>12.3e} {b1:>12.3e} {e2:>12.3e} {b2:>12.3e}");
            e1s.push(e1);
            e2s.push(e2);
        }
        println!(
            "  {parity} N: mean-error slope first order {:.2}, second order {:.2}",
            slope(&ns, &e1s),
            slope(&ns, &e2s)
        );
    }
    Ok(())
}
