"""What every benchmark row shares: timing with medians, the machine's description, peak memory of a
child process, and plots.

A row module (bench/bench_*.py) has `run(quick: bool) -> dict` (JSON-safe measurements, including
`machine()`) and `render(data: dict) -> str` (its BENCHMARKS.md section, made from those
measurements only, so the document is regenerated from saved results without rerunning).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"  # scratch data (ignored by git)
PLOTS = ROOT / "bench" / "plots"  # committed PNGs


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call, CUDA work included."""
    started = time.perf_counter()
    result = fn()
    _sync()
    return time.perf_counter() - started, result


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeats))


def side_by_side(ours: Callable[[], object], baseline: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of (ours, baseline), interleaved so drift on a noisy machine hits both alike."""
    ours_times, base_times = [], []
    for _ in range(repeats):
        ours_times.append(timed(ours)[0])
        base_times.append(timed(baseline)[0])
    return statistics.median(ours_times), statistics.median(base_times)


def _sync() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def machine() -> dict:
    """The machine a measurement ran on (device included: rows say whether a GPU did the work)."""
    import numpy
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    memory_kib = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_kib / 2**20), "gpu": gpu,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "numpy": numpy.__version__, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}


def describe(m: dict) -> str:
    device = f"GPU {m['gpu']}" if m.get("gpu") else "no GPU"
    return (f"{m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, {device}; torch {m['torch']} "
            f"({m['torch_threads']} threads), numpy {m['numpy']}, Python {m['python']}; measured {m['date']}")


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


HWM = """
def hwm():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
"""


def child_peak(code: str, *args: str, log: Path | None = None, tree: bool = False) -> dict:
    """Run `code` in a fresh Python; its last output line is a JSON object with `peak_kib` (`hwm()` at the
    end) and `base_kib` (`hwm()` after its imports). Returns it with `peak_mib` and `added_mib` (the peak
    above the imports) instead. `hwm()` reads VmHWM, which restarts at exec; ru_maxrss would not: a
    child inherits its parent's maximum at fork. With `log`, the child's stderr goes there as it runs
    (progress of a long child) instead of being kept for the error message. With `tree`, also
    `tree_peak_mib`: the highest proportional set size (PSS) of the child and every process it forks,
    summed, sampled every TREE_SAMPLE_SECONDS (VmHWM of one process misses the memory of its children,
    and the RSS of a forked child counts the pages it shares with its parent twice)."""
    command = [sys.executable, "-c", HWM + code, *args]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    with (log.open("w") if log is not None else contextlib.nullcontext(subprocess.PIPE)) as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)
        sampler = TreeSampler(process.pid) if tree else None
        try:
            out, err = process.communicate()
        finally:
            if sampler is not None:
                sampler.stop()
    err = f"(stderr in {log})\n" + log.read_text() if log is not None else err
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{err[-3000:]}")
    data = json.loads(out.strip().splitlines()[-1])
    data["peak_mib"] = data.pop("peak_kib") / 1024
    data["added_mib"] = data["peak_mib"] - data.pop("base_kib") / 1024
    if sampler is not None:
        data["tree_peak_mib"] = sampler.peak_kib / 1024
    return data


TREE_SAMPLE_SECONDS = 0.05  # reading smaps_rollup costs about 1 ms per GiB mapped


class TreeSampler:
    """The highest summed PSS of a process and its descendants, sampled in a thread until `stop()`."""

    def __init__(self, pid: int):
        self.pid, self.peak_kib = pid, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak_kib = max(self.peak_kib, tree_pss_kib(self.pid))
            self._done.wait(TREE_SAMPLE_SECONDS)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def tree_pss_kib(pid: int) -> int:
    """PSS of `pid` and all its descendants (pages shared between them are split, so each counts once)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
            for task in os.listdir(f"/proc/{current}/task"):
                pending.extend(int(child) for child in Path(f"/proc/{current}/task/{task}/children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, StopIteration):  # it exited meanwhile
            continue
    return total


def ratio(fast: float, slow: float) -> str:
    return f"{fast / slow:.1f}×" if slow else "n/a"


def table(columns: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plot(name: str, title: str, xlabel: str, ylabel: str, series: dict[str, tuple[list, list]],
         loglog: bool = True, quick: bool = False) -> str:
    """A line plot of each series (x, y) to bench/plots/NAME.png (bench/out/quick/plots/ for a quick run,
    so that checking a row never replaces a recorded plot), with a dotted linear reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for label, (xs, ys) in series.items():
        axes.plot(xs, ys, marker="o", label=label)
        if loglog and len(xs) > 1:  # linear growth from the first point, for the eye
            axes.plot(xs, [ys[0] * x / xs[0] for x in xs], linestyle=":", color="grey", linewidth=1)
    if loglog:
        _log_axes(axes, sorted({x for xs, _ in series.values() for x in xs}))
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(title="dotted: linear growth" if loglog else None, fontsize=8, title_fontsize=8)
    figure.tight_layout()
    directory = OUT / "quick" / "plots" if quick else PLOTS
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    figure.savefig(path)
    plt.close(figure)
    return str(path.relative_to(ROOT))


def _log_axes(axes, xs: list) -> None:
    """Log-log axes labelled in plain numbers: x ticks at the measured sizes (1k, 1M), y at 1-2-5 steps."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.xaxis.set_major_locator(FixedLocator(xs))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _compact(v)))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())


def _compact(value: float) -> str:
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:g}"


def growth_exponent(xs: list[float], ys: list[float]) -> float:
    """Slope of log(y) against log(x) between the two largest sizes: 1.0 = linear."""
    import math

    if len(xs) < 2 or min(ys[-2:]) <= 0:
        return float("nan")
    return math.log(ys[-1] / ys[-2]) / math.log(xs[-1] / xs[-2])


def growth_verdict(exponent: float) -> str:
    if exponent != exponent:
        return "n/a"
    return "linearly" if exponent < 1.2 else f"**faster than linearly (log-log slope {exponent:.2f})**"


def tiny_setup() -> tuple[Path, Path]:
    """Generated tiny MIND data and a UniRec model trained on it (1 + 1 epochs), made once in bench/out/tiny."""
    from newsrec.pipeline.demo_data import config_for, generate
    from newsrec.pipeline.training import TrainConfig, train

    mind, model = OUT / "tiny" / "mind", OUT / "tiny" / "unirec"
    if not (mind / "dev" / "behaviors.tsv").is_file():
        generate(mind, config_for("tiny", 0))
    if not (model / "model.pt").is_file():
        train(mind, model, TrainConfig(epochs=1, recall_epochs=1, batch_size=64), log=lambda _: None)
    return mind, model


def row_main(doc: str, run: Callable[[bool], dict], render: Callable[[dict], str]) -> None:
    """The command line of one row module: measure (quick or full), print its section; saves nothing."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that the row works")
    quick = parser.parse_args().quick
    print(render({**run(quick), "quick": quick}))
