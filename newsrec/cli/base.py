"""What every command shares: named errors turned into one-line messages, help with sections by stage,
the options of several commands, and reading a MIND directory."""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import click

from newsrec.cli.output import terminal_text
from newsrec.feed.connect import Target, open_backend
from newsrec.pipeline.errors import NewsrecError, OptionValueError
from newsrec.pipeline.mind import read_mind
from newsrec.pipeline.mind_checks import BadRowLimit

CONTEXT = {"help_option_names": ["-h", "--help"]}
FALLBACK_EXIT = 3  # answered, but with a stand-in (recommend: the popular news for a user not in the index)
PRIVATE_UMASK = 0o077  # what a command creates (index, state, models: read histories) is its owner's alone


class NewsrecCommand(click.Command):
    """Library errors (`NewsrecError`) become `Error: <message>` and exit status 1; usage errors exit 2. Files and
    directories the command creates are private: 0600 and 0700 (umask PRIVATE_UMASK while it runs)."""

    def invoke(self, ctx: click.Context):
        previous = os.umask(PRIVATE_UMASK)
        try:
            return super().invoke(ctx)
        except NewsrecError as error:
            raise click.ClickException(terminal_text(str(error))) from None
        finally:
            os.umask(previous)


class StageGroup(click.Group):
    """A group whose help lists its commands by pipeline stage, in the order they run."""

    def __init__(self, *args, sections: dict[str, list[click.Command]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.sections: dict[str, list[str]] = {}
        for section, commands in (sections or {}).items():
            for command in commands:
                self.add_command(command)
            self.sections[section] = [command.name for command in commands]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in self.commands)
        listed = {name for names in self.sections.values() for name in names}
        others = {"Other": [name for name in self.commands if name not in listed]}
        for section, names in {**self.sections, **others}.items():
            rows = [(name, self.commands[name].get_short_help_str(limit)) for name in names]
            if rows:
                with formatter.section(section):
                    formatter.write_dl(rows)


def echo(text: str, err: bool = False) -> None:
    """Print `text` unless it is empty (an empty result prints nothing, not a blank line), without the control
    and format characters the data may hold (`terminal_text`)."""
    if text:
        click.echo(terminal_text(text), err=err)


COUNT = click.IntRange(min=0)  # seeds, epochs of an optional stage, "0 = all / default" settings
POSITIVE = click.IntRange(min=1)


class PositiveFloat(click.ParamType):
    """A finite number > 0 (a learning rate of 0, a negative one, NaN or infinity cannot train)."""

    name = "float"

    def convert(self, value, param, ctx) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not (math.isfinite(number) and number > 0):
            self.fail(f"{value!r} is not a finite number > 0", param, ctx)
        return number


class BadRowLimitType(click.ParamType):
    """`--max-bad-rows N|P%` as a `pipeline.mind_checks.BadRowLimit`."""

    name = "N|P%"

    def convert(self, value, param, ctx) -> BadRowLimit:
        if isinstance(value, BadRowLimit):
            return value
        try:
            return BadRowLimit.parse(str(value))
        except OptionValueError as error:
            self.fail(str(error), param, ctx)


def mind_read_options(function):
    """--skip-bad-rows, --max-bad-rows and --drop-unknown-ids, given to the command as they are."""
    options = [
        click.option("--skip-bad-rows", is_flag=True,
                     help="Leave out malformed rows (and repair over-long or control-character text) instead of "
                          "stopping; counted and reported."),
        click.option("--max-bad-rows", type=BadRowLimitType(), default=BadRowLimit(),
                     help="With --skip-bad-rows: most bad rows one file may have, N rows or P% of its rows, beyond "
                          "which the read fails [default: 10 rows or 1%, whichever is more]."),
        click.option("--drop-unknown-ids", is_flag=True,
                     help="Leave out history and candidate ids that no news.tsv defines (sampled MIND files), and "
                          "impressions left without a click or a non-click; counted and reported."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@dataclass(frozen=True)
class MindReading:
    """How to read a MIND directory: the three options of `mind_read_options`."""

    skip_bad_rows: bool = False
    max_bad_rows: BadRowLimit = BadRowLimit()
    drop_unknown_ids: bool = False


def read_options(function):
    """`mind_read_options`, given to the command as one `reading` (`MindReading`)."""
    @functools.wraps(function)
    def with_reading(*args, skip_bad_rows, max_bad_rows, drop_unknown_ids, **kwargs):
        return function(*args, reading=MindReading(skip_bad_rows, max_bad_rows, drop_unknown_ids), **kwargs)

    return mind_read_options(with_reading)

DEFAULT_MODEL_DIR = "newsrec-model"  # where `newsrec-feed` trains a model when none is given, and finds it again
model_option = click.option("--model", "model_dir", type=click.Path(), default=DEFAULT_MODEL_DIR, show_default=True,
                            help="Checkpoint directory of `newsrec train` (the default is the one newsrec-feed "
                                 "trains and uses).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
metrics_json_option = click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
device_option = click.option("--device", default="auto", show_default=True,
                             help="auto (CUDA + bf16 when present), cpu or cuda.")


TOKEN_VARIABLE = "NEWSREC_VESPA_TOKEN"


def secret_file_line(path: str) -> str:
    """The first line of a file holding a secret (a token), stripped; "" for an empty file."""
    return (Path(path).read_text(encoding="utf-8").strip().splitlines() or [""])[0].strip()


def vespa_token(token: str | None, token_file: str | None, endpoints: tuple[str | None, ...],
                ctx: click.Context) -> str | None:
    """The data-plane token from --token-file, --token or TOKEN_VARIABLE; a warning on stderr when it was typed on
    the command line (any user sees it in `ps`) or goes to an endpoint over plain http (anyone on the path reads
    it)."""
    typed = token is not None and ctx.get_parameter_source("token") == click.core.ParameterSource.COMMANDLINE
    if token_file is not None:  # over the variable; with --token, refused
        if typed:
            raise click.UsageError("give the token once: --token or --token-file")
        token = secret_file_line(token_file) or None
    elif typed:
        click.echo(f"warning: --token on the command line is visible to every user in `ps`: use {TOKEN_VARIABLE} "
                   "or --token-file", err=True)
    for endpoint in endpoints:
        if token is not None and endpoint is not None and endpoint.lower().startswith("http://"):
            click.echo(f"warning: the token goes to {endpoint} over plain http, readable on the way: use https",
                       err=True)
    return token


def target_options(function):
    """--endpoint/--cert/--key/--token/--index, given to the command as one `target` (feed.connect.Target):
    Vespa when an endpoint is given, else the embedded default index."""
    @functools.wraps(function)
    def with_target(*args, endpoint, feed_endpoint, cert, key, token, token_file, index_dir, **kwargs):
        token = vespa_token(token, token_file, (endpoint, feed_endpoint), click.get_current_context())
        if feed_endpoint is not None and endpoint is None:
            raise click.UsageError("--feed-endpoint needs --endpoint (the query cluster's URL)")
        target = Target(endpoint=endpoint, feed_endpoint=feed_endpoint, index_dir=index_dir, cert=cert, key=key,
                        token=token)
        return function(*args, target=target, **kwargs)

    options = [
        click.option("--endpoint", default=None, help="Vespa endpoint URL, its query cluster (e.g. "
                                                      "http://localhost:8080); without it: the embedded default index."),
        click.option("--feed-endpoint", default=None,
                     help="Vespa's feed cluster (document/v1), e.g. http://localhost:8081 for the single-node package "
                          "[default: --endpoint, one URL serving both]."),
        click.option("--cert", type=click.Path(dir_okay=False), default=None, help="Vespa Cloud mTLS certificate."),
        click.option("--key", type=click.Path(dir_okay=False), default=None, help="Vespa Cloud mTLS private key."),
        click.option("--token", envvar=TOKEN_VARIABLE, default=None, show_envvar=True,
                     help="Vespa Cloud data-plane token (never logged; on the command line it shows in `ps`: prefer "
                          f"{TOKEN_VARIABLE} or --token-file)."),
        click.option("--token-file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="A file holding the Vespa Cloud data-plane token (its first line)."),
        click.option("--index", "index_dir", default=None,
                     help="Embedded index directory [default: ./newsrec-index]."),
    ]
    for option in reversed(options):
        with_target = option(with_target)
    return with_target


def open_target(target: Target):
    """The backend, its banner on stderr (so that it never mixes with JSON output)."""

    backend = open_backend(target)
    echo(f"[{backend.description}]", err=True)
    return backend


def read_dataset(mind_dir: str, reading: MindReading = MindReading(), progress: bool = True):
    """The MIND directory, read and checked; with --skip-bad-rows or --drop-unknown-ids what was left out or
    repaired is reported on stderr."""

    dataset = read_mind(mind_dir, on_error="skip" if reading.skip_bad_rows else "raise", progress=progress,
                        max_bad_rows=reading.max_bad_rows, drop_unknown_ids=reading.drop_unknown_ids)
    if dataset.layout_note:
        echo(f"{mind_dir}: {dataset.layout_note}", err=True)
    if reading.skip_bad_rows or reading.drop_unknown_ids:
        echo(f"read {mind_dir}: {dataset.report.summary()}", err=True)
    return dataset


def require_labelled(dataset, mind_dir: str, split: str) -> None:
    if split not in dataset.splits or not dataset.splits[split].labelled:
        raise click.ClickException(f"{mind_dir}: split {split!r} is missing or unlabelled; choose a labelled split")


def parse_filters(filters: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for item in filters:
        field, sep, value = item.partition("=")
        if not sep or not field or not value:
            raise click.BadParameter(f"{item!r}: expected FIELD=VALUE, e.g. category=sports", param_hint="--filter")
        parsed[field] = value
    return parsed
