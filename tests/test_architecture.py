"""The shape of the code: one import root (`newsrec`: newsrec.pipeline, newsrec.feed and newsrec.bench mapped onto
the folders pipeline/, feed/ and bench/), layers that import downwards only (the application newsrec.cli / web /
contract_server -> newsrec.feed -> newsrec.pipeline), functions stay short, commands stay thin, and nothing wires
modules together through sys.path."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("pipeline", "feed", "newsrec")
FOLDERS = ("pipeline", "feed", "bench")  # installed as newsrec.<folder>
FORBIDDEN = {"pipeline": {"feed", "newsrec", "bench"}, "feed": {"newsrec", "bench"}}  # layer -> may not import
MAX_FUNCTION_LINES = 40
MAX_COMMAND_LINES = 15


def python_files(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def imported_modules(source: str) -> set[str]:
    """The modules a module imports by absolute name, anywhere in it (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def layer(module: str) -> str:
    """newsrec.pipeline.x -> pipeline, newsrec.feed.x -> feed, newsrec.bench.x -> bench, other newsrec.x ->
    newsrec (the application); anything else: its top-level name."""
    parts = module.split(".")
    if parts[0] == "newsrec":
        return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else "newsrec"
    return parts[0]


def imported_packages(source: str) -> set[str]:
    """The layers (or, outside newsrec, the top-level packages) a module imports."""
    return {layer(module) for module in imported_modules(source)}


def upward_imports(package: str, files: list[Path]) -> list[str]:
    return [f"{path.relative_to(ROOT)} imports {name}" for path in files
            for name in sorted(imported_packages(path.read_text(encoding="utf-8")) & FORBIDDEN[package])]


def body_lines(function: ast.FunctionDef) -> int:
    """Lines from the first statement after the docstring to the end of the function."""
    statements = function.body
    if statements and isinstance(statements[0], ast.Expr) and isinstance(getattr(statements[0], "value", None),
                                                                          ast.Constant):
        statements = statements[1:]
    return statements[-1].end_lineno - statements[0].lineno + 1 if statements else 0


def functions(source: str) -> list[ast.FunctionDef]:
    return [node for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def is_command(function: ast.FunctionDef) -> bool:
    """Decorated by click's `command(...)` / `<group>.command(...)`."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr in ("command", "group"):
            return True
    return False


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_downwards(package: str):
    assert upward_imports(package, python_files(package)) == []


def test_the_import_check_catches_an_upward_import(tmp_path: Path):
    module = tmp_path / "sneaky.py"
    module.write_text("def later():\n    from newsrec.feed.job import run_feed\n    import newsrec.cli\n")
    assert imported_packages(module.read_text()) == {"feed", "newsrec"}


def test_one_import_root():
    """Nothing imports the folders by their own names: installed, they are newsrec.pipeline, .feed and .bench
    (PyPI has packages named `pipeline` and `bench`, which would collide)."""
    sources = python_files(*PRODUCTION, "bench", "tests")
    offenders = [f"{path.relative_to(ROOT)} imports {module}" for path in sources
                 for module in sorted(imported_modules(path.read_text(encoding="utf-8")))
                 if module.split(".")[0] in FOLDERS]
    assert offenders == []


def test_every_package_folder_is_installed_under_newsrec():
    """pyproject.toml's package list and package-dir cover every folder with an __init__.py, under newsrec."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert setup["package-dir"] == {"newsrec": "newsrec", **{f"newsrec.{f}": f for f in FOLDERS}}
    folders = {init.parent.relative_to(ROOT) for folder in (*FOLDERS, "newsrec") for init in
               (ROOT / folder).rglob("__init__.py")}
    installed = {".".join(("newsrec", *p.parts) if p.parts[0] in FOLDERS else p.parts) for p in folders}
    assert installed == set(setup["packages"])


def test_no_production_function_is_longer_than_40_lines():
    long = [f"{path.relative_to(ROOT)}:{f.lineno} {f.name} ({body_lines(f)} lines)"
            for path in python_files(*PRODUCTION) for f in functions(path.read_text(encoding="utf-8"))
            if body_lines(f) > MAX_FUNCTION_LINES]
    assert long == []


def test_each_command_function_is_at_most_15_lines():
    commands = [(path, f) for path in python_files("newsrec") for f in functions(path.read_text(encoding="utf-8"))
                if is_command(f)]
    assert len(commands) >= 13  # every command of `newsrec --help` (and the app group)
    long = [f"{path.relative_to(ROOT)}:{f.lineno} {f.name} ({body_lines(f)} lines)" for path, f in commands
            if body_lines(f) > MAX_COMMAND_LINES]
    assert long == []


def test_the_length_checks_measure_statements_not_docstrings():
    (function,) = functions('def f():\n    """Doc.\n\n    More doc.\n    """\n    a = 1\n    return a\n')
    assert body_lines(function) == 2


def test_nothing_edits_sys_path():
    sources = python_files(*PRODUCTION, "tests", "bench", "docs")
    offenders = [str(path.relative_to(ROOT)) for path in sources if "sys.path.insert" in path.read_text()
                 and path.name != Path(__file__).name]
    assert offenders == []


def test_no_capability_probes_on_models_or_backends():
    """Optional capabilities are declared on the model base class or the backend interface, not probed."""
    offenders = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in python_files(*PRODUCTION)
                 for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr"]
    assert offenders == []


def test_the_command_line_lists_the_models_of_the_registry():
    from click.testing import CliRunner

    from newsrec.cli import main
    from newsrec.pipeline.models.registry import MODELS

    shown = CliRunner().invoke(main, ["train", "--help"], terminal_width=200).output
    assert f"[{'|'.join(MODELS)}]" in shown


def test_rank_profiles_are_named_in_the_table_only():
    """Queries, backends, the contract server, the command line and the web page read feed/profiles.py: no other
    production module spells a profile's name (adding a profile touches the schema, the table and its math)."""
    from newsrec.feed.profiles import PROFILES

    table = ROOT / "feed" / "profiles.py"
    offenders = [f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
                 for path in python_files("feed", "newsrec") if path != table
                 for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in PROFILES]
    assert offenders == []


HEAVY = {"torch", "transformers", "faiss", "onnxruntime", "bm25s", "uvicorn", "hypercorn", "vespa", "fastapi",
         "sklearn", "lightgbm"}  # libraries that take a noticeable time to import (0.1 s to 2.5 s here)


def _module_files() -> dict[str, Path]:
    files = {}
    for folder in PRODUCTION:
        for path in (ROOT / folder).rglob("*.py"):
            parts = [part for part in path.relative_to(ROOT / folder).with_suffix("").parts if part != "__init__"]
            files[".".join(["newsrec"] + ([] if folder == "newsrec" else [folder]) + parts)] = path
    return files


def _top_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def heavy_loaded(module: str, files: dict[str, Path], seen: set[str] | None = None) -> set[str]:
    """The HEAVY libraries importing `module` loads, following the project's module-level imports (and its parent
    packages), without running anything."""
    seen = set() if seen is None else seen
    if module in seen:
        return set()
    seen.add(module)
    if module.split(".")[0] in HEAVY:
        return {module.split(".")[0]}
    parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)} & set(files)
    imported = _top_level_imports(files[module]) if module in files else set()
    return set().union(*(heavy_loaded(name, files, seen) for name in imported | parents))


def _guarded(tree: ast.AST) -> set[int]:
    """The import nodes inside `try: ... except ImportError` (an optional package, said clearly when missing)."""
    return {id(node) for handler in ast.walk(tree) if isinstance(handler, ast.Try)
            and any(getattr(h.type, "id", None) == "ImportError" for h in handler.handlers) for node in ast.walk(handler)}


def test_imports_are_at_the_top_unless_they_keep_a_heavy_library_out():
    """An import inside a function is there to keep a HEAVY library from loading with its module (directly, or
    through a project module that loads one), or to name a missing optional package: anything else goes to the
    top (cycles included: there are none to break)."""
    files, offenders = _module_files(), []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded, loaded = _guarded(tree), heavy_loaded(module, files)
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in guarded:
                    name = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    if not heavy_loaded(name, files) - loaded:
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert offenders == []


def test_the_heavy_import_check_follows_project_modules():
    files = _module_files()
    assert heavy_loaded("newsrec.pipeline.training", files) >= {"torch"}
    assert heavy_loaded("newsrec.pipeline.mind", files) == set()
    assert heavy_loaded("newsrec.feed.vespa_backend", files) >= {"vespa"}


@pytest.mark.parametrize("arguments", [["--help"], ["recommend", "U1097", "--hits", "3"]])
def test_the_command_line_starts_without_torch(arguments: list[str], fed: Path):
    """`newsrec --help` and `newsrec recommend` on the embedded index load neither torch nor transformers (nor
    pyvespa): what the in-function imports are for."""
    import subprocess
    import sys

    check = ("import atexit, sys; atexit.register(lambda: print(sorted(m for m in ('torch', 'transformers', 'vespa') "
             "if m in sys.modules), file=sys.stderr)); from newsrec.cli import main; main(sys.argv[1:])")
    run = subprocess.run([sys.executable, "-c", check, *arguments, *(["--index", str(fed)] if len(arguments) > 1
                                                                    else [])], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[-1] == "[]"
