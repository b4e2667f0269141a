// CUDA glue of graphpro::simgcl_perturb: the CPU kernel's checks, device guard, current stream,
// dtype dispatch and launch.
#include <torch/library.h>

#include "cuda/glue_utils.h"
#include "cuda/simgcl_perturb.cuh"

namespace graphpro::cuda {

at::Tensor simgcl_perturb_cuda(const at::Tensor& x_, double eps, int64_t seed) {
  check_simgcl_perturb_inputs(x_, eps);
  check_cuda(x_, "simgcl_perturb");
  const c10::cuda::CUDAGuard guard(x_.device());
  const at::Tensor x = x_.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  const cudaStream_t stream = current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "simgcl_perturb", [&] {
    GP_CUDA_LAUNCH_CHECK(simgcl_perturb_launch<cuda_scalar_t<scalar_t>>(
        cptr<scalar_t>(x), mptr<scalar_t>(out), x.size(0), x.size(1), eps, seed_key(seed),
        stream));
  });
  return out;
}

}  // namespace graphpro::cuda

TORCH_LIBRARY_IMPL(graphpro, CUDA, m) { m.impl("simgcl_perturb", &graphpro::cuda::simgcl_perturb_cuda); }
