# graphpro_ext developer entry points. `make run` and `make test` each set up what they need.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# The CPU build of torch 2.13.0; never let pip's build isolation fetch another torch.
TORCH_SPEC ?= torch==2.13.0
BUILD_DEPS = scikit-build-core pybind11 ninja "cmake>=3.26" numpy
RUN_DEPS = tqdm matplotlib
TEST_DEPS = pytest hypothesis pyarrow  # pyarrow: the Parquet loader tests
OUT ?= runs/default

.PHONY: setup run test test-fast mutation-check bench cuda-check cuda-ci gpu-check format lint clean

setup:
	$(PIP) install -q $(TORCH_SPEC) $(BUILD_DEPS) $(RUN_DEPS) $(TEST_DEPS)
	$(PIP) install -q --no-build-isolation --no-deps -e .

# Main job: GraphPro pre-training + every fine-tuning stage + baselines on the built-in synthetic data.
run: setup
	graphpro run --out $(OUT) --resume  # a second `make run` continues or re-reports the first

test: setup
	$(PYTHON) -m pytest -q python_tests

# Without the slow end-to-end tests.
test-fast:
	$(PYTHON) -m pytest -q -m "not slow" python_tests

# Plant known trainer bugs one at a time; fails unless the tests catch every one.
mutation-check:
	$(PYTHON) scripts/mutation_check.py

bench:
	$(PYTHON) benchmarks/bench_ops.py --markdown docs/bench_latest.md

# Compile every CUDA kernel with nvcc for sm_80 and sm_90 and syntax-check the CUDA glue.
cuda-check:
	bash scripts/nvcc_check.sh

# CI's CUDA job (no GPU): a throw-away venv with torch 2.14.1 (CUDA 13.0), the extension built
# with GRAPHPRO_CUDA=ON for sm_80 and sm_90, the CUDA-build checks and the test suite in it.
cuda-ci:
	bash scripts/cuda_ci.sh

# On a GPU machine (see docs/CUDA.md): build for the local GPU, CUDA tests, compute-sanitizer,
# benchmarks, one pre-training epoch; writes under GPU_CHECK_OUT.
GPU_CHECK_OUT ?= out/gpu_check
gpu-check:
	bash scripts/gpu_check.sh $(GPU_CHECK_OUT)

format:
	ruff format graphpro_ext python_tests benchmarks
	clang-format -i csrc/*.cpp csrc/*/*.cpp csrc/*/*.h csrc/cuda/*.cu csrc/cuda/*.cuh

lint:
	ruff check graphpro_ext python_tests benchmarks

clean:
	rm -rf build graphpro_ext/*.so
