# Sourced by the GPU scripts (bench/gpu_unbert.sh, bench/gpu_probe_match.sh): from the repository root, $OUT made
# (bench/out/gpu by default), newsrec installed with the benchmark extras, and a stop unless CUDA is there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-bench/out/gpu}"
mkdir -p "$OUT"
python3 -m pip install -q -e '.[bench]'
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "'"${0##*/}"': no CUDA GPU")'
