"""FUM's word features, measured side by side (issue 15): titles only (the default) against titles followed by
the start of each clicked abstract, trained the same way on the same data and scored on the same dev split.

    python3 bench/fum_ablation.py                        # world v2 small, latest 20,000 train impressions, 1 epoch
    python3 bench/fum_ablation.py --impressions 0 --epochs 2

A reduced budget (CPU): read the two rows against each other, not against the model table's FUM row.
Writes bench/results/fum_ablation.json.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from newsrec.bench.common import machine
from newsrec.pipeline.demo_data import config_for, generate
from newsrec.pipeline.evaluation import evaluate_model
from newsrec.pipeline.mind import read_mind
from newsrec.pipeline.models import fum
from newsrec.pipeline.training import TrainConfig, train

FROM_VOCABULARY = fum.FUMConfig.from_vocabulary.__func__
VARIANTS = {"titles (16 pieces)": 0, "titles + abstracts (16 + 16 pieces)": 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=20_000, help="latest train impressions (0 = all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out", default="bench/out/small-v2")
    args = parser.parse_args()
    mind = Path(args.out) / "mind"
    if not (mind / "dev" / "truth.txt").is_file():
        generate(mind, config_for("small", 0, "v2"))
    dataset = read_mind(mind)
    rows = []
    for name, abstract_words in VARIANTS.items():
        fum.FUMConfig.from_vocabulary = classmethod(  # the variant's config; its checkpoint records it
            lambda cls, vocab, settings, words=abstract_words: replace(FROM_VOCABULARY(cls, vocab, settings),
                                                                       abstract_words=words))
        out = Path(args.out) / "ablation" / f"fum-abstract-{abstract_words}"
        report = train(mind, out, TrainConfig(model="fum", epochs=args.epochs, recall_epochs=0,
                                              max_impressions=args.impressions), dataset=dataset)
        evaluation = evaluate_model(out, dataset, name=name)
        rows.append({"variant": name, "abstract_words": abstract_words, "dev": asdict(evaluation.ranking),
                     "recall@100 day": evaluation.recall["dev-day pool"][100],
                     "train_seconds": sum(e["seconds"] for s in report["stages"] for e in s["epochs"])})
        print(json.dumps(rows[-1]), flush=True)
    result = {"machine": machine(), "impressions": args.impressions, "epochs": args.epochs, "rows": rows}
    Path("bench/results/fum_ablation.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
