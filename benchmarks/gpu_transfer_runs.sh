#!/usr/bin/env bash
# The GPU arms of benchmarks/RESULTS.md, "A residue encoder trained on a GPU" (issue 19): six
# trainings of benchmarks/gpu_transfer.py side by side on one GPU, each for BUDGET_S seconds of
# its own training time, scored on the development sets every 60 s.
#   usage: benchmarks/gpu_transfer_runs.sh PACK OUTDIR [BUDGET_S]
set -u
pack=$1
out=$2
budget=${3:-300}
export PYTHONPATH=src PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
mkdir -p "$out"
arm() {
    local name=$1
    shift
    "${PYTHON:-python3}" -m benchmarks.gpu_transfer train --pack "$pack" --out "$out/$name" \
        --budget-s "$budget" --eval-every-s 60 --crop 256 --eval-len 2048 "$@" \
        >"$out/$name.log" 2>&1 &
}
arm cnn128_s0 --seed 0                       # the shipped CNN's size (0.6M parameters)
arm cnn128_s1 --seed 1
arm cnn128_s2 --seed 2
arm cnn128_half --seed 0 --family-fraction 0.5  # half the families: is data the limit?
arm cnn512 --dim 512 --layers 12 --lr 5e-4   # 30x the parameters: is capacity the limit?
arm tf320 --arch transformer --dim 320 --layers 6 --heads 8 --lr 5e-4  # ESM-2 8M's shape
wait
