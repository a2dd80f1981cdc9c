"""Generation time and memory of `newsrec demo-data`, world v2 against world v1 side by side (issue 14:
each size within ± 50% of v1's time and memory).

    python3 bench/run.py generate          # tiny, small and large (large: ~2 GB written per world)
    python3 bench/run.py --quick generate  # tiny and small

Each generation runs in a fresh Python (`demo_data.generate`: planting, writing, and for v2 the
decomposition and the recall oracle, in a process forked beside the writing; the CLI's read-back check
is the same for both worlds and left out), worlds interleaved per size; peak = the summed PSS of the
process tree, sampled (`bench.common.TreeSampler`), beside each process's own VmHWM.
"""
from __future__ import annotations

import shutil
import statistics

from newsrec.bench.common import OUT, child_peak, machine, table

CODE = """
import json, sys, time
from newsrec.pipeline.demo_data import config_for, generate
base = hwm()
started = time.perf_counter()
generate(sys.argv[1], config_for(sys.argv[2], 0, sys.argv[3]))
print(json.dumps({"seconds": time.perf_counter() - started, "peak_kib": hwm(), "base_kib": base}))
"""
WORLDS = ("v1", "v2")


def generation(size: str, world: str) -> dict:
    out = OUT / "generate" / f"{size}-{world}"
    shutil.rmtree(out, ignore_errors=True)
    try:
        return child_peak(CODE, str(out), size, world, tree=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)


REPEATS = {"tiny": 7, "small": 3, "large": 1}  # runs per size and world, interleaved: median time, highest peak


def run(quick: bool) -> dict:
    sizes = ("tiny", "small") if quick else ("tiny", "small", "large")
    rows = []
    for size in sizes:
        runs = {world: [] for world in WORLDS}
        for _ in range(REPEATS[size]):
            for world in WORLDS:
                runs[world].append(generation(size, world))
        rows.append({"size": size, "repeats": REPEATS[size], **{world: _summarize(runs[world]) for world in WORLDS}})
        print(f"generate: {size} measured", flush=True)
    return {"machine": machine(), "sizes": rows}


def _summarize(runs: list[dict]) -> dict:
    return {"seconds": statistics.median(r["seconds"] for r in runs), "all_seconds": [r["seconds"] for r in runs],
            **{key: max(r[key] for r in runs) for key in ("peak_mib", "added_mib", "tree_peak_mib")}}


def _repeats(data: dict) -> str:
    return ", ".join(f"{e.get('repeats', 1)} ({e['size']})" for e in data["sizes"])


def _peak(measured: dict) -> float:
    """The process tree's peak PSS (world v2 computes its truth in a forked process), or, in results
    recorded before it was sampled, the main process's VmHWM."""
    return measured.get("tree_peak_mib", measured["peak_mib"])


def render(data: dict) -> str:
    rows = []
    for entry in data["sizes"]:
        v1, v2 = entry["v1"], entry["v2"]
        rows.append([entry["size"], f"{v1['seconds']:.2f} s", f"{v2['seconds']:.2f} s",
                     f"{v2['seconds'] / v1['seconds']:.2f}", f"{_peak(v1):,.0f} MiB", f"{_peak(v2):,.0f} MiB",
                     f"{_peak(v2) / _peak(v1):.2f}"])
    within = all(0.5 <= e["v2"]["seconds"] / e["v1"]["seconds"] <= 1.5 and
                 0.5 <= _peak(e["v2"]) / _peak(e["v1"]) <= 1.5 for e in data["sizes"])
    verdict = "every size within ± 50% of v1 in time and memory" if within else \
        "**not every size within ± 50% of v1** (see the ratios)"
    tree = all("tree_peak_mib" in e[w] for e in data["sizes"] for w in WORLDS)
    memory = ("peak = the highest summed PSS of the process and the process it forks for v2's truth, sampled "
              "every 50 ms") if tree else "peak = the process's resident high-water mark"
    columns = ["size", "v1 time", "v2 time", "v2 / v1", "v1 peak", "v2 peak", "v2 / v1"]
    return f"""## Generating data: world v2 against world v1

`python3 bench/run.py generate` (`bench/bench_generate.py`)

`demo_data.generate` in a fresh process per size and world, the median of {_repeats(data)} runs interleaved (planting, writing every file; v2 also
computes the oracle decomposition over every dev impression up to 100,000 and the recall oracle over
1,000 dev impressions, in a forked process while the files are written); {memory}. Issue 14 asks v2 to
keep v1's time and memory ± 50%: {verdict}.{(" " + data["note"]) if data.get("note") else ""}

{table(columns, rows)}
"""
