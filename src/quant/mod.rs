//! How a vector becomes codes: the midrise alphabet, first- and second-order ΣΔ, step-size
//! policies, the certified bounds, Algorithm 1 on a whole weight matrix, pcm with its zero-sum
//! rounding and lattice steps, and data-aware ΣΔ (error feedback through a layer's Gram matrix).

pub mod alphabet;
#[cfg(feature = "encode")]
pub mod bound;
#[cfg(feature = "encode")]
pub mod feedback;
#[cfg(feature = "encode")]
pub mod gram;
#[cfg(feature = "encode")]
pub mod lattice;
pub mod pcm;
pub mod rounding;
pub mod scheme;
pub mod second_order;
#[cfg(feature = "encode")]
pub mod sigma_delta;
pub mod step;
pub mod tensor;

pub use alphabet::Alphabet;
pub use scheme::Scheme;
pub use step::{Deltas, StepPolicy};
pub use tensor::Orientation;
#[cfg(feature = "encode")]
pub use tensor::{FrameQuantizer, Matrix, QuantizedTensor};
