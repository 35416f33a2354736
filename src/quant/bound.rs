//! Certificates: the Theorem 3.1 bound per vector and the Lemma 5.1 bound per matrix (MATH.md §2, §4).

/// Theorem 3.1 (BPY, unit-norm tight frames): if the ΣΔ state stays in [−δ/2, δ/2], then
/// ‖w − w̃‖ ≤ (δ·d / 2N)·(σ(F, p) + 1).
pub fn vector_bound(delta: f64, d: usize, n: usize, sigma: f64) -> f64 {
    delta * d as f64 / (2.0 * n as f64) * (sigma + 1.0)
}

/// Lemma 5.1: ‖W − W̃‖₂ ≤ ‖W − W̃‖_F ≤ √m · max_j ‖w_j − w̃_j‖, for m vectors.
pub fn matrix_bound(max_vector_bound: f64, m: usize) -> f64 {
    (m as f64).sqrt() * max_vector_bound
}
