//! The hand-written part of the README's reading (filled in after the full run).

use crate::experiments::{Config, Row};

/// Discussion text appended after the computed statements.
pub fn text(_rows: &[Row], _cfg: &Config) -> String {
    String::new()
}
