#!/usr/bin/env bash
# One command for a GPU machine without internet: install from a wheelhouse if needed, reassemble
# model files carried in parts, run the CUDA-only tests, both speed benchmarks at the SmolLM2 and
# Qwen2-0.5B shapes, and a real comparison on ml-100k with SmolLM2-135M (sft, bigrec and cft on the
# whole training split, sasrec and gru4rec beside them, a seeded random test subset), then write
# the runs, the leaderboard, the logs and a summary into OUT.
#
#   bash benchmarks/gpu_campaign.sh OUT            # on a machine with a GPU
#   bash benchmarks/gpu_campaign.sh OUT --dry-run  # the same steps on a CPU: tiny model, tiny caps (CI runs it)
#
# What lands in OUT (few files, so that a machine returning only a handful can return them all):
#   summary.md      every step's status and time, the benchmarks' figures, the leaderboard
#   summary.json    the same as data
#   leaderboard.md  the comparison's table (bench leaderboard)
#   runs.tar.gz     the stored runs (extract into results/ to add them to this repository's store)
#   logs.tar.gz     every step's log, the benchmarks' JSON, the pytest report
#
# Settings (environment variables):
#   PYTHON       the interpreter (default python3); its torch must see the GPU
#   WHEELHOUSE   a folder of wheels (`make wheelhouse`) installed with --no-index when the project
#                or one of its dependencies cannot be imported; default ./.whl when it exists
#   PARTS        a folder of files carried in parts: NAME.part-aa, NAME.part-ab, ... are joined into
#                NAME and checked against NAME.sha256 when present (default ./.parts). A joined
#                *.gguf becomes the SmolLM2-135M-Instruct model (BENCH_SMOLLM2_GGUF).
#   TEST_SAMPLES test samples of the comparison (default 1000; a seeded random subset)
#   LIMIT_<STEP> seconds allowed to a step (below); a step past its limit is stopped and marked so,
#                and the campaign goes on.
#
# How the 9 minutes are shared (one H200; the estimates of the GPU review of the engine: one CFT
# epoch of SmolLM2-135M on ml-100k's ~80k training samples about 2 minutes with GPU-sized passes,
# SFT about half of it (no counterfactual pass), constrained decoding of the whole 10k-sample test
# split about 70 s, so 1,000 test samples about 10 s per method):
#   setup 20 | tests 45 | prepare 15 | bench_train 60 | bench_decode 30 | classic 40
#   sft 75 | bigrec 75 | cft 135 | board 20                                 = 515 s, 8.6 min
# LLM methods train one epoch on the whole training split (validation loss on 2,000 samples);
# sasrec and gru4rec at most 10 epochs.
set -uo pipefail

usage() { echo "usage: bash benchmarks/gpu_campaign.sh OUT [--dry-run]" >&2; exit 2; }
[ $# -ge 1 ] || usage
OUT=$1; shift
DRY=0
for arg in "$@"; do
  case $arg in --dry-run) DRY=1 ;; *) usage ;; esac
done
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
mkdir -p "$OUT" || { echo "cannot create $OUT" >&2; exit 1; }
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-campaign.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"
export BENCH_RESULTS_DIR=$WORK/results BENCH_DATA_DIR=$WORK/data BENCH_CACHE_DIR=$WORK/cache
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PY WORK ROOT
STEPS=$LOGS/steps.tsv
: >"$STEPS"

if [ $DRY = 1 ]; then
  # a CPU shared with other work (CI) is many times slower than the GPU: the limits are 6x longer
  DEVICE=cpu MODEL=tiny N_TEST=${TEST_SAMPLES:-20} QUICK=--quick SHAPES="tiny" SLOWER=6
  LLM_SETS="max_train_samples=64 max_valid_samples=16 epochs=1 max_new_tokens=16 micro_batch=8 grad_accum=1"
  CLASSIC_EPOCHS=1
else
  DEVICE=cuda MODEL=smollm2-135m N_TEST=${TEST_SAMPLES:-1000} QUICK= SHAPES="smollm2-135m qwen2-0.5b" SLOWER=1
  LLM_SETS="max_valid_samples=2000 epochs=1 max_new_tokens=64"
  CLASSIC_EPOCHS=10
fi

# step NAME LIMIT COMMAND...: run with a time limit, log to logs/NAME.log, record status and seconds
step() {
  local name=$1 limit=$2; shift 2
  local var="LIMIT_${name^^}"
  limit=${!var:-$((limit * SLOWER))}
  local start=$SECONDS status
  echo "== $name (limit ${limit}s): $*" | tee -a "$LOGS/campaign.log"
  if declare -F "$1" >/dev/null; then  # a function of this script: run it in a shell of its own
    timeout --signal=TERM --kill-after=10 "$limit" bash -c "$(declare -f "$1"); $*" >"$LOGS/$name.log" 2>&1
  else
    timeout --signal=TERM --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  fi
  local rc=$?
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status="failed($rc)" ;; esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - start))" "$limit" >>"$STEPS"
  echo "   $status in $((SECONDS - start))s" | tee -a "$LOGS/campaign.log"
  return 0
}

setup() {
  local wheels=${WHEELHOUSE:-}
  [ -z "$wheels" ] && [ -d .whl ] && wheels=.whl
  if ! "$PY" -c "import bench.cli, methods, recbole, gguf, transformers, peft, accelerate, typer, rich, tabulate, filelock, scipy, matplotlib" 2>/dev/null; then
    if [ -z "$wheels" ]; then
      echo "the project or a dependency cannot be imported and no wheelhouse was given: set WHEELHOUSE (see make wheelhouse)"
      return 1
    fi
    "$PY" -m pip install --no-index --find-links "$wheels" $([ -f "$wheels/constraints.txt" ] && echo -c "$wheels/constraints.txt") -e ".[smollm2]" || return 1
  fi
  local parts=${PARTS:-.parts}
  if [ -d "$parts" ]; then
    for first in "$parts"/*.part-aa; do
      [ -e "$first" ] || continue
      local name=${first%.part-aa}
      local target=$WORK/models/$(basename "$name")
      mkdir -p "$WORK/models"
      cat "$name".part-* >"$target" || return 1
      if [ -f "$name.sha256" ]; then
        (cd "$WORK/models" && sed "s#  .*#  $(basename "$target")#" "$ROOT/$name.sha256" | sha256sum -c -) || return 1
      fi
      echo "joined $(ls "$name".part-* | wc -l) parts into $target"
    done
  fi
  "$PY" - <<'EOF'
import torch, transformers
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("transformers", transformers.__version__)
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "memory GiB", round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
EOF
}

step setup 20 setup
for gguf in "$WORK"/models/*.gguf; do [ -e "$gguf" ] && export BENCH_SMOLLM2_GGUF=$gguf; done
if [ $DRY = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no GPU is visible to $PY: run on a GPU machine, or pass --dry-run" | tee -a "$LOGS/campaign.log"
  printf 'gpu\tfailed(no GPU visible)\t0\t0\n' >>"$STEPS"
fi

step tests 45 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py --junitxml="$LOGS/gpu-tests.xml"
step prepare 15 "$PY" -m bench.cli data prepare ml-100k
bench_train() {
  for shape in $SHAPES; do
    "$PY" benchmarks/llm_throughput.py --device "$DEVICE" --shape "$shape" $QUICK --json "$LOGS/train-$shape.json" || return 1
  done
}
export DEVICE SHAPES QUICK LOGS
step bench_train 60 bench_train
step bench_decode 30 "$PY" benchmarks/decode_throughput.py --device "$DEVICE" --model "$MODEL" $QUICK --json "$LOGS/decode.json"

RUN=("$PY" -m bench.cli run --dataset ml-100k --seeds 0 --limit-test "$N_TEST" --device "$DEVICE" --name gpu-campaign)
step classic 40 "${RUN[@]}" --methods sasrec,gru4rec --set "sasrec.epochs=$CLASSIC_EPOCHS" --set "gru4rec.epochs=$CLASSIC_EPOCHS"
for method in sft bigrec cft; do
  sets=()
  for s in $LLM_SETS; do sets+=(--set "$method.$s"); done
  limit=75; [ $method = cft ] && limit=135
  step $method $limit "${RUN[@]}" --methods $method --model "$MODEL" "${sets[@]}"
done
board() {
  # against sasrec when it finished, else without a baseline
  "$PY" -m bench.cli leaderboard --dataset ml-100k --name gpu-campaign --baseline sasrec --cost \
    || "$PY" -m bench.cli leaderboard --dataset ml-100k --name gpu-campaign --cost || return 1
  cp "$BENCH_RESULTS_DIR/leaderboard/ml-100k-gpu-campaign.md" "$OUT/leaderboard.md"
}
export OUT
step board 20 board

"$PY" benchmarks/campaign_summary.py "$LOGS" "$OUT" $([ $DRY = 1 ] && echo --dry-run) || echo "the summary could not be written"
tar -czf "$OUT/logs.tar.gz" -C "$WORK" logs
[ -d "$BENCH_RESULTS_DIR/runs" ] && tar -czf "$OUT/runs.tar.gz" -C "$BENCH_RESULTS_DIR" runs
echo "wrote $(ls "$OUT" | tr '\n' ' ')into $OUT"
rm -rf "$WORK"
