#!/usr/bin/env python3
"""Sums an Nsight Compute CSV of gpu__time_duration.sum (one row per kernel launch) by
kernel name: where one profiled call's GPU time goes, without the gaps between launches.

    ncu_summary.py ncu.csv [top]"""
import csv
import re
import sys


def short(name):
    """A kernel's name without template arguments and parameter lists."""
    name = re.sub(r"\(.*$", "", name)
    depth, out = 0, []
    for ch in name:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out).split("::")[-1].strip() or name


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with open(sys.argv[1], newline="") as f:
        lines = [ln for ln in f if ln.startswith('"')]
    rows = list(csv.DictReader(lines))
    total, count, by = 0.0, 0, {}
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "nsecond")
        ns = v * {"nsecond": 1, "usecond": 1e3, "msecond": 1e6}.get(unit, 1)
        k = short(r["Kernel Name"])
        n, t = by.get(k, (0, 0.0))
        by[k] = (n + 1, t + ns)
        total += ns
        count += 1
    if not count:
        sys.exit("ncu_summary: no gpu__time_duration rows")
    print(f"{count} kernels, {total / 1e6:.3f} ms of GPU time")
    print(f"{'ms':>8} {'calls':>6} {'share':>6}  kernel")
    for k, (n, t) in sorted(by.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{t / 1e6:8.3f} {n:6d} {100 * t / total:5.1f}%  {k[:90]}")


if __name__ == "__main__":
    main()
