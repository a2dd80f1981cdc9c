"""The main job on the embedded default: newsrec-feed, recommend, search, evaluate --backend local."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from newsrec.feed.backend import FeedReport
from newsrec.feed.funnel import DEFAULT as DEFAULT_BUDGETS
from newsrec.feed.documents import news_document, user_document
from newsrec.feed.local_backend import LocalBackend
from newsrec.feed.queries import QueryError
from newsrec.cli import feed_main, main
from newsrec.pipeline.mind import read_mind
from newsrec.pipeline.transforms import DEFAULT_PHI_HEADROOM
from support import DIM, served_metrics_equal_offline


def test_every_news_item_and_user_is_fed(tiny_demo: Path, fed: Path):
    dataset = read_mind(tiny_demo)
    backend = LocalBackend(fed)
    assert len(backend.docs["news"]) == len(dataset.news) and len(backend.docs["user"]) == len(dataset.users)
    meta = json.loads((fed / "meta.json").read_text())
    assert meta["news_count"] == len(dataset.news) and meta["max_norm"] > 0


def largest_news_norm(index: Path) -> float:
    """The largest |r| of the news fed, from the stored [r, √(Φ² − |r|²)]."""
    return max(float(np.linalg.norm(f["embedding"]["values"][:-1])) for f in LocalBackend(index).docs["news"].values())


def test_phi_has_the_default_headroom(fed: Path):
    meta = json.loads((fed / "meta.json").read_text())
    assert meta["max_norm"] == pytest.approx((1 + DEFAULT_PHI_HEADROOM) * largest_news_norm(fed), rel=1e-5)


def test_phi_headroom_option_sets_phi_and_a_later_feed_keeps_it(tiny_demo: Path, trained: Path, tmp_path: Path):
    index, command = tmp_path / "i", [str(tiny_demo), "--model", str(trained), "--index", str(tmp_path / "i")]
    first = CliRunner().invoke(feed_main, command + ["--phi-headroom", "0.1"])
    assert first.exit_code == 0, first.output
    phi = json.loads((index / "meta.json").read_text())["max_norm"]
    assert phi == pytest.approx(1.1 * largest_news_norm(index), rel=1e-5) and "1.1 × the maximum news norm" in first.output
    again = CliRunner().invoke(feed_main, command)
    assert again.exit_code == 0 and "kept from the earlier feed" in again.output
    assert json.loads((index / "meta.json").read_text())["max_norm"] == phi
    refused = CliRunner().invoke(feed_main, command + ["--phi-headroom", "-1"])
    assert refused.exit_code == 2 and "--phi-headroom" in refused.output


def test_feed_output_counts_and_says_it_is_not_vespa(tiny_demo: Path, trained: Path, tmp_path: Path):
    result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--index", str(tmp_path / "i")])
    dataset = read_mind(tiny_demo)
    assert result.exit_code == 0, result.output
    assert "embedded default index" in result.output and "not Vespa" in result.output
    assert f"{len(dataset.news)} of {len(dataset.news)} news and {len(dataset.users)} of {len(dataset.users)} users" \
        in result.output


def test_recommendations_exclude_read_news_and_keep_filters(tiny_demo: Path, fed: Path):
    backend = LocalBackend(fed)
    user_id, user = next((u, f) for u, f in backend.docs["user"].items() if f["has_read_items"])
    hits = backend.recommend(user_id, 20).hits
    assert len(hits) == 20 and not {h.news_id for h in hits} & set(user["has_read_items"])
    assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)
    category = hits[0].fields["category"]
    filtered = backend.recommend(user_id, 5, {"category": category}).hits
    assert filtered and all(h.fields["category"] == category for h in filtered)


def test_unknown_user_gets_the_popularity_fallback_marked(fed: Path):
    page = LocalBackend(fed).recommend("U_nobody", 3)
    assert page.fallback == "popularity"
    hits = page.hits
    ctrs = [h.fields["matchfeatures"]["ctr"] for h in hits]
    assert len(hits) == 3 and ctrs == sorted(ctrs, reverse=True) and ctrs[0] > 0


def test_recommend_and_search_commands(fed: Path):
    runner = CliRunner()
    user_id = next(iter(LocalBackend(fed).docs["user"]))
    result = runner.invoke(main, ["recommend", user_id, "--hits", "3", "--index", str(fed), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["user_id"] == user_id and answer["fallback"] is None and len(answer["hits"]) == 3
    assert "popular news stand in" not in result.stderr
    title_word = LocalBackend(fed).docs["news"][next(iter(LocalBackend(fed).docs["news"]))]["title"].split()[-1]
    searched = runner.invoke(main, ["search", title_word, "--user", user_id, "--index", str(fed), "--json"])
    assert searched.exit_code == 0 and json.loads(searched.output.splitlines()[-1])
    bad = runner.invoke(main, ["recommend", user_id, "--filter", "category", "--index", str(fed)])
    assert bad.exit_code == 2 and "expected FIELD=VALUE" in bad.output


def test_serving_path_metrics_equal_offline(tiny_demo: Path, trained: Path, fed: Path):
    result = CliRunner().invoke(main, ["evaluate", str(tiny_demo), "--model", str(trained), "--backend", "local",
                                       "--index", str(fed), "--json"])
    assert result.exit_code == 0, result.output
    values = served_metrics_equal_offline(result.output)
    assert values["max_score_difference"] < 1e-4 and values["ann_recall_at_100"] >= 0.99


def test_bad_documents_are_counted_not_dropped(tmp_path: Path):
    backend, report = LocalBackend(tmp_path / "i"), FeedReport()
    good = news_document("N1", "sports", "golf", "t", "a", "u", 20191115, 1, 2, [0.1] * DIM)
    short = news_document("N2", "sports", "golf", "t", "a", "u", 20191115, 1, 2, [0.1] * 64)
    wrong_type = {"id": "id:news:user::U1", "fields": {}}
    backend.feed([good, short, wrong_type], "news", report)
    assert (report.sent, report.ok, len(report.failed)) == (3, 1, 2) and not report.success
    assert report.failed[0][0] == "id:news:news::N2" and "got 64 values" in report.failed[0][2]
    assert "is not of the form id:news:news::<id>" in report.failed[1][2]


def test_reloaded_index_answers_the_same(fed: Path):
    user_id = next(iter(LocalBackend(fed).docs["user"]))
    assert [h.news_id for h in LocalBackend(fed).recommend(user_id, 10).hits] == \
        [h.news_id for h in LocalBackend(fed).recommend(user_id, 10).hits]


def test_user_document_fields(fed: Path):
    user = next(iter(LocalBackend(fed).docs["user"].values()))
    assert len(user["recall_embedding"]["values"]) == DIM and user["recall_embedding"]["values"][-1] == 0.0
    assert user_document("U1", [0.0] * DIM, [0.0] * DIM, ["N1"])["fields"]["has_read_items"] == ["N1"]


# ------------------------------------------------------------------ newsrec-feed against a Vespa stand-in

@pytest.fixture
def vespa_server():
    from newsrec.contract_server import ContractServer

    with ContractServer(hold_s=1.5) as running:
        yield running


def test_feed_to_vespa_sends_every_document_once(tiny_demo: Path, trained: Path, tmp_path: Path, vespa_server):
    dataset = read_mind(tiny_demo)
    first_news = f"id:news:news::{dataset.news.ids[0]}"
    vespa_server.inject(first_news, [429, 503, 500])  # retried, not lost
    result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--endpoint", vespa_server.url,
                                            "--state", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    assert "feeding Vespa at" in result.output
    counts = vespa_server.put_counts
    assert sum(1 for d in counts if ":news::" in d) == len(dataset.news)
    assert sum(1 for d in counts if ":user::" in d) == len(dataset.users)
    assert max(counts.values()) == 1 and "retries 3" in result.output
    user = dataset.users[0]
    recommended = CliRunner().invoke(main, ["recommend", user, "--endpoint", vespa_server.url, "--json"])
    assert recommended.exit_code == 0 and json.loads(recommended.stdout)["hits"]


def test_feed_to_split_clusters_and_serve_from_the_query_cluster(tiny_demo: Path, trained: Path, tmp_path: Path):
    """The application's two container clusters: newsrec-feed writes through the feed cluster (--feed-endpoint),
    recommend reads through the query cluster alone (which has no document/v1: the contract server answers 404)."""
    from newsrec.contract_server import ContractServer

    with ContractServer(cluster="query") as query, ContractServer(cluster="feed", sharing=query) as feed_cluster:
        result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--endpoint", query.url,
                                                "--feed-endpoint", feed_cluster.url, "--state", str(tmp_path / "s")])
        assert result.exit_code == 0, result.output
        user = read_mind(tiny_demo).users[0]
        recommended = CliRunner().invoke(main, ["recommend", user, "--endpoint", query.url, "--json"])
        assert recommended.exit_code == 0, recommended.output
        assert json.loads(recommended.stdout)["hits"] and json.loads(recommended.stdout)["fallback"] is None
        one_url = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--endpoint", query.url,
                                                 "--state", str(tmp_path / "t")])
        assert one_url.exit_code == 1 and "document/v1 answered HTTP 404" in one_url.output
    alone = CliRunner().invoke(main, ["recommend", user, "--feed-endpoint", feed_cluster.url])
    assert alone.exit_code == 2 and "--feed-endpoint needs --endpoint" in alone.output


@pytest.mark.slow
def test_serving_path_metrics_through_vespa_equal_offline(tiny_demo: Path, trained: Path, tmp_path: Path,
                                                          vespa_server):
    """`evaluate --backend vespa`: every dev candidate scored by Vespa's rank profile, and the ANN recall
    measured with nearestNeighbor queries (exact in the contract server, so it must be 1.0)."""
    fed = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--endpoint", vespa_server.url,
                                         "--state", str(tmp_path / "state")])
    assert fed.exit_code == 0, fed.output
    result = CliRunner().invoke(main, ["evaluate", str(tiny_demo), "--model", str(trained), "--backend", "vespa",
                                       "--endpoint", vespa_server.url, "--json"])
    assert result.exit_code == 0, result.output
    values = served_metrics_equal_offline(result.output)
    assert values["ann_recall_at_100"] == pytest.approx(1.0, abs=1e-3) and values["ann_queries"] == 800


def test_a_rejected_document_fails_the_feed_and_is_named(tiny_demo: Path, trained: Path, tmp_path: Path,
                                                          vespa_server):
    news_id = read_mind(tiny_demo).news.ids[3]
    vespa_server.inject(f"id:news:news::{news_id}", [400])
    result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--endpoint", vespa_server.url,
                                            "--state", str(tmp_path / "state")])
    assert result.exit_code == 1
    assert f"FAILED id:news:news::{news_id}: HTTP 400" in result.output and "1 documents failed" in result.output


def test_jsonl_feed_file_for_the_vespa_cli(tiny_demo: Path, trained: Path, tmp_path: Path):
    path = tmp_path / "feed.jsonl"
    result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--jsonl", str(path),
                                            "--state", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    dataset = read_mind(tiny_demo)
    assert len(lines) == 1 + len(dataset.news) + len(dataset.users)
    assert lines[0]["put"] == "id:news:category_ctr::global" and all("fields" in line for line in lines)


# ------------------------------------------------------------------ sorting, grouping, popularity, category CTR

def test_search_sorted_by_date_is_newest_first_with_ties_by_news_id(fed: Path):
    hits = LocalBackend(fed).search(None, 50, sort="date")
    keys = [(-h.fields["date"], h.news_id) for h in hits]
    assert len(hits) == 50 and keys == sorted(keys)
    assert hits[0].fields["date"] == max(f["date"] for f in LocalBackend(fed).docs["news"].values())


def test_group_counts_count_every_match_once(fed: Path):
    backend = LocalBackend(fed)
    counts = backend.group_counts("category")
    assert sum(c for _, c in counts) == len(backend.docs["news"])
    assert [c for _, c in counts] == sorted((c for _, c in counts), reverse=True)
    category = counts[0][0]
    assert backend.group_counts("subcategory", filters={"category": category}) and \
        sum(c for _, c in backend.group_counts("subcategory", filters={"category": category})) == counts[0][1]
    with pytest.raises(QueryError, match="cannot group by 'title'"):
        backend.group_counts("title")


def test_filters_and_groups_follow_the_news_fed_after_them_and_a_rollback(fed: Path, tmp_path: Path):
    """The filter and grouping columns are cached per index: a feed that changes a category replaces them, a
    failed transaction restores the committed ones."""
    index = tmp_path / "index"
    shutil.copytree(fed, index)
    backend = LocalBackend(index)
    news_id, fields = next(iter(backend.docs["news"].items()))
    before = dict(backend.group_counts("category"))
    assert backend.popular(400, filters={"category": "NEWCAT"}) == []  # the columns are made here
    report = FeedReport()
    backend.feed([{"id": f"id:news:news::{news_id}", "fields": {**fields, "category": "newcat"}}], "news", report)
    assert report.success and [h.news_id for h in backend.popular(400, filters={"category": "NEWCAT"})] == [news_id]
    assert dict(backend.group_counts("category"))["newcat"] == 1
    with pytest.raises(RuntimeError), backend.transaction():
        backend.feed([{"id": f"id:news:news::{news_id}", "fields": {**fields, "category": "other"}}], "news",
                     FeedReport())
        assert dict(backend.group_counts("category"))["other"] == 1
        raise RuntimeError("the feed fails")
    assert dict(backend.group_counts("category"))["newcat"] == 1 and "other" not in dict(backend.group_counts("category"))
    assert sum(before.values()) == sum(dict(backend.group_counts("category")).values())


def test_popular_is_100_times_the_smoothed_ctr(fed: Path):
    hits = LocalBackend(fed).popular(5)
    expected = sorted((100 * (f["clicks"] + 1) / (f["impressions"] + 25) for f in LocalBackend(fed).docs["news"].values()),
                      reverse=True)[:5]
    assert [h.relevance for h in hits] == pytest.approx(expected)


def test_one_click_in_one_impression_does_not_rank_first(tmp_path: Path):
    """The prior (1 click in 25 impressions) keeps a lucky single impression below a steady 10% CTR."""
    backend, report = LocalBackend(tmp_path / "i"), FeedReport()
    lucky = news_document("N1", "sports", "golf", "t", "a", "u", 20191115, 1, 1, [0.1] * DIM)
    steady = news_document("N2", "sports", "golf", "t", "a", "u", 20191115, 40, 400, [0.1] * DIM)
    unseen = news_document("N3", "sports", "golf", "t", "a", "u", 20191115, 0, 0, [0.1] * DIM)
    backend.feed([lucky, steady, unseen], "news", report)
    assert [h.news_id for h in backend.popular(3)] == ["N2", "N1", "N3"]
    assert [h.relevance for h in backend.popular(3)] == pytest.approx([100 * 41 / 425, 100 * 2 / 26, 100 * 1 / 25])


def test_recommend_with_global_category_ctr_multiplies_closeness_by_the_category_ctr(fed: Path):
    backend = LocalBackend(fed)
    user_id = next(u for u, f in backend.docs["user"].items() if f["has_read_items"])
    ctrs = backend.docs["category_ctr"]["global"]["ctrs"]["cells"]
    hits = backend.recommend(user_id, 10, ranking="recommendation_with_global_category_ctr").hits
    # the first phase over the funnel's explored neighbours: the best 10 of them by closeness x category CTR
    user = backend.docs["user"][user_id]
    rows, squared = backend.nearest(np.asarray(user["recall_embedding"]["values"]),
                                    DEFAULT_BUDGETS.explored(10, 0, backend.news_count),
                                    backend._allowed(None, user["has_read_items"]))
    product = {backend._news_order[r]: (1 / (1 + np.sqrt(d))) * ctrs[backend._news_fields[r]["category"]]
               for r, d in zip(rows, squared)}
    assert [h.news_id for h in hits] == sorted(product, key=lambda n: -product[n])[:10]
    for hit in hits:
        features = hit.fields["matchfeatures"]
        assert features["category_ctr"] == pytest.approx(ctrs[hit.fields["category"]])
        assert hit.relevance == pytest.approx(features["nearest_neighbor"] * features["category_ctr"])
    assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)


def test_both_backends_answer_the_new_queries_alike(tiny_demo: Path, trained: Path, fed: Path, tmp_path: Path,
                                                    vespa_server):
    """Sorting, grouping, popularity and the category-CTR profile: embedded default vs the Vespa stand-in."""
    from newsrec.feed.vespa_backend import VespaBackend

    result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--endpoint", vespa_server.url,
                                            "--state", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    local, vespa = LocalBackend(fed), VespaBackend(vespa_server.url)
    assert vespa.group_counts("category") == local.group_counts("category")
    assert vespa.group_counts("subcategory", "storm", {"category": "weather"}) == \
        local.group_counts("subcategory", "storm", {"category": "weather"})
    ids = lambda hits: [h.news_id for h in hits]  # noqa: E731
    assert ids(vespa.search(None, 20, sort="date")) == ids(local.search(None, 20, sort="date"))
    assert [h.relevance for h in vespa.popular(10)] == pytest.approx([h.relevance for h in local.popular(10)])
    user_id = next(u for u, f in local.docs["user"].items() if f["has_read_items"])
    profile = "recommendation_with_global_category_ctr"
    served, embedded = vespa.recommend(user_id, 10, ranking=profile).hits, local.recommend(user_id, 10, ranking=profile).hits
    assert ids(served) == ids(embedded)
    assert [h.relevance for h in served] == pytest.approx([h.relevance for h in embedded], rel=1e-5)
    assert vespa_server.requests[-1].params["ranking"] == profile


def test_filtered_nearest_neighbours_are_the_exact_ones(fed: Path):
    """A filter keeping a few % of the news must not make the HNSW search stop short of them."""
    backend = LocalBackend(fed)
    found = total = 0
    for user in list(backend.docs["user"].values())[:60]:
        query = np.asarray(user["recall_embedding"]["values"], dtype=np.float32)
        for category in ("sports", "weather", "finance"):
            allowed = backend._allowed({"category": category}, user["has_read_items"])
            rows = np.flatnonzero(allowed)
            exact = rows[np.argsort(((backend._vectors[rows] - query) ** 2).sum(1), kind="stable")[:10]]
            explored = DEFAULT_BUDGETS.explored(10, 0, backend.news_count)  # as recommend explores
            found += len(set(exact) & set(backend.nearest(query, explored, allowed)[0][:10]))
            total += len(exact)
    assert found / total >= 0.99


def test_an_unknown_reader_is_never_a_silent_fallback(fed: Path):
    """Popular news for a user not in the index, said on stderr, in --json and by exit status 3."""
    runner = CliRunner()
    text = runner.invoke(main, ["recommend", "U1001", "--hits", "3", "--index", str(fed)])
    assert text.exit_code == 3, text.output
    assert text.stderr.splitlines()[-1] == (f"U1001 is not in {LocalBackend(fed).description}: the popular news "
                                            "stand in (fallback: popularity; exit status 3)")
    assert len(text.stdout.splitlines()) == 3
    answer = runner.invoke(main, ["recommend", "U1001", "--hits", "3", "--index", str(fed), "--json"])
    assert answer.exit_code == 3 and json.loads(answer.stdout)["fallback"] == "popularity"
    assert [h["news_id"] for h in json.loads(answer.stdout)["hits"]] == \
        [h.news_id for h in LocalBackend(fed).popular(3)]
    malformed = runner.invoke(main, ["recommend", "U1001'; --", "--index", str(fed)])
    assert malformed.exit_code == 1 and "bad user id" in malformed.output and not malformed.stdout.strip()


def test_evaluate_defaults_to_the_feeds_model_and_prints_the_references(tiny_demo: Path, trained: Path,
                                                                        tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "newsrec-model").symlink_to(trained)
    (tmp_path / "cache").symlink_to(trained.parent / "cache")  # the LM vectors, as beside the trained model
    text = CliRunner().invoke(main, ["evaluate", str(tiny_demo)])
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[2].startswith("unirec ") and any(line.startswith("random (reference) ") for line in lines)
    oracle = next(line for line in lines if line.startswith("oracle (planted truth) "))
    answer = json.loads(CliRunner().invoke(main, ["evaluate", str(tiny_demo), "--json"]).stdout)
    assert set(answer["references"]) == {"random", "oracle"}
    assert f"{answer['references']['oracle']['auc']:7.4f}" in oracle
    assert answer["references"]["random"]["auc"] < answer["ranking"]["auc"] < answer["references"]["oracle"]["auc"]


def test_an_index_without_a_reranker_does_not_offer_unbert(fed: Path):
    assert LocalBackend(fed).rank_profiles() == ("recommendation", "recommendation_with_global_category_ctr", "live")
