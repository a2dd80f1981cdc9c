"""The web page latency bench (bench/bench_serve.py) at toy size: a fixed workload, timed over HTTP against
`newsrec serve` and in-process, rendered with its percentiles."""
from __future__ import annotations

from pathlib import Path

from newsrec.bench import bench_serve


def test_the_serve_bench_times_every_page_and_the_in_process_floor(fed: Path):
    workload = bench_serve.make_workload(fed, 12)
    assert {w["kind"] for w in workload} == {"reader", "reader+category", "search", "search+reader", "start"}
    direct, page = bench_serve.time_direct(fed, workload), bench_serve.time_pages(fed, workload)
    for timed in (direct, page):
        assert timed["all"]["n"] == 12 and timed["all"]["p99_ms"] >= timed["all"]["p50_ms"] > 0
        assert sum(kind["n"] for kind in timed["kinds"].values()) == 12
    text = bench_serve.render({"size": "tiny", "clients": bench_serve.CLIENTS, "requests": 12, "page": page,
                               "direct": direct})
    assert "| **all** | 12 |" in text and "page / in-process" in text
