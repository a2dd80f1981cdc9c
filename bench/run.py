"""Run the benchmark suite (all rows or some) and write BENCHMARKS.md.

    python3 bench/run.py                  # every row (about an hour on 2 CPU cores), then BENCHMARKS.md
    python3 bench/run.py ann embed        # some rows; the others keep their saved results
    python3 bench/run.py --quick metrics  # small sizes, to check that a row works (not for the record)
    python3 bench/run.py --render         # rewrite BENCHMARKS.md from the saved results only

Each row's measurements are saved to bench/results/ROW.json (committed) and its section of
BENCHMARKS.md is rendered from them; every row runs newsrec and its baseline side by side in the
same run. Quick runs are saved to bench/out/quick/ instead, so they never replace a recorded result.
"""
from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

from bench.common import OUT, ROOT, describe

ROWS = {  # row name -> module of the `bench` package (installed with newsrec), in the order of BENCHMARKS.md
    "embed": "bench.bench_embed",
    "users": "bench.bench_users",
    "training": "bench.bench_training",
    "metrics": "bench.bench_metrics",
    "ann": "bench.bench_ann",
    "mips": "bench.bench_mips",
    "funnel": "bench.bench_funnel",
    "feed": "bench.bench_feed_http",
    "memory": "bench.bench_memory",
    "generate": "bench.bench_generate",
    "fum": "bench.bench_fum",
    "unbert": "bench.bench_unbert",
    "recallnet": "bench.bench_recallnet",
    "large": "bench.bench_large",
    "epoch": "bench.bench_epoch",
    "serve": "bench.bench_serve",
    "cpu": "bench.bench_cpu",
}
GPU_ROW = ("gpu", "bench.bench_gpu")  # rendered only: measured by `bash bench/gpu.sh` on a GPU machine
RESULTS = ROOT / "bench" / "results"
DOCUMENT = ROOT / "BENCHMARKS.md"

HEADER = """# Benchmarks

Every row runs newsrec and a baseline side by side, in the same run and on the same inputs, and
reports the ratio (medians over repeats). The baselines are written inside the benchmarks, after the
Vespa news tutorial's pipeline: a one-article-at-a-time embedding loop, a per-impression sklearn
metrics loop, one query per impression for evaluation, pyvespa's synchronous feed. These machines
are shared and noisy: read the ratios; absolute times only mean much on a GPU.

Regenerate everything with `python3 -m pip install -e '.[bench]' && python3 bench/run.py` (about an
hour on 2 CPU cores), one row with `python3 bench/run.py ROW` (rows: {rows}); this file is written
by `bench/run.py` from `bench/results/*.json`. Each section names the machine it was measured on.
"""


def run_rows(names: list[str], quick: bool) -> None:
    target = OUT / "quick" if quick else RESULTS
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        module = importlib.import_module(ROWS[name])
        print(f"== {name}{' (quick)' if quick else ''}", flush=True)
        started = time.perf_counter()
        data = module.run(quick)
        data["seconds"] = round(time.perf_counter() - started, 1)
        data["quick"] = quick
        (target / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(module.render(data), flush=True)


def render_document(results: Path = RESULTS) -> str:
    sections = [HEADER.format(rows=", ".join(ROWS))]
    for name, module_name in ROWS.items():
        path = results / f"{name}.json"
        if not path.is_file():
            sections.append(f"## {name}\n\nNot measured yet: `python3 bench/run.py {name}`.\n")
            continue
        data = json.loads(path.read_text())
        body = importlib.import_module(module_name).render(data)
        sections.append(f"{body}\n\nMachine: {describe(data['machine'])}; the row took {data['seconds']:.0f} s.\n")
    gpu = results / f"{GPU_ROW[0]}.json"
    sections.append(importlib.import_module(GPU_ROW[1]).render(json.loads(gpu.read_text()) if gpu.is_file() else None)
                    + "\n")
    return "\n".join(sections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", metavar="ROW", help=f"any of {', '.join(ROWS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes; results go to bench/out/quick/")
    parser.add_argument("--render", action="store_true", help="only rewrite BENCHMARKS.md from saved results")
    args = parser.parse_args()
    unknown = [name for name in args.rows if name not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    if not args.render:
        run_rows(args.rows or list(ROWS), args.quick)
    if not args.quick:
        DOCUMENT.write_text(render_document())
        print(f"wrote {DOCUMENT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
