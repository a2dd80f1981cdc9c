"""`newsrec-feed MIND_DIR`: the main job. Thin: parse, call the library, print a summary."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import click

from pipeline.errors import NewsrecError

DEFAULT_MODEL_DIR = "newsrec-model"


def endpoint_options(function):
    """--endpoint/--cert/--key/--token/--index: Vespa when an endpoint is given, else the embedded index."""
    options = [
        click.option("--endpoint", default=None, help="Vespa endpoint URL (e.g. http://localhost:8080); "
                                                      "without it: the embedded default index."),
        click.option("--cert", type=click.Path(dir_okay=False), default=None, help="Vespa Cloud mTLS certificate."),
        click.option("--key", type=click.Path(dir_okay=False), default=None, help="Vespa Cloud mTLS private key."),
        click.option("--token", envvar="NEWSREC_VESPA_TOKEN", default=None, show_envvar=True,
                     help="Vespa Cloud data-plane token (never logged)."),
        click.option("--index", "index_dir", default=None,
                     help="Embedded index directory [default: ./newsrec-index]."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("mind_dir", type=click.Path())
@click.option("--model", "model_dir", default=DEFAULT_MODEL_DIR, show_default=True,
              help="Checkpoint of `newsrec train`; when missing, a UniRec model is trained there first.")
@endpoint_options
@click.option("--state", "state_dir", default=None,
              help="Feed state (Φ, counts, resume journals) [default: the index dir, or ./newsrec-feed-state].")
@click.option("--resume", is_flag=True, help="Skip documents an interrupted earlier feed already wrote.")
@click.option("--feed-mode", type=click.Choice(["sync", "async"]), default="sync", show_default=True,
              help="pyvespa client: sync (HTTP/1.1, measured faster here) or async (HTTP/2).")
@click.option("--jsonl", type=click.Path(dir_okay=False), default=None,
              help="Write a `vespa feed` JSONL file instead of sending (the Go CLI feeds fastest).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA + bf16 when present), cpu or cuda.")
@click.option("--skip-bad-rows", is_flag=True, help="Leave out malformed MIND rows (counted and reported).")
def main(mind_dir, model_dir, endpoint, cert, key, token, index_dir, state_dir, resume, feed_mode, jsonl, device,
         skip_bad_rows) -> None:
    """Embed every news item and user of MIND_DIR and feed them to Vespa or the embedded default index.

    \b
    Example:
      newsrec-feed mind-demo                                  # embedded default index in ./newsrec-index
      newsrec-feed mind-demo --endpoint http://localhost:8080 # a Vespa deployment
    """
    try:
        _feed(mind_dir, model_dir, endpoint, cert, key, token, index_dir, state_dir, resume, device, skip_bad_rows,
              feed_mode, jsonl)
    except NewsrecError as error:
        raise click.ClickException(str(error)) from None


def _feed(mind_dir, model_dir, endpoint, cert, key, token, index_dir, state_dir, resume, device, skip_bad_rows,
          feed_mode="sync", jsonl=None):
    from feed.connect import choose_transform, open_backend, state_dir as default_state_dir
    from feed.feeding import embed_corpus, feed_corpus
    from feed.state import read_state, write_state
    from pipeline.mind import read_mind

    started = time.perf_counter()
    dataset = read_mind(mind_dir, on_error="skip" if skip_bad_rows else "raise", progress=True)
    if skip_bad_rows:
        click.echo(f"read {mind_dir}: {dataset.report.summary()}")
    _train_if_missing(mind_dir, model_dir, dataset)
    backend = open_backend(endpoint, index_dir, cert, key, token, feed_mode, jsonl)
    click.echo(f"feeding {backend.description}")
    corpus = embed_corpus(dataset, model_dir, device, Path(model_dir).parent / "cache", progress=True)
    click.echo(f"embedded {len(dataset.news)} news in {corpus.seconds['news']:.1f}s and {len(dataset.users)} users "
               f"in {corpus.seconds['users']:.1f}s")
    directory = default_state_dir(backend, state_dir)
    transform, note = choose_transform(corpus.transform, dataset.news.ids, read_state(directory))
    click.echo(f"Euclidean transform: {note}")
    reports = feed_corpus(replace(corpus, transform=transform), backend, click.echo,
                          journal_dir=directory if resume or endpoint else None, resume=resume)
    write_state(directory, {"max_norm": transform.max_norm, "news_ids": dataset.news.ids, "model": str(model_dir),
                            "backend": backend.description})
    fed = {doctype: report.ok + report.already_fed for doctype, report in reports.items()}
    click.echo(f"done in {time.perf_counter() - started:.0f}s: {fed['news']} of {len(dataset.news)} news and "
               f"{fed['user']} of {len(dataset.users)} users in {backend.description}")
    example = next((u for u, h in zip(dataset.users, corpus.user_history) if len(h)), None)
    if example:
        click.echo(f"try: newsrec recommend {example}{f' --index {index_dir}' if index_dir else ''}")
    if not all(report.success for report in reports.values()):
        failed = sum(len(report.failed) for report in reports.values())
        raise click.ClickException(f"{failed} documents failed (listed above)")


def _train_if_missing(mind_dir: str, model_dir: str, dataset) -> None:
    from pipeline.models.registry import CHECKPOINT_FILE
    from pipeline.training import TrainConfig, train

    if (Path(model_dir) / CHECKPOINT_FILE).is_file():
        return
    click.echo(f"no trained model in {model_dir}/: training UniRec first "
               f"(the same as `newsrec train {mind_dir} --out {model_dir}`)")
    train(mind_dir, model_dir, TrainConfig(), log=click.echo, progress=True, dataset=dataset)


if __name__ == "__main__":
    main()
