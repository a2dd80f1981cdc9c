"""The GPU checks, run by `bench/gpu.sh` on a lent GPU machine (its results: bench/results/gpu.json, rendered
into BENCHMARKS by `python3 bench/run.py --render`). Until a GPU run exists BENCHMARKS says "not measured".

    bash bench/gpu.sh                                   # on the GPU machine: installs, then runs this
    python3 bench/bench_gpu.py --device cpu --quick     # the same code at toy sizes (checked in CI)

1. News embedding: all-MiniLM-L6-v2 over 161,013 generated news (MIND-large's count; titles ≤ 32, abstracts
   ≤ 64 tokens), bf16 autocast, batches of 512 sorted by length: news/s, computed tokens/s, achieved FLOP/s
   (bench/bench_cpu.py's count) and its share of the GPU's dense bf16 peak (from the device name; none for
   an unknown device).
2. Users: UniRec's user encoder for 1,000,000 users (MIND-like histories over a 161k-news matrix).
3. Training throughput, steps of each model's first stage on `demo-data --size small` (random stand-ins for
   the LM vectors; token ids real): UniRec on cached vectors, UniRec fine-tuning the LM's top 2 layers, FUM,
   UNBERT.
4. UNBERT re-ranking latency: one user's N candidates scored in one batch (the global phase's work), N = 10
   to 500, median of repeats.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from newsrec.bench.common import OUT, ROOT, machine

NEWS = 161_013
USERS = 1_000_000
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}  # dense
RERANK_N = (10, 50, 100, 200, 500)
TRAINING = (  # (label, model, LM layers fine-tuned, batch size)
    ("UniRec, cached LM vectors", "unirec", 0, 128),
    ("UniRec, fine-tuning the LM's top 2 layers", "unirec", 2, 32),
    ("FUM", "fum", 0, 32),
    ("UNBERT", "unbert", 0, 32),
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(function, device: torch.device) -> float:
    sync(device)
    started = time.perf_counter()
    function()
    sync(device)
    return time.perf_counter() - started


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def news_embedding(device: torch.device, count: int) -> dict:
    from newsrec.bench.bench_cpu import encoder_flops
    from newsrec.pipeline.demo_data import config_for, generated_news_texts
    from newsrec.pipeline.text_encoder import TextEncoderConfig, encode_texts, load_language_model

    config = replace(TextEncoderConfig(), batch_size=512 if device.type == "cuda" else 64)
    tokenizer, model = load_language_model(config.model)
    titles, abstracts = generated_news_texts(config_for("large", 0))
    titles, abstracts = titles[:count], abstracts[:count]
    parts = ((titles, config.title_tokens), (abstracts, config.abstract_tokens))
    encode_texts(titles[:1024], tokenizer, model, config.title_tokens, config.batch_size, device)  # warm-up
    seconds = timed(lambda: [encode_texts(texts, tokenizer, model, width, config.batch_size, device)
                             for texts, width in parts], device)
    flops = sum(encoder_flops(model.config, tokenizer, texts, width, config.batch_size) for texts, width in parts)
    tokens = sum(_computed_tokens(tokenizer, texts, width, config.batch_size) for texts, width in parts)
    peak = peak_tflops(device)
    return {"news": count, "seconds": seconds, "news_per_s": count / seconds, "tokens_per_s": tokens / seconds,
            "tflops": flops / seconds / 1e12, "peak_tflops": peak,
            "share_of_peak": None if peak is None else flops / seconds / 1e12 / peak}


def _computed_tokens(tokenizer, texts: list[str], max_tokens: int, batch_size: int) -> int:
    order = [i for i in np.argsort([len(t) for t in texts], kind="stable") if texts[i]]
    total = 0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        ids = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_tokens,
                        return_tensors="pt")["input_ids"]
        total += ids.numel()
    return total


def users(device: torch.device, count: int) -> dict:
    from newsrec.bench.bench_users import histories, model_and_news
    from newsrec.pipeline.inference import encode_users

    model, news = model_and_news(device)
    behaviors = histories(count)
    impressions = np.arange(count)
    rows = np.zeros(count, np.int64)
    encode_users(model, news, behaviors, impressions[:1000], rows, 50, device)  # warm-up
    seconds = timed(lambda: encode_users(model, news, behaviors, impressions, rows, 50, device), device)
    return {"users": count, "seconds": seconds, "users_per_s": count / seconds}


def training(device: torch.device, quick: bool) -> dict:
    from newsrec.pipeline.demo_data import config_for, generate
    from newsrec.pipeline.mind import read_mind
    from newsrec.pipeline.vocabulary import Vocabulary

    size = "tiny" if quick else "small"
    mind = OUT / size / "mind"
    if not (mind / "dev" / "behaviors.tsv").is_file():
        generate(mind, config_for(size, 0))
    dataset = read_mind(mind)
    vocab = Vocabulary.build(dataset)
    steps = 2 if quick else 20
    return {label: _training_rate(dataset, vocab, kind, layers, 8 if quick else batch, steps, device)
            for label, kind, layers, batch in TRAINING}


def _training_rate(dataset, vocab, kind: str, layers: int, batch_size: int, steps: int, device) -> dict:
    from newsrec.pipeline.features import user_rows
    from newsrec.pipeline.models.contract import ModelSettings
    from newsrec.pipeline.models.registry import model_class, new_model
    from newsrec.pipeline.training import TrainConfig, TrainingData, stage_batches, train_step

    torch.manual_seed(0)
    features = _features(dataset, vocab, model_class(kind).news_inputs(layers))
    train = dataset.splits["train"]
    everything = np.arange(train.num_impressions)
    data = TrainingData(dataset, vocab, features, user_rows(dataset, train, vocab), everything, everything[:0])
    model = new_model(kind, vocab, ModelSettings(finetune_layers=layers)).to(device)
    model.set_stage(model.stages[0])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    config = TrainConfig(model=kind, batch_size=batch_size, finetune_layers=layers)
    batches = stage_batches(data, config, np.random.default_rng(0), device, model.stages[0])
    train_step(model, next(batches), optimizer)  # warm-up
    timed_batches = [next(batches) for _ in range(steps)]
    seconds = timed(lambda: [train_step(model, batch, optimizer) for batch in timed_batches], device)
    samples = sum(len(batch.candidates) for batch in timed_batches)
    return {"batch_size": batch_size, "steps": steps, "seconds": seconds, "clicks_per_s": samples / seconds}


def _features(dataset, vocab, inputs):
    from newsrec.pipeline.features import news_features, news_tokens
    from newsrec.pipeline.text_encoder import load_tokenizer

    width = 384 if inputs.text_vectors else 0
    vectors = np.random.default_rng(0).normal(size=(len(dataset.news), 2, width)).astype(np.float32)
    features = news_features(dataset.news, vocab, vectors)
    if inputs.tokens:
        tokens, mask = news_tokens(dataset.news, load_tokenizer("default"), 64)
        features = replace(features, tokens=tokens, token_mask=mask)
    return features


def rerank_latency(device: torch.device, quick: bool) -> dict:
    from newsrec.pipeline.models.contract import ModelSettings
    from newsrec.pipeline.models.registry import new_model
    from newsrec.pipeline.reranker import reranker_of, sample_inputs
    from newsrec.pipeline.vocabulary import Vocabulary

    model = new_model("unbert", Vocabulary([], [], [], [], []), ModelSettings()).to(device).eval()
    scorer = reranker_of(model)
    result = {}
    for n in RERANK_N[:2] if quick else RERANK_N:
        inputs = [t.to(device) for t in sample_inputs(model.config, n, 0)]
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            scorer(*inputs)  # warm-up
            seconds = [timed(lambda: scorer(*inputs), device) for _ in range(3 if quick else 20)]
        result[str(n)] = {"median_ms": 1000 * statistics.median(seconds), "max_ms": 1000 * max(seconds)}
    return result


def run(device: torch.device, quick: bool) -> dict:
    started = time.perf_counter()
    data = {"machine": machine(), "device": str(device), "quick": quick,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    data["news_embedding"] = news_embedding(device, 300 if quick else NEWS)
    print("news embedding", data["news_embedding"], flush=True)
    data["users"] = users(device, 2_000 if quick else USERS)
    print("users", data["users"], flush=True)
    data["training"] = training(device, quick)
    print("training", data["training"], flush=True)
    data["rerank"] = rerank_latency(device, quick)
    print("rerank", data["rerank"], flush=True)
    data["seconds"] = time.perf_counter() - started
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes, to check the script (not a result)")
    parser.add_argument("--out", type=Path, default=None, help="result file [bench/results/gpu.json; quick: bench/out]")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu: no CUDA GPU here (use --device cpu --quick to check the script)")
    if not args.quick and device.type != "cuda":
        raise SystemExit("bench_gpu: a full run is a GPU measurement; on CPU use --quick")
    out = args.out or (OUT / "quick" / "gpu.json" if args.quick else ROOT / "bench" / "results" / "gpu.json")
    data = run(device, args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out}")


def render(data: dict | None) -> str:
    head = """## GPU: news embedding, 1M users, training throughput, UNBERT re-ranking latency

`bash bench/gpu.sh` on a lent GPU machine (`bench/bench_gpu.py`; results in `bench/results/gpu.json`)
"""
    if not data or data.get("quick"):
        return head + """
**Not measured**: no GPU has been lent to this project's sessions yet; the script is ready (checked at toy
sizes on CPU by the tests). The targets it measures: 161k news embedded (bf16) in < 10 s, 1M users in
< 10 s, training throughput of UniRec (cached vectors and fine-tuning), FUM and UNBERT, UNBERT's
re-ranking latency per N."""
    from newsrec.bench.common import describe, table

    news, user = data["news_embedding"], data["users"]
    share = f"{news['share_of_peak']:.1%} of its {news['peak_tflops']:.0f} TFLOP/s dense bf16 peak" \
        if news.get("share_of_peak") is not None else "peak unknown for this device"
    training_rows = [[label, r["batch_size"], f"{r['clicks_per_s']:,.0f}"] for label, r in data["training"].items()]
    rerank_rows = [[n, f"{r['median_ms']:.2f} ms", f"{r['max_ms']:.2f} ms"] for n, r in data["rerank"].items()]
    return head + f"""
On {data['gpu']} ({describe(data['machine'])}); the whole script ran {data['seconds']:.0f} s.

- News embedding: {news['news']:,} news in **{news['seconds']:.1f} s** ({news['news_per_s']:,.0f} news/s,
  {news['tokens_per_s']:,.0f} computed tokens/s, {news['tflops']:.1f} TFLOP/s: {share}).
- Users: {user['users']:,} users in **{user['seconds']:.1f} s** ({user['users_per_s']:,.0f} users/s).

{table(["training (first stage)", "batch", "clicks/s"], training_rows)}

{table(["UNBERT re-ranks N candidates", "median", "max"], rerank_rows)}"""


if __name__ == "__main__":
    main()
