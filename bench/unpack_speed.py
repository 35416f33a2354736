#!/usr/bin/env python3
"""`sdq unpack` speed on the dev model beside reading / writing its fp32 safetensors (issue 13 item 5).

    python3 bench/unpack_speed.py [--model PATH] [--rounds 7]

Packs the model once with the defaults (cached in target/unpack-speed/), then runs, alternating
in every round (so a change of load on the shared machine hits every contender alike):

  - sdq unpack -j 1 -o FILE        (one thread; and RAYON_NUM_THREADS=1 without -j, to check the
                                    CLI honours it: compare CPU time / wall time)
  - sdq unpack -o FILE              (all threads)
  - sdq unpack -j 1 -o - >/dev/null (decode + serialise, no file written)
  - cat model.safetensors >/dev/null         (page cache warm: the read floor)
  - python: safetensors.numpy.load_file       (read + parse into numpy arrays)
  - cp model.safetensors FILE; sync the file  (writing the same bytes; sdq unpack also fsyncs)
  - cp without fsync

Prints the median wall time and CPU time (user+sys of the process) of each, M weights/s
(weights = elements in the checkpoint) per wall-second and per CPU-second (the per-core rate,
robust to other jobs taking the CPU), the ratios to the fp32 read, all from this run, and the
most threads `sdq unpack` had under RAYON_NUM_THREADS=1, -j 1 and neither.
"""
import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SDQ = os.path.join(ROOT, "target", "release", "sdq")
WORK = os.path.join(ROOT, "target", "unpack-speed")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_cmd(cmd, env=None, stdout=None):
    c0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, children_cpu() - c0


def max_threads(cmd, env):
    """Most threads the process had at once (sampled from /proc every 2 ms)."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    most = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        most = max(most, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.002)
    return most


def timed_py(fn):
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - t0, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/work/cache/models/mp/all-mpnet-base-v2/model.safetensors")
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    sq = os.path.join(WORK, "model.sdq")
    out = os.path.join(WORK, "out.safetensors")
    if not os.path.exists(sq) or os.path.getmtime(sq) < os.path.getmtime(SDQ):
        subprocess.run([SDQ, "pack", a.model, "-o", sq, "-q"], check=True)
    from safetensors import safe_open
    from safetensors.numpy import load_file
    with safe_open(a.model, "np") as f:
        elems = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    size = os.path.getsize(a.model)
    env1 = dict(os.environ, RAYON_NUM_THREADS="1")
    envall = {k: v for k, v in os.environ.items() if k != "RAYON_NUM_THREADS"}
    devnull = open(os.devnull, "wb")

    def cp_sync():
        shutil.copyfile(a.model, out)
        fd = os.open(out, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    jobs = {
        "sdq unpack -j 1": lambda: timed_cmd([SDQ, "unpack", sq, "-o", out, "-q", "-j", "1"], envall),
        "sdq unpack, RAYON_NUM_THREADS=1": lambda: timed_cmd([SDQ, "unpack", sq, "-o", out, "-q"], env1),
        f"sdq unpack, all threads ({os.cpu_count()})": lambda: timed_cmd([SDQ, "unpack", sq, "-o", out, "-q"], envall),
        "sdq unpack -j 1 -o - >/dev/null": lambda: timed_cmd([SDQ, "unpack", sq, "-o", "-", "-q", "-j", "1"], envall, devnull),
        "cat fp32 >/dev/null": lambda: timed_cmd(["cat", a.model], None, devnull),
        "safetensors.numpy.load_file(fp32)": lambda: timed_py(lambda: load_file(a.model)),
        "cp fp32 + fsync": lambda: timed_py(cp_sync),
        "cp fp32 (no fsync)": lambda: timed_py(lambda: shutil.copyfile(a.model, out)),
    }
    subprocess.run(["cat", a.model], stdout=devnull, check=True)  # warm the page cache
    res = {k: [] for k in jobs}
    load0 = os.getloadavg()
    for r in range(a.rounds):
        order = list(jobs) if r % 2 == 0 else list(reversed(jobs))
        for k in order:
            res[k].append(jobs[k]())
    load1 = os.getloadavg()
    print(f"model {a.model}: {size} bytes, {elems} weights; sdq file {os.path.getsize(sq)} bytes; "
          f"{a.rounds} rounds alternating; load average {load0[0]:.2f} before, {load1[0]:.2f} after; "
          f"{platform.machine()}, {os.cpu_count()} cores; {subprocess.run([SDQ, '--version'], capture_output=True, text=True).stdout.strip()}")
    med = {k: statistics.median(w for w, _ in v) for k, v in res.items()}
    cpu = {k: statistics.median(c for _, c in v) for k, v in res.items()}
    print("| what | wall s, median (min-max) | M weights/s (wall) | CPU s (user+sys), median | M weights/s per CPU-second | "
          "wall vs load_file | CPU vs load_file |")
    print("|---|---|---|---|---|---|---|")
    L = "safetensors.numpy.load_file(fp32)"
    for k, v in res.items():
        ws = [w for w, _ in v]
        print(f"| {k} | {med[k]:.3f} ({min(ws):.3f}-{max(ws):.3f}) | {elems / med[k] / 1e6:.0f} | {cpu[k]:.3f} | "
              f"{elems / max(cpu[k], 1e-9) / 1e6:.0f} | {med[k] / med[L]:.2f}x | {cpu[k] / cpu[L]:.2f}x |")
    for name, env, extra in (("RAYON_NUM_THREADS=1", env1, []), ("-j 1", envall, ["-j", "1"]), ("no setting", envall, [])):
        print(f"threads of sdq unpack ({name}): at most {max_threads([SDQ, 'unpack', sq, '-o', out, '-q'] + extra, env)}")
    print(f"one-thread unpack per core: {elems / med['sdq unpack -j 1'] / 1e6:.0f} M weights/s; "
          f"sdq unpack -j 1 / (load_file) = {med['sdq unpack -j 1'] / med['safetensors.numpy.load_file(fp32)']:.2f}; "
          f"sdq unpack -j 1 / (cp + fsync) = {med['sdq unpack -j 1'] / med['cp fp32 + fsync']:.2f}")
    os.remove(out)


if __name__ == "__main__":
    main()
