"""Real MIND as it unzips: the official zips' folder names, data one folder too deep, and a clear error (what was
found, how to arrange it) for anything else."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsrec.cli import main
from newsrec.pipeline.mind import read_mind
from newsrec.pipeline.mind_layout import MindLayoutError, find_splits


def _rename(mind_dir: Path, names: dict[str, str]) -> None:
    for old, new in names.items():
        (mind_dir / new).parent.mkdir(parents=True, exist_ok=True)
        (mind_dir / old).rename(mind_dir / new)


def test_standard_layout_has_no_note(mind_dir: Path):
    layout = find_splits(mind_dir)
    assert layout.splits == {"train": mind_dir / "train", "dev": mind_dir / "dev"} and layout.note is None


def test_official_zip_folders_read_as_the_splits(mind_dir: Path):
    standard = read_mind(mind_dir)
    _rename(mind_dir, {"train": "MINDsmall_train", "dev": "MINDsmall_dev"})
    dataset = read_mind(mind_dir)
    assert dataset.split_dirs == {"train": str(mind_dir / "MINDsmall_train"), "dev": str(mind_dir / "MINDsmall_dev")}
    assert dataset.layout_note == "read MINDsmall_train/ as train, MINDsmall_dev/ as dev"
    assert dataset.news.ids == standard.news.ids
    assert dataset.splits["dev"].candidates.tolist() == standard.splits["dev"].candidates.tolist()


def test_one_folder_too_deep(mind_dir: Path):
    _rename(mind_dir, {"train": "MIND/MINDlarge_train", "dev": "MIND/MINDlarge_dev"})
    layout = find_splits(mind_dir)
    assert layout.splits["train"] == mind_dir / "MIND" / "MINDlarge_train"
    assert layout.note.startswith(f"the splits are one folder deeper, in {mind_dir / 'MIND'}")


def test_split_files_one_folder_deeper_inside_their_folder(mind_dir: Path):
    _rename(mind_dir, {"dev": "dev_tmp"})
    _rename(mind_dir, {"dev_tmp": "dev/MINDsmall_dev"})
    assert find_splits(mind_dir).splits["dev"] == mind_dir / "dev" / "MINDsmall_dev"
    assert read_mind(mind_dir).splits["dev"].num_impressions == 1


def test_nothing_recognisable_says_what_is_there_and_how_to_arrange_it(mind_dir: Path):
    _rename(mind_dir, {"train": "MINDsmall_training"})
    with pytest.raises(MindLayoutError) as error:
        find_splits(mind_dir)
    message = str(error.value)
    assert message.startswith(f"{mind_dir}: no train split found; it holds MINDsmall_training/, dev/. Expected ")
    assert f"unzip MINDsmall_train.zip -d {mind_dir}/train && unzip MINDsmall_dev.zip -d {mind_dir}/dev" in message


def test_one_splits_files_loose_in_the_directory(mind_dir: Path):
    for name in ("news.tsv", "behaviors.tsv"):
        shutil.copy(mind_dir / "train" / name, mind_dir / name)
    shutil.rmtree(mind_dir / "train")
    with pytest.raises(MindLayoutError, match=r"one split's files directly inside: each split needs a folder"):
        find_splits(mind_dir)


def test_a_split_in_two_folders_is_ambiguous(mind_dir: Path):
    shutil.copytree(mind_dir / "train", mind_dir / "MINDsmall_train")
    with pytest.raises(MindLayoutError, match=r"split train is in several folders: train/, MINDsmall_train/; keep one"):
        find_splits(mind_dir)


def test_the_command_line_names_the_layout_it_read(mind_dir: Path):
    _rename(mind_dir, {"train": "MINDsmall_train", "dev": "MINDsmall_dev"})
    result = CliRunner().invoke(main, ["inspect", str(mind_dir)])
    assert result.exit_code == 0, result.output
    assert f"{mind_dir}: read MINDsmall_train/ as train, MINDsmall_dev/ as dev" in result.stderr
    (mind_dir / "MINDsmall_dev").rename(mind_dir / "elsewhere")
    result = CliRunner().invoke(main, ["inspect", str(mind_dir)])
    assert result.exit_code == 1 and "no dev split found; it holds MINDsmall_train/, elsewhere/" in result.output
