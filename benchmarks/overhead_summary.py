#!/usr/bin/env python3
"""Summarizes relay-overhead.sh's runs: medians per build, the ratio of medians, and the median of the per-repetition
(paired) ratios, which cancels much of the drift of a shared machine between repetitions.

Usage: overhead_summary.py RAW.jsonl OUT.json OUT.md      (run metadata from relay-overhead.sh's environment)
       overhead_summary.py --again OUT.json OUT.md        (rewrite both from an earlier OUT.json)
"""
import datetime
import json
import os
import statistics
import sys

METRICS = [  # (id, label, extractor, decimals)
    ("rate", "msgs/s ↑", lambda r: r["messagesPerSecond"], 0),
    ("p50", "p50 µs ↓", lambda r: r["latencyMicros"]["p50"], 0),
    ("p99", "p99 µs ↓", lambda r: r["latencyMicros"]["p99"], 0),
    # One echoed message is two relayed messages: client to backend and back.
    ("cpu", "proxy CPU µs / echoed msg ↓", lambda r: r["watchedCPUSeconds"] / r["messages"] * 1e6, 2),
]
SCENARIOS = [("s1_plain64", "1. 64 B msgs, {c} conns, plain"), ("s3_plain16k", "3. 16 KiB msgs, {c} conns, plain")]
META_KEYS = ("BASELINE_LABEL", "CANDIDATE_LABEL", "REPS", "DURATION", "LARGE_DURATION", "WARMUP", "CONNS",
             "PROXY_THREADS", "CORES", "LOAD_START", "LOAD_END", "SECONDS_TAKEN")


def ok(run):
    return run["exit"] == 0 and run["result"] is not None


def value(run, extract):
    try:
        return extract(run["result"])
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def summarize(runs, meta):
    rows, problems = [], []
    for run in runs:
        r = run["result"]
        if not ok(run) or r.get("errors") or r.get("connectionsLost"):
            problems.append(f'{run["scenario"]}/{run["build"]} rep {run["rep"]}: exit {run["exit"]}, '
                            f'errors {r.get("errors") if r else "?"}')
    for scenario, label in SCENARIOS:
        for mid, mlabel, extract, decimals in METRICS:
            per = {"baseline": {}, "candidate": {}}
            for run in runs:
                if run["scenario"] == scenario and run["build"] in per and ok(run):
                    v = value(run, extract)
                    if v is not None:
                        per[run["build"]][run["rep"]] = v
            cells = {}
            for build, values in per.items():
                if values:
                    vs = list(values.values())
                    cells[build] = {"median": statistics.median(vs), "min": min(vs), "max": max(vs), "values": vs}
            ratio = (cells["candidate"]["median"] / cells["baseline"]["median"]
                     if "candidate" in cells and "baseline" in cells and cells["baseline"]["median"] else None)
            pairs = [per["candidate"][rep] / per["baseline"][rep]
                     for rep in per["baseline"] if rep in per["candidate"] and per["baseline"][rep]]
            rows.append({"scenario": scenario, "label": label.format(c=meta.get("CONNS", "?")), "metric": mid,
                         "metricLabel": mlabel, "decimals": decimals, "cells": cells, "ratio": ratio,
                         "pairedRatios": pairs, "pairedMedian": statistics.median(pairs) if pairs else None})
    return rows, problems


def cell(c, decimals):
    if c is None:
        return "n/a"
    spread = (c["max"] - c["min"]) / 2 / abs(c["median"]) * 100 if c["median"] and len(c["values"]) > 1 else 0
    return f'{c["median"]:,.{decimals}f} ±{spread:.0f}%'


def markdown(meta, rows, problems):
    lines = [f'Run {meta["date"]}: {meta["REPS"]} interleaved repetitions, medians (± is half the min–max range); '
             f'64 B runs {meta["DURATION"]} s, 16 KiB runs {meta["LARGE_DURATION"]} s, after {meta["WARMUP"]} s '
             f'warm-up; {meta["CONNS"]} connections; both proxies with {meta["PROXY_THREADS"]} threads on '
             f'{meta["CORES"]} cores; load average {meta["LOAD_START"]} at start, {meta["LOAD_END"]} at end; '
             f'{meta["SECONDS_TAKEN"]} s.', "",
             f'| Scenario | Metric | baseline: {meta["BASELINE_LABEL"]} | candidate: {meta["CANDIDATE_LABEL"]} | '
             f'ratio of medians | median of paired ratios |',
             "|---|---|---:|---:|---:|---:|"]
    last = None
    for row in rows:
        label = row["label"] if row["label"] != last else ""
        last = row["label"]
        ratio = f'{row["ratio"]:.3f}×' if row["ratio"] is not None else "n/a"
        paired = f'{row["pairedMedian"]:.3f}×' if row["pairedMedian"] is not None else "n/a"
        lines.append(f'| {label} | {row["metricLabel"]} | {cell(row["cells"].get("baseline"), row["decimals"])} | '
                     f'{cell(row["cells"].get("candidate"), row["decimals"])} | {ratio} | {paired} |')
    lines += ["", "A paired ratio compares the two builds within one repetition (they ran back to back). "
              "Per-repetition values are in relay-overhead.json.", ""]
    lines += [f"- problem: {p}" for p in problems] or ["No errors or lost connections in any run."]
    return "\n".join(lines) + "\n"


def main():
    if sys.argv[1] == "--again":
        json_path, md_path = sys.argv[2:4]
        old = json.load(open(json_path))
        runs, meta = old["runs"], old["meta"]
    else:
        raw, json_path, md_path = sys.argv[1:4]
        runs = [json.loads(line) for line in open(raw) if line.strip()]
        meta = {k: os.environ.get(k, "") for k in META_KEYS}
        meta["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows, problems = summarize(runs, meta)
    with open(json_path, "w") as out:
        json.dump({"meta": meta, "rows": rows, "problems": problems, "runs": runs}, out, indent=1, sort_keys=True)
        out.write("\n")
    text = markdown(meta, rows, problems)
    open(md_path, "w").write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
