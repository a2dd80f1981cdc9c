"""`newsrec-feed MIND_DIR`: embed, transform and feed news and users (issue #5, not built yet)."""
from __future__ import annotations

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("mind_dir", type=click.Path())
def main(mind_dir: str) -> None:
    """Embed every news item and user of MIND_DIR and feed them to Vespa or the embedded index.

    Not built yet: it lands with issue #5. Until then this command exits with status 2.

    \b
    Example:
      newsrec-feed mind-demo
    """
    raise click.UsageError("newsrec-feed is not built yet (issue #5); "
                           "use `newsrec demo-data` and `newsrec baselines` for now")
