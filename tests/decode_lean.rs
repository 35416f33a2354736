//! The decoder alone (`--no-default-features --features decode`): every fixture decodes to its
//! `.expected.bin` (fixtures/README.md: sigma-delta tensors within 1e-6 × the tensor's largest
//! |value|, raw tensors exactly), through each way of opening a file.

use std::path::Path;

use sdq::format::Encoding;
use sdq::SdqFile;

fn expected(name: &str) -> Vec<f32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/{name}.expected.bin"));
    let bytes = std::fs::read(&path).expect("expected.bin");
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn check(file: &SdqFile, fixture: &str) {
    let want = expected(fixture);
    let mut at = 0usize;
    for t in file.tensors() {
        let got = file.decode(&t.name).expect("decode");
        let end = at + got.len();
        let exp = &want[at..end];
        at = end;
        let scale = exp.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        for (i, (g, e)) in got.iter().zip(exp).enumerate() {
            match t.encoding {
                Encoding::Raw { .. } => assert_eq!(g.to_bits(), e.to_bits(), "{} [{i}]", t.name),
                _ => assert!(
                    (g - e).abs() <= 1e-6 * scale,
                    "{fixture} {} [{i}]: {g} vs {e}",
                    t.name
                ),
            }
        }
    }
    assert_eq!(at, want.len(), "{fixture}: every expected value is used");
    file.verify_all().expect("verify_all");
}

fn fixtures() -> Vec<&'static str> {
    let mut v = vec!["k1_tensor_delta", "k4_vector_delta", "worked_example"];
    // mixed.sdq has zstd-compressed sections.
    if cfg!(feature = "zstd") {
        v.push("mixed");
    }
    v
}

#[test]
fn fixtures_decode_to_their_expected_values() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for f in fixtures() {
        let path = dir.join(format!("{f}.sdq"));
        check(&SdqFile::open(&path).expect("open"), f);
        check(&SdqFile::open_read(&path).expect("open_read"), f);
        let bytes = std::fs::read(&path).expect("read");
        check(&SdqFile::from_bytes(bytes).expect("from_bytes"), f);
    }
}

#[test]
fn decode_into_checks_the_buffer_length_and_the_name() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/k1_tensor_delta.sdq");
    let file = SdqFile::open(path).expect("open");
    let mut short = vec![0.0f32; 239];
    assert!(matches!(
        file.decode_into("layer.weight", &mut short),
        Err(sdq::Error::Parameter(_))
    ));
    let mut right = vec![0.0f32; 240];
    assert!(matches!(
        file.decode_into("nope", &mut right),
        Err(sdq::Error::NoSuchTensor(_))
    ));
    file.decode_into("layer.weight", &mut right)
        .expect("decode");
    let r = file.report();
    assert_eq!(r.total_bytes, file.file_len());
}

#[cfg(not(feature = "zstd"))]
#[test]
fn zstd_sections_are_refused_without_the_feature() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mixed.sdq");
    let file = SdqFile::open(path).expect("open");
    // Not every section of mixed.sdq is compressed (zstd is kept only where it is smaller).
    let err = file.verify_all().expect_err("no zstd");
    assert!(err.to_string().contains("R48"), "{err}");
}
