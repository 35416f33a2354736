//! Frame variation σ(F, p) of spectral tetris and harmonic frames, for the natural order and the
//! ordering heuristic of `sdq::frame::ordering` (greedy nearest neighbour + 2-opt, and 2-opt from
//! the identity; the shorter wins), with the time the heuristic took.
//!
//! `cargo run --release --example tetris_sigma`

use std::time::Instant;

use sdq::frame::ordering::{order_frame, HarmonicGeometry, OrderingOptions, OrderingReport};
use sdq::frame::TetrisFrame;
use sdq::HarmonicFrame;

fn line(family: &str, n: usize, d: usize, swapped: Option<f64>, rep: &OrderingReport, secs: f64) {
    let swapped = swapped.map_or(String::from("         -"), |s| format!("{s:>10.3}"));
    println!(
        "{family:<8} {d:>5} {n:>6} {:>10.3} {swapped} {:>10.3} {:>10.3} {:>10.3}  {:<9} {:<5} {secs:>7.3}",
        rep.sigma_identity,
        rep.sigma_greedy_two_opt,
        rep.sigma_identity_two_opt,
        rep.sigma,
        if rep.chose_identity { "identity" } else { "heuristic" },
        rep.two_opt_optimal,
    );
}

fn tetris(n: usize, d: usize, options: &OrderingOptions) -> sdq::Result<()> {
    let f = TetrisFrame::new(n, d)?;
    let swapped = f.variation(&f.block_swapped_order()?)?;
    let start = Instant::now();
    let rep = order_frame(&f, options)?;
    line(
        "tetris",
        n,
        d,
        Some(swapped),
        &rep,
        start.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn harmonic(n: usize, d: usize, options: &OrderingOptions) -> sdq::Result<()> {
    let h = HarmonicFrame::new(n, d)?;
    let start = Instant::now();
    let rep = order_frame(&HarmonicGeometry::new(&h)?, options)?;
    line("harmonic", n, d, None, &rep, start.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> sdq::Result<()> {
    let options = OrderingOptions::default();
    println!(
        "family       d      N σ(identity) σ(blk-swap) σ(greedy+2opt) σ(id+2opt) σ(chosen) chosen  2opt-opt time[s]"
    );
    for d in [64usize, 128, 784] {
        for mult in [2usize, 4, 8] {
            let n = mult * d;
            tetris(n, d, &options)?;
            // A non-integer redundancy too (λ = mult + ½), where the 2×2 blocks appear.
            tetris(n + d / 2, d, &options)?;
            harmonic(n, d, &options)?;
        }
    }
    // The size the heuristic is meant to handle (neighbour-list 2-opt only: N > exhaustive_limit).
    tetris(40_000, 5_000, &options)?;
    tetris(42_500, 5_000, &options)?;
    tetris(40_000, 7_000, &options)?;
    harmonic(40_000, 5_000, &options)?;
    Ok(())
}
