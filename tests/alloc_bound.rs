//! Allocation bounds, measured with a counting global allocator (peak of live heap bytes, over
//! every thread — including the decoder's rayon workers — so the cases of this binary take one
//! lock and run one at a time).
//!
//! The bound checked for every corrupt-matrix file, fixture and fuzz regression, for the whole
//! sequence "open (memory-mapped), verify_all, decode every tensor into a new buffer":
//!
//!   peak ≤ file_len + output + inflated + 3 MiB
//!
//! - `file_len`: copies of the file's own bytes (the header tables, a tensor's δ values and
//!   permutation, which are read out of the map) are never larger than the file;
//! - `output`: the f32 bytes of the largest decoded tensor, the caller's request;
//! - `inflated`: 1.5 × the declared decoded length of the zstd-compressed sections of one tensor
//!   (0 for a file without zstd). Decompression buffers grow with the output actually produced
//!   and never past the declared length, which the spec caps (2^40 bytes, R11), see
//!   `zstd_sections_inflate_only_to_their_declared_size`;
//! - 3 MiB, a constant: the decoder's f32 staging block for a batch of vectors (at most 2 MiB,
//!   whatever the tensor's size, see `staging_is_a_constant_for_a_large_tensor`) plus the FFT
//!   plans and per-thread workspaces of these files.
//!
//! zstd's own decoder state is allocated by libzstd with C `malloc`, which this counter does not
//! see; it is bounded by zstd's default window limit (2^27 bytes, spec §6).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sdq::{Error, FormatError, SdqFile};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::SeqCst) + by;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Old and new blocks may both be live during the copy: count the new one first.
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result and the peak of live bytes above the level at the start.
fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let r = f();
    (r, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

const MIB: usize = 1 << 20;
/// Largest tensor decoded by these tests (elements).
const DECODE_BUDGET: u64 = 1 << 22;

fn lock() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Warm up once-only global state (rayon's pool, FFT planners' statics) outside measurements.
    let fixture = root().join("fixtures/mixed.sdq");
    let f = SdqFile::open(&fixture).unwrap();
    for t in f.tensors() {
        f.decode(&t.name).unwrap();
    }
    g
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// 1.5 × the declared decoded length of every zstd section of each tensor (a bias counts its
/// weight's), the largest over the tensors.
fn inflated(f: &SdqFile) -> usize {
    let own = |t: &sdq::format::TensorInfo| -> usize {
        t.sections()
            .iter()
            .filter(|(_, s)| s.compression == sdq::format::Compression::Zstd)
            .map(|(_, s)| s.decoded_len as usize * 3 / 2)
            .sum()
    };
    f.tensors()
        .iter()
        .map(|t| match &t.encoding {
            sdq::format::Encoding::BiasOf { weight } => {
                f.tensors().get(*weight).map_or(0, own) + own(t)
            }
            _ => own(t),
        })
        .max()
        .unwrap_or(0)
}

/// Opens (mapped), verifies and decodes `path`; returns (file_len, largest output bytes,
/// inflated), the last two measured outside the counted region.
fn exercise(path: &Path) -> (usize, usize, usize) {
    let len = std::fs::metadata(path).unwrap().len() as usize;
    let mut largest = 0usize;
    let mut infl = 0usize;
    if let Ok(f) = SdqFile::open(path) {
        let _ = f.verify_all();
        let names: Vec<(String, u64)> = f
            .tensors()
            .iter()
            .map(|t| (t.name.clone(), t.elements))
            .collect();
        for (name, elements) in names {
            if elements <= DECODE_BUDGET {
                largest = largest.max(elements as usize * 4);
                let _ = f.decode(&name);
            }
        }
        infl = inflated(&f);
    }
    (len, largest, infl)
}

#[test]
fn corrupt_matrix_fixtures_and_regressions_stay_within_bound() {
    let _g = lock();
    let mut files = files_in(&root().join("tests/corrupt"));
    files.extend(
        files_in(&root().join("fixtures"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "sdq")),
    );
    for target in ["open", "decode"] {
        files.extend(files_in(&root().join("tests/regressions").join(target)));
    }
    assert!(files.len() >= 70, "found only {} files", files.len());
    let mut worst = (0usize, 0usize, PathBuf::new());
    println!(
        "{:<44} {:>8} {:>9} {:>9} {:>10} {:>10}",
        "file", "bytes", "output", "inflated", "peak", "bound"
    );
    for p in &files {
        let ((len, out, infl), peak) = measure(|| exercise(p));
        let bound = len + out + infl + 3 * MIB;
        let name = p.strip_prefix(root()).unwrap_or(p).display().to_string();
        println!("{name:<44} {len:>8} {out:>9} {infl:>9} {peak:>10} {bound:>10}");
        assert!(peak <= bound, "{name}: peak {peak} > bound {bound}");
        let above = peak.saturating_sub(len + out + infl);
        if above > worst.0 {
            worst = (above, peak, p.clone());
        }
    }
    println!(
        "{} files; largest peak above file + output + inflated: {} bytes ({})",
        files.len(),
        worst.0,
        worst.2.display()
    );
}

/// The constant does not grow with the tensor: decoding an 8 MiB tensor (512 × 4096, columns,
/// with a bias, a δ per vector and an explicit ordering, so every copy the decoder makes is
/// exercised) costs its output, copies of its own δ and permutation bytes, and at most 3 MiB.
#[test]
fn staging_is_a_constant_for_a_large_tensor() {
    use sdq::format::{DeltaPolicy, Dtype, SdqWriter, TensorPlan};
    use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, Permutation, StepPolicy};
    let _g = lock();
    let (rows, cols, n) = (512usize, 4096usize, 1024usize);
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    let b: Vec<f32> = (0..rows).map(|i| (i % 13) as f32 / 13.0).collect();
    let m = Matrix::new(&w, rows, cols).unwrap().with_bias(&b).unwrap();
    let order: Vec<u32> = (0..n as u32).map(|i| (i * 5) % n as u32).collect();
    let q = FrameQuantizer::new(
        FrameDescriptor::harmonic(n, rows).unwrap(),
        1,
        StepPolicy::Coefficient,
    )
    .unwrap()
    .with_order(Permutation::explicit(order, n).unwrap())
    .unwrap()
    .quantize(&m, Orientation::Columns)
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.sdq");
    let plan = [
        TensorPlan::sigma_delta("w", Dtype::F32, &[rows as u64, cols as u64], true),
        TensorPlan::bias_of("b", Dtype::F32, rows as u64, "w"),
    ];
    let mut wr = SdqWriter::create(&path, &plan, &[]).unwrap();
    wr.write_quantized("w", &q, DeltaPolicy::Coefficient)
        .unwrap();
    wr.finish().unwrap();
    drop(q);
    drop(w);
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    let out = rows * cols * 4;
    let ((), peak) = measure(|| {
        let f = SdqFile::open(&path).unwrap();
        let decoded = f.decode("w").unwrap();
        assert_eq!(decoded.len(), rows * cols);
    });
    let above = peak.saturating_sub(out);
    println!("file {len} bytes, output {out} bytes, peak {peak} bytes: {above} above the output");
    assert!(
        peak <= len + out + 3 * MIB,
        "peak {peak} > file {len} + output {out} + 3 MiB"
    );
    // The file holds 1 bit per code (N·m/8 = 513 KiB) plus δ and ordering: the decoder's own
    // working memory above the output is a small constant, not a multiple of the output.
    assert!(above < 3 * MIB, "{above} bytes above an 8 MiB output");
}

// ---------------------------------------------------------------------------------------------
// Crafted files claiming huge sizes.

const MAGIC: [u8; 8] = [0x89, b'S', b'D', b'Q', 0x0D, 0x0A, 0x1A, 0x0A];

/// A file: valid preamble (CRCs right) claiming `header_len`, followed by `header` and `rest`.
fn file(header: &[u8], header_len: u64, rest: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&MAGIC);
    p.extend_from_slice(&1u16.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&header_len.to_le_bytes());
    p.extend_from_slice(&crc32fast::hash(header).to_le_bytes());
    let file_len = 64 + header.len() as u64 + rest.len() as u64;
    p.extend_from_slice(&file_len.to_le_bytes());
    p.extend_from_slice(&[0; 24]);
    let crc = crc32fast::hash(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p.extend_from_slice(header);
    p.extend_from_slice(rest);
    p
}

fn str_(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

/// A raw-tensor record: name, dtype, shape, encoding 0, section descriptor.
fn raw_record(
    out: &mut Vec<u8>,
    name: &[u8],
    dtype: u8,
    shape: &[u64],
    sec: [u64; 3],
    comp: u8,
    crc: u32,
) {
    str_(out, name);
    out.push(dtype);
    out.push(shape.len() as u8);
    for d in shape {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.push(0);
    for x in sec {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.push(comp);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn open_peak(bytes: Vec<u8>) -> (sdq::Result<SdqFile>, usize) {
    let len = bytes.len();
    let (r, peak) = measure(move || SdqFile::from_bytes(bytes));
    // `from_bytes` owns the buffer it is given (allocated before the measurement).
    let _ = len;
    (r, peak)
}

fn format_err(r: &sdq::Result<SdqFile>) -> String {
    match r {
        Ok(_) => "opened".into(),
        Err(Error::Format(f)) => f.to_string().split(':').next().unwrap_or("").to_string(),
        Err(e) => format!("{e}"),
    }
}

#[test]
fn header_claims_are_checked_before_allocating() {
    let _g = lock();
    let mut rows = Vec::new();
    // 1. A million tensors and 65,536 metadata entries claimed by an 8-byte header.
    let mut h = Vec::new();
    h.extend_from_slice(&1_000_000u32.to_le_bytes());
    h.extend_from_slice(&65_536u32.to_le_bytes());
    rows.push((
        "1e6 tensors, 65536 entries in 8 bytes",
        file(&h, h.len() as u64, &[]),
    ));
    // 2. Counts past the limits.
    let mut h = Vec::new();
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(&[0; 64]);
    rows.push((
        "u32::MAX tensors and entries",
        file(&h, h.len() as u64, &[]),
    ));
    // 3. A metadata value claiming 1 MiB (the limit) and one claiming 4 GiB.
    for claim in [1u32 << 20, u32::MAX] {
        let mut h = Vec::new();
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        str_(&mut h, b"k");
        h.extend_from_slice(&claim.to_le_bytes());
        h.extend_from_slice(b"short");
        rows.push(if claim == u32::MAX {
            (
                "metadata value of 4 GiB claimed",
                file(&h, h.len() as u64, &[]),
            )
        } else {
            (
                "metadata value of 1 MiB claimed",
                file(&h, h.len() as u64, &[]),
            )
        });
    }
    // 4. A tensor name claiming 4 GiB.
    let mut h = Vec::new();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(&[b'a'; 16]);
    rows.push((
        "tensor name of 4 GiB claimed",
        file(&h, h.len() as u64, &[]),
    ));
    // 5. header_len of 64 MiB (the limit) and of 2^63 in a tiny file.
    for claim in [64u64 << 20, 1 << 63] {
        let h = [0u8; 8];
        rows.push((
            if claim == 1 << 63 {
                "header_len 2^63 claimed"
            } else {
                "header_len 64 MiB claimed"
            },
            file(&h, claim, &[]),
        ));
    }
    // 6. A raw tensor of 2^40 F64 elements (8 TiB) whose section claims 8 TiB.
    let mut h = Vec::new();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    raw_record(
        &mut h,
        b"x",
        12,
        &[1 << 20, 1 << 20],
        [128, 0, 8 << 40],
        0,
        0,
    );
    rows.push(("raw tensor of 8 TiB claimed", file(&h, h.len() as u64, &[])));
    // 7. Rank 8 of u64::MAX dims (overflow).
    let mut h = Vec::new();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    raw_record(&mut h, b"x", 9, &[u64::MAX; 8], [128, 0, 0], 0, 0);
    rows.push(("shape of 8 x u64::MAX", file(&h, h.len() as u64, &[])));

    println!(
        "{:<40} {:>6} {:>8}  result",
        "crafted header", "bytes", "peak"
    );
    for (what, bytes) in rows {
        let len = bytes.len();
        let (r, peak) = open_peak(bytes);
        println!("{what:<40} {len:>6} {peak:>8}  {}", format_err(&r));
        assert!(r.is_err(), "{what}: opened");
        assert!(peak < 64 * 1024, "{what}: peak {peak} bytes");
    }
}

#[test]
fn many_small_records_cost_a_bounded_multiple_of_the_header() {
    let _g = lock();
    // A valid file whose header is nothing but minimal records: the parsed tables are the
    // largest header-driven allocation; measure how many bytes of tables per header byte.
    for count in [1_000u32, 20_000] {
        let mut h = Vec::new();
        h.extend_from_slice(&count.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        let header_len = 8 + count as usize * (4 + 8 + 1 + 1 + 1 + 29);
        let first_section = (64 + header_len).div_ceil(64) * 64;
        for i in 0..count {
            // Zero-element raw tensors, each with a zero-length section at the aligned offset.
            let name = format!("{i:08}");
            raw_record(
                &mut h,
                name.as_bytes(),
                1,
                &[],
                [first_section as u64, 0, 0],
                0,
                0,
            );
        }
        // U8 rank-0 tensors hold 1 element: use rank 1 with a 0 dim instead.
        let mut h = Vec::new();
        h.extend_from_slice(&count.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        let header_len = 8 + count as usize * (4 + 8 + 1 + 1 + 8 + 1 + 29);
        let first_section = (64 + header_len).div_ceil(64) * 64;
        for i in 0..count {
            let name = format!("{i:08}");
            raw_record(
                &mut h,
                name.as_bytes(),
                1,
                &[0],
                [first_section as u64, 0, 0],
                0,
                0,
            );
        }
        assert_eq!(h.len(), header_len);
        let pad = vec![0u8; first_section - 64 - header_len];
        let bytes = file(&h, h.len() as u64, &pad);
        let len = bytes.len();
        let (r, peak) = open_peak(bytes);
        let f = r.unwrap();
        assert_eq!(f.tensors().len(), count as usize);
        let ratio = peak as f64 / len as f64;
        println!("{count} minimal records: file {len} bytes, peak while opening {peak} bytes ({ratio:.1} x the file)");
        assert!(peak <= 16 * len + MIB, "{ratio}");
    }
}

/// A raw U8 tensor of `elements` whose one section is `stored`, zstd-compressed (CRC right).
fn zstd_file(elements: u64, stored: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    let header_len = 8 + 4 + 1 + 1 + 1 + 8 + 1 + 29;
    let offset = (64 + header_len as u64).div_ceil(64) * 64;
    raw_record(
        &mut h,
        b"x",
        1,
        &[elements],
        [offset, stored.len() as u64, elements],
        1,
        crc32fast::hash(stored),
    );
    assert_eq!(h.len(), header_len);
    let mut rest = vec![0u8; (offset - 64) as usize - header_len];
    rest.extend_from_slice(stored);
    file(&h, h.len() as u64, &rest)
}

#[test]
fn zstd_sections_inflate_only_to_their_declared_size() {
    let _g = lock();
    use std::io::Write;
    // A real zstd bomb: 64 MiB of zeros in a few kilobytes.
    const PRODUCED: usize = 64 * MIB;
    let bomb = {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        let zeros = vec![0u8; MIB];
        for _ in 0..PRODUCED / MIB {
            e.write_all(&zeros).unwrap();
        }
        e.finish().unwrap()
    };
    let garbage = [0x28u8, 0xB5, 0x2F, 0xFD, 0, 0, 0, 0, 1, 2, 3];
    let cases: [(&str, u64, &[u8]); 5] = [
        ("bomb (64 MiB) declared 4 KiB", 4096, &bomb),
        ("bomb (64 MiB) declared 1 MiB", 1 << 20, &bomb),
        ("bomb (64 MiB) declared 1 TiB", 1 << 40, &bomb),
        ("11 bytes of garbage declared 1 TiB", 1 << 40, &garbage),
        ("11 bytes of garbage declared 1 MiB", 1 << 20, &garbage),
    ];
    println!("{:<40} {:>8} {:>10}  result", "section", "stored", "peak");
    for (what, declared, stored) in cases {
        let bytes = zstd_file(declared, stored);
        let f = SdqFile::from_bytes(bytes).unwrap();
        let (r, peak) = measure(|| f.verify_all());
        let result = match &r {
            Err(Error::Format(FormatError::Decompression { problem, .. })) => problem.to_string(),
            other => format!("{other:?}"),
        };
        println!("{what:<40} {:>8} {peak:>10}  {result}", stored.len());
        assert!(r.is_err(), "{what}");
        // The buffer grows with the output actually produced (64 KiB, then doubling) and never
        // past the declared size: at most 1.5 x min(declared, produced) while a doubling
        // reallocation copies, 3 x when the frame stops short of a larger claim.
        let produced = if stored.len() == garbage.len() {
            0
        } else {
            PRODUCED
        };
        let bound = if (declared as usize) <= produced {
            declared as usize * 3 / 2 + 68 * 1024
        } else {
            3 * produced.max(64 * 1024) + 4 * 1024
        };
        assert!(peak <= bound, "{what}: peak {peak} > {bound}");
    }
}

/// The one cost that grows with a header field rather than with the file: the frame itself.
/// Decoding plans and runs an FFT of length N (or builds a tetris frame of N vectors) whatever
/// the output's size, so the spec ties N to d (N ≤ 1024·d). At the extreme, d = 16384 and
/// N = 2^24 (both limits at once), a file of a few hundred bytes (zstd-compressed 1-bit codes)
/// for a 64 KiB output: measured here per frame vector, and stated in SECURITY.md.
#[test]
fn frame_cost_at_the_largest_frame_size() {
    use sdq::format::{DeltaPolicy, Dtype, SdqStreamWriter, TensorPlan};
    use sdq::{FrameDescriptor, FrameQuantizer, Matrix, Orientation, StepPolicy};
    let _g = lock();
    let n = sdq::limits::MAX_FRAME_SIZE as usize;
    let d = n / sdq::limits::MAX_REDUNDANCY as usize;
    assert!(FrameDescriptor::harmonic(n, d - 1).is_err(), "N ≤ 1024·d");
    for (family, desc) in [
        ("harmonic", FrameDescriptor::harmonic(n, d).unwrap()),
        (
            "spectral tetris",
            FrameDescriptor::spectral_tetris(n, d).unwrap(),
        ),
    ] {
        let w: Vec<f32> = (0..d).map(|i| (i % 7) as f32 / 7.0 - 0.5).collect();
        let q = FrameQuantizer::new(desc, 1, StepPolicy::Coefficient)
            .unwrap()
            .quantize(&Matrix::new(&w, d, 1).unwrap(), Orientation::Columns)
            .unwrap();
        let plan = [TensorPlan::sigma_delta(
            "w",
            Dtype::F32,
            &[d as u64, 1],
            false,
        )];
        let mut wr = SdqStreamWriter::in_memory(&plan, &[]).unwrap();
        wr.set_zstd(Some(19)).unwrap();
        wr.write_quantized("w", &q, DeltaPolicy::Coefficient)
            .unwrap();
        let bytes = wr.finish().unwrap().into_inner();
        drop(q);
        let (len, out) = (bytes.len(), d * 4);
        let f = SdqFile::from_bytes(bytes).unwrap();
        let infl = inflated(&f);
        let (v, peak) = measure(|| f.decode("w").unwrap());
        assert_eq!(v.len(), d);
        let frame = peak.saturating_sub(infl + out);
        println!(
            "{family}: d = {d}, N = 2^24, file {len} bytes, output {out}, inflated {infl}, peak {peak} bytes: {:.1} bytes per frame vector",
            frame as f64 / n as f64
        );
        // The stated bound: file + output + inflated + 64 bytes per frame vector + 3 MiB.
        assert!(
            peak <= len + out + infl + 64 * n + 3 * MIB,
            "{family}: peak {peak}"
        );
    }
}
