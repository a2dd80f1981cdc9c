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
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("pipeline", "feed", "newsrec", "bench", "tests")
INSTALLED = {"pipeline": "newsrec.pipeline", "feed": "newsrec.feed", "bench": "newsrec.bench", "newsrec": "newsrec"}
PROJECT = {"newsrec"}
TEST_HELPERS = {path.stem for path in (ROOT / "tests").glob("*.py")}  # imported by name: pytest's pythonpath


def modules() -> list[str]:
    """The import name of every module of the folders (pipeline/mind.py: newsrec.pipeline.mind)."""
    names = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [part for part in path.relative_to(ROOT).with_suffix("").parts[1:] if part != "__init__"]
            root = [] if folder == "tests" else [INSTALLED[folder]]  # tests/ is on the path, not a package
            names.append(".".join(root + parts))
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


def test_newsrec_installs_beside_pypis_own_pipeline_package(tmp_path: Path):
    """PyPI's `pipeline` (command pipelines, an unrelated project) and newsrec import side by side: newsrec's
    folders install as newsrec.pipeline, newsrec.feed and newsrec.bench, never as top-level names."""
    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                                "pipeline==0.1.0"], capture_output=True, text=True)
    if installed.returncode:
        pytest.skip(f"PyPI's pipeline package could not be installed (no PyPI?): {installed.stderr[-300:]}")
    check = ("import sys, pipeline, newsrec.pipeline.mind, newsrec.feed.queries, newsrec.bench.common; "
             "print(pipeline.__file__); print(newsrec.pipeline.mind.__file__)")
    run = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(site)})
    assert run.returncode == 0, run.stderr
    theirs, ours = run.stdout.splitlines()
    assert theirs.startswith(str(site)) and ours == str(ROOT / "pipeline" / "mind.py")
    assert metadata.distribution("newsrec").read_text("top_level.txt").split() == ["newsrec"]
