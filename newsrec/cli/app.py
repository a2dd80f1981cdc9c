"""The Vespa application package: build (and validate) it."""
from __future__ import annotations

import time

import click

from newsrec.cli.base import CONTEXT, NewsrecCommand
from newsrec.feed.app import build_package, build_with_reranker


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
@click.option("--reranker", type=click.Path(), default=None,
              help="An UNBERT checkpoint: exported to ONNX and packaged with the global-phase rank profile unbert.")
@click.option("--ranker", type=click.Path(exists=True, file_okay=False), default=None,
              help="A learned ranker (newsrec train-ranker): packaged as models/ranker.json with rank profile learned.")
def app_build(out: str, skip_tests: bool, reranker: str | None, ranker: str | None) -> None:
    """Build the deployable application package (zip) with Maven, running Vespa's validation.

    \b
    Example:
      newsrec app build --out build/newsrec-app.zip
      newsrec app build --reranker runs/unbert      # + the cross-encoder in the global phase
      newsrec app build --ranker newsrec-model/ranker  # + the learned ranker (rank profile learned)
      vespa deploy build/newsrec-app.zip
    """

    started = time.perf_counter()
    if reranker:
        path, difference = build_with_reranker(out, reranker, skip_tests, ranker_dir=ranker)
        click.echo(f"exported {reranker} to ONNX (|onnxruntime - torch| <= {difference:.1e}): models/unbert.onnx")
    else:
        path = build_package(out, skip_tests, ranker_dir=ranker)
    if ranker:
        click.echo(f"packaged the learned ranker of {ranker}: models/ranker.json, rank profile learned")
    click.echo(f"wrote {path} in {time.perf_counter() - started:.0f}s"
               f"{' (Java tests skipped)' if skip_tests else ' (Vespa config model tests passed)'}")


@app.command("export-reranker", cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("model_dir", type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False), default="build/unbert.onnx", show_default=True)
def export_reranker(model_dir: str, out: str) -> None:
    """Export an UNBERT checkpoint to ONNX (input_ids, attention_mask, token_type_ids -> score), checking that
    onnxruntime's scores equal torch's within 1e-4 on sampled inputs.

    \b
    Example:
      newsrec app export-reranker runs/unbert --out build/unbert.onnx
    """
    from newsrec.pipeline.checkpoint import load_checkpoint
    from newsrec.pipeline.reranker import export_onnx

    parity = export_onnx(load_checkpoint(model_dir).model, out)
    click.echo(f"wrote {out}: onnxruntime = torch within {parity.max_difference:.1e} over {parity.samples} samples")
