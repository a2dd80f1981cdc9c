"""FUM: the word-level document of the latest clicks, the Fastformer layer's masking and linear global
attention, empty histories, determinism, and a word-level interest that mean-pool cannot see."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from support import NEWS_ENCODER, D, fum_config, history_news, served_metrics_equal_offline, toy_batch

from newsrec.pipeline.metrics import ranking_metrics
from newsrec.pipeline.models.contract import Batch, NewsFeatures
from newsrec.pipeline.models.fum import FUM, FastformerLayer, latest_clicks
from newsrec.pipeline.models.meanpool import MeanPoolConfig, MeanPoolModel
from newsrec.pipeline.training import train_step


def user_of(model: FUM, batch: Batch):
    news = model.encode_news(batch.news)
    return model.encode_user(news[batch.history], batch.history_mask, batch.user_index, history_news(model, batch))


def test_latest_clicks_reads_the_latest_titles_latest_first_and_masks_the_rest():
    tokens = torch.arange(1, 1 + 2 * 4 * 2 * 3).view(2, 4, 2, 3)  # (B=2, H=4, 2 texts, T=3)
    token_mask = torch.ones_like(tokens)
    history_mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)  # 3 clicks, 1 click
    ids, mask = latest_clicks(tokens, token_mask, history_mask, clicks=2, width=2)
    assert ids[0].tolist() == [tokens[0, 2, 0, :2].tolist(), tokens[0, 1, 0, :2].tolist()]  # titles only
    assert ids[1, 0].tolist() == tokens[1, 0, 0, :2].tolist() and mask[1, 1].sum() == 0 and ids[1, 1].sum() == 0


def test_abstract_pieces_follow_each_title_when_asked_for():
    model = FUM(fum_config(abstract_words=3)).eval()
    batch = toy_batch()
    tokens, mask = model._document(history_news(model, batch), batch.history_mask)
    assert tokens.shape == (3, 3, 4 + 3)
    latest = batch.history[1, 4]  # row 1's latest click
    assert tokens[1, 0, :4].tolist() == (batch.news.tokens[latest, 0, :4] * batch.news.token_mask[latest, 0, :4]).tolist()
    assert tokens[1, 0, 4:].tolist() == (batch.news.tokens[latest, 1, :3] * batch.news.token_mask[latest, 1, :3]).tolist()
    with torch.no_grad():
        assert user_of(model, batch).ranking.shape == (3, D)


def test_fastformer_ignores_masked_positions_and_mixes_the_unmasked_ones():
    torch.manual_seed(0)
    layer = FastformerLayer(8, 2, dropout=0.0).eval()
    x = torch.randn(2, 7, 8)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    noisy = x.clone()
    noisy[0, 4:] = 50.0
    assert torch.allclose(layer(x, mask)[0, :4], layer(noisy, mask)[0, :4], atol=1e-5)
    changed = x.clone()
    changed[1, 6] = torch.randn(8)  # one position moves the global query and key, hence every output
    assert not torch.allclose(layer(x, mask)[1, 0], layer(changed, mask)[1, 0], atol=1e-4)


def test_padded_word_pieces_are_ignored():
    model = FUM(fum_config()).eval()
    batch = toy_batch()
    noisy = batch.news.tokens.masked_fill(batch.news.token_mask == 0, 7)  # garbage ids behind the mask
    dirty = Batch(NewsFeatures(**{**batch.news.__dict__, "tokens": noisy}), batch.candidates, batch.history,
                  batch.history_mask, batch.user_index)
    with torch.no_grad():
        assert torch.allclose(user_of(model, batch).ranking, user_of(model, dirty).ranking, atol=1e-6)


def test_an_empty_history_gets_the_learned_vector():
    model = FUM(fum_config()).eval()
    with torch.no_grad():
        model.empty_user.copy_(torch.arange(D, dtype=torch.float32))
        users = user_of(model, toy_batch())  # row 2 of the toy batch has no click
    assert torch.equal(users.ranking[2], model.empty_user) and torch.isfinite(users.recall).all()


def test_the_user_vector_is_the_recall_query_unless_the_bases_are_asked_for():
    model = FUM(fum_config()).eval()
    with torch.no_grad():
        users = user_of(model, toy_batch())
        assert torch.equal(users.recall, users.ranking)
        model.set_top_p(2)
        bases = user_of(model, toy_batch())
    assert torch.equal(bases.ranking, users.ranking) and not torch.allclose(bases.recall, users.recall)
    assert torch.allclose(bases.recall, model.bases(users.ranking, 2))


def test_without_the_clicked_words_fum_refuses():
    model = FUM(fum_config()).eval()
    batch = toy_batch()
    news = model.encode_news(batch.news)
    with pytest.raises(Exception, match="word pieces"):
        model.encode_user(news[batch.history], batch.history_mask, batch.user_index)


def test_training_is_deterministic_on_cpu():
    def trained() -> torch.Tensor:
        torch.manual_seed(0)
        model = FUM(fum_config(tune_words=True))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(3):
            train_step(model, toy_batch(), optimizer)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(trained(), trained())


# ----------------------------------------------------------------- a word-level interest

CATEGORIES, HISTORY, NEGATIVES = 4, 5, 3


def word_world(rng: np.random.Generator, users: int) -> Batch:
    """Fresh news every call (nothing to memorize). Each history holds one title with a signal word 1 + j
    (at a random place, among random words 10..49), and the user clicks the candidate of category j over
    one candidate of each other category. Categories, text vectors and entities of the clicked news are
    random: the interest is visible only in the words of the history."""
    per_user = HISTORY + 1 + NEGATIVES
    count = users * per_user
    tokens = rng.integers(10, 50, (count, 2, 6))
    signal = rng.integers(0, CATEGORIES, users)
    history_rows = np.arange(count).reshape(users, per_user)[:, :HISTORY]
    carrier = history_rows[np.arange(users), rng.integers(0, HISTORY, users)]
    tokens[carrier, 0, rng.integers(0, 6, users)] = 1 + signal
    category = rng.integers(0, CATEGORIES, count)
    candidates = np.arange(count).reshape(users, per_user)[:, HISTORY:]
    others = np.array([[c for c in range(CATEGORIES) if c != s] for s in signal])
    category[candidates[:, 0]] = signal
    category[candidates[:, 1:]] = others
    news = NewsFeatures(news_index=torch.arange(count), text=torch.from_numpy(rng.normal(size=(count, 2, 6))).float(),
                        category=torch.from_numpy(category), subcategory=torch.zeros(count, dtype=torch.long),
                        entities=torch.zeros(count, 3, dtype=torch.long), tokens=torch.from_numpy(tokens),
                        token_mask=torch.ones(count, 2, 6, dtype=torch.long))
    return Batch(news, torch.from_numpy(candidates), torch.from_numpy(history_rows),
                 torch.ones(users, HISTORY, dtype=torch.bool), torch.zeros(users, dtype=torch.long))


def auc_after_training(model, steps: int = 300) -> float:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    for _ in range(steps):
        train_step(model, word_world(rng, 64), optimizer)
    model.eval()
    test = word_world(np.random.default_rng(1), 400)
    with torch.no_grad():
        scores = model(test).logits.numpy()
    labels = np.zeros_like(scores)
    labels[:, 0] = 1
    return ranking_metrics(labels.ravel(), scores.ravel(), np.arange(0, scores.size + 1, scores.shape[1])).auc


def test_fum_learns_an_interest_planted_in_the_history_words_which_mean_pool_cannot_see():
    torch.manual_seed(0)
    fum = FUM(fum_config(words_per_news=6, word_history=HISTORY, tune_words=True))
    meanpool = MeanPoolModel(MeanPoolConfig(news=NEWS_ENCODER))
    fum_auc, meanpool_auc = auc_after_training(fum), auc_after_training(meanpool)
    assert fum_auc > 0.9, fum_auc
    assert meanpool_auc < 0.6, meanpool_auc


# ----------------------------------------------------------------- through the product: train, evaluate, feed

@pytest.fixture(scope="module")
def fum_checkpoint(tiny_demo, trained):
    from click.testing import CliRunner

    from newsrec.cli import main

    out = trained.parent / "fum"  # beside the session's model: the LM vector cache is shared
    result = CliRunner().invoke(main, ["train", str(tiny_demo), "--out", str(out), "--model", "fum", "--epochs", "1",
                                       "--recall-epochs", "1", "--batch-size", "64", "--max-impressions", "600",
                                       "--threads", "2"])
    assert result.exit_code == 0, result.output
    return out


def test_a_fum_checkpoint_describes_itself_and_is_served_like_unirec(tiny_demo, fum_checkpoint, tmp_path):
    from click.testing import CliRunner

    from newsrec.cli import feed_main, main
    from newsrec.pipeline.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(fum_checkpoint)
    assert checkpoint.kind == "fum" and checkpoint.model.config.word_init == "lm"
    assert checkpoint.model.inputs().tokens and checkpoint.model.inputs().text_vectors
    index = tmp_path / "index"
    fed = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(fum_checkpoint), "--index", str(index)])
    assert fed.exit_code == 0, fed.output
    result = CliRunner().invoke(main, ["evaluate", str(tiny_demo), "--model", str(fum_checkpoint), "--backend", "local",
                                       "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    served_metrics_equal_offline(result.output)


def test_a_fum_checkpoint_feeds_vespa(tiny_demo, fum_checkpoint, tmp_path):
    from click.testing import CliRunner

    from newsrec.cli import feed_main
    from newsrec.contract_server import ContractServer
    from newsrec.pipeline.mind import read_mind

    dataset = read_mind(tiny_demo)
    with ContractServer() as server:
        result = CliRunner().invoke(feed_main, [str(tiny_demo), "--model", str(fum_checkpoint), "--endpoint", server.url,
                                                "--state", str(tmp_path / "state")])
        counts = server.put_counts
    assert result.exit_code == 0, result.output
    assert sum(1 for d in counts if ":user::" in d) == len(dataset.users)
    assert sum(1 for d in counts if ":news::" in d) == len(dataset.news)
