//! Decoder robustness under atomic replacement (issue 16, part 4).
//!
//! Another *process* — the `sdq` binary, `sdq pack IN.safetensors -o m.sdq`, alternating between
//! two different checkpoints — replaces `m.sdq` over and over (temporary file, fsync, rename:
//! spec §12), while 8 threads decode every tensor of it in a loop. The guarantee checked:
//!
//! - a reader that opens the path anew (`SdqFile::open`, mapped, on even threads;
//!   `SdqFile::open_read`, positioned reads, on odd ones) sees the old file or the new file
//!   whole: every decoded tensor of one opening equals, bit for bit, the decoding of the *same*
//!   one of the two packed inputs — never a mix, never an error, never a crash;
//! - a reader that holds an open `SdqFile` across replacements keeps decoding the contents it
//!   opened (the map, or the open descriptor, holds the old inode): each thread re-decodes the
//!   file it opened in its previous round, and one file opened before the first replacement
//!   must still decode to the first input at the end.
//!
//! The test also fails if the replacements did not really overlap the reading (fewer than
//! `MIN_REPLACEMENTS` packs, or one of the two versions never seen by a fresh opening).

#![cfg(unix)]

mod cli_common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cli_common::{f32_tensor, write, T};
use sdq::SdqFile;

/// Readers.
const THREADS: usize = 8;
/// Run at least this long …
const MIN_RUN: Duration = Duration::from_secs(6);
/// … and until the other process has replaced the file this many times (but give up at
/// `MAX_RUN`: then the test fails).
const MIN_REPLACEMENTS: usize = 20;
const MAX_RUN: Duration = Duration::from_secs(60);

/// The decoded contents of one file: (name, f32 bit patterns) per tensor, in file order.
type Decoded = Vec<(String, Vec<u32>)>;

fn decode_all(f: &SdqFile) -> Result<Decoded, String> {
    f.tensors()
        .iter()
        .map(|t| {
            f.decode(&t.name)
                .map(|v| (t.name.clone(), v.iter().map(|x| x.to_bits()).collect()))
                .map_err(|e| format!("decode {}: {e}", t.name))
        })
        .collect()
}

/// A checkpoint: four F32 weights (two with biases); `seed` makes the values differ, the names
/// and shapes are the same for both inputs, so a file mixing the two would still look plausible.
fn checkpoint(path: &Path, seed: u64) {
    let tensors: Vec<T> = vec![
        f32_tensor("l0.weight", &[96, 64], seed),
        f32_tensor("l0.bias", &[96], seed + 1),
        f32_tensor("l1.weight", &[64, 96], seed + 2),
        f32_tensor("l1.bias", &[64], seed + 3),
        f32_tensor("l2.weight", &[128, 64], seed + 4),
        f32_tensor("l3.weight", &[10, 128], seed + 5),
    ];
    write(path, &tensors, &[("format", "pt")]);
}

fn pack(input: &Path, out: &Path) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sdq"))
        .arg("pack")
        .arg(input)
        .arg("-o")
        .arg(out)
        .arg("--quiet")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sdq pack");
    assert!(
        o.status.success(),
        "sdq pack {} failed: {}",
        input.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Which of the two expected decodings `d` is: 0, 1, or an error describing the mix.
fn classify(d: &Decoded, expected: &[Decoded; 2]) -> Result<usize, String> {
    if let Some(i) = expected.iter().position(|e| e == d) {
        return Ok(i);
    }
    let per_tensor: Vec<String> = d
        .iter()
        .map(|(name, bits)| {
            let which: Vec<usize> = (0..2)
                .filter(|&i| expected[i].iter().any(|(n, b)| n == name && b == bits))
                .collect();
            format!("{name}: {which:?}")
        })
        .collect();
    Err(format!(
        "decoded contents equal neither input whole (tensor → inputs it matches: {per_tensor:?})"
    ))
}

#[test]
fn readers_see_the_old_or_the_new_file_whole_while_another_process_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    ];
    checkpoint(&inputs[0], 1);
    checkpoint(&inputs[1], 1000);

    // The expected decodings, from packs to separate paths.
    let expected: [Decoded; 2] = [0, 1].map(|i| {
        let p = dir.path().join(format!("expected{i}.sdq"));
        pack(&inputs[i], &p);
        decode_all(&SdqFile::open(&p).unwrap()).unwrap()
    });
    assert_ne!(
        expected[0], expected[1],
        "the two inputs decode differently"
    );
    assert_eq!(
        expected[0].iter().map(|t| &t.0).collect::<Vec<_>>(),
        expected[1].iter().map(|t| &t.0).collect::<Vec<_>>(),
        "same tensor names"
    );

    let target = dir.path().join("m.sdq");
    pack(&inputs[0], &target);
    // Held across every replacement below.
    let held_from_start = SdqFile::open(&target).unwrap();
    assert_eq!(decode_all(&held_from_start).unwrap(), expected[0]);

    let expected = Arc::new(expected);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();

    let readers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (expected, stop, target) = (expected.clone(), stop.clone(), target.clone());
            std::thread::spawn(move || -> Result<[usize; 2], String> {
                let mut seen = [0usize; 2];
                let mut held: Option<(SdqFile, usize)> = None;
                while !stop.load(Ordering::Relaxed) {
                    let f = if t % 2 == 0 {
                        SdqFile::open(&target)
                    } else {
                        SdqFile::open_read(&target)
                    }
                    .map_err(|e| format!("thread {t}: open: {e}"))?;
                    let d = decode_all(&f).map_err(|e| format!("thread {t}: {e}"))?;
                    let which = classify(&d, &expected).map_err(|e| format!("thread {t}: {e}"))?;
                    seen[which] += 1;
                    // The file opened in the previous round, replaced since (most likely), still
                    // decodes to what it decoded then.
                    if let Some((old, old_which)) = held.take() {
                        let again =
                            decode_all(&old).map_err(|e| format!("thread {t}: held file: {e}"))?;
                        if again != expected[old_which] {
                            return Err(format!(
                                "thread {t}: a held file changed contents after replacement"
                            ));
                        }
                    }
                    held = Some((f, which));
                }
                Ok(seen)
            })
        })
        .collect();

    // The other process: pack b, a, b, a, … onto the same path.
    let mut n = 0usize;
    while (start.elapsed() < MIN_RUN || n < MIN_REPLACEMENTS) && start.elapsed() < MAX_RUN {
        pack(&inputs[(n + 1) % 2], &target);
        n += 1;
    }
    stop.store(true, Ordering::Relaxed);

    let mut seen = [0usize; 2];
    let mut errors = Vec::new();
    for r in readers {
        match r.join() {
            Ok(Ok(s)) => {
                seen[0] += s[0];
                seen[1] += s[1];
            }
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a reader thread panicked".into()),
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{n} replacements by `sdq pack` in {:.1} s; fresh openings decoded input a {} times, \
         input b {} times; {THREADS} threads",
        elapsed.as_secs_f64(),
        seen[0],
        seen[1]
    );
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(
        n >= MIN_REPLACEMENTS,
        "only {n} replacements in {elapsed:?}"
    );
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "readers saw both versions: {seen:?}"
    );
    // The file held since before the first replacement is still the first input, whole.
    held_from_start.verify_all().unwrap();
    assert_eq!(decode_all(&held_from_start).unwrap(), expected[0]);
    // And the path now holds the last version packed.
    let last = decode_all(&SdqFile::open(&target).unwrap()).unwrap();
    assert_eq!(last, expected[n % 2]);
}
