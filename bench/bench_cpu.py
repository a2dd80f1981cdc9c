"""The news encoder against this CPU's limit, and cheaper arithmetic at equal quality.

    python3 bench/run.py cpu            # recorded in BENCHMARKS.md (~15 min on 2 cores)
    python3 bench/bench_cpu.py --quick

1. The ceiling. Peak float32 FLOP/s derived from the CPU: cores × FLOP per cycle per core × clock, with FLOP
   per cycle from the instruction set (AVX2 + FMA on AMD Zen 2/3: two 256-bit FMA pipes = 2 × 8 lanes × 2
   = 32; AVX-512: 64) and the clock from /proc/cpuinfo (a VM's nominal TSC clock; boost not counted). Beside
   it, what PyTorch's own float32 matrix product reaches here (a 1024³ `torch.mm`): the practical ceiling.
2. The encoder (all-MiniLM-L6-v2, batched and length-sorted as `newsrec-feed` runs it) over generated news
   titles and abstracts, in each runtime of `pipeline.lm_runtime`, side by side in the same process. Achieved
   FLOP/s = the model's multiply-adds over the tokens it computed (padding included) × 2 / time; per layer
   and token: 4·H² (Q, K, V, output) + 2·H·I (feed-forward) + 2·T·H (attention scores and values).
3. Quality. Vectors against float32 PyTorch (largest absolute difference, smallest cosine). Dev AUC: the
   trained UniRec of world v2 small (bench/out/small-v2, `bench/model_table.py`) scored on dev impressions
   with the news vectors of each runtime, paired on the same impressions (the news they touch, candidates and
   histories, re-encoded by each runtime; float32 PyTorch's are the cached vectors the model was trained on).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from newsrec.bench.common import OUT, machine, row_main, table
from newsrec.pipeline.demo_data import config_for, generated_news_texts
from newsrec.pipeline.lm_runtime import RUNTIMES, language_model
from newsrec.pipeline.text_encoder import TextEncoderConfig, encode_texts, load_language_model

SMALL = OUT / "small-v2"
AUC_IMPRESSIONS = 300  # dev impressions of the paired AUC check (the first ones, in file order): ~10k news
TOLERANCE = {"cosine": 0.99, "auc": 0.002}


def cpu_peak() -> dict:
    """Theoretical float32 peak of this machine from /proc/cpuinfo (see the module docstring)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = set(re.search(r"^flags\s*:\s*(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    clock = (np.mean(mhz) / 1000) if mhz else float("nan")
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 16 if "avx" in flags else 8
    cores = torch.get_num_threads()
    return {"cores": cores, "clock_ghz": round(clock, 3), "flop_per_cycle": per_cycle,
            "isa": "AVX-512" if per_cycle == 64 else "AVX2 + FMA" if per_cycle == 32 else "AVX/SSE",
            "peak_gflops": cores * per_cycle * clock}


def gemm_gflops(size: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size ** 3 / best / 1e9


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def encoder_flops(config, tokenizer, texts: list[str], max_tokens: int, batch_size: int) -> float:
    """Multiply-adds × 2 of the encoder over `texts` batched as encode_texts batches them (padding included)."""
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    order = [i for i in np.argsort([len(t) for t in texts], kind="stable") if texts[i]]
    total = 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        length = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_tokens,
                           return_tensors="pt")["input_ids"].shape[1]
        per_token = 4 * hidden ** 2 + 2 * hidden * inner + 2 * length * hidden
        total += 2.0 * layers * per_token * length * len(rows)
    return total


def run(quick: bool) -> dict:
    torch.manual_seed(0)
    text_config = TextEncoderConfig()
    tokenizer, model = load_language_model(text_config.model)
    titles, abstracts = generated_news_texts(config_for("small", 0))
    count = 200 if quick else 1_000
    titles, abstracts = titles[:count], abstracts[:count]
    flops = sum(encoder_flops(model.config, tokenizer, texts, width, text_config.batch_size)
                for texts, width in ((titles, text_config.title_tokens), (abstracts, text_config.abstract_tokens)))
    device = torch.device("cpu")
    runners = {runtime: language_model(model, runtime, device) for runtime in RUNTIMES}

    def encode(runtime: str) -> np.ndarray:
        return np.stack([encode_texts(texts, tokenizer, runners[runtime], width, text_config.batch_size, device)
                         for texts, width in ((titles, text_config.title_tokens),
                                              (abstracts, text_config.abstract_tokens))], axis=1)

    vectors = {runtime: encode(runtime) for runtime in RUNTIMES}  # warm-up, and the vectors compared
    seconds = {runtime: [] for runtime in RUNTIMES}
    for _ in range(1 if quick else 3):  # interleaved repeats: noise hits every runtime alike
        for runtime in RUNTIMES:
            seconds[runtime].append(_timed(lambda: encode(runtime)))
    rows = {}
    for runtime in RUNTIMES:
        median = float(np.median(seconds[runtime]))
        rows[runtime] = {"seconds": median, "news_per_s": count / median, "gflops": flops / median / 1e9,
                         **_vector_difference(vectors["torch"], vectors[runtime])}
    auc = None if quick or not (SMALL / "runs" / "unirec" / "model.pt").is_file() else paired_auc(runners, tokenizer)
    return {"machine": machine(), "news": count, "model_gflop": flops / 1e9, "peak": cpu_peak(),
            "gemm_gflops": gemm_gflops(), "runtimes": rows, "auc": auc}


def _vector_difference(reference: np.ndarray, other: np.ndarray) -> dict:
    norms = np.linalg.norm(reference, axis=-1) * np.linalg.norm(other, axis=-1)
    present = norms > 0
    cosine = (reference * other).sum(-1)[present] / norms[present]
    return {"max_abs_diff": float(np.abs(reference - other).max()), "min_cosine": float(cosine.min())}


def paired_auc(runners: dict, tokenizer) -> dict:
    """Dev AUC of the small world's UniRec with each runtime's news vectors, on the same AUC_IMPRESSIONS."""
    from newsrec.pipeline.checkpoint import cache_dir_for, load_checkpoint
    from newsrec.pipeline.features import history_matrix, news_features, user_rows
    from newsrec.pipeline.inference import candidate_rows, candidate_scores, encode_all_news, encode_users
    from newsrec.pipeline.metrics import ranking_metrics
    from newsrec.pipeline.mind import read_mind
    from newsrec.pipeline.text_encoder import cache_path

    dataset = read_mind(SMALL / "mind")
    checkpoint = load_checkpoint(SMALL / "runs" / "unirec")
    dev = dataset.splits["dev"]
    impressions = np.arange(min(AUC_IMPRESSIONS, dev.num_impressions))
    rows, offsets = candidate_rows(dev, impressions)
    history, mask = history_matrix(dev, impressions, checkpoint.max_history)
    touched = np.unique(np.concatenate([dev.candidates[rows], history[mask]]))
    cached = np.load(cache_path(cache_dir_for(SMALL / "runs" / "unirec"), checkpoint.text, dataset.news.title,
                                dataset.news.abstract))
    device = torch.device("cpu")
    result = {"impressions": int(len(impressions)), "news_encoded": int(len(touched))}
    for runtime, runner in runners.items():
        text = cached.copy()  # float32 PyTorch's vectors (the cache `newsrec train` wrote)
        if runtime != "torch":
            text[touched] = np.stack([encode_texts([dataset.news.title[i] for i in touched], tokenizer, runner,
                                                   checkpoint.text.title_tokens, checkpoint.text.batch_size, device),
                                      encode_texts([dataset.news.abstract[i] for i in touched], tokenizer, runner,
                                                   checkpoint.text.abstract_tokens, checkpoint.text.batch_size,
                                                   device)], axis=1)
        model = checkpoint.model.eval()
        news = encode_all_news(model, news_features(dataset.news, checkpoint.vocab, text), device)
        users = encode_users(model, news, dev, impressions, user_rows(dataset, dev, checkpoint.vocab),
                             checkpoint.max_history, device)[0]
        scores, labels, offsets = candidate_scores(news, users, dev, impressions)
        result[runtime] = ranking_metrics(labels, scores, offsets).auc
    return result


def render(data: dict) -> str:
    peak, gemm, runtimes = data["peak"], data["gemm_gflops"], data["runtimes"]
    reference = runtimes["torch"]["seconds"]
    auc = data.get("auc") or {}
    rows = []
    for runtime, r in runtimes.items():
        auc_cell = f"{auc[runtime]:.4f} ({auc[runtime] - auc['torch']:+.4f})" if runtime in auc else "not measured"
        rows.append([f"`{runtime}`", f"{r['news_per_s']:.0f}", f"{reference / r['seconds']:.2f}×",
                     f"{r['gflops']:.1f}", f"{r['gflops'] / peak['peak_gflops']:.0%}", f"{r['gflops'] / gemm:.0%}",
                     f"{r['max_abs_diff']:.1e}", f"{r['min_cosine']:.5f}", auc_cell])
    best = _best(data)
    return f"""## The news encoder against the CPU's limit; int8 and ONNX Runtime

`python3 bench/run.py cpu` (`bench/bench_cpu.py`)

Peak float32 of this machine: {peak['cores']} cores × {peak['flop_per_cycle']} FLOP/cycle ({peak['isa']}: two
256-bit FMA pipes × 8 lanes × 2) × {peak['clock_ghz']:.2f} GHz (the VM's nominal clock, /proc/cpuinfo) =
**{peak['peak_gflops']:.0f} GFLOP/s**; PyTorch's own float32 matrix product (1024³ `torch.mm`) reaches
**{gemm:.0f} GFLOP/s** here, the practical ceiling. The encoder (all-MiniLM-L6-v2) embeds {data['news']:,}
generated news (title ≤ 32 and abstract ≤ 64 tokens, batches of 128 sorted by length:
{data['model_gflop']:,.0f} GFLOP counted over the computed tokens, padding included), each runtime side by
side in one process, median of interleaved repeats. int8 columns are dynamic quantization (weights int8,
activations quantized per batch); FLOP/s of an int8 runtime counts the same model FLOPs (work done, not
float32 arithmetic). Quality: vectors against float32 PyTorch; dev AUC of world v2 small's UniRec scored with
each runtime's news vectors on the same {auc.get('impressions', 0):,} dev impressions ({auc.get('news_encoded', 0):,}
news re-encoded per runtime), tolerance ± {TOLERANCE['auc']}.

{table(["runtime", "news/s", "vs torch", "GFLOP/s", "of peak", "of torch.mm", "max abs diff", "min cosine",
        "dev AUC (Δ vs float32)"], rows)}

{best}"""


def _best(data: dict) -> str:
    auc = data.get("auc") or {}
    runtimes = data["runtimes"]
    fits = [r for r in runtimes if r in auc and abs(auc[r] - auc["torch"]) <= TOLERANCE["auc"]
            and runtimes[r]["min_cosine"] >= TOLERANCE["cosine"]]
    if not fits:
        return "No quality check was run (a quick run, or no trained small model): no runtime is recommended."
    best = min(fits, key=lambda r: runtimes[r]["seconds"])
    speed = runtimes["torch"]["seconds"] / runtimes[best]["seconds"]
    if best == "torch":
        return ("Verdict: no cheaper runtime is faster at equal quality here; float32 PyTorch stays the default.")
    return (f"Verdict: `{best}` is the fastest runtime within the tolerances ({speed:.2f}× float32 PyTorch, "
            f"dev AUC {auc[best] - auc['torch']:+.4f}); it is offered as `newsrec train --lm-runtime {best}` "
            "(the LM vectors are computed with it and cached under their own key); float32 stays the default "
            "because a model's LM vectors should not change under a trained model without retraining.")


if __name__ == "__main__":
    row_main(__doc__, run, render)
