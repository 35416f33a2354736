//! Frames: what a frame is, how it is described in a file, and how to apply it.
//!
//! A frame is never stored: a file stores its [`FrameDescriptor`] and the decoder rebuilds the
//! frame from it. Today the one family in files is the harmonic frame harmonic(N, d) (MATH.md §1);
//! the spectral tetris frames of [`tetris`] are available at the library level, with orderings
//! for general frames in [`ordering`].

pub mod harmonic;
pub mod order;
pub mod ordering;
pub mod tetris;

pub use harmonic::{HarmonicFrame, Workspace};
pub use order::Permutation;
pub use ordering::{order_frame, FrameGeometry, OrderingOptions, OrderingReport};
pub use tetris::{TetrisFrame, TetrisWorkspace};

use crate::error::{Error, Result};
use crate::limits;

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
}

impl FrameDescriptor {
    /// The harmonic frame harmonic(N, d), validated: d ≥ 1, N ≥ d + 1, both within the limits of
    /// [`limits::MAX_DIM`] and [`limits::MAX_FRAME_SIZE`].
    pub fn harmonic(n: usize, d: usize) -> Result<Self> {
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

    /// Number of frame vectors N.
    pub fn frame_size(&self) -> usize {
        match *self {
            FrameDescriptor::Harmonic { n, .. } => n as usize,
        }
    }

    /// Dimension d of the space the frame spans.
    pub fn dim(&self) -> usize {
        match *self {
            FrameDescriptor::Harmonic { d, .. } => d as usize,
        }
    }

    /// Builds the frame (with its FFT plans) that this descriptor describes.
    pub fn build(&self) -> Result<HarmonicFrame> {
        match *self {
            FrameDescriptor::Harmonic { n, d } => HarmonicFrame::new(n as usize, d as usize),
        }
    }
}

impl std::fmt::Display for FrameDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameDescriptor::Harmonic { n, d } => write!(f, "harmonic({n}, {d})"),
        }
    }
}
