"""Training: one linear loop for every model, validated on a held-out slice of train (never on dev).

A model trains its `stages` in order; each stage (`STAGES`) says how its batches are sampled, how
it is validated and how many epochs it runs:
- "ranking": each click of a training impression against K non-clicked news of the same impression,
  softmax cross-entropy; validated by AUC.
- "recall" (UniRec's second stage, Recallnet's actor): each click against T news drawn at random from the
  whole news set (shared within a batch), softmax (or the model's own loss); validated by Recall@100 over the
  validation impressions' candidates.
- "evaluator" (Recallnet's critic): impression negatives as "ranking", the model's own loss; validated by
  the AUC of `forward`'s pair scores.
The best epoch of each stage by its validation metric is kept and saved as a self-describing checkpoint.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from newsrec.pipeline.checkpoint import Checkpoint, cache_dir_for, load_checkpoint, save_checkpoint
from newsrec.pipeline.device import autocast, pick_device, release_freed_memory
from newsrec.pipeline.errors import NewsrecError
from newsrec.pipeline.features import clicked_sets, make_batch, model_news_features, user_rows
from newsrec.pipeline.inference import (candidate_rows, encode_all_news, encode_users, pair_scores, score_impressions,
                                        top_k_inner_product)
from newsrec.pipeline.metrics import ranking_metrics, recall_at_k
from newsrec.pipeline.mind import Behaviors, MindDataset, read_mind
from newsrec.pipeline.models.contract import Batch, ModelSettings, NewsFeatures, NewsRecModel, Output
from newsrec.pipeline.models.registry import model_class, new_model
from newsrec.pipeline.progress import tracked
from newsrec.pipeline.text_encoder import TextEncoderConfig, resolve_model
from newsrec.pipeline.vocabulary import Vocabulary


class TrainingError(NewsrecError):
    """Training cannot start as configured (e.g. a model that needs a base checkpoint got none)."""


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
    base: str = ""  # checkpoint directory a model with `needs_base` is trained on top of
    model_options: tuple[tuple[str, str], ...] = ()  # (field, value) overrides of the model's config


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
            progress: bool = False, base: Checkpoint | None = None) -> TrainingData:
    """Vocabulary (the base checkpoint's, if any), the news features the model reads, and the split of
    the train impressions by time: the latest `validation_fraction` validate."""
    vocab = base.vocab if base is not None else Vocabulary.build(dataset)
    inputs = model_class(config.model).news_inputs(config.finetune_layers)
    if base is not None:
        inputs = inputs | base.model.inputs()
    features = model_news_features(dataset.news, vocab, config.text, inputs, device, cache_dir, progress)
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


class EpochBatches:
    """One epoch's batches, made one at a time; `len()` says how many (for progress)."""

    def __init__(self, count: int, batches: Iterator[Batch]):
        self.count, self._batches = count, batches

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> "EpochBatches":
        return self

    def __next__(self) -> Batch:
        return next(self._batches)


def stage_batches(data: TrainingData, config: TrainConfig, rng: np.random.Generator, device: torch.device,
                  stage: str) -> EpochBatches:
    """One epoch of shuffled batches: each click with its stage's negatives (see `STAGES`). The samples are drawn
    here, the batches made as they are iterated."""
    negatives = config.negatives if STAGES[stage].impression_negatives else 0
    impressions, candidates = ranking_samples(data.behaviors, data.train_impressions, negatives, rng)
    order = rng.permutation(len(impressions))
    count = -(-len(order) // config.batch_size)
    return EpochBatches(count, _batches(data, config, rng, device, stage, impressions, candidates, order))


def _batches(data: TrainingData, config: TrainConfig, rng: np.random.Generator, device: torch.device, stage: str,
             impressions: np.ndarray, candidates: np.ndarray, order: np.ndarray) -> Iterator[Batch]:
    for start in range(0, len(order), config.batch_size):
        rows = order[start:start + config.batch_size]
        if STAGES[stage].impression_negatives:
            batch_candidates = candidates[rows]
        else:
            shared = rng.integers(0, len(data.features), config.recall_negatives)  # T random news for the batch
            batch_candidates = np.concatenate([candidates[rows, :1],
                                               np.broadcast_to(shared, (len(rows), len(shared)))], 1)
        yield make_batch(data.features, data.behaviors, impressions[rows], batch_candidates,
                         data.users[impressions[rows]], config.max_history, device)


def train_step(model: NewsRecModel, batch: Batch, optimizer: torch.optim.Optimizer) -> float:
    """One optimizer step of softmax cross-entropy with the clicked item in column 0 (or the model's own loss).

    A batch of more (candidate, user) pairs than the model's `pairs_per_pass` runs as slices of rows, one
    forward and backward each, every slice's mean loss weighted by its share of the rows: the gradients add up
    to the whole batch's, and memory holds one slice's graph, whatever the batch size (UNBERT)."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    rows = len(batch.candidates)
    step = max(1, model.pairs_per_pass // batch.candidates.shape[1]) if model.pairs_per_pass else rows
    total = 0.0
    for start in range(0, rows, step):
        part = batch if step >= rows else batch.rows(start, start + step)
        with autocast(batch.candidates.device):
            output = model(part)
            loss = output.loss if output.loss is not None else _softmax_loss(output)
        if part is not batch:
            loss = loss * (len(part.candidates) / rows)
        loss.backward()
        total += float(loss.detach())
    optimizer.step()
    return total


def _softmax_loss(output: Output) -> torch.Tensor:
    logits = output.logits.float()
    loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
    return loss if output.aux_loss is None else loss + output.aux_loss


def validate_ranking(model: NewsRecModel, data: TrainingData, config: TrainConfig, device: torch.device) -> float:
    """AUC of the validation impressions' candidates."""
    news_matrix = encode_all_news(model, data.features, device) if model.user_is_cacheable else None
    scores = score_impressions(model, data.features, news_matrix, data.behaviors, data.valid_impressions, data.users,
                               config.max_history, device)
    rows, offsets = candidate_rows(data.behaviors, data.valid_impressions)
    return ranking_metrics(data.behaviors.labels[rows], scores, offsets).auc


def validate_pairs(model: NewsRecModel, data: TrainingData, config: TrainConfig, device: torch.device) -> float:
    """AUC of the scores `forward` gives each (candidate, history) pair in the current stage (Recallnet's evaluator),
    on up to `PAIR_VALIDATION_IMPRESSIONS` validation impressions spread evenly over time."""
    step = -(-len(data.valid_impressions) // PAIR_VALIDATION_IMPRESSIONS)
    impressions = data.valid_impressions[::step]
    scores = pair_scores(model, data.features, data.behaviors, impressions, data.users, config.max_history, device)
    rows, offsets = candidate_rows(data.behaviors, impressions)
    return ranking_metrics(data.behaviors.labels[rows], scores, offsets).auc


def validate_recall(model: NewsRecModel, data: TrainingData, config: TrainConfig, device: torch.device) -> float:
    """Recall@100 of the recall vectors over the validation impressions' candidates."""
    news_matrix = encode_all_news(model, data.features, device)
    _, recall = encode_users(model, news_matrix, data.behaviors, data.valid_impressions, data.users,
                             config.max_history, device, features=data.features)
    clicked_offsets, clicked = clicked_sets(data.behaviors, data.valid_impressions)
    pool = np.unique(data.behaviors.candidates[np.isin(data.behaviors.impression_of_candidate(), data.valid_impressions)])
    return recall_at_k(top_k_inner_product(recall, news_matrix, 100, pool), clicked_offsets, clicked)[0]


@dataclass(frozen=True)
class Stage:
    impression_negatives: bool  # K negatives from the click's impression; else T random news per batch
    metric: str  # name of the validation metric in the report
    validate: Callable[[NewsRecModel, TrainingData, TrainConfig, torch.device], float]
    epochs: Callable[[TrainConfig], int]


PAIR_VALIDATION_IMPRESSIONS = 2000
TRIM_EVERY = 50  # training steps between two releases of freed heap memory

STAGES = {
    "ranking": Stage(True, "valid_auc", validate_ranking, lambda config: config.epochs),
    "evaluator": Stage(True, "valid_evaluator_auc", validate_pairs, lambda config: config.epochs),
    "recall": Stage(False, "valid_recall@100", validate_recall, lambda config: config.recall_epochs),
}


@dataclass
class StageReport:
    stage: str
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float = float("-inf")


def run_stage(model: NewsRecModel, data: TrainingData, config: TrainConfig, device: torch.device, stage: str,
              rng: np.random.Generator, log: Callable[[str], None], progress: bool) -> StageReport:
    """Train one stage for its epochs; keep the weights of its best validation epoch."""
    model.set_stage(stage)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    report, best_state = StageReport(stage), copy.deepcopy(model.state_dict())
    for epoch in range(1, STAGES[stage].epochs(config) + 1):
        metrics = run_epoch(model, optimizer, data, config, device, stage, rng, progress, epoch)
        report.epochs.append(metrics)
        log(f"{stage} epoch {epoch}: loss {metrics['loss']:.4f}, {STAGES[stage].metric} "
            f"{metrics[STAGES[stage].metric]:.4f}, {metrics['impressions_per_s']:.0f} impressions/s")
        if metrics[STAGES[stage].metric] > report.best_metric:
            report.best_epoch, report.best_metric = epoch, metrics[STAGES[stage].metric]
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return report


def run_epoch(model: NewsRecModel, optimizer: torch.optim.Optimizer, data: TrainingData, config: TrainConfig,
              device: torch.device, stage: str, rng: np.random.Generator, progress: bool, epoch: int) -> dict:
    """One pass over the stage's batches, then validation; returns the epoch's row of the report."""
    started, losses, samples = time.perf_counter(), [], 0
    epoch_batches = stage_batches(data, config, rng, device, stage)
    batches = tracked(epoch_batches, f"{stage} epoch {epoch}", total=len(epoch_batches), unit="batch",
                      enabled=progress)
    for step, batch in enumerate(batches, start=1):
        losses.append(train_step(model, batch, optimizer))
        samples += len(batch.candidates)
        if step % TRIM_EVERY == 0:
            release_freed_memory()  # bounded memory however long the epoch (pipeline/device.py)
    seconds = time.perf_counter() - started
    metric = STAGES[stage].validate(model, data, config, device)
    release_freed_memory()
    return {"epoch": epoch, "loss": float(np.mean(losses)), STAGES[stage].metric: metric, "seconds": seconds,
            "impressions_per_s": len(data.train_impressions) / seconds, "samples": samples}


def train(mind_dir: str | Path, out_dir: str | Path, config: TrainConfig, log: Callable[[str], None] = print,
          progress: bool = False, dataset: MindDataset | None = None) -> dict:
    """Train `config.model` on MIND_DIR's train split; write `out_dir/model.pt`; returns the report."""
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)  # same seed, same weights (CPU: bit for bit)
    rng = np.random.default_rng(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    base = _base_checkpoint(config)
    if base is not None:  # the base decides the inputs: text model, LM mode, history length, D
        config = replace(config, text=base.text, finetune_layers=base.model.finetune_layers,
                         max_history=base.max_history, dim=base.dim)
    dataset = dataset or read_mind(mind_dir, progress=progress)
    cache_dir = cache_dir_for(out_dir)
    log(f"{cache_dir}/ keeps the language model's news vectors (shared by the models trained beside "
        f"{Path(out_dir).name}/, reused when the news are the same; safe to delete)")
    data = prepare(dataset, config, device, cache_dir, progress, base)
    model = new_model(config.model, data.vocab, _settings(config, data, base))
    if base is not None:
        model.load_base(base.model)
    model.to(device)
    log(f"training {config.model} on {device}: {len(data.train_impressions)} train / "
        f"{len(data.valid_impressions)} validation impressions (held out from train)")
    reports = [run_stage(model, data, config, device, stage, rng, log, progress) for stage in model.stages]
    summary = {"train_config": asdict(config), "device": str(device), "stages": [asdict(r) for r in reports]}
    save_checkpoint(out_dir, config.model, model.cpu(), data.vocab, config.text, config.max_history, summary)
    return summary


def _base_checkpoint(config: TrainConfig) -> Checkpoint | None:
    """The checkpoint a model with `needs_base` trains on top of; refused for the others."""
    cls = model_class(config.model)
    unknown = [stage for stage in cls.stages if stage not in STAGES]
    if unknown:
        raise TrainingError(f"{config.model}: no training stage {unknown[0]!r} (known: {', '.join(STAGES)})")
    if cls.needs_base != bool(config.base):
        need = "needs a base checkpoint (--base DIR)" if cls.needs_base else "is not trained on a base checkpoint"
        raise TrainingError(f"model {config.model} {need}")
    return load_checkpoint(config.base) if config.base else None


def _settings(config: TrainConfig, data: TrainingData, base: Checkpoint | None) -> ModelSettings:
    text_dim = data.features.text.shape[-1] or _hidden_size(config.text.model)
    return ModelSettings(dim=config.dim, text_dim=text_dim, finetune_layers=config.finetune_layers,
                         text_model=config.text.model, base=None if base is None else base.model,
                         base_kind="" if base is None else base.kind, options=config.model_options)


def _hidden_size(text_model: str) -> int:
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(resolve_model(text_model)).hidden_size
