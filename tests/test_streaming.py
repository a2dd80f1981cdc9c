"""Users embedded in chunks equal users embedded at once; the feed's per-user outputs are what a plain loop
over every impression gives (latest impression per user, histories)."""
from __future__ import annotations

import numpy as np
import torch

from newsrec.pipeline.encoding import encode_dataset
from newsrec.pipeline.inference import encode_users
from newsrec.pipeline.mind import read_mind


def test_chunked_user_embedding_equals_unchunked(tiny_demo, trained):
    encoded = encode_dataset(trained, read_mind(tiny_demo), "cpu")
    dev = encoded.dataset.splits["dev"]
    impressions = np.arange(dev.num_impressions)[::-1].copy()  # any order, one impression more than once
    impressions = np.concatenate([impressions, impressions[:3]])
    rows = encoded.users(dev, impressions[:0]).ranking  # no users: an empty (0, 0) result
    assert rows.shape[0] == 0

    def users(batch_size):
        return encode_users(encoded.checkpoint.model, encoded.news_matrix, dev, impressions,
                            np.zeros(dev.num_impressions, dtype=np.int64), encoded.checkpoint.max_history,
                            torch.device("cpu"), batch_size=batch_size)

    whole, chunked = users(100_000), users(7)
    assert whole[0].shape == (len(impressions), encoded.news_matrix.shape[1])
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert a.abs().sum() > 0


def test_candidate_scores_in_chunks_equal_one_pass(tiny_demo, trained, monkeypatch):
    from newsrec.pipeline import inference

    encoded = encode_dataset(trained, read_mind(tiny_demo), "cpu")
    dev = encoded.dataset.splits["dev"]
    impressions = np.arange(dev.num_impressions)
    users = encoded.users(dev, impressions)
    whole = inference.candidate_scores(encoded.news_matrix, users.ranking, dev, impressions)
    monkeypatch.setattr(inference, "SCORE_ROWS", 100)
    chunked = inference.candidate_scores(encoded.news_matrix, users.ranking, dev, impressions)
    assert len(whole[0]) > 10 * 100
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)


def test_the_feeds_users_are_each_users_latest_impression(tiny_demo, trained):
    from newsrec.feed.feeding import _embed_users

    encoded = encode_dataset(trained, read_mind(tiny_demo), "cpu")
    ranking, recall, histories = _embed_users(encoded)
    dataset = encoded.dataset
    latest = {}
    for name, behaviors in dataset.splits.items():  # the plain loop: later impressions overwrite earlier ones
        for impression in np.argsort(behaviors.time, kind="stable"):
            latest[int(behaviors.user_index[impression])] = (name, int(impression))
    assert len(histories) == len(dataset.users) and len(latest) > 10
    for user in range(len(dataset.users)):
        if user not in latest:
            assert len(histories[user]) == 0 and not ranking[user].any()
            continue
        name, impression = latest[user]
        np.testing.assert_array_equal(histories[user], dataset.splits[name].history_of(impression))
        expected = encoded.users(dataset.splits[name], np.array([impression]))
        np.testing.assert_allclose(ranking[user], expected.ranking[0].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(recall[user], expected.recall[0].numpy(), rtol=1e-5, atol=1e-6)
    assert [len(h) for h in histories[2:5]] == [len(histories[u]) for u in (2, 3, 4)]
