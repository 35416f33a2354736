//! How a vector becomes codes: the midrise alphabet, first-order ΣΔ, step-size policies, the
//! certified bounds, and Algorithm 1 on a whole weight matrix.

pub mod alphabet;
pub mod bound;
pub mod sigma_delta;
pub mod step;
pub mod tensor;

pub use alphabet::Alphabet;
pub use step::{Deltas, StepPolicy};
pub use tensor::{FrameQuantizer, Matrix, Orientation, QuantizedTensor};
