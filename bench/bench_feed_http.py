"""Feed throughput over HTTP: newsrec's feeder (feed/vespa_feed.py: per-document retries over pyvespa's async
client, HTTP/1.1 or h2c) against pyvespa's own `feed_iterable` (the tutorial's way, HTTP/1.1) and the
`vespa feed` Go CLI (h2c, from the `vespacli` PyPI package), same documents, side by side.

The target is the local contract server (newsrec/contract_server/) in its own process, not Vespa:
it is single-threaded Python, so it is likely the bottleneck; the table shows its CPU use per run
(server CPU s / wall s near 1.0 = saturated) and its own time per request.

    python3 bench/run.py feed          # 5,000 news documents, 65-d embeddings, 3 repeats
    python3 bench/bench_feed_http.py --quick

Also feeds the same documents to the embedded default index.
"""
from __future__ import annotations

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

from newsrec.feed.backend import FeedReport
from newsrec.feed.documents import news_document
from newsrec.feed.vespa_backend import VespaBackend, write_jsonl

TICKS = os.sysconf("SC_CLK_TCK")


def documents(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [news_document(f"N{i}", rng.choice(("sports", "news", "finance")), "sub", f"Title {i}",
                          "An abstract of a few words.", f"https://example.com/{i}", 20191101,
                          rng.randrange(50), 100, [rng.uniform(-1, 1) for _ in range(65)])
            for i in range(count)]


def start_server() -> tuple[subprocess.Popen, str]:
    from newsrec.contract_server.server import free_port, wait_listening

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "newsrec.contract_server", "--port", str(port)],
                               stdout=subprocess.DEVNULL)
    wait_listening(port)
    return process, f"http://127.0.0.1:{port}"


def server_cpu_s(process: subprocess.Popen) -> float:
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_contract/stats") as response:
        return json.load(response)


def feed_newsrec(url: str, docs: list[dict], mode: str, jsonl: Path) -> int:
    report = FeedReport()
    VespaBackend(url, mode=mode).feed(docs, "news", report)
    if not report.success:
        raise SystemExit(f"{mode} feed failed: {report.summary()}")
    return report.ok


def feed_pyvespa(url: str, docs: list[dict], mode: str, jsonl: Path) -> int:
    """The tutorial's way: pyvespa's feed_iterable (its own retries, a callback counting 200s)."""
    from vespa.application import Vespa

    acknowledged = []
    local = [{"id": d["id"].rsplit("::", 1)[1], "fields": d["fields"]} for d in docs]
    Vespa(url).feed_iterable(local, schema="news", namespace="news",
                             callback=lambda response, _: acknowledged.append(response.status_code == 200))
    return sum(acknowledged)


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


def feed_embedded(docs: list[dict], directory: Path) -> float:
    """Seconds to feed `docs` to the embedded default index (persisted, HNSW and BM25 built)."""
    from newsrec.feed.local_backend import LocalBackend

    shutil.rmtree(directory, ignore_errors=True)
    report = FeedReport()
    started = time.perf_counter()
    LocalBackend(directory).feed(iter(docs), "news", report)
    if not report.success:
        raise SystemExit(f"embedded feed failed: {report.summary()}")
    return time.perf_counter() - started


def run(quick: bool) -> dict:
    from newsrec.bench.common import machine

    count, repeats = (1000, 1) if quick else (5000, 3)
    docs = documents(count)
    methods = {"pyvespa feed_iterable (the tutorial's way, HTTP/1.1)": (feed_pyvespa, ""),
               "newsrec-feed --feed-mode sync (HTTP/1.1)": (feed_newsrec, "sync"),
               "newsrec-feed --feed-mode async (h2c)": (feed_newsrec, "async")}
    if shutil.which("vespa"):
        methods["vespa feed (Go CLI, h2c)"] = (feed_cli, "")
    process, url = start_server()
    runs: dict[str, list[dict]] = {name: [] for name in methods}
    embedded = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            jsonl = Path(tmp) / "news.jsonl"
            write_jsonl(docs, jsonl)
            for _ in range(repeats):
                for name, (method, mode) in methods.items():  # interleaved, so drift hits every method alike
                    runs[name].append(measure(method, url, docs, mode, jsonl, process))
                embedded.append(feed_embedded(docs, Path(tmp) / "index"))
    finally:
        process.terminate()
        process.wait(10)
    median = {name: {key: statistics.median(r[key] for r in results) for key in results[0]}
              for name, results in runs.items()}
    return {"machine": machine(), "documents": count, "repeats": repeats, "http": median,
            "embedded_docs_per_s": count / statistics.median(embedded)}


def render(data: dict) -> str:
    from newsrec.bench.common import table

    http = data["http"]
    baseline = next(iter(http.values()))["docs_per_s"]
    cores = data["machine"]["cores"]
    rows = [[name, f"{m['docs_per_s']:,.0f}", f"{m['docs_per_s'] / baseline:.2f}×", f"{m['server_cpu'] / m['wall']:.2f}",
             f"{(m['server_cpu'] + m['client_cpu']) / m['wall'] / cores:.0%}"] for name, m in http.items()]
    rows.append(["embedded default index (in-process; not Vespa)", f"{data['embedded_docs_per_s']:,.0f}",
                 f"{data['embedded_docs_per_s'] / baseline:.2f}×", "", ""])
    return f"""## Feeding: newsrec's feeder vs pyvespa's feed_iterable vs `vespa feed`, and the embedded index

`python3 bench/run.py feed` (`vespacli`, in `.[bench]`, ships the Go `vespa` binary)

{data['documents']:,} news documents with 65-d embeddings, median of {data['repeats']}, fed to the local Vespa
contract server (`newsrec/contract_server/`: one Python process speaking HTTP/1.1 and h2c,
enforcing document/v1), client and server sharing the machine's {cores} cores; and to the embedded
default index (faiss HNSW + bm25s, persisted to disk), the same documents.

{table(["client", "docs/s", "vs pyvespa feed_iterable", "server CPU / wall", "machine CPU"], rows)}

Server CPU / wall near 1.0 means the single-process stand-in server is the bottleneck; well below it,
the client is. The absolute HTTP rates describe this stand-in, not Vespa (which takes 10k+ docs/s
from `vespa feed`): read the ratios. `newsrec-feed --endpoint` feeds over HTTP/1.1 by default
(`--feed-mode async` for h2c); each document is retried on its own (no retry round waits for the
slowest request) and times out after 10 s client-side; `--jsonl FILE` writes the feed for `vespa feed`."""


if __name__ == "__main__":
    from newsrec.bench.common import row_main

    row_main(__doc__, run, render)
