"""docs/walkthrough.md runs as written: every command and Vespa request, with the outputs it shows.

The runner is newsrec/walkthrough.py (`python3 -m newsrec.walkthrough --update` rewrites the outputs).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsrec import walkthrough

ROOT = Path(__file__).resolve().parent.parent

QUOTED_FIGURE = re.compile(r"\b\d\.\d{4}\b")


@pytest.fixture(scope="module")
def document_run() -> walkthrough.Run:
    return walkthrough.run()


@pytest.mark.slow
def test_every_command_and_request_gives_what_the_document_shows(document_run: walkthrough.Run):
    differences = document_run.differences()
    assert not differences, ("docs/walkthrough.md is stale (run `python3 -m newsrec.walkthrough --update` "
                             "and read the changes):\n\n" + "\n\n".join(differences))
    kinds = {step.block.kind for step in document_run.steps}
    assert kinds == {"console", "http"} and len(document_run.steps) >= 30


@pytest.mark.slow
def test_the_walkthrough_runs_in_a_few_minutes(document_run: walkthrough.Run):
    print(f"walkthrough: {len(document_run.steps)} steps in {document_run.seconds:.0f}s")
    assert document_run.seconds < 900  # ~2 min on 2 idle cores; only a blow-up fails


def test_figures_quoted_in_the_prose_come_from_the_outputs():
    """A number like 0.6164 in the text must appear in an output the run checks (or cite another document)."""
    text = walkthrough.DOC.read_text(encoding="utf-8")
    blocks = walkthrough.parse_blocks(text)
    outputs = "\n".join("\n".join(b.lines) for b in blocks if b.kind in walkthrough.RUN_KINDS)
    inside = {b.first + i for b in blocks for i in range(-1, len(b.lines) + 1)}
    paragraphs = re.split(r"\n\s*\n", "\n".join(line if n not in inside else ""
                                                 for n, line in enumerate(text.splitlines())))
    quoted = [(figure, paragraph) for paragraph in paragraphs if "](../" not in paragraph
              for figure in QUOTED_FIGURE.findall(paragraph)]
    assert quoted, "the embeddings section should quote figures from its evaluation runs"
    missing = [figure for figure, _ in quoted if figure not in outputs]
    assert not missing, f"figures quoted in the prose but not in any checked output: {missing}"


# ----------------------------------------------------------------------------- the runner itself

def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_changed_output_is_detected(tmp_path: Path):
    good = write(tmp_path, "```console\n$ echo 'AUC 0.6164 in 3.2s'\nAUC 0.6164 in 12s\n```\n")
    assert walkthrough.run(good).differences() == []  # durations are normalized
    stale = write(tmp_path, "```console\n$ echo 'AUC 0.6164 in 3.2s'\nAUC 0.6264 in 3.2s\n```\n")
    (difference,) = walkthrough.run(stale).differences()
    assert "line 2: echo" in difference and "AUC 0.6264" in difference and "AUC 0.6164" in difference


def test_float_noise_passes_but_text_integers_and_order_do_not():
    assert walkthrough.same_output("AUC 0.6164, 12 users", "AUC 0.6165, 12 users")
    assert not walkthrough.same_output("AUC 0.6164, 12 users", "AUC 0.6164, 13 users")
    assert not walkthrough.same_output("1. N1 0.51\n2. N2 0.50", "1. N2 0.50\n2. N1 0.51")
    assert not walkthrough.same_output("AUC 0.6164", "MRR 0.6164")


def test_update_writes_the_real_output(tmp_path: Path):
    path = write(tmp_path, "Intro.\n\n```console\n$ printf 'a\\nb\\n'\nold\n$ echo c\n```\n\nEnd.\n")
    result = walkthrough.run(path)
    assert walkthrough.update(path, result) == 2
    assert path.read_text() == "Intro.\n\n```console\n$ printf 'a\\nb\\n'\na\nb\n$ echo c\nc\n```\n\nEnd.\n"
    assert walkthrough.run(path).differences() == []


def test_a_failing_command_fails_the_run(tmp_path: Path):
    with pytest.raises(walkthrough.WalkthroughError, match="`false` exited 1"):
        walkthrough.run(write(tmp_path, "```console\n$ false\n```\n"))


def test_unknown_blocks_and_output_without_command_are_refused(tmp_path: Path):
    with pytest.raises(walkthrough.WalkthroughError, match="unknown block kind 'python'"):
        walkthrough.parse_blocks("```python\nprint(1)\n```\n")
    with pytest.raises(walkthrough.WalkthroughError, match="output before any"):
        walkthrough.run(write(tmp_path, "```console\nhello\n```\n"))


def test_response_excerpts_match_like_vespa_test_files():
    answer = {"root": {"children": [{"fields": {"news_id": "N1", "date": 20191115}}, {"fields": {"news_id": "N2"}}],
                       "fields": {"totalCount": 2}}}
    assert walkthrough.matches({"root": {"children": [{"fields": {"news_id": "N1"}}]}}, answer)
    assert not walkthrough.matches({"root": {"children": [{"fields": {"news_id": "N2"}}]}}, answer)
    assert not walkthrough.matches({"root": {"children": [{}, {}, {}]}}, answer)
    assert walkthrough.matches({"x": 0.1234567}, {"x": 0.12345670001})
    assert walkthrough.project({"root": {"children": [{"fields": {"news_id": None}}]}}, answer) == \
        {"root": {"children": [{"fields": {"news_id": "N1"}}]}}


def test_the_readme_links_the_walkthrough():
    assert "(docs/walkthrough.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
