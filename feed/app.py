"""Building the deployable Vespa application package (`newsrec app build`).

The package is built by Maven in `vespa-app/` (Vespa's own build: it compiles the searcher, runs the
Java tests that load the whole package with Vespa's config model, and zips `target/application.zip`
with `../schemas/*.sd` inside).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from newsrec.feed.ranking import LEARNED_FEATURES
from newsrec.pipeline.errors import NewsrecError
from newsrec.pipeline.learned_ranker import VESPA_FILE, Ranker

APP_DIR = Path(__file__).resolve().parent.parent / "vespa-app"


class AppBuildError(NewsrecError):
    """The application package could not be built."""


def build_package(out: str | Path, skip_tests: bool = False, app_dir: Path = APP_DIR,
                  reranker_onnx: Path | None = None, ranker_dir: Path | None = None) -> Path:
    """Run `mvn package` in `app_dir` and copy the zip to `out`; returns `out`. `reranker_onnx`: an exported
    re-ranker, packaged as models/unbert.onnx with the rank profile schemas/news/unbert.profile (the Maven
    profile `reranker`, activated by the property newsrec.reranker). `ranker_dir`: a learned ranker (newsrec
    train-ranker), its lightgbm.json packaged as models/ranker.json with schemas/news/learned.profile (the Maven
    profile `ranker`); checked first (its files' digests, its features the profile's)."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise AppBuildError("Maven (mvn) is not on PATH; building the Vespa package needs Maven 3 and Java 17")
    command = [mvn, "-B", "-q", "package"] + (["-DskipTests"] if skip_tests else [])
    if reranker_onnx is not None:
        command.append(f"-Dnewsrec.reranker={Path(reranker_onnx).resolve()}")
    if ranker_dir is not None:
        command.append(f"-Dnewsrec.ranker={checked_ranker(ranker_dir)}")
    done = subprocess.run(command, cwd=app_dir, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise AppBuildError(f"`mvn package` failed in {app_dir} (exit {done.returncode}):\n{tail}")
    built = app_dir / "target" / "application.zip"
    if not built.is_file():
        raise AppBuildError(f"`mvn package` succeeded but {built} is missing")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if ranker_dir is None:
        shutil.copyfile(built, out)
    else:
        with_ranker_version(built, out, Ranker.load(ranker_dir).model_version)
    return out


QUERY_PROFILE = "search/query-profiles/default.xml"
EMPTY_VERSION = '<field name="ranker_model_version" overridable="false"></field>'


def with_ranker_version(built: Path, out: Path, version: str) -> None:
    """Copy the zip `built` to `out` with the ranker's model version in its default query profile (the field
    RankerVersionSearcher compares a learned query's model_version with)."""
    with zipfile.ZipFile(built) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == QUERY_PROFILE:
                text = data.decode()
                if EMPTY_VERSION not in text:
                    raise AppBuildError(f"{built}: {QUERY_PROFILE} has no empty ranker_model_version field to fill")
                data = text.replace(EMPTY_VERSION, EMPTY_VERSION.replace("></", f">{version}</")).encode()
            target.writestr(item, data)


def checked_ranker(ranker_dir: str | Path) -> Path:
    """The ranker's lightgbm.json, once the ranker loads (digests checked) and reads the learned profile's features."""
    ranker = Ranker.load(ranker_dir)
    ranker.require(LEARNED_FEATURES, None, str(ranker_dir))
    if not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", ranker.model_version):
        raise AppBuildError(f"{ranker_dir}: model version {ranker.model_version!r} is not a plain version string")
    return (Path(ranker_dir) / VESPA_FILE).resolve()


def build_with_reranker(out: str | Path, reranker_dir: str | Path, skip_tests: bool = False,
                        app_dir: Path = APP_DIR, ranker_dir: Path | None = None) -> tuple[Path, float]:
    """Export the re-ranker checkpoint in `reranker_dir` to ONNX (parity with torch checked) and build the package
    with it; returns (the zip, the parity's max difference)."""

    from newsrec.pipeline.checkpoint import load_checkpoint
    from newsrec.pipeline.reranker import export_onnx

    with tempfile.TemporaryDirectory() as scratch:
        onnx = Path(scratch) / "unbert.onnx"
        parity = export_onnx(load_checkpoint(reranker_dir).model, onnx)
        return build_package(out, skip_tests, app_dir, onnx, ranker_dir), parity.max_difference
