"""What `pip install -e '.[test]'` installs is everything the code imports: every module of pipeline/, feed/,
newsrec/, bench/ and tests/ imports in this environment (CI's, made from nothing by .ci/run), and every third-party
module any of them imports (at the top or inside a function) comes from a distribution the project declares
itself, not from one that only happens to be installed (on the developer's machine, or as another package's
dependency)."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("pipeline", "feed", "newsrec", "bench", "tests")
PROJECT = {"pipeline", "feed", "newsrec", "bench"}
TEST_HELPERS = {path.stem for path in (ROOT / "tests").glob("*.py")}  # imported by name: pytest's pythonpath


def modules() -> list[str]:
    names = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if folder == "tests":
                parts = parts[1:]  # tests/ is on the path (pyproject: pythonpath), not a package
            names.append(".".join(part for part in parts if part != "__init__") or folder)
    return names


def imported_names(path: Path) -> set[str]:
    """The top-level names of every absolute import in a file, wherever it stands in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Third-party top-level module -> the files importing it."""
    found: dict[str, set[str]] = {}
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            for name in imported_names(path) - PROJECT - TEST_HELPERS - set(sys.stdlib_module_names):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def declared_distributions() -> set[str]:
    """The distributions newsrec requires, its `test` extra included (names normalized as PEP 503 does)."""
    requirements = metadata.requires("newsrec") or []
    wanted = [r for r in requirements if "extra ==" not in r or re.search(r"extra\s*==\s*['\"]test['\"]", r)]
    return {_normalized(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in wanted}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("module", modules())
def test_every_module_imports(module: str):
    if module.endswith(".__main__"):  # runs its command when imported: found and compiled, its imports scanned below
        spec = importlib.util.find_spec(module)
        compile(Path(spec.origin).read_text(encoding="utf-8"), spec.origin, "exec")
        return
    importlib.import_module(module)


def test_every_third_party_import_is_declared_by_the_project():
    providers = metadata.packages_distributions()
    declared = declared_distributions()
    missing = {}
    for name, files in sorted(third_party_imports().items()):
        distributions = {_normalized(d) for d in providers.get(name, [])}
        if not distributions & declared:
            missing[name] = (sorted(distributions) or "not installed", sorted(files)[:3])
    assert not missing, f"imported but not declared in pyproject.toml (dependencies or the test extra): {missing}"


def test_the_scan_sees_imports_inside_functions(tmp_path: Path):
    source = tmp_path / "module.py"
    source.write_text("import os\n\ndef f():\n    from matplotlib import pyplot\n    import torch.nn\n")
    assert imported_names(source) == {"os", "matplotlib", "torch"}


def test_a_module_nobody_declared_would_fail(monkeypatch):
    """The check can fail: a name only another package brings is reported."""
    monkeypatch.setattr(sys.modules[__name__], "declared_distributions", lambda: {"numpy"})
    with pytest.raises(AssertionError, match="torch"):
        test_every_third_party_import_is_declared_by_the_project()
