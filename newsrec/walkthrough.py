"""Run docs/walkthrough.md and check (or, with --update, rewrite) every output it shows.

The document's fenced blocks, by info string:
- ```console: lines starting with `$ ` are commands, the lines up to the next command are its expected
  standard output. The commands run in order, with bash, in one fresh directory; `newsrec` and
  `newsrec-feed` are the installed newsrec's, run by this interpreter.
- ```http: one request to Vespa's HTTP API: `METHOD /path`, then an optional JSON body. After the
  console blocks, the runner feeds the walkthrough's model to the local Vespa contract server
  (newsrec/contract_server/: a strict stand-in for Vespa's document/v1 and /search/ API, NOT Vespa)
  with `feed.job.run_feed` and sends every request there; each must answer HTTP 200 without errors. A string value
  "<FIELD of USER_ID>" in a body stands for that user document's vector (fetched with GET first).
- ```json right after an http block: an excerpt of the response, checked as Vespa's own test format
  checks responses: objects by the keys shown, lists by their first elements, numbers to 1e-6.
- ```bash and any other info string: shown, never run (deploying needs Docker or Vespa Cloud).

Normalization before comparing (both sides): durations (`in 12s`, `in 0.3s`) and rates (`812 news/s`)
become placeholders, trailing spaces go; decimals may differ by float noise (≤ 2e-3, so another CPU or
library build does not fail the test). Everything else must match exactly: text, integers, order.

    python3 -m newsrec.walkthrough            # run and compare (exit 1 on any difference)
    python3 -m newsrec.walkthrough --update   # run and write the real outputs into the document
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import HTTPError

from newsrec.contract_server import ContractServer
from newsrec.feed.connect import Target

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "walkthrough.md"
RUN_KINDS = ("console", "http", "json")
SHOWN_KINDS = ("bash", "text", "yaml", "xml", "")
_FENCE = re.compile(r"^```(\S*)\s*$")
_DURATION = re.compile(r"\bin \d+(?:\.\d+)?s\b")
_RATE = re.compile(r"\b\d+(?:\.\d+)? ([a-z]+)/s\b")
_DECIMAL = re.compile(r"(-?\d+\.\d+(?:e[-+]?\d+)?)")
_PLACEHOLDER = re.compile(r"^<(\w+) of ([A-Za-z0-9_-]+)>$")


class WalkthroughError(Exception):
    """A block that cannot be run (bad format, failing command, refused request)."""


@dataclass
class Block:
    kind: str
    first: int  # index of the first content line in the document's lines
    lines: list[str]


@dataclass
class Step:
    """One command or request, what the document shows for it, and what the run gave."""

    block: Block
    command: str
    expected: str
    actual: str | None = None
    excerpt: Block | None = None  # http: the json block after it
    line: int = 0  # line of the command in the document (1-based)
    seconds: float = 0.0


@dataclass
class Run:
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0

    def differences(self) -> list[str]:
        return [f"line {s.line}: {s.command}\n--- document\n{normalize(s.expected)}\n--- run\n{normalize(s.actual)}"
                for s in self.steps if s.actual is not None and not same_output(s.expected, s.actual)]


# ----------------------------------------------------------------------------- parsing

def parse_blocks(text: str) -> list[Block]:
    blocks, current = [], None
    for number, line in enumerate(text.splitlines()):
        fence = _FENCE.match(line)
        if current is None and fence:
            current = Block(fence.group(1), number + 1, [])
        elif current is not None and line.rstrip() == "```":
            blocks.append(current)
            current = None
        elif current is not None:
            current.lines.append(line)
    if current is not None:
        raise WalkthroughError(f"line {current.first}: unclosed ``` block")
    unknown = [b for b in blocks if b.kind not in RUN_KINDS + SHOWN_KINDS]
    if unknown:
        raise WalkthroughError(f"line {unknown[0].first}: unknown block kind {unknown[0].kind!r}")
    return blocks


def console_steps(block: Block) -> list[Step]:
    steps = []
    for offset, line in enumerate(block.lines):
        if line.startswith("$ "):
            steps.append(Step(block, line[2:], "", line=block.first + offset + 1))
        elif steps:
            steps[-1].expected += line + "\n"
        elif line.strip():
            raise WalkthroughError(f"line {block.first + offset + 1}: output before any `$ ` command")
    return steps


def http_steps(blocks: list[Block]) -> list[Step]:
    steps = []
    for i, block in enumerate(blocks):
        if block.kind != "http":
            continue
        excerpt = blocks[i + 1] if i + 1 < len(blocks) and blocks[i + 1].kind == "json" else None
        steps.append(Step(block, "\n".join(block.lines), "\n".join(excerpt.lines) + "\n" if excerpt else "",
                          excerpt=excerpt, line=block.first + 1))
    return steps


def normalize(output: str | None) -> str:
    text = _RATE.sub(r"<n> \1/s", _DURATION.sub("in <t>s", output or ""))
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def same_output(expected: str | None, actual: str | None) -> bool:
    """Equal after normalization, except that decimals may differ by float noise from another CPU or
    library build (≤ 2e-3, relative to the value above 1); the text, integers and order must match."""
    expected, actual = normalize(expected), normalize(actual)
    if expected == actual:
        return True
    ours, theirs = _DECIMAL.split(expected), _DECIMAL.split(actual)
    if len(ours) != len(theirs):
        return False
    texts_equal = ours[0::2] == theirs[0::2]
    return texts_equal and all(abs(float(a) - float(b)) <= 2e-3 * max(1.0, abs(float(a)))
                               for a, b in zip(ours[1::2], theirs[1::2]))


# ----------------------------------------------------------------------------- console

COMMANDS = {"newsrec": "from newsrec.cli import main; main(prog_name='newsrec')",
            "newsrec-feed": "from newsrec.cli import feed_main; feed_main(prog_name='newsrec-feed')"}


def command_env(bin_dir: Path) -> dict:
    """PATH with `newsrec` / `newsrec-feed` running the installed newsrec with this interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, code in COMMANDS.items():
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(code)} "$@"\n')
        script.chmod(0o755)
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONHASHSEED="0")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def run_command(command: str, workdir: Path, env: dict, timeout_s: float = 600) -> str:
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise WalkthroughError(f"`{command}` exited {done.returncode}:\n{done.stdout}\n{done.stderr[-3000:]}")
    return done.stdout


# ----------------------------------------------------------------------------- http

def send(base_url: str, request_text: str) -> dict:
    """Send `METHOD /path` + optional JSON body; return the JSON answer (HTTP 200 without errors only)."""
    first, _, body_text = request_text.strip().partition("\n")
    method, path = first.split(maxsplit=1)
    body = json.loads(body_text) if body_text.strip() else None
    if body is not None:
        body = fill_placeholders(base_url, body)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    except HTTPError as error:
        raise WalkthroughError(f"{first}: HTTP {error.code}: {error.read()[:500]!r}") from None
    if (answer.get("root") or {}).get("errors"):
        raise WalkthroughError(f"{first}: {answer['root']['errors']}")
    return answer


def fill_placeholders(base_url: str, body: dict) -> dict:
    """"<recall_embedding of U1002>" -> the user document's 65 numbers."""
    filled = {}
    for key, value in body.items():
        match = _PLACEHOLDER.match(value) if isinstance(value, str) else None
        if match:
            user = send(base_url, f"GET /document/v1/news/user/docid/{match.group(2)}")
            value = user["fields"][match.group(1)]["values"]
        filled[key] = value
    return filled


def matches(excerpt, actual) -> bool:
    """Vespa test-format matching: objects by the keys shown, lists by their first elements."""
    if isinstance(excerpt, dict):
        return isinstance(actual, dict) and all(k in actual and matches(v, actual[k]) for k, v in excerpt.items())
    if isinstance(excerpt, list):
        return isinstance(actual, list) and len(actual) >= len(excerpt) and \
            all(matches(e, a) for e, a in zip(excerpt, actual))
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (excerpt, actual))
    if numbers:
        return math.isclose(excerpt, actual, rel_tol=1e-6, abs_tol=1e-9)
    return excerpt == actual


def project(excerpt, actual):
    """The actual response cut to the excerpt's shape (what --update writes)."""
    if isinstance(excerpt, dict) and isinstance(actual, dict):
        return {k: project(v, actual.get(k)) for k, v in excerpt.items()}
    if isinstance(excerpt, list) and isinstance(actual, list):
        return [project(e, a) for e, a in zip(excerpt, actual)]
    return actual


def compact_json(value, indent: str = "", width: int = 100) -> str:
    """JSON with every object or list that fits in `width` characters on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if len(indent) + len(flat) <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {compact_json(v, inner, width).lstrip()}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    items = [inner + compact_json(v, inner, width).lstrip() for v in value]
    return "[\n" + ",\n".join(items) + f"\n{indent}]"


def check_http(step: Step, base_url: str) -> None:
    answer = send(base_url, step.command)
    if step.excerpt is None:
        step.actual = ""
        return
    shown = json.loads(step.expected)
    step.actual = compact_json(project(shown, answer)) + "\n"
    if matches(shown, answer):
        step.actual = step.expected  # equal up to float noise: keep the document's text


def serve_and_feed(workdir: Path, model_dir: str, mind_dir: str):
    """Start the contract server and feed it the walkthrough's model (what `newsrec-feed --endpoint` does)."""
    from newsrec.feed.job import FeedOptions, run_feed

    server = ContractServer().start()
    options = FeedOptions(model_dir=str(workdir / model_dir), state_dir=str(workdir / "contract-feed-state"))
    try:
        summary = run_feed(str(workdir / mind_dir), Target(endpoint=server.url), options, log=lambda line: None)
    except BaseException:
        server.stop()
        raise
    if not summary.success:
        server.stop()
        raise WalkthroughError(f"feeding the contract server: {summary.failed} documents failed")
    return server


# ----------------------------------------------------------------------------- the whole document

def run(doc: Path = DOC, workdir: Path | None = None, model_dir: str = "newsrec-model",
        mind_dir: str = "mind") -> Run:
    started = time.perf_counter()
    blocks = parse_blocks(doc.read_text(encoding="utf-8"))
    result = Run()
    with tempfile.TemporaryDirectory(prefix="walkthrough-") as scratch:
        workdir = workdir or Path(scratch) / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        env = command_env(Path(scratch) / "bin")
        for block in blocks:
            if block.kind == "console":
                for step in console_steps(block):
                    started_step = time.perf_counter()
                    step.actual = run_command(step.command, workdir, env)
                    step.seconds = time.perf_counter() - started_step
                    result.steps.append(step)
        requests = http_steps(blocks)
        if requests:
            server = serve_and_feed(workdir, model_dir, mind_dir)
            try:
                for step in requests:
                    check_http(step, server.url)
                    result.steps.append(step)
            finally:
                server.stop()
    result.seconds = time.perf_counter() - started
    return result


def update(doc: Path, result: Run) -> int:
    """Write every step's real output into the document; returns the number of steps changed."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    changed = 0
    for step in sorted(result.steps, key=lambda s: s.line, reverse=True):  # bottom up: line numbers stay valid
        if step.actual is None or step.actual == step.expected:
            continue
        changed += normalize(step.actual) != normalize(step.expected)
        if step.excerpt is not None:
            start, end = step.excerpt.first, step.excerpt.first + len(step.excerpt.lines)
        else:
            start = step.line
            end = start + len(step.expected.splitlines())
        lines[start:end] = step.actual.rstrip("\n").splitlines()
    doc.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="write the real outputs into the document")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()
    result = run(args.doc)
    for step in sorted(result.steps, key=lambda s: -s.seconds)[:5]:
        print(f"{step.seconds:5.1f}s  {step.command[:80]}", file=sys.stderr)
    if args.update:
        print(f"ran {len(result.steps)} steps in {result.seconds:.0f}s; {update(args.doc, result)} outputs changed")
        return 0
    differences = result.differences()
    print("\n\n".join(differences) or f"all {len(result.steps)} steps match ({result.seconds:.0f}s)")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
