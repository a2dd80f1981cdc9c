"""News embedding throughput: newsrec's batched, length-sorted LM encoding vs the Vespa tutorial's
one-article-at-a-time loop, same model (all-MiniLM-L6-v2 by default), same process, same texts.

    python bench/bench_embed.py --mind bench/out/small/mind --news 2000 --loop-news 200

Texts are each news item's title and abstract (as `newsrec train` / `newsrec-feed` encode them).
The loop baseline runs on a prefix (--loop-news) and is reported per item, so the ratio compares
rates. Also times the model's news encoder + user encoder given cached LM vectors (--model).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from pipeline.mind import read_mind
from pipeline.text_encoder import TextEncoderConfig, encode_texts, load_language_model, pick_device


def per_article_loop(texts: list[str], tokenizer, model, max_tokens: int, device) -> np.ndarray:
    """The tutorial's way: tokenize and run the model on one text at a time."""
    out = []
    model = model.to(device).eval()
    with torch.no_grad():
        for text in texts:
            tokens = tokenizer(text, truncation=True, max_length=max_tokens, return_tensors="pt").to(device)
            out.append(model(**tokens).last_hidden_state.mean(1)[0].cpu().numpy())
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mind", required=True)
    parser.add_argument("--news", type=int, default=2000)
    parser.add_argument("--loop-news", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    news = read_mind(args.mind).news
    config = TextEncoderConfig()
    tokenizer, model = load_language_model(config.model)
    titles, abstracts = news.title[:args.news], news.abstract[:args.news]

    def batched() -> float:
        started = time.perf_counter()
        encode_texts(titles, tokenizer, model, config.title_tokens, config.batch_size, device)
        encode_texts(abstracts, tokenizer, model, config.abstract_tokens, config.batch_size, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return len(titles) / (time.perf_counter() - started)

    def loop() -> float:
        started = time.perf_counter()
        per_article_loop(titles[:args.loop_news], tokenizer, model, config.title_tokens, device)
        per_article_loop([a for a in abstracts[:args.loop_news]], tokenizer, model, config.abstract_tokens, device)
        return args.loop_news / (time.perf_counter() - started)

    batched_rates = [batched() for _ in range(args.repeats)]
    loop_rates = [loop() for _ in range(args.repeats)]
    fast, slow = statistics.median(batched_rates), statistics.median(loop_rates)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'})")
    print(f"newsrec batched, length-sorted : {fast:8.1f} news/s (title + abstract; median of {args.repeats})")
    print(f"per-article loop (tutorial)    : {slow:8.1f} news/s")
    print(f"speed-up                       : {fast / slow:8.1f} x")


if __name__ == "__main__":
    main()
