#!/usr/bin/env python3
"""Turns profile.sh's uprobe counts (perf stat -x, CSV) into counts per echoed message (or handshake cycle) and per
relayed read.

Usage: probe_counts.py OUT_DIR SPAN_SECONDS WINDOW_SECONDS
"""
import csv
import json
import sys


def main():
    out, span, window = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    result = json.load(open(f"{out}/bench.json"))
    if "handshakes" in result:
        units, unit_name = result["handshakes"], "handshake"
    else:
        units, unit_name = result["messages"], "echo"
    # The counted span is a little shorter than the bench's window and inside it.
    in_span = units * span / window
    counts = {}
    with open(f"{out}/counts.csv") as lines:
        for row in csv.reader(line for line in lines if line.strip() and not line.startswith("#")):
            if len(row) > 2:
                try:
                    counts[row[2]] = float(row[0])
                except ValueError:
                    pass  # <not counted> and the like
    names = {}
    try:
        for line in open(f"{out}/probe-names.txt"):
            readable, _, event = line.rstrip("\n").rpartition(" = ")
            names[event] = readable
    except FileNotFoundError:
        pass
    reads = next((v for k, v in counts.items() if "received_4from" in k), 0)
    print(f"{in_span:,.0f} {unit_name}s in the counted span ({span:g} s of a {window:g} s window); "
          f"{reads:,.0f} relayed reads (RelaySession.received)")
    print(f"{'event':64} {'count':>12} {'per ' + unit_name:>14} {'per read':>10}")
    for event, value in sorted(counts.items(), key=lambda kv: -kv[1]):
        group, _, probe = event.partition(":")
        label = names.get(probe, event)[:64]
        per_unit = value / in_span if in_span else 0
        per_read = value / reads if reads else 0
        print(f"{label:64} {value:12,.0f} {per_unit:14.2f} {per_read:10.2f}")


if __name__ == "__main__":
    main()
