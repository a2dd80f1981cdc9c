"""User embedding throughput: UniRec's user encoder over cached news vectors, newsrec's batched
inference vs one user at a time, and how its time grows with the number of users (to MIND-large's 1M).

    python3 bench/run.py users          # recorded in BENCHMARKS.md
    python3 bench/bench_users.py --quick

Histories are generated with MIND's shape (median 18 clicks, capped at the model's 50) over a
161,013-news matrix (MIND-large's count) of 64-d vectors; the model has UniRec's architecture with
fresh weights (throughput does not depend on the weights). Both paths produce the same vectors.
"""
from __future__ import annotations

import numpy as np
import torch

from newsrec.bench.common import growth_exponent, growth_verdict, machine, plot, row_main, side_by_side, table, timed
from newsrec.pipeline.device import pick_device
from newsrec.pipeline.inference import USER_BATCH, encode_users
from newsrec.pipeline.mind import Behaviors
from newsrec.pipeline.models.layers import NewsEncoderConfig
from newsrec.pipeline.models.unirec import UniRec, UniRecConfig

NEWS = 161_013
MAX_HISTORY = 50


def histories(users: int, seed: int = 0) -> Behaviors:
    """One impression per user whose history has MIND's length distribution; no candidates."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(18), 1.0, users)), 0, 300).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    empty = np.zeros(0, dtype=np.int32)
    return Behaviors("bench", "generated", np.arange(users, dtype=np.int64), np.arange(users, dtype=np.int32),
                     np.zeros(users, dtype=np.int64), offsets, rng.integers(0, NEWS, offsets[-1]).astype(np.int32),
                     np.zeros(users + 1, dtype=np.int64), empty, empty.astype(np.int8))


def model_and_news(device: torch.device) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    news = NewsEncoderConfig(text_dim=384, num_categories=20, num_subcategories=300, num_entities=1000, dim=64)
    model = UniRec(UniRecConfig(news=news)).to(device).eval()
    return model, torch.nn.functional.normalize(torch.randn(NEWS, 64, device=device), dim=-1)


def run(quick: bool) -> dict:
    device = pick_device("auto")
    model, news = model_and_news(device)

    def batched(behaviors: Behaviors):
        impressions = np.arange(behaviors.num_impressions)
        return lambda: encode_users(model, news, behaviors, impressions, np.zeros(len(impressions), np.int64),
                                    MAX_HISTORY, device)

    def one_at_a_time(behaviors: Behaviors):
        rows = np.zeros(behaviors.num_impressions, np.int64)
        return lambda: [encode_users(model, news, behaviors, np.array([i]), rows, MAX_HISTORY, device, batch_size=1)
                        for i in range(behaviors.num_impressions)]

    fast_users, loop_users = (5_000, 300) if quick else (100_000, 2_000)
    fast, slow = side_by_side(batched(histories(fast_users)), one_at_a_time(histories(loop_users)), 3)
    check = histories(200)
    same = (batched(check)()[0] - torch.cat([r[0] for r in one_at_a_time(check)()])).abs().max().item()
    batched(histories(1_000))()  # warm-up, so the smallest size is not charged for first-call costs
    sizes = [1_000, 10_000, 30_000] if quick else [10_000, 100_000, 300_000, 1_000_000]
    curve = [timed(batched(histories(n)))[0] for n in sizes]
    return {"machine": machine(), "device": str(device), "fast_users": fast_users, "loop_users": loop_users,
            "batched_rate": fast_users / fast, "loop_rate": loop_users / slow, "max_difference": same,
            "curve": {"users": sizes, "seconds": curve}, "batch": USER_BATCH.get(device.type, USER_BATCH["cuda"])}


def render(data: dict) -> str:
    curve = data["curve"]
    exponent = growth_exponent(curve["users"], curve["seconds"])
    path = plot("embed_users", "User embedding (UniRec user encoder, cached news vectors)", "users", "seconds",
                {f"newsrec batched ({data['device']})": (curve["users"], curve["seconds"])},
                quick=data.get("quick", False))
    largest = curve["users"][-1]
    return f"""## User embedding: batched vs one user at a time

`python3 bench/run.py users`

UniRec's user encoder (history attention + top-P interest bases → a ranking and a recall vector) over
cached news vectors, on {data['device']}: histories with MIND's length distribution (median 18,
the latest 50 used) over 161,013 news. Rates: batched on {data['fast_users']:,} users, the loop on
{data['loop_users']:,}; both give the same vectors (max difference {data['max_difference']:.0e}).

{table(["encoder", "users/s", "ratio"], [
        [f"newsrec: chunks of {data.get('batch', 2048):,}, gathered history matrix", f"{data['batched_rate']:,.0f}", ""],
        ["one user at a time", f"{data['loop_rate']:,.0f}", ""],
        ["**speed-up**", "", f"**{data['batched_rate'] / data['loop_rate']:.0f}×**"]])}

{largest:,} users took {curve['seconds'][-1]:.1f} s (GPU target: 1M users in under 10 s). Time grows
{growth_verdict(exponent)} with the number of users (log-log slope {exponent:.2f} between the two largest sizes).

![user embedding time vs number of users]({path})"""


if __name__ == "__main__":
    row_main(__doc__, run, render)
