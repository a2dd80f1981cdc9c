"""Every registered model trains on the tiny world with its defaults in bounded memory (issue 29, item 8:
`newsrec train mind-demo --out m --model unbert` took the 24 GiB machine's whole memory: UNBERT's batch of
128 clicks × 5 candidates went through the LM in one autograd graph, ~66 MB a pair; `train_step` now runs it as
slices of the model's `pairs_per_pass` pairs whose gradients add up to the batch's).

Each model trains through the CLI in a fresh Python (`bench.common.child_peak`: VmHWM, which restarts at exec,
read when the run is done; training forks no process) with every default: batch size, negatives, history
length, token budgets, the LM, epochs. UNBERT alone is capped in length, not in what a step holds: one epoch
on the latest `UNBERT_IMPRESSIONS` train impressions, which still give a full batch of 128 clicks (640 pairs) and
a validation of ~400 pairs. Its uncapped defaults take about 2 hours on 2 CPU cores (3 epochs of 24 batches,
~85 s a batch, each epoch validated on ~7,600 pairs at ~30 pairs/s) at the same peak (2.5 GiB, measured over
their first batches: a step's memory does not depend on the step count, nor on the data's size). Recallnet
trains on the session's UniRec checkpoint (`trained`)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from newsrec.bench.common import child_peak
from newsrec.pipeline.models.contract import Batch, NewsFeatures
from newsrec.pipeline.models.registry import MODELS, model_class
from newsrec.pipeline.training import train_step

CEILING_MIB = 4096
UNBERT_IMPRESSIONS = 120  # 108 train impressions (145 clicks: a full batch of 128) and 12 validation ones
CAPS = {"unbert": ["--epochs", "1", "--max-impressions", str(UNBERT_IMPRESSIONS)]}

TRAIN = """
import json, sys
base = hwm()
from newsrec.cli import main
main(sys.argv[1:], prog_name="newsrec", standalone_mode=False)
print(json.dumps({"peak_kib": hwm(), "base_kib": base}))
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One directory for every model's checkpoint, as the Quickstart's runs/: the first model to train
    (unirec) computes the LM's news vectors, the others reuse them from runs/cache/."""
    return tmp_path_factory.mktemp("memory-runs")


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(MODELS))
def test_every_model_trains_with_its_defaults_under_the_memory_ceiling(kind: str, tiny_demo: Path, runs: Path,
                                                                        request: pytest.FixtureRequest):
    base = ["--from", str(request.getfixturevalue("trained"))] if model_class(kind).needs_base else []
    run = child_peak(TRAIN, "train", str(tiny_demo), "--out", str(runs / kind), "--model", kind, *base,
                     *CAPS.get(kind, []))
    assert (runs / kind / "model.pt").is_file()
    assert run["peak_mib"] < CEILING_MIB, f"{kind}: peak {run['peak_mib']:.0f} MiB"


def test_a_batch_in_slices_takes_the_step_of_the_whole_batch():
    """UNBERT's batch run as slices of one row (3 pairs a pass) or in one pass: the same loss and the same weights
    after the optimizer's step (dropout off, so that both passes compute the same function)."""
    from transformers import BertConfig

    from newsrec.pipeline.models.unbert import _plain
    from reranker_fixture import tiny_unbert

    lm = _plain(BertConfig(vocab_size=1200, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=192, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0).to_dict())
    results = []
    for pieces in (10_000, 163 * 3):  # L = 32 + 128 + 3: the whole batch, then one row (3 candidates) a pass
        model = tiny_unbert(lm=lm, pieces_per_pass=pieces)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        loss = train_step(model, toy_batch(), optimizer)
        results.append((model.pairs_per_pass, loss, torch.cat([p.detach().flatten() for p in model.parameters()])))
    (whole, whole_loss, whole_weights), (sliced, sliced_loss, sliced_weights) = results
    assert whole >= 12 and sliced == 3
    assert sliced_loss == pytest.approx(whole_loss, rel=1e-6)
    assert torch.allclose(sliced_weights, whole_weights, atol=1e-6)


def toy_batch() -> Batch:
    """4 rows of 3 candidates over 6 news with word pieces 1100..1199, histories of 0 to 3 clicks."""
    generator = torch.Generator().manual_seed(0)
    tokens = torch.zeros(6, 2, 8, dtype=torch.long)
    for row in range(6):
        words = torch.randint(1100, 1200, (row + 1,), generator=generator)  # 1 to 6 pieces
        tokens[row, 0, :row + 3] = torch.cat([torch.tensor([101]), words, torch.tensor([102])])
    zeros = torch.zeros(6, dtype=torch.long)
    news = NewsFeatures(news_index=torch.arange(6), text=torch.zeros(6, 2, 0), category=zeros, subcategory=zeros,
                        entities=zeros[:, None], tokens=tokens, token_mask=(tokens > 0).long())
    history = torch.tensor([[3, 4, 5], [0, 1, 0], [2, 0, 0], [0, 0, 0]])
    return Batch(news, candidates=torch.tensor([[0, 1, 2], [3, 4, 5], [5, 0, 1], [2, 3, 4]]), history=history,
                 history_mask=torch.tensor([[True, True, True], [True, True, False], [True, False, False],
                                            [False, False, False]]), user_index=torch.zeros(4, dtype=torch.long))
