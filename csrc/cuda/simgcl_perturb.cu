// CUDA kernel of graphpro::simgcl_perturb: one warp per row. Each lane draws its pairs of keyed
// uniforms, the warp sums their squares, and each lane draws the same pairs again to write its
// columns (two hashes per pair are cheaper than staging the row in shared memory).
#include "cuda/cuda_common.cuh"
#include "cuda/simgcl_perturb.cuh"

namespace graphpro::cuda {
namespace {

template <typename scalar_t>
__global__ void __launch_bounds__(kBlockThreads)
    simgcl_perturb_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out, int64_t n,
                          int64_t d, double eps, uint64_t key) {
  using acc_t = acc_type_t<scalar_t>;
  const LaneGroup g(kWarpSize);
  const int64_t r = g.global_index();
  if (r >= n) return;  // whole warps leave together: n rows, one warp each
  const int64_t pairs = (d + 1) / 2;
  acc_t ss = 0;
  for (int64_t p = g.lane; p < pairs; p += g.width) {
    const uint64_t bits = noise_pair_bits(key, r, pairs, p);
    const acc_t hi = noise_hi(bits), lo = noise_lo(bits);
    ss += hi * hi + (2 * p + 1 < d ? lo * lo : acc_t(0));
  }
  ss = group_sum(g, ss);
  const acc_t norm = sqrt(ss);
  const acc_t scale = static_cast<acc_t>(eps) / (norm > acc_t(1e-12) ? norm : acc_t(1e-12));
  const scalar_t* __restrict__ xr = x + r * d;
  scalar_t* __restrict__ yr = out + r * d;
  for (int64_t p = g.lane; p < pairs; p += g.width) {
    const uint64_t bits = noise_pair_bits(key, r, pairs, p);
    const acc_t u[2] = {noise_hi(bits), noise_lo(bits)};
    for (int k = 0; k < 2 && 2 * p + k < d; ++k) {
      const acc_t v = to_acc<acc_t>(xr[2 * p + k]);
      const acc_t s = static_cast<acc_t>((v > 0) - (v < 0));
      yr[2 * p + k] = from_acc<scalar_t>(v + s * (u[k] * scale));
    }
  }
}

}  // namespace

template <typename scalar_t>
cudaError_t simgcl_perturb_launch(const scalar_t* x, scalar_t* out, int64_t n, int64_t d,
                                  double eps, uint64_t key, cudaStream_t stream) {
  if (n == 0 || d == 0) return cudaSuccess;
  simgcl_perturb_kernel<scalar_t><<<grid_for(n, kBlockThreads / kWarpSize), kBlockThreads, 0,
                                    stream>>>(x, out, n, d, eps, key);
  GP_LAUNCH_CHECK();
  return cudaSuccess;
}

#define GP_INSTANTIATE(T)                                                                  \
  template cudaError_t simgcl_perturb_launch<T>(const T*, T*, int64_t, int64_t, double, \
                                                uint64_t, cudaStream_t);
GP_FOR_EACH_FLOAT(GP_INSTANTIATE)
#undef GP_INSTANTIATE

}  // namespace graphpro::cuda
