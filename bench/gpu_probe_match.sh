#!/usr/bin/env bash
# UNBERT on its own probe (probe-match, size medium; issue #34), three seeds beside mean-pool, for a lent GPU
# machine (the `device` tool): UNBERT at its paper's settings (lr 2e-5, one epoch over every train impression, the
# full 30 title + 128 history word pieces, bf16 on CUDA), then bench/model_table.py's seeded table, whose UNBERT
# row is a result only for checkpoints trained on CUDA. CPU here cannot train UNBERT at this budget (hours a seed).
# Results land in $OUT (or bench/out/gpu): probe-match.md and probe-match-seeds3.json (commit it to bench/results/).
#   bash bench/gpu_probe_match.sh   (after bench/gpu.sh and bench/gpu_unbert.sh)
source "$(dirname "$0")/gpu_prelude.sh"  # repository root, $OUT, install, CUDA or stop
ROOT=bench/out/medium-probe-match
[ -f "$ROOT/mind/dev/truth.txt" ] || newsrec demo-data "$ROOT/mind" --size medium --world probe-match
for seed in 0 1 2; do
    run="$ROOT/runs/unbert"; [ "$seed" = 0 ] || run="$run-seed$seed"  # where model_table.py --reuse finds it
    [ -f "$run/model.pt" ] || newsrec train "$ROOT/mind" --out "$run" --model unbert --epochs 1 --lr 2e-5 \
        --batch-size 128 --seed "$seed" --model-option pieces_per_pass=103040 --device cuda 2>&1 \
        | tee "$OUT/probe-match-unbert-seed$seed.log"
done
python3 bench/model_table.py --size medium --world probe-match --seeds 3 --models meanpool,unbert --reuse \
    | tee "$OUT/probe-match.md"
cp "$ROOT/seeds-3.json" "$OUT/probe-match-seeds3.json"
