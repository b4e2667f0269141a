#!/usr/bin/env bash
# Compile-checks the CUDA backend without a GPU or CUDA-enabled torch:
#   * every csrc/cuda/*.cu is compiled by nvcc for sm_80 and sm_90 (device + host code, same
#     CUDA flags as CMakeLists.txt);
#   * every csrc/cuda/*_glue.cpp is syntax-checked by g++ against torch's headers plus the CUDA
#     headers (C10_CUDA_NO_CMAKE_CONFIGURE_FILE stands in for the cuda_cmake_macros.h that only
#     CUDA builds of torch ship).
# Prints one line per file; exits non-zero if any file fails. Runs two jobs at a time.
# Env: NVCC (default: nvcc on PATH, else /usr/local/bin/nvcc), CXX (g++), PYTHON (python),
#      CUDA_INCLUDE (/usr/local/cuda/include), JOBS (2).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/bin/nvcc)}"
CXX="${CXX:-g++}"
PYTHON="${PYTHON:-$(command -v python || command -v python3 || echo python)}"
CUDA_INCLUDE="${CUDA_INCLUDE:-/usr/local/cuda/include}"
JOBS="${JOBS:-2}"

if [[ ! -x "$NVCC" ]]; then
  echo "nvcc_check: nvcc not found (set NVCC)" >&2
  exit 2
fi
# -isystem: warnings inside torch's headers are not ours to fix (our files build with -Werror).
TORCH_INC="$("$PYTHON" -c "from torch.utils.cpp_extension import include_paths; print(' '.join('-isystem'+p for p in include_paths()))")" || {
  echo "nvcc_check: cannot import torch to find its include paths" >&2
  exit 2
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
GLUE_FLAGS="-std=c++20 -Wall -Werror $TORCH_INC -isystem$CUDA_INCLUDE -I csrc -D_GLIBCXX_USE_CXX11_ABI=1 -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE"
# Parsing torch's headers dominates a glue check: parse them once into a precompiled header that
# every glue file then reuses (falls back to plain checks if the PCH cannot be built).
PCH_INCLUDE=""
printf '#include <torch/library.h>\n#include <ATen/core/dispatch/Dispatcher.h>\n#include "cuda/glue_utils.h"\n' \
  >"$TMP/gp_glue_pch.h"
if "$CXX" $GLUE_FLAGS -x c++-header "$TMP/gp_glue_pch.h" -o "$TMP/gp_glue_pch.h.gch" >"$TMP/pch.log" 2>&1; then
  PCH_INCLUDE="-include $TMP/gp_glue_pch.h -Winvalid-pch"
else
  echo "nvcc_check: precompiled header failed, checking glue files without it:"
  sed 's/^/    /' "$TMP/pch.log" | head -20
fi
export NVCC CXX TMP GLUE_FLAGS PCH_INCLUDE

check_one() {
  local f="$1" log="$TMP/$(basename "$1").log" start end rc
  start=$(date +%s)
  if [[ "$f" == *.cu ]]; then
    "$NVCC" -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
      -std=c++20 -O3 --use_fast_math -lineinfo -Werror all-warnings -I csrc \
      -c "$f" -o "$TMP/$(basename "$f").o" >"$log" 2>&1
  else
    "$CXX" -fsyntax-only $GLUE_FLAGS $PCH_INCLUDE "$f" >"$log" 2>&1
  fi
  rc=$?
  end=$(date +%s)
  if [[ $rc -eq 0 ]]; then
    printf 'PASS %-40s %3ss\n' "$f" "$((end - start))"
  else
    printf 'FAIL %-40s %3ss\n' "$f" "$((end - start))"
    sed 's/^/    /' "$log" | head -40
    return 1
  fi
}
export -f check_one

shopt -s nullglob
files=(csrc/cuda/*.cu csrc/cuda/*_glue.cpp)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "nvcc_check: no CUDA sources under csrc/cuda" >&2
  exit 1
fi
printf '%s\n' "${files[@]}" | xargs -P "$JOBS" -I{} bash -c 'check_one "$1"' _ {}
rc=$?
if [[ $rc -eq 0 ]]; then
  echo "nvcc_check: all ${#files[@]} files OK (sm_80, sm_90; glue syntax-checked)"
else
  echo "nvcc_check: FAILED" >&2
  exit 1
fi
