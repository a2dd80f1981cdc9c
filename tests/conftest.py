"""Shared fixtures: a hand-written MIND directory, and tiny generated data (made once per session).
Shared helpers that are not fixtures live in `support.py`."""
from __future__ import annotations

from pathlib import Path

import pytest
from support import DEV, NEWS, TRAIN, write_tsv


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is present; elsewhere they are reported as skipped, never faked."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none present)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

@pytest.fixture
def mind_dir(tmp_path: Path) -> Path:
    """A valid four-news MIND directory; tests overwrite one file to make it bad."""
    root = tmp_path / "mind"
    for split, behaviors in (("train", TRAIN), ("dev", DEV)):
        write_tsv(root / split / "news.tsv", NEWS)
        write_tsv(root / split / "behaviors.tsv", behaviors)
    return root


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> Path:
    from newsrec.pipeline.demo_data import config_for, generate

    root = tmp_path_factory.mktemp("demo") / "mind"
    generate(root, config_for("tiny", 0))
    return root


@pytest.fixture(scope="session")
def trained(tiny_demo: Path, tmp_path_factory) -> Path:
    """A UniRec checkpoint trained for one epoch per stage on the tiny demo data, through the CLI."""
    from click.testing import CliRunner

    from newsrec.cli import main

    out = tmp_path_factory.mktemp("runs") / "unirec"
    result = CliRunner().invoke(main, ["train", str(tiny_demo), "--out", str(out), "--epochs", "1",
                                       "--recall-epochs", "1", "--batch-size", "64", "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert "valid_auc" in result.output and "recall epoch 1" in result.output
    return out


@pytest.fixture(scope="session")
def fed(tiny_demo: Path, trained: Path, tmp_path_factory) -> Path:
    """The embedded index fed by `newsrec-feed` with the tiny demo data and the `trained` model (read-only)."""
    from click.testing import CliRunner

    from newsrec.cli import feed_main

    index = tmp_path_factory.mktemp("index") / "newsrec-index"
    result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--index", str(index)])
    assert result.exit_code == 0, result.output
    return index
