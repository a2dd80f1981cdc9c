"""What the commands print: tables of metrics, evaluations, hits and group counts (text or JSON).

Text for a terminal goes through `terminal_text` (control and format characters of the data — escape
sequences, zero-width and bidi characters — removed; newline and tab kept); JSON through `to_json`
(strict JSON: NaN and infinities become null; non-ASCII and control characters escaped).
"""
from __future__ import annotations

import json
import math

from newsrec.feed.replay import STREAMING_LABEL
from newsrec.pipeline.metrics import METRIC_NAMES, RankingMetrics
from newsrec.pipeline.visible import visible_fields, visible_text



def terminal_text(text: str) -> str:
    """`text` without control characters (but newline and tab) and format characters (zero-width, bidi, BOM)."""
    return visible_text(text)


def to_json(value) -> str:
    """Strict JSON (`allow_nan=False`): NaN and infinite floats, which JSON has no spelling for, become null."""
    return json.dumps(_finite(value), allow_nan=False)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value

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


def format_statistics(statistics: dict) -> str:
    """The MIND statistics `demo-data` keeps (planted.json "statistics"), MIND's own values beside them."""
    s = statistics
    return (f"titles {s['title_words_mean']:.1f} words on average (MIND 11.5); histories median "
            f"{s['history_length_median']:.0f}, mean {s['history_length_mean']:.1f}, {s['empty_history_share']:.1%} "
            f"empty (MIND ~2.4%); candidates per impression median {s['candidates_median']:.0f}, mean "
            f"{s['candidates_mean']:.1f} (MIND 24 / 37); {s['categories']} categories, {s['subcategories']} subcategories")


def format_recall_oracle(recall: dict) -> str:
    """The planted top-K's Recall@K per pool (planted.json "recall_oracle")."""
    pools = "; ".join(f"{pool}: " + ", ".join(f"R@{k} {v:.4f}" for k, v in values.items())
                      for pool, values in recall.items() if isinstance(values, dict))
    return f"recall oracle (planted top-K, {recall['impressions']:,} dev impressions): {pools}"


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


REFERENCE_TITLES = {"random": "random (reference)", "oracle": "oracle (planted truth)"}


def _reference_rows(references: dict[str, RankingMetrics]) -> list[tuple[str, RankingMetrics]]:
    return [(REFERENCE_TITLES.get(name, name), metrics) for name, metrics in references.items()]


def format_evaluation(evaluation, references: dict[str, RankingMetrics] | None = None) -> str:
    """The model's metrics (and per subset), then random and the oracle when the data has a planted truth."""
    lines = [format_table([(evaluation.model, evaluation.ranking)] +
                          [(f"  {name}", metrics) for name, metrics in evaluation.splits.items()] +
                          _reference_rows(references or {}))]
    for pool, values in evaluation.recall.items():
        size = evaluation.pool_sizes.get(pool)
        recalls = ", ".join(f"R@{k} {value:.4f}" for k, value in values.items())
        lines.append(f"recall over {pool}{f' ({size} news)' if size else ''}: {recalls}")
    return "\n".join(lines)


def format_serving(result, references: dict[str, RankingMetrics] | None = None) -> str:
    lines = [format_table([("offline", result.offline), ("serving path", result.served)] +
                          _reference_rows(references or {})),
             f"largest |served - offline| candidate score: {result.max_score_difference:.2e}",
             f"ANN recall@100 vs exact maximum inner product: {result.ann_recall_at_100:.4f} "
             f"({result.ann_queries} users' recall vectors)"]
    return "\n".join(lines)


def hit_json(hit) -> dict:
    return {"news_id": hit.news_id, "relevance": hit.relevance, "fields": visible_fields(hit.fields)}


def recommendations_json(page) -> str:
    """`newsrec recommend --json`: the user, whether the popular news stand in ("fallback"), the hits."""
    return to_json({"user_id": page.user_id, "fallback": page.fallback, "hits": [hit_json(h) for h in page.hits]})


def format_hits(hits, as_json: bool, show_date: bool = False) -> str:
    if as_json:
        return to_json([hit_json(h) for h in hits])
    lines = []
    for rank, hit in enumerate(hits, start=1):
        date = f"{hit.fields.get('date', '')}  " if show_date else ""
        lines.append(f"{rank:>3}. {hit.news_id:<8} {hit.relevance:9.4f}  {date}[{hit.fields.get('category', '')}/"
                     f"{hit.fields.get('subcategory', '')}] {visible_text(hit.fields.get('title', ''))}")
    return "\n".join(lines)


def format_groups(counts: list[tuple[str, int]], as_json: bool) -> str:
    if as_json:
        return to_json(dict(counts))
    width = max((len(value) for value, _ in counts), default=0)
    return "\n".join(f"{value:<{width}}  {count:>6}" for value, count in counts)


def format_feed(summary, target) -> str:
    """The last lines of `newsrec-feed`: what was fed where (and what an earlier, resumed run had fed, its journal
    checked: every id, a sample field by field), and a user to try with the same target."""
    earlier = sum(report.already_fed for report in summary.reports.values())
    text = (f"done in {summary.seconds['total']:.0f}s: {summary.fed['news']} of {summary.news} news and "
            f"{summary.fed['user']} of {summary.users} users in {summary.backend}"
            + (f" ({earlier} of these documents fed by the run resumed, its journal checked: every id at the "
               "endpoint, a sample field by field)"
               if earlier else ""))
    where = f" --endpoint {target.endpoint}" if target.is_vespa else (
        f" --index {target.index_dir}" if target.is_local and target.index_dir else "")
    if summary.example_user and summary.success and target.jsonl is None:
        text += f"\ntry: newsrec recommend {summary.example_user}{where}"
    return text


def format_replay(result: dict, split: str) -> str:
    """`newsrec replay`'s report: the streaming label, the figures, the offline check, the weights served."""
    metrics, check = result["metrics"], result["offline_check"]
    return "\n".join([
        STREAMING_LABEL,
        f"{split}: {result['impressions']:,} impressions: AUC {metrics['auc']:.4f}, MRR {metrics['mrr']:.4f}, nDCG@5 "
        f"{metrics['ndcg5']:.4f}, nDCG@10 {metrics['ndcg10']:.4f}, Recall@100 {result['recall@100']:.4f}",
        f"offline check: largest term difference {check['max_term_difference']:.2e}, largest metric difference "
        f"{check['max_metric_difference']:.2e}",
        "weights served: " + ", ".join(f"{k} {v:.4f}" for k, v in result["weights"].items())])
