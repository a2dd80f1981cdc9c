"""On a CUDA GPU (skipped without one; conftest.py skips every `gpu` test then): training steps and
batched inference run there in bf16 autocast and agree with the CPU's float32 results."""
from __future__ import annotations

import copy

import pytest
import torch
from support import features, models, toy_batch

from newsrec.pipeline.device import pick_device
from newsrec.pipeline.inference import encode_all_news
from newsrec.pipeline.training import train_step

pytestmark = pytest.mark.gpu


def test_auto_picks_cuda():
    assert pick_device("auto").type == "cuda"


@pytest.mark.parametrize("index", range(len(models())), ids=lambda i: type(models()[i]).__name__)
def test_bf16_news_vectors_agree_with_cpu_float32(index: int):
    torch.manual_seed(0)
    model = models()[index].eval()
    on_cpu = encode_all_news(model, features(), torch.device("cpu"))
    on_gpu = encode_all_news(copy.deepcopy(model).cuda(), features(), torch.device("cuda")).cpu()
    assert on_gpu.dtype == torch.float32 and torch.allclose(on_gpu, on_cpu, rtol=5e-2, atol=5e-2)


def test_training_steps_on_cuda_lower_the_loss():
    torch.manual_seed(0)
    model = models()[0].cuda()
    batch = toy_batch()
    batch = type(batch)(batch.news.to(torch.device("cuda")), batch.candidates.cuda(), batch.history.cuda(),
                        batch.history_mask.cuda(), batch.user_index.cuda())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = [train_step(model, batch, optimizer) for _ in range(30)]
    assert losses[-1] < losses[0] * 0.7
