//! Progress reporting for operations over many tensors (the CLI draws a bar from it).

/// Receives progress events. Every method has an empty default. A phase counts units: tensors
/// for `unpack` and `verify`, weights (tensor elements) for `pack`, so that one huge tensor is
/// as many units as it has weights.
pub trait Progress {
    /// A phase starts (`what`, e.g. "packing") over `total` units.
    fn start(&mut self, _what: &str, _total: u64) {}
    /// Work on tensor `name` begins.
    fn tensor(&mut self, _name: &str) {}
    /// One unit is done (the default is `advance_by(1)`).
    fn advance(&mut self) {
        self.advance_by(1);
    }
    /// `n` units are done.
    fn advance_by(&mut self, _n: u64) {}
    /// The phase is over.
    fn finish(&mut self) {}
}

/// Ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
