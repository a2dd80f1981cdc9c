"""Tiny-config model tests: shapes, masking, top-P re-normalization, fallbacks, learning on a toy batch."""
from __future__ import annotations

import pytest
import torch
from support import B, D, K, N, features, history_news, models, toy_batch

from newsrec.pipeline.models.content import ContentModel
from newsrec.pipeline.models.mf import MatrixFactorization


@pytest.mark.parametrize("model", models(), ids=lambda m: type(m).__name__)
def test_contract_shapes(model):
    model.eval()
    batch = toy_batch()
    news = model.encode_news(batch.news)
    assert news.shape == (N, D)
    users = model.encode_user(news[batch.history], batch.history_mask, batch.user_index, history_news(model, batch))
    assert users.ranking.shape == (B, D) and users.recall.shape == (B, D)
    assert model(batch).logits.shape == (B, 1 + K)


@pytest.mark.parametrize("model", models(), ids=lambda m: type(m).__name__)
def test_a_few_steps_lower_the_loss_on_a_toy_batch(model):
    from newsrec.pipeline.training import train_step

    torch.manual_seed(0)
    batch = toy_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = [train_step(model, batch, optimizer) for _ in range(30)]
    assert losses[-1] < losses[0] * 0.7


@pytest.mark.parametrize("model", [m for m in models() if not isinstance(m, (ContentModel, MatrixFactorization))],
                         ids=lambda m: type(m).__name__)
def test_padded_history_positions_are_ignored(model):
    model.eval()
    news = model.encode_news(features())
    batch = toy_batch()
    vectors = news[batch.history]
    noisy = vectors.clone()
    noisy[~batch.history_mask] = 100.0  # garbage in every padded slot
    with torch.no_grad():
        clean = model.encode_user(vectors, batch.history_mask, batch.user_index, history_news(model, batch))
        dirty = model.encode_user(noisy, batch.history_mask, batch.user_index, history_news(model, batch))
    assert torch.allclose(clean.ranking, dirty.ranking, atol=1e-5)
    assert torch.allclose(clean.recall, dirty.recall, atol=1e-5)


def test_empty_history_gets_the_learned_fallback_and_scores_still_differ():
    model = models()[0].eval()
    with torch.no_grad():
        model.user_encoder.empty_user.copy_(torch.arange(D, dtype=torch.float32))
        news = model.encode_news(features())
        users = model.encode_user(news[toy_batch().history], toy_batch().history_mask, toy_batch().user_index)
    assert torch.equal(users.ranking[2], model.user_encoder.empty_user)
    scores = news @ users.ranking[2]
    assert torch.isfinite(scores).all() and scores.unique().numel() == N


def test_top_p_keeps_p_bases_renormalized_as_in_eq_4():
    model = models()[0].eval()
    user = torch.randn(B, D)
    logits = user @ model.bases.keys.T
    weights = model.bases.weights(user, top_p=2)
    assert torch.allclose(weights.sum(1), torch.ones(B))
    assert ((weights > 0).sum(1) == 2).all()
    top = torch.topk(logits, 2, dim=1)
    expected = torch.softmax(top.values, dim=1)  # softmax over the kept logits only
    assert torch.allclose(weights.gather(1, top.indices), expected)
    all_bases = model.bases.weights(user, top_p=0)
    assert ((all_bases > 0).sum(1) == 6).all()
    assert torch.allclose(model.bases(user, 2), weights @ model.bases.values)


def test_unirec_trains_over_all_bases_and_serves_top_p():
    model = models()[0]
    news = model.encode_news(features())
    batch = toy_batch()
    model.train()
    train_recall = model.encode_user(news[batch.history], batch.history_mask, batch.user_index).recall
    model.eval()
    serve_recall = model.encode_user(news[batch.history], batch.history_mask, batch.user_index).recall
    assert not torch.allclose(train_recall, serve_recall)


def test_unirec_positions_count_back_from_the_latest_click():
    """Histories are left-aligned, oldest first: position 0 is the latest click for every user, whatever the length
    (issue #34: counted from the oldest, a position meant nothing about recency). Checkpoints saved before keep
    their own positions (the config's default)."""
    from newsrec.pipeline.models.unirec import UniRecConfig, recency

    mask = torch.tensor([[True, True, True, False, False], [True] * 5, [False] * 5])
    assert recency(mask).tolist() == [[2, 1, 0, 0, 0], [4, 3, 2, 1, 0], [0, 0, 0, 0, 0]]
    encoder = models()[0].user_encoder.eval()
    seen = []
    encoder.attention.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    mask = torch.tensor([[True, True, False, False], [True, True, True, False]])  # histories of length 2 and 3
    encoder(torch.zeros(2, 4, D), mask)  # no news signal: the attention's input is the position embeddings
    latest = seen[0][torch.arange(2), mask.sum(1) - 1]  # (2, D) each user's latest click
    assert torch.allclose(latest, encoder.position.weight[0].expand(2, D))
    assert UniRecConfig(news=models()[0].config.news).recency_positions is False


def test_recall_stage_freezes_the_encoders():
    model = models()[0]
    model.set_stage("recall")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"bases.keys", "bases.values"}
    model.train()
    assert not model.news_encoder.training and model.bases.training
    assert model(toy_batch()).logits.shape == (B, 1 + K)


@pytest.mark.parametrize("model", [models()[1], models()[2]], ids=lambda m: type(m).__name__)
def test_unknown_users_get_the_shared_unknown_row(model):
    model.eval()
    news = model.encode_news(features())
    users = model.encode_user(news[toy_batch().history], toy_batch().history_mask, torch.tensor([0, 0, 3]))
    assert torch.equal(users.ranking[0], users.ranking[1]) and not torch.equal(users.ranking[0], users.ranking[2])


def test_mf_scores_unseen_news_with_untrained_vectors():
    model = models()[2]
    assert torch.equal(model.encode_news(features())[3], model.news_embedding.weight[3])


def test_a_kind_missing_from_the_registry_is_named():
    from newsrec.pipeline.models import registry

    with pytest.raises(registry.UnknownModelError, match="unknown model 'nrms'; choose one of unirec"):
        registry.model_class("nrms")


def test_model_options_set_config_fields_by_their_types():
    from newsrec.pipeline.errors import NewsrecError
    from newsrec.pipeline.models.registry import with_options
    from support import fum_config

    config = with_options(fum_config(), (("word_history", "7"), ("dropout", "0.25"), ("tune_words", "true"),
                                         ("recall", "bases")))
    assert (config.word_history, config.dropout, config.tune_words, config.recall) == (7, 0.25, True, "bases")
    with pytest.raises(NewsrecError, match="no option 'colour'.*word_history"):
        with_options(fum_config(), (("colour", "blue"),))
    with pytest.raises(NewsrecError, match="'seven' is not an int"):
        with_options(fum_config(), (("word_history", "seven"),))
    with pytest.raises(NewsrecError, match="no option 'news'"):  # a nested config is not a text value
        with_options(fum_config(), (("news", "x"),))
