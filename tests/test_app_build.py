"""`newsrec app build` drives Maven; the seam is the `mvn` executable, replaced here by a script."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsrec.feed.app import AppBuildError, build_package
from newsrec.cli import main


def fake_mvn(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir()
    path = bin_dir / "mvn"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_copies_the_built_zip(tmp_path: Path, monkeypatch):
    fake_mvn(tmp_path / "bin", 'echo "$@" > args.txt; mkdir -p target; echo zip > target/application.zip\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    app = tmp_path / "app"
    app.mkdir()
    out = build_package(tmp_path / "out" / "pkg.zip", skip_tests=True, app_dir=app)
    assert out.read_text() == "zip\n"
    assert (app / "args.txt").read_text().split() == ["-B", "-q", "package", "-DskipTests"]


def test_maven_failure_is_reported_with_its_output(tmp_path: Path, monkeypatch):
    fake_mvn(tmp_path / "bin", 'echo "[ERROR] Can not join tensor<float>(x[65]) and tensor<float>(x[10])"; exit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(AppBuildError, match=r"(?s)`mvn package` failed .*exit 1.*Can not join"):
        build_package(tmp_path / "pkg.zip", app_dir=tmp_path)


def test_missing_maven_is_a_clear_cli_error(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(main, ["app", "build", "--out", str(tmp_path / "x.zip")])
    assert result.exit_code == 1 and "Maven (mvn) is not on PATH" in result.output


def test_a_reranker_is_exported_and_passed_to_maven(tmp_path: Path, monkeypatch):
    from newsrec.feed.app import build_with_reranker
    from newsrec.pipeline.checkpoint import save_checkpoint
    from newsrec.pipeline.text_encoder import TextEncoderConfig
    from newsrec.pipeline.vocabulary import Vocabulary
    from reranker_fixture import tiny_unbert

    fake_mvn(tmp_path / "bin", 'echo "$@" > args.txt; mkdir -p target; echo zip > target/application.zip\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    save_checkpoint(tmp_path / "unbert", "unbert", tiny_unbert(), Vocabulary([], [], [], [], []), TextEncoderConfig(),
                    50, {})
    app = tmp_path / "app"
    app.mkdir()
    out, difference = build_with_reranker(tmp_path / "pkg.zip", tmp_path / "unbert", skip_tests=True, app_dir=app)
    arguments = (app / "args.txt").read_text().split()
    assert arguments[:4] == ["-B", "-q", "package", "-DskipTests"] and difference <= 1e-4
    assert arguments[4].startswith("-Dnewsrec.reranker=") and arguments[4].endswith("unbert.onnx")


def test_one_vespa_version_everywhere():
    """The version the Java tests ran on (the pom's parent) is every doc's image tag and both services.xml files'
    minimum-required-vespa-version (VespaVersionTest checks the same on the Java side; the Java tests' own Vespa code
    reports 1.0.0, so they build a copy without it)."""
    import re
    from xml.etree import ElementTree

    root = Path(__file__).resolve().parent.parent
    pom = ElementTree.parse(root / "vespa-app" / "pom.xml").getroot()
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = pom.find("m:parent/m:version", namespace).text
    for doc in [root / "README.md", *(root / "docs").glob("*.md"), root / "vespa-app" / "README.md"]:
        for tag in re.findall(r"vespaengine/vespa(\S*)", doc.read_text(encoding="utf-8")):
            assert tag == f":{version}", f"{doc}: vespaengine/vespa{tag}"
    for services in ("src/main/application/services.xml", "multinode/services.xml"):
        required = ElementTree.parse(root / "vespa-app" / services).getroot().get("minimum-required-vespa-version")
        assert required == version, services


def test_the_multinode_package_is_production_shaped():
    """Three config servers, cluster controllers and slobroks; min-redundancy; threads per search (issue #33). Vespa's
    config model builds it (MultiNodePackageTest)."""
    from xml.etree import ElementTree

    root = ElementTree.parse(Path(__file__).resolve().parent.parent / "vespa-app" / "multinode" / "services.xml").getroot()
    admin = root.find("admin")
    for group, item in (("configservers", "configserver"), ("cluster-controllers", "cluster-controller"),
                        ("slobroks", "slobrok")):
        assert len({node.get("hostalias") for node in admin.find(group).findall(item)}) == 3, group
    content = root.find("content")
    assert content.find("min-redundancy").text == "2" and content.find("redundancy") is None
    assert int(content.find("engine/proton/tuning/searchnode/requestthreads/persearch").text) > 1
