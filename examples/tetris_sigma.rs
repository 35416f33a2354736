//! Frame variation σ(F, p) of spectral tetris and harmonic frames, for the natural order and the
//! ordering heuristic (greedy nearest neighbour + 2-opt), with the time the heuristic took.
//!
//! `cargo run --release --example tetris_sigma`

use std::time::Instant;

use sdq::frame::ordering::{order_frame, HarmonicGeometry, OrderingOptions, OrderingReport};
use sdq::frame::TetrisFrame;
use sdq::HarmonicFrame;

fn line(family: &str, n: usize, d: usize, extra: &str, rep: &OrderingReport, secs: f64) {
    println!(
        "{family:<8} d={d:<4} N={n:<5} σ(identity)={:>9.3}{extra}  σ(heuristic)={:>9.3}  chosen={:<9}  2-opt-optimal={:<5}  moves={:<6} time={secs:.3}s",
        rep.sigma_identity,
        rep.sigma_heuristic,
        if rep.chose_identity { "identity" } else { "heuristic" },
        rep.two_opt_optimal,
        rep.moves,
    );
}

fn main() -> sdq::Result<()> {
    let options = OrderingOptions::default();
    for d in [64usize, 128, 784] {
        for mult in [2usize, 4, 8] {
            let n = mult * d;
            // A non-integer redundancy too (λ = mult + 0.5), where the 2×2 blocks appear.
            for n in [n, n + d / 2] {
                let f = TetrisFrame::new(n, d)?;
                let swapped = f.variation(&f.block_swapped_order()?)?;
                let start = Instant::now();
                let rep = order_frame(&f, &options)?;
                let secs = start.elapsed().as_secs_f64();
                let extra = format!("  σ(block-swapped)={swapped:>9.3}");
                line("tetris", n, d, &extra, &rep, secs);
            }
            let h = HarmonicFrame::new(n, d)?;
            let start = Instant::now();
            let rep = order_frame(&HarmonicGeometry::new(&h)?, &options)?;
            let secs = start.elapsed().as_secs_f64();
            line("harmonic", n, d, "                            ", &rep, secs);
        }
    }
    Ok(())
}
