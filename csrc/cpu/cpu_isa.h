// Runtime choice of the instruction set for the CPU hot loops. The extension is compiled for the
// baseline x86-64 ISA (SSE2: 16 xmm registers, no FMA) so one build runs on any x86-64 machine;
// the per-edge row kernels are additionally compiled for AVX2+FMA, where a d = 64 fp32
// accumulator fits in 8 ymm registers, and picked at run time when the CPU has those.
#pragma once
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GP_HAVE_AVX2_PATH 1
#define GP_TARGET_AVX2 __attribute__((target("avx2,fma"), noinline))
#else
#define GP_HAVE_AVX2_PATH 0
#define GP_TARGET_AVX2
#endif

namespace graphpro::cpu {

// True when the AVX2+FMA kernels run: the CPU supports them and they were not turned off.
bool use_avx2();
// "auto" (the default: AVX2 when the CPU has it) or "baseline" (force the portable path; tests
// use it to check both). Returns the ISA now in use: "avx2" or "baseline".
std::string set_cpu_isa(const std::string& isa);
std::string cpu_isa_name();

}  // namespace graphpro::cpu
