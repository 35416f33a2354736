//! Progress reporting for operations over many tensors (the CLI draws a bar from it).

/// Receives progress events. Every method has an empty default.
pub trait Progress {
    /// A phase starts (`what`, e.g. "packing") over `total` units (tensors).
    fn start(&mut self, _what: &str, _total: u64) {}
    /// Work on tensor `name` begins.
    fn tensor(&mut self, _name: &str) {}
    /// One unit is done.
    fn advance(&mut self) {}
    /// The phase is over.
    fn finish(&mut self) {}
}

/// Ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
