#!/usr/bin/env bash
# Fuzzing smoke run for sdq (issue 7). Called from .ci/run; also usable by hand.
#
#   .ci/fuzz.sh                  # every target for FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 .ci/fuzz.sh open decode
#
# Installs cargo-fuzz if `cargo fuzz --version` does not work, builds every target (with
# AddressSanitizer through RUSTC_BOOTSTRAP=1 on stable; FUZZ_SANITIZER=none to skip it), runs
# each seeded from fuzz/seeds/<target> with a fresh working corpus, and fails if libFuzzer
# reports a crash, a leak, a timeout or an out-of-memory. Crash inputs land in
# fuzz/artifacts/<target>/; minimise one with `cargo fuzz tmin <target> <file>` and commit it
# under tests/regressions/<target>/ (tests/fuzz_regressions.rs replays it on `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${FUZZ_SECONDS:-60}"
SANITIZER="${FUZZ_SANITIZER:-address}"
JOBS="${FUZZ_BUILD_JOBS:-2}"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(open decode roundtrip pack_input)
fi

echo "== cargo-fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
FLAGS=(--sanitizer "$SANITIZER" --release --debug-assertions)

echo "== build (${TARGETS[*]}; sanitizer $SANITIZER)"
for t in "${TARGETS[@]}"; do
    CARGO_BUILD_JOBS="$JOBS" cargo fuzz build "${FLAGS[@]}" "$t"
done

status=0
for t in "${TARGETS[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    echo "== fuzz $t for ${SECONDS_EACH}s (seeds: fuzz/seeds/$t)"
    log="fuzz/artifacts/$t/ci.log"
    # -rss_limit_mb: every allocation the input controls is capped by the spec's limits and the
    # targets' budgets, so 2 GiB is far above what a correct build needs.
    if cargo fuzz run "${FLAGS[@]}" "$t" "$corpus" "fuzz/seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    else
        status=1
        echo "!! $t: libFuzzer reported a failure; the input is in fuzz/artifacts/$t/"
        tail -n 60 "$log"
    fi
done
exit "$status"
