"""UNBERT (pipeline/models/unbert.py): its token sequences are Vespa's, its ONNX export scores as torch does,
and the embedded index re-ranks with it in the global phase as evaluation does offline."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from newsrec.feed.reranking import (FUSION, PROFILE_FILE, RerankError, fuse, global_phase, normalize_linear,
                                    profile_settings, reciprocal_rank)
from newsrec.pipeline.models.contract import Batch, ModelConfigError, NewsFeatures
from newsrec.pipeline.models.unbert import CLS, SEP, history_pieces, title_pieces, token_input_ids
from newsrec.pipeline.reranker import OnnxReranker, RerankerError, export_onnx, sample_inputs
from reranker_fixture import FIXTURE_DIR, HISTORY_TOKENS, TITLE_TOKENS, scored_cases, tiny_unbert

NSEP = 1
ROOT = Path(__file__).resolve().parent.parent


def ids(*rows):
    return torch.tensor(rows, dtype=torch.long)


# ----------------------------------------------------------------- token sequences


def test_token_input_ids_are_vespas_cls_first_sep_second_sep_then_zeros():
    sequence, mask, types = token_input_ids(10, ids([5, 6, 0]), ids([NSEP, 7, 8, 0]))
    assert sequence.tolist() == [[CLS, 5, 6, SEP, NSEP, 7, 8, SEP, 0, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 1, 1, 1, 0, 0]]
    assert types.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 0, 0]]


def test_token_input_ids_of_an_empty_history_and_a_cut_sequence():
    sequence, mask, types = token_input_ids(6, ids([5, 6, 0]), ids([0, 0, 0]))
    assert sequence.tolist() == [[CLS, 5, 6, SEP, SEP, 0]] and types.tolist() == [[0, 0, 0, 0, 1, 0]]
    sequence, mask, types = token_input_ids(5, ids([5, 6]), ids([NSEP, 7, 8]))  # 8 ids, cut at 5
    assert sequence.tolist() == [[CLS, 5, 6, SEP, NSEP]] and mask.tolist() == [[1] * 5]
    assert types.tolist() == [[0, 0, 0, 0, 1]]


def test_title_pieces_drop_cls_sep_and_padding():
    tokens = torch.zeros(2, 2, 6, dtype=torch.long)
    tokens[0, 0, :4] = ids([CLS, 11, 12, SEP])
    tokens[1, 0, :6] = ids([CLS, 21, 22, 23, 24, SEP])
    assert title_pieces(tokens, 3).tolist() == [[11, 12, 0], [21, 22, 23]]


def test_history_pieces_are_the_latest_titles_first_with_markers_cut_at_the_budget():
    config = tiny_unbert(history_tokens=8, history_news=5).config
    tokens = torch.zeros(2, 3, 2, 5, dtype=torch.long)  # (B, H, text, T), oldest click first
    for click, words in enumerate(([31, 32], [41], [51, 52, 53])):
        tokens[0, click, 0, :len(words) + 2] = ids([CLS, *words, SEP])
    mask = torch.tensor([[True, True, True], [False, False, False]])
    pieces = history_pieces(tokens, (tokens > 0).long(), mask, config)
    assert pieces[0].tolist() == [NSEP, 51, 52, 53, NSEP, 41, NSEP, 31]  # the oldest title cut by the budget
    assert pieces[1].tolist() == [0] * 8  # no history: no marker either


def test_news_segments_count_the_markers_and_cap_at_history_news():
    scorer = tiny_unbert(history_news=2).scorer
    sequence = ids([CLS, 5, SEP, NSEP, 7, NSEP, 8, NSEP, 9, SEP, 0])
    assert scorer.news_segments(sequence).tolist() == [[0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2]]


# ----------------------------------------------------------------- the model


def test_padding_and_masked_ids_do_not_change_a_score():
    scorer = tiny_unbert().scorer
    short = token_input_ids(40, ids([1100, 1101, 0]), ids([NSEP, 1102, 1103, NSEP, 1104]))
    long = token_input_ids(90, ids([1100, 1101, 0]), ids([NSEP, 1102, 1103, NSEP, 1104]))
    with torch.no_grad():
        a, b = scorer(*short), scorer(*long)
        garbage = long[0].clone()
        garbage[long[1] == 0] = 1150  # an id under a zero mask
        c = scorer(garbage, long[1], long[2])
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(b, c, atol=1e-5)


def test_the_history_words_move_the_score():
    scorer = tiny_unbert().scorer
    with torch.no_grad():
        one = scorer(*token_input_ids(40, ids([1100, 1101]), ids([NSEP, 1102, 1103])))
        other = scorer(*token_input_ids(40, ids([1100, 1101]), ids([NSEP, 1110, 1103])))
    assert not torch.allclose(one, other)


@pytest.mark.parametrize("changes", [{}, {"aggregator": "mean"}, {"aggregator": "nsep"}, {"levels": "word"},
                                     {"levels": "news"}, {"position_embeddings": True}])
def test_forward_scores_every_candidate_of_every_row(changes):
    model = tiny_unbert(**changes)
    news = toy_news()
    batch = Batch(news, candidates=ids([0, 1, 2], [3, 4, 0]), history=ids([3, 4, 0], [0, 0, 0]),
                  history_mask=torch.tensor([[True, True, False], [False, False, False]]),
                  user_index=torch.zeros(2, dtype=torch.long))
    logits = model(batch).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_a_cross_encoder_has_no_vectors_and_refuses_bad_configs():
    model = tiny_unbert()
    assert not model.user_is_cacheable and model.inputs().tokens and not model.inputs().text_vectors
    with pytest.raises(ModelConfigError, match="cross-encoder"):
        model.encode_news(toy_news())
    with pytest.raises(ModelConfigError, match="aggregator"):
        tiny_unbert(aggregator="max")


def toy_news() -> NewsFeatures:
    tokens = torch.zeros(5, 2, 8, dtype=torch.long)
    for row in range(5):
        tokens[row, 0, :row + 4] = ids([CLS, *range(1100 + 5 * row, 1102 + 5 * row + row), SEP])[0, :row + 4]
    return NewsFeatures(news_index=torch.arange(5), text=torch.zeros(5, 2, 0), category=torch.zeros(5, dtype=torch.long),
                        subcategory=torch.zeros(5, dtype=torch.long), entities=torch.zeros(5, 1, dtype=torch.long),
                        tokens=tokens, token_mask=(tokens > 0).long())


# ----------------------------------------------------------------- ONNX


def test_onnx_export_scores_as_torch(tmp_path):
    model = tiny_unbert()
    parity = export_onnx(model, tmp_path / "unbert.onnx")
    assert parity.samples == 16 and parity.max_difference <= 1e-4
    runtime = OnnxReranker(tmp_path / "unbert.onnx", TITLE_TOKENS, HISTORY_TOKENS)
    inputs = sample_inputs(model.config, 5, seed=3)
    with torch.no_grad():
        assert np.abs(runtime.run(*(t.numpy() for t in inputs)) - model.scorer(*inputs).numpy()).max() <= 1e-4


def test_only_a_cross_encoder_exports(tmp_path):
    from support import models

    with pytest.raises(RerankerError, match="not a cross-encoder"):
        export_onnx(models()[0], tmp_path / "x.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(RerankerError, match="bad.onnx: not a loadable ONNX model"):
        OnnxReranker(tmp_path / "bad.onnx", TITLE_TOKENS, HISTORY_TOKENS)


def test_the_java_fixture_is_what_the_pipeline_exports_now(tmp_path):
    """vespa-app's tiny model and expected scores (RerankerPackageTest) are current: onnxruntime gives the cases'
    scores, and a fresh export of the same seeded tiny model gives them too."""
    committed = json.loads((FIXTURE_DIR / "cases.json").read_text())["cases"]
    assert [c["score"] for c in scored_cases(FIXTURE_DIR / "unbert.onnx")] == pytest.approx(
        [c["score"] for c in committed], abs=1e-6)
    export_onnx(tiny_unbert(), tmp_path / "unbert.onnx")
    assert [c["score"] for c in scored_cases(tmp_path / "unbert.onnx")] == pytest.approx(
        [c["score"] for c in committed], abs=1e-5)


def test_the_profile_sequence_fits_the_schema_fields():
    from newsrec.feed.reranking import field_widths

    title, history = field_widths()
    assert (title, history) == (TITLE_TOKENS, HISTORY_TOKENS)
    assert profile_settings().length == 3 + title + history


# ----------------------------------------------------------------- the global phase


def test_global_phase_rescores_the_best_n_and_keeps_the_rest_below_in_order():
    relevance = np.array([0.5, 3.0, 2.0, 1.0, 0.2])
    order = np.argsort(-relevance, kind="stable")  # 1, 2, 3, 0, 4
    new, final = global_phase(relevance, order, np.array([-4.0, 7.0]))
    assert final.tolist() == [2, 1, 3, 0, 4]
    assert new[2] == 7.0 and new[1] == -4.0
    assert max(new[[3, 0, 4]]) <= -4.0  # Vespa's rescaling: the rest stays under the re-scored ones
    assert new[3] > new[0] > new[4]


def test_normalizers_are_vespas():
    values = np.array([1.0, 2.0, 2.0, 0.5, 2.0])
    assert normalize_linear(values).tolist() == pytest.approx([1 / 3, 1.0, 1.0, 0.0, 1.0])
    assert normalize_linear(np.array([0.7, 0.7])).tolist() == [0.5, 0.5]  # all equal: the midpoint
    assert normalize_linear(np.array([1.0, 3.5e38, 0.0]))[[0, 2]].tolist() == [1.0, 0.0]  # beyond float: left out
    assert reciprocal_rank(values).tolist() == pytest.approx([1 / 64, 1 / 61, 1 / 62, 1 / 65, 1 / 63])  # ties: hit order
    assert reciprocal_rank(np.array([np.nan, 1.0])).tolist() == pytest.approx([1 / 62, 1 / 61])


def test_fusion_adds_the_normalized_scores_and_replace_keeps_the_cross_encoders():
    two_tower, cross = np.array([3.0, 2.0, 1.0]), np.array([0.0, 10.0, 5.0])
    assert fuse(two_tower, cross, "replace").tolist() == cross.tolist()
    assert fuse(two_tower, cross, "normalize_linear").tolist() == pytest.approx([1.0, 1.5, 0.5])
    assert fuse(two_tower, cross, "reciprocal_rank").tolist() == pytest.approx([1 / 61 + 1 / 63, 1 / 62 + 1 / 61,
                                                                                1 / 63 + 1 / 62])
    with pytest.raises(RerankError, match="unknown fusion 'max'"):
        fuse(two_tower, cross, "max")


def test_the_profiles_global_phase_is_the_fusion_python_serves():
    text = re.sub(r"#[^\n]*", "", PROFILE_FILE.read_text(encoding="utf-8"))
    expression = re.search(r"global-phase\s*\{\s*expression:\s*([^\n]+)", text).group(1).strip()
    assert FUSION == "normalize_linear"
    assert expression == "normalize_linear(recommendation_score) + normalize_linear(cross_encoder)"
    assert re.search(r"function cross_encoder\(\)\s*\{\s*expression:\s*sum\(onnx\(unbert\)\.score\)", text)


def test_the_java_tests_normalizer_cases_hold_what_python_computes():
    spec = importlib.util.spec_from_file_location("fusion_fixture", ROOT / "tests" / "fusion_fixture.py")
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    assert json.loads(fixture.FIXTURE.read_text(encoding="utf-8"))["cases"] == fixture.cases()


# ----------------------------------------------------------------- through the product


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A one-layer BERT with the default tokenizer: any Hugging Face directory works as UNBERT's LM."""
    from transformers import BertConfig, BertModel

    from newsrec.pipeline.text_encoder import load_tokenizer

    path = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = load_tokenizer("default")
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=192)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def unbert_checkpoint(tiny_demo, tiny_lm, tmp_path_factory):
    from click.testing import CliRunner

    from newsrec.cli import main

    out = tmp_path_factory.mktemp("unbert")
    result = CliRunner().invoke(main, ["train", str(tiny_demo), "--out", str(out), "--model", "unbert", "--epochs", "1",
                                       "--batch-size", "16", "--max-impressions", "40", "--lr", "1e-3",
                                       "--text-model", str(tiny_lm), "--model-option", "history_tokens=48",
                                       "--model-option", "title_tokens=20", "--threads", "2"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def reranked_index(tiny_demo, trained, unbert_checkpoint, tmp_path_factory):
    from click.testing import CliRunner

    from newsrec.cli import feed_main

    index = tmp_path_factory.mktemp("reranked") / "index"
    result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--index", str(index),
                                            "--reranker", str(unbert_checkpoint)])
    assert result.exit_code == 0, result.output
    return index


def test_an_unbert_checkpoint_describes_itself_and_evaluates_pair_by_pair(tiny_demo, unbert_checkpoint):
    from click.testing import CliRunner

    from newsrec.cli import main
    from newsrec.pipeline.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(unbert_checkpoint)
    assert checkpoint.kind == "unbert" and checkpoint.model.config.history_tokens == 48
    assert checkpoint.model.config.lm["hidden_size"] == 16  # rebuilt from the checkpoint alone
    result = CliRunner().invoke(main, ["evaluate", str(tiny_demo), "--model", str(unbert_checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    assert 0.0 <= json.loads(result.output.splitlines()[-1])["ranking"]["auc"] <= 1.0


def test_fed_title_pieces_come_from_the_rerankers_own_tokenizer(tiny_demo, reranked_index, unbert_checkpoint):
    from newsrec.feed.local_backend import LocalBackend
    from newsrec.pipeline.checkpoint import load_checkpoint
    from newsrec.pipeline.mind import read_mind
    from newsrec.pipeline.text_encoder import load_tokenizer

    checkpoint = load_checkpoint(unbert_checkpoint)
    tokenizer = load_tokenizer(checkpoint.text.model)
    news = read_mind(tiny_demo).news
    backend = LocalBackend(reranked_index)
    for row in (0, 7, len(news) - 1):
        pieces = tokenizer(news.title[row])["input_ids"][1:-1][:checkpoint.model.config.title_tokens]
        fed = backend.docs["news"][news.ids[row]]["title_tokens"]["values"]
        assert fed == pieces + [0] * (TITLE_TOKENS - len(pieces))


def test_the_embedded_global_phase_serves_torchs_scores(tiny_demo, trained, unbert_checkpoint, reranked_index):
    from newsrec.feed.local_backend import LocalBackend
    from newsrec.feed.serving_eval import evaluate_funnel
    from newsrec.pipeline.mind import read_mind

    result = evaluate_funnel(trained, unbert_checkpoint, read_mind(tiny_demo), LocalBackend(reranked_index),
                             rerank_budgets=(1, 5), sample=12)
    assert result.impressions == 12 and result.pairs > 12
    assert result.max_rerank_difference <= 1e-4
    assert set(result.reranked) == {1, 5}


def test_recommend_with_unbert_reranks_the_best_n_of_the_funnel(reranked_index, tiny_demo):
    from newsrec.feed.local_backend import LocalBackend
    from newsrec.pipeline.mind import read_mind

    backend = LocalBackend(reranked_index)
    user = next(u for u in read_mind(tiny_demo).users if any(backend.docs["user"][u]["history_tokens"]["values"]))
    plain = backend.recommend(user, hits=10).hits
    reranked = backend.recommend(user, hits=10, ranking="unbert", rerank_budget=5).hits
    assert {h.news_id for h in reranked[:5]} == {h.news_id for h in plain[:5]}  # the same best 5, re-ordered
    assert [h.news_id for h in reranked[5:]] == [h.news_id for h in plain[5:]]  # the rest keeps its order
    history = backend.docs["user"][user]["history_tokens"]["values"]
    cross = backend.rerank_scores(history, [h.news_id for h in reranked[:5]])
    two_tower = [h.fields["matchfeatures"]["recommendation_score"] for h in reranked[:5]]
    assert [h.relevance for h in reranked[:5]] == pytest.approx(fuse(np.array(two_tower), np.array(cross)), abs=1e-6)
    assert max(h.relevance for h in reranked[:5]) <= 2.0 and min(h.relevance for h in reranked[:5]) >= 0.0
    with pytest.raises(RerankError, match="rerank_budget"):
        backend.recommend(user, ranking="unbert", rerank_budget=0)


def test_unbert_ranking_without_a_reranker_is_a_clear_error(tiny_demo, trained, tmp_path):
    from click.testing import CliRunner

    from newsrec.cli import feed_main, main

    index = tmp_path / "index"
    assert CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--index", str(index)]).exit_code == 0
    result = CliRunner().invoke(main, ["recommend", "U1097", "--index", str(index), "--ranking", "unbert"])
    assert result.exit_code == 1 and f"{index} has no re-ranker, which rank profile unbert needs" in result.output


def test_a_reranked_feed_reaches_vespa_with_its_word_pieces(tiny_demo, trained, unbert_checkpoint, tmp_path):
    from click.testing import CliRunner

    from newsrec.cli import feed_main
    from newsrec.contract_server import ContractServer

    with ContractServer() as server:
        result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(trained), "--endpoint", server.url,
                                                "--state", str(tmp_path / "state"), "--reranker", str(unbert_checkpoint)])
        documents = server.app.documents
    assert result.exit_code == 0, result.output
    assert "newsrec app build --reranker" in result.output  # the package must carry the model
    news = [d for key, d in documents.items() if ":news::" in str(key)]
    users = [d for key, d in documents.items() if ":user::" in str(key)]
    assert news and all(len(d["title_tokens"]["values"]) == TITLE_TOKENS for d in news)
    assert users and all(len(d["history_tokens"]["values"]) == HISTORY_TOKENS for d in users)


def test_a_tokenizer_whose_cls_and_sep_are_not_vespas_is_refused(tmp_path):
    from transformers import BertTokenizerFast

    from newsrec.feed.reranking import require_vespa_special_ids
    from newsrec.feed.schema import SchemaMismatchError

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "news"]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(tmp_path / "lm")  # [CLS] = 2, [SEP] = 3
    with pytest.raises(SchemaMismatchError, match=r"\[CLS\] and \[SEP\] are 2 and 3; Vespa's tokenInputIds inserts 101"):
        require_vespa_special_ids(str(tmp_path / "lm"), "the-reranker")
    require_vespa_special_ids("default", "the-reranker")  # all-MiniLM-L6-v2's BERT vocabulary


def test_unbert_over_news_fed_without_tokens_is_refused_by_name(reranked_index, tiny_demo, tmp_path):
    import shutil

    from newsrec.feed.backend import FeedReport
    from newsrec.feed.local_backend import LocalBackend
    from newsrec.pipeline.mind import read_mind

    index = shutil.copytree(reranked_index, tmp_path / "index")
    backend = LocalBackend(index)
    user = next(u for u in read_mind(tiny_demo).users if any(backend.docs["user"][u]["history_tokens"]["values"]))
    best = backend.recommend(user, hits=1).hits[0].news_id
    fields = {k: v for k, v in backend.docs["news"][best].items() if k != "title_tokens"}
    report = FeedReport()
    backend.feed([{"id": f"id:news:news::{best}", "fields": fields}], "news", report)  # re-fed without the re-ranker
    assert report.success, report.failed
    with pytest.raises(RerankError, match=f"news {best} has no title_tokens"):
        LocalBackend(index).recommend(user, hits=10, ranking="unbert", rerank_budget=5)
