#!/usr/bin/env python3
"""Turns `fastbroker bench … --json` lines (stdin or files) into a Markdown table for perf-reports/."""
import json
import sys


def si(v, unit=""):
    if v is None:
        return ""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.2f} {suffix}{unit}"
    return f"{v:.0f} {unit}".strip()


def ns(v):
    if v is None:
        return ""
    if v >= 1_000_000:
        return f"{v / 1e6:.2f} ms"
    if v >= 1_000:
        return f"{v / 1e3:.2f} µs"
    return f"{v} ns"


def main():
    lines = []
    sources = [open(p, encoding="utf-8") for p in sys.argv[1:]] or [sys.stdin]
    for src in sources:
        for line in src:
            line = line.strip()
            if line.startswith("{"):
                lines.append(json.loads(line))
    print("| variant | msg/s | bytes/s | p50 | p90 | p99 | p99.9 | max | baseline | ratio | note |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in lines:
        ratio = f"{r['ratio']:.2f}×" if r.get("ratio") is not None else ""
        print(f"| {r['variant']} | {si(r.get('msgsPerSec'))} | {si(r.get('bytesPerSec'), 'B')} | {ns(r.get('p50Ns'))} | "
              f"{ns(r.get('p90Ns'))} | {ns(r.get('p99Ns'))} | {ns(r.get('p999Ns'))} | {ns(r.get('maxNs'))} | "
              f"{r.get('baseline', '')} | {ratio} | {r.get('note', '')} |")


if __name__ == "__main__":
    main()
