// Python module _C: build information only; the ops live in the torch.ops.graphpro namespace.
#include <pybind11/pybind11.h>

#ifndef GRAPHPRO_VERSION
#define GRAPHPRO_VERSION "0.0.0"
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "graphpro_ext build information";
  m.attr("__version__") = GRAPHPRO_VERSION;
  m.def("with_cuda", []() {
#ifdef GRAPHPRO_WITH_CUDA
    return true;
#else
    return false;
#endif
  }, "True when the CUDA kernels were compiled into this build.");
  m.def("cuda_archs", []() {
#ifdef GRAPHPRO_CUDA_ARCHS
    return std::string(GRAPHPRO_CUDA_ARCHS);
#else
    return std::string();
#endif
  }, "CUDA architectures compiled (CMAKE_CUDA_ARCHITECTURES), empty for a CPU-only build.");
}
