"""The model contract has room for the seed models to come: a word-level user model (FUM's shape), a
cross-encoder (UNBERT's shape) and a recall key trained on top of another checkpoint (Recallnet's shape)
train, evaluate and (where they have user vectors) feed through the generic code, registered with one
registry line each. The toy models are in toy_models.py."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from newsrec.pipeline.checkpoint import load_checkpoint
from newsrec.pipeline.evaluation import evaluate_model
from newsrec.pipeline.mind import read_mind
from newsrec.pipeline.models import registry
from newsrec.pipeline.models.contract import ModelConfigError
from newsrec.pipeline.training import TrainConfig, TrainingError, train

pytestmark = pytest.mark.slow  # each test trains a model

TOYS = {"toy_words": "toy_models:WordHistoryModel", "toy_pairs": "toy_models:PairScorer",
        "toy_recall_key": "toy_models:RecallKey"}


@pytest.fixture
def toys(monkeypatch):
    for kind, entry in TOYS.items():
        monkeypatch.setitem(registry.MODELS, kind, entry)


def train_toy(tiny_demo: Path, out: Path, model: str, **options) -> dict:
    config = TrainConfig(model=model, epochs=1, recall_epochs=1, batch_size=64, max_impressions=400, max_history=5,
                         **options)
    return train(tiny_demo, out, config, log=lambda line: None)


def test_a_word_level_user_model_trains_evaluates_and_feeds(toys, tiny_demo: Path, trained: Path, tmp_path: Path):
    from newsrec.feed.feeding import embed_corpus

    out = trained.parent / "toy_words"  # beside the session's model: the LM vector cache is shared
    train_toy(tiny_demo, out, "toy_words")
    checkpoint = load_checkpoint(out)
    assert checkpoint.kind == "toy_words" and checkpoint.model.news_inputs(0).tokens
    evaluation = evaluate_model(out, read_mind(tiny_demo))
    assert 0.0 < evaluation.ranking.auc < 1.0 and set(evaluation.recall) == {"dev-day pool", "all news"}
    corpus = embed_corpus(read_mind(tiny_demo), out)
    assert corpus.user_ranking.shape == (len(corpus.dataset.users), 64) and np.isfinite(corpus.user_ranking).all()


def test_a_cross_encoder_is_scored_pair_by_pair_and_has_nothing_to_feed(toys, tiny_demo: Path, trained: Path):
    from newsrec.feed.feeding import embed_corpus

    out = trained.parent / "toy_pairs"
    train_toy(tiny_demo, out, "toy_pairs")
    dataset = read_mind(tiny_demo)
    evaluation = evaluate_model(out, dataset)
    assert evaluation.ranking.impressions == dataset.splits["dev"].num_impressions - \
        evaluation.ranking.skipped_single_class
    assert 0.0 < evaluation.ranking.auc < 1.0 and evaluation.recall == {}  # no recall vector, no recall lists
    with pytest.raises(ModelConfigError, match="cross-encoder: it has no user vector"):
        embed_corpus(dataset, out)


def test_a_recall_key_trains_on_a_base_checkpoint_and_describes_itself(toys, tiny_demo: Path, trained: Path,
                                                                       tmp_path: Path):
    base_copy = tmp_path / "runs" / "base"
    shutil.copytree(trained, base_copy)
    out = trained.parent / "toy_key"  # beside the session's model: the LM vector cache is shared
    report = train_toy(tiny_demo, out, "toy_recall_key", base=str(base_copy))
    assert [stage["stage"] for stage in report["stages"]] == ["recall"]
    shutil.rmtree(base_copy)  # the key's checkpoint alone rebuilds everything
    key, base = load_checkpoint(out).model, load_checkpoint(trained).model
    assert all(torch.equal(value, key.base.state_dict()[name]) for name, value in base.state_dict().items())
    dataset = read_mind(tiny_demo)
    assert evaluate_model(out, dataset).ranking.auc == pytest.approx(evaluate_model(trained, dataset).ranking.auc)


def test_a_recall_key_reads_what_its_word_level_base_reads(toys, tiny_demo: Path, trained: Path, tmp_path: Path):
    base = trained.parent / "toy_words_base"
    train_toy(tiny_demo, base, "toy_words")
    out = trained.parent / "toy_words_key"
    train_toy(tiny_demo, out, "toy_recall_key", base=str(base))
    key = load_checkpoint(out).model
    assert key.inputs().tokens and key.reads_history_news  # token features and the history's words reach the base
    evaluation = evaluate_model(out, read_mind(tiny_demo))
    assert evaluation.ranking.auc == pytest.approx(evaluate_model(base, read_mind(tiny_demo)).ranking.auc)


def test_base_checkpoints_are_refused_where_they_do_not_belong(toys, tiny_demo: Path, trained: Path,
                                                               tmp_path: Path):
    with pytest.raises(TrainingError, match="toy_recall_key needs a base checkpoint"):
        train_toy(tiny_demo, tmp_path / "a", "toy_recall_key")
    with pytest.raises(TrainingError, match="unirec is not trained on a base checkpoint"):
        train_toy(tiny_demo, tmp_path / "b", "unirec", base=str(trained))


def test_top_p_is_refused_by_models_without_recall_bases(tiny_demo: Path, trained: Path):
    out = trained.parent / "toy_meanpool"
    train(tiny_demo, out, TrainConfig(model="meanpool", epochs=1, batch_size=64, max_impressions=200),
          log=lambda line: None)
    with pytest.raises(ModelConfigError, match="no recall bases: --top-p applies to UniRec"):
        evaluate_model(out, read_mind(tiny_demo), top_p=0)



def test_unirecs_ranking_vector_can_be_the_recall_query(tiny_demo: Path, trained: Path):
    """Issue #34: UniRec's u_ra as the recall query beside its bases: the same ranking, another recall."""
    dataset = read_mind(tiny_demo)
    bases = evaluate_model(trained, dataset)
    ranking = evaluate_model(trained, dataset, recall_by_ranking=True)
    assert ranking.ranking == bases.ranking and ranking.recall != bases.recall
    assert set(ranking.recall) == {"dev-day pool", "all news"}
