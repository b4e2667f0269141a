# Locate the torch that the build's Python imports (no find_package(Torch): it drags in CUDA and
# kineto discovery we do not need). Sets TORCH_INCLUDE_DIRS, TORCH_LIBRARY_DIR, TORCH_LIBRARIES,
# TORCH_CUDA_LIBRARIES, TORCH_DEFINITIONS and TORCH_CUDA_VERSION ("" for a CPU build).
execute_process(
  COMMAND ${Python_EXECUTABLE} -c [=[
import os, torch
from torch.utils.cpp_extension import include_paths
print(",".join(include_paths()))
print(os.path.join(os.path.dirname(torch.__file__), "lib"))
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))
print(torch.version.cuda or "")
]=]
  OUTPUT_VARIABLE _torch_info RESULT_VARIABLE _torch_rc ERROR_VARIABLE _torch_err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _torch_rc EQUAL 0)
  message(FATAL_ERROR "graphpro_ext needs torch importable at build time; install torch first and "
                      "build with `pip install --no-build-isolation .` (${_torch_err})")
endif()
string(REPLACE "\n" "|" _torch_info "${_torch_info}")
string(REPLACE "|" ";" _torch_lines "${_torch_info}")
list(GET _torch_lines 0 _incs)
list(GET _torch_lines 1 TORCH_LIBRARY_DIR)
list(GET _torch_lines 2 _abi)
list(LENGTH _torch_lines _n)
set(TORCH_CUDA_VERSION "")
if(_n GREATER 3)
  list(GET _torch_lines 3 TORCH_CUDA_VERSION)
endif()
string(REPLACE "," ";" TORCH_INCLUDE_DIRS "${_incs}")
set(TORCH_DEFINITIONS _GLIBCXX_USE_CXX11_ABI=${_abi})
set(TORCH_LIBRARIES ${TORCH_LIBRARY_DIR}/libtorch.so ${TORCH_LIBRARY_DIR}/libtorch_cpu.so
                    ${TORCH_LIBRARY_DIR}/libc10.so)
set(TORCH_CUDA_LIBRARIES ${TORCH_LIBRARY_DIR}/libtorch_cuda.so ${TORCH_LIBRARY_DIR}/libc10_cuda.so)
message(STATUS "torch: ${TORCH_LIBRARY_DIR} (CUDA: '${TORCH_CUDA_VERSION}', cxx11 abi ${_abi})")
