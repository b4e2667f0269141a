// CPU kernel of graphpro::simgcl_perturb: per row, the row's keyed uniforms are drawn once into a
// small buffer, their norm taken, and x + sign(x) * eps * u / |u| written in one pass over x
// (AVX2 when the CPU has it). The plain form (torch.rand, normalize, sign, two multiplies, an
// add) makes five [n, d] passes and spends most of its time in the Mersenne-Twister generator.
#include <torch/library.h>

#include "cpu/cpu_isa.h"
#include "cpu/cpu_utils.h"

namespace graphpro::cpu {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// Rows [r0, r1). Each row's hashes (device_math.h::noise_pair_bits) come first, then their
// conversions, the norm and the output: plain loops the compiler vectorises.
template <typename scalar_t>
GP_INLINE void perturb_rows_impl(const scalar_t* x, scalar_t* y, int64_t r0, int64_t r1,
                                 int64_t d, double eps, uint64_t key, uint64_t* bits, float* u) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t pairs = (d + 1) / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const uint64_t base = key + static_cast<uint64_t>(r * pairs + 1) * kGolden;
    for (int64_t p = 0; p < pairs; ++p) bits[p] = mix64(base + static_cast<uint64_t>(p) * kGolden);
    for (int64_t p = 0; p < pairs; ++p) {
      u[2 * p] = noise_hi(bits[p]);
      u[2 * p + 1] = noise_lo(bits[p]);
    }
    acc_t ss = 0;
    for (int64_t c = 0; c < d; ++c) ss += static_cast<acc_t>(u[c]) * u[c];
    // F.normalize's floor on the norm, then the radius
    const acc_t scale = static_cast<acc_t>(eps) / std::max<acc_t>(std::sqrt(ss), acc_t(1e-12));
    const scalar_t* xr = x + r * d;
    scalar_t* yr = y + r * d;
    for (int64_t c = 0; c < d; ++c) {
      const acc_t v = static_cast<acc_t>(xr[c]);
      const acc_t n = static_cast<acc_t>(u[c]) * scale;
      yr[c] = static_cast<scalar_t>(v + (v > 0 ? n : (v < 0 ? -n : acc_t(0))));
    }
  }
}

template <typename scalar_t>
void perturb_rows_baseline(const scalar_t* x, scalar_t* y, int64_t r0, int64_t r1, int64_t d,
                           double eps, uint64_t key, uint64_t* bits, float* u) {
  perturb_rows_impl(x, y, r0, r1, d, eps, key, bits, u);
}

#if GP_HAVE_AVX2_PATH
// AVX2 without FMA: a contracted u * scale + x would round differently from the baseline path
template <typename scalar_t>
__attribute__((target("avx2"), noinline)) void perturb_rows_avx2(
    const scalar_t* x, scalar_t* y, int64_t r0, int64_t r1, int64_t d, double eps, uint64_t key,
    uint64_t* bits, float* u) {
  perturb_rows_impl(x, y, r0, r1, d, eps, key, bits, u);
}
#endif

}  // namespace

at::Tensor simgcl_perturb_cpu(const at::Tensor& x_, double eps, int64_t seed) {
  check_simgcl_perturb_inputs(x_, eps);
  const at::Tensor x = x_.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t n = x.size(0), d = x.size(1), pairs = (d + 1) / 2;
  if (n == 0 || d == 0) return out;
  const uint64_t key = seed_key(seed);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "simgcl_perturb", [&] {
#if GP_HAVE_AVX2_PATH
    const auto rows = use_avx2() ? perturb_rows_avx2<scalar_t> : perturb_rows_baseline<scalar_t>;
#else
    const auto rows = perturb_rows_baseline<scalar_t>;
#endif
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, std::max<int64_t>(1, 16384 / d), [&](int64_t r0, int64_t r1) {
      std::vector<uint64_t> bits(pairs);
      std::vector<float> u(2 * pairs);
      rows(xp, op, r0, r1, d, eps, key, bits.data(), u.data());
    });
  });
  return out;
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) { m.impl("simgcl_perturb", &graphpro::cpu::simgcl_perturb_cpu); }
