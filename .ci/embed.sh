#!/usr/bin/env bash
# Embedding checks (issue 9), called from .ci/run; also usable by hand:
#   1. the decoder alone: `--no-default-features --features decode` builds, its tests pass, and
#      the README's Rust example (examples/decode_one.rs) runs;
#   2. the C API: sdq-capi/tests/run.sh (static and shared library, gcc, fixtures, error paths);
#   3. the Python package: a wheel from `maturin build --release`, installed, and pytest
#      (sdq-python/tests, against files made by the sdq command line and safetensors.numpy).
# Every crate shares one target directory ($CARGO_TARGET_DIR, default target/), and the root
# crate's builds use the test profile, so after .ci/run's `cargo test` the lean tests reuse its
# dev-dependencies and the command line the Python tests compare with is the one it built.
# EMBED_LINT=1 also runs clippy on sdq-capi and sdq-python (about a minute more).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export CARGO_TERM_COLOR=never
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
start=$SECONDS
lap() { echo "-- $1: $((SECONDS - start)) s"; }

echo "== embed: the decoder alone (--no-default-features --features decode)"
cargo clippy --no-default-features --features decode --all-targets -- -D warnings
cargo build --profile test --no-default-features --features decode --lib --example decode_one
cargo test --no-default-features --features decode --lib --tests
"$CARGO_TARGET_DIR/debug/examples/decode_one" fixtures/k1_tensor_delta.sdq layer.weight
lap "lean decoder"

echo "== embed: C API (sdq-capi)"
(cd sdq-capi && cargo fmt -- --check)
if [ "${EMBED_LINT:-0}" = 1 ]; then
    (cd sdq-capi && cargo clippy --all-targets -- -D warnings)
fi
sdq-capi/tests/run.sh
lap "C API"

echo "== embed: Python package (sdq-python)"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore maturin pytest numpy safetensors
(cd sdq-python && cargo fmt -- --check)
if [ "${EMBED_LINT:-0}" = 1 ]; then
    (cd sdq-python && cargo clippy --all-targets -- -D warnings)
fi
# The command line the tests compare with (the build `cargo test` makes and reuses).
cargo build --profile test --bin sdq
wheels="$CARGO_TARGET_DIR/wheels"
rm -f "$wheels"/sdq-*.whl
maturin build --release --quiet -m sdq-python/Cargo.toml --out "$wheels"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --force-reinstall --no-deps "$wheels"/sdq-*.whl
# SDQ_REQUIRE_CLI=1: the command-line cross-checks fail (instead of being skipped) without it.
SDQ_REQUIRE_CLI=1 SDQ_CLI="$CARGO_TARGET_DIR/debug/sdq" python3 -m pytest -q -p no:cacheprovider sdq-python/tests
lap "Python package"
