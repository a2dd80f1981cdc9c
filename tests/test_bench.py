"""The benchmark suite's baselines compute what newsrec computes (so the ratios compare like with like),
and the runner renders BENCHMARKS.md from saved results."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from newsrec.bench import bench_metrics, bench_users
from newsrec.bench import run as bench_run
from newsrec.bench.common import growth_exponent, growth_verdict
from newsrec.pipeline.metrics import ranking_metrics


def test_sklearn_loop_baseline_agrees_with_newsrec_metrics():
    labels, scores, offsets = bench_metrics.mind_small_dev(300)
    ours = ranking_metrics(labels, scores, offsets)
    bench_metrics.require_agreement(bench_metrics._values(ours), bench_metrics.sklearn_loop(labels, scores, offsets),
                                    1e-12, "test")


def test_both_sides_skip_single_class_impressions_and_a_disagreement_publishes_no_ratio():
    """World v2's dev has impressions without a click: newsrec skips them (its documented policy) and so must the
    baseline, else sklearn's nan made the row print "158× (metrics agree: False)"."""
    labels, scores, offsets = bench_metrics.mind_small_dev(50)
    labels[offsets[3]:offsets[4]] = 0  # an impression without a click
    ours = bench_metrics._values(ranking_metrics(labels, scores, offsets))
    reference = bench_metrics.sklearn_loop(labels, scores, offsets)
    assert ours[-1] == reference[-1] == 1
    bench_metrics.require_agreement(ours, reference, 1e-12, "test")
    with pytest.raises(SystemExit, match="no ratio"):
        bench_metrics.require_agreement(ours, (*reference[:-1], 0), 1e-12, "test")
    assert "No ratio" in bench_metrics._serving_table({"agree": False, "impressions": 1, "ours_s": 1,
                                                        "per_query_s": 9})


def test_one_user_at_a_time_gives_the_batched_vectors():
    device = torch.device("cpu")
    model, news = bench_users.model_and_news(device)
    behaviors = bench_users.histories(40)
    rows = np.zeros(40, np.int64)
    batched = bench_users.encode_users(model, news, behaviors, np.arange(40), rows, 50, device)[0]
    single = torch.cat([bench_users.encode_users(model, news, behaviors, np.array([i]), rows, 50, device)[0]
                        for i in range(40)])
    assert torch.allclose(batched, single, atol=1e-5)
    assert np.diff(behaviors.history_offsets).max() > 50  # some histories are cut to the model's 50


def test_per_article_loop_gives_the_batched_vectors():
    from newsrec.bench import bench_embed
    from newsrec.pipeline.text_encoder import encode_texts, load_language_model

    tokenizer, model = load_language_model("default")
    texts = ["Storm floods the valley", "A longer headline about a football match and its result", "Markets slide"]
    batched = encode_texts(texts, tokenizer, model, 32, 2, torch.device("cpu"))
    assert np.allclose(bench_embed.per_article_loop(texts, tokenizer, model, 32, torch.device("cpu")), batched,
                       atol=1e-5)


def test_growth_verdict_flags_worse_than_linear():
    assert growth_verdict(growth_exponent([1e3, 1e4, 1e5], [1.0, 10.0, 100.0])) == "linearly"
    assert "faster than linearly" in growth_verdict(growth_exponent([1e3, 1e4], [1.0, 100.0]))


def test_document_renders_saved_rows_and_names_missing_ones(tmp_path):
    saved = {"machine": {"cores": 2, "cpu": "test cpu", "memory_gib": 1, "gpu": None, "torch": "x", "torch_threads": 2,
                         "numpy": "y", "python": "z", "date": "2026-01-01"},
             "impressions": 10, "rows": 100, "ours_s": 0.01, "ours_repeats": 5, "loop_s": 1.0, "agree": True,
             "serving": {"impressions": 10, "rows": 100, "ours_s": 0.1, "per_query_s": 2.0, "agree": True,
                         "skipped_single_class": 0},
             "seconds": 3.0, "quick": False}
    (tmp_path / "metrics.json").write_text(json.dumps(saved))
    document = bench_run.render_document(tmp_path)
    assert "**100.0×** (target ≥ 20×)" in document and "**20×**" in document
    assert "test cpu" in document
    assert "Not measured yet: `python3 bench/run.py ann`" in document


def test_the_funnel_without_a_budget_limit_ranks_like_the_offline_scores(tiny_demo, trained, tmp_path):
    """bench_funnel's served metrics: with R = every news item, the funnel re-ranks them all, so its dev metrics
    are the offline ones; a budget of 10 loses candidates (lower phase-1 recall is impossible: R = 10 is exact)."""
    from newsrec.bench import bench_funnel

    served = bench_funnel.Served(str(tiny_demo), str(trained), str(tmp_path / "index"), impressions=40)
    everything = bench_funnel.funnel_row(served, served.backend.news_count)
    offline = bench_funnel.offline_metrics(served)
    assert everything["recall"] == 1.0
    assert np.allclose([everything[k] for k in ("auc", "mrr", "ndcg5", "ndcg10")],
                       [offline[k] for k in ("auc", "mrr", "ndcg5", "ndcg10")], atol=1e-9)
    narrow = bench_funnel.funnel_row(served, 10)
    assert narrow["auc"] != everything["auc"] and 0 < narrow["recall"] <= 1


def test_ann_study_measures_the_law_and_the_old_exploration_on_a_tiny_corpus():
    from newsrec.bench import bench_ann
    from newsrec.feed.exploration import explore

    news, users = bench_ann.synthetic_vectors(1_500, 20, dim=8)
    data = bench_ann.measure(news, users, (10, 20), (20, 1_500))
    law, old = data["budgets"][0]["law"], data["budgets"][0]["old"]
    assert (law["explored"], old["explored"]) == (explore(10, 1_500), 200)
    assert all(0.0 <= row[kind]["recall"] <= 1.0 for row in data["budgets"] for kind in ("law", "old"))
    assert data["sweep"][-1]["explored"] == 1_500 and data["sweep"][-1]["recall"] > 0.95  # the whole corpus


def test_ann_study_renders_its_table_and_names_a_missed_target():
    from newsrec.bench import bench_ann

    searched = {"budget": 100, "explored": 4_000, "recall": 0.95, "qps": 100.0}
    entry = {"size": 100_000, "queries": 10, "build_s": 12.0, "source": "generated", "sweep": [searched],
             "budgets": [{"law": searched, "old": {**searched, "explored": 2_000, "qps": 200.0}}]}
    text = bench_ann.render({"links": 16, "explore_at_insert": 200, "sizes": [entry], "quick": True})
    assert "| 100,000 | 100 | 4,000 | 0.9500 | 100 | 2,000 | 0.9500 | 200 | 2.00× | 12 s |" in text
    assert "(target ≥ 0.99: **not met**, 0.0400 short; no E of the sweep reached it (E = 4,000: 0.9500 at 100 queries/s))" in text
    assert "| 100,000 | 4,000 | 0.9500 | 100 |" in text  # the sweep


def test_the_model_table_ends_with_the_oracle_decomposition_and_the_recall_oracle(tmp_path):
    from newsrec.bench.model_table import markdown
    from newsrec.pipeline.baselines import planted_summary
    from newsrec.pipeline.demo_data import config_for, generate

    generate(tmp_path, config_for("tiny", 0))
    text = markdown([], planted_summary(tmp_path))
    assert "| oracle: + drift |" in text and "| oracle: full (+ residual) |" in text
    assert "| recall oracle (planted top-K, 800 dev impressions) |" in text
    assert markdown([], None).count("\n") == 1  # world v1 / real data: the header only


def test_the_entity_impressions_are_where_the_entity_component_ranks(tmp_path):
    from newsrec.bench.model_table import entity_oracle_rows, markdown
    from newsrec.pipeline.baselines import ENTITY_SPLIT, entity_split, oracle_scores
    from newsrec.pipeline.demo_data import config_for, generate
    from newsrec.pipeline.evaluation import evaluate_scores
    from newsrec.pipeline.mind import read_mind

    generate(tmp_path, config_for("tiny", 0))
    mask, parts = entity_split(tmp_path)
    dataset = read_mind(tmp_path)
    assert len(mask) == dataset.splits["dev"].num_impressions and 0 < mask.mean() < 0.5
    oracle = entity_oracle_rows(dataset, (mask, parts))
    assert oracle["entity"].auc > max(0.6, oracle["topic"].auc)  # there the entity component ranks best
    row = evaluate_scores("oracle", dataset, "dev", oracle_scores(dataset, "dev"), impression_splits={ENTITY_SPLIT: mask})
    assert row.splits[ENTITY_SPLIT].impressions <= mask.sum()
    text = markdown([row], None, oracle)
    assert "AUC entity imp." in text and "| oracle: entity alone, on the entity impressions only |" in text


def test_the_recall_bench_searches_a_pools_graph_and_maps_its_rows_back():
    """bench/bench_recallnet.py's graph over one pool: on a corpus smaller than the funnel's exploration it must
    find exactly the pool's maximum-inner-product news, as news rows of the whole corpus."""
    import numpy as np
    import torch

    from newsrec.bench.bench_recallnet import Graph
    from newsrec.pipeline.inference import top_k_inner_product

    rng = np.random.default_rng(0)
    news, queries = rng.standard_normal((300, 8)).astype(np.float32), rng.standard_normal((5, 8)).astype(np.float32)
    pool = np.sort(rng.permutation(300)[:120])
    found = Graph(news, pool).search(queries, 10)
    assert np.array_equal(found, top_k_inner_product(torch.from_numpy(queries), torch.from_numpy(news), 10, pool))


def test_the_gpu_script_measures_each_part_at_toy_sizes_and_renders_not_measured_without_a_gpu_run():
    from newsrec.bench import bench_gpu

    device = torch.device("cpu")
    news = bench_gpu.news_embedding(device, 24)
    assert news["news"] == 24 and news["tokens_per_s"] > news["news_per_s"] > 0 and news["share_of_peak"] is None
    assert bench_gpu.users(device, 300)["users_per_s"] > 0
    assert bench_gpu.rerank_latency(device, quick=True)["10"]["median_ms"] > 0
    assert "**Not measured**" in bench_gpu.render(None)
    data = {"machine": bench_gpu.machine(), "gpu": "a device", "seconds": 1.0, "news_embedding": news,
            "users": {"users": 300, "seconds": 0.1, "users_per_s": 3000.0},
            "training": {"UniRec, cached LM vectors": {"batch_size": 8, "clicks_per_s": 5.0}},
            "rerank": {"10": {"median_ms": 1.0, "max_ms": 2.0}}}
    text = bench_gpu.render(data)
    assert "24 news in" in text and "peak unknown" in text and "| 10 | 1.00 ms | 2.00 ms |" in text


def test_the_seed_table_gives_intervals_and_paired_differences_against_mean_pool():
    """bench/model_table.py --seeds N: mean ± 95% interval per row and the difference against mean-pool seed by seed,
    starred only where its interval excludes 0 (issue #34)."""
    from newsrec.bench.model_table import seed_markdown, seed_summary
    from newsrec.pipeline.evaluation import Evaluation
    from newsrec.pipeline.metrics import RankingMetrics

    def row(name, auc, recall):
        return Evaluation(name, RankingMetrics(auc, 0.3, 0.3, 0.4, 100, 0), recall={"dev-day pool": {100: recall}})

    shared = [0.01, -0.02, 0.015]  # what a seed does to both models (the data order, say)
    seeded = {s: [row("meanpool", 0.67 + d, 0.09), row("unirec (top-P)", 0.672 + d, 0.09 + d)]
              for s, d in enumerate(shared)}
    summary = seed_summary(seeded)
    assert summary["meanpool"]["AUC"]["n"] == 3 and "paired vs meanpool" not in summary["meanpool"]
    paired = summary["unirec (top-P)"]["paired vs meanpool"]
    assert paired["AUC"]["mean"] == pytest.approx(0.002) and paired["AUC"]["half_width"] < 1e-9
    assert summary["unirec (top-P)"]["AUC"]["half_width"] > 0.01  # unpaired, the seeds' spread hides it
    table = seed_markdown(seeded)
    assert "| unirec (top-P) | 0.6737 ± " in table and "+0.0020 ± 0.0000*" in table
    assert "+0.0017 ± " in table and "0.0017 ± 0.0" in table and table.count("*") == 1  # R@100: not established


def test_a_model_on_a_base_trains_the_base_first_with_the_same_seed(tmp_path, monkeypatch):
    """bench/model_table.py: recallnet trains on UniRec's checkpoint, recallnet@meanpool on mean-pool's, each base
    with the model's seed and in that seed's directory (issue #34: Recallnet compared in mean-pool's vector space)."""
    from argparse import Namespace

    from newsrec.bench import model_table

    calls = []

    def fake_train(mind, out, config, dataset=None):
        calls.append((out.name, config.model, config.seed, config.base and type(out)(config.base).name))
        return {"stages": []}

    monkeypatch.setattr(model_table, "train", fake_train)
    args = Namespace(reuse=False, epochs=3, recall_epochs=2, size="medium")
    model_dir, _ = model_table.trained("recallnet@meanpool", 2, tmp_path, tmp_path / "mind", None, args)
    model_table.trained("recallnet", 0, tmp_path, tmp_path / "mind", None, args)
    assert model_dir == tmp_path / "runs" / "recallnet@meanpool-seed2"
    assert calls == [("meanpool-seed2", "meanpool", 2, ""), ("recallnet@meanpool-seed2", "recallnet", 2, "meanpool-seed2"),
                     ("unirec", "unirec", 0, ""), ("recallnet", "recallnet", 0, "unirec")]


def test_the_seeded_table_shows_a_dash_for_a_metric_a_row_lacks():
    """A cross-encoder (UNBERT) has no recall vector: its R@100 is NaN, shown "—", the other rows' intervals stand."""
    from newsrec.bench.model_table import seed_markdown
    from newsrec.pipeline.evaluation import Evaluation
    from newsrec.pipeline.metrics import RankingMetrics

    def row(name, auc, recall):
        return Evaluation(name, RankingMetrics(auc, 0.3, 0.3, 0.4, 100, 0),
                          recall={"dev-day pool": {100: recall}} if recall else {})

    seeded = {s: [row("meanpool", 0.67 + d, 0.09), row("unbert", 0.68 + d, None)] for s, d in enumerate([0, 0.01, 0.02])}
    lines = seed_markdown(seeded).splitlines()
    unbert = next(line for line in lines if line.startswith("| unbert |"))
    assert unbert.count("—") == 2 and "+0.0100 ± 0.0000*" in unbert  # its R@100 and ΔR@100; ΔAUC paired
