#!/usr/bin/env python3
"""Turns the JSON lines of loadgen/bench.sh into the Markdown tables of BENCHMARKS.md.

usage: loadgen/bench_table.py results.jsonl
Labels are "<server>/<scenario>/r<round>". Each cell shows the runs in order (A B A B gives two
values per server); the ratio column is rf-broadcast / soketi of the medians.
"""
import json
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)  # (scenario, server) -> [json]
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    j = json.loads(line)
    server, name, _ = (j.get("label", "") + "//").split("/", 2)
    runs[(name, server)].append(j)


def get(j, path):
    for p in path.split("."):
        if p.isdigit() and isinstance(j, list):
            j = j[int(p)] if int(p) < len(j) else None
        elif isinstance(j, dict):
            j = j.get(p)
        else:
            return None
        if j is None:
            return None
    return j


METRICS = {
    "connections": [
        ("connections opened", "conn_ok"),
        ("failed", "conn_failed"),
        ("server RSS KB per connection", "server_rss_kb_per_conn"),
        ("connect p50 ms", "connect.p50_ms"),
        ("connect p99 ms", "connect.p99_ms"),
        ("subscribe p99 ms", "subscribe.p99_ms"),
        ("server CPU s while connecting", "server_cpu_s_connecting"),
        ("loadgen CPU s", "loadgen_cpu_s"),
    ],
    "fanout-1k": [
        ("delivered/s", "delivered_per_s"),
        ("lost / duplicated / out-of-order", "lost,duplicated,out_of_order"),
        ("e2e p50 ms", "e2e.p50_ms"),
        ("e2e p90 ms", "e2e.p90_ms"),
        ("e2e p99 ms", "e2e.p99_ms"),
        ("e2e p99.9 ms", "e2e.p999_ms"),
        ("e2e max ms", "e2e.max_ms"),
        ("server CPU s per million deliveries", "server_cpu_s_per_million"),
        ("loadgen CPU s per million", "loadgen_cpu_s_per_million"),
    ],
    "saturate": [
        ("max delivered/s", "max_delivered_per_s"),
        ("delivered/s with p99 <= 100 ms", "knee_delivered_per_s"),
        ("publishers at the knee", "knee_publishers"),
        ("1 publisher: delivered/s", "steps.0.delivered_per_s"),
        ("1 publisher: e2e p99 ms", "steps.0.e2e.p99_ms"),
        ("8 publishers: delivered/s", "steps.3.delivered_per_s"),
        ("8 publishers: e2e p99 ms", "steps.3.e2e.p99_ms"),
        ("server CPU s per million deliveries", "server_cpu_s_per_million"),
        ("lost / duplicated / out-of-order", "lost,duplicated,out_of_order"),
        ("loadgen CPU s per million", "loadgen_cpu_s_per_million"),
    ],
    "client-events": [
        ("delivered/s", "delivered_per_s"),
        ("lost / duplicated / out-of-order", "lost,duplicated,out_of_order"),
        ("e2e p50 ms", "e2e.p50_ms"),
        ("e2e p99 ms", "e2e.p99_ms"),
        ("e2e p99.9 ms", "e2e.p999_ms"),
        ("server CPU s per million deliveries", "server_cpu_s_per_million"),
        ("loadgen CPU s per million", "loadgen_cpu_s_per_million"),
    ],
    "slow-consumer": [
        ("fast subs: lost / dup / ooo", "lost,duplicated,out_of_order"),
        ("fast subs: e2e p50 ms", "fast_e2e.p50_ms"),
        ("fast subs: e2e p99 ms", "fast_e2e.p99_ms"),
        ("fast subs: e2e max ms", "fast_e2e.max_ms"),
        ("slow subs closed by the server during the run", "slow_closed_during_run"),
        ("... seconds after they stopped reading", "slow_close_after_stall_s.0"),
        ("how the slow subs' sockets ended", "slow_close_kinds"),
        ("server RSS KB at start / max", "server_rss_kb_start,server_rss_kb_max"),
    ],
    "churn": [
        ("churn cycles/s (connect+subscribe+close)", "churn_per_s"),
        ("churn failures", "churn_failed"),
        ("churn connect p99 ms", "churn_connect.p99_ms"),
        ("churn subscribe p99 ms", "churn_subscribe.p99_ms"),
        ("stable subs: lost / dup / ooo", "lost,duplicated,out_of_order"),
        ("stable subs: e2e p99 ms", "stable_e2e.p99_ms"),
        ("server CPU s", "server_cpu_s"),
        ("server RSS KB before / after settling", "server_rss_kb.1,server_rss_kb.3"),
        ("server fds before / after", "server_fds.0,server_fds.1"),
    ],
}
METRICS["fanout-10k"] = METRICS["fanout-1k"]
METRICS["connections-19k"] = METRICS["connections"]


def cell(js, path):
    vals = []
    for j in js:
        parts = [get(j, p) for p in path.split(",")]
        if len(parts) == 1:
            v = parts[0]
            if isinstance(v, dict):
                v = "; ".join(f"{k}: {n}" for k, n in v.items())
            vals.append(v)
        else:
            vals.append(" / ".join(str(p) for p in parts))
    return vals


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


scenarios = []
for (name, _server) in runs:
    if name not in scenarios:
        scenarios.append(name)
for name in scenarios:
    ours, theirs = runs.get((name, "rf-broadcast"), []), runs.get((name, "soketi"), [])
    print(f"\n#### {name}\n")
    print("| metric | rf-broadcast (runs) | soketi (runs) | ratio rf/soketi (medians) |")
    print("|---|---|---|---|")
    for label, path in METRICS.get(name, []):
        a, b = cell(ours, path), cell(theirs, path)
        ratio = ""
        na = [x for x in a if isinstance(x, (int, float))]
        nb = [x for x in b if isinstance(x, (int, float))]
        if na and nb and statistics.median(nb) != 0:
            ratio = f"{statistics.median(na) / statistics.median(nb):.2f}"
        print(f"| {label} | {', '.join(fmt(x) for x in a)} | {', '.join(fmt(x) for x in b)} | {ratio} |")
