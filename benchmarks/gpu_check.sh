#!/usr/bin/env bash
# One prepared GPU check of the student (under 9 minutes on one H200), from the repository root:
#   1. the d_model-64 item-id recipe for one epoch alone, eager and then under torch.compile with CUDA graphs
#      (reduce-overhead, prompts padded to multiples of 8: a few shapes to record) (steps/s steady and with
#      start-up, epoch seconds; fused AdamW, no host read per step); then side by side on the one
#      GPU: the GPU recipe's student (recipes/{beauty,sports}/train/config_gpu.yaml: small preset, bf16, validation NDCG@10 every epoch, early stopping, best weights kept) and SASRec
#      (benchmarks/bench_quality.py --device cuda), on beauty and sports;
#   2. each student evaluated on the GPU (recipes/<dataset>/evaluation/config_item_ids.yaml: the same seeded
#      5,000 test users as SASRec's --test-users 5000);
#   3. benchmarks/bench_generation.py --device cuda with batch sizes up to 256, alone on the GPU;
#   4. benchmarks/gpu_check_summary.py: steps/s, epoch seconds and NDCG@10 beside SASRec's, into gpu_check.json.
#
#   benchmarks/gpu_check.sh            # on a machine with a GPU; logs in runs/gpu_check/results (the summary, SASRec's
#                                      # results, the generation table and the logs' archive also in $OUT when set)
#   benchmarks/gpu_check.sh --smoke    # the same commands for a few steps on the CPU, on small samples
#
# The lent GPU image has torch and transformers but not datasets, dill, multiprocess, evaluate, trl, nltk or
# rouge-score, and it cannot reach ../shared: carry both in ignored folders of the checkout (the device tool's
# `carry`), made here with `benchmarks/gpu_check.sh --prepare`:
#   .whl/          pure-Python wheels for Python 3.12 (pip download), installed with pip --target /tmp/site
#   .gpu_shared/   a copy of ../shared's beauty and sports splits and T5 vocabulary (RDREC_SHARED points to it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MODE=${1:-}

if [[ "$MODE" == "--prepare" ]]; then
  grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >>.git/info/exclude
  grep -qx '/.gpu_shared/' .git/info/exclude || echo '/.gpu_shared/' >>.git/info/exclude
  shared=${RDREC_SHARED:-../shared}
  mkdir -p .gpu_shared/data/amazon-p5 .gpu_shared/tokenizers
  cp -r "$shared/data/amazon-p5/beauty" "$shared/data/amazon-p5/sports" .gpu_shared/data/amazon-p5/
  cp -r "$shared/tokenizers/t5" .gpu_shared/tokenizers/
  platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
    -d .whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 evaluate==0.4.6 trl==1.16.0 nltk==3.10.4
  $PY -m pip wheel -q --no-deps -w .whl rouge_score==0.1.2  # PyPI has only an sdist
  du -sh .whl .gpu_shared
  exit 0
fi

SMOKE=0
[[ "$MODE" == "--smoke" ]] && SMOKE=1
if [[ -n "$MODE" && $SMOKE == 0 ]]; then echo "usage: $0 [--smoke|--prepare]" >&2; exit 2; fi
if [[ -d .whl ]] && ! $PY -c "import datasets, trl, evaluate" 2>/dev/null; then  # the lent image lacks them
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
[[ -d .gpu_shared ]] && export RDREC_SHARED=$PWD/.gpu_shared
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
RUNS=runs/gpu_check
RESULTS=$RUNS/results
mkdir -p "$RESULTS" "$RUNS"
started=$(date +%s)
failed=0
archive() {  # the device tool brings back a few files from $OUT: the summary, SASRec's results and the rest archived
  [[ -n "${OUT:-}" ]] || return 0
  cp "$RESULTS"/gpu_check.json "$RESULTS"/generation.md "$RESULTS"/sasrec_*.json "$OUT/" 2>/dev/null || true
  (cd "$RUNS" && tar -czf "$OUT/gpu_check_runs.tar.gz" results $(ls -d ./*/*.json ./*/eval/*.json ./*/eval/*.md 2>/dev/null)) || true
}
trap archive EXIT
trap 'echo "stopped after $(( $(date +%s) - started )) s"; exit 143' TERM INT

if [[ $SMOKE == 1 ]]; then
  DEVICE=cpu
  # A few steps of everything: a tiny student, two evaluations of 100 steps' worth, one SASRec epoch.
  STUDENT=(--model_preset tiny --item_embedding_init_max_epochs 1 --max_steps 4 --eval_strategy steps --eval_steps 2 --save_strategy steps --save_steps 2
           --rank_eval_max_users 20 --eval_max_examples_per_task 8 --benchmark_wall_minutes 2 --user_limit 300 --use_cpu true)
  SPEED=(--model_preset tiny --max_steps 4 --logging_steps 1 --user_limit 300 --item_embedding_init transitions
         --recommender_distillation_weight 0 --optim adamw_torch_fused)
  EVALUATE=(--max_users 50)
  SASREC=(--max-epochs 1 --test-users 50 --patience 1)
  GENERATION=(--preset tiny --batch-sizes 1 4 --repeats 1 --tables batch --reference-max-batch 1)
  export OMP_NUM_THREADS=1
else
  DEVICE=cuda
  # STUDENT_OPTIONS / SASREC_SECONDS shorten the check when less device time is left (e.g. "--num_train_epochs 10").
  read -r -a extra <<<"${STUDENT_OPTIONS:-}"
  STUDENT=(--benchmark_wall_minutes 4 --tf32 true "${extra[@]}")
  # one epoch of beauty, batch 256; the step of the recipe without its 8-minute SASRec start and teacher
  SPEED=(--max_steps 611 --benchmark_wall_minutes 1.5 --tf32 true --bf16 true --logging_nan_inf_filter false
         --item_embedding_init transitions --recommender_distillation_weight 0 --optim adamw_torch_fused)
  EVALUATE=()
  SASREC=(--wall-budget-s "${SASREC_SECONDS:-240}" --test-users 5000 --threads 4)
  GENERATION=(--batch-sizes 1 8 32 128 256 --tables batch --repeats "${GENERATION_REPEATS:-3}")
fi

train() {  # dataset, recipe, name, extra options... (LIMIT=seconds before it: stopped then; none by default)
  local dataset=$1 recipe=$2 name=$3
  shift 3
  timeout "${LIMIT:-0}" $PY -m rdrec_hf.cli train --config "recipes/$dataset/train/$recipe" --output_dir "$RUNS/$name" \
    --overwrite_output_dir true --report_to none "$@" >"$RESULTS/$name.log" 2>&1
}

# The d_model-64 recipe's speed first, alone on the device (gpu_check_summary.py's SPEED_RUNS); then the
# trainings side by side.
train beauty config_item_ids_catalog.yaml speed_d64 "${SPEED[@]}" || failed=1
LIMIT=240 train beauty config_item_ids_catalog.yaml speed_d64_compiled "${SPEED[@]}" --torch_compile true \
  --torch_compile_mode reduce-overhead --pad_to_multiple_of 8 || failed=1
echo "speed runs done in $(( $(date +%s) - started )) s"
pids=()
for dataset in beauty sports; do
  train "$dataset" config_gpu.yaml "student_$dataset" "${STUDENT[@]}" &
  pids+=($!)
  $PY benchmarks/bench_quality.py --dataset "$dataset" --device "$DEVICE" "${SASREC[@]}" \
    --output "$RESULTS/sasrec_$dataset.json" >"$RESULTS/sasrec_$dataset.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
echo "trainings done in $(( $(date +%s) - started )) s (failed: $failed)"

pids=()
for dataset in beauty sports; do
  if [[ -f "$RUNS/student_$dataset/model.safetensors" ]]; then
    $PY -m rdrec_hf.cli evaluate --config "recipes/$dataset/evaluation/config_item_ids.yaml" \
      --model_name_or_path "$RUNS/student_$dataset" --output_dir "$RUNS/student_$dataset/eval" --device "$DEVICE" \
      "${EVALUATE[@]}" >"$RESULTS/evaluate_$dataset.log" 2>&1 &
    pids+=($!)
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
echo "evaluations done in $(( $(date +%s) - started )) s"
timeout "${GENERATION_SECONDS:-90}" $PY benchmarks/bench_generation.py --device "$DEVICE" "${GENERATION[@]}" \
  >"$RESULTS/generation.md" 2>"$RESULTS/generation.log" || failed=1
echo "generation done in $(( $(date +%s) - started )) s"
$PY benchmarks/gpu_check_summary.py --runs "$RUNS" --results "$RESULTS" --seconds $(( $(date +%s) - started )) \
  $([[ $SMOKE == 1 ]] && echo --smoke) || failed=1
exit $failed
