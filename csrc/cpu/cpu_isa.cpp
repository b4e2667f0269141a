// CPU feature detection for the dispatch declared in cpu_isa.h.
#include "cpu/cpu_isa.h"

#include <atomic>
#include <stdexcept>

namespace graphpro::cpu {
namespace {

bool cpu_has_avx2() {
#if GP_HAVE_AVX2_PATH
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

std::atomic<bool> g_avx2{cpu_has_avx2()};

}  // namespace

bool use_avx2() { return g_avx2.load(std::memory_order_relaxed); }

std::string set_cpu_isa(const std::string& isa) {
  if (isa == "auto") {
    g_avx2.store(cpu_has_avx2());
  } else if (isa == "baseline") {
    g_avx2.store(false);
  } else {
    throw std::invalid_argument("graphpro: cpu isa must be 'auto' or 'baseline', got '" + isa + "'");
  }
  return cpu_isa_name();
}

std::string cpu_isa_name() { return use_avx2() ? "avx2" : "baseline"; }

}  // namespace graphpro::cpu
