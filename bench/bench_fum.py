"""FUM's efficiency as the paper frames it (issue 15): user-embedding throughput and memory of FUM vs UniRec
vs mean-pool at the same batch size, and time against history length of the word-level document under
full self-attention (UniRec's attention, quadratic) vs a Fastformer layer (FUM's, linear).

    python3 bench/run.py fum          # recorded in BENCHMARKS.md, plot in bench/plots/fum_history.png
    python3 bench/bench_fum.py --quick

(1) Each model encodes the same users (MIND-shaped histories, median 18 clicks, latest 50 kept) in
batches of 512, each in a fresh Python (peak = its resident high-water mark), interleaved, median of 3;
news features as a MIND-small-sized corpus (49,000 news; FUM also reads their token ids, 2 × 64 per news
as `newsrec` stores them). Fresh weights: throughput does not depend on them.
(3) FUM's word features, the two ways issue 15 names: the LM's last hidden states cached in fp16 (their
size at MIND-large's 161,013 news and the LM time to compute them, measured on generated titles) against
the LM's word-piece table with a trained projection (a fixed size, nothing to precompute); and how many
word pieces MIND-like titles have ([CLS] and [SEP] included) against `words_per_news`.
(2) One attention layer of width 64 (4 heads) over a batch of 16 user documents of H clicks × 16 word
pieces: `torch.nn.MultiheadAttention` (what UniRec runs over news vectors, here over words) against
`FastformerLayer` (attention and feed-forward block), forward only, median of 5.
"""
from __future__ import annotations

from newsrec.bench.common import child_peak, growth_exponent, machine, plot, row_main, side_by_side, table

NEWS, USERS, BATCH = 49_000, 20_000, 512
CODE = """
import json, sys, time
import numpy as np, torch
from newsrec.bench.bench_fum import user_inputs, user_model
from newsrec.pipeline.inference import encode_users
kind, users = sys.argv[1], int(sys.argv[2])
model, features, news = user_model(kind), *user_inputs()
behaviors = __import__("newsrec.bench.bench_users", fromlist=["histories"]).histories(users)
behaviors.history[:] = np.mod(behaviors.history, len(features))
base = hwm()
started = time.perf_counter()
encode_users(model, news, behaviors, np.arange(users), np.zeros(users, np.int64), 50, torch.device("cpu"),
             batch_size=%d, features=features if model.reads_history_news else None)
print(json.dumps({"seconds": time.perf_counter() - started, "peak_kib": hwm(), "base_kib": base}))
""" % BATCH
KINDS = ("meanpool", "unirec", "fum")


def user_inputs():
    """(NewsFeatures with token ids, (N, 64) news matrix) of a generated MIND-small-sized corpus."""
    import torch

    from newsrec.pipeline.models.contract import NewsFeatures

    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(8, 24, (NEWS, 2), generator=generator)
    mask = (torch.arange(64) < lengths[..., None]).long()
    features = NewsFeatures(news_index=torch.arange(NEWS), text=torch.zeros(NEWS, 2, 0),
                            category=torch.zeros(NEWS, dtype=torch.long), subcategory=torch.zeros(NEWS, dtype=torch.long),
                            entities=torch.zeros(NEWS, 4, dtype=torch.long),
                            tokens=torch.randint(1000, 30000, (NEWS, 2, 64), generator=generator) * mask, token_mask=mask)
    return features, torch.nn.functional.normalize(torch.randn(NEWS, 64, generator=generator), dim=-1)


def user_model(kind: str):
    import torch

    from newsrec.pipeline.models.fum import FUM, FUMConfig
    from newsrec.pipeline.models.layers import NewsEncoderConfig
    from newsrec.pipeline.models.meanpool import MeanPoolConfig, MeanPoolModel
    from newsrec.pipeline.models.unirec import UniRec, UniRecConfig

    torch.manual_seed(0)
    news = NewsEncoderConfig(text_dim=384, num_categories=20, num_subcategories=300, num_entities=1000, dim=64)
    build = {"meanpool": lambda: MeanPoolModel(MeanPoolConfig(news=news)),
             "unirec": lambda: UniRec(UniRecConfig(news=news)),
             "fum": lambda: FUM(FUMConfig(news=news, word_vocab=30522, word_dim=384, word_init="random"))}
    return build[kind]().eval()


def throughput(users: int, repeats: int) -> dict:
    runs = {kind: [] for kind in KINDS}
    for _ in range(repeats):
        for kind in KINDS:  # interleaved: drift on a shared machine hits every model alike
            runs[kind].append(child_peak(CODE, kind, str(users)))
    result = {}
    for kind, measured in runs.items():
        seconds = sorted(m["seconds"] for m in measured)[len(measured) // 2]
        result[kind] = {"users_per_s": users / seconds, "peak_mib": max(m["peak_mib"] for m in measured),
                        "added_mib": max(m["added_mib"] for m in measured)}
    return result


def attention_scaling(clicks: list[int], repeats: int) -> dict:
    import torch

    from newsrec.pipeline.models.fum import FastformerLayer

    torch.manual_seed(0)
    full = torch.nn.MultiheadAttention(64, 4, batch_first=True).eval()
    fast = FastformerLayer(64, 4, dropout=0.0).eval()
    rows = []
    for count in clicks:
        x = torch.randn(16, count * 16, 64)
        mask = torch.ones(16, count * 16, dtype=torch.bool)
        with torch.inference_mode():
            fast_s, full_s = side_by_side(lambda: fast(x, mask), lambda: full(x, x, x, need_weights=False), repeats)
        rows.append({"clicks": count, "tokens": count * 16, "fastformer_ms": fast_s * 1e3, "self_attention_ms": full_s * 1e3})
    return {"rows": rows}


MIND_LARGE_NEWS = 161_013


def word_feature_costs(titles: int) -> dict:
    import time

    import numpy as np
    import torch

    from newsrec.pipeline.demo_data import config_for, generated_news_texts
    from newsrec.pipeline.models.fum import FUMConfig
    from newsrec.pipeline.text_encoder import load_language_model

    texts = generated_news_texts(config_for("small", 0))[0][:titles]
    tokenizer, model = load_language_model("default")
    model.eval()
    lengths = np.array([len(ids) for ids in tokenizer(texts)["input_ids"]])
    width, keep = model.config.hidden_size, FUMConfig.__dataclass_fields__["words_per_news"].default
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(texts), 128):
            tokens = tokenizer(texts[start:start + 128], padding=True, truncation=True, max_length=keep,
                               return_tensors="pt")
            model(**tokens).last_hidden_state.half()
    per_second = len(texts) / (time.perf_counter() - started)
    return {"titles": len(texts), "pieces_mean": float(lengths.mean()), "pieces_p90": float(np.percentile(lengths, 90)),
            "truncated_share": float((lengths > keep).mean()), "words_per_news": keep, "hidden": width,
            "lm_titles_per_s": per_second, "cache_bytes_large": MIND_LARGE_NEWS * keep * width * 2,
            "cache_minutes_large": MIND_LARGE_NEWS / per_second / 60,
            "table_bytes": model.get_input_embeddings().weight.numel() * 4,
            "token_id_bytes_large": MIND_LARGE_NEWS * 2 * 64 * 8 * 2}


def run(quick: bool) -> dict:
    clicks = [5, 10, 20, 50] if quick else [5, 10, 20, 50, 100, 200]
    users = 2_000 if quick else USERS
    return {"machine": machine(), "users": users, "batch": BATCH,
            "throughput": throughput(users, 1 if quick else 3),
            "scaling": attention_scaling(clicks, 3 if quick else 5),
            "words": word_feature_costs(256 if quick else 2048), "quick": quick}


def render(data: dict) -> str:
    speed = data["throughput"]
    rows = [[kind, f"{m['users_per_s']:,.0f}", f"{m['users_per_s'] / speed['unirec']['users_per_s']:.2f}",
             f"{m['peak_mib']:,.0f} MiB", f"{m['added_mib']:,.0f} MiB"] for kind, m in speed.items()]
    scaling = data["scaling"]["rows"]
    xs = [r["clicks"] for r in scaling]
    path = plot("fum_history", "One attention layer over a user's word document", "clicks in history (× 16 word pieces)",
                "ms per batch of 16 users", {"Fastformer (FUM)": (xs, [r["fastformer_ms"] for r in scaling]),
                                             "full self-attention (UniRec's)": (xs, [r["self_attention_ms"] for r in scaling])},
                quick=data.get("quick", False))
    scale_rows = [[r["clicks"], f"{r['tokens']:,}", f"{r['fastformer_ms']:.1f}", f"{r['self_attention_ms']:.1f}",
                   f"{r['self_attention_ms'] / r['fastformer_ms']:.1f}×"] for r in scaling]
    fast_slope = growth_exponent(xs, [r["fastformer_ms"] for r in scaling])
    full_slope = growth_exponent(xs, [r["self_attention_ms"] for r in scaling])
    return f"""## FUM: user-embedding throughput, memory, and attention cost against history length

`python3 bench/run.py fum` (`bench/bench_fum.py`)

{data['users']:,} users with MIND-shaped histories, batches of {data['batch']}, CPU, each model in a fresh
process (medians of interleaved runs); news features of a 49,000-news corpus (FUM also reads the token ids
of the latest 20 clicked titles, 16 word pieces each, plus UniRec-style coarse pooling over the latest 50).

{table(["user model", "users/s", "vs UniRec", "peak", "peak above imports"], rows)}
{(chr(10) + data["note"] + chr(10)) if data.get("note") else ""}
One attention layer (width 64, 4 heads, 16 users per batch) over the word document of H clicks × 16 word
pieces: log-log slope between the two longest histories {fast_slope:.2f} for Fastformer and {full_slope:.2f}
for full self-attention (1 = linear, 2 = quadratic). Plot: `{path}`.

{table(["clicks", "word pieces", "Fastformer ms", "self-attention ms", "self-attention / Fastformer"], scale_rows)}

{_words_section(data["words"])}
"""


def _words_section(w: dict) -> str:
    gib = 2 ** 30
    return f"""FUM's word features at MIND-large (161,013 news): the LM's last hidden states of each title
({w['words_per_news']} word pieces × {w['hidden']} in fp16) would take **{w['cache_bytes_large'] / gib:.2f} GiB** on disk
and {w['cache_minutes_large']:.0f} min of LM time on this machine ({w['lm_titles_per_s']:,.0f} titles/s, measured on
{w['titles']:,} generated titles), and would be recomputed for every new text model; the word-piece table
FUM uses instead is {w['table_bytes'] / 2**20:.0f} MiB whatever the corpus, beside the token ids newsrec already
keeps for fine-tuning ({w['token_id_bytes_large'] / gib:.2f} GiB of int64 ids and masks at MIND-large). Titles have
{w['pieces_mean']:.1f} word pieces on average (90th percentile {w['pieces_p90']:.0f}, [CLS] and [SEP] included);
{w['truncated_share']:.0%} are cut at {w['words_per_news']}."""


if __name__ == "__main__":
    row_main(__doc__, run, render)
