"""What the commands print: tables of metrics, evaluations, hits and group counts (text or JSON)."""
from __future__ import annotations

import json

from pipeline.metrics import METRIC_NAMES, RankingMetrics

METRIC_TITLES = {"auc": "AUC", "mrr": "MRR", "ndcg5": "nDCG@5", "ndcg10": "nDCG@10"}


def format_table(rows: list[tuple[str, RankingMetrics]]) -> str:
    width = max(len("model"), *(len(name) for name, _ in rows))
    header = f"{'model':<{width}}  " + "  ".join(f"{METRIC_TITLES[m]:>7}" for m in METRIC_NAMES) + "  impressions"
    lines = [header, "-" * len(header)]
    for name, metrics in rows:
        values = "  ".join(f"{getattr(metrics, m):7.4f}" for m in METRIC_NAMES)
        skipped = f" ({metrics.skipped_single_class} single-class skipped)" if metrics.skipped_single_class else ""
        lines.append(f"{name:<{width}}  {values}  {metrics.impressions:>11}{skipped}")
    return "\n".join(lines)


def format_dataset(mind_dir: str, dataset, seconds: float) -> str:
    """`newsrec inspect`: counts of news, users and, per split, impressions, candidates and empty histories."""
    lines = [f"{mind_dir}: read in {seconds:.1f}s; {len(dataset.news)} news, {len(dataset.users)} users; "
             f"{dataset.report.summary()}"]
    for name, split in dataset.splits.items():
        history = split.history_offsets
        empty = int((history[1:] == history[:-1]).sum())
        labels = "labelled" if split.labelled else "unlabelled"
        lines.append(f"  {name}: {split.num_impressions} impressions ({labels}), {len(split.candidates)} candidates, "
                     f"{empty} with empty history")
    return "\n".join(lines)


def format_evaluation(evaluation) -> str:
    lines = [format_table([(evaluation.model, evaluation.ranking)] +
                          [(f"  {name}", metrics) for name, metrics in evaluation.splits.items()])]
    for pool, values in evaluation.recall.items():
        size = evaluation.pool_sizes.get(pool)
        recalls = ", ".join(f"R@{k} {value:.4f}" for k, value in values.items())
        lines.append(f"recall over {pool}{f' ({size} news)' if size else ''}: {recalls}")
    return "\n".join(lines)


def format_serving(result) -> str:
    lines = [format_table([("offline", result.offline), ("serving path", result.served)]),
             f"largest |served - offline| candidate score: {result.max_score_difference:.2e}",
             f"ANN recall@100 vs exact maximum inner product: {result.ann_recall_at_100:.4f} "
             f"({result.ann_queries} users' recall vectors)"]
    return "\n".join(lines)


def format_hits(hits, as_json: bool, show_date: bool = False) -> str:
    if as_json:
        return json.dumps([{"news_id": h.news_id, "relevance": h.relevance, "fields": h.fields} for h in hits])
    lines = []
    for rank, hit in enumerate(hits, start=1):
        date = f"{hit.fields.get('date', '')}  " if show_date else ""
        lines.append(f"{rank:>3}. {hit.news_id:<8} {hit.relevance:9.4f}  {date}[{hit.fields.get('category', '')}/"
                     f"{hit.fields.get('subcategory', '')}] {hit.fields.get('title', '')}")
    return "\n".join(lines)


def format_groups(counts: list[tuple[str, int]], as_json: bool) -> str:
    if as_json:
        return json.dumps(dict(counts))
    width = max((len(value) for value, _ in counts), default=0)
    return "\n".join(f"{value:<{width}}  {count:>6}" for value, count in counts)


def format_feed(summary, index_dir: str | None) -> str:
    """The last lines of `newsrec-feed`: what was fed where, and a user to try."""
    text = (f"done in {summary.seconds['total']:.0f}s: {summary.fed['news']} of {summary.news} news and "
            f"{summary.fed['user']} of {summary.users} users in {summary.backend}")
    if summary.example_user:
        text += f"\ntry: newsrec recommend {summary.example_user}{f' --index {index_dir}' if index_dir else ''}"
    return text
