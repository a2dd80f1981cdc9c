#!/usr/bin/env bash
# The GPU checks as one command for a lent GPU machine (the `device` tool), sized for its ~15 minutes:
# UNBERT trained on every train impression of world v2 small with the full budgets (32 title + 128
# history word pieces; bf16 autocast on CUDA), then the funnel row (bench/bench_unbert.py) with that model.
# CPU here trains on 2,000 impressions only (BENCHMARKS "UNBERT"). Results land in $OUT (or bench/out/gpu).
#   bash bench/gpu_unbert.sh   (the second GPU check, after bench/gpu.sh: UNBERT at full budgets, ~10 min)
source "$(dirname "$0")/gpu_prelude.sh"  # repository root, $OUT, install, CUDA or stop
SMALL=bench/out/small-v2
[ -f "$SMALL/mind/dev/behaviors.tsv" ] || newsrec demo-data "$SMALL/mind" --size small
[ -f "$SMALL/runs/unirec/model.pt" ] || newsrec train "$SMALL/mind" --out "$SMALL/runs/unirec" --device cuda
# the whole batch in one pass (128 clicks x 5 candidates x 161 pieces; bf16 fits an 80 GB GPU), not CPU's slices
newsrec train "$SMALL/mind" --out "$SMALL/runs/unbert-gpu" --model unbert --epochs 1 --lr 2e-5 \
    --batch-size 128 --model-option pieces_per_pass=103040 --device cuda 2>&1 | tee "$OUT/unbert-train.log"
NEWSREC_UNBERT_DIR="$SMALL/runs/unbert-gpu" python3 bench/bench_unbert.py | tee "$OUT/unbert-funnel.md"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv > "$OUT/gpu.csv"
