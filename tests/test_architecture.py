"""The shape of the code: packages import downwards only (newsrec -> feed -> pipeline), functions stay
short, commands stay thin, and nothing wires modules together through sys.path."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("pipeline", "feed", "newsrec")
FORBIDDEN = {"pipeline": {"feed", "newsrec", "bench"}, "feed": {"newsrec", "bench"}}  # package -> may not import
MAX_FUNCTION_LINES = 40
MAX_COMMAND_LINES = 15


def python_files(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def imported_packages(source: str) -> set[str]:
    """Top-level packages a module imports, anywhere in it (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


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
    module.write_text("def later():\n    from feed.job import run_feed\n    import newsrec.cli\n")
    assert imported_packages(module.read_text()) == {"feed", "newsrec"}


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
    from pipeline.models.registry import MODELS

    shown = CliRunner().invoke(main, ["train", "--help"], terminal_width=200).output
    assert f"[{'|'.join(MODELS)}]" in shown
