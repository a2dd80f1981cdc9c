#!/usr/bin/env bash
# The GPU checks as one command for a lent GPU machine (the `device` tool; ~15 minutes in all, so this is sized
# to finish in under 8): install, then bench/bench_gpu.py measures news embedding of 161k news (bf16), 1M users,
# training throughput (UniRec cached / fine-tuning, FUM, UNBERT) and UNBERT re-ranking latency per N, and writes
# bench/results/gpu.json (copied to $OUT when set). Commit that file; `python3 bench/run.py --render` puts it
# into BENCHMARKS.md.
#   bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[bench]'
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "bench/gpu.sh: no CUDA GPU")'
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
timeout 480 python3 bench/bench_gpu.py --device cuda
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && cp bench/results/gpu.json "$OUT/"; fi
