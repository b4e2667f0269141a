// Launcher of graphpro::simgcl_perturb on CUDA (torch-free; simgcl_perturb.cu).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace graphpro::cuda {

// out[r] = x[r] + sign(x[r]) * eps * u[r] / |u[r]| for contiguous [n, d] x and out, u the keyed
// uniforms of common/device_math.h (the CPU kernel's values).
template <typename scalar_t>
cudaError_t simgcl_perturb_launch(const scalar_t* x, scalar_t* out, int64_t n, int64_t d,
                                  double eps, uint64_t key, cudaStream_t stream);

}  // namespace graphpro::cuda
