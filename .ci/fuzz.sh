#!/usr/bin/env bash
# Fuzzing smoke run for sdq (issue 7). Called from .ci/run; also usable by hand.
#
#   .ci/fuzz.sh                  # every target for FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 .ci/fuzz.sh open decode
#
# Installs cargo-fuzz if `cargo fuzz --version` does not work, builds every target (with
# AddressSanitizer through RUSTC_BOOTSTRAP=1 on stable; FUZZ_SANITIZER=none to skip it), runs
# each seeded from fuzz/seeds/<target> with a working corpus in fuzz/corpus/<target> (gitignored,
# kept between runs), FUZZ_PARALLEL (default 2) at a time, and fails if libFuzzer
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

run_one() {
    local t="$1"
    local corpus="fuzz/corpus/$t"
    local log="fuzz/artifacts/$t/ci.log"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    # -rss_limit_mb: every allocation the input controls is capped by the spec's limits and the
    # targets' budgets, so 2 GiB is far above what a correct build needs.
    if cargo fuzz run "${FLAGS[@]}" "$t" "$corpus" "fuzz/seeds/$t" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1; then
        echo "== $t: ok; $(grep -aE '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)"
    else
        echo "!! $t: libFuzzer reported a failure; the input is in fuzz/artifacts/$t/"
        tail -n 60 "$log"
        return 1
    fi
}

# Targets run FUZZ_PARALLEL at a time (default 2, one per core), each for FUZZ_SECONDS.
PARALLEL="${FUZZ_PARALLEL:-2}"
echo "== fuzz ${TARGETS[*]} for ${SECONDS_EACH}s each, $PARALLEL at a time (seeds: fuzz/seeds/<target>)"
status=0
running=0
for t in "${TARGETS[@]}"; do
    if [ "$running" -ge "$PARALLEL" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
exit "$status"
