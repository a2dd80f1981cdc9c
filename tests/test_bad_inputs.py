"""Every bad input of issue #12, one directory each under tests/bad_inputs/, run through the command line.

A case is `tests/bad_inputs/<name>/case.json`:
    about     what the input is (and what happened to it before the fix)
    args      the command line, naming places (so may `expect`): {mind} a MIND directory, the four-news corpus of
              tests/support.py with the case's own `mind/` files written over it (and its `remove` list removed);
              {index} an embedded index built here (see `index_dir`); {case} the case directory; {tmp} a fresh
              directory
    exit      the exit status: 1 for a bad input (`Error: ...`), 2 for a bad option (click's usage error),
              0 for an input that is accepted on purpose (a leading BOM), a counted skip or repair
              (--skip-bad-rows, --drop-unknown-ids) or a fixed output (strict JSON, terminal text)
    expect    fragments the output must hold (the error line, or the counted-skip report)
    absent    strings the output must not hold (optional); json: stdout must be strict JSON (optional)
    generate  a big input made at test time instead of committed (optional; see GENERATORS)
    remove    files of the corpus to delete (optional)
    xfail     a known gap outside this change, with its reason: the case runs as a strict xfail, so fixing the
              gap makes it fail until the marker is removed (optional)

Every case must end without a Python traceback (an exception escaping the command), and a failing case with
exactly one `Error:` line that holds an expected fragment: 0 tracebacks, 0 silent acceptances.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support import DEV, DIM, NEWS, TRAIN, write_tsv

from newsrec.feed.backend import FeedReport
from newsrec.feed.documents import category_ctr_document, news_document, user_document
from newsrec.feed.local_backend import LocalBackend
from newsrec.cli import main

CASES_DIR = Path(__file__).parent / "bad_inputs"
CASES = sorted(path for path in CASES_DIR.iterdir() if (path / "case.json").is_file())
ESCAPED_TITLE = "\x1b[31mRed alert\x1b[0m: storm\u200b nears \u202ethe coast"


# ------------------------------------------------------------------------ big inputs, made at test time

def _replace_news(mind: Path, split: str, row: int, column: int, value: str) -> None:
    """news.tsv of `split` ("both": train and dev, as a news id must have the same row in each) with one value
    replaced."""
    rows = [line[:] for line in NEWS]
    rows[row][column] = value
    for name in ("train", "dev") if split == "both" else (split,):
        write_tsv(mind / name / "news.tsv", rows)


def _leaderboard_files(mind: Path, prediction: str) -> None:
    (mind / "truth.txt").write_text("1 [1,0]\n")
    (mind / "prediction.txt").write_text(f"1 {prediction}\n")


GENERATORS = {
    "title_10mb": lambda mind: _replace_news(mind, "both", 2, 3, "T" * 10 * 2 ** 20),
    "url_10k": lambda mind: _replace_news(mind, "train", 1, 5, "https://x/" + "u" * 9_990),
    "deep_json": lambda mind: _replace_news(mind, "train", 0, 6, "[" * 100_000 + "]" * 100_000),
    "entity_2mb": lambda mind: _replace_news(mind, "train", 0, 7, '[{"WikidataId": "Q1", "Label": "'
                                             + "x" * 2_000_008 + '"}]'),
    "entity_huge_integer": lambda mind: _replace_news(mind, "train", 2, 6, '[{"WikidataId": "Q1", "Confidence": '
                                                      + "9" * 5_000 + "}]"),
    "deep_prediction": lambda mind: _leaderboard_files(mind, "[" * 100_000 + "]" * 100_000),
    "huge_rank": lambda mind: _leaderboard_files(mind, "[" + "9" * 5_000 + ",1]"),
    "line_17mib": lambda mind: write_tsv(mind / "train" / "behaviors.tsv",
                                         [TRAIN[0], ["2", "U2", TRAIN[1][2], "N1 " * (17 * 2 ** 20 // 3), "N1-1"]]),
}


def _mind(case: Path, spec: dict, root: Path) -> Path:
    """The four-news corpus, the case's files written over it, then its `remove` and `generate`."""
    for split, behaviors in (("train", TRAIN), ("dev", DEV)):
        write_tsv(root / split / "news.tsv", NEWS)
        write_tsv(root / split / "behaviors.tsv", behaviors)
    if (case / "mind").is_dir():
        shutil.copytree(case / "mind", root, dirs_exist_ok=True)
    for relative in spec.get("remove", []):
        (root / relative).unlink()
    if "generate" in spec:
        GENERATORS[spec["generate"]](root)
    return root


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    """An embedded index without a model: the four news of tests/support.py plus N5, whose title holds terminal
    escapes, a zero-width space and a bidi override; every abstract empty (bm25s cannot index an empty
    vocabulary); one user, U1, who read N1."""
    directory = tmp_path_factory.mktemp("bad-inputs") / "index"
    backend, rng = LocalBackend(directory), np.random.default_rng(0)
    rows = [row[:4] for row in NEWS] + [["N5", "news", "newsus", ESCAPED_TITLE]]
    documents = [news_document(news_id, category, subcategory, title, "", f"https://x/{i}", 20191115, i, 10,
                               rng.normal(size=DIM)) for i, (news_id, category, subcategory, title) in enumerate(rows)]
    for doctype, docs in (("news", documents), ("category_ctr", [category_ctr_document({"sports": 0.1})]),
                          ("user", [user_document("U1", rng.normal(size=DIM), rng.normal(size=DIM), ["N1"])])):
        report = FeedReport()
        backend.feed(docs, doctype, report)
        assert report.success, report.summary()
    return directory


# ------------------------------------------------------------------------------------------ the cases

def _fill(text: str, places: dict[str, Path]) -> str:
    for name, place in places.items():
        text = text.replace("{" + name + "}", str(place))
    return text


def test_the_corpus_covers_at_least_40_bad_inputs():
    assert len(CASES) >= 40
    assert sum("xfail" not in json.loads((case / "case.json").read_text()) for case in CASES) >= 40
    for case in CASES:
        spec = json.loads((case / "case.json").read_text(encoding="utf-8"))
        assert {"about", "args", "exit", "expect"} <= set(spec), case.name
        assert spec.get("generate") in (None, *GENERATORS), case.name


def _marked(case: Path):
    reason = json.loads((case / "case.json").read_text(encoding="utf-8")).get("xfail")
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_marked(case) for case in CASES])
def test_bad_input(case: Path, tmp_path: Path, request):
    spec = json.loads((case / "case.json").read_text(encoding="utf-8"))
    places = {"mind": _mind(case, spec, tmp_path / "mind"), "case": case, "tmp": tmp_path / "tmp"}
    if any("{index}" in arg for arg in spec["args"]):
        places["index"] = request.getfixturevalue("index_dir")
    result = CliRunner().invoke(main, [_fill(arg, places) for arg in spec["args"]])
    output = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"traceback: {result.exception!r}\n{output[-2000:]}"
    assert result.exit_code == spec["exit"], output[-2000:]
    expected = [_fill(fragment, places) for fragment in spec["expect"]]
    for fragment in expected:
        assert fragment in output, f"{fragment!r} not in:\n{output[-2000:]}"
    for text in spec.get("absent", []):
        assert text not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == (1 if spec["exit"] else 0), output[-2000:]
    if spec["exit"]:
        assert any(fragment in errors[0] for fragment in expected)
    if spec.get("json"):
        json.loads(result.stdout, parse_constant=lambda constant: pytest.fail(f"not strict JSON: {constant}"))


def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path: Path):
    """One case through a real `python -m newsrec` process: stderr is the one error line."""
    case = CASES_DIR / "impression_id_beyond_int64"
    mind = _mind(case, json.loads((case / "case.json").read_text()), tmp_path / "mind")
    process = subprocess.run([sys.executable, "-m", "newsrec", "inspect", str(mind)], capture_output=True, text=True,
                             timeout=120)
    assert process.returncode == 1 and "Traceback" not in process.stderr
    assert process.stderr.splitlines() == [f"Error: {mind / 'train' / 'behaviors.tsv'}:2: ImpressionID "
                                           "'9223372036854775808' is out of range (0 to 9223372036854775807, "
                                           "a 64-bit integer)"]


# ------------------------------------------------------------------------- the library refuses them too

@pytest.mark.parametrize("hits", [0, -1, True, 2.5, 401, 10 ** 10, float("nan"), "5"])
def test_vespa_request_bodies_refuse_hits_below_one(hits):
    from newsrec.feed.queries import QueryError, popularity_body, recommend_body, search_body, user_profile_params

    for build in (lambda: recommend_body([0.0] * DIM, hits=hits), lambda: search_body("golf", hits),
                  lambda: popularity_body(hits), lambda: user_profile_params("U1", hits)):
        with pytest.raises(QueryError, match=r"hits must be an integer from 1 to 400 \(Vespa's default maxHits\)"):
            build()


class _Groups:
    """A backend's `group_counts` alone: what `check_filter_values` needs of either backend."""

    def __init__(self, values: list[str]):
        self.values = values

    def group_counts(self, field, text=None, filters=None):
        return [(value, 1) for value in self.values]


def test_an_unknown_filter_value_says_so_and_a_known_one_does_not():
    from newsrec.feed.queries import UnknownFilterValueError, check_filter_values

    backend = _Groups(["sports", "finance"])
    check_filter_values(backend, {"category": "Sports"})  # filters match case-insensitively: no error
    with pytest.raises(UnknownFilterValueError, match=r"^category 'sprots' does not exist \(categories: finance, "
                                                      r"sports\); did you mean 'sports'\?$"):
        check_filter_values(backend, {"category": "sprots"})
    many = _Groups([f"sub{i:03}" for i in range(50)])  # a full grouping page may not list every value
    check_filter_values(many, {"subcategory": "tennis"})


@pytest.mark.parametrize("endpoint, reason", [
    ("http://localhost:99999", "port '99999' is not in 1-65535"), ("http://localhost:0", "port '0' is not in"),
    ("ftp://localhost", "the scheme must be http or https"), ("http://:8080", "no host"),
    ("http://[::1", "Invalid IPv6 URL"), ("http://localhost:8080/?token=x", "a query or fragment"),
])
def test_targets_refuse_endpoints_that_cannot_work(endpoint: str, reason: str):
    from newsrec.feed.connect import EndpointError, Target

    with pytest.raises(EndpointError, match=re.escape(reason)):
        Target(endpoint=endpoint)
    assert Target(endpoint="https://app.tenant.vespa-app.cloud/").endpoint.startswith("https://")
