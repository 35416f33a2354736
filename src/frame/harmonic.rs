//! Harmonic frames harmonic(N, d): dense rows (for tests and small cases), O(N log N) analysis and
//! synthesis through one real FFT of length N, and the closed-form frame variation.
//!
//! Convention (MATH.md §1, fixed for every implementation): frame vectors are indexed n = 1..N;
//! with h = ⌊d/2⌋ and c = √(2/d),
//! - d even: e_n = c·[cos(2π·1·n/N), sin(2π·1·n/N), …, cos(2π·h·n/N), sin(2π·h·n/N)];
//! - d odd:  e_n = [1/√d, c·cos(2π·1·n/N), c·sin(2π·1·n/N), …] up to frequency h.
//!
//! In slices, frame vector e_n lives at position n − 1.

use std::f64::consts::PI;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use super::FrameDescriptor;
use crate::error::{Error, Result};

/// The harmonic frame harmonic(N, d), with the FFT plans that apply it. Cheap to share between
/// threads (`Send + Sync`); each thread brings its own [`Workspace`].
#[derive(Clone)]
pub struct HarmonicFrame {
    n: usize,
    d: usize,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
}

impl std::fmt::Debug for HarmonicFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HarmonicFrame(harmonic({}, {}))", self.n, self.d)
    }
}

/// Scratch buffers for one thread's transforms, made by [`HarmonicFrame::workspace`].
pub struct Workspace {
    real: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl HarmonicFrame {
    /// Builds harmonic(N, d); the same validation as [`FrameDescriptor::harmonic`].
    pub fn new(n: usize, d: usize) -> Result<Self> {
        FrameDescriptor::harmonic(n, d)?;
        let mut planner = RealFftPlanner::<f64>::new();
        Ok(HarmonicFrame {
            n,
            d,
            forward: planner.plan_fft_forward(n),
            inverse: planner.plan_fft_inverse(n),
        })
    }

    /// Number of frame vectors N.
    pub fn frame_size(&self) -> usize {
        self.n
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The descriptor that rebuilds this frame.
    pub fn descriptor(&self) -> FrameDescriptor {
        FrameDescriptor::Harmonic {
            n: self.n as u32,
            d: self.d as u32,
        }
    }

    /// Scratch buffers sized for this frame.
    pub fn workspace(&self) -> Workspace {
        let half = self.n / 2 + 1;
        let scratch_len = self
            .forward
            .get_scratch_len()
            .max(self.inverse.get_scratch_len());
        Workspace {
            real: vec![0.0; self.n],
            spectrum: vec![Complex::new(0.0, 0.0); half],
            scratch: vec![Complex::new(0.0, 0.0); scratch_len],
        }
    }

    /// Offset of the first cos/sin pair in a vector (1 for odd d: the constant coordinate).
    fn pair_offset(&self) -> usize {
        self.d % 2
    }

    /// Writes the frame vector e_n (n = 1..N) into `out` (length d), computed densely.
    pub fn row(&self, n: usize, out: &mut [f64]) -> Result<()> {
        if n == 0 || n > self.n {
            return Err(Error::param(format!(
                "frame index {n} is outside 1..={}",
                self.n
            )));
        }
        check_len("frame row", out.len(), self.d)?;
        let c = (2.0 / self.d as f64).sqrt();
        let off = self.pair_offset();
        if off == 1 {
            out[0] = 1.0 / (self.d as f64).sqrt();
        }
        for j in 1..=self.d / 2 {
            // Reduce j·n mod N in integers so the angle stays exact for large N.
            let r = ((j as u64 * n as u64) % self.n as u64) as f64;
            let theta = 2.0 * PI * r / self.n as f64;
            out[off + 2 * (j - 1)] = c * theta.cos();
            out[off + 2 * (j - 1) + 1] = c * theta.sin();
        }
        Ok(())
    }

    /// Analysis: `coeffs[n − 1] = ⟨w, e_n⟩` for n = 1..N, by one inverse real FFT (MATH.md §5).
    pub fn analyse(&self, w: &[f64], coeffs: &mut [f64], ws: &mut Workspace) -> Result<()> {
        check_len("vector", w.len(), self.d)?;
        check_len("coefficient buffer", coeffs.len(), self.n)?;
        self.fill_analysis_spectrum(w, ws);
        self.inverse
            .process_with_scratch(&mut ws.spectrum, &mut ws.real, &mut ws.scratch)
            .map_err(|e| Error::param(format!("inverse FFT failed: {e}")))?;
        // Frame index n = 1..N reads FFT index n mod N.
        coeffs[..self.n - 1].copy_from_slice(&ws.real[1..]);
        coeffs[self.n - 1] = ws.real[0];
        Ok(())
    }

    /// [`HarmonicFrame::analyse`] without the final rotation: `out[n mod N] = ⟨w, e_n⟩` for
    /// n = 1..N (the FFT's own index order; frame position p = n − 1 is at index (p + 1) mod N).
    /// The same values, bit for bit, one copy fewer.
    #[cfg(feature = "encode")]
    pub(crate) fn analyse_fft_order(
        &self,
        w: &[f64],
        out: &mut [f64],
        ws: &mut Workspace,
    ) -> Result<()> {
        check_len("vector", w.len(), self.d)?;
        check_len("coefficient buffer", out.len(), self.n)?;
        self.fill_analysis_spectrum(w, ws);
        self.inverse
            .process_with_scratch(&mut ws.spectrum, out, &mut ws.scratch)
            .map_err(|e| Error::param(format!("inverse FFT failed: {e}")))
    }

    /// The spectrum whose inverse real FFT is the analysis of `w` (length d, checked by callers).
    fn fill_analysis_spectrum(&self, w: &[f64], ws: &mut Workspace) {
        let c = (2.0 / self.d as f64).sqrt();
        let off = self.pair_offset();
        ws.spectrum.fill(Complex::new(0.0, 0.0));
        if off == 1 {
            ws.spectrum[0] = Complex::new(w[0] / (self.d as f64).sqrt(), 0.0);
        }
        // realfft's inverse is the unnormalised Hermitian sum x_k = X_0 + 2·Re Σ_{j≥1} X_j e^{2πijk/N}
        // (no Nyquist term is ever used, since ⌊d/2⌋ < N/2), so X_j = c·(a − i·b)/2.
        for (j, pair) in w[off..].chunks_exact(2).enumerate() {
            ws.spectrum[j + 1] = Complex::new(0.5 * c * pair[0], -0.5 * c * pair[1]);
        }
    }

    /// Synthesis: `out = scale · Σ_n a[n − 1]·e_n` for n = 1..N, by one forward real FFT.
    /// The canonical dual reconstruction w̃ = (d/N)·Σ q_n e_n is `scale = d/N` (times δ when `a`
    /// holds levels in units of δ).
    pub fn synthesise(
        &self,
        a: &[f64],
        scale: f64,
        out: &mut [f64],
        ws: &mut Workspace,
    ) -> Result<()> {
        check_len("coefficient vector", a.len(), self.n)?;
        ws.real[1..].copy_from_slice(&a[..self.n - 1]);
        ws.real[0] = a[self.n - 1];
        self.synthesise_workspace(scale, out, ws)
    }

    /// Synthesis from coefficients already placed in `ws.real` at FFT index n mod N (the layout
    /// [`HarmonicFrame::synthesise`] builds); used by decoders that scatter codes themselves.
    pub(crate) fn synthesise_workspace(
        &self,
        scale: f64,
        out: &mut [f64],
        ws: &mut Workspace,
    ) -> Result<()> {
        check_len("output vector", out.len(), self.d)?;
        self.synthesise_with(scale, out, ws, |x| x)
    }

    /// [`HarmonicFrame::synthesise_workspace`] rounding each output to f32 as it is written:
    /// exactly the f64 result cast with `as f32`, without an f64 buffer in between.
    pub(crate) fn synthesise_workspace_f32(
        &self,
        scale: f64,
        out: &mut [f32],
        ws: &mut Workspace,
    ) -> Result<()> {
        check_len("output vector", out.len(), self.d)?;
        self.synthesise_with(scale, out, ws, |x| x as f32)
    }

    /// The forward FFT of `ws.real`, then `out[i] = cast(scale · ...)` for the d outputs.
    #[inline(always)]
    fn synthesise_with<T>(
        &self,
        scale: f64,
        out: &mut [T],
        ws: &mut Workspace,
        cast: impl Fn(f64) -> T,
    ) -> Result<()> {
        self.forward
            .process_with_scratch(&mut ws.real, &mut ws.spectrum, &mut ws.scratch)
            .map_err(|e| Error::param(format!("forward FFT failed: {e}")))?;
        let c = scale * (2.0 / self.d as f64).sqrt();
        let off = self.pair_offset();
        if off == 1 {
            if let (Some(o), Some(f)) = (out.first_mut(), ws.spectrum.first()) {
                *o = cast(scale / (self.d as f64).sqrt() * f.re);
            }
        }
        let pairs = out.get_mut(off..).unwrap_or(&mut []);
        for (pair, f) in pairs
            .chunks_exact_mut(2)
            .zip(ws.spectrum.get(1..).unwrap_or(&[]))
        {
            pair[0] = cast(c * f.re);
            pair[1] = cast(-c * f.im);
        }
        Ok(())
    }

    /// Mutable access to the FFT input buffer of a workspace (length N, index n mod N).
    pub(crate) fn fft_input<'w>(&self, ws: &'w mut Workspace) -> &'w mut [f64] {
        &mut ws.real
    }

    /// Analysis by the dense N×d matrix (O(N·d)); kept as the reference for tests.
    pub fn analyse_dense(&self, w: &[f64], coeffs: &mut [f64]) -> Result<()> {
        check_len("vector", w.len(), self.d)?;
        check_len("coefficient buffer", coeffs.len(), self.n)?;
        let mut e = vec![0.0; self.d];
        for (i, x) in coeffs.iter_mut().enumerate() {
            self.row(i + 1, &mut e)?;
            *x = e.iter().zip(w).map(|(a, b)| a * b).sum();
        }
        Ok(())
    }

    /// Synthesis by the dense matrix (O(N·d)); kept as the reference for tests.
    pub fn synthesise_dense(&self, a: &[f64], scale: f64, out: &mut [f64]) -> Result<()> {
        check_len("coefficient vector", a.len(), self.n)?;
        check_len("output vector", out.len(), self.d)?;
        out.fill(0.0);
        let mut e = vec![0.0; self.d];
        for (i, &ai) in a.iter().enumerate() {
            self.row(i + 1, &mut e)?;
            for (o, ei) in out.iter_mut().zip(&e) {
                *o += ai * ei;
            }
        }
        for o in out.iter_mut() {
            *o *= scale;
        }
        Ok(())
    }

    /// Frame variation σ(F, identity) = Σ_{n=1}^{N−1} ‖e_n − e_{n+1}‖, in closed form: every step
    /// has length √((2/d)·Σ_{j=1}^{⌊d/2⌋} 4 sin²(πj/N)) (MATH.md §1).
    pub fn variation_identity(&self) -> f64 {
        let step2: f64 = (1..=self.d / 2)
            .map(|j| {
                let s = (PI * j as f64 / self.n as f64).sin();
                4.0 * s * s
            })
            .sum::<f64>()
            * (2.0 / self.d as f64);
        (self.n as f64 - 1.0) * step2.sqrt()
    }

    /// Gram function g(k) = ⟨e_a, e_b⟩ for a − b ≡ k (mod N), k = 0..N−1, by one inverse FFT.
    pub fn gram_function(&self, ws: &mut Workspace) -> Result<Vec<f64>> {
        ws.spectrum.fill(Complex::new(0.0, 0.0));
        let inv_d = 1.0 / self.d as f64;
        if self.d % 2 == 1 {
            ws.spectrum[0] = Complex::new(inv_d, 0.0);
        }
        // (2/d)·cos(2πjk/N) = 2·Re(X_j e^{2πijk/N}) with X_j = 1/d.
        for x in ws.spectrum.iter_mut().skip(1).take(self.d / 2) {
            *x = Complex::new(inv_d, 0.0);
        }
        let mut g = vec![0.0; self.n];
        self.inverse
            .process_with_scratch(&mut ws.spectrum, &mut g, &mut ws.scratch)
            .map_err(|e| Error::param(format!("inverse FFT failed: {e}")))?;
        Ok(g)
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::param(format!(
            "{what} has length {got}, expected {want}"
        )))
    }
}
