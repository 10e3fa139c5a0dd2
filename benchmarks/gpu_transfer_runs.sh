#!/usr/bin/env bash
# The GPU arms of benchmarks/RESULTS.md (issue 19): trainings of benchmarks/gpu_transfer.py side
# by side on one GPU, each for BUDGET_S seconds of its own training time.
#   usage: benchmarks/gpu_transfer_runs.sh PACK OUTDIR [BUDGET_S] [GROUP]
# GROUP "scale" (session 30, "A residue CNN trained on a GPU"): six arms, scored every 60 s.
# GROUP "residual" (session 31, "The sketch in the loss"): four arms of the small CNN, each scored
# every 105 s alone and mixed into the shipped sketch model (the default model until session 31) at
# weight 0.1.
set -u
pack=$1
out=$2
budget=${3:-300}
group=${4:-scale}
export PYTHONPATH=src PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
mkdir -p "$out"
arm() {
    local name=$1
    shift
    "${PYTHON:-python3}" -m benchmarks.gpu_transfer train --pack "$pack" --out "$out/$name" \
        --budget-s "$budget" --crop 256 --eval-len 2048 "$@" >"$out/$name.log" 2>&1 &
}
if [ "$group" = scale ]; then
    arm cnn128_s0 --eval-every-s 60 --seed 0   # the shipped CNN's size (0.6M parameters)
    arm cnn128_s1 --eval-every-s 60 --seed 1
    arm cnn128_s2 --eval-every-s 60 --seed 2
    arm cnn128_half --eval-every-s 60 --seed 0 --family-fraction 0.5  # is data the limit?
    arm cnn512 --eval-every-s 60 --dim 512 --layers 12 --lr 5e-4   # is capacity the limit?
    arm tf320 --eval-every-s 60 --arch transformer --dim 320 --layers 6 --heads 8 --lr 5e-4
else
    sk=(--eval-every-s 105 --sketch-model src/phyloclr/data/sketch_model.pt --mix-weight 0.1)
    arm cnn128_s0 "${sk[@]}" --seed 0           # session 30's recipe, the candidate to ship
    arm cnn128_s1 "${sk[@]}" --seed 1
    arm cnn128_s2 "${sk[@]}" --seed 2
    # the sketch in the loss: InfoNCE on 0.9 x the sketch's cosine + 0.1 x the CNN's
    arm res_t05 "${sk[@]}" --seed 0 --residual 0.9 --temperature 0.05
fi
wait
