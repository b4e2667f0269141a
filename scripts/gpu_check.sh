#!/usr/bin/env bash
# The one-shot GPU check: everything a lent H100/H200 should run for graphpro_ext, in one call of
# at most ~8 minutes, writing under one output folder. In order:
#   1. build    the extension for the local GPU: GRAPHPRO_CUDA=ON, GRAPHPRO_CUDA_ARCHS=90, all cores
#   2. tests    the CUDA tests (-m cuda and every CPU==CUDA parity test; -k "cuda or parity"),
#               with a per-test timeout
#   3. memcheck compute-sanitizer --tool memcheck over scripts/sanitizer_cases.py (every CUDA
#               kernel once, fwd+bwd, heavy row, fp32/fp16, int32/int64 columns), no caching
#               allocator; racecheck too when a kernel uses shared memory (none does today)
#   4. bench    benchmarks/bench_ops.py --device cuda on amazon + gowalla (all ops), and (last)
#               on a 100M-directed-edge graph (temporal_propagate, lightgcn): fwd and fwd+bwd, ours vs
#               torch.sparse.mm (cuSPARSE) vs the reference formulation, copy-bandwidth roofline
#   5. pretrain one GraphPro pre-training epoch on the Amazon snapshots with --device cuda (run
#               before the 100M-edge benchmark, the longest step, so that the budget cuts that)
#   6. a summary table (also OUT/summary.md); exit status 1 if any step failed.
# A step that fails does not stop the later ones, except the build, and a machine where torch
# sees no GPU, which stop the script there (the rest is reported as not run).
#
# usage: bash scripts/gpu_check.sh [OUT_DIR]     (default: $OUT, else ./out/gpu_check)
# Files written to OUT_DIR (at most 6, none nested, for the device tool's 8-file limit):
#   gpu_check.log (everything printed), build.log, summary.md (summary table + bench tables),
#   bench_graphs.csv, bench_100M.csv, pretrain.tar.gz (the run folder, checkpoints left out).
# Env: PYTHON (python3), GPU_CHECK_ARCHS (90), JOBS (nproc), GPU_CHECK_BUILD_LIMIT (300 s; a
# 2-core machine needs ~600), GPU_CHECK_BUDGET (510 s for the
# whole script; each step's own limit is cut to what is left), GRAPHPRO_AMAZON_DIR (else
# ./shared/data/amazon, else ../shared/data/amazon), GPU_CHECK_SKIP (comma list of steps to skip:
# tests,memcheck,bench,bench100M,pretrain).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
OUTDIR="${1:-${OUT:-$ROOT/out/gpu_check}}"
mkdir -p "$OUTDIR" || exit 2
OUTDIR="$(cd "$OUTDIR" && pwd)"
PY="${PYTHON:-python3}"
ARCHS="${GPU_CHECK_ARCHS:-90}"
JOBS="${JOBS:-$(nproc)}"
BUDGET="${GPU_CHECK_BUDGET:-510}"
SKIP=",${GPU_CHECK_SKIP:-},"
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUTDIR/gpu_check.log") 2>&1

WORK="$(mktemp -d "${TMPDIR:-/tmp}/graphpro_gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
T0=$(date +%s)
declare -a NAMES=() STATUS=() SECS=() NOTES=()
record() { NAMES+=("$1"); STATUS+=("$2"); SECS+=("$3"); NOTES+=("$4"); }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }

# run_step NAME LIMIT_S NOTE CMD...: runs CMD under `timeout` (LIMIT_S cut to the budget left),
# records PASS/FAIL/TIMEOUT with its wall time.
run_step() {
  local name="$1" limit="$2" note="$3"; shift 3
  local l; l=$(left)
  if (( l < 15 )); then
    echo "== $name: not run, the ${BUDGET} s budget is spent"
    record "$name" "NOT RUN" 0 "budget spent"; return 1
  fi
  (( limit > l )) && limit=$l
  echo "== $name (limit ${limit} s, $(date -u +%H:%M:%S) UTC): $*"
  local s rc; s=$(date +%s)
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  local dt=$(( $(date +%s) - s ))
  if (( rc == 0 )); then record "$name" PASS "$dt" "$note"
  elif (( rc == 124 || rc == 137 )); then record "$name" TIMEOUT "$dt" "$note; killed at ${limit} s"
  else record "$name" FAIL "$dt" "$note; exit $rc"; fi
  echo "== $name: ${STATUS[-1]} in ${dt} s"
  return $rc
}
skip() { [[ "$SKIP" == *",$1,"* ]]; }

summary() {
  local failed=0 i
  {
    echo "## gpu_check $(date -u '+%Y-%m-%d %H:%M UTC') — $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || echo 'no nvidia-smi')"
    echo
    local commit="not a git checkout"
    if git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
      commit="commit $(git -C "$ROOT" rev-parse --short HEAD)"
      git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit+=" + uncommitted changes"
    fi
    echo "$commit, ${TORCH_INFO:-torch ?}, archs $ARCHS, $JOBS cores, total $(( $(date +%s) - T0 )) s"
    echo
    echo "| step | status | s | note |"
    echo "|---|---|---|---|"
    for i in "${!NAMES[@]}"; do
      echo "| ${NAMES[$i]} | ${STATUS[$i]} | ${SECS[$i]} | ${NOTES[$i]} |"
      [[ "${STATUS[$i]}" == PASS || "${STATUS[$i]}" == SKIP ]] || failed=1
    done
    for f in "$WORK"/bench_*.md; do [[ -f "$f" ]] && { echo; echo "### $(basename "$f" .md)"; cat "$f"; }; done
  } >"$OUTDIR/summary.md"
  echo
  cat "$OUTDIR/summary.md"
  if (( failed )); then echo "gpu_check: FAILED (output in $OUTDIR)"; exit 1; fi
  echo "gpu_check: all steps passed (output in $OUTDIR)"
  exit 0
}
stop_here() {  # stop_here REASON: the remaining steps are reported as not run
  local s
  for s in tests memcheck bench_graphs bench_100M pretrain; do
    [[ " ${NAMES[*]} " == *" $s "* ]] || record "$s" "NOT RUN" 0 "$1"
  done
  summary
}

# ---- 0. the machine ---------------------------------------------------------------------------
echo "== gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S') UTC, $(hostname), repo $ROOT, out $OUTDIR"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | head -3
command -v nvcc >/dev/null && nvcc --version | tail -1
TORCH_INFO=""
TORCH_INFO="$("$PY" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPU visible', torch.cuda.is_available())")" \
  || { record machine FAIL 0 "$PY cannot import torch"; stop_here "no torch"; }
echo "$TORCH_INFO"
AMAZON=""
for d in "${GRAPHPRO_AMAZON_DIR:-}" "$ROOT/shared/data/amazon" "$ROOT/../shared/data/amazon"; do
  [[ -n "$d" && -f "$d/fine_tune.txt" ]] && { AMAZON="$(cd "$d" && pwd)"; break; }
done
echo "Amazon snapshots: ${AMAZON:-not found (set GRAPHPRO_AMAZON_DIR)}"

# ---- 1. build ----------------------------------------------------------------------------------
build() {
  GRAPHPRO_CUDA=ON GRAPHPRO_CUDA_ARCHS="$ARCHS" CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" \
    "$PY" -m pip install --no-index --no-build-isolation --no-deps -v -e "$ROOT" \
    -C build-dir="$WORK/build" >"$OUTDIR/build.log" 2>&1 \
    || { grep -E "error|Error|FAILED" "$OUTDIR/build.log" | head -30; tail -15 "$OUTDIR/build.log"; return 1; }
  grep "graphpro_ext: building CUDA" "$OUTDIR/build.log"
  # Run from outside the repository: the installed build, not the source tree, is what loads.
  (cd "$WORK" && "$PY" -c "
import graphpro_ext, sys
info = graphpro_ext.build_info(); print(info)
want = '$ARCHS'.replace(';', ',')
sys.exit(0 if info['with_cuda'] and info['cuda_archs'] == want else 'not a CUDA build for ' + want)")
}
export ROOT PY ARCHS JOBS WORK OUTDIR
export -f build
run_step build "${GPU_CHECK_BUILD_LIMIT:-300}" "GRAPHPRO_CUDA=ON GRAPHPRO_CUDA_ARCHS=$ARCHS, $JOBS jobs" bash -c build \
  || stop_here "the build failed"

if ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check: torch sees no GPU on this machine; every later step needs one. Stopping."
  record gpu FAIL 0 "torch.cuda.is_available() is False"
  stop_here "no GPU"
fi

# ---- 2. CUDA tests -----------------------------------------------------------------------------
timeout_args=()
"$PY" -c "import pytest_timeout" 2>/dev/null && timeout_args=(-p timeout --timeout 120)
if skip tests; then record tests SKIP 0 "GPU_CHECK_SKIP"; else
  run_step tests 180 "-k 'cuda or parity', per-test timeout ${timeout_args[*]:-none (no pytest-timeout)}" \
    "$PY" -m pytest -q -p no:cacheprovider -rfE --maxfail=25 "${timeout_args[@]}" \
    -k "cuda or parity" python_tests/test_ops_*.py python_tests/test_cuda_build.py
fi

# ---- 3. compute-sanitizer ----------------------------------------------------------------------
SANITIZER="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
             /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)"
if skip memcheck; then record memcheck SKIP 0 "GPU_CHECK_SKIP"
elif [[ -z "$SANITIZER" ]]; then record memcheck FAIL 0 "compute-sanitizer not found"
else
  run_step memcheck 120 "scripts/sanitizer_cases.py, no caching allocator" \
    env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool memcheck --error-exitcode 3 \
    --print-limit 20 --target-processes all "$PY" scripts/sanitizer_cases.py
  if grep -lq "__shared__" csrc/cuda/*.cu csrc/cuda/*.cuh; then
    run_step racecheck 90 "shared-memory kernels" \
      env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool racecheck --error-exitcode 3 \
      --print-limit 20 "$PY" scripts/sanitizer_cases.py --index int32
  else
    record racecheck SKIP 0 "no kernel in csrc/cuda uses shared memory"
  fi
fi

# ---- 4. benchmarks -----------------------------------------------------------------------------
bench_graphs="gowalla"; [[ -n "$AMAZON" ]] && bench_graphs="amazon,gowalla"
if skip bench; then record bench_graphs SKIP 0 "GPU_CHECK_SKIP"; else
  run_step bench_graphs 150 "$bench_graphs, all ops$([[ -z "$AMAZON" ]] && echo ', NO Amazon data')" \
    "$PY" benchmarks/bench_ops.py --device cuda --graphs "$bench_graphs" --amazon-dir "${AMAZON:-/nonexistent}" \
    --repeats 20 --budget 4 --copy-mb 2048 --csv "$OUTDIR/bench_graphs.csv" --markdown "$WORK/bench_graphs.md"
  [[ -z "$AMAZON" ]] && record amazon_data FAIL 0 "Amazon snapshots not found: bench and pretrain ran without them"
fi
# ---- 5. one pre-training epoch (before the 100M-edge benchmark, the longest step) -------------
if skip pretrain; then record pretrain SKIP 0 "GPU_CHECK_SKIP"
elif [[ -z "$AMAZON" ]]; then record pretrain FAIL 0 "no Amazon snapshots (GRAPHPRO_AMAZON_DIR)"
else
  run_step pretrain 120 "graphpro pretrain --preset amazon --epochs 1 --device cuda" \
    "$PY" -m graphpro_ext.graphpro pretrain --data "$AMAZON" --preset amazon --epochs 1 \
    --device cuda --out "$WORK/pretrain"
  [[ -d "$WORK/pretrain" ]] && tar -C "$WORK" --exclude='*.pt' --exclude='*.pth' \
    -czf "$OUTDIR/pretrain.tar.gz" pretrain
fi

# ---- 6. the 100M-directed-edge benchmark (its graph takes ~1-2 min to build on the host) --------
if skip bench100M; then record bench_100M SKIP 0 "GPU_CHECK_SKIP"; else
  run_step bench_100M 270 "syn100M (100M directed edges), temporal_propagate + lightgcn, d=64" \
    "$PY" benchmarks/bench_ops.py --device cuda --graphs syn100M --ops temporal_propagate,lightgcn \
    --repeats 10 --min-repeats 3 --budget 8 --no-memory --copy-mb 2048 \
    --csv "$OUTDIR/bench_100M.csv" --markdown "$WORK/bench_100M.md"
fi

summary
