//! Reproduces Section 6 of Czaja & Na, "Frame Quantization of Neural Networks" (2024) — Tables
//! 1–4, Figures 1–2, a per-layer bound check — and compares beyond the paper (δ rules,
//! orientation, round-to-nearest at equal storage), regenerating `docs/reproduction/`.
//!
//! ```text
//! cargo run --release --example reproduce [-- [--quick] [--seeds S] [--out DIR] [--data PATH]]
//! ```
//!
//! Every quantized network is written as safetensors, packed into an .sdq file by the library,
//! reopened through the memory-mapped reader and decoded before it is evaluated.

mod mnist;

#[path = "reproduce/discussion.rs"]
mod discussion;
#[path = "reproduce/experiments.rs"]
mod experiments;
#[path = "reproduce/harness.rs"]
mod harness;
#[path = "reproduce/report.rs"]
mod report;
#[path = "reproduce/svg.rs"]
mod svg;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use experiments::Config;

const USAGE: &str = "usage: reproduce [--quick] [--seeds S] [--out DIR] [--data PATH]\n\
  --quick      CI-sized run: n = 200 only, a few frame sizes (default 2 seeds)\n\
  --seeds S    trainings per setting (default 10; the paper's number)\n\
  --out DIR    output directory (default docs/reproduction/)\n\
  --data PATH  MNIST CSV (default the crate's data/mnist_5k.csv.gz)";

/// Parsed command line.
#[derive(Debug)]
struct Args {
    quick: bool,
    seeds: Option<usize>,
    out: PathBuf,
    data: PathBuf,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        seeds: None,
        out: PathBuf::from("docs/reproduction"),
        data: mnist::default_data_path(),
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--seeds" => {
                let v = value("--seeds")?;
                let s = v
                    .parse::<usize>()
                    .ok()
                    .filter(|s| (1..=1000).contains(s))
                    .ok_or_else(|| format!("--seeds: {v:?} is not a number from 1 to 1000"))?;
                a.seeds = Some(s);
            }
            "--out" => a.out = PathBuf::from(value("--out")?),
            "--data" => a.data = PathBuf::from(value("--data")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// The CPU model and core count, for the README.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cpu}, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

fn run() -> Result<(), String> {
    let args = parse_args(std::env::args().skip(1))?;
    let start = Instant::now();
    let cfg = if args.quick {
        Config::quick(args.seeds.unwrap_or(2))
    } else {
        Config::full(args.seeds.unwrap_or(10))
    };
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create output directory {}: {e}", args.out.display()))?;
    let (train, test) = experiments::load_data(&args.data)?;
    let work = std::env::temp_dir().join(format!("sdq-reproduce-{}", std::process::id()));
    let mut count = 0usize;
    let rows = experiments::run(&cfg, &train, &test, &work, |r| {
        count += 1;
        if count % 25 == 0 {
            eprintln!(
                "  {count} quantized networks ({:.0} s); last: {} {:?} n={} {} N={} K={} acc {:.2}%",
                start.elapsed().as_secs_f64(),
                r.experiment.name(),
                r.model,
                r.width,
                r.method,
                r.n,
                r.k,
                100.0 * r.err.accuracy
            );
        }
    });
    // The scratch directory holds only this run's two files; a failure to remove it is harmless.
    let _ = std::fs::remove_dir_all(&work);
    let rows = rows?;
    report::write_csv(&rows, &args.out)?;
    let figures = report::write_figures(&rows, &cfg, &args.out)?;
    let mut command = String::from("cargo run --release --example reproduce");
    if args.quick || args.seeds.is_some() {
        command.push_str(" --");
        if args.quick {
            command.push_str(" --quick");
        }
        if let Some(s) = args.seeds {
            command.push_str(&format!(" --seeds {s}"));
        }
    }
    let info = report::RunInfo {
        command,
        seconds: start.elapsed().as_secs_f64(),
        machine: machine(),
        quick: args.quick,
    };
    report::write_readme(&rows, &cfg, &info, &figures, &args.out)?;
    eprintln!(
        "wrote {} results, {} figures and README.md to {} in {:.0} s",
        rows.len(),
        figures.len(),
        args.out.display(),
        info.seconds
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("reproduce: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a = parse(&["--quick", "--seeds", "3", "--out", "x"]).unwrap();
        assert!(a.quick && a.seeds == Some(3) && a.out == PathBuf::from("x"));
        assert!(parse(&["--seeds", "0"]).is_err());
        assert!(parse(&["--seeds"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
