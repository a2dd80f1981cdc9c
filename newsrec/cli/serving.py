"""Serving commands: the main job (embed, transform, feed) and the queries (recommend, search, popular)."""
from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import replace

import click

from newsrec.feed.connect import Target
from newsrec.feed.funnel import DEFAULT as DEFAULT_BUDGETS, MAX_RECALL_BUDGET
from newsrec.feed.profiles import DEFAULT_RECOMMENDATION, PROFILES, recommendation_profiles
from newsrec.feed.queries import MAX_HITS, MAX_OFFSET, check_filter_values
from newsrec.cli.base import (CONTEXT, DEFAULT_MODEL_DIR, FALLBACK_EXIT, NewsrecCommand, device_option, echo, json_option, mind_read_options,
                              open_target, parse_filters, secret_file_line, target_options)
from newsrec.cli.output import format_feed, format_groups, format_hits, recommendations_json
from newsrec.pipeline.transforms import DEFAULT_PHI_HEADROOM

READER_TOKEN = "NEWSREC_READER_TOKEN"  # the web page's reader token, when no --reader-token-file

filter_option = click.option("--filter", "filters", multiple=True,
                             help="FIELD=VALUE on category or subcategory; repeatable.")
hits_option = click.option("--hits", type=click.IntRange(min=1, max=MAX_HITS), default=10, show_default=True,
                           help=f"How many news to return (1 to {MAX_HITS}, Vespa's default maxHits).")


def answer(backend, hits: list, filters: dict[str, str], as_json: bool, show_date: bool = False) -> None:
    """Print the hits; an empty answer to a filtered query first checks that each filter value exists (an
    unknown one is an error naming the values there are), and an empty answer says so on stderr."""
    if not hits and filters:
        check_filter_values(backend, filters)
    if not hits and not as_json:
        echo("no hits", err=True)
    echo(format_hits(hits, as_json, show_date))


@click.command("feed", cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("mind_dir", type=click.Path())
@click.option("--model", "model_dir", default=DEFAULT_MODEL_DIR, show_default=True,
              help="Checkpoint of `newsrec train`; when missing, a UniRec model is trained there first.")
@target_options
@click.option("--state", "state_dir", default=None,
              help="A Vespa feed's state (Φ, news fed, resume journals) [default: ./newsrec-feed-state]; the "
                   "embedded index keeps its own.")
@click.option("--resume", is_flag=True,
              help="Vespa: skip documents an interrupted earlier feed wrote (same endpoint, application, model, Φ "
                   "and corpus; a sample is checked on the endpoint first).")
@click.option("--feed-mode", type=click.Choice(["sync", "async"]), default="sync", show_default=True,
              help="pyvespa client: sync (HTTP/1.1, measured faster here) or async (HTTP/2).")
@click.option("--jsonl", type=click.Path(dir_okay=False), default=None,
              help="Write a `vespa feed` JSONL file instead of sending (the Go CLI feeds fastest).")
@click.option("--phi-headroom", type=click.FloatRange(min=0.0), default=DEFAULT_PHI_HEADROOM, show_default=True,
              help="When Φ is set (first feed, or grown): Φ = (1 + H) × the largest news norm, so that later news "
                   "up to Φ fit without re-feeding every news vector.")
@click.option("--reranker", default=None, type=click.Path(),
              help="An UNBERT checkpoint: documents carry its word pieces and the embedded index its ONNX model "
                   "(ranking unbert); for Vespa, build the package with `newsrec app build --reranker DIR`.")
@device_option
@mind_read_options
def feed(mind_dir: str, target: Target, feed_mode: str, jsonl: str | None, **options) -> None:
    """Embed every news item and user of MIND_DIR and feed them to Vespa or the embedded default index.

    The main job; installed as `newsrec-feed` too.

    \b
    Example:
      newsrec-feed mind-demo                                  # embedded default index in ./newsrec-index
      newsrec-feed mind-demo --endpoint http://localhost:8080 # a Vespa deployment
    """
    from newsrec.feed.job import FeedOptions, run_feed

    target = replace(target, feed_mode=feed_mode, jsonl=jsonl)
    summary = run_feed(mind_dir, target, FeedOptions(**options), log=echo, progress=True)
    echo(format_feed(summary, target))
    if not summary.success:
        raise click.ClickException(f"{summary.failed} documents failed (listed above)")


@click.command(cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("user_id")
@hits_option
@filter_option
@click.option("--ranking", type=click.Choice(list(recommendation_profiles())), default=DEFAULT_RECOMMENDATION,
              show_default=True, help="Rank profile: " + "; ".join(f"{name}: {PROFILES[name].description}"
                                                                   for name in recommendation_profiles()) + ".")
@click.option("--offset", type=click.IntRange(min=0, max=MAX_OFFSET), default=0, show_default=True,
              help="Skip this many hits: the next page, from the same candidates.")
@click.option("--recall-budget", type=click.IntRange(min=1, max=MAX_RECALL_BUDGET), default=None,
              help=f"Candidates the user's ranking vector re-ranks [default: {DEFAULT_BUDGETS.recall}; "
                   "on Vespa: the application's query profile].")
@click.option("--rerank-budget", type=click.IntRange(min=1, max=1000), default=None,
              help="N, the hits the cross-encoder re-ranks with --ranking unbert [default: the profile's, 20].")
@json_option
@target_options
def recommend(user_id: str, hits: int, filters: tuple[str, ...], ranking: str, offset: int, recall_budget: int | None,
              rerank_budget: int | None, as_json: bool, target: Target) -> None:
    """Recommend news for a user: nearest neighbours of the recall vector, the best re-ranked, read news excluded.

    A user not in the index gets the popular news instead (the popularity fallback): stderr says so, --json
    has "fallback": "popularity", and the exit status is 3. Exit status: 0 the user's own recommendations,
    3 the fallback, 1 an error (e.g. a malformed user id), 2 bad usage. U1002 is a reader of the Quickstart's
    data (`newsrec demo-data mind-demo --size tiny`).

    \b
    Example:
      newsrec recommend U1002 --hits 5 --filter category=sports
      newsrec recommend U1002 --offset 10 --recall-budget 500
    """
    backend, filters = open_target(target), parse_filters(filters)
    page = backend.recommend(user_id, hits, filters, ranking, offset, recall_budget, rerank_budget)
    if page.fallback:
        echo(f"{user_id} is not in {backend.description}: the popular news stand in (fallback: {page.fallback}; "
             f"exit status {FALLBACK_EXIT})", err=True)
    if as_json:
        echo(recommendations_json(page))
    else:
        answer(backend, page.hits, filters, as_json=False)
    if page.fallback:
        raise click.exceptions.Exit(FALLBACK_EXIT)


@click.command(cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("text", required=False)
@click.option("--user", "user_id", default=None, help="Personalize with this user's ranking vector.")
@hits_option
@filter_option
@click.option("--sort", type=click.Choice(["date"]), default=None, help="Newest first instead of by relevance.")
@click.option("--group-by", type=click.Choice(["category", "subcategory"]), default=None,
              help="Print the number of matches per value of this field instead of hits.")
@json_option
@target_options
def search(text, user_id, hits, filters, sort, group_by, as_json, target: Target) -> None:
    """BM25 search over title and abstract (every news item without TEXT), optionally personalized for a user.

    \b
    Example:
      newsrec search "hurricane flooding" --user U1002
      newsrec search "hurricane" --sort date
      newsrec search --group-by category
    """
    backend, filters = open_target(target), parse_filters(filters)
    if group_by is None:
        answer(backend, backend.search(text, hits, user_id, filters, sort), filters, as_json, show_date=bool(sort))
        return
    counts = backend.group_counts(group_by, text, filters)
    if not counts and filters:
        check_filter_values(backend, filters)
    echo(format_groups(counts, as_json))


@click.command(cls=NewsrecCommand, context_settings=CONTEXT)
@hits_option
@filter_option
@json_option
@target_options
def popular(hits: int, filters: tuple[str, ...], as_json: bool, target: Target) -> None:
    """The most popular news by the popularity profile: 100 × the train CTR, smoothed: (clicks + 1) / (impressions
    + 25).

    \b
    Example:
      newsrec popular --hits 5 --filter category=sports
    """
    backend, filters = open_target(target), parse_filters(filters)
    answer(backend, backend.popular(hits, filters), filters, as_json)


@click.command(cls=NewsrecCommand, context_settings=CONTEXT)
@target_options
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 exposes the page to the network: reader pages then need a token).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--reader-token-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file holding the token that reader pages need (Authorization: Bearer TOKEN); or set "
                   "NEWSREC_READER_TOKEN. Beyond loopback, reader pages are off without one.")
def serve(target: Target, host: str, port: int, reader_token_file: str | None) -> None:
    """A web page over Vespa or the embedded index: readers, history, recommendations with each phase's score,
    search, the popular news; JSON under /api/.

    \b
    Example:
      newsrec serve                                  # the embedded index in ./newsrec-index
      newsrec serve --endpoint http://localhost:8080 --port 8001
      newsrec serve --host 0.0.0.0 --reader-token-file ~/.newsrec-token
    """
    import uvicorn

    from newsrec.web.app import ReaderAccess, create_app

    access = ReaderAccess(reader_token(reader_token_file), is_loopback(host))
    backend = open_target(target)
    if not target.is_vespa and backend.news_count == 0:
        raise click.ClickException(f"{backend.directory}: the index holds no news; run `newsrec-feed MIND_DIR` first")
    if not access.loopback:
        echo(f"newsrec serve: warning: listening on {host}, beyond this machine: " +
             ("reader pages need the token" if access.token else "reader pages are off (no reader token)"), err=True)
    server = uvicorn.Server(uvicorn.Config(create_app(backend, access), log_level="warning"))
    sock = bound_socket(host, port)
    echo(f"newsrec serve: http://{_url_host(host)}:{sock.getsockname()[1]}/ (Ctrl-C to stop)", err=True)
    server.run(sockets=[sock])


def reader_token(path: str | None) -> str | None:
    """The reader token: the file's first line, else NEWSREC_READER_TOKEN, else None; never a command-line value
    (visible in `ps`)."""
    if path:
        token = secret_file_line(path)
    else:
        token = os.environ.get(READER_TOKEN)
    if token is not None and len(token.strip()) < 16:
        raise click.ClickException("the reader token must be at least 16 characters")
    return token.strip() if token else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve beyond this machine


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); port 0 takes a free one, whose number getsockname() gives."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}")
    sock.listen(128)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
