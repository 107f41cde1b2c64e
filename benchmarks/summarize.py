#!/usr/bin/env python3
"""Turns compare.sh's raw results (one JSON object per benchmark run) into medians, ratios and a markdown table.

Usage: summarize.py RAW.jsonl OUT.json OUT.md   (run metadata comes from environment variables set by compare.sh)
       summarize.py --again OUT.json OUT.md     (recompute both from the runs and metadata of an earlier OUT.json)
"""
import datetime
import json
import os
import statistics
import sys

TARGETS = ["direct", "gatehouse", "nginx", "haproxy"]

# (row id, scenario label, metric label, source scenario, extractor, higher_is_better, decimals)
ROWS = [
    ("s1_rate", "1. 64 B msgs, {conns} conns, plain", "msgs/s", "s1_plain64", lambda r: r["messagesPerSecond"], True, 0),
    ("s1_p50", "", "p50 µs", "s1_plain64", lambda r: r["latencyMicros"]["p50"], False, 0),
    ("s1_p99", "", "p99 µs", "s1_plain64", lambda r: r["latencyMicros"]["p99"], False, 0),
    ("s1_p999", "", "p99.9 µs", "s1_plain64", lambda r: r["latencyMicros"]["p999"], False, 0),
    ("s2_rate", "2. 64 B msgs, {conns} conns, TLS", "msgs/s", "s2_tls64", lambda r: r["messagesPerSecond"], True, 0),
    ("s2_p50", "", "p50 µs", "s2_tls64", lambda r: r["latencyMicros"]["p50"], False, 0),
    ("s2_p99", "", "p99 µs", "s2_tls64", lambda r: r["latencyMicros"]["p99"], False, 0),
    ("s2_cpu", "", "proxy CPU s / 1M msgs", "s2_tls64",
     lambda r: r["watchedCPUSeconds"] / r["messages"] * 1e6 if r.get("watchedCPUSeconds") is not None and r["messages"] else None,
     False, 2),
    ("s3_rate", "3. 16 KiB msgs, {conns} conns, plain", "msgs/s", "s3_plain16k", lambda r: r["messagesPerSecond"], True, 0),
    ("s3_mib", "", "MiB/s echoed", "s3_plain16k", lambda r: r["messagesPerSecond"] * r["messageBytes"] / 2**20, True, 1),
    ("s3_p50", "", "p50 µs", "s3_plain16k", lambda r: r["latencyMicros"]["p50"], False, 0),
    ("s3_p99", "", "p99 µs", "s3_plain16k", lambda r: r["latencyMicros"]["p99"], False, 0),
    ("s4_rss", "4. {idle} idle conns held", "RSS KiB / conn", "s4_idle",
     lambda r: r["rssPerConnectionBytes"] / 1024 if r.get("rssPerConnectionBytes") is not None else None, False, 2),
    ("s5_rate", "5. TLS handshakes, {hs} parallel", "handshakes/s", "s5_handshake_tls", lambda r: r["handshakesPerSecond"], True, 0),
    ("s5_p99", "", "p99 µs", "s5_handshake_tls", lambda r: r["latencyMicros"]["p99"], False, 0),
    ("s5_cpu", "", "proxy CPU µs / handshake", "s5_handshake_tls",
     lambda r: r["watchedCPUSeconds"] / r["handshakes"] * 1e6 if r.get("watchedCPUSeconds") is not None and r["handshakes"] else None,
     False, 0),
    ("s5b_rate", "5b. TLS handshakes, X25519MLKEM768", "handshakes/s", "s5b_handshake_pq",
     lambda r: r["handshakesPerSecond"], True, 0),
    ("s5b_cpu", "", "proxy CPU µs / handshake", "s5b_handshake_pq",
     lambda r: r["watchedCPUSeconds"] / r["handshakes"] * 1e6 if r.get("watchedCPUSeconds") is not None and r["handshakes"] else None,
     False, 0),
    ("s6_cpu", "6. proxy CPU in scenario 1", "CPU s / 1M msgs", "s1_plain64",
     lambda r: r["watchedCPUSeconds"] / r["messages"] * 1e6 if r.get("watchedCPUSeconds") is not None and r["messages"] else None,
     False, 2),
    ("s7_rate", "7. 64 B msgs, {h2} WebSockets on 1 HTTP/2 conn, TLS", "msgs/s", "s7_h2_64", lambda r: r["messagesPerSecond"], True, 0),
    ("s7_p50", "", "p50 µs", "s7_h2_64", lambda r: r["latencyMicros"]["p50"], False, 0),
    ("s7_p99", "", "p99 µs", "s7_h2_64", lambda r: r["latencyMicros"]["p99"], False, 0),
    ("s7_cpu", "", "proxy CPU s / 1M msgs", "s7_h2_64",
     lambda r: r["watchedCPUSeconds"] / r["messages"] * 1e6 if r.get("watchedCPUSeconds") is not None and r["messages"] else None,
     False, 2),
]

# How the load generator opened its WebSockets in each echo scenario (the result's "transport"): HTTP/1.1 Upgrade
# with no ALPN offered, or RFC 8441 streams on a connection that negotiated h2.
EXPECTED_TRANSPORT = {"s1_plain64": "http/1.1", "s2_tls64": "http/1.1", "s3_plain16k": "http/1.1", "s7_h2_64": "h2"}


def ok(run):
    return run["exit"] == 0 and run["result"] is not None


def main():
    if sys.argv[1] == "--again":
        json_path, md_path = sys.argv[2:4]
        earlier = json.load(open(json_path))
        runs, meta = earlier["runs"], earlier["meta"]
    else:
        raw_path, json_path, md_path = sys.argv[1:4]
        runs = [json.loads(line) for line in open(raw_path) if line.strip()]
        meta = metadata(os.environ)
    rows, problems = summarize(runs)
    with open(json_path, "w") as out:
        json.dump({"meta": meta, "rows": rows, "problems": problems, "runs": runs}, out, indent=1, sort_keys=True)
        out.write("\n")
    with open(md_path, "w") as out:
        out.write(markdown(meta, rows, problems))


def summarize(runs):
    rows = []
    for row_id, scenario, metric, source, extract, higher, decimals in ROWS:
        cells = {}
        for target in TARGETS:
            values = []
            for run in runs:
                if run["scenario"] != source or run["target"] != target or not ok(run):
                    continue
                try:
                    value = extract(run["result"])
                except (KeyError, TypeError, ZeroDivisionError):
                    value = None
                if value is not None:
                    values.append(value)
            if values:
                cells[target] = {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}
        ratios = {}
        if "gatehouse" in cells:
            for other in ("nginx", "haproxy"):
                if other in cells and cells[other]["median"]:
                    ratios[other] = cells["gatehouse"]["median"] / cells[other]["median"]
        rows.append({"id": row_id, "scenario": scenario, "metric": metric, "higherIsBetter": higher,
                     "decimals": decimals, "cells": cells, "ratios": ratios})

    problems = {}
    for run in runs:
        key = f'{run["scenario"]}/{run["target"]}'
        entry = problems.setdefault(key, {"runs": 0, "failedRuns": 0, "errors": 0, "dropped": 0, "connectFailures": 0,
                                          "wrongTransport": 0})
        entry["runs"] += 1
        if not ok(run):
            entry["failedRuns"] += 1
            continue
        result = run["result"]
        entry["errors"] += result.get("errors", 0)
        entry["dropped"] += result.get("dropped", 0)
        entry["connectFailures"] += result.get("connectFailures", 0) + result.get("failed", 0)
        expected = EXPECTED_TRANSPORT.get(run["scenario"])
        if expected is not None and result.get("transport") != expected:
            entry["wrongTransport"] += 1
    return rows, problems


def metadata(env):
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runSeconds": int(env.get("RUN_SECONDS", "0")),
        "buildSeconds": int(env.get("BUILD_SECONDS", "0")),
        "benchSeconds": int(env.get("BENCH_SECONDS", "0")),
        "loadAverageAtStart": env.get("LOAD_START", ""),
        "loadAverageAtEnd": env.get("LOAD_END", ""),
        "quick": env.get("QUICK", "0") == "1",
        "reps": int(env.get("REPS", "0")),
        "durationSeconds": float(env.get("DURATION", "0")),
        "largeDurationSeconds": float(env.get("LARGE_DURATION", "0")),
        "warmupSeconds": float(env.get("WARMUP", "0")),
        "connections": int(env.get("CONNS", "0")),
        "idleConnections": int(env.get("IDLE_CONNS", "0")),
        "idleHoldSeconds": float(env.get("IDLE_HOLD", "0")),
        "handshakeParallel": int(env.get("HS_PARALLEL", "0")),
        "handshakeDurationSeconds": float(env.get("HS_DURATION", "0")),
        "h2Streams": int(env.get("H2_STREAMS", "0")),
        "tlsGroups": env.get("TLS_GROUPS", ""),
        "proxyThreads": int(env.get("PROXY_THREADS", "0")),
        "echoThreads": int(env.get("ECHO_THREADS", "0")),
        "clientThreads": int(env.get("CLIENT_THREADS", "0")),
        "cores": int(env.get("CORES", "0")),
        "cpu": env.get("CPU_MODEL", ""),
        "kernel": env.get("KERNEL", ""),
        "nginx": env.get("NGINX_VERSION", ""),
        "haproxy": env.get("HAPROXY_VERSION", ""),
        "swift": env.get("SWIFT_VERSION", ""),
        "gatehouseCommit": env.get("GATEHOUSE_COMMIT", ""),
    }


def fmt(value, decimals):
    return f"{value:,.{decimals}f}"


def cell(cells, target, decimals):
    if target not in cells:
        return "n/a"
    c = cells[target]
    text = fmt(c["median"], decimals)
    if len(c["values"]) > 1 and c["median"]:
        spread = (c["max"] - c["min"]) / 2 / abs(c["median"]) * 100
        text += f" ±{spread:.0f}%"
    return text


def markdown(meta, rows, problems):
    labels = {"conns": meta["connections"], "idle": f'{meta["idleConnections"]:,}', "hs": meta["handshakeParallel"],
              "h2": meta["h2Streams"]}
    lines = [
        f'Run {meta["date"]}, gatehouse {meta["gatehouseCommit"]}: {meta["benchSeconds"]} s of benchmarking '
        f'({meta["runSeconds"]} s in all, {meta["buildSeconds"]} s of it building); load average '
        f'{meta["loadAverageAtStart"]} at start, {meta["loadAverageAtEnd"]} at end'
        + (" (QUICK smoke run: numbers are not meaningful)" if meta["quick"] else "") + ".",
        f'Medians of {meta["reps"]} interleaved repetitions (± is half the min–max range); '
        f'echo runs {meta["durationSeconds"]:g} s (16 KiB: {meta["largeDurationSeconds"]:g} s) after '
        f'{meta["warmupSeconds"]:g} s warm-up; '
        f'handshakes {meta["handshakeDurationSeconds"]:g} s; TLS key exchange offered: {meta["tlsGroups"]} '
        f'(5b: the client library default, X25519MLKEM768 first). '
        f'{meta["cores"]} cores ({meta["cpu"]}), kernel {meta["kernel"]}; proxies with {meta["proxyThreads"]} '
        f'threads/workers, echo backend {meta["echoThreads"]} thread, client {meta["clientThreads"]} thread; '
        f'nginx {meta["nginx"]}, HAProxy {meta["haproxy"]}. One shared, noisy machine: ratios matter more than absolutes.',
        "",
        "| Scenario | Metric | direct | gatehouse | nginx | haproxy | gatehouse/nginx | gatehouse/haproxy |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        arrow = "↑" if row["higherIsBetter"] else "↓"
        ratio = [f'{row["ratios"][o]:.2f}×' if o in row["ratios"] else "n/a" for o in ("nginx", "haproxy")]
        values = [cell(row["cells"], t, row["decimals"]) for t in TARGETS]
        lines.append(f'| {row["scenario"].format(**labels)} | {row["metric"]} {arrow} | ' + " | ".join(values + ratio) + " |")
    lines += ["", "↑ higher is better, ↓ lower is better; a ratio above 1 means gatehouse's number is larger. "
              "Scenario 7: nginx does not implement RFC 8441 (WebSockets over HTTP/2), so n/a. Scenario 5b: nginx and "
              "HAProxy link OpenSSL 3.0, which has no ML-KEM, so n/a.", ""]
    bad = {k: v for k, v in problems.items()
           if v["failedRuns"] or v["errors"] or v["dropped"] or v["connectFailures"] or v["wrongTransport"]}
    if bad:
        lines.append("Errors seen (summed over repetitions):")
        lines.append("")
        for key, v in sorted(bad.items()):
            lines.append(f'- {key}: {v["failedRuns"]}/{v["runs"]} runs failed, {v["errors"]} errors, '
                         f'{v["connectFailures"]} connect failures, {v["dropped"]} dropped, '
                         f'{v["wrongTransport"]} runs on the wrong transport')
    else:
        lines.append("No errors, failed runs, dropped connections or wrong transports in any run "
                     "(scenarios 1–3 on HTTP/1.1, scenario 7 on h2).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
