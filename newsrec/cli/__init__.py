"""`newsrec`: the command line. Thin: each command parses its options, calls one library function of
`pipeline/` or `feed/`, and prints what it returns.

Library code raises `NewsrecError`s; only the command line turns them into one-line messages and exit
codes (1 for bad input or a failed job, 2 for bad usage, as click does; 3, `FALLBACK_EXIT`, for an answer with a
stand-in). Commands by stage:

- data: demo-data, inspect, baselines, score (newsrec/cli/data.py)
- models: train, evaluate, predict (newsrec/cli/models.py)
- serving: feed (also installed as `newsrec-feed`), recommend, search, popular, serve (the web page:
  newsrec/web/) (newsrec/cli/serving.py), replay (newsrec/cli/replay.py)
- application: app build (newsrec/cli/app.py)
"""
from __future__ import annotations

import click

from newsrec.cli.app import app
from newsrec.cli.base import CONTEXT, StageGroup
from newsrec.cli.data import baselines, demo_data, inspect, score
from newsrec.cli.models import evaluate_command, predict_command, train_command
from newsrec.cli.replay import replay_command, train_ranker_command
from newsrec.cli.serving import feed, popular, recommend, search, serve

SECTIONS = {
    "Data": [demo_data, inspect, baselines, score],
    "Models": [train_command, evaluate_command, predict_command, train_ranker_command],
    "Serving": [feed, recommend, search, popular, serve, replay_command],
    "Vespa application": [app],
}


@click.group(cls=StageGroup, sections=SECTIONS, context_settings=CONTEXT)
@click.version_option(package_name="newsrec", message="newsrec %(version)s")
def main() -> None:
    """newsrec: from MIND to a Vespa-served, personalized news service.

    Exit status: 0 done; 1 bad input or a failed job (one line says why); 2 bad usage; 3 answered with a
    stand-in (`recommend` for a user not in the index: the popular news, said on stderr and in --json).

    \b
    Example:
      newsrec demo-data mind-demo --size tiny
      newsrec baselines mind-demo
    """


feed_main = feed  # the `newsrec-feed` entry point: the main job on its own

