"""Building the deployable Vespa application package (`newsrec app build`).

The package is built by Maven in `vespa-app/` (Vespa's own build: it compiles the searcher, runs the
Java tests that load the whole package with Vespa's config model, and zips `target/application.zip`
with `../schemas/*.sd` inside).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pipeline.errors import NewsrecError

APP_DIR = Path(__file__).resolve().parent.parent / "vespa-app"


class AppBuildError(NewsrecError):
    """The application package could not be built."""


def build_package(out: str | Path, skip_tests: bool = False, app_dir: Path = APP_DIR) -> Path:
    """Run `mvn package` in `app_dir` and copy the zip to `out`; returns `out`."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise AppBuildError("Maven (mvn) is not on PATH; building the Vespa package needs Maven 3 and Java 17")
    command = [mvn, "-B", "-q", "package"] + (["-DskipTests"] if skip_tests else [])
    done = subprocess.run(command, cwd=app_dir, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise AppBuildError(f"`mvn package` failed in {app_dir} (exit {done.returncode}):\n{tail}")
    built = app_dir / "target" / "application.zip"
    if not built.is_file():
        raise AppBuildError(f"`mvn package` succeeded but {built} is missing")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built, out)
    return out
