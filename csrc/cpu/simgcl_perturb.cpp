// CPU kernel of graphpro::simgcl_perturb: per row, the row's keyed uniforms are drawn once into a
// small buffer, their norm taken, and x + sign(x) * eps * u / |u| written in one pass over x. The
// plain form (torch.rand, normalize, sign, two multiplies, an add) makes five [n, d] passes and
// spends most of its time in the Mersenne-Twister generator.
#include <torch/library.h>

#include "cpu/cpu_utils.h"

namespace graphpro::cpu {

at::Tensor simgcl_perturb_cpu(const at::Tensor& x_, double eps, int64_t seed) {
  check_simgcl_perturb_inputs(x_, eps);
  const at::Tensor x = x_.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t n = x.size(0), d = x.size(1), pairs = (d + 1) / 2;
  if (n == 0 || d == 0) return out;
  const uint64_t key = seed_key(seed);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "simgcl_perturb", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, n, std::max<int64_t>(1, 16384 / d), [&](int64_t r0, int64_t r1) {
      std::vector<float> u(2 * pairs);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t p = 0; p < pairs; ++p) {
          const uint64_t bits = noise_pair_bits(key, r, pairs, p);
          u[2 * p] = noise_hi(bits);
          u[2 * p + 1] = noise_lo(bits);
        }
        acc_t ss = 0;
        for (int64_t c = 0; c < d; ++c) ss += static_cast<acc_t>(u[c]) * u[c];
        // F.normalize's floor on the norm, then the radius
        const acc_t scale = static_cast<acc_t>(eps) / std::max<acc_t>(std::sqrt(ss), acc_t(1e-12));
        const scalar_t* xr = xp + r * d;
        scalar_t* yr = op + r * d;
        for (int64_t c = 0; c < d; ++c) {
          const acc_t v = static_cast<acc_t>(xr[c]);
          const acc_t s = static_cast<acc_t>((v > 0) - (v < 0));
          yr[c] = static_cast<scalar_t>(v + s * (static_cast<acc_t>(u[c]) * scale));
        }
      }
    });
  });
  return out;
}

}  // namespace graphpro::cpu

TORCH_LIBRARY_IMPL(graphpro, CPU, m) { m.impl("simgcl_perturb", &graphpro::cpu::simgcl_perturb_cpu); }
