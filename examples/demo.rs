//! The main job, end to end: train the paper's FNN (784 → 200 → 200 → 10, ReLU, no biases) on
//! the shipped MNIST subset, save it as safetensors, then run `sdq pack`, `sdq verify --against`
//! and `sdq unpack` (the command line's own code, compiled in from src/cli/, so what is printed
//! is the commands' real output), load the unpacked weights back and compare float and quantized
//! test accuracy and file sizes.
//!
//! ```text
//! cargo run --profile test --example demo              # default settings (what `sdq pack` does)
//! cargo run --profile test --example demo -- --sweep   # also: accuracy for other settings
//! ```
//!
//! Files go to `target/demo/` under the crate.

mod mnist;

// The `sdq` command line itself (src/main.rs is only `cli::main()`).
#[allow(dead_code)]
#[path = "../src/cli/mod.rs"]
mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use mnist::{Model, ModelKind, TrainConfig};
use sdq::bridge::pack::{self, DeltaChoice, FrameRule, PackOptions};
use sdq::bridge::safetensors::{Checkpoint, FloatOut, SafetensorsWriter, TensorSpec};
use sdq::bridge::NoProgress;
use sdq::{Dtype, SdqFile};

type Res<T> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Saves the model's tensors as an F32 safetensors file.
fn save(model: &Model, path: &Path) -> Res<()> {
    let specs: Vec<TensorSpec> = model
        .tensors
        .iter()
        .map(|(name, shape, _)| TensorSpec {
            name: name.clone(),
            dtype: Dtype::F32,
            shape: shape.iter().map(|&x| x as u64).collect(),
        })
        .collect();
    let meta = [
        (
            "model".to_string(),
            "FNN 784-200-200-10, bias-free, ReLU".to_string(),
        ),
        (
            "trained_on".to_string(),
            "mnist_5k: 4000 train / 1000 test, seed 0".to_string(),
        ),
    ];
    let mut w = SafetensorsWriter::create(path, &specs, &meta).map_err(err)?;
    for (name, _, data) in &model.tensors {
        w.write_f32(name, data, FloatOut::F32).map_err(err)?;
    }
    w.finish().map_err(err)
}

/// The model with every tensor replaced by the file's decoded values.
fn decoded_model(template: &Model, file: &SdqFile) -> Res<Model> {
    let mut m = template.clone();
    for (name, _, data) in &mut m.tensors {
        file.decode_into(name, data).map_err(err)?;
    }
    Ok(m)
}

/// The model loaded from an (unpacked) safetensors file.
fn loaded_model(template: &Model, path: &Path) -> Res<Model> {
    let ck = Checkpoint::open(path).map_err(err)?;
    let mut m = template.clone();
    for (name, shape, data) in &mut m.tensors {
        let t = ck.tensor(name).map_err(err)?;
        if t.shape != shape.iter().map(|&x| x as u64).collect::<Vec<_>>() {
            return Err(format!("{name}: unexpected shape {:?}", t.shape));
        }
        *data = ck.to_f32(t).map_err(err)?;
    }
    Ok(m)
}

/// A path as a command-line argument.
fn arg(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `sdq ARGS…` (the command line's own code) in the current directory (target/demo), with
/// absolute paths given by their file name, after printing the command line; its output is the
/// real output. An exit code other than 0 is an error.
fn sdq_cli(args: &[&str]) -> Res<()> {
    let shown: Vec<&str> = args
        .iter()
        .map(|a| {
            // Paths relative to target/demo, the current directory.
            let p = Path::new(a);
            p.file_name()
                .filter(|_| p.is_absolute())
                .and_then(|f| f.to_str())
                .unwrap_or(a)
        })
        .collect();
    println!("\n$ sdq {}", shown.join(" "));
    let code = cli::run_from(std::iter::once("sdq").chain(shown.iter().copied()));
    if code == ExitCode::SUCCESS {
        Ok(())
    } else {
        Err(format!("sdq {} failed ({code:?})", args.join(" ")))
    }
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn kib(n: u64) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

fn run() -> Res<()> {
    let sweep = std::env::args().any(|a| a == "--sweep");
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/demo"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // As after `cd target/demo`: the commands below name their files relative to it.
    std::env::set_current_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let t0 = Instant::now();

    // 1. Train.
    let data = mnist::load(&mnist::default_data_path())?;
    let (train, test) = mnist::split(&data, 4000, 0);
    let model = mnist::train(ModelKind::Fnn, 200, &train, &TrainConfig::default());
    let float_acc = mnist::evaluate(&model, &test);
    println!(
        "trained FNN 784-200-200-10 on {} digits in {:.1} s: float test accuracy {:.2}% ({} test digits)",
        train.len(),
        t0.elapsed().as_secs_f64(),
        100.0 * float_acc,
        test.len()
    );

    // 2. Save as safetensors.
    let st = dir.join("fnn.safetensors");
    save(&model, &st)?;

    // 3. sdq pack fnn.safetensors -o fnn.sdq (default options).
    let sdq_path = dir.join("fnn.sdq");
    sdq_cli(&["pack", &arg(&st), "-o", &arg(&sdq_path)])?;
    let ck = Checkpoint::open(&st).map_err(err)?;
    let file = SdqFile::open(&sdq_path).map_err(err)?;

    // 4. sdq verify fnn.sdq --against fnn.safetensors
    sdq_cli(&["verify", &arg(&sdq_path), "--against", &arg(&st)])?;

    // 5. sdq unpack fnn.sdq -o fnn.unpacked.safetensors, load it, evaluate.
    let un = dir.join("fnn.unpacked.safetensors");
    sdq_cli(&["unpack", &arg(&sdq_path), "-o", &arg(&un)])?;
    let q_model = loaded_model(&model, &un)?;
    let q_acc = mnist::evaluate(&q_model, &test);
    println!("\nfile sizes:");
    println!(
        "  float safetensors   {:>10}  ({} bytes)",
        kib(size(&st)),
        size(&st)
    );
    println!(
        "  .sdq                {:>10}  ({} bytes, {:.2}x smaller, {:.3} bits per weight)",
        kib(size(&sdq_path)),
        size(&sdq_path),
        size(&st) as f64 / size(&sdq_path).max(1) as f64,
        file.report().bits_per_weight()
    );
    println!(
        "  unpacked (F32)      {:>10}  ({} bytes)",
        kib(size(&un)),
        size(&un)
    );
    println!(
        "\ntest accuracy: float {:.2}%, quantized {:.2}% ({:+.2} points)",
        100.0 * float_acc,
        100.0 * q_acc,
        100.0 * (q_acc - float_acc)
    );

    if sweep {
        sweep_settings(&ck, &model, &test, &dir)?;
    }
    println!("\ndone in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Accuracy, size and error for other settings (the measurements behind the defaults).
fn sweep_settings(ck: &Checkpoint, model: &Model, test: &mnist::Dataset, dir: &Path) -> Res<()> {
    // The paper's scheme as the command line's earlier default: first-order ΣΔ, columns.
    let base = PackOptions {
        method: pack::Method::SigmaDelta,
        orientation: sdq::Orientation::Columns,
        ..PackOptions::default()
    };
    let all = PackOptions {
        include: vec!["*".into()],
        ..base.clone()
    };
    let with = |f: FrameRule, k: u32, d: DeltaChoice, o: &PackOptions| PackOptions {
        frame: f,
        levels: k,
        delta: d,
        ..o.clone()
    };
    let pcm_at = |b: f64| PackOptions {
        method: pack::Method::Pcm(sdq::quant::pcm::PcmOptions {
            target: sdq::quant::pcm::RateTarget::BitsPerWeight(b),
            ..Default::default()
        }),
        ..PackOptions::default()
    };
    use DeltaChoice::*;
    use FrameRule::*;
    let rows: Vec<(&str, PackOptions)> = vec![
        (
            "default (pcm, the whole file at 5.0 bits per float weight)",
            PackOptions {
                // What `sdq pack` adds to the library's defaults: the whole-file cap.
                file_bits: sdq::bridge::budget::file_bits_for(None, true, false),
                ..PackOptions::default()
            },
        ),
        ("--bits-per-weight 3", pcm_at(3.0)),
        ("--bits-per-weight 6", pcm_at(6.0)),
        (
            "--scheme first-order --axis columns --bits-per-weight 4 (code bits)",
            base.clone(),
        ),
        (
            "--bits-per-weight 2",
            with(BitsPerWeight(2.0), 1, Coefficient, &base),
        ),
        (
            "--bits-per-weight 3",
            with(BitsPerWeight(3.0), 1, Coefficient, &base),
        ),
        (
            "--bits-per-weight 6",
            with(BitsPerWeight(6.0), 1, Coefficient, &base),
        ),
        (
            "--bits-per-weight 8",
            with(BitsPerWeight(8.0), 1, Coefficient, &base),
        ),
        (
            "--bits-per-weight 4 --delta vector",
            with(BitsPerWeight(4.0), 1, Vector, &base),
        ),
        (
            "--bits-per-weight 4 --delta tensor",
            with(BitsPerWeight(4.0), 1, Tensor, &base),
        ),
        (
            "--bits-per-weight 4 --delta uniform",
            with(BitsPerWeight(4.0), 1, Uniform, &base),
        ),
        (
            "--bits-per-weight 4 --levels 2",
            with(BitsPerWeight(4.0), 2, Coefficient, &base),
        ),
        (
            "--bits-per-weight 4 --levels 2 --scheme second-order",
            PackOptions {
                scheme: sdq::quant::Scheme::SecondOrder,
                ..with(BitsPerWeight(4.0), 2, Coefficient, &base)
            },
        ),
        (
            "--bits-per-weight 8 --levels 2 --scheme second-order",
            PackOptions {
                scheme: sdq::quant::Scheme::SecondOrder,
                ..with(BitsPerWeight(8.0), 2, Coefficient, &base)
            },
        ),
        (
            "--bits-per-weight 4 --axis rows",
            PackOptions {
                orientation: sdq::Orientation::Rows,
                ..base.clone()
            },
        ),
        ("--bits-per-weight 4 --include '*'", all.clone()),
        (
            "--frame-size 4000 --delta uniform (paper)",
            with(FrameSize(4000), 1, Uniform, &base),
        ),
        (
            "--frame-size 1000 --delta uniform (paper)",
            with(FrameSize(1000), 1, Uniform, &base),
        ),
        (
            "--frame-size 1000 (coefficient)",
            with(FrameSize(1000), 1, Coefficient, &base),
        ),
    ];
    println!("\nsweep (same network; accuracy on the 1000 test digits):");
    println!(
        "{:<54} {:>10} {:>9} {:>9} {:>11} {:>11}",
        "pack options", "file", "bits/w", "accuracy", "max error", "max bound"
    );
    let path = dir.join("sweep.sdq");
    for (label, o) in rows {
        let s = pack::pack(ck, &path, &o, &mut NoProgress).map_err(err)?;
        let f = SdqFile::open(&path).map_err(err)?;
        let acc = mnist::evaluate(&decoded_model(model, &f)?, test);
        println!(
            "{:<54} {:>10} {:>9.3} {:>8.2}% {:>11.3e} {:>11.3e}",
            label,
            kib(f.file_len()),
            f.report().bits_per_weight(),
            100.0 * acc,
            s.max_error(),
            s.max_bound()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}
