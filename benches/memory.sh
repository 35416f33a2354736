#!/usr/bin/env bash
# Peak memory of streaming `sdq pack` and `sdq unpack` on a ~4 GiB safetensors checkpoint
# (16 tensors of 4096 x 16384 f32 by default), against the target 3 x largest tensor + 256 MiB.
#
#   benches/memory.sh [DIR]     (DIR: where the big files go; default target/memory-bench)
#   TENSORS=4 ROWS=1024 COLS=4096 benches/memory.sh   (a smaller run)
#
# The checkpoint is written streaming by numpy (one 16 MiB slab in memory at a time). Both
# commands run under /usr/bin/time -v (peak RSS = VmHWM). RSS counts the resident pages of the
# memory-mapped input too (file-backed, clean: the kernel drops them under pressure without any
# I/O), so the script also samples /proc/PID/status every 0.1 s and prints the peak of RssAnon
# (the heap: what the process itself holds) and of RssFile (mapped file pages) separately.
# The verdict is given on both. Every big file is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-target/memory-bench}
TENSORS=${TENSORS:-16}
ROWS=${ROWS:-4096}
COLS=${COLS:-16384}
mkdir -p "$DIR"
trap 'rm -f "$DIR"/ckpt.safetensors "$DIR"/ckpt.sdq "$DIR"/ckpt.unpacked.safetensors' EXIT

need=$(( TENSORS * ROWS * COLS * 4 * 2 / 1024 / 1024 / 1024 + 2 ))
avail=$(df -BG --output=avail "$DIR" | tail -1 | tr -dc 0-9)
echo "disk: ${avail} GiB available in $DIR, about ${need} GiB needed"
if (( avail < need )); then echo "not enough disk space"; exit 1; fi
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing: apt-get install -y time"; exit 1; }

cargo build --release --quiet
SDQ=${CARGO_TARGET_DIR:-target}/release/sdq

python3 - "$DIR/ckpt.safetensors" "$TENSORS" "$ROWS" "$COLS" <<'PY'
import json, sys, numpy as np
path, t, r, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
size = r * c * 4
header = {f"layer.{i}.weight": {"dtype": "F32", "shape": [r, c],
          "data_offsets": [i * size, (i + 1) * size]} for i in range(t)}
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
rng = np.random.default_rng(0)
slab = max(1, (16 << 20) // (c * 4))
with open(path, "wb") as f:
    f.write(len(h).to_bytes(8, "little")); f.write(h)
    for i in range(t):
        for r0 in range(0, r, slab):
            n = min(slab, r - r0)
            f.write((rng.standard_normal((n, c), dtype=np.float32) * (1.0 / np.sqrt(c))).astype("<f4").tobytes())
PY
largest=$(( ROWS * COLS * 4 ))
target=$(( 3 * largest + 256 * 1024 * 1024 ))
echo "checkpoint: $(du -h "$DIR/ckpt.safetensors" | cut -f1), largest tensor $(( largest >> 20 )) MiB, target $(( target >> 20 )) MiB"

# Runs "$@" under /usr/bin/time -v, sampling the process's RssAnon/RssFile; prints one line.
measure() {
    local label=$1; shift
    local log; log=$(mktemp)
    /usr/bin/time -v "$@" > /dev/null 2> "$log" &
    local tpid=$! pid="" anon=0 file=0 a f
    while kill -0 "$tpid" 2> /dev/null; do
        [ -z "$pid" ] && pid=$(pgrep -P "$tpid" | head -1 || true)
        if [ -n "$pid" ] && [ -r /proc/"$pid"/status ]; then
            a=$(awk '/^RssAnon/ {print $2}' /proc/"$pid"/status 2> /dev/null || echo 0)
            f=$(awk '/^RssFile/ {print $2}' /proc/"$pid"/status 2> /dev/null || echo 0)
            (( ${a:-0} > anon )) && anon=${a:-0}
            (( ${f:-0} > file )) && file=${f:-0}
        fi
        sleep 0.1
    done
    wait "$tpid" || { cat "$log"; exit 1; }
    local peak secs
    peak=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$log")
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
    local verdict_rss="MISSES" verdict_anon="MISSES"
    (( peak * 1024 <= target )) && verdict_rss="meets"
    (( anon * 1024 <= target )) && verdict_anon="meets"
    printf '%-7s wall %s  peak RSS %5d MiB (%s)  peak RssAnon %5d MiB (%s)  peak RssFile %5d MiB  target %d MiB\n' \
        "$label" "$secs" $(( peak >> 10 )) "$verdict_rss" $(( anon >> 10 )) "$verdict_anon" $(( file >> 10 )) $(( target >> 20 ))
    rm -f "$log"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
measure pack "$SDQ" pack "$DIR/ckpt.safetensors" -o "$DIR/ckpt.sdq"
echo "packed: $(du -h "$DIR/ckpt.sdq" | cut -f1)"
measure unpack "$SDQ" unpack "$DIR/ckpt.sdq" -o "$DIR/ckpt.unpacked.safetensors"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
