//! Trains the paper's bias-free FNN and ResNet on the shipped MNIST subset and prints
//! their float accuracy and training time.
//!
//! ```text
//! cargo run --release --example train_mnist [-- [--epochs N] [--seed S] [WIDTH...]]
//! ```
//!
//! Widths default to 200. The 5,000 digits are split 4,000 / 1,000 with the seed.

mod mnist;

use std::process::ExitCode;
use std::time::Instant;

use mnist::{ModelKind, TrainConfig};

/// Parsed command line.
struct Args {
    cfg: TrainConfig,
    widths: Vec<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut cfg = TrainConfig::default();
    let mut widths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value"))
                .and_then(|v| {
                    v.parse::<u64>()
                        .map_err(|_| format!("{flag}: {v:?} is not a non-negative integer"))
                })
        };
        match arg.as_str() {
            "--epochs" => cfg.epochs = value("--epochs")? as usize,
            "--seed" => cfg.seed = value("--seed")?,
            "-h" | "--help" => {
                return Err("usage: train_mnist [--epochs N] [--seed S] [WIDTH...]".into())
            }
            w => widths.push(
                w.parse()
                    .ok()
                    .filter(|&w| w > 0)
                    .ok_or_else(|| format!("width {w:?} is not a positive integer"))?,
            ),
        }
    }
    if widths.is_empty() {
        widths.push(200);
    }
    Ok(Args { cfg, widths })
}

fn run() -> Result<(), String> {
    let Args { cfg, widths } = parse_args()?;
    let path = mnist::default_data_path();
    let start = Instant::now();
    let data = mnist::load(&path)?;
    println!(
        "loaded {} digits from {} in {:.2} s",
        data.len(),
        path.display(),
        start.elapsed().as_secs_f64()
    );
    let (train, test) = mnist::split(&data, 4000, cfg.seed);
    println!(
        "train {} / test {}; epochs {}, batch {}, lr {}, seed {}",
        train.len(),
        test.len(),
        cfg.epochs,
        cfg.batch,
        cfg.lr,
        cfg.seed
    );
    for &width in &widths {
        for kind in ModelKind::ALL {
            let start = Instant::now();
            let model = mnist::train(kind, width, &train, &cfg);
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{kind:<6} n={width:<4} params {:>7}  train acc {:6.2}%  test acc {:6.2}%  \
                 test loss {:.4}  time {secs:6.2} s",
                model.num_params(),
                100.0 * mnist::evaluate(&model, &train),
                100.0 * mnist::evaluate(&model, &test),
                mnist::mean_loss(&model, &test),
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("train_mnist: {msg}");
            ExitCode::FAILURE
        }
    }
}
