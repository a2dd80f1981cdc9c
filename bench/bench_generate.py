"""Generation time and memory of `newsrec demo-data`, world v2 against world v1 side by side (issue 14:
each size within ± 50% of v1's time and memory).

    python3 bench/run.py generate          # tiny, small and large (large: ~2 GB written per world)
    python3 bench/run.py --quick generate  # tiny and small

Each generation runs in a fresh Python (`demo_data.generate`: planting, writing, and for v2 the
decomposition and the recall oracle; the CLI's read-back check is the same for both worlds and left
out), worlds interleaved per size; peak = VmHWM of the child.
"""
from __future__ import annotations

import shutil

from bench.common import OUT, child_peak, machine, table

CODE = """
import json, sys, time
from pipeline.demo_data import config_for, generate
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
        return child_peak(CODE, str(out), size, world)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(quick: bool) -> dict:
    sizes = ("tiny", "small") if quick else ("tiny", "small", "large")
    rows = []
    for size in sizes:
        measured = {world: generation(size, world) for world in WORLDS}
        rows.append({"size": size, **measured})
        print(f"generate: {size} measured", flush=True)
    return {"machine": machine(), "sizes": rows}


def render(data: dict) -> str:
    rows = []
    for entry in data["sizes"]:
        v1, v2 = entry["v1"], entry["v2"]
        rows.append([entry["size"], f"{v1['seconds']:.1f} s", f"{v2['seconds']:.1f} s",
                     f"{v2['seconds'] / v1['seconds']:.2f}", f"{v1['peak_mib']:,.0f} MiB", f"{v2['peak_mib']:,.0f} MiB",
                     f"{v2['peak_mib'] / v1['peak_mib']:.2f}"])
    within = all(0.5 <= e["v2"]["seconds"] / e["v1"]["seconds"] <= 1.5 and
                 0.5 <= e["v2"]["peak_mib"] / e["v1"]["peak_mib"] <= 1.5 for e in data["sizes"])
    verdict = "every size within ± 50% of v1 in time and memory" if within else \
        "**not every size within ± 50% of v1** (see the ratios)"
    columns = ["size", "v1 time", "v2 time", "v2 / v1", "v1 peak", "v2 peak", "v2 / v1"]
    return f"""## Generating data: world v2 against world v1

`python3 bench/run.py generate` (`bench/bench_generate.py`)

`demo_data.generate` in a fresh process per size and world (planting, writing every file; v2 also
computes the oracle decomposition over every dev impression up to 100,000 and the recall oracle over
1,000 dev impressions); peak = the process's resident high-water mark. Issue 14 asks v2 to keep v1's time
and memory ± 50%: {verdict}.{(" " + data["note"]) if data.get("note") else ""}

{table(columns, rows)}
"""
