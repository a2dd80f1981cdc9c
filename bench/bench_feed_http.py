"""Feed throughput over HTTP: pyvespa sync (feed_iterable, HTTP/1.1), pyvespa async (feed_async_iterable,
h2c) and the `vespa feed` Go CLI (h2c, from the `vespacli` PyPI package), same documents, side by side.

The target is the local contract server (tests/vespa_contract_server.py) in its own process, not Vespa:
it is single-threaded Python, so it is likely the bottleneck; the table shows its CPU use per run
(server CPU s / wall s near 1.0 = saturated) and its own time per request.

    python bench/bench_feed_http.py                   # 5,000 news documents, 65-d embeddings, 3 repeats
    python bench/bench_feed_http.py --documents 2000 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from feed.backend import FeedReport  # noqa: E402
from feed.documents import news_document  # noqa: E402
from feed.vespa_backend import VespaBackend, write_jsonl  # noqa: E402

SERVER = ROOT / "tests" / "vespa_contract_server.py"
TICKS = os.sysconf("SC_CLK_TCK")


def documents(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [news_document(f"N{i}", rng.choice(("sports", "news", "finance")), "sub", f"Title {i}",
                          "An abstract of a few words.", f"https://example.com/{i}", 20191101,
                          rng.randrange(50), 100, [rng.uniform(-1, 1) for _ in range(65)])
            for i in range(count)]


def start_server() -> tuple[subprocess.Popen, str]:
    sys.path.insert(0, str(SERVER.parent))
    from vespa_contract_server import _wait_listening, free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, str(SERVER), "--port", str(port)], stdout=subprocess.DEVNULL)
    _wait_listening(port)
    return process, f"http://127.0.0.1:{port}"


def server_cpu_s(process: subprocess.Popen) -> float:
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_contract/stats") as response:
        return json.load(response)


def feed_pyvespa(url: str, docs: list[dict], mode: str, jsonl: Path) -> int:
    report = FeedReport()
    VespaBackend(url, mode=mode).feed(docs, "news", report)
    if not report.success:
        raise SystemExit(f"{mode} feed failed: {report.summary()}")
    return report.ok


def feed_cli(url: str, docs: list[dict], mode: str, jsonl: Path) -> int:
    result = subprocess.run(["vespa", "feed", "--target", url, str(jsonl)], capture_output=True, text=True,
                            env={**os.environ, "VESPA_CLI_HOME": str(jsonl.parent / "vespa-cli-home")})
    if result.returncode != 0:
        raise SystemExit(f"vespa feed failed: {result.stderr[-2000:]}")
    return int(json.loads(result.stdout)["http.response.code.counts"].get("200", 0))


def measure(run, url: str, docs: list[dict], mode: str, jsonl: Path, process: subprocess.Popen) -> dict:
    before_stats, before_cpu = server_stats(url), server_cpu_s(process)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, process_cpu = time.perf_counter(), time.process_time()
    ok = run(url, docs, mode, jsonl)
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_stats = server_stats(url)
    requests = after_stats["requests"] - before_stats["requests"] - 1  # minus the stats request itself
    client_cpu = (time.process_time() - process_cpu + children.ru_utime + children.ru_stime
                  - children_before.ru_utime - children_before.ru_stime)
    return {"ok": ok, "wall": wall, "docs_per_s": ok / wall, "server_cpu": server_cpu_s(process) - before_cpu,
            "client_cpu": client_cpu, "handler_ms": 1000 * (after_stats["busy_s"] - before_stats["busy_s"]) / requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    docs = documents(args.documents)
    methods = {"pyvespa sync (feed_iterable, HTTP/1.1)": (feed_pyvespa, "sync"),
               "pyvespa async (feed_async_iterable, h2c)": (feed_pyvespa, "async")}
    if shutil.which("vespa"):
        methods["vespa feed (Go CLI, h2c)"] = (feed_cli, "")
    else:
        print("vespa feed row skipped: no `vespa` binary on PATH (pip install vespacli)")
    process, url = start_server()
    runs: dict[str, list[dict]] = {name: [] for name in methods}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            jsonl = Path(tmp) / "news.jsonl"
            write_jsonl(docs, jsonl)
            for _ in range(args.repeats):
                for name, (run, mode) in methods.items():  # interleaved, so drift hits every method alike
                    runs[name].append(measure(run, url, docs, mode, jsonl, process))
    finally:
        process.terminate()
        process.wait(10)
    report(runs, args, os.cpu_count() or 1)


def report(runs: dict[str, list[dict]], args, cores: int) -> None:
    median = {name: {key: statistics.median(r[key] for r in results) for key in results[0]}
              for name, results in runs.items()}
    baseline = median[next(iter(median))]["docs_per_s"]
    print(f"{args.documents} news documents (65-d embeddings), median of {args.repeats}, "
          f"target: contract server (1 Python process), {cores} cores shared by client and server")
    print(f"{'method':42} {'docs/s':>7} {'vs sync':>8} {'wall s':>7} {'server CPU/wall':>16} "
          f"{'client CPU s':>13} {'machine CPU':>12} {'handler ms/req':>15}")
    for name, m in median.items():
        machine = (m["server_cpu"] + m["client_cpu"]) / m["wall"] / cores
        print(f"{name:42} {m['docs_per_s']:7.0f} {m['docs_per_s'] / baseline:7.2f}x {m['wall']:7.2f} "
              f"{m['server_cpu'] / m['wall']:16.2f} {m['client_cpu']:13.2f} {machine:11.0%} {m['handler_ms']:15.3f}")
    for name, m in median.items():
        load = m["server_cpu"] / m["wall"]
        verdict = ("the contract server is the bottleneck (its one core ~fully used): a lower bound" if load > 0.85
                   else "the contract server is busy enough to add queueing: partly server-bound" if load > 0.6
                   else "the server has idle time: bound by the client (concurrency, latency, its CPU)")
        print(f"  {name}: server CPU/wall {load:.2f}: {verdict}")
    print("handler ms/req = the server's own time per request (JSON, schema checks, storing); the rest of its "
          "CPU is hypercorn's HTTP/1.1 / HTTP/2 framing. Absolute rates are not Vespa's: only the ratios mean much.")


if __name__ == "__main__":
    main()
