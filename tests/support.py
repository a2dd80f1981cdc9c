"""Helpers shared by the tests (fixtures are in conftest.py): a hand-written four-news MIND corpus,
writing TSV files, the serving dimension of the schemas, and tiny-config models with a toy batch."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from newsrec.pipeline.models.content import ContentConfig, ContentModel
from newsrec.pipeline.models.contract import Batch, NewsFeatures
from newsrec.pipeline.models.fum import FUM, FUMConfig
from newsrec.pipeline.models.layers import NewsEncoderConfig
from newsrec.pipeline.models.meanpool import MeanPoolConfig, MeanPoolModel
from newsrec.pipeline.models.mf import MatrixFactorization, MFConfig
from newsrec.pipeline.models.unirec import UniRec, UniRecConfig

DIM = 65  # serving dimension D = 64, plus the Euclidean-transform coordinate (schemas/*.sd: x[65])

ENTITY = json.dumps([{"Label": "Riverton Hawks", "Type": "O", "WikidataId": "Q90000001", "Confidence": 1.0,
                      "OccurrenceOffsets": [0], "SurfaceForms": ["Riverton Hawks"]}])
NEWS = [
    ["N1", "sports", "football_nfl", "Riverton Hawks win again", "A close game.", "https://x/1", ENTITY, "[]"],
    ["N2", "finance", "markets", "Stocks slide on earnings", "", "https://x/2", "[]", ""],
    ["N3", "news", "newsus", "Town council votes on budget", "The vote was close.", "https://x/3", "[]", "[]"],
    ["N4", "sports", "golf", "Golfer leads after first round", "Windy day.", "https://x/4", "[]", "[]"],
]
TRAIN = [
    ["1", "U1", "11/9/2019 9:05:58 AM", "N1 N3", "N2-0 N4-1"],
    ["2", "U2", "11/10/2019 3:12:01 PM", "", "N1-1 N2-0 N3-0"],
]
DEV = [["1", "U1", "11/15/2019 12:00:00 PM", "N1 N3 N4", "N2-1 N4-0"]]


def write_tsv(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(row) + "\n" for row in rows), encoding="utf-8")
    return path


# ----------------------------------------------------------------- tiny-config models

D, N, B, H, K = 8, 12, 3, 5, 4
NEWS_ENCODER = NewsEncoderConfig(text_dim=6, num_categories=4, num_subcategories=5, num_entities=7, dim=D, hidden_dim=16,
                         category_dim=4, entity_dim=4, dropout=0.0)


WORDS, T = 50, 6  # word-piece vocabulary and tokens per text of the toy features


def features(n: int = N) -> NewsFeatures:
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, T + 1, (n, 2), generator=generator)
    token_mask = (torch.arange(T) < lengths[..., None]).long()  # (n, 2, T)
    return NewsFeatures(news_index=torch.arange(n), text=torch.randn(n, 2, 6, generator=generator),
                        category=torch.randint(0, 4, (n,), generator=generator),
                        subcategory=torch.randint(0, 5, (n,), generator=generator),
                        entities=torch.randint(0, 7, (n, 3), generator=generator),
                        tokens=torch.randint(1, WORDS, (n, 2, T), generator=generator) * token_mask,
                        token_mask=token_mask)


def fum_config(**changes) -> FUMConfig:
    values = dict(news=NEWS_ENCODER, word_vocab=WORDS, word_dim=6, words_per_news=4, word_history=3, heads=2,
                  pool_window=5, num_bases=6, top_p=2, dropout=0.0, word_init="random")
    return FUMConfig(**{**values, **changes})


def history_news(model, batch: Batch) -> NewsFeatures | None:
    """What `score_candidates` passes to encode_user: the clicked news' features for a word-level model."""
    return batch.news.select(batch.history) if model.reads_history_news else None


def models():
    return [UniRec(UniRecConfig(news=NEWS_ENCODER, heads=2, max_history=H, num_bases=6, top_p=2, dropout=0.0,
                                recency_positions=True)),
            ContentModel(ContentConfig(news=NEWS_ENCODER, num_users=4)),
            MatrixFactorization(MFConfig(num_users=4, num_news=N, dim=D)),
            MeanPoolModel(MeanPoolConfig(news=NEWS_ENCODER)),
            seeded(lambda: FUM(fum_config()))]


def seeded(build):
    torch.manual_seed(0)
    return build()


def toy_batch() -> Batch:
    candidates = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 0, 1, 2]])
    history = torch.tensor([[5, 6, 0, 0, 0], [1, 2, 3, 4, 11], [0, 0, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    return Batch(features(), candidates, history, mask, torch.tensor([1, 2, 3]))


def served_metrics_equal_offline(output: str) -> dict:
    """The `evaluate --backend ... --json` result (its last line), after checking that the metrics of the
    serving path equal the offline ones."""
    import pytest

    values = json.loads(output.splitlines()[-1])
    for metric in ("auc", "mrr", "ndcg5", "ndcg10"):
        assert values["served"][metric] == pytest.approx(values["offline"][metric], abs=1e-6)
    return values
