"""Start time of the command line: `newsrec --help` and `newsrec recommend` on the embedded index, each in a fresh
Python, side by side with the same commands where torch is imported first (what loading it with the command line
would cost: the in-function imports keep it, transformers and pyvespa out; tests/test_architecture.py checks which).

    python3 bench/run.py start                  # recorded in BENCHMARKS.md
    python3 bench/bench_start.py --quick        # fewer repeats, printed only

The embedded index is the tiny demo's (bench/common.py `tiny_setup`: generated, trained and fed once).
"""
from __future__ import annotations

import subprocess
import sys

from newsrec.bench.common import OUT, machine, row_main, side_by_side, table, tiny_setup

COMMANDS = {"newsrec --help": ["--help"], "newsrec recommend": ["recommend", "{user}", "--hits", "10"]}
RUN = "import sys; from newsrec.cli import main; main(sys.argv[1:])"
EAGER = "import sys, torch, transformers; from newsrec.cli import main; main(sys.argv[1:])"


def run_command(code: str, arguments: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed: {done.stderr[-500:]}")


def run(quick: bool) -> dict:
    mind, model = tiny_setup()
    index = OUT / "tiny" / "start-index"
    if not (index / "meta.json").exists():
        from newsrec.feed.connect import Target
        from newsrec.feed.job import FeedOptions, run_feed

        run_feed(str(mind), Target(index_dir=str(index)), FeedOptions(model_dir=str(model), device="cpu"),
                 log=lambda _: None)
    repeats = 3 if quick else 15
    rows = {}
    for name, arguments in COMMANDS.items():
        arguments = [a.format(user="U1097") for a in arguments] + (["--index", str(index)] if len(arguments) > 1 else [])
        lazy, eager = side_by_side(lambda: run_command(RUN, arguments),
                                   lambda: run_command(EAGER, arguments), repeats)
        rows[name] = {"lazy_s": lazy, "eager_s": eager}
    return {"machine": machine(), "repeats": repeats, "commands": rows}


def render(data: dict) -> str:
    rows = [[f"`{name}`", f"{times['lazy_s']:.2f} s", f"{times['eager_s']:.2f} s",
             f"{times['eager_s'] / times['lazy_s']:.1f}×"] for name, times in data["commands"].items()]
    return f"""## Command-line start time

`python3 bench/run.py start`

Each command in a fresh Python, median of {data['repeats']} interleaved runs: as installed (torch, transformers
and pyvespa imported only where a command needs them), and with torch and transformers imported first, as a
command line importing its libraries at the top would. `newsrec recommend` answers from the tiny demo's embedded
index (10 hits).

{table(["command", "as installed", "torch imported first", "ratio"], rows)}"""


if __name__ == "__main__":
    row_main(__doc__, run, render)
