"""The Python side and schemas/*.sd agree: every field fed and every query input sent exists there,
with the same type and dimension. (That Vespa accepts the schemas is proven by `mvn test`.)"""
from __future__ import annotations

import pytest

from newsrec.feed import documents, queries
from newsrec.feed.schema import SchemaMismatchError, check_document, check_query_inputs, load_schemas, tensor_size
from support import DIM


@pytest.fixture(scope="module")
def schemas():
    return load_schemas()


def news_doc(**overrides):
    values = dict(news_id="N1", category="sports", subcategory="golf", title="t", abstract="a", url="u",
                  date=20191115, clicks=3, impressions=40, embedding=[0.1] * DIM)
    values.update(overrides)
    return documents.news_document(**values)


def test_every_fed_field_exists_with_its_type(schemas):
    check_document(schemas["news"], news_doc())
    check_document(schemas["news"], news_doc(title_tokens=[2023] + [0] * 31))
    check_document(schemas["user"], documents.user_document("U1", [0.0] * DIM, [0.0] * DIM, ["N1"]))
    check_document(schemas["user"], documents.user_document("U1", [0.0] * DIM, [0.0] * DIM, ["N1"], [1] + [0] * 127))
    check_document(schemas["category_ctr"], documents.category_ctr_document({"sports": 0.05}))
    with_reranker = news_doc(title_tokens=[0] * 32)["fields"]
    # nothing fed is missing, nothing extra; the live fields start at 0 (published: the first sighting), then partial
    # updates write them (feed/live.py)
    assert set(with_reranker) == set(schemas["news"].fields)
    assert set(schemas["news"].fields) - set(news_doc()["fields"]) == {"title_tokens"}
    assert all(news_doc()["fields"][name] == 0 for name in LIVE_FIELDS)


LIVE_FIELDS = {"published", "clicks_decayed", "impressions_decayed", "live_seq", "appeal"}


def test_the_live_fields_are_numbers_of_their_types(schemas):
    news = schemas["news"]
    assert {name: news.fields[name] for name in sorted(LIVE_FIELDS)} == {
        "appeal": "float", "clicks_decayed": "double", "impressions_decayed": "double", "live_seq": "long",
        "published": "long"}
    check_document(news, {"id": "id:news:news::N1", "fields": {"published": 1573257600, "clicks_decayed": 3.5,
                                                                "impressions_decayed": 0, "live_seq": 17,
                                                                "appeal": -0.25}})
    for name, bad in (("published", 1.5), ("clicks_decayed", "3"), ("appeal", True), ("live_seq", "17")):
        with pytest.raises(SchemaMismatchError, match=f"field '{name}' is {news.fields[name]} in schema 'news'"):
            check_document(news, {"id": "id:news:news::N1", "fields": {name: bad}})


def test_builders_write_every_user_field(schemas):
    fields = documents.user_document("U1", [0.0] * DIM, [0.0] * DIM, [], [0] * 128)["fields"]
    assert set(fields) == set(schemas["user"].fields)
    assert set(schemas["user"].fields) - set(documents.user_document("U1", [0.0] * DIM, [0.0] * DIM, [])["fields"]) \
        == {"history_tokens"}


def test_word_piece_fields_have_the_widths_of_the_profile(schemas):
    with pytest.raises(SchemaMismatchError):
        check_document(schemas["news"], news_doc(title_tokens=[1] * 33))
    assert tensor_size(schemas["news"].fields["title_tokens"]) == 32
    assert tensor_size(schemas["user"].fields["history_tokens"]) == 128
    assert schemas["news"].profiles["unbert"]["history_tokens"] == "tensor<float>(d0[128])"


def test_tensor_dimensions_come_from_the_schemas(schemas):
    assert tensor_size(schemas["news"].fields["embedding"]) == DIM
    assert tensor_size(schemas["user"].fields["recall_embedding"]) == DIM
    assert tensor_size(schemas["user"].fields["ranking_embedding"]) == DIM
    for profile in ("recommendation", "personalized_search", "recall"):
        assert tensor_size(schemas["news"].profiles[profile]["user_ranking"]) == DIM


def test_mismatches_are_clear_errors(schemas):
    with pytest.raises(SchemaMismatchError, match=r"document id:news:news::N1: field 'embedding' is "
                                                   r"tensor<float>\(x\[65\]\) in schema 'news'; got 64 values"):
        check_document(schemas["news"], news_doc(embedding=[0.1] * 64))
    bad = news_doc()
    bad["fields"]["popularity"] = 1
    with pytest.raises(SchemaMismatchError, match="field 'popularity' is not in schema 'news'"):
        check_document(schemas["news"], bad)
    bad = news_doc()
    bad["fields"]["clicks"] = "3"
    with pytest.raises(SchemaMismatchError, match="field 'clicks' is int in schema 'news'; got str"):
        check_document(schemas["news"], bad)


def test_mapped_tensor_form_is_checked(schemas):
    with pytest.raises(SchemaMismatchError, match=r"field 'ctrs' is tensor<float>\(category\{\}\)"):
        check_document(schemas["category_ctr"], {"id": "id:news:category_ctr::global",
                                                 "fields": {"ctrs": {"values": [0.1]}}})


def test_non_finite_vectors_are_refused():
    with pytest.raises(documents.DocumentError, match="id:news:news::N1: field 'embedding' has a NaN"):
        news_doc(embedding=[float("nan")] + [0.0] * 64)
    with pytest.raises(documents.DocumentError, match="id:news:user::U1: field 'ranking_embedding'"):
        documents.user_document("U1", [0.0] * DIM, [float("inf")] * DIM, [])


def test_every_query_input_sent_is_declared(schemas):
    news = schemas["news"]
    body = queries.recommend_body([0.0] * DIM, [0.0] * DIM, hits=5, filters={"category": "sports"}, exclude=["N1"])
    check_query_inputs(news, body["ranking"], queries.query_inputs(body))
    assert set(queries.query_inputs(body)) == {"user_recall", "user_ranking"}
    body = queries.search_body("hawks win", ranking_vector=[0.0] * DIM)
    check_query_inputs(news, body["ranking"], queries.query_inputs(body))
    body = queries.search_body("hawks win")
    check_query_inputs(news, body["ranking"], queries.query_inputs(body))


def test_query_mismatches_are_caught(schemas):
    news = schemas["news"]
    with pytest.raises(SchemaMismatchError, match="Vespa refuses it: 400"):
        check_query_inputs(news, "no_such_profile", {})
    with pytest.raises(SchemaMismatchError, match=r"query\(popularity_weight\) is not declared in rank profile 'bm25'"):
        check_query_inputs(news, "bm25", {"popularity_weight": 1.0})
    check_query_inputs(news, "recommendation", {"popularity_weight": 1.0})
    with pytest.raises(SchemaMismatchError, match="got 64"):
        check_query_inputs(news, "recommendation", {"user_ranking": [0.0] * 64})


def test_the_ctr_prior_is_the_same_in_the_schema_and_the_python_ranking(schemas):
    from newsrec.feed import ranking

    for profile in ("popularity", "recommendation", "recommendation_with_global_category_ctr"):
        assert schemas["news"].constants[profile] == {"ctr_prior_clicks": ranking.CTR_PRIOR_CLICKS,
                                                      "ctr_prior_impressions": ranking.CTR_PRIOR_IMPRESSIONS}


def test_profiles_the_issue_asks_for_exist(schemas):
    assert {"recall", "recommendation", "popularity", "bm25", "personalized_search",
            "recommendation_with_global_category_ctr"} <= set(schemas["news"].profiles)


def test_user_input_cannot_inject_yql():
    with pytest.raises(queries.QueryError, match="bad category"):
        queries.recommend_body([0.0] * DIM, [0.0] * DIM, filters={"category": 'x" or true or "'})
    with pytest.raises(queries.QueryError, match="cannot filter on 'title'"):
        queries.search_body("x", filters={"title": "y"})
    with pytest.raises(queries.QueryError, match="bad user id"):
        queries.user_profile_params("U1 or true")
    assert queries.search_body('a" or true')["query"] == 'a" or true'  # text travels as a parameter


def test_the_funnel_budgets_agree_everywhere():
    """feed/funnel.py's budgets = the schema's rerank counts = the default query profile = the searcher's fallbacks
    = feed/ranking.py's; the Vespa exploration (base and per-hit factor) = feed/funnel.py's and feed/exploration.py's."""
    import re
    import xml.etree.ElementTree as ElementTree
    from pathlib import Path

    from newsrec.feed import exploration, funnel, ranking
    from newsrec.feed.funnel import DEFAULT, MAX_RECALL_BUDGET

    root = Path(__file__).resolve().parent.parent
    schema = re.sub(r"#[^\n]*", "", (root / "schemas" / "news.sd").read_text())
    recommendation = schema[schema.index("rank-profile recommendation inherits"):]
    recommendation = recommendation[:recommendation.index("rank-profile", 1)]
    second = re.search(r"second-phase\s*\{[^}]*total-rerank-count:\s*(\d+)", recommendation)
    assert "global-phase" not in recommendation  # a placeholder fetched hits for nothing and refused `order by`
    unbert = re.sub(r"#[^\n]*", "", (root / "schemas" / "news" / "unbert.profile").read_text())
    global_phase = re.search(r"global-phase\s*\{[^}]*rerank-count:\s*(\d+)", unbert)
    assert int(second.group(1)) == DEFAULT.recall == ranking.RERANK_COUNT
    assert int(global_phase.group(1)) == DEFAULT.global_rerank
    application = root / "vespa-app" / "src" / "main"
    profile = ElementTree.parse(application / "application" / "search" / "query-profiles" / "default.xml").getroot()
    fields = {field.get("name"): field.text for field in profile.iter("field")}
    assert int(fields["recall_budget"]) == DEFAULT.recall
    assert "recall_exploration" not in fields  # unset: the searcher follows the corpus size (Exploration.java)
    searcher = (application / "java" / "ai" / "newsrec" / "vespa" / "UserProfileSearcher.java").read_text()
    assert int(re.search(r"DEFAULT_RECALL_BUDGET = (\d+);", searcher).group(1)) == DEFAULT.recall
    assert int(re.search(r"DEFAULT_RECALL_EXPLORATION = ([\d_]+);", searcher).group(1).replace("_", "")) == \
        funnel.VESPA_EXPLORATION
    assert int(re.search(r"PER_HIT = (\d+);", searcher).group(1)) == exploration.PER_HIT
    law = (application / "java" / "ai" / "newsrec" / "vespa" / "Exploration.java").read_text()
    numbers = [[int(n.replace("_", "")) for n in re.search(rf"{name} = \{{([\d_, ]+)\}};", law).group(1).split(",")]
               for name in ("SIZES", "BASES")]
    assert list(zip(*numbers)) == list(exploration.CALIBRATION)
    assert int(re.search(r"MAX_RECALL_EXPLORATION = ([\d_]+);", searcher).group(1).replace("_", "")) == \
        funnel.MAX_EXPLORATION
    assert int(re.search(r"MAX_RECALL_BUDGET = ([\d_]+);", searcher).group(1).replace("_", "")) == MAX_RECALL_BUDGET
