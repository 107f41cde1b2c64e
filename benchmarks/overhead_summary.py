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

ECHO_METRICS = [  # (id, label, extractor, decimals)
    ("rate", "msgs/s ↑", lambda r: r["messagesPerSecond"], 0),
    ("p50", "p50 µs ↓", lambda r: r["latencyMicros"]["p50"], 0),
    ("p99", "p99 µs ↓", lambda r: r["latencyMicros"]["p99"], 0),
    # One echoed message is two relayed messages: client to backend and back.
    ("cpu", "proxy CPU µs / echoed msg ↓", lambda r: r["watchedCPUSeconds"] / r["messages"] * 1e6, 2),
]
HANDSHAKE_METRICS = [
    ("rate", "handshakes/s ↑", lambda r: r["handshakesPerSecond"], 0),
    ("p50", "p50 µs ↓", lambda r: r["latencyMicros"]["p50"], 0),
    ("p99", "p99 µs ↓", lambda r: r["latencyMicros"]["p99"], 0),
    ("cpu", "proxy CPU µs / handshake ↓", lambda r: r["watchedCPUSeconds"] / r["handshakes"] * 1e6, 0),
]
# (id, label, metrics, expected transport); only the scenarios present in the runs are shown.
SCENARIOS = [("s1_plain64", "1. 64 B msgs, {c} conns, plain", ECHO_METRICS, "http/1.1"),
             ("s3_plain16k", "3. 16 KiB msgs, {c} conns, plain", ECHO_METRICS, "http/1.1"),
             ("s5_handshake_tls", "5. TLS handshakes, {hs} parallel, {groups}", HANDSHAKE_METRICS, None),
             ("s7_h2_64", "7. 64 B msgs, {h2} WebSockets on 1 HTTP/2 conn, TLS", ECHO_METRICS, "h2")]
META_KEYS = ("BASELINE_LABEL", "CANDIDATE_LABEL", "REPS", "DURATION", "LARGE_DURATION", "WARMUP", "CONNS",
             "PROXY_THREADS", "CORES", "LOAD_START", "LOAD_END", "SECONDS_TAKEN", "SCENARIOS", "TLS_GROUPS",
             "HS_PARALLEL", "HS_DURATION", "H2_STREAMS", "RESULTS_NAME")


def ok(run):
    return run["exit"] == 0 and run["result"] is not None


def value(run, extract):
    try:
        return extract(run["result"])
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def summarize(runs, meta):
    rows, problems = [], []
    transports = {scenario: transport for scenario, _, _, transport in SCENARIOS}
    for run in runs:
        r = run["result"]
        if not ok(run) or r.get("errors") or r.get("connectionsLost"):
            problems.append(f'{run["scenario"]}/{run["build"]} rep {run["rep"]}: exit {run["exit"]}, '
                            f'errors {r.get("errors") if r else "?"}')
        elif transports.get(run["scenario"]) and r.get("transport") != transports[run["scenario"]]:
            problems.append(f'{run["scenario"]}/{run["build"]} rep {run["rep"]}: transport {r.get("transport")}, '
                            f'expected {transports[run["scenario"]]}')
    present = {run["scenario"] for run in runs}
    for scenario, label, metrics, _ in SCENARIOS:
        if scenario not in present:
            continue
        label = label.format(c=meta.get("CONNS", "?"), hs=meta.get("HS_PARALLEL") or "20",
                             groups=meta.get("TLS_GROUPS") or "x25519,secp256r1", h2=meta.get("H2_STREAMS") or "50")
        for mid, mlabel, extract, decimals in metrics:
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
            rows.append({"scenario": scenario, "label": label, "metric": mid,
                         "metricLabel": mlabel, "decimals": decimals, "cells": cells, "ratio": ratio,
                         "pairedRatios": pairs, "pairedMedian": statistics.median(pairs) if pairs else None})
    return rows, problems


def cell(c, decimals):
    if c is None:
        return "n/a"
    spread = (c["max"] - c["min"]) / 2 / abs(c["median"]) * 100 if c["median"] and len(c["values"]) > 1 else 0
    return f'{c["median"]:,.{decimals}f} ±{spread:.0f}%'


def markdown(meta, rows, problems):
    present = {row["scenario"] for row in rows}
    runs = []
    if present & {"s1_plain64", "s7_h2_64"}:
        runs.append(f'64 B runs {meta["DURATION"]} s')
    if "s3_plain16k" in present:
        runs.append(f'16 KiB runs {meta["LARGE_DURATION"]} s')
    runs = ", ".join(runs) + f', after {meta["WARMUP"]} s warm-up' if runs else ""
    if "s5_handshake_tls" in present:
        runs += f'{"; " if runs else ""}handshakes {meta.get("HS_DURATION") or 5} s after 1 s warm-up'
    conns = f'{meta["CONNS"]} connections' if present & {"s1_plain64", "s3_plain16k"} else ""
    lines = [f'Run {meta["date"]}: {meta["REPS"]} interleaved repetitions, medians (± is half the min–max range); '
             f'{runs}; {conns + "; " if conns else ""}both proxies with {meta["PROXY_THREADS"]} threads on '
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
              f'Per-repetition values are in {meta.get("RESULTS_NAME") or "relay-overhead"}.json.', ""]
    lines += [f"- problem: {p}" for p in problems] or ["No errors, lost connections or wrong transports in any run."]
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
