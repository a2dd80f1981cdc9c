"""Training throughput of UniRec's ranking stage: cached (frozen) LM vectors vs fine-tuning the LM's top
layers, same data, same batches, same process.

    python3 bench/run.py training       # recorded in BENCHMARKS.md
    python3 bench/bench_training.py --quick

Data: `demo-data --size small` (generated into bench/out/small/mind when missing). In cached mode the
LM vectors are random arrays of the real shape (N, 2, 384): a step's cost does not depend on their
values, and computing the real ones is the embedding row's subject. Fine-tuning reads token ids and
runs all-MiniLM-L6-v2 over every distinct news item of the batch (its top layers with gradients).
Rates are training impressions per second: one epoch's impressions over its time, estimated from
the first timed steps after one warm-up step.
"""
from __future__ import annotations

import numpy as np
import torch

from newsrec.bench.common import OUT, machine, row_main, table, timed
from newsrec.pipeline.demo_data import config_for, generate
from newsrec.pipeline.device import pick_device
from newsrec.pipeline.features import model_news_features, news_features, user_rows
from newsrec.pipeline.mind import read_mind
from newsrec.pipeline.models.contract import ModelSettings, NewsInputs
from newsrec.pipeline.models.registry import new_model
from newsrec.pipeline.text_encoder import TextEncoderConfig
from newsrec.pipeline.training import TrainConfig, TrainingData, ranking_samples, stage_batches, train_step
from newsrec.pipeline.vocabulary import Vocabulary

MODES = (  # (label, finetune_layers, batch size)
    ("cached LM vectors, batch 128 (the default)", 0, 128),
    ("cached LM vectors, batch 16", 0, 16),
    ("fine-tune the LM's top 2 layers, batch 16", 2, 16),
)


def small_data(quick: bool):
    size = "tiny" if quick else "small"
    mind = OUT / size / "mind"
    if not (mind / "dev" / "behaviors.tsv").is_file():
        generate(mind, config_for(size, 0))
    return read_mind(mind)


def training_data(dataset, vocab: Vocabulary, finetune_layers: int, device: torch.device) -> TrainingData:
    if finetune_layers:
        features = model_news_features(dataset.news, vocab, TextEncoderConfig(),
                                       NewsInputs(text_vectors=False, tokens=True), device)
    else:
        vectors = np.random.default_rng(0).normal(size=(len(dataset.news), 2, 384)).astype(np.float32)
        features = news_features(dataset.news, vocab, vectors)
    train = dataset.splits["train"]
    everything = np.arange(train.num_impressions)
    return TrainingData(dataset, vocab, features, user_rows(dataset, train, vocab), everything, everything[:0])


def measure(data: TrainingData, finetune_layers: int, batch_size: int, steps: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    config = TrainConfig(batch_size=batch_size, finetune_layers=finetune_layers)
    settings = ModelSettings(dim=config.dim, text_dim=384, finetune_layers=finetune_layers)
    model = new_model("unirec", data.vocab, settings).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    batches = stage_batches(data, config, np.random.default_rng(0), device, "ranking")
    train_step(model, next(batches), optimizer)  # warm-up
    timed_batches = [next(batches) for _ in range(steps)]
    seconds, _ = timed(lambda: [train_step(model, batch, optimizer) for batch in timed_batches])
    samples = len(ranking_samples(data.behaviors, data.train_impressions, config.negatives, np.random.default_rng(0))[0])
    per_sample = seconds / (steps * batch_size)
    return {"steps": steps, "seconds": seconds, "impressions_per_s": len(data.train_impressions) / (per_sample * samples),
            "news_per_batch": float(np.mean([len(b.news.news_index) for b in timed_batches]))}


def run(quick: bool) -> dict:
    device = pick_device("auto")
    dataset = small_data(quick)
    vocab = Vocabulary.build(dataset)
    results = {}
    for label, layers, batch_size in MODES:
        data = training_data(dataset, vocab, layers, device)
        steps = (2 if quick else 3) if layers else (5 if quick else 40)
        results[label] = measure(data, layers, batch_size, steps, device)
    return {"machine": machine(), "device": str(device), "size": "tiny" if quick else "small",
            "impressions": int(dataset.splits["train"].num_impressions), "modes": results}


def render(data: dict) -> str:
    modes = data["modes"]
    base = next(v for k, v in modes.items() if "batch 16" in k and "cached" in k)["impressions_per_s"]
    rows = [[label, f"{m['impressions_per_s']:,.1f}", f"{m['news_per_batch']:,.0f}", f"{m['steps']}",
             _relative(m["impressions_per_s"] / base)] for label, m in modes.items()]
    return f"""## Training throughput: cached LM vectors vs fine-tuning

`python3 bench/run.py training`

UniRec's ranking stage (each click with 4 impression negatives; history ≤ 50) on `demo-data --size
{data['size']}` ({data['impressions']:,} train impressions), on {data['device']}. Rates are train
impressions per second, from timed optimizer steps after one warm-up step; the ratio column is
against cached vectors at the same batch size.

{table(["mode", "impressions/s", "distinct news per batch", "timed steps", "vs cached, batch 16"], rows)}

Fine-tuning runs the 6-layer LM over every distinct news item of each batch (title and abstract, 64
token slots each), so its cost follows the distinct news per batch, not the impressions: that is why
newsrec trains on cached vectors by default and offers `--finetune-layers` for a GPU."""


def _relative(value: float) -> str:
    return f"{value:.2f}×" if value >= 0.1 else f"1/{1 / value:,.0f}"


if __name__ == "__main__":
    row_main(__doc__, run, render)
