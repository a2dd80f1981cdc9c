"""Where each split of a MIND directory is: the standard layout, the official zips unpacked as they come, or the
same one folder too deep; anything else is an error that says what was found and how to arrange it.

Accepted, for a directory `mind/`:
- `mind/{train,dev[,test]}/{news.tsv,behaviors.tsv}` (the standard layout, and what `demo-data` writes);
- `mind/MINDsmall_train/`, `mind/MINDsmall_dev/` (or `MINDlarge_*`, `MINDdemo_*`): each official zip unpacked into
  a folder of its own name, e.g. `unzip MINDsmall_train.zip -d mind/MINDsmall_train`;
- either of these one level deeper, when `mind/` holds exactly one folder that has it (`mind/MIND/train/...`);
- a split folder whose files sit one level deeper, in its only subfolder (`mind/train/MINDsmall_train/news.tsv`).

    >>> find_splits("mind/").splits["train"]                          # doctest: +SKIP
    PosixPath('mind/MINDsmall_train')
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from newsrec.pipeline.errors import MindFormatError

REQUIRED_SPLITS = ("train", "dev")
OPTIONAL_SPLITS = ("test",)
SIZES = ("small", "large", "demo")  # the official zips: MIND{size}_{split}.zip
FILES = ("news.tsv", "behaviors.tsv")
SHOWN = 8  # entries named in an error

ARRANGE = ("unzip MINDsmall_train.zip -d {root}/train && unzip MINDsmall_dev.zip -d {root}/dev "
           "(MIND-large: also unzip MINDlarge_test.zip -d {root}/test)")


class MindLayoutError(MindFormatError):
    """A MIND directory whose splits cannot be found (or are ambiguous): the message says what is there and how to
    arrange it."""

    def __init__(self, root: Path, message: str):
        super().__init__(root, None, f"{message}. Expected {root}/train/{{news.tsv,behaviors.tsv}} and {root}/dev/... "
                                     f"(optional {root}/test/), or the official zips unpacked as they come into "
                                     f"{root}/MINDsmall_train/ and {root}/MINDsmall_dev/; e.g. "
                                     + ARRANGE.format(root=root))


@dataclass(frozen=True)
class MindLayout:
    """The folder of each split found, and how the layout differs from the standard one (None when it does not)."""

    root: Path
    splits: dict[str, Path]  # split name -> the folder holding its news.tsv and behaviors.tsv
    note: str | None = None


def find_splits(root: str | Path, wanted: tuple[str, ...] | None = None) -> MindLayout:
    """The layout of `root`: train and dev are required, test is included when its folder exists; with `wanted`,
    exactly those splits (a missing one is reported by the reader as a missing file)."""
    root = Path(root)
    if not root.is_dir():
        raise MindFormatError(root, None, "MIND directory not found (expected train/ and dev/ inside)")
    layout = _layout_in(root, wanted)
    if layout is not None:
        return layout
    deeper = [found for child in _folders(root) if (found := _layout_in(child, wanted)) is not None]
    if len(deeper) == 1:
        inner = deeper[0]
        note = f"the splits are one folder deeper, in {inner.root}" + (f"; {inner.note}" if inner.note else "")
        return MindLayout(root, inner.splits, note)
    if len(deeper) > 1:
        raise MindLayoutError(root, "several folders hold MIND splits: " + ", ".join(f"{d.root.name}/" for d in deeper)
                              + "; give one of them")
    raise MindLayoutError(root, _missing(root, wanted))


def _layout_in(root: Path, wanted: tuple[str, ...] | None) -> MindLayout | None:
    """The splits directly in `root`, or None when a required one has no folder there."""
    names = wanted or REQUIRED_SPLITS + OPTIONAL_SPLITS
    found = {split: _split_folders(root, split) for split in names}
    for split, folders in found.items():
        if len(folders) > 1:
            raise MindLayoutError(root, f"split {split} is in several folders: "
                                  + ", ".join(f"{folder.name}/" for folder in folders) + "; keep one")
    required = wanted or REQUIRED_SPLITS
    if any(not found[split] for split in required):
        return None
    splits = {split: _files_folder(folders[0]) for split, folders in found.items() if folders}
    renamed = [f"{folder.relative_to(root)}/ as {split}" for split, folder in splits.items()
               if folder != root / split]
    return MindLayout(root, splits, ("read " + ", ".join(renamed)) if renamed else None)


def _split_folders(root: Path, split: str) -> list[Path]:
    names = (split,) + tuple(f"MIND{size}_{split}" for size in SIZES)
    return [root / name for name in names if (root / name).is_dir()]


def _files_folder(folder: Path) -> Path:
    """The split folder, or its only subfolder when the files are there (a zip unpacked into a folder of its own)."""
    if any((folder / name).exists() for name in FILES):
        return folder
    children = _folders(folder)
    if len(children) == 1 and all((children[0] / name).is_file() for name in FILES):
        return children[0]
    return folder  # the reader names the missing file


def _folders(root: Path) -> list[Path]:
    try:
        return sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    except OSError as error:
        raise MindFormatError(root, None, f"cannot be read ({error.strerror or error})") from None


def _missing(root: Path, wanted: tuple[str, ...] | None) -> str:
    """What is in `root`, for the error: which required splits are missing, its folders, and loose MIND files."""
    found = [split for split in (wanted or REQUIRED_SPLITS) if _split_folders(root, split)]
    missing = [split for split in (wanted or REQUIRED_SPLITS) if split not in found]
    entries = sorted(path.name + ("/" if path.is_dir() else "") for path in root.iterdir()
                     if not path.name.startswith("."))
    shown = ", ".join(entries[:SHOWN]) + (f" and {len(entries) - SHOWN} more" if len(entries) > SHOWN else "")
    text = f"no {' or '.join(missing)} split found; it holds " + (shown or "nothing")
    if all((root / name).is_file() for name in FILES):
        text += " (one split's files directly inside: each split needs a folder of its own)"
    return text
