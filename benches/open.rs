//! Opening cost must not grow with the data: open + list a file of T tensors totalling ~1 MiB and
//! one of the same T tensors totalling ~1 GiB, and print the ratio of the median times.
//!
//! `cargo bench --bench open` (plain std::time, no harness). Both files are written streaming
//! into a temporary directory and removed afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use sdq::format::{Dtype, SdqFile, SdqWriter, TensorPlan};

const TENSORS: usize = 1024;
const REPS: usize = 301;

fn write(path: &Path, bytes_per_tensor: usize) -> sdq::Result<()> {
    let plan: Vec<TensorPlan> = (0..TENSORS)
        .map(|i| {
            TensorPlan::raw(
                format!("layer.{i}.weight"),
                Dtype::U8,
                &[bytes_per_tensor as u64],
            )
        })
        .collect();
    let zeros = vec![0u8; bytes_per_tensor];
    let mut w = SdqWriter::create(path, &plan, &[("bench".into(), "open".into())])?;
    for p in &plan {
        w.write_raw(&p.name, &zeros)?;
    }
    w.finish()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(path: &Path, open: fn(&Path) -> sdq::Result<SdqFile>) -> sdq::Result<Duration> {
    let mut times = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t = Instant::now();
        let f = open(path)?;
        let listed = f.tensors().iter().map(|t| t.name.len()).sum::<usize>();
        std::hint::black_box(listed);
        times.push(t.elapsed());
    }
    Ok(median(times))
}

fn main() -> sdq::Result<()> {
    let dir = std::env::temp_dir().join(format!("sdq-bench-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| sdq::Error::io(&dir, e))?;
    let small = dir.join("small.sdq");
    let large = dir.join("large.sdq");
    let t = Instant::now();
    write(&small, 1 << 10)?;
    write(&large, 1 << 20)?;
    eprintln!("wrote both files in {:.1?}", t.elapsed());
    let result = (|| -> sdq::Result<()> {
        for (label, open) in [
            (
                "map (SdqFile::open)",
                (|p: &Path| SdqFile::open(p)) as fn(&Path) -> sdq::Result<SdqFile>,
            ),
            ("reads (SdqFile::open_read)", |p: &Path| {
                SdqFile::open_read(p)
            }),
        ] {
            let a = time(&small, open)?;
            let b = time(&large, open)?;
            println!(
                "open+list, {label}: {TENSORS} tensors: {:>6} KiB file {:>9.1?}, {:>8} KiB file {:>9.1?}; ratio {:.2}",
                std::fs::metadata(&small).map(|m| m.len() >> 10).unwrap_or(0),
                a,
                std::fs::metadata(&large).map(|m| m.len() >> 10).unwrap_or(0),
                b,
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
