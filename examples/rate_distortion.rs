//! The rate–distortion report: relative weight error, MNIST test accuracy and decode speed
//! against the bits per weight of the .sdq file, for every frame-quantization scheme the library
//! packs and for per-row round-to-nearest, on trained MNIST networks and a Gaussian matrix.
//! Regenerates `docs/rate-distortion/`.
//!
//! ```text
//! cargo run --release --example rate_distortion [-- [--quick] [--out DIR] [--data PATH]]
//! ```
//!
//! Every point goes safetensors → `sdq::bridge::pack::pack` → .sdq file (zstd off and on) →
//! memory-mapped `SdqFile::open` → `decode_into`; bits per weight come from the file's storage
//! report.

mod mnist;

#[allow(dead_code)]
#[path = "reproduce/harness.rs"]
mod harness;
#[path = "rate_distortion/measure.rs"]
mod measure;
#[path = "rate_distortion/report.rs"]
mod report;
#[path = "rate_distortion/schemes.rs"]
mod schemes;
#[allow(dead_code)]
#[path = "reproduce/svg.rs"]
mod svg;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use harness::Reference;
use measure::{Point, Subject, Workspace};
use mnist::{Model, ModelKind, TrainConfig};

const USAGE: &str = "usage: rate_distortion [--quick] [--out DIR] [--data PATH]\n\
  --quick      CI-sized run: the FNN n = 200 and the Gaussian matrix, 5 frame sizes per scheme\n\
  --out DIR    output directory (default docs/rate-distortion/)\n\
  --data PATH  MNIST CSV (default the crate's data/mnist_5k.csv.gz)";

/// Seed of the reproduction's 4,000 / 1,000 train/test split (`examples/reproduce`).
const SPLIT_SEED: u64 = 2024;
/// Training images.
const N_TRAIN: usize = 4000;
/// The one training seed of every network.
const TRAIN_SEED: u64 = 1;
/// Shape and seed of the Gaussian matrix.
const GAUSS: (usize, usize, u64) = (300, 784, 1);

/// Parsed command line.
#[derive(Debug)]
struct Args {
    quick: bool,
    out: PathBuf,
    data: PathBuf,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        out: PathBuf::from("docs/rate-distortion"),
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
            "--out" => a.out = PathBuf::from(value("--out")?),
            "--data" => a.data = PathBuf::from(value("--data")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// The CPU model and core count.
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
        "{cpu}, {} cores available",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// A seeded rows × cols matrix of independent N(0, 1) entries (Box–Muller), held as a one-tensor
/// [`Model`] so that the harness's safetensors writer and round-to-nearest take it; it is never
/// run as a network.
fn gaussian(rows: usize, cols: usize, seed: u64) -> Model {
    let mut rng = mnist::Rng::new(seed);
    let mut data = Vec::with_capacity(rows * cols);
    while data.len() < rows * cols {
        let u1 = 1.0 - f64::from(rng.next_f32());
        let u2 = f64::from(rng.next_f32());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        data.push((r * t.cos()) as f32);
        data.push((r * t.sin()) as f32);
    }
    data.truncate(rows * cols);
    Model {
        kind: ModelKind::Fnn,
        width: rows,
        tensors: vec![("weight".into(), vec![rows, cols], data)],
    }
}

/// Measures every scheme at every frame size, and round-to-nearest, on one subject.
fn measure_subject(
    subject: &Subject,
    quick: bool,
    work: &std::path::Path,
    start: Instant,
) -> Result<(Vec<Point>, f64, f64), String> {
    let ws = Workspace::new(subject, &work.join(&subject.id))?;
    let f32_before = ws.time_f32()?;
    let mut points = Vec::new();
    for scheme in schemes::frame_schemes() {
        // The f32 reference is re-timed for every scheme, so that each ratio compares
        // measurements taken under the same load.
        let f32_us = ws.time_f32()?;
        for target in schemes::code_bit_targets(quick) {
            let Some(r) = scheme.redundancy_for(target) else {
                continue;
            };
            let p = ws.frame(&scheme, target, r, f32_us)?;
            points.push(p);
        }
        if let Some(p) = points.last() {
            eprintln!(
                "  {} {}: {} points ({:.0} s); last {:.2} bits/w, error {:.4}{}",
                subject.id,
                scheme.id(),
                points.iter().filter(|q| q.method == scheme.id()).count(),
                start.elapsed().as_secs_f64(),
                p.file_bits,
                p.rel_err,
                if p.accuracy.is_nan() {
                    String::new()
                } else {
                    format!(", accuracy {:.2}%", 100.0 * p.accuracy)
                }
            );
        }
    }
    let f32_us = ws.time_f32()?;
    for bits in schemes::rtn_bits(quick) {
        points.push(ws.rtn(bits, f32_us)?);
    }
    let f32_after = ws.time_f32()?;
    Ok((points, f32_before, f32_after))
}

/// Decode (and packing) threads: 1 unless `RAYON_NUM_THREADS` says otherwise. One thread makes
/// the best-of-N decode time robust on a shared machine (a parallel decode is as slow as its most
/// delayed thread) and comparable with the single-threaded f32 read.
fn set_threads() -> String {
    match std::env::var("RAYON_NUM_THREADS") {
        Ok(v) if !v.is_empty() => v,
        _ => {
            // Before any rayon use: the global pool reads it once, when it is first used.
            std::env::set_var("RAYON_NUM_THREADS", "1");
            "1".into()
        }
    }
}

fn run() -> Result<(), String> {
    let args = parse_args(std::env::args().skip(1))?;
    let threads = set_threads();
    let start = Instant::now();
    let load_start = load_average();
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create output directory {}: {e}", args.out.display()))?;
    let data = mnist::load(&args.data)?;
    if data.len() <= N_TRAIN {
        return Err(format!(
            "{} holds {} digits; the report needs more than {N_TRAIN}",
            args.data.display(),
            data.len()
        ));
    }
    let (train, test) = mnist::split(&data, N_TRAIN, SPLIT_SEED);
    let networks: &[(ModelKind, usize)] = if args.quick {
        &[(ModelKind::Fnn, 200)]
    } else {
        &[
            (ModelKind::Fnn, 200),
            (ModelKind::ResNet, 200),
            (ModelKind::Fnn, 128),
            (ModelKind::ResNet, 128),
        ]
    };
    let mut subjects = Vec::new();
    for &(kind, width) in networks {
        let t = Instant::now();
        let cfg = TrainConfig {
            seed: TRAIN_SEED,
            ..TrainConfig::default()
        };
        let model = mnist::train(kind, width, &train, &cfg);
        let reference = Reference::new(&model, &test);
        eprintln!(
            "{kind} n={width}: float accuracy {:.2}% (trained in {:.1} s)",
            100.0 * reference.accuracy,
            t.elapsed().as_secs_f64()
        );
        subjects.push(Subject {
            id: format!("{}-{width}", kind.to_string().to_lowercase()),
            name: format!("{kind} n = {width}"),
            model,
            eval: Some((reference, &test)),
        });
    }
    let (rows, cols, seed) = GAUSS;
    subjects.push(Subject {
        id: format!("gauss-{rows}x{cols}"),
        name: format!("Gaussian {rows} × {cols} (seed {seed})"),
        model: gaussian(rows, cols, seed),
        eval: None,
    });

    let work = std::env::temp_dir().join(format!("sdq-rate-distortion-{}", std::process::id()));
    let mut points = Vec::new();
    let mut f32_times = Vec::new();
    let mut result = Ok(());
    for s in &subjects {
        match measure_subject(s, args.quick, &work, start) {
            Ok((p, before, after)) => {
                points.extend(p);
                f32_times.push((s.id.clone(), before, after));
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // The scratch directory holds only this run's files; a failure to remove it is harmless.
    let _ = std::fs::remove_dir_all(&work);
    result?;

    report::write_csv(&points, &args.out)?;
    let figures = report::write_figures(&points, &subjects, &args.out)?;
    let mut command = String::from("cargo run --release --example rate_distortion");
    if args.quick {
        command.push_str(" -- --quick");
    }
    let info = report::RunInfo {
        command,
        seconds: start.elapsed().as_secs_f64(),
        machine: machine(),
        load_start,
        load_end: load_average(),
        quick: args.quick,
        threads,
        f32_times,
    };
    report::write_readme(&points, &subjects, &info, &figures, &args.out)?;
    eprintln!(
        "wrote {} points, {} figures and README.md to {} in {:.0} s",
        points.len(),
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
            eprintln!("rate_distortion: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let p = |v: &[&str]| parse_args(v.iter().map(|s| s.to_string()));
        let a = p(&["--quick", "--out", "x"]).unwrap();
        assert!(a.quick && a.out == std::path::Path::new("x"));
        assert!(p(&["--out"]).is_err());
        assert!(p(&["--bogus"]).is_err());
    }

    /// The whole pipeline on a small matrix: pack (zstd off and on), decode, measure, and write
    /// the CSV, figures and README.
    #[test]
    fn small_gaussian_end_to_end() {
        let subject = Subject {
            id: "g".into(),
            name: "small Gaussian".into(),
            model: gaussian(24, 40, 7),
            eval: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(&subject, &dir.path().join("work")).unwrap();
        let f32_us = ws.time_f32().unwrap();
        let mut points = Vec::new();
        for scheme in schemes::frame_schemes().iter().filter(|s| s.levels <= 2) {
            for target in [2.0, 8.0] {
                if let Some(r) = scheme.redundancy_for(target) {
                    points.push(ws.frame(scheme, target, r, f32_us).unwrap());
                }
            }
        }
        points.push(ws.rtn(4, f32_us).unwrap());
        assert!(points.iter().any(|p| p.order == 2));
        assert!(points.iter().filter(|p| p.order > 0).all(|p| p.certified));
        assert!(points
            .iter()
            .all(|p| p.rel_err.is_finite() && p.file_bits > 0.0));
        let err = |t: f64| {
            points
                .iter()
                .find(|p| p.method == "sd1-harmonic-coefficient-k1" && p.target == t)
                .unwrap()
                .rel_err
        };
        assert!(err(8.0) < err(2.0));
        report::write_csv(&points, dir.path()).unwrap();
        let subjects = [subject];
        let figures = report::write_figures(&points, &subjects, dir.path()).unwrap();
        let info = report::RunInfo {
            command: "test".into(),
            seconds: 0.0,
            machine: machine(),
            load_start: load_average(),
            load_end: load_average(),
            quick: true,
            threads: "1".into(),
            f32_times: vec![("g".into(), f32_us, f32_us)],
        };
        report::write_readme(&points, &subjects, &info, &figures, dir.path()).unwrap();
        let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
        assert!(readme.contains("round-to-nearest") && readme.contains("small Gaussian"));
        let csv = std::fs::read_to_string(dir.path().join("points.csv")).unwrap();
        assert_eq!(csv.lines().count(), points.len() + 1);
        let columns = |l: &str| l.split(',').count();
        let header = csv.lines().next().map_or(0, columns);
        assert!(csv.lines().all(|l| columns(l) == header));
    }

    #[test]
    fn gaussian_is_standard() {
        let m = gaussian(100, 100, 3);
        let d = &m.tensors[0].2;
        let mean = d.iter().map(|&x| f64::from(x)).sum::<f64>() / d.len() as f64;
        let var = d.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / d.len() as f64;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.05);
        assert_eq!(gaussian(100, 100, 3), m);
    }
}
