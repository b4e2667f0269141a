# GRAPHPRO_CUDA=AUTO builds the CUDA kernels only when torch was built with CUDA, its CUDA
# libraries are present and nvcc is found; ON makes any missing piece an error; OFF skips CUDA.
#
# Architectures: -DCMAKE_CUDA_ARCHITECTURES=..., else $GRAPHPRO_CUDA_ARCHS ("80;90", "80,90" and
# "80 90" all work), else `native`. `native` is resolved here, from the GPUs torch sees on the
# build machine, into a named list ("90"): nvcc's own `-arch=native` silently falls back to sm_75
# on a machine without a GPU, and the build would then report "native" instead of what it holds.
# A build for a GPU-less machine must therefore name its architectures; `native` there is an error.
#
# Sets GRAPHPRO_WITH_CUDA, GRAPHPRO_CUDA_ARCHS_LIST (the list, ;-separated, what nvcc gets) and
# GRAPHPRO_CUDA_ARCHS_STRING (comma-separated, what build_info() reports), and
# GRAPHPRO_CUDART_DIR (the folder of the libcudart torch loads, for the run path; may be empty).
set(GRAPHPRO_WITH_CUDA OFF)

# The GPUs of this machine as CMake architecture numbers ("90;80"), "" when torch sees none.
function(graphpro_local_gpu_archs out)
  execute_process(
    COMMAND ${Python_EXECUTABLE} -c [=[
import torch
caps = set()
if torch.cuda.is_available():
    caps = {"%d%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
print(";".join(sorted(caps)))
]=]
    OUTPUT_VARIABLE _archs RESULT_VARIABLE _rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _rc EQUAL 0)
    set(_archs "")
  endif()
  set(${out} "${_archs}" PARENT_SCOPE)
endfunction()

if(NOT GRAPHPRO_CUDA STREQUAL "OFF")
  set(_why "")
  if(TORCH_CUDA_VERSION STREQUAL "")
    set(_why "torch is a CPU-only build")
  elseif(NOT EXISTS ${TORCH_LIBRARY_DIR}/libc10_cuda.so)
    set(_why "torch's CUDA libraries are missing")
  else()
    include(CheckLanguage)
    check_language(CUDA)
    if(NOT CMAKE_CUDA_COMPILER)
      set(_why "nvcc was not found")
    endif()
  endif()
  if(_why STREQUAL "")
    if(DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT CMAKE_CUDA_ARCHITECTURES STREQUAL "")
      set(_archs "${CMAKE_CUDA_ARCHITECTURES}")
      set(_from "CMAKE_CUDA_ARCHITECTURES")
    elseif(DEFINED ENV{GRAPHPRO_CUDA_ARCHS} AND NOT "$ENV{GRAPHPRO_CUDA_ARCHS}" STREQUAL "")
      set(_archs "$ENV{GRAPHPRO_CUDA_ARCHS}")
      set(_from "GRAPHPRO_CUDA_ARCHS")
    else()
      set(_archs "native")
      set(_from "the default")
    endif()
    string(STRIP "${_archs}" _archs)
    string(REGEX REPLACE "[ ,;]+" ";" _archs "${_archs}")
    if(_archs STREQUAL "native")
      graphpro_local_gpu_archs(_local)
      if(_local STREQUAL "")
        message(FATAL_ERROR
          "graphpro_ext: CUDA architectures `native` (${_from}) but torch sees no GPU on this "
          "build machine, so there is nothing to detect. Name the architectures, e.g. "
          "GRAPHPRO_CUDA_ARCHS=\"80;90\" (A100 + H100/H200), or build CPU-only with "
          "GRAPHPRO_CUDA=OFF.")
      endif()
      message(STATUS "graphpro_ext: `native` resolved to the local GPU architectures ${_local}")
      set(_archs "${_local}")
    endif()
    foreach(_a IN LISTS _archs)
      if(NOT _a MATCHES "^[0-9]+[af]?(-real|-virtual)?$")
        message(FATAL_ERROR "graphpro_ext: bad CUDA architecture '${_a}' in '${_archs}' "
                            "(${_from}); expected numbers such as \"80;90\"")
      endif()
    endforeach()
    set(CMAKE_CUDA_ARCHITECTURES "${_archs}")
    set(GRAPHPRO_CUDA_ARCHS_LIST "${_archs}")
    # The compile definition must not carry `;` (CMake splits it into two arguments).
    string(REPLACE ";" "," GRAPHPRO_CUDA_ARCHS_STRING "${_archs}")
    # The CUDA runtime: shared, the same libcudart torch itself loads (one runtime per process).
    # CMake's default for CUDA targets is the static runtime, which put -lcudart_static on the
    # link line next to the shared one.
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 20)
    find_package(CUDAToolkit REQUIRED)
    # The folder holding torch's libcudart (pip's nvidia-cuda-runtime wheel), so that the
    # extension resolves the same runtime even when loaded before torch (ldd, nm checks).
    file(GLOB _cudart_candidates
         "${TORCH_LIBRARY_DIR}/libcudart.so.*"
         "${TORCH_LIBRARY_DIR}/../../nvidia/*/lib/libcudart.so.*"
         "${TORCH_LIBRARY_DIR}/../../nvidia/cuda_runtime/lib/libcudart.so.*")
    set(GRAPHPRO_CUDART_DIR "")
    if(_cudart_candidates)
      list(GET _cudart_candidates 0 _cudart)
      get_filename_component(GRAPHPRO_CUDART_DIR "${_cudart}" DIRECTORY)
      get_filename_component(GRAPHPRO_CUDART_DIR "${GRAPHPRO_CUDART_DIR}" REALPATH)
    endif()
    set(GRAPHPRO_WITH_CUDA ON)
    message(STATUS "graphpro_ext: building CUDA kernels for ${GRAPHPRO_CUDA_ARCHS_STRING} "
                   "(${_from}); CUDA runtime: shared (torch's: '${GRAPHPRO_CUDART_DIR}')")
  elseif(GRAPHPRO_CUDA STREQUAL "ON")
    message(FATAL_ERROR "GRAPHPRO_CUDA=ON but ${_why}")
  else()
    message(STATUS "graphpro_ext: CPU-only build (${_why})")
  endif()
endif()
