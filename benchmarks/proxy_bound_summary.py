#!/usr/bin/env python3
"""Turns proxy-bound.sh's raw results (one JSON object per load-generator run) into medians, Gatehouse ÷ nginx and
Gatehouse ÷ HAProxy ratios, a markdown table and a JSON file.

Usage: proxy_bound_summary.py RAW.jsonl OUT.json OUT.md   (run metadata comes from environment variables)
       proxy_bound_summary.py --again OUT.json OUT.md     (recompute both from the runs and metadata of an OUT.json)
"""
import datetime
import json
import os
import statistics
import sys

TARGETS = ["direct", "gatehouse", "nginx", "haproxy"]
# With GATEHOUSE_B_BIN, a second Gatehouse build runs as one more target, compared with the first.
TARGET_B = "gatehouse_b"
NAMES = {"direct": "direct", "gatehouse": "Gatehouse", "nginx": "nginx", "haproxy": "HAProxy", TARGET_B: "Gatehouse B"}


def per(key, scale=1e6, count="messages"):
    """CPU seconds in the measured window per echo (or handshake), in µs; None where not measured."""
    def extract(r):
        value, n = r.get(key), r.get(count)
        return value / n * scale if value is not None and n else None
    return extract


def sum_of(a, b):
    return a + b if a is not None and b is not None else None


def latency(name):
    return lambda r: (r.get("latencyMicros") or {}).get(name)


RATE = lambda r: r.get("messagesPerSecond")  # noqa: E731

# (row id, scenario label, metric, scenario, extractor, higher_is_better, decimals)
ROWS = [
    ("ws64_rate", "64 B, {conns} conns, saturated, ws", "echoes/s", "ws64", RATE, True, 0),
    ("ws64_p50", "", "p50 µs", "ws64", latency("p50"), False, 0),
    ("ws64_p99", "", "p99 µs", "ws64", latency("p99"), False, 0),
    ("ws64_cpu", "", "proxy CPU µs / echo", "ws64", per("watchedCPUSeconds"), False, 2),
    ("ws64_backend", "", "backend CPU µs / echo", "ws64", per("otherCPUSeconds"), False, 2),
    ("ws64_load", "", "load generator CPU µs / echo", "ws64", per("clientWindowCPUSeconds"), False, 2),
    ("paced_rate", "64 B, {conns} conns, paced at {paced_rate}/s, ws", "echoes/s achieved", "ws64_paced", RATE, True, 0),
    ("paced_p50", "", "p50 µs", "ws64_paced", latency("p50"), False, 0),
    ("paced_p99", "", "p99 µs", "ws64_paced", latency("p99"), False, 0),
    ("paced_cpu", "", "proxy CPU µs / echo", "ws64_paced", per("watchedCPUSeconds"), False, 2),
    ("ws16k_rate", "16 KiB, {conns} conns, saturated, ws", "echoes/s", "ws16k", RATE, True, 0),
    ("ws16k_mib", "", "MiB/s echoed", "ws16k",
     lambda r: r["messagesPerSecond"] * r["messageBytes"] / 2**20 if r.get("messagesPerSecond") else None, True, 1),
    ("ws16k_p99", "", "p99 µs", "ws16k", latency("p99"), False, 0),
    ("ws16k_cpu", "", "proxy CPU µs / echo", "ws16k", per("watchedCPUSeconds"), False, 2),
    ("ws16k_rest", "", "backend + load generator CPU µs / echo", "ws16k",
     lambda r: sum_of(per("otherCPUSeconds")(r), per("clientWindowCPUSeconds")(r)), False, 2),
    ("wss64_rate", "64 B, {conns} conns, saturated, wss", "echoes/s", "wss64", RATE, True, 0),
    ("wss64_p99", "", "p99 µs", "wss64", latency("p99"), False, 0),
    ("wss64_cpu", "", "proxy CPU µs / echo", "wss64", per("watchedCPUSeconds"), False, 2),
    ("wss64_rest", "", "backend + load generator CPU µs / echo", "wss64",
     lambda r: sum_of(per("otherCPUSeconds")(r), per("clientWindowCPUSeconds")(r)), False, 2),
    ("hs_rate", "TLS handshake + upgrade + close, {hs} parallel", "handshakes/s", "handshake",
     lambda r: r.get("handshakesPerSecond"), True, 0),
    ("hs_p99", "", "p99 µs (connect to 101)", "handshake", latency("p99"), False, 0),
    ("hs_cpu", "", "proxy CPU µs / handshake", "handshake", per("watchedCPUSeconds", count="handshakes"), False, 0),
    ("hs_load", "", "load generator CPU µs / handshake", "handshake",
     per("clientWindowCPUSeconds", count="handshakes"), False, 0),
    ("rs_rate", "TLS resumed handshake + upgrade + close, {hs} parallel", "handshakes/s", "resume",
     lambda r: r.get("handshakesPerSecond"), True, 0),
    ("rs_resumed", "", "resumed %", "resume",
     lambda r: r["resumed"] / r["handshakes"] * 100 if r.get("handshakes") and "resumed" in r else None, True, 1),
    ("rs_p99", "", "p99 µs (connect to 101)", "resume", latency("p99"), False, 0),
    ("rs_cpu", "", "proxy CPU µs / handshake", "resume", per("watchedCPUSeconds", count="handshakes"), False, 0),
    ("rs_load", "", "load generator CPU µs / handshake", "resume",
     per("clientWindowCPUSeconds", count="handshakes"), False, 0),
    ("idle_rss", "{idle} idle WebSockets held", "proxy RSS KiB / conn", "idle",
     lambda r: r.get("rssPerConnectionKiB"), False, 2),
    ("idlewss_rss", "{idle} idle WebSockets held, wss", "proxy RSS KiB / conn", "idlewss",
     lambda r: r.get("rssPerConnectionKiB"), False, 2),
    ("idleburst_rss", "{idle} idle WebSockets held after one {burst} message each", "proxy RSS KiB / conn",
     "idleburst", lambda r: r.get("rssPerConnectionKiB"), False, 2),
]

# Saturated echo scenarios: `direct` must be well above every proxy, or the load generator and backend, not the
# proxy, set the pace. (Handshakes have no such ceiling: `direct` there is Go's own TLS server doing the work
# the proxies do, a reference; the load generator's CPU per handshake beside the proxies' shows the margin.)
HEADROOM = {"ws64": "ws64_rate", "ws16k": "ws16k_rate", "wss64": "wss64_rate"}
HEADROOM_MIN = 1.3


def ok(run):
    return run["exit"] == 0 and run["result"] is not None and run["result"].get("errors", 0) == 0


def targets_of(runs):
    return TARGETS + ([TARGET_B] if any(run["target"] == TARGET_B for run in runs) else [])


def summarize(runs, meta):
    targets = targets_of(runs)
    medians, failures = {}, []
    for run in runs:
        if not ok(run):
            r = run["result"] or {}
            failures.append(f"{run['scenario']} {run['target']} rep {run['rep']}: exit {run['exit']}, "
                            f"{r.get('errors', '?')} errors {r.get('firstError', '')}".rstrip())
    for row_id, _, _, scenario, extract, _, _ in ROWS:
        medians[row_id] = {}
        for target in targets:
            values = [v for v in (extract(run["result"]) for run in runs
                                  if run["scenario"] == scenario and run["target"] == target and ok(run))
                      if v is not None]
            medians[row_id][target] = statistics.median(values) if values else None
    ratios = {}
    for row_id in medians:
        gh = medians[row_id]["gatehouse"]
        ratios[row_id] = {
            other: (gh / medians[row_id][other]) if gh is not None and medians[row_id][other] else None
            for other in ("nginx", "haproxy")
        }
        if TARGET_B in targets:
            b = medians[row_id][TARGET_B]
            ratios[row_id][TARGET_B] = b / gh if b is not None and gh else None
    headroom = {}
    for scenario, row_id in HEADROOM.items():
        direct = medians[row_id]["direct"]
        best = max((medians[row_id][t] for t in targets[1:] if medians[row_id][t]), default=None)
        headroom[scenario] = direct / best if direct and best else None
    paced_short = {t: v / meta["paced_rate"] for t, v in medians["paced_rate"].items()
                   if v is not None and v < 0.97 * meta["paced_rate"]}
    return {"meta": meta, "targets": targets, "medians": medians, "ratios": ratios, "headroom": headroom,
            "pacedShort": paced_short, "failures": failures, "runs": runs}


def size_label(n):
    """64 B, 16 KiB, 1 MiB, or 1,500 B where not a whole number of KiB."""
    n = int(n)
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale:,} {unit}"
    return f"{n:,} B"


def burst_bytes(runs):
    """The message size of the idleburst runs (from their results; the environment's for older files)."""
    sizes = {run["result"].get("burstBytes") for run in runs
             if run["scenario"] == "idleburst" and run["result"] and run["result"].get("burstBytes")}
    return sizes.pop() if len(sizes) == 1 else None


def fmt(value, decimals):
    if value is None:
        return "—"
    return f"{value:,.{decimals}f}"


def markdown(summary):
    meta, medians, ratios, targets = summary["meta"], summary["medians"], summary["ratios"], summary["targets"]
    with_b = TARGET_B in targets
    burst = burst_bytes(summary["runs"]) or meta.get("burst_bytes")
    labels = {"conns": meta["conns"], "paced_rate": f"{meta['paced_rate']:,}", "hs": meta["hs_parallel"],
              "idle": f"{meta['idle_conns']:,}",
              "burst": size_label(burst) if burst else "large"}
    quick = " (QUICK=1 smoke test: the numbers mean little)" if meta.get("quick") == "1" else ""
    lines = [
        f"# Proxy-bound comparison{quick}",
        "",
        f"{meta['date']}, {meta['cores']} cores ({meta['cpu']}), kernel {meta['kernel']}, load average "
        f"{meta['load_start']} → {meta['load_end']}. Gatehouse {meta['gatehouse']}, nginx {meta['nginx']}, "
        + (f"Gatehouse B {meta.get('gatehouse_b')}, " if with_b else "")
        + f"HAProxy {meta['haproxy']}, each with {meta['proxy_threads']} workers/threads, access logs off. Backend and "
        f"load generator: Go {meta['go']} with gorilla/websocket {meta['gorilla']} (GOMAXPROCS {meta['echo_procs']} "
        f"and {meta['load_procs']}). Medians of {meta['reps']} interleaved repetitions; {meta['warmup']} s warm-up "
        f"before each window ({meta['duration']} s saturated 64 B, {meta['paced_duration']} s paced, "
        f"{meta['large_duration']} s 16 KiB, {meta['hs_duration']} s handshakes). Benchmarks took "
        f"{meta['bench_seconds']} s.",
        "",
        "CPU is each proxy process's utime + stime (nginx: master and workers) over the measured window, divided by "
        "the echoes (or handshakes) in it; RSS is VmRSS of a freshly started proxy with the idle connections held, "
        "minus before, divided by the connections. For echoes/s and handshakes/s higher is better; for latency, CPU "
        "and RSS lower is better, so a ratio above 1 there is Gatehouse costing more. Every process shares the "
        "same cores, so echoes/s also pays for the backend's and load generator's CPU: CPU per echo is the figure "
        "that isolates the proxy. In the handshake rows `direct` is Go's own TLS server (a reference, not a "
        "ceiling); the backend there only sees plain WebSocket upgrades. The resume rows are the same loops with a TLS "
        "session cache each, so every handshake after a loop's first can resume (TLS 1.3 PSK or TLS 1.2 ticket); "
        "resumed % is the share of the window's handshakes that did, and CPU per handshake is over all of them."
        + (f" The idle row \"after one {labels['burst']} message each\" is the same plain-ws measurement after every "
           "connection first carried one binary message of that size and its echo: what a proxy keeps per "
           "connection once a large message has passed." if any(medians["idleburst_rss"][t] is not None
                                                                for t in targets) else ""),
        "",
        "| Scenario | Metric | " + " | ".join(NAMES[t] for t in targets) + " | Gatehouse ÷ nginx | Gatehouse ÷ HAProxy |"
        + (" B ÷ Gatehouse |" if with_b else ""),
        "| --- | --- |" + " ---: |" * (len(targets) + 2 + with_b),
    ]
    for row_id, label, metric, _, _, _, decimals in ROWS:
        if all(medians[row_id][t] is None for t in targets):
            continue  # a scenario left out with SCENARIOS
        cells = [fmt(medians[row_id][t], decimals) for t in targets]
        ratio = [fmt(ratios[row_id][o], 2) + ("×" if ratios[row_id][o] is not None else "")
                 for o in ("nginx", "haproxy") + ((TARGET_B,) if with_b else ())]
        lines.append(f"| {label.format(**labels)} | {metric} | " + " | ".join(cells + ratio) + " |")
    lines += ["", "Headroom (direct ÷ the fastest proxy; below "
              f"{HEADROOM_MIN} the load generator or backend may be setting the pace): "
              + ", ".join(f"{s} {fmt(v, 2)}×" for s, v in summary["headroom"].items() if v is not None) + "."]
    low = [s for s, v in summary["headroom"].items() if v is not None and v < HEADROOM_MIN]
    if low:
        lines += ["", f"**Warning:** too little headroom in {', '.join(low)}: those rows do not isolate the proxy."]
    if summary["pacedShort"]:
        lines += ["", "**Warning:** paced runs fell short of the offered rate: "
                  + ", ".join(f"{t} {v:.0%}" for t, v in summary["pacedShort"].items()) + "."]
    if summary["failures"]:
        lines += ["", "Runs left out (failed or with errors):", ""] + [f"- {f}" for f in summary["failures"]]
    return "\n".join(lines) + "\n"


def meta_from_env():
    env = os.environ.get
    gatehouse = env("GATEHOUSE_LABEL") or "build"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": env("QUICK", "0"), "reps": int(env("REPS", "0")), "duration": env("DURATION"),
        "paced_duration": env("PACED_DURATION"), "paced_rate": int(env("PACED_RATE", "0")),
        "large_duration": env("LARGE_DURATION"), "hs_duration": env("HS_DURATION"),
        "hs_parallel": env("HS_PARALLEL"), "warmup": env("WARMUP"), "conns": env("CONNS"),
        "idle_conns": int(env("IDLE_CONNS", "0")), "idle_hold": env("IDLE_HOLD"),
        "burst_bytes": int(env("BURST_BYTES", "0")) or None,
        "proxy_threads": env("PROXY_THREADS"), "echo_procs": env("ECHO_PROCS"), "load_procs": env("LOAD_PROCS"),
        "cores": env("CORES"), "cpu": env("CPU_MODEL"), "kernel": env("KERNEL"),
        "load_start": env("LOAD_START"), "load_end": env("LOAD_END"),
        "run_seconds": env("RUN_SECONDS"), "bench_seconds": env("BENCH_SECONDS"),
        "gatehouse": f"{gatehouse} (sha256 {env('GATEHOUSE_SHA256')})", "gatehouse_bin": env("GATEHOUSE_BIN"),
        "gatehouse_b": f"{env('GATEHOUSE_B_LABEL') or 'build'} (sha256 {env('GATEHOUSE_B_SHA256')})"
        if env("GATEHOUSE_B_SHA256") else None,
        "nginx": env("NGINX_VERSION"), "haproxy": env("HAPROXY_VERSION"),
        "go": env("GO_VERSION"), "gorilla": env("GORILLA_VERSION"),
    }


def main(argv):
    if len(argv) == 4 and argv[1] == "--again":
        earlier = json.load(open(argv[2]))
        runs, meta, out_json, out_md = earlier["runs"], earlier["meta"], argv[2], argv[3]
    elif len(argv) == 4:
        runs = [json.loads(line) for line in open(argv[1]) if line.strip()]
        meta, out_json, out_md = meta_from_env(), argv[2], argv[3]
    else:
        sys.exit(__doc__)
    summary = summarize(runs, meta)
    with open(out_json, "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    with open(out_md, "w") as f:
        f.write(markdown(summary))


if __name__ == "__main__":
    main(sys.argv)
