"""Training: one linear loop for every model, validated on a held-out slice of train (never on dev).

Stage "ranking": each click of a training impression against K non-clicked news of the same
impression, softmax cross-entropy. Stage "recall" (models that declare it, i.e. UniRec): each click
against T news drawn at random from the whole news set (shared within a batch), softmax.
The best epoch by validation metric (AUC for ranking, Recall@100 over the validation impressions'
candidates for recall) is kept and saved as a self-describing checkpoint.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from pipeline.features import Vocabulary, history_matrix, model_news_features, user_rows
from pipeline.inference import candidate_scores, encode_all_news, encode_users, top_k_inner_product
from pipeline.metrics import ranking_metrics, recall_at_k
from pipeline.mind import Behaviors, MindDataset, read_mind
from pipeline.models.contract import Batch, NewsFeatures
from pipeline.models.registry import build_model, new_config, save_checkpoint
from pipeline.text_encoder import TextEncoderConfig, pick_device


@dataclass(frozen=True)
class TrainConfig:
    model: str = "unirec"
    epochs: int = 3
    recall_epochs: int = 2
    batch_size: int = 128
    learning_rate: float = 1e-3
    negatives: int = 4  # K, impression negatives per click (ranking)
    recall_negatives: int = 200  # T, random negatives from all news (recall)
    max_history: int = 50
    validation_fraction: float = 0.1
    max_impressions: int = 0  # 0 = every training impression
    dim: int = 64  # serving dimension D
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # CPU threads; 0 = torch's default
    finetune_layers: int = 0  # 0: frozen LM with cached vectors; k: fine-tune the LM's top k layers
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)


@dataclass(frozen=True, eq=False)
class TrainingData:
    dataset: MindDataset
    vocab: Vocabulary
    features: NewsFeatures  # every news row
    users: np.ndarray  # (I,) vocabulary row of each train impression's user
    train_impressions: np.ndarray
    valid_impressions: np.ndarray

    @property
    def behaviors(self) -> Behaviors:
        return self.dataset.splits["train"]


def prepare(dataset: MindDataset, config: TrainConfig, device: torch.device, cache_dir: str | Path | None,
            progress: bool = False) -> TrainingData:
    vocab = Vocabulary.build(dataset)
    features = model_news_features(dataset.news, vocab, config.text, config.finetune_layers, device, cache_dir,
                                   progress)
    train = dataset.splits["train"]
    by_time = np.argsort(train.time, kind="stable")
    if config.max_impressions:
        by_time = by_time[-config.max_impressions:]
    cut = len(by_time) - max(1, int(len(by_time) * config.validation_fraction))
    return TrainingData(dataset, vocab, features, user_rows(dataset, train, vocab),
                        np.sort(by_time[:cut]), np.sort(by_time[cut:]))


def ranking_samples(behaviors: Behaviors, impressions: np.ndarray, negatives: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(impression (S,), candidates (S, 1 + K) news rows): each click with K negatives of its impression."""
    owner = behaviors.impression_of_candidate()
    selected = np.zeros(behaviors.num_impressions, dtype=bool)
    selected[impressions] = True
    in_scope = selected[owner]
    positive_rows = np.flatnonzero(in_scope & (behaviors.labels == 1))
    negative_rows = np.flatnonzero(in_scope & (behaviors.labels == 0))  # grouped by impression
    negative_count = np.bincount(owner[negative_rows], minlength=behaviors.num_impressions)
    negative_start = np.concatenate([[0], np.cumsum(negative_count)[:-1]])
    positive_rows = positive_rows[negative_count[owner[positive_rows]] > 0]  # all-click impressions: no negative
    sample_impression = owner[positive_rows]
    draws = (rng.random((len(positive_rows), negatives)) * negative_count[sample_impression][:, None]).astype(np.int64)
    negative = negative_rows[negative_start[sample_impression][:, None] + draws]  # (S, K)
    candidates = np.concatenate([behaviors.candidates[positive_rows][:, None], behaviors.candidates[negative]], axis=1)
    return sample_impression, candidates.astype(np.int64)


def make_batch(data: TrainingData, impressions: np.ndarray, candidates: np.ndarray, max_history: int,
               device: torch.device) -> Batch:
    """Gather the distinct news a batch touches, and re-index candidates and histories into them."""
    history, mask = history_matrix(data.behaviors, impressions, max_history)
    unique, inverse = np.unique(np.concatenate([candidates.ravel(), history[mask]]), return_inverse=True)
    local_history = np.zeros_like(history)
    local_history[mask] = inverse[candidates.size:]
    return Batch(news=data.features.select(torch.from_numpy(unique)).to(device),
                 candidates=torch.from_numpy(inverse[:candidates.size].reshape(candidates.shape)).to(device),
                 history=torch.from_numpy(local_history).to(device), history_mask=torch.from_numpy(mask).to(device),
                 user_index=torch.from_numpy(data.users[impressions]).to(device))


def ranking_batches(data: TrainingData, config: TrainConfig, rng: np.random.Generator,
                    device: torch.device) -> Iterator[Batch]:
    impressions, candidates = ranking_samples(data.behaviors, data.train_impressions, config.negatives, rng)
    order = rng.permutation(len(impressions))
    for start in range(0, len(order), config.batch_size):
        rows = order[start:start + config.batch_size]
        yield make_batch(data, impressions[rows], candidates[rows], config.max_history, device)


def recall_batches(data: TrainingData, config: TrainConfig, rng: np.random.Generator,
                   device: torch.device) -> Iterator[Batch]:
    impressions, candidates = ranking_samples(data.behaviors, data.train_impressions, 0, rng)
    order = rng.permutation(len(impressions))
    for start in range(0, len(order), config.batch_size):
        rows = order[start:start + config.batch_size]
        shared = rng.integers(0, len(data.features), config.recall_negatives)  # T random news for the batch
        batch_candidates = np.concatenate([candidates[rows, :1], np.broadcast_to(shared, (len(rows), len(shared)))], 1)
        yield make_batch(data, impressions[rows], batch_candidates, config.max_history, device)


def train_step(model: torch.nn.Module, batch: Batch, optimizer: torch.optim.Optimizer) -> float:
    """One optimizer step of softmax cross-entropy with the clicked item in column 0."""
    model.train()
    device = batch.candidates.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        output = model(batch)
        loss = torch.nn.functional.cross_entropy(output.logits.float(), torch.zeros(len(output.logits), dtype=torch.long,
                                                                                   device=device))
        if output.aux_loss is not None:
            loss = loss + output.aux_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def validate(model, data: TrainingData, config: TrainConfig, device: torch.device, stage: str) -> float:
    """Validation AUC (ranking) or Recall@100 over the validation candidates (recall)."""
    news_matrix = encode_all_news(model, data.features, device)
    ranking, recall = encode_users(model, news_matrix, data.behaviors, data.valid_impressions, data.users,
                                   config.max_history, device)
    if stage == "ranking":
        scores, labels, offsets = candidate_scores(news_matrix, ranking, data.behaviors, data.valid_impressions)
        return ranking_metrics(labels, scores, offsets).auc
    clicked_offsets, clicked = clicked_sets(data.behaviors, data.valid_impressions)
    pool = np.unique(data.behaviors.candidates[np.isin(data.behaviors.impression_of_candidate(), data.valid_impressions)])
    return recall_at_k(top_k_inner_product(recall, news_matrix, 100, pool), clicked_offsets, clicked)[0]


def clicked_sets(behaviors: Behaviors, impressions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR (offsets, news rows) of the clicked candidates of each impression."""
    starts, ends = behaviors.candidate_offsets[impressions], behaviors.candidate_offsets[impressions + 1]
    parts = [behaviors.candidates[s:e][behaviors.labels[s:e] == 1] for s, e in zip(starts, ends)]
    return np.concatenate([[0], np.cumsum([len(p) for p in parts])]), (np.concatenate(parts) if parts else np.zeros(0))


@dataclass
class StageReport:
    stage: str
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float = float("-inf")


def run_stage(model, data: TrainingData, config: TrainConfig, device: torch.device, stage: str, epochs: int,
              rng: np.random.Generator, log: Callable[[str], None], progress: bool) -> StageReport:
    from tqdm import tqdm

    if hasattr(model, "set_stage"):
        model.set_stage(stage)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    make = ranking_batches if stage == "ranking" else recall_batches
    report, best_state = StageReport(stage), copy.deepcopy(model.state_dict())
    for epoch in range(1, epochs + 1):
        started, losses, samples = time.perf_counter(), [], 0
        for batch in tqdm(make(data, config, rng, device), desc=f"{stage} epoch {epoch}", disable=not progress or None,
                          mininterval=2.0, total=None):
            losses.append(train_step(model, batch, optimizer))
            samples += len(batch.candidates)
        seconds = time.perf_counter() - started
        metric = validate(model, data, config, device, stage)
        name = "valid_auc" if stage == "ranking" else "valid_recall@100"
        report.epochs.append({"epoch": epoch, "loss": float(np.mean(losses)), name: metric, "seconds": seconds,
                              "impressions_per_s": len(data.train_impressions) / seconds, "samples": samples})
        log(f"{stage} epoch {epoch}: loss {np.mean(losses):.4f}, {name} {metric:.4f}, "
            f"{len(data.train_impressions) / seconds:.0f} impressions/s")
        if metric > report.best_metric:
            report.best_epoch, report.best_metric, best_state = epoch, metric, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return report


def train(mind_dir: str | Path, out_dir: str | Path, config: TrainConfig, log: Callable[[str], None] = print,
          progress: bool = False, dataset: MindDataset | None = None) -> dict:
    """Train `config.model` on MIND_DIR's train split; write `out_dir/model.pt`; returns the report."""
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)  # same seed, same weights (CPU: bit for bit)
    rng = np.random.default_rng(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    dataset = dataset or read_mind(mind_dir, progress=progress)
    data = prepare(dataset, config, device, Path(out_dir).parent / "cache", progress)
    text_dim = data.features.text.shape[-1] or _hidden_size(config.text.model)
    model = build_model(config.model, new_config(config.model, data.vocab, config.dim, text_dim,
                                                 config.finetune_layers, config.text.model))
    model.to(device)
    log(f"training {config.model} on {device}: {len(data.train_impressions)} train / "
        f"{len(data.valid_impressions)} validation impressions (held out from train)")
    reports = [run_stage(model, data, config, device, "ranking", config.epochs, rng, log, progress)]
    if "recall" in getattr(model, "stages", ()):
        reports.append(run_stage(model, data, config, device, "recall", config.recall_epochs, rng, log, progress))
    summary = {"train_config": asdict(config), "device": str(device),
               "stages": [asdict(r) for r in reports]}
    save_checkpoint(out_dir, config.model, model.cpu(), data.vocab, {"training": summary,
                                                                     "text": asdict(config.text),
                                                                     "max_history": config.max_history})
    return summary


def _hidden_size(text_model: str) -> int:
    from transformers import AutoConfig

    from pipeline.text_encoder import resolve_model

    return AutoConfig.from_pretrained(resolve_model(text_model)).hidden_size

