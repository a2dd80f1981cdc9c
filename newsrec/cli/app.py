"""The Vespa application package: build (and validate) it."""
from __future__ import annotations

import time

import click

from newsrec.cli.base import CONTEXT, NewsrecCommand


@click.group(context_settings=CONTEXT)
def app() -> None:
    """The Vespa application package (schemas/ + vespa-app/).

    \b
    Example:
      newsrec app build --out build/newsrec-app.zip
    """


@app.command("build", cls=NewsrecCommand, context_settings=CONTEXT)
@click.option("--out", type=click.Path(dir_okay=False), default="build/newsrec-app.zip", show_default=True)
@click.option("--skip-tests", is_flag=True, help="Skip the Java tests (they prove Vespa accepts the package).")
def app_build(out: str, skip_tests: bool) -> None:
    """Build the deployable application package (zip) with Maven, running Vespa's validation.

    \b
    Example:
      newsrec app build --out build/newsrec-app.zip
      vespa deploy build/newsrec-app.zip
    """
    from feed.app import build_package

    started = time.perf_counter()
    path = build_package(out, skip_tests)
    click.echo(f"wrote {path} in {time.perf_counter() - started:.0f}s"
               f"{' (Java tests skipped)' if skip_tests else ' (Vespa config model tests passed)'}")
