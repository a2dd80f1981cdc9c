"""Reader benchmark: time and peak memory of `read_mind` on a MIND directory (default: demo-data small).

Each measurement runs in a fresh child process so its peak resident memory (ru_maxrss) is its own;
a child that only imports newsrec is the baseline, subtracted to give the reader's own peak.
From the measured bytes per candidate row and per history entry it projects MIND-large.

    python bench/bench_reader.py                      # generates demo-data small into bench/out/
    python bench/bench_reader.py --mind ~/data/MINDsmall
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pipeline.mind import read_mind
if sys.argv[1] == "read":
    started = time.perf_counter()
    d = read_mind(sys.argv[2])
    seconds = time.perf_counter() - started
    arrays = sum(a.nbytes for b in d.splits.values() for a in (b.impression_ids, b.user_index, b.time,
                 b.history_offsets, b.history, b.candidate_offsets, b.candidates, b.labels))
    rows = {"impressions": sum(b.num_impressions for b in d.splits.values()),
            "candidates": sum(len(b.candidates) for b in d.splits.values()),
            "history": sum(len(b.history) for b in d.splits.values()), "news": len(d.news)}
else:
    seconds, arrays, rows = 0.0, 0, {}
print(json.dumps({"seconds": seconds, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "array_bytes": arrays, "rows": rows}))
"""

MIND_LARGE = {"impressions": 2_232_748 + 376_471 + 2_370_727, "candidates": 83.5e6 + 14.1e6 + 87.7e6,
              "history": (2_232_748 + 376_471 + 2_370_727) * 33}


def child(mode: str, mind: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, mind], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mind", default=None, help="MIND directory (default: generate demo-data small)")
    args = parser.parse_args()
    mind = args.mind
    if mind is None:
        mind = "bench/out/mind-small"
        if not (Path(mind) / "dev" / "behaviors.tsv").is_file():
            from pipeline.demo_data import config_for, generate
            generate(mind, config_for("small", 0))
    baseline = child("import", mind)
    result = child("read", mind)
    rows = result["rows"]
    peak_mib = (result["peak_kib"] - baseline["peak_kib"]) / 1024
    per_row = result["array_bytes"] / (rows["candidates"] + rows["history"])
    print(f"{mind}: {rows['news']} news, {rows['impressions']} impressions, {rows['candidates']} candidate rows, "
          f"{rows['history']} history entries")
    print(f"read time        : {result['seconds']:.1f} s "
          f"({rows['candidates'] / result['seconds'] / 1e6:.2f} M candidate rows/s)")
    print(f"peak memory      : {result['peak_kib'] / 1024:.0f} MiB process, {baseline['peak_kib'] / 1024:.0f} MiB "
          f"after imports alone, {peak_mib:.0f} MiB for reading")
    print(f"resident arrays  : {result['array_bytes'] / 2**20:.0f} MiB ({per_row:.1f} bytes per candidate/history row)")
    large_rows = MIND_LARGE["candidates"] + MIND_LARGE["history"]
    scale = large_rows / (rows["candidates"] + rows["history"])
    print(f"MIND-large (train+dev+test, ~{large_rows / 1e6:.0f}M rows) projected: arrays "
          f"{per_row * large_rows / 2**30:.1f} GiB, peak ~{peak_mib * scale / 1024:.1f} GiB, "
          f"read ~{result['seconds'] * scale / 60:.0f} min (linear in rows)")


if __name__ == "__main__":
    main()
