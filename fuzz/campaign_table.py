#!/usr/bin/env python3
"""The fuzz campaign's table, generated from the logs of fuzz/campaign.sh (issue 16).

    python3 fuzz/campaign_table.py [LOG...]   # default: fuzz/campaign-logs/*.log[.gz] + archive
    python3 fuzz/campaign_table.py --update FILE [LOG...]

With --update, the table replaces what stands between the lines `<!-- campaign-table:begin -->`
and `<!-- campaign-table:end -->` in FILE (SECURITY.md), instead of going to stdout.

One row per run, in the order the runs started: the target; wall and CPU seconds (user + system,
of `cargo fuzz run` and the fuzzer together, from /usr/bin/time); executions (libFuzzer's
stat::number_of_executed_units); the corpus at the end (units and bytes), coverage `cov` (edges)
and `ft` (features) exactly as libFuzzer prints them on its last status line; executions per CPU
second; findings (crash, leak, timeout, out-of-memory, with the input libFuzzer saved). Then a
total per target and overall, with the CPU-hours. Markdown on stdout.

A slow unit (libFuzzer saves an input whose run took longer than -report_slow_units, 10 s of
wall time by default) is not a finding: it is shown beside "none" and not counted, because at
nice 19 on a busy machine wall time mostly measures the load; re-run the saved input alone to
see whether it is slow.

Without LOG arguments the table also holds the rows of fuzz/campaign-archive.md: runs whose logs a
machine reset deleted, as this script generated them from those logs at the time (marked
"archived"; they count in the totals).
"""

import contextlib
import glob
import gzip
import io
import os
import re
import sys

STATUS = re.compile(
    r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\d+)(b|Kb|Mb)"
)
FINDINGS = [
    (re.compile(r"ERROR: AddressSanitizer: (\S+)"), "ASan {}"),
    (re.compile(r"ERROR: LeakSanitizer"), "leak"),
    (re.compile(r"panicked at (\S+?):?(?:\s|$)"), "panic at {}"),
    (re.compile(r"ERROR: libFuzzer: timeout"), "timeout"),
    (re.compile(r"ERROR: libFuzzer: out-of-memory"), "out-of-memory"),
    (re.compile(r"ERROR: libFuzzer: deadly signal"), "deadly signal"),
    (re.compile(r"Test unit written to (\S+)"), "input {}"),
]


def parse(path):
    run = {"log": os.path.basename(path), "findings": []}
    last_status = None
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"campaign: target=(\S+) max_total_time=(\d+) start=(\S+)", line)
            if m:
                run["target"], run["budget"], run["start"] = m.group(1), int(m.group(2)), m.group(3)
            m = re.match(
                r"campaign: cpu_user_s=([\d.]+) cpu_sys_s=([\d.]+) wall_s=([\d.]+) exit=(\d+)", line
            )
            if m:
                run["cpu"] = float(m.group(1)) + float(m.group(2))
                run["wall"] = float(m.group(3))
                run["exit"] = int(m.group(4))
            m = STATUS.match(line)
            if m:
                last_status = m
            m = re.match(r"stat::number_of_executed_units: (\d+)", line)
            if m:
                run["execs"] = int(m.group(1))
            m = re.match(r"Slowest unit: (\d+) s:", line)
            if m:
                run["slow"] = int(m.group(1))
            if "Test unit written to" in line and "/slow-unit-" in line:
                continue
            for pattern, fmt in FINDINGS:
                m = pattern.search(line)
                if m:
                    run["findings"].append(fmt.format(*m.groups()))
    if last_status:
        unit = {"b": 1, "Kb": 1024, "Mb": 1024 * 1024}[last_status.group(7)]
        run["cov"], run["ft"] = int(last_status.group(3)), int(last_status.group(4))
        run["corp_units"] = int(last_status.group(5))
        run["corp_bytes"] = int(last_status.group(6)) * unit
        run["corp_text"] = f"{last_status.group(5)} ({last_status.group(6)} {last_status.group(7)})"
        run.setdefault("execs", int(last_status.group(1)))
        run["done"] = last_status.group(2) == "DONE"
    return run


ARCHIVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "campaign-archive.md")


def archived_runs():
    """The rows of campaign-archive.md, parsed back into runs (their text is kept as it was)."""
    runs = []
    with open(ARCHIVE, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("| 2"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            start, target, wall, cpu, execs = cells[:5]
            runs.append(
                {
                    "row": line.rstrip("\n").rstrip().rstrip("|").rstrip() + " (archived) |",
                    "start": start.replace(" ", "T"),
                    "target": target.strip("`"),
                    "cpu": float(cpu),
                    "wall": float(wall),
                    "execs": int(execs.replace(",", "")),
                    "findings": [] if cells[9].startswith("none") else [cells[9]],
                }
            )
    return runs


def fmt_int(x):
    return f"{x:,}" if isinstance(x, int) else "—"


def main(argv):
    args = argv[1:]
    update = None
    if args[:1] == ["--update"]:
        update, args = args[1], args[2:]
    if update:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            table(args)
        with open(update, encoding="utf-8") as f:
            text = f.read()
        begin, end = "<!-- campaign-table:begin -->\n", "<!-- campaign-table:end -->"
        i, j = text.index(begin) + len(begin), text.index(end)
        with open(update, "w", encoding="utf-8") as f:
            f.write(text[:i] + out.getvalue() + text[j:])
    else:
        table(args)


def table(args):
    logs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "campaign-logs")
    paths = args or sorted(glob.glob(os.path.join(logs, "*.log")) + glob.glob(os.path.join(logs, "*.log.gz")))
    runs = [parse(p) for p in paths]
    runs = [r for r in runs if "target" in r]
    if not args:
        runs += archived_runs()
    runs.sort(key=lambda r: r["start"])
    print("| start (UTC) | target | wall s | CPU s | executions | exec/CPU s | corpus | cov | ft | findings |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|---|")
    for r in runs:
        if "row" in r:
            print(r["row"])
            continue
        cpu, execs = r.get("cpu"), r.get("execs")
        rate = f"{execs / cpu:,.0f}" if cpu and execs else "—"
        if cpu is None:
            state = " (still running or killed: no CPU time)"
        elif not r.get("done"):
            state = " (stopped early)"
        else:
            state = ""
        findings = "; ".join(dict.fromkeys(r["findings"])) or "none"
        if "slow" in r:
            findings += f" (a slow unit: {r['slow']} s of wall time)"
        wall = f"{r['wall']:.0f}" if cpu is not None else "—"
        cpu_s = f"{cpu:.0f}" if cpu is not None else "—"
        print(
            f"| {r['start'][:16].replace('T', ' ')} | `{r['target']}` | {wall} | {cpu_s} | "
            f"{fmt_int(execs)} | {rate} | {r.get('corp_text', '—')} | "
            f"{r.get('cov', '—')} | {r.get('ft', '—')} | {findings}{state} |"
        )
    print()
    targets = sorted({r["target"] for r in runs})
    total_cpu = sum(r.get("cpu", 0.0) for r in runs)
    total_execs = sum(r.get("execs", 0) for r in runs)
    print("| target | runs | CPU s | executions | findings |")
    print("|---|---:|---:|---:|---|")
    for t in targets:
        rs = [r for r in runs if r["target"] == t]
        found = sum(1 for r in rs if r["findings"])
        print(
            f"| `{t}` | {len(rs)} | {sum(r.get('cpu', 0.0) for r in rs):.0f} | "
            f"{fmt_int(sum(r.get('execs', 0) for r in rs))} | "
            f"{'runs with findings: ' + str(found) if found else 'none'} |"
        )
    print(
        f"| **all** | {len(runs)} | {total_cpu:.0f} ({total_cpu / 3600:.2f} CPU-hours) | "
        f"{fmt_int(total_execs)} | |"
    )


if __name__ == "__main__":
    main(sys.argv)
