//! Frames: what a frame is, how it is described in a file, and how to apply it.
//!
//! A frame is never stored: a file stores its [`FrameDescriptor`] and the decoder rebuilds the
//! frame from it. Two families: the harmonic frames harmonic(N, d) (MATH.md §1; analysis and
//! synthesis by one real FFT) and the sparse spectral tetris frames tetris(N, d) of [`tetris`]
//! (N ≥ 2d, at most two non-zero entries per vector; analysis and synthesis in O(N)). Both are
//! unit-norm and tight with bound N/d, so w = (d/N)·Σ_n ⟨w, e_n⟩ e_n for either. [`Frame`] is the
//! one type the quantizer and the decoder use; [`ordering`] finds orderings for any frame.

pub mod harmonic;
pub mod order;
pub mod ordering;
pub mod signs;
pub mod tetris;

pub use harmonic::{HarmonicFrame, Workspace};
pub use order::Permutation;
pub use ordering::{order_frame, FrameGeometry, OrderingOptions, OrderingReport};
pub use tetris::{TetrisFrame, TetrisWorkspace};

use crate::error::{Error, Result};
use crate::limits;

/// The checks every family makes first: d ≥ 1, d ≤ [`limits::MAX_DIM`], N ≤
/// [`limits::MAX_FRAME_SIZE`] and N ≤ [`limits::MAX_REDUNDANCY`]·d.
pub(crate) fn check_sizes(n: usize, d: usize) -> Result<()> {
    if d == 0 {
        return Err(Error::param("the vector dimension d must be at least 1"));
    }
    if d as u64 > limits::MAX_DIM {
        return Err(Error::Limit {
            what: "vector dimension d",
            value: d as u64,
            limit: limits::MAX_DIM,
        });
    }
    if n as u64 > limits::MAX_FRAME_SIZE {
        return Err(Error::Limit {
            what: "frame size N",
            value: n as u64,
            limit: limits::MAX_FRAME_SIZE,
        });
    }
    // d ≤ 2^22 here, so the product fits.
    let most = limits::MAX_REDUNDANCY * d as u64;
    if n as u64 > most {
        return Err(Error::Limit {
            what: "frame size N (at most 1024·d)",
            value: n as u64,
            limit: most,
        });
    }
    Ok(())
}

/// A family of frames, as named by a file's frame family id (spec §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FrameFamily {
    /// Harmonic frames harmonic(N, d), N ≥ d + 1 (id 1).
    #[default]
    Harmonic,
    /// Spectral tetris frames tetris(N, d), N ≥ 2d (id 2).
    SpectralTetris,
}

impl FrameFamily {
    /// The family id stored in a file: 1 harmonic, 2 spectral tetris.
    pub fn id(self) -> u8 {
        match self {
            FrameFamily::Harmonic => 1,
            FrameFamily::SpectralTetris => 2,
        }
    }

    /// The family with file id `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(FrameFamily::Harmonic),
            2 => Some(FrameFamily::SpectralTetris),
            _ => None,
        }
    }

    /// `harmonic` or `spectral-tetris`.
    pub fn name(self) -> &'static str {
        match self {
            FrameFamily::Harmonic => "harmonic",
            FrameFamily::SpectralTetris => "spectral-tetris",
        }
    }

    /// The smallest frame size N of this family for vectors of dimension d: d + 1 for harmonic
    /// frames (tight only from there), 2d for spectral tetris.
    pub fn min_frame_size(self, d: u64) -> u64 {
        match self {
            FrameFamily::Harmonic => d.saturating_add(1),
            FrameFamily::SpectralTetris => d.saturating_mul(2),
        }
    }

    /// The validated descriptor of this family's frame with N vectors in R^d.
    pub fn descriptor(self, n: usize, d: usize) -> Result<FrameDescriptor> {
        match self {
            FrameFamily::Harmonic => FrameDescriptor::harmonic(n, d),
            FrameFamily::SpectralTetris => FrameDescriptor::spectral_tetris(n, d),
        }
    }
}

impl std::fmt::Display for FrameFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The description of a frame as it is stored in a file: enough to rebuild every frame vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameDescriptor {
    /// The harmonic frame harmonic(N, d): N unit vectors in R^d, indexed n = 1..N (MATH.md §1).
    Harmonic {
        /// Number of frame vectors N (N ≥ d + 1).
        n: u32,
        /// Dimension d of the vectors being expanded (d ≥ 1).
        d: u32,
    },
    /// The spectral tetris frame tetris(N, d) ([`tetris`]): N unit vectors in R^d, at most two
    /// non-zero entries each, indexed n = 1..N.
    SpectralTetris {
        /// Number of frame vectors N (N ≥ 2d).
        n: u32,
        /// Dimension d of the vectors being expanded (d ≥ 1).
        d: u32,
    },
}

impl FrameDescriptor {
    /// The harmonic frame harmonic(N, d), validated: d ≥ 1, N ≥ d + 1, both within the limits of
    /// [`limits::MAX_DIM`] and [`limits::MAX_FRAME_SIZE`].
    pub fn harmonic(n: usize, d: usize) -> Result<Self> {
        check_sizes(n, d)?;
        if n <= d {
            return Err(Error::param(format!(
                "frame size N = {n} must exceed the vector dimension d = {d} (a harmonic frame is tight only for N >= d + 1)"
            )));
        }
        // Both fit in u32: the limits above are below u32::MAX.
        Ok(FrameDescriptor::Harmonic {
            n: n as u32,
            d: d as u32,
        })
    }

    /// The spectral tetris frame tetris(N, d), validated: d ≥ 1, N ≥ 2d, within the limits.
    pub fn spectral_tetris(n: usize, d: usize) -> Result<Self> {
        tetris::validate_tetris(n, d)?;
        // Both fit in u32: validate_tetris checks the limits, which are below u32::MAX.
        Ok(FrameDescriptor::SpectralTetris {
            n: n as u32,
            d: d as u32,
        })
    }

    /// The frame's family.
    pub fn family(&self) -> FrameFamily {
        match self {
            FrameDescriptor::Harmonic { .. } => FrameFamily::Harmonic,
            FrameDescriptor::SpectralTetris { .. } => FrameFamily::SpectralTetris,
        }
    }

    /// Number of frame vectors N.
    pub fn frame_size(&self) -> usize {
        match *self {
            FrameDescriptor::Harmonic { n, .. } | FrameDescriptor::SpectralTetris { n, .. } => {
                n as usize
            }
        }
    }

    /// Dimension d of the space the frame spans.
    pub fn dim(&self) -> usize {
        match *self {
            FrameDescriptor::Harmonic { d, .. } | FrameDescriptor::SpectralTetris { d, .. } => {
                d as usize
            }
        }
    }

    /// Builds the frame that this descriptor describes (with its FFT plans, for a harmonic one).
    pub fn build(&self) -> Result<Frame> {
        match *self {
            FrameDescriptor::Harmonic { n, d } => {
                HarmonicFrame::new(n as usize, d as usize).map(Frame::Harmonic)
            }
            FrameDescriptor::SpectralTetris { n, d } => {
                TetrisFrame::new(n as usize, d as usize).map(Frame::Tetris)
            }
        }
    }
}

impl std::fmt::Display for FrameDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameDescriptor::Harmonic { n, d } => write!(f, "harmonic({n}, {d})"),
            FrameDescriptor::SpectralTetris { n, d } => write!(f, "tetris({n}, {d})"),
        }
    }
}

/// A frame of either family, as the quantizer and the decoder use it.
///
/// Coefficient buffers given to `Frame::fft_input` and produced by
/// `Frame::analyse_fft_order` (the decoder's and encoder's internal paths) use one layout for both families, the harmonic FFT's: the
/// coefficient of frame position p (vector e_{p+1}) sits at index (p + 1) mod N. (A tetris frame
/// rotates by one place to and from its own position order, O(N).)
#[derive(Debug, Clone)]
pub enum Frame {
    /// A harmonic frame.
    Harmonic(HarmonicFrame),
    /// A spectral tetris frame.
    Tetris(TetrisFrame),
}

/// Scratch buffers of a [`Frame`], made by [`Frame::workspace`].
pub enum FrameWorkspace {
    /// A harmonic frame's FFT buffers.
    Harmonic(Workspace),
    /// A tetris frame's buffers.
    Tetris(TetrisWorkspace),
}

fn wrong_workspace() -> Error {
    Error::param("a frame was given the workspace of another frame")
}

impl Frame {
    /// Number of frame vectors N.
    pub fn frame_size(&self) -> usize {
        match self {
            Frame::Harmonic(h) => h.frame_size(),
            Frame::Tetris(t) => t.frame_size(),
        }
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        match self {
            Frame::Harmonic(h) => h.dim(),
            Frame::Tetris(t) => t.dim(),
        }
    }

    /// The frame's descriptor.
    pub fn descriptor(&self) -> FrameDescriptor {
        match self {
            Frame::Harmonic(h) => h.descriptor(),
            Frame::Tetris(t) => FrameDescriptor::SpectralTetris {
                n: t.frame_size() as u32,
                d: t.dim() as u32,
            },
        }
    }

    /// Scratch buffers sized for this frame.
    pub fn workspace(&self) -> FrameWorkspace {
        match self {
            Frame::Harmonic(h) => FrameWorkspace::Harmonic(h.workspace()),
            Frame::Tetris(t) => FrameWorkspace::Tetris(t.workspace()),
        }
    }

    /// Analysis: `coeffs[n − 1] = ⟨w, e_n⟩` for n = 1..N (frame position order).
    pub fn analyse(&self, w: &[f64], coeffs: &mut [f64], ws: &mut FrameWorkspace) -> Result<()> {
        match (self, ws) {
            (Frame::Harmonic(h), FrameWorkspace::Harmonic(ws)) => h.analyse(w, coeffs, ws),
            (Frame::Tetris(t), _) => t.analyse_sparse(w, coeffs),
            _ => Err(wrong_workspace()),
        }
    }

    /// Analysis in the shared FFT layout: `out[(p + 1) mod N] = ⟨w, e_{p+1}⟩`.
    #[cfg(feature = "encode")]
    pub(crate) fn analyse_fft_order(
        &self,
        w: &[f64],
        out: &mut [f64],
        ws: &mut FrameWorkspace,
    ) -> Result<()> {
        match (self, ws) {
            (Frame::Harmonic(h), FrameWorkspace::Harmonic(ws)) => h.analyse_fft_order(w, out, ws),
            (Frame::Tetris(t), _) => {
                t.analyse_sparse(w, out)?;
                out.rotate_right(1.min(out.len()));
                Ok(())
            }
            _ => Err(wrong_workspace()),
        }
    }

    /// Synthesis `out = scale · Σ_p a[p]·e_{p+1}` from coefficients in frame position order.
    pub fn synthesise(
        &self,
        a: &[f64],
        scale: f64,
        out: &mut [f64],
        ws: &mut FrameWorkspace,
    ) -> Result<()> {
        match (self, ws) {
            (Frame::Harmonic(h), FrameWorkspace::Harmonic(ws)) => h.synthesise(a, scale, out, ws),
            (Frame::Tetris(t), FrameWorkspace::Tetris(ws)) => t.synthesise(a, scale, out, ws),
            _ => Err(wrong_workspace()),
        }
    }

    /// The workspace's coefficient input in the shared FFT layout (index (p + 1) mod N holds
    /// frame position p), for decoders that scatter code levels themselves.
    pub(crate) fn fft_input<'w>(&self, ws: &'w mut FrameWorkspace) -> &'w mut [f64] {
        match (self, ws) {
            (Frame::Harmonic(h), FrameWorkspace::Harmonic(ws)) => h.fft_input(ws),
            (Frame::Tetris(t), FrameWorkspace::Tetris(ws)) => t.input(ws),
            _ => &mut [],
        }
    }

    /// Synthesis from the coefficients placed in [`Frame::fft_input`]: `out = scale · Σ ...`.
    pub(crate) fn synthesise_workspace(
        &self,
        scale: f64,
        out: &mut [f64],
        ws: &mut FrameWorkspace,
    ) -> Result<()> {
        match (self, ws) {
            (Frame::Harmonic(h), FrameWorkspace::Harmonic(ws)) => {
                h.synthesise_workspace(scale, out, ws)
            }
            (Frame::Tetris(t), FrameWorkspace::Tetris(ws)) => {
                let input = t.input(ws);
                input.rotate_left(1.min(input.len()));
                t.synthesise_workspace(scale, out, ws)
            }
            _ => Err(wrong_workspace()),
        }
    }

    /// [`Frame::synthesise_workspace`] writing f32 (each value the f64 result cast with `as`).
    pub(crate) fn synthesise_workspace_f32(
        &self,
        scale: f64,
        out: &mut [f32],
        ws: &mut FrameWorkspace,
    ) -> Result<()> {
        match (self, ws) {
            (Frame::Harmonic(h), FrameWorkspace::Harmonic(ws)) => {
                h.synthesise_workspace_f32(scale, out, ws)
            }
            (Frame::Tetris(t), FrameWorkspace::Tetris(ws)) => {
                let input = t.input(ws);
                input.rotate_left(1.min(input.len()));
                t.synthesise_workspace_f32(scale, out, ws)
            }
            _ => Err(wrong_workspace()),
        }
    }

    /// σ(F, identity).
    pub fn variation_identity(&self) -> f64 {
        match self {
            Frame::Harmonic(h) => h.variation_identity(),
            Frame::Tetris(t) => t.variation_identity(),
        }
    }

    /// The frame variation σ(F, p) of the ordering `order` (validated).
    pub fn variation(&self, order: &Permutation) -> Result<f64> {
        match self {
            Frame::Harmonic(h) => order.variation(h, &mut h.workspace()),
            Frame::Tetris(t) => t.variation(order),
        }
    }

    /// The second-order variation σ₂(F, p) and the tail ‖f_{N−1} − 2f_N‖ of `order`.
    pub fn variation2(&self, order: &Permutation) -> Result<(f64, f64)> {
        match self {
            Frame::Harmonic(h) => order.variation2(h, &mut h.workspace()),
            Frame::Tetris(t) => t.variation2(order),
        }
    }

    /// The ordering heuristic of [`ordering`] for this frame: greedy nearest neighbour plus
    /// 2-opt, never worse than the identity (its report gives σ for both).
    pub fn order(&self, options: &OrderingOptions) -> Result<OrderingReport> {
        match self {
            Frame::Harmonic(h) => order_frame(&ordering::HarmonicGeometry::new(h)?, options),
            Frame::Tetris(t) => order_frame(t, options),
        }
    }
}
