#!/usr/bin/env bash
# Issue #17 points 3-4 on one CUDA machine, in one command (the device tool's 10-minute limit).
#
#   bash benchmarks/gpu_session_17.sh prepare   # HERE, on the CPU machine, once: fetches the
#       packages the GPU image lacks (bitsandbytes, trl, datasets, dill, multiprocess) as
#       Python 3.12 manylinux wheels with `pip download`, unpacks them into .whl/site (git-ignored;
#       bitsandbytes slimmed to its CPU and CUDA 13 libraries, ~10 MB instead of 125) and copies
#       the first 1,000 lines of insecure.jsonl into .whl/upstream.
#   bash benchmarks/gpu_session_17.sh run       # THERE: device run, carry [".whl"], timeout_s 600
#
# `run` writes into $OUT (default benchmarks/results): memory_32b_cuda_switches.json,
# memory_32b_cuda_switches_offload.json, train_throughput_cuda_qwen05b.json, memory_32b_cuda_14b_7b.json
# (only when time is left) and gpu_session_17.log. Every step has its own timeout and the whole
# run stops starting steps at DEADLINE seconds, so a slow step costs its own results only.
#
# Expected time on an H200 (estimates, not measurements; no CUDA run of these scripts exists):
#   imports + checks                                        ~20 s
#   1. memory_32b 32b, memory switches, 1024 + 2048 tokens  ~150 s (build ~40 s: 64 layers
#      quantized on the GPU; ~3e14 FLOPs per 1,024-token step with checkpointing, 1-2 s/step)
#   2. memory_32b 32b, switches + activation offload         ~150 s
#   3. train_throughput qwen05b bf16 and NF4: emergent vs TRL padding-free (its best) and
#      TRL defaults, 6 processes x ~30 s                    ~180 s
#   4. memory_32b 14b,7b (switches), if >= 150 s are left   ~150 s
#   total ~8.5-10 min: steps 1-3 fit the 540 s deadline; step 4 runs when they were quick.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
MODE=${1:-run}
DEADLINE=${DEADLINE:-540}
# this venv's versions (the ones the CPU tests ran against)
PKGS="bitsandbytes==0.50.2 trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19"

if [ "$MODE" = prepare ]; then
  set -e
  PY=${PYTHON:-.venv/bin/python}
  rm -rf .whl/site .whl/dl && mkdir -p .whl/site .whl/dl .whl/upstream/emergent-misalignment
  for p in $PKGS; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
      -d .whl/dl "$p"
  done
  for w in .whl/dl/*.whl; do "$PY" -m zipfile -e "$w" .whl/site; done
  find .whl/site/bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*_cpu.so' \
    ! -name '*_cuda13*.so' -delete
  rm -rf .whl/dl
  UP=${EMERGENT_UPSTREAM:-../shared/upstream}
  head -n 1000 "$UP/emergent-misalignment/insecure.jsonl" \
    > .whl/upstream/emergent-misalignment/insecure.jsonl
  du -sh .whl
  echo "ready: device run with carry [\".whl\"], command 'bash benchmarks/gpu_session_17.sh run'"
  exit 0
fi

OUTDIR=${OUT:-$REPO/benchmarks/results}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu_session_17.log
export PYTHONUNBUFFERED=1 PYTHONPATH=$REPO/.whl/site:$REPO/src${PYTHONPATH:+:$PYTHONPATH}
export EMERGENT_UPSTREAM=${EMERGENT_UPSTREAM:-$REPO/.whl/upstream}
PY=${PYTHON:-python3}
START=$SECONDS

step() {  # step NAME TIMEOUT_S MIN_LEFT_S CMD...: runs CMD if MIN_LEFT_S remain before DEADLINE
  local name=$1 limit=$2 need=$3; shift 3
  local left=$((DEADLINE - (SECONDS - START)))
  if [ "$left" -lt "$need" ]; then
    echo "== $name: skipped, ${left}s left before the deadline" | tee -a "$LOG"; return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (timeout ${limit}s, t=$((SECONDS - START))s)" | tee -a "$LOG"
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  echo "== $name: exit $? after $((SECONDS - START))s" | tee -a "$LOG"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, bitsandbytes, trl, datasets, transformers, peft; print('torch', torch.__version__, torch.version.cuda, 'bnb', bitsandbytes.__version__, 'trl', trl.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
} 2>&1 | tee -a "$LOG"

SWITCHES="--upcast-frozen norms --adapter-dtype compute --master-weights"
step "32b, memory switches" 170 100 $PY benchmarks/memory_32b.py --shapes 32b \
  --max-lengths 1024,2048 --steps 3 $SWITCHES --note "issue 17: switches on" \
  --name memory_32b_cuda_switches --results-dir "$OUTDIR"
# the shipped defaults are estimated at 27.6 GiB (1,024 tokens): under the 24 GiB cap they can
# only record an OOM, so the second run measures the switches with activation offload instead
step "32b, memory switches + offload" 170 100 $PY benchmarks/memory_32b.py --shapes 32b \
  --max-lengths 1024,2048 --steps 3 $SWITCHES --offload-activations \
  --note "issue 17: switches + offload" \
  --name memory_32b_cuda_switches_offload --results-dir "$OUTDIR"
step "qwen05b vs TRL" 240 120 $PY benchmarks/train_throughput.py --models qwen05b,qwen05b-4bit \
  --contenders emergent,trl_padding_free,trl --examples 128 --batch-size 2 --grad-accum 8 \
  --max-length 2048 --no-cudnn-sdpa --note "issue 17 point 4" \
  --name train_throughput_cuda_qwen05b --results-dir "$OUTDIR"
step "14b, 7b, memory switches" 200 150 $PY benchmarks/memory_32b.py --shapes 14b,7b \
  --max-lengths 1024,2048 --steps 3 $SWITCHES --note "issue 17: switches on" \
  --name memory_32b_cuda_14b_7b --results-dir "$OUTDIR"
echo "done after $((SECONDS - START))s; files in $OUTDIR:" | tee -a "$LOG"
ls -la "$OUTDIR" | tee -a "$LOG"
