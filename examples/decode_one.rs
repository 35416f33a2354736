//! The smallest useful decoder: open an .sdq file, decode one tensor, print a summary.
//!
//! Needs only the `decode` feature, so it is also the measure of a lean embedding (README,
//! "Features"):
//!
//! ```sh
//! cargo run --release --no-default-features --features decode --example decode_one -- \
//!     fixtures/k1_tensor_delta.sdq layer.weight
//! ```
//!
//! Without a tensor name it decodes the file's first tensor.

use std::process::ExitCode;

fn run() -> sdq::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next() else {
        return Err(sdq::Error::Parameter(
            "usage: decode_one FILE.sdq [TENSOR]".to_owned(),
        ));
    };
    // Opening validates the preamble, the header and the layout; no tensor data is read yet.
    let file = sdq::SdqFile::open(&path)?;
    let name = match args.next() {
        Some(n) => n.to_string_lossy().into_owned(),
        None => match file.tensors().first() {
            Some(t) => t.name.clone(),
            None => return Err(sdq::Error::Parameter("the file holds no tensor".to_owned())),
        },
    };
    let info = file.tensor(&name)?;
    let mut values = vec![0.0f32; usize::try_from(info.elements).unwrap_or(usize::MAX)];
    // CRCs, codes and δ are checked as the tensor is rebuilt (one FFT per stored vector).
    file.decode_into(&name, &mut values)?;
    let sum: f64 = values.iter().map(|&x| f64::from(x)).sum();
    let max = values.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    println!(
        "{name:?}: {} {:?} {}, {} values, sum {sum:.6}, max |x| {max:.6}",
        info.dtype.name(),
        info.shape,
        info.encoding.name(),
        values.len(),
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decode_one: {e}");
            ExitCode::FAILURE
        }
    }
}
