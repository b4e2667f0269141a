// Python module _C: build information and the CPU ISA switch; the ops live in torch.ops.graphpro.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cpu/cpu_isa.h"

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
  m.def("cpu_isa", &graphpro::cpu::cpu_isa_name,
        "Instruction set the CPU row kernels use now: 'avx2' or 'baseline'.");
  m.def("set_cpu_isa", &graphpro::cpu::set_cpu_isa, pybind11::arg("isa"),
        "'auto' (AVX2+FMA when the CPU has it) or 'baseline' (portable path); returns the ISA in use.");
}
