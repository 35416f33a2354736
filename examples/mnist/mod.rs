//! A small, deterministic MNIST loader and trainer for the examples and tests.
//!
//! The data is the 5,000-digit `data/mnist_5k.csv.gz` shipped with the crate (see
//! `data/README.md`). The models are the bias-free networks of Section 6 of
//! "Frame Quantization of Neural Networks" (Czaja & Na, 2024), with ReLU `ρ`:
//!
//! * [`ModelKind::Fnn`]: `A3 ∘ ρ ∘ A2 ∘ ρ ∘ A1`, shapes 784 → n → n → 10;
//! * [`ModelKind::ResNet`]: `A3 ∘ ρ ∘ R2 ∘ R1 ∘ ρ ∘ A1`, with residual blocks
//!   `R(x) = x + V·ρ(W·x)` and square `n × n` matrices `W`, `V`.
//!
//! Weights are stored in PyTorch layout, row-major `[out, in]`, acting as `y = W·x`.
//! Everything (split, initialisation, batch order, arithmetic) is single-threaded and
//! driven by an explicit seed, so a run is bit-for-bit reproducible on a given machine.
//! (`matrixmultiply` picks its SIMD kernel at run time, so another CPU may round
//! differently: compare accuracies with a tolerance, not weights bit for bit.)
//!
//! This file is a module, not an example binary: examples include it with `mod mnist;`
//! and tests with `#[path = "../examples/mnist/mod.rs"] mod mnist;`.

#![allow(dead_code)]

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

/// Side length of an MNIST image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Number of pixels (input features) per image.
pub const N_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of classes (digits 0–9).
pub const N_CLASSES: usize = 10;

/// Scale of the initial residual-branch output matrices `V` relative to He init.
const RESIDUAL_INIT_SCALE: f32 = 0.1;
/// Number of images pushed through the network at once during evaluation.
const EVAL_CHUNK: usize = 500;
/// Mixed into the seed so the batch-order stream differs from the initialisation stream.
const SHUFFLE_STREAM: u64 = 0x5348_5546_464c_4531;

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/// A set of labelled images: pixels scaled to `[0, 1]`, stored row-major, one image after
/// the other.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `len() * N_PIXELS` pixel values in `[0, 1]`; image `i` is
    /// `images[i * N_PIXELS..(i + 1) * N_PIXELS]`.
    pub images: Vec<f32>,
    /// One label in `0..N_CLASSES` per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The `N_PIXELS` pixels of image `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * N_PIXELS..(i + 1) * N_PIXELS]
    }

    /// A new set holding the images at `indices`, in that order.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * N_PIXELS);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset { images, labels }
    }
}

/// Path of the MNIST subset shipped with the crate: `<crate>/data/mnist_5k.csv.gz`.
pub fn default_data_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist_5k.csv.gz"))
}

/// Loads a gzip'd CSV of MNIST digits: no header, one image per line, 784 pixel values
/// (integers 0–255) followed by the label (0–9). Pixels are scaled to `[0, 1]`.
/// Blank lines are skipped.
///
/// # Errors
/// A message naming the file (and the line, for a malformed row) if the file cannot be
/// opened or decompressed, a row has the wrong number of fields or a value out of range,
/// or the file holds no row.
pub fn load(path: &Path) -> Result<Dataset, String> {
    let file = File::open(path)
        .map_err(|e| format!("cannot open MNIST data file {}: {e}", path.display()))?;
    let reader = BufReader::new(GzDecoder::new(file));
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line_no = index + 1;
        let line = line.map_err(|e| {
            format!(
                "{}: line {line_no}: cannot read or decompress: {e}",
                path.display()
            )
        })?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let label = parse_row(line, &mut images)
            .map_err(|msg| format!("{}: line {line_no}: {msg}", path.display()))?;
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(format!("{}: holds no image", path.display()));
    }
    Ok(Dataset { images, labels })
}

/// Parses one CSV row, appending its scaled pixels to `images` and returning its label.
/// On error `images` may hold a partial row; the caller then discards everything.
fn parse_row(line: &str, images: &mut Vec<f32>) -> Result<u8, String> {
    let mut fields = line.split(',');
    for column in 1..=N_PIXELS {
        let field = fields.next().ok_or_else(|| {
            format!(
                "expected {} comma-separated values, found {}",
                N_PIXELS + 1,
                column - 1
            )
        })?;
        let value: u8 = field.trim().parse().map_err(|_| {
            format!(
                "column {column}: pixel value {:?} is not an integer in 0..=255",
                field.trim()
            )
        })?;
        images.push(f32::from(value) / 255.0);
    }
    let field = fields.next().ok_or_else(|| {
        format!(
            "expected {} comma-separated values, found {N_PIXELS}",
            N_PIXELS + 1
        )
    })?;
    let label: u8 = field
        .trim()
        .parse()
        .ok()
        .filter(|&l| usize::from(l) < N_CLASSES)
        .ok_or_else(|| {
            format!(
                "column {}: label {:?} is not a digit 0..=9",
                N_PIXELS + 1,
                field.trim()
            )
        })?;
    let extra = fields.count();
    if extra > 0 {
        return Err(format!(
            "expected {} comma-separated values, found {}",
            N_PIXELS + 1,
            N_PIXELS + 1 + extra
        ));
    }
    Ok(label)
}

/// Shuffles `ds` with a fixed `seed` and splits it into `(train, test)`, the first holding
/// `n_train` images and the second the rest. The shipped file is grouped by class, so
/// always split through this function rather than by position.
///
/// # Panics
/// If `n_train > ds.len()`.
pub fn split(ds: &Dataset, n_train: usize, seed: u64) -> (Dataset, Dataset) {
    assert!(
        n_train <= ds.len(),
        "split: n_train = {n_train} exceeds the {} images available",
        ds.len()
    );
    let mut order: Vec<usize> = (0..ds.len()).collect();
    Rng::new(seed).shuffle(&mut order);
    (ds.subset(&order[..n_train]), ds.subset(&order[n_train..]))
}

// ---------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------

/// A small deterministic pseudo-random generator: xoshiro256** seeded through SplitMix64.
/// Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole stream is determined by `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 uniformly random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform `f32` in `[0, 1)` (24 random bits).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// A uniform `f32` in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }

    /// A uniform integer in `0..n` (Lemire's unbiased multiply-and-reject method).
    ///
    /// # Panics
    /// If `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below: empty range");
        let n = n as u64;
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as usize;
            }
        }
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------

/// Which of the two bias-free architectures of the paper's Section 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// `A3 ∘ ρ ∘ A2 ∘ ρ ∘ A1`: tensors `fc1.weight` `[n, 784]`, `fc2.weight` `[n, n]`,
    /// `fc3.weight` `[10, n]`.
    Fnn,
    /// `A3 ∘ ρ ∘ R2 ∘ R1 ∘ ρ ∘ A1` with `R(x) = x + V·ρ(W·x)`: tensors `fc1.weight`
    /// `[n, 784]`, `block1.w.weight`, `block1.v.weight`, `block2.w.weight`,
    /// `block2.v.weight` (all `[n, n]`), `fc3.weight` `[10, n]`.
    ResNet,
}

impl ModelKind {
    /// Both kinds, FNN first.
    pub const ALL: [ModelKind; 2] = [ModelKind::Fnn, ModelKind::ResNet];

    /// Names and shapes `[out, in]` of the weight tensors of a model of hidden width
    /// `width`, in canonical order.
    pub fn tensor_specs(self, width: usize) -> Vec<(String, Vec<usize>)> {
        let n = width;
        let spec = |name: &str, shape: [usize; 2]| (name.to_string(), shape.to_vec());
        match self {
            ModelKind::Fnn => vec![
                spec("fc1.weight", [n, N_PIXELS]),
                spec("fc2.weight", [n, n]),
                spec("fc3.weight", [N_CLASSES, n]),
            ],
            ModelKind::ResNet => vec![
                spec("fc1.weight", [n, N_PIXELS]),
                spec("block1.w.weight", [n, n]),
                spec("block1.v.weight", [n, n]),
                spec("block2.w.weight", [n, n]),
                spec("block2.v.weight", [n, n]),
                spec("fc3.weight", [N_CLASSES, n]),
            ],
        }
    }

    /// The layer sequence, input first; indices refer to [`ModelKind::tensor_specs`].
    fn ops(self) -> &'static [Op] {
        match self {
            ModelKind::Fnn => &[
                Op::Linear(0),
                Op::Relu,
                Op::Linear(1),
                Op::Relu,
                Op::Linear(2),
            ],
            ModelKind::ResNet => &[
                Op::Linear(0),
                Op::Relu,
                Op::Residual { w: 1, v: 2 },
                Op::Residual { w: 3, v: 4 },
                Op::Relu,
                Op::Linear(5),
            ],
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ModelKind::Fnn => "FNN",
            ModelKind::ResNet => "ResNet",
        })
    }
}

/// One layer of a network; indices point into the canonical tensor list.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `y = W·x`.
    Linear(usize),
    /// `y = max(x, 0)`.
    Relu,
    /// `y = x + V·ρ(W·x)`.
    Residual { w: usize, v: usize },
}

/// A bias-free network: its kind, hidden width and weight tensors.
///
/// The tensors may be replaced (e.g. by quantized ones) as long as every canonical name
/// of [`ModelKind::tensor_specs`] is present with its shape; order does not matter and
/// extra tensors are ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The architecture.
    pub kind: ModelKind,
    /// The hidden width `n`.
    pub width: usize,
    /// `(name, shape, data)`, shape `[out, in]`, data row-major of length `out * in`.
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Model {
    /// A freshly initialised, untrained model. Every matrix is He/Kaiming-uniform,
    /// `U(-√(6/fan_in), √(6/fan_in))`, drawn from `seed` in canonical order; the residual
    /// output matrices `V` are further scaled by 0.1 so each block starts close to the
    /// identity.
    ///
    /// # Panics
    /// If `width == 0`.
    pub fn init(kind: ModelKind, width: usize, seed: u64) -> Model {
        assert!(width > 0, "Model::init: width must be positive");
        let mut rng = Rng::new(seed);
        let tensors = kind
            .tensor_specs(width)
            .into_iter()
            .map(|(name, shape)| {
                let fan_in = shape[1];
                let mut bound = (6.0 / fan_in as f32).sqrt();
                if name.starts_with("block") && name.contains(".v.") {
                    bound *= RESIDUAL_INIT_SCALE;
                }
                let data = (0..shape[0] * shape[1])
                    .map(|_| rng.uniform(-bound, bound))
                    .collect();
                (name, shape, data)
            })
            .collect();
        Model {
            kind,
            width,
            tensors,
        }
    }

    /// The data of the tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&[f32]> {
        self.tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, d)| d.as_slice())
    }

    /// Mutable access to the data of the tensor called `name`, if present.
    pub fn tensor_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        self.tensors
            .iter_mut()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, d)| d.as_mut_slice())
    }

    /// Total number of weights.
    pub fn num_params(&self) -> usize {
        self.tensors.iter().map(|(_, _, d)| d.len()).sum()
    }

    /// Checks that every tensor the architecture needs is present with the right shape and
    /// data length.
    ///
    /// # Errors
    /// A message naming the first missing or ill-shaped tensor.
    pub fn check(&self) -> Result<(), String> {
        self.resolve().map(|_| ())
    }

    /// Positions in `self.tensors` of the canonical tensors, after checking their shapes.
    fn resolve(&self) -> Result<Vec<usize>, String> {
        self.kind
            .tensor_specs(self.width)
            .iter()
            .map(|(name, shape)| {
                let pos = self
                    .tensors
                    .iter()
                    .position(|(n, _, _)| n == name)
                    .ok_or_else(|| format!("{} model lacks tensor {name}", self.kind))?;
                let (_, s, d) = &self.tensors[pos];
                if s != shape || d.len() != shape.iter().product::<usize>() {
                    return Err(format!(
                        "tensor {name}: expected shape {shape:?}, found shape {s:?} with {} values",
                        d.len()
                    ));
                }
                Ok(pos)
            })
            .collect()
    }

    /// The canonical weight matrices, in [`ModelKind::tensor_specs`] order.
    ///
    /// # Panics
    /// If [`Model::check`] fails.
    fn weights(&self) -> Vec<Matrix<'_>> {
        let positions = self
            .resolve()
            .unwrap_or_else(|msg| panic!("invalid model: {msg}"));
        positions
            .into_iter()
            .map(|p| {
                let (_, shape, data) = &self.tensors[p];
                Matrix {
                    rows: shape[0],
                    cols: shape[1],
                    data,
                }
            })
            .collect()
    }
}

/// A borrowed row-major weight matrix `[rows = out, cols = in]`.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    rows: usize,
    cols: usize,
    data: &'a [f32],
}

// ---------------------------------------------------------------------------------------
// Forward and backward passes
// ---------------------------------------------------------------------------------------

/// `C (m×n) = op(A)·op(B) + beta·C`, all row-major. With `ta`, `A` is stored as `k×m`
/// and used transposed; with `tb`, `B` is stored as `n×k` and used transposed.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    beta: f32,
    c: &mut [f32],
) {
    assert_eq!(a.len(), m * k, "gemm: A has the wrong size");
    assert_eq!(b.len(), k * n, "gemm: B has the wrong size");
    assert_eq!(c.len(), m * n, "gemm: C has the wrong size");
    let (rsa, csa) = if ta { (1, m) } else { (k, 1) };
    let (rsb, csb) = if tb { (1, k) } else { (n, 1) };
    // SAFETY: the asserts above guarantee that every element addressed through these
    // strides, (i·rs + j·cs) for i, j within the stated dimensions, lies inside the
    // corresponding slice; `c` is exclusively borrowed and does not alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

impl Matrix<'_> {
    /// `out = beta·out + X·Wᵀ` for a batch `X` (`batch × cols`); `out` is `batch × rows`.
    fn forward_into(&self, x: &[f32], batch: usize, beta: f32, out: &mut [f32]) {
        gemm(
            batch, self.cols, self.rows, x, false, self.data, true, beta, out,
        );
    }

    /// `X·Wᵀ` for a batch `X` (`batch × cols`): a new `batch × rows` matrix.
    fn forward(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let mut y = vec![0.0; batch * self.rows];
        self.forward_into(x, batch, 0.0, &mut y);
        y
    }

    /// `out = beta·out + G·W` for a batch `G` (`batch × rows`); `out` is `batch × cols`.
    /// This back-propagates `G = dL/dY` through `Y = X·Wᵀ`.
    fn backward_into(&self, g: &[f32], batch: usize, beta: f32, out: &mut [f32]) {
        gemm(
            batch, self.rows, self.cols, g, false, self.data, false, beta, out,
        );
    }

    /// `G·W` for a batch `G` (`batch × rows`): a new `batch × cols` matrix.
    fn backward(&self, g: &[f32], batch: usize) -> Vec<f32> {
        let mut dx = vec![0.0; batch * self.cols];
        self.backward_into(g, batch, 0.0, &mut dx);
        dx
    }
}

/// `dW = Gᵀ·X` (`rows × cols`), the weight gradient of `Y = X·Wᵀ` for a batch of
/// `batch` rows, `G = dL/dY` (`batch × rows`) and `X` (`batch × cols`).
fn weight_grad(g: &[f32], x: &[f32], batch: usize, dw: &mut [f32]) {
    let rows = g.len() / batch;
    let cols = x.len() / batch;
    gemm(rows, batch, cols, g, true, x, false, 0.0, dw);
}

/// Element-wise `max(x, 0)`.
fn relu(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| v.max(0.0)).collect()
}

/// Zeroes the gradient `g` wherever the pre-activation `pre` was not positive.
fn mask_relu_grad(g: &mut [f32], pre: &[f32]) {
    for (gi, &p) in g.iter_mut().zip(pre) {
        if p <= 0.0 {
            *gi = 0.0;
        }
    }
}

/// What the backward pass needs from one layer of the forward pass.
enum Cache {
    Linear {
        w: usize,
        input: Vec<f32>,
    },
    Relu {
        input: Vec<f32>,
    },
    Residual {
        w: usize,
        v: usize,
        input: Vec<f32>,
        pre: Vec<f32>,
        act: Vec<f32>,
    },
}

/// Runs the network on a batch; returns the logits (`batch × 10`) and, if `keep`, the
/// per-layer caches for [`backward`].
fn forward(
    ops: &[Op],
    weights: &[Matrix<'_>],
    x: &[f32],
    batch: usize,
    keep: bool,
) -> (Vec<f32>, Vec<Cache>) {
    let mut caches = Vec::new();
    let mut h = x.to_vec();
    for &op in ops {
        let (next, cache) = match op {
            Op::Linear(w) => {
                let y = weights[w].forward(&h, batch);
                (y, Cache::Linear { w, input: h })
            }
            Op::Relu => (relu(&h), Cache::Relu { input: h }),
            Op::Residual { w, v } => {
                let pre = weights[w].forward(&h, batch);
                let act = relu(&pre);
                let mut y = h.clone();
                weights[v].forward_into(&act, batch, 1.0, &mut y);
                (
                    y,
                    Cache::Residual {
                        w,
                        v,
                        input: h,
                        pre,
                        act,
                    },
                )
            }
        };
        if keep {
            caches.push(cache);
        }
        h = next;
    }
    (h, caches)
}

/// Back-propagates `grad` (d loss / d logits, `batch × 10`) through the cached layers;
/// returns d loss / d weight for each canonical tensor.
fn backward(
    weights: &[Matrix<'_>],
    caches: Vec<Cache>,
    mut grad: Vec<f32>,
    batch: usize,
) -> Vec<Vec<f32>> {
    let mut grads: Vec<Vec<f32>> = weights.iter().map(|w| vec![0.0; w.rows * w.cols]).collect();
    for (layer, cache) in caches.into_iter().enumerate().rev() {
        match cache {
            Cache::Linear { w, input } => {
                weight_grad(&grad, &input, batch, &mut grads[w]);
                if layer > 0 {
                    grad = weights[w].backward(&grad, batch);
                }
            }
            Cache::Relu { input } => mask_relu_grad(&mut grad, &input),
            Cache::Residual {
                w,
                v,
                input,
                pre,
                act,
            } => {
                weight_grad(&grad, &act, batch, &mut grads[v]);
                let mut d_pre = weights[v].backward(&grad, batch);
                mask_relu_grad(&mut d_pre, &pre);
                weight_grad(&d_pre, &input, batch, &mut grads[w]);
                // The skip connection carries `grad` through unchanged; add the branch.
                weights[w].backward_into(&d_pre, batch, 1.0, &mut grad);
            }
        }
    }
    grads
}

/// Mean softmax cross-entropy of `logits` (`labels.len() × 10`) and, in `grad`, its
/// gradient with respect to the logits.
fn softmax_cross_entropy(logits: &[f32], labels: &[u8], grad: &mut [f32]) -> f64 {
    let scale = 1.0 / labels.len() as f32;
    let mut total = 0.0f64;
    for ((row, g), &label) in logits
        .chunks_exact(N_CLASSES)
        .zip(grad.chunks_exact_mut(N_CLASSES))
        .zip(labels)
    {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (gi, &z) in g.iter_mut().zip(row) {
            *gi = (z - max).exp();
            sum += *gi;
        }
        let label = usize::from(label);
        total += f64::from(sum.ln() + max - row[label]);
        for gi in g.iter_mut() {
            *gi *= scale / sum;
        }
        g[label] -= scale;
    }
    total / labels.len() as f64
}

/// The logits (`batch × 10`, row-major) of `model` for `x`, a batch of images stored one
/// after the other (`x.len()` a multiple of [`N_PIXELS`]).
///
/// # Panics
/// If `x.len()` is not a multiple of [`N_PIXELS`] or [`Model::check`] fails.
pub fn forward_logits(model: &Model, x: &[f32]) -> Vec<f32> {
    assert!(
        x.len() % N_PIXELS == 0,
        "forward_logits: input length {} is not a multiple of {N_PIXELS}",
        x.len()
    );
    let weights = model.weights();
    forward(model.kind.ops(), &weights, x, x.len() / N_PIXELS, false).0
}

/// The predicted class of every image in `ds`.
///
/// # Panics
/// If [`Model::check`] fails.
pub fn predict(model: &Model, ds: &Dataset) -> Vec<u8> {
    let weights = model.weights();
    let mut out = Vec::with_capacity(ds.len());
    for x in ds.images.chunks(EVAL_CHUNK * N_PIXELS) {
        let logits = forward(model.kind.ops(), &weights, x, x.len() / N_PIXELS, false).0;
        out.extend(logits.chunks_exact(N_CLASSES).map(argmax));
    }
    out
}

/// Index of the largest value (the first one on ties); `NaN`s never win.
fn argmax(row: &[f32]) -> u8 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u8
}

/// Classification accuracy of `model` on `ds`, in `[0, 1]` (0 for an empty set).
///
/// # Panics
/// If [`Model::check`] fails.
pub fn evaluate(model: &Model, ds: &Dataset) -> f64 {
    if ds.is_empty() {
        return 0.0;
    }
    let correct = predict(model, ds)
        .iter()
        .zip(&ds.labels)
        .filter(|(p, l)| p == l)
        .count();
    correct as f64 / ds.len() as f64
}

/// Mean softmax cross-entropy of `model` on `ds` (0 for an empty set).
///
/// # Panics
/// If [`Model::check`] fails.
pub fn mean_loss(model: &Model, ds: &Dataset) -> f64 {
    if ds.is_empty() {
        return 0.0;
    }
    let weights = model.weights();
    let mut total = 0.0;
    for (x, labels) in ds
        .images
        .chunks(EVAL_CHUNK * N_PIXELS)
        .zip(ds.labels.chunks(EVAL_CHUNK))
    {
        let logits = forward(model.kind.ops(), &weights, x, labels.len(), false).0;
        let mut grad = vec![0.0; logits.len()];
        total += softmax_cross_entropy(&logits, labels, &mut grad) * labels.len() as f64;
    }
    total / ds.len() as f64
}

// ---------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------

/// Hyper-parameters of [`train`]: Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) on mini-batches
/// of softmax cross-entropy, with a constant learning rate.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Mini-batch size (the last batch of an epoch may be smaller).
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Seed of the initialisation and of the batch order.
    pub seed: u64,
}

impl Default for TrainConfig {
    /// 25 epochs, batches of 64, learning rate 1e-3, seed 0.
    fn default() -> Self {
        TrainConfig {
            epochs: 25,
            batch: 64,
            lr: 1e-3,
            seed: 0,
        }
    }
}

/// Trains a `kind` model of hidden width `width` on `train_ds`, deterministically for a
/// given `cfg` (and machine). See [`train_with_progress`] to watch the loss.
///
/// # Panics
/// If `width`, `cfg.batch` or `train_ds.len()` is zero.
pub fn train(kind: ModelKind, width: usize, train_ds: &Dataset, cfg: &TrainConfig) -> Model {
    train_with_progress(kind, width, train_ds, cfg, |_, _| {})
}

/// Like [`train`], calling `on_epoch(epoch, mean_training_loss)` after each epoch
/// (`epoch` counted from 1; the loss is the mean over that epoch's batches).
///
/// # Panics
/// If `width`, `cfg.batch` or `train_ds.len()` is zero.
pub fn train_with_progress(
    kind: ModelKind,
    width: usize,
    train_ds: &Dataset,
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(usize, f64),
) -> Model {
    assert!(cfg.batch > 0, "train: batch size must be positive");
    assert!(!train_ds.is_empty(), "train: empty training set");
    let mut model = Model::init(kind, width, cfg.seed);
    let positions = model.resolve().unwrap_or_else(|msg| panic!("{msg}"));
    let ops = kind.ops();
    let mut adam = Adam::new(&model, cfg.lr);
    let mut rng = Rng::new(cfg.seed ^ SHUFFLE_STREAM);
    let mut order: Vec<usize> = (0..train_ds.len()).collect();
    let mut x = Vec::with_capacity(cfg.batch * N_PIXELS);
    let mut labels = Vec::with_capacity(cfg.batch);
    for epoch in 1..=cfg.epochs {
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        let mut n_batches = 0usize;
        for chunk in order.chunks(cfg.batch) {
            x.clear();
            labels.clear();
            for &i in chunk {
                x.extend_from_slice(train_ds.image(i));
                labels.push(train_ds.labels[i]);
            }
            let grads = {
                let weights = model.weights();
                let (logits, caches) = forward(ops, &weights, &x, chunk.len(), true);
                let mut d_logits = vec![0.0; logits.len()];
                loss_sum += softmax_cross_entropy(&logits, &labels, &mut d_logits);
                backward(&weights, caches, d_logits, chunk.len())
            };
            n_batches += 1;
            adam.step(&mut model, &positions, &grads);
        }
        on_epoch(epoch, loss_sum / n_batches as f64);
    }
    model
}

/// Adam optimiser state for the canonical tensors of one model.
struct Adam {
    lr: f32,
    t: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    const BETA1: f32 = 0.9;
    const BETA2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    fn new(model: &Model, lr: f32) -> Adam {
        let zeros: Vec<Vec<f32>> = model
            .weights()
            .iter()
            .map(|w| vec![0.0; w.data.len()])
            .collect();
        Adam {
            lr,
            t: 0,
            m: zeros.clone(),
            v: zeros,
        }
    }

    /// One update of the tensors at `positions` (canonical order) with `grads`.
    fn step(&mut self, model: &mut Model, positions: &[usize], grads: &[Vec<f32>]) {
        self.t += 1;
        let c1 = 1.0 - Self::BETA1.powi(self.t);
        let c2 = 1.0 - Self::BETA2.powi(self.t);
        let step = self.lr * c2.sqrt() / c1;
        let eps = Self::EPS * c2.sqrt();
        for (((&pos, g), m), v) in positions
            .iter()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            let data = &mut model.tensors[pos].2;
            for (((w, &g), m), v) in data.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = Self::BETA1 * *m + (1.0 - Self::BETA1) * g;
                *v = Self::BETA2 * *v + (1.0 - Self::BETA2) * g * g;
                *w -= step * *m / (v.sqrt() + eps);
            }
        }
    }
}
