#!/usr/bin/env bash
# A fuzz campaign on record (issue 16): ONE libFuzzer process at a time, at nice 19, rotating over
# the targets until a deadline, each run logged to fuzz/campaign-logs/ with its CPU time.
#
#   fuzz/campaign.sh DEADLINE_UTC [SECONDS_EACH] [TARGET...]
#   fuzz/campaign.sh 15:05 1800 open decode roundtrip pack_input
#
# Each run: `cargo fuzz run --sanitizer address --release --debug-assertions TARGET
# fuzz/corpus/TARGET fuzz/seeds/TARGET -- -max_total_time=… -rss_limit_mb=2048 -timeout=30
# -print_final_stats=1`, wrapped in /usr/bin/time (user + system CPU seconds of cargo and the
# fuzzer together), log fuzz/campaign-logs/<start>-<target>.log, gzipped when the run ends. The
# logs are committed: they are the campaign's record, and a machine reset loses git-ignored files
# (it lost the logs of sessions 3 to 6). A run stops early on a finding (its input
# is in fuzz/artifacts/TARGET/); the rotation goes on with the next target. No run starts with
# less than 120 s left, and none runs past the deadline. fuzz/campaign_table.py makes the table.
set -uo pipefail
cd "$(dirname "$0")/.."

deadline=$(date -u -d "${1:?deadline, e.g. 15:05 (UTC)}" +%s)
each="${2:-1800}"
shift 2 || shift $#
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(open decode roundtrip pack_input)

export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never
cargo fuzz --version >/dev/null 2>&1 || { echo "campaign: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }
logs=fuzz/campaign-logs
mkdir -p "$logs"
i=0
while :; do
    now=$(date -u +%s)
    left=$((deadline - now - 30))
    [ "$left" -lt 120 ] && break
    t="${targets[$((i % ${#targets[@]}))]}"
    i=$((i + 1))
    secs=$each
    [ "$secs" -gt "$left" ] && secs=$left
    log="$logs/$(date -u +%Y%m%dT%H%M%S)-$t.log"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    echo "campaign: target=$t max_total_time=$secs start=$(date -u +%FT%TZ)" >"$log"
    nice -n 19 /usr/bin/time -f "campaign: cpu_user_s=%U cpu_sys_s=%S wall_s=%e exit=%x" \
        cargo fuzz run --sanitizer address --release --debug-assertions "$t" \
        "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        >>"$log" 2>&1
    echo "campaign: end=$(date -u +%FT%TZ)" >>"$log"
    gzip -9 "$log"
    # A run that ends within a minute did not fuzz (a build error, a missing tool, a seed that
    # crashes): stop rather than spin through the rotation.
    if [ $(($(date -u +%s) - now)) -lt 60 ]; then
        echo "campaign: $t ended within a minute, stopping; see $log.gz" >&2
        exit 1
    fi
done
